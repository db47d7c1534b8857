#include "core/oci/container.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fd.h"
#include "core/fs.h"
#include "core/time.h"
#include "core/oci/cgroups.h"
#include "core/oci/hooks.h"
#include "core/oci/init.h"
#include "core/oci/seccomp.h"
#include "core/oci/unix_socket.h"

namespace berth::oci {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// /proc/<pid>/stat: field 3 (state) and 22 (start time). nullopt when the pid does not exist.
struct ProcStat {
  char state = '?';
  std::uint64_t start = 0;
};
std::optional<ProcStat> proc_stat(pid_t pid) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return std::nullopt;
  auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 2));
  ProcStat st;
  in >> st.state;
  std::string field;
  for (int i = 4; i < 22 && in >> field; ++i) {
  }
  in >> st.start;
  return st;
}

bool alive(pid_t pid, std::uint64_t start) {
  auto st = proc_stat(pid);
  return st && st->start == start && st->state != 'Z' && st->state != 'X';
}

// Whether a signal is pending for the process (a `kill` just sent that it has not acted on yet).
bool signal_pending(pid_t pid) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/status");
  if (!text.ok()) return false;
  for (const char* key : {"\nSigPnd:", "\nShdPnd:"}) {
    auto at = text->find(key);
    if (at == std::string::npos) continue;
    auto mask = std::strtoull(text->c_str() + at + std::strlen(key), nullptr, 16);
    if (mask) return true;
  }
  return false;
}

// Capabilities the runtime itself cannot grant: those missing from its bounding set (without a
// user namespace, a container's set is a subset of it). Refused at create with the set named,
// rather than failing silently after start.
Status check_capabilities(const Process& p, bool new_userns) {
  if (!p.capabilities || new_userns) return Status();
  const auto& c = *p.capabilities;
  for (const auto& [set, names] :
       {std::pair<const char*, const std::vector<std::string>*>{"bounding", &c.bounding},
        {"effective", &c.effective},
        {"permitted", &c.permitted},
        {"inheritable", &c.inheritable},
        {"ambient", &c.ambient}}) {
    for (const auto& name : *names) {
      auto n = capability_number(name);
      if (n && ::prctl(PR_CAPBSET_READ, *n, 0, 0, 0) != 1) {
        return Status(Code::kFailedPrecondition,
                      fmt::format("process.capabilities.{}: {} is not in this host's capability "
                                  "bounding set, so no container here can have it",
                                  set, name));
      }
    }
  }
  return Status();
}

// A raw clone that returns twice like fork (flags may include CLONE_NEW* and CLONE_PARENT).
pid_t clone_process(unsigned long flags) {
  return static_cast<pid_t>(::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
}

Status write_id_map(pid_t pid, const char* file, const std::vector<IdMapping>& maps) {
  std::string text;
  for (const auto& m : maps) text += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  std::string path = fmt::format("/proc/{}/{}", pid, file);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open {}", path);
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return from_errno(err, "write {} ({})", path, text.substr(0, text.size() - 1));
  return Status();
}

// Where a terminal's pty master goes: the caller's console socket, or (no socket: `run -t`,
// `exec -t`) back to us over a socketpair. `child` is handed to the container process.
struct ConsoleEnds {
  core::Fd child, parent;
};
Result<ConsoleEnds> console_ends(bool terminal, const std::string& socket) {
  ConsoleEnds ends;
  if (!terminal) return ends;
  if (!socket.empty()) {
    BERTH_TRY(int fd, connect_unix(socket, "console socket"));
    ends.child = core::Fd(fd);
    return ends;
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return from_errno(errno, "socketpair");
  ends.parent = core::Fd(pair[0]);
  ends.child = core::Fd(pair[1]);
  return ends;
}

const char* ns_proc_name(const std::string& type) {
  if (type == "network") return "net";
  if (type == "mount") return "mnt";
  return type.c_str();
}

struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

json state_to_json(const ContainerState& s) {
  return {{"id", s.id},
          {"bundle", s.bundle},
          {"rootfs", s.rootfs},
          {"pid", s.pid},
          {"pid_start", s.pid_start},
          {"cgroup_path", s.cgroup_path},
          {"created", core::format_rfc3339(s.created)},
          {"annotations", s.annotations},
          {"owner", s.owner}};
}

Result<ContainerState> state_from_json(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return internal_error("{}: corrupt state file", where);
  ContainerState s;
  try {
    s.id = j.at("id").get<std::string>();
    s.bundle = j.at("bundle").get<std::string>();
    s.rootfs = j.value("rootfs", "");
    s.pid = j.at("pid").get<pid_t>();
    s.pid_start = j.value("pid_start", std::uint64_t{0});
    s.cgroup_path = j.value("cgroup_path", "");
    auto created = core::parse_rfc3339(j.value("created", ""));
    if (created.ok()) s.created = *created;
    s.annotations = j.value("annotations", std::map<std::string, std::string>{});
    s.owner = j.value("owner", "");
  } catch (const json::exception& e) {
    return internal_error("{}: corrupt state file: {}", where, e.what());
  }
  return s;
}

// The device rules every container gets after its own (runc's list): mknod of anything, and the
// standard nodes and ptys read/write.
Resources with_default_devices(Resources r) {
  auto rule = [](const char* type, std::optional<std::int64_t> major, std::optional<std::int64_t> minor,
                 const char* access) {
    DeviceRule d;
    d.allow = true;
    d.type = type;
    d.major = major;
    d.minor = minor;
    d.access = access;
    return d;
  };
  // No rules at all: deny everything but the defaults below (never "everything", which a fresh
  // cgroup allows).
  if (r.devices.empty()) {
    DeviceRule deny_all = rule("a", std::nullopt, std::nullopt, "rwm");
    deny_all.allow = false;
    r.devices.push_back(deny_all);
  }
  for (auto d : {rule("c", std::nullopt, std::nullopt, "m"), rule("b", std::nullopt, std::nullopt, "m"),
                 rule("c", 1, 3, "rwm"), rule("c", 1, 5, "rwm"), rule("c", 1, 7, "rwm"),
                 rule("c", 1, 8, "rwm"), rule("c", 1, 9, "rwm"), rule("c", 5, 0, "rwm"),
                 rule("c", 5, 1, "rwm"), rule("c", 5, 2, "rwm"), rule("c", 136, std::nullopt, "rwm")})
    r.devices.push_back(d);
  return r;
}

}  // namespace

std::string status_name(RunState s) {
  switch (s) {
    case RunState::kCreating: return "creating";
    case RunState::kCreated: return "created";
    case RunState::kRunning: return "running";
    case RunState::kPaused: return "paused";
    case RunState::kStopped: return "stopped";
  }
  return "unknown";
}

std::string ContainerState::oci_json() const {
  json j = {{"ociVersion", "1.0.2"},
            {"id", id},
            {"status", status_name(status)},
            {"bundle", bundle}};
  if (status != RunState::kStopped) j["pid"] = pid;
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump();
}

std::string ContainerState::runc_json() const {
  json j = {{"ociVersion", "1.0.2"},
            {"id", id},
            {"pid", status == RunState::kStopped ? 0 : pid},
            {"status", status_name(status)},
            {"bundle", bundle},
            {"rootfs", rootfs},
            {"created", core::format_rfc3339(created)},
            {"owner", owner}};
  if (!annotations.empty()) j["annotations"] = annotations;
  return j.dump(2);
}

Status validate_id(const std::string& id) {
  if (id.empty()) return invalid_argument("container id must not be empty");
  if (id.size() > 1024) return invalid_argument("container id is longer than 1024 bytes");
  if (id == "." || id == "..") return invalid_argument("invalid container id \"{}\"", id);
  for (char ch : id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '+' || ch == '-' || ch == '.'))
      return invalid_argument("invalid container id \"{}\": only letters, digits and _+-. are allowed", id);
  }
  return Status();
}

Result<ContainerState> Runtime::load(const std::string& id) const {
  BERTH_RETURN_IF_ERROR(validate_id(id));
  std::string path = dir(id) + "/state.json";
  auto text = core::read_file(path);
  if (!text.ok()) {
    if (::access(dir(id).c_str(), F_OK) != 0)
      return not_found("container \"{}\" does not exist", id);
    return text.status();
  }
  BERTH_TRY(auto s, state_from_json(*text, path));
  if (s.pid <= 0) {
    s.status = RunState::kCreating;
  } else if (!alive(s.pid, s.pid_start)) {
    s.status = RunState::kStopped;
  } else if (::access((dir(id) + "/exec.fifo").c_str(), F_OK) == 0) {
    s.status = RunState::kCreated;
  } else {
    s.status = RunState::kRunning;
    auto layout = cgroups::probe();
    if (layout.ok() && !s.cgroup_path.empty()) {
      auto cg = cgroups::Cgroup::open(*layout, s.cgroup_path);
      if (cg.ok()) {
        auto frozen = cg->frozen();
        if (frozen.ok() && *frozen) s.status = RunState::kPaused;
      }
    }
  }
  return s;
}

Result<Spec> Runtime::load_spec(const std::string& id) const {
  std::string path = dir(id) + "/config.json";
  BERTH_TRY(auto text, core::read_file(path));
  return parse_spec(text, path);
}

Result<ContainerState> Runtime::state(const std::string& id) const { return load(id); }

Result<std::vector<ContainerState>> Runtime::list() const {
  std::vector<ContainerState> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(o_.root, ec)) {
    if (!e.is_directory()) continue;
    auto s = load(e.path().filename().string());
    if (s.ok()) out.push_back(*s);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

NamespacePlan plan_namespaces(const Spec& spec) {
  NamespacePlan plan;
  for (const auto& ns : spec.linux.namespaces) {
    if (ns.path.empty()) {
      if (ns.type == "user" || ns.type == "pid")
        plan.clone_flags |= static_cast<unsigned long>(ns.clone_flag);
      else
        plan.unshare_flags |= ns.clone_flag;
    } else if (ns.type == "pid") {
      plan.pid_path = ns.path;
    } else if (ns.type == "user") {
      plan.join.insert(plan.join.begin(), {ns.path, ns.clone_flag});
    } else {
      plan.join.emplace_back(ns.path, ns.clone_flag);
    }
  }
  return plan;
}

namespace {

// The bundle as create reads it: its config, the parsed spec and the rootfs it names.
struct LoadedBundle {
  std::string dir, rootfs, config_text;
  Spec spec;
};

Result<LoadedBundle> load_bundle(const CreateOptions& c) {
  LoadedBundle b;
  std::error_code ec;
  b.dir = fs::canonical(c.bundle, ec).string();
  if (ec) return invalid_argument("bundle \"{}\": {}", c.bundle, ec.message());
  auto config_text = core::read_file(b.dir + "/config.json");
  if (!config_text.ok())
    return invalid_argument("bundle \"{}\" has no readable config.json: {}", b.dir,
                            config_text.status().message());
  b.config_text = *config_text;
  BERTH_TRY(b.spec, parse_spec(b.config_text, b.dir + "/config.json"));
  if (!b.spec.process)
    return invalid_argument("{}/config.json: process is required to create a container", b.dir);
  std::string rootfs =
      b.spec.root_path.front() == '/' ? b.spec.root_path : b.dir + "/" + b.spec.root_path;
  b.rootfs = fs::canonical(rootfs, ec).string();
  if (ec || !fs::is_directory(b.rootfs))
    return invalid_argument("root.path: rootfs \"{}\" does not exist or is not a directory", rootfs);
  if (b.spec.process->terminal && c.console_socket.empty() && !c.console_master)
    return invalid_argument("process.terminal is true: a --console-socket is needed");
  return b;
}

Result<cgroups::Cgroup> open_cgroup(const cgroups::Layout& layout, const Spec& spec,
                                    const std::string& id) {
  std::string path = spec.linux.cgroups_path.empty() ? "/" + id : spec.linux.cgroups_path;
  if (path.find(':') != std::string::npos)
    return invalid_argument(
        "linux.cgroupsPath \"{}\" looks like a systemd slice:prefix:name, which needs "
        "--systemd-cgroup (not supported)",
        path);
  return cgroups::Cgroup::open(layout, path);
}

// exec.fifo, owned by the container's root (which a user namespace maps elsewhere), opened
// O_PATH: the init reopens it through /proc/self/fd to block until start.
Result<core::Fd> make_exec_fifo(const std::string& sdir, const Spec& spec) {
  std::string fifo = sdir + "/exec.fifo";
  if (::mkfifo(fifo.c_str(), 0600) < 0) return from_errno(errno, "mkfifo {}", fifo);
  auto host_id = [](const std::vector<IdMapping>& maps, std::uint32_t id) -> std::uint32_t {
    for (const auto& m : maps) {
      if (id >= m.container_id && id - m.container_id < m.size)
        return m.host_id + (id - m.container_id);
    }
    return id;
  };
  if (!spec.linux.uid_mappings.empty() &&
      ::chown(fifo.c_str(), host_id(spec.linux.uid_mappings, 0),
              host_id(spec.linux.gid_mappings, 0)) < 0)
    return from_errno(errno, "chown {}", fifo);
  int fd = ::open(fifo.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open {}", fifo);
  return core::Fd(fd);
}

// The namespaces the plan joins, opened (the descriptors live as long as the result).
struct OpenedJoins {
  std::vector<core::Fd> fds;
  std::vector<std::pair<int, int>> join;  // fd, flag
  int pid_fd = -1;
};

Result<OpenedJoins> open_joins(const NamespacePlan& plan, const Spec& spec) {
  OpenedJoins out;
  auto open_ns = [&](const std::string& path) -> Result<int> {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::string type = "?";
      for (const auto& ns : spec.linux.namespaces)
        if (ns.path == path) type = ns.type;
      return from_errno(errno, "linux.namespaces: open {} namespace {}", type, path);
    }
    out.fds.emplace_back(fd);
    return fd;
  };
  for (const auto& [path, flag] : plan.join) {
    BERTH_TRY(int fd, open_ns(path));
    out.join.emplace_back(fd, flag);
  }
  if (!plan.pid_path.empty()) {
    BERTH_TRY(out.pid_fd, open_ns(plan.pid_path));
  }
  return out;
}

// What the parent does for the cloned init before it says "go": id maps, the cgroup (created,
// joined, limited), the OOM score.
Status set_up_init(pid_t pid, unsigned long clone_flags, const Spec& spec, cgroups::Cgroup& cgroup) {
  if (clone_flags & CLONE_NEWUSER) {
    BERTH_RETURN_IF_ERROR(write_id_map(pid, "uid_map", spec.linux.uid_mappings));
    BERTH_RETURN_IF_ERROR(write_id_map(pid, "gid_map", spec.linux.gid_mappings));
  }
  BERTH_RETURN_IF_ERROR(cgroup.create());
  BERTH_RETURN_IF_ERROR(cgroup.add(pid));
  BERTH_RETURN_IF_ERROR(
      cgroup.apply(with_default_devices(spec.linux.resources ? *spec.linux.resources : Resources{})));
  if (spec.process->oom_score_adj) {
    std::string v = std::to_string(*spec.process->oom_score_adj);
    int fd = ::open(fmt::format("/proc/{}/oom_score_adj", pid).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, v.data(), v.size()) < 0) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      return from_errno(err, "process.oomScoreAdj {}", v);
    }
    ::close(fd);
  }
  return Status();
}

// The sync protocol from the parent's side (init.h): "go" with the state, the prestart and
// createRuntime hooks when the init asks for them, until "ready" or an error. `reaped` tells
// whether the init died (and was waited for) on the way.
Status drive_init(int sync_fd, pid_t pid, const ContainerState& st, const Spec& spec,
                  bool* reaped) {
  ContainerState creating = st;
  creating.status = RunState::kCreating;
  // The state the init's own hooks (createContainer, startContainer) get, now with its pid.
  sync_send(sync_fd, "go " + creating.oci_json());
  for (;;) {
    std::string msg = sync_recv(sync_fd);
    if (msg == "hooks") {
      std::string state_json = creating.oci_json();
      BERTH_RETURN_IF_ERROR(run_hooks(spec.hooks.prestart, state_json, "prestart"));
      BERTH_RETURN_IF_ERROR(run_hooks(spec.hooks.create_runtime, state_json, "createRuntime"));
      sync_send(sync_fd, "ok");
      continue;
    }
    if (msg == "ready") return Status();
    if (msg.rfind("error ", 0) == 0) return Status(Code::kFailedPrecondition, msg.substr(6));
    int status = 0;
    ::waitpid(pid, &status, 0);
    *reaped = true;
    return Status(Code::kInternal,
                  fmt::format("container init exited while being created (status {:#x})", status));
  }
}

}  // namespace

Result<ContainerState> Runtime::create(const std::string& id, const CreateOptions& c) {
  BERTH_RETURN_IF_ERROR(validate_id(id));
  if (o_.systemd_cgroup)
    return Status(Code::kUnimplemented, "--systemd-cgroup is not supported: cgroupsPath is a path");
  BERTH_TRY(auto b, load_bundle(c));
  const Spec& spec = b.spec;
  BERTH_RETURN_IF_ERROR(check_capabilities(
      *spec.process, spec.linux.find("user") != nullptr && spec.linux.find("user")->path.empty()));
  std::optional<SeccompFilter> seccomp;
  if (spec.linux.seccomp) {
    BERTH_TRY(seccomp, SeccompFilter::build(*spec.linux.seccomp));
  }
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cgroup, open_cgroup(layout, spec, id));

  // The state directory: its creation is what claims the id.
  std::error_code ec;
  fs::create_directories(o_.root, ec);
  if (ec) return invalid_argument("create the state root {}: {}", o_.root, ec.message());
  std::string sdir = dir(id);
  if (::mkdir(sdir.c_str(), 0711) < 0) {
    if (errno == EEXIST) return already_exists("container \"{}\" already exists", id);
    return from_errno(errno, "create {}", sdir);
  }
  bool done = false;
  struct Cleanup {
    std::function<void()> fn;
    ~Cleanup() { fn(); }
  } cleanup{[&] {
    if (done) return;
    cgroup.destroy().ignore();
    fs::remove_all(sdir, ec);
  }};
  ContainerState st;
  st.id = id;
  st.bundle = b.dir;
  st.rootfs = b.rootfs;
  st.cgroup_path = cgroup.path();
  st.created = std::chrono::system_clock::now();
  st.annotations = spec.annotations;
  st.owner = std::to_string(::getuid());
  st.status = RunState::kCreating;
  BERTH_RETURN_IF_ERROR(core::write_file_atomic(sdir + "/config.json", b.config_text, 0600,
                                                core::Durability::kVolatile));
  BERTH_RETURN_IF_ERROR(core::write_file_atomic(sdir + "/state.json", state_to_json(st).dump(),
                                                0600, core::Durability::kVolatile));
  BERTH_TRY(auto fifo, make_exec_fifo(sdir, spec));
  BERTH_TRY(auto console, console_ends(spec.process->terminal, c.console_socket));
  NamespacePlan plan = plan_namespaces(spec);
  BERTH_TRY(auto joins, open_joins(plan, spec));
  int sync[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0)
    return from_errno(errno, "socketpair");
  core::Fd parent_sync(sync[0]);
  core::Fd child_sync(sync[1]);

  // Joining a pid namespace by path applies to our next child: switch for the clone only.
  core::Fd own_pid_ns;
  if (joins.pid_fd >= 0) {
    own_pid_ns = core::Fd(::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC));
    if (::setns(joins.pid_fd, CLONE_NEWPID) < 0) return from_errno(errno, "join pid namespace");
  }
  std::vector<std::string> cg_names;
  for (const auto& d : layout.mounts)
    cg_names.push_back(d.v2 ? (layout.pure_v2() ? "" : "unified")
                            : fs::path(d.mountpoint).filename().string());

  InitConfig init;
  init.spec = &spec;
  init.process = &*spec.process;
  init.rootfs = b.rootfs;
  init.bundle = b.dir;
  init.sync_fd = child_sync.get();
  init.fifo_fd = fifo.get();
  init.console_fd = console.child.get();
  std::copy(std::begin(c.stdio), std::end(c.stdio), init.stdio);
  init.no_pivot = c.no_pivot;
  init.preserve_fds = c.preserve_fds;
  init.unshare_flags = plan.unshare_flags;
  init.join = joins.join;
  init.cgroup_dirs = cgroup.dirs();
  init.cgroup_mounts = cg_names;
  init.seccomp = &seccomp;
  pid_t pid = clone_process(plan.clone_flags);
  if (pid == 0) {
    ::close(parent_sync.get());
    if (console.parent.get() >= 0) ::close(console.parent.get());
    container_main(init);
  }
  int clone_errno = errno;
  if (own_pid_ns.get() >= 0) ::setns(own_pid_ns.get(), CLONE_NEWPID);
  if (pid < 0)
    return from_errno(clone_errno, "clone the container process (flags {:#x})", plan.clone_flags);
  ChildGuard child{pid};
  child_sync = core::Fd();
  console.child = core::Fd();  // the child has its copy

  BERTH_RETURN_IF_ERROR(set_up_init(pid, plan.clone_flags, spec, cgroup));
  st.pid = pid;
  auto ps = proc_stat(pid);
  st.pid_start = ps ? ps->start : 0;
  bool reaped = false;
  if (Status s = drive_init(parent_sync.get(), pid, st, spec, &reaped); !s.ok()) {
    if (reaped) child.pid = -1;
    return s;
  }
  if (console.parent.get() >= 0) {
    BERTH_TRY(int master, recv_fd(console.parent.get()));
    *c.console_master = master;
  }
  st.status = RunState::kCreated;
  BERTH_RETURN_IF_ERROR(core::write_file_atomic(sdir + "/state.json", state_to_json(st).dump(),
                                                0600, core::Durability::kVolatile));
  if (!c.pid_file.empty())
    BERTH_RETURN_IF_ERROR(
        core::write_file_atomic(c.pid_file, std::to_string(pid), 0644, core::Durability::kVolatile));
  done = true;
  child.pid = -1;  // it lives on (reparented when we exit, or reaped by the caller)
  return st;
}

Status Runtime::start(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kCreated)
    return Status(Code::kFailedPrecondition,
                  fmt::format("cannot start container \"{}\": it is {}, not created", id, status_name(st.status)));
  std::string fifo = dir(id) + "/exec.fifo";
  core::Fd fd(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return from_errno(errno, "open {}", fifo);
  // The init writes one byte once it sees us; EOF or a dead init means it failed.
  for (int i = 0; i < 1000; ++i) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char b;
      ssize_t n = ::read(fd.get(), &b, 1);
      if (n == 1) break;
      if (n == 0 && !alive(st.pid, st.pid_start))
        return Status(Code::kFailedPrecondition, fmt::format("container \"{}\" init exited before start", id));
    }
    if (!alive(st.pid, st.pid_start))
      return Status(Code::kFailedPrecondition, fmt::format("container \"{}\" init exited before start", id));
  }
  ::unlink(fifo.c_str());
  auto spec = load_spec(id);
  if (spec.ok() && !spec->hooks.poststart.empty()) {
    st.status = RunState::kRunning;
    // poststart failures are warnings: the container is already running.
    Status hs = run_hooks(spec->hooks.poststart, st.oci_json(), "poststart");
    if (!hs.ok()) ::dprintf(2, "berth-runtime: warning: %s\n", hs.message().c_str());
  }
  return Status();
}

Status Runtime::kill(const std::string& id, int signal, bool all) {
  BERTH_TRY(auto st, load(id));
  if (st.status == RunState::kStopped && !all)
    return Status(Code::kFailedPrecondition, fmt::format("container \"{}\" is not running", id));
  if (all) {
    BERTH_TRY(auto layout, cgroups::probe());
    BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
    BERTH_RETURN_IF_ERROR(cg.kill_all(signal));
    if (signal == SIGKILL && st.status == RunState::kPaused) cg.freeze(false).ignore();
    return Status();
  }
  if (::kill(st.pid, signal) < 0) return from_errno(errno, "signal {} to container \"{}\"", signal, id);
  return Status();
}

Status Runtime::remove(const std::string& id, bool force) {
  BERTH_TRY(auto st, load(id));
  // A `kill` right before: the signal is pending and the process about to die. Wait for it
  // (bounded) rather than call a dying container running.
  if (!force && st.status == RunState::kRunning && signal_pending(st.pid)) {
    for (int i = 0; i < 400 && alive(st.pid, st.pid_start); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    BERTH_TRY(st, load(id));
  }
  auto layout = cgroups::probe();
  std::optional<cgroups::Cgroup> cg;
  if (layout.ok() && !st.cgroup_path.empty()) {
    auto opened = cgroups::Cgroup::open(*layout, st.cgroup_path);
    if (opened.ok()) cg = std::move(*opened);
  }
  if (st.status == RunState::kRunning || st.status == RunState::kPaused) {
    if (!force)
      return Status(Code::kFailedPrecondition,
                    fmt::format("cannot delete container \"{}\": it is {} (use --force)", id, status_name(st.status)));
  }
  if (st.status != RunState::kStopped && st.pid > 0) {
    if (cg) {
      cg->kill_all(SIGKILL).ignore();
      if (st.status == RunState::kPaused) cg->freeze(false).ignore();
    }
    ::kill(st.pid, SIGKILL);
    for (int i = 0; i < 1000 && alive(st.pid, st.pid_start); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (cg) {
    // Leftover processes (exec'd ones the init did not take along): gone with the container.
    auto pids = cg->pids();
    if (pids.ok() && !pids->empty()) {
      cg->kill_all(SIGKILL).ignore();
      cg->freeze(false).ignore();
    }
    Status ds = cg->destroy();
    if (!ds.ok()) return ds;
  }
  auto spec = load_spec(id);
  if (spec.ok() && !spec->hooks.poststop.empty()) {
    st.status = RunState::kStopped;
    Status hs = run_hooks(spec->hooks.poststop, st.oci_json(), "poststop");
    if (!hs.ok()) ::dprintf(2, "berth-runtime: warning: %s\n", hs.message().c_str());
  }
  std::error_code ec;
  fs::remove_all(dir(id), ec);
  if (ec) return invalid_argument("remove {}: {}", dir(id), ec.message());
  return Status();
}

Result<pid_t> Runtime::exec(const std::string& id, const ExecOptions& e) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kRunning && st.status != RunState::kCreated)
    return Status(Code::kFailedPrecondition,
                  fmt::format("cannot exec in container \"{}\": it is {}", id, status_name(st.status)));
  BERTH_TRY(auto spec, load_spec(id));
  if (e.process.terminal && e.console_socket.empty() && !e.console_master)
    return invalid_argument("process.terminal is true: a --console-socket is needed");
  BERTH_RETURN_IF_ERROR(check_capabilities(e.process, spec.linux.find("user") != nullptr));
  std::optional<SeccompFilter> seccomp;
  if (spec.linux.seccomp) {
    BERTH_TRY(seccomp, SeccompFilter::build(*spec.linux.seccomp));
  }

  // The init's namespaces, user first, mount last (it changes the root).
  std::vector<std::pair<int, int>> join;
  std::vector<core::Fd> guards;
  for (const char* type : {"user", "ipc", "uts", "network", "pid", "cgroup", "mount"}) {
    const Namespace* ns = spec.linux.find(type);
    if (!ns) continue;
    std::string mine = std::string("/proc/self/ns/") + ns_proc_name(type);
    std::string theirs = fmt::format("/proc/{}/ns/{}", st.pid, ns_proc_name(type));
    struct stat a {}, b {};
    if (::stat(mine.c_str(), &a) == 0 && ::stat(theirs.c_str(), &b) == 0 && a.st_ino == b.st_ino) continue;
    int fd = ::open(theirs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return from_errno(errno, "open {}", theirs);
    guards.emplace_back(fd);
    join.emplace_back(fd, ns->clone_flag);
  }
  BERTH_TRY(auto console, console_ends(e.process.terminal, e.console_socket));
  int sync[2], report[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) return from_errno(errno, "socketpair");
  core::Fd parent_sync(sync[0]), child_sync(sync[1]);
  if (::pipe2(report, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  core::Fd report_r(report[0]), report_w(report[1]);

  Process process = e.process;
  InitConfig init;
  init.spec = &spec;
  init.process = &process;
  init.sync_fd = child_sync.get();
  init.console_fd = console.child.get();
  std::copy(std::begin(e.stdio), std::end(e.stdio), init.stdio);
  init.exec_mode = true;
  init.preserve_fds = e.preserve_fds;
  init.seccomp = &seccomp;
  init.state_json = st.oci_json();

  // A joins the namespaces, then clones B as our sibling-child (CLONE_PARENT) so B lands in the
  // container's pid namespace and we can wait for it.
  pid_t a = ::fork();
  if (a < 0) return from_errno(errno, "fork");
  if (a == 0) {
    // From here on this process is in the container's namespaces while still running the
    // runtime's code: nothing in the container may ptrace it or open its /proc files.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (const auto& [fd, type] : join) {
      if (::setns(fd, type) < 0) {
        sync_send(child_sync.get(), fmt::format("error join namespace {:#x} of container \"{}\": {}", type, id, ::strerror(errno)));
        ::_exit(1);
      }
    }
    pid_t b = clone_process(CLONE_PARENT);
    if (b == 0) container_main(init);
    (void)!::write(report_w.get(), &b, sizeof b);
    ::_exit(b < 0 ? 1 : 0);
  }
  report_w = core::Fd();
  child_sync = core::Fd();
  console.child = core::Fd();  // the child has its copy
  pid_t b = -1;
  ssize_t n = ::read(report_r.get(), &b, sizeof b);
  int astatus = 0;
  ::waitpid(a, &astatus, 0);
  if (n != sizeof b || b <= 0) {
    std::string msg = sync_recv(parent_sync.get());
    if (msg.rfind("error ", 0) == 0) return Status(Code::kFailedPrecondition, msg.substr(6));
    return internal_error("exec in container \"{}\": could not start the process", id);
  }
  ChildGuard child{b};
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  BERTH_RETURN_IF_ERROR(cg.add(b));
  sync_send(parent_sync.get(), "go");
  // The sync socket is close-on-exec: EOF means the exec happened.
  std::string msg = sync_recv(parent_sync.get());
  if (!msg.empty()) {
    if (msg.rfind("error ", 0) == 0) return Status(Code::kFailedPrecondition, msg.substr(6));
    return internal_error("exec: unexpected message \"{}\"", msg);
  }
  if (console.parent.get() >= 0) {
    BERTH_TRY(int master, recv_fd(console.parent.get()));
    *e.console_master = master;
  }
  if (!e.pid_file.empty()) BERTH_RETURN_IF_ERROR(core::write_file_atomic(e.pid_file, std::to_string(b), 0644, core::Durability::kVolatile));
  child.pid = -1;
  return b;
}

Status Runtime::pause(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kRunning && st.status != RunState::kCreated)
    return Status(Code::kFailedPrecondition, fmt::format("cannot pause container \"{}\": it is {}", id, status_name(st.status)));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  return cg.freeze(true);
}

Status Runtime::resume(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kPaused)
    return Status(Code::kFailedPrecondition, fmt::format("cannot resume container \"{}\": it is {}, not paused", id, status_name(st.status)));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  return cg.freeze(false);
}

Result<std::vector<pid_t>> Runtime::pids(const std::string& id) const {
  BERTH_TRY(auto st, load(id));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  return cg.pids();
}

Status Runtime::update(const std::string& id, const Resources& r) {
  BERTH_TRY(auto st, load(id));
  if (st.status == RunState::kStopped)
    return Status(Code::kFailedPrecondition, fmt::format("container \"{}\" is stopped", id));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  return cg.apply(r);
}

Result<std::string> Runtime::stats(const std::string& id) const {
  BERTH_TRY(auto st, load(id));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  BERTH_TRY(auto s, cg.stats());
  json j = {{"cpu",
             {{"usage", {{"total", s.cpu_usage_ns}, {"user", s.cpu_user_ns}, {"kernel", s.cpu_system_ns}}},
              {"throttling",
               {{"periods", s.cpu_periods},
                {"throttledPeriods", s.cpu_throttled_periods},
                {"throttledTime", s.cpu_throttled_ns}}}}},
            {"memory",
             {{"usage", {{"usage", s.memory_usage}, {"max", s.memory_max_usage}, {"limit", s.memory_limit}, {"failcnt", s.memory_failcnt}}},
              {"cache", s.memory_cache},
              {"raw", {{"rss", s.memory_rss}, {"swap", s.memory_swap}}},
              {"oom_kills", s.oom_kills}}},
            {"pids", {{"current", s.pids_current}, {"limit", s.pids_limit}}}};
  return j.dump();
}

}  // namespace berth::oci

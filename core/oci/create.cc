// Runtime::create: from a bundle to an init waiting on exec.fifo, as named steps.
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "core/oci/container.h"
#include "core/oci/container_support.h"
#include "core/oci/hooks.h"
#include "core/oci/init.h"
#include "core/oci/seccomp.h"
#include "core/oci/unix_socket.h"

namespace berth::oci {
using namespace detail;
namespace fs = std::filesystem;

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
    return invalid_argument("root.path: rootfs \"{}\" does not exist or is not a directory",
                            rootfs);
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
  if (!spec.linux.uid_mappings.empty() && ::chown(fifo.c_str(), host_id(spec.linux.uid_mappings, 0),
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
Status set_up_init(pid_t pid, unsigned long clone_flags, const Spec& spec,
                   cgroups::Cgroup& cgroup) {
  if (clone_flags & CLONE_NEWUSER) {
    BERTH_RETURN_IF_ERROR(write_id_map(pid, "uid_map", spec.linux.uid_mappings));
    BERTH_RETURN_IF_ERROR(write_id_map(pid, "gid_map", spec.linux.gid_mappings));
  }
  BERTH_RETURN_IF_ERROR(cgroup.create());
  BERTH_RETURN_IF_ERROR(cgroup.add(pid));
  BERTH_RETURN_IF_ERROR(cgroup.apply(
      with_default_devices(spec.linux.resources ? *spec.linux.resources : Resources{})));
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
    BERTH_RETURN_IF_ERROR(core::write_file_atomic(c.pid_file, std::to_string(pid), 0644,
                                                  core::Durability::kVolatile));
  done = true;
  child.pid = -1;  // it lives on (reparented when we exit, or reaped by the caller)
  return st;
}

}  // namespace berth::oci

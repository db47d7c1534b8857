#include "core/oci/container.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
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
#include "core/oci/cgroups.h"
#include "core/oci/container_support.h"
#include "core/oci/hooks.h"
#include "core/oci/init.h"
#include "core/oci/seccomp.h"
#include "core/oci/unix_socket.h"
#include "core/time.h"

namespace berth::oci {
using namespace detail;
namespace {

namespace fs = std::filesystem;
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
  json j = {
      {"ociVersion", "1.0.2"}, {"id", id}, {"status", status_name(status)}, {"bundle", bundle}};
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
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '+' || ch == '-' ||
          ch == '.'))
      return invalid_argument(
          "invalid container id \"{}\": only letters, digits and _+-. are allowed", id);
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

Status Runtime::start(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kCreated)
    return Status(Code::kFailedPrecondition,
                  fmt::format("cannot start container \"{}\": it is {}, not created", id,
                              status_name(st.status)));
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
        return Status(Code::kFailedPrecondition,
                      fmt::format("container \"{}\" init exited before start", id));
    }
    if (!alive(st.pid, st.pid_start))
      return Status(Code::kFailedPrecondition,
                    fmt::format("container \"{}\" init exited before start", id));
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
  if (::kill(st.pid, signal) < 0)
    return from_errno(errno, "signal {} to container \"{}\"", signal, id);
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
                    fmt::format("cannot delete container \"{}\": it is {} (use --force)", id,
                                status_name(st.status)));
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
    return Status(
        Code::kFailedPrecondition,
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
    struct stat a {
    }, b{};
    if (::stat(mine.c_str(), &a) == 0 && ::stat(theirs.c_str(), &b) == 0 && a.st_ino == b.st_ino)
      continue;
    int fd = ::open(theirs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return from_errno(errno, "open {}", theirs);
    guards.emplace_back(fd);
    join.emplace_back(fd, ns->clone_flag);
  }
  BERTH_TRY(auto console, console_ends(e.process.terminal, e.console_socket));
  int sync[2], report[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0)
    return from_errno(errno, "socketpair");
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
        sync_send(child_sync.get(),
                  fmt::format("error join namespace {:#x} of container \"{}\": {}", type, id,
                              ::strerror(errno)));
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
  if (!e.pid_file.empty())
    BERTH_RETURN_IF_ERROR(
        core::write_file_atomic(e.pid_file, std::to_string(b), 0644, core::Durability::kVolatile));
  child.pid = -1;
  return b;
}

Status Runtime::pause(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kRunning && st.status != RunState::kCreated)
    return Status(Code::kFailedPrecondition, fmt::format("cannot pause container \"{}\": it is {}",
                                                         id, status_name(st.status)));
  BERTH_TRY(auto layout, cgroups::probe());
  BERTH_TRY(auto cg, cgroups::Cgroup::open(layout, st.cgroup_path));
  return cg.freeze(true);
}

Status Runtime::resume(const std::string& id) {
  BERTH_TRY(auto st, load(id));
  if (st.status != RunState::kPaused)
    return Status(Code::kFailedPrecondition,
                  fmt::format("cannot resume container \"{}\": it is {}, not paused", id,
                              status_name(st.status)));
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
             {{"usage",
               {{"total", s.cpu_usage_ns}, {"user", s.cpu_user_ns}, {"kernel", s.cpu_system_ns}}},
              {"throttling",
               {{"periods", s.cpu_periods},
                {"throttledPeriods", s.cpu_throttled_periods},
                {"throttledTime", s.cpu_throttled_ns}}}}},
            {"memory",
             {{"usage",
               {{"usage", s.memory_usage},
                {"max", s.memory_max_usage},
                {"limit", s.memory_limit},
                {"failcnt", s.memory_failcnt}}},
              {"cache", s.memory_cache},
              {"raw", {{"rss", s.memory_rss}, {"swap", s.memory_swap}}},
              {"oom_kills", s.oom_kills}}},
            {"pids", {{"current", s.pids_current}, {"limit", s.pids_limit}}}};
  return j.dump();
}

}  // namespace berth::oci

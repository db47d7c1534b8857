#include "core/oci/init.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "core/fd.h"
#include "core/fs.h"
#include "core/mount.h"
#include "core/oci/hooks.h"
#include "core/oci/rootfs.h"
#include "core/oci/unix_socket.h"
#include "core/tree.h"

namespace berth::oci {
namespace {

[[noreturn]] void fail(const InitConfig& c, const Status& st) {
  sync_send(c.sync_fd, "error " + st.message());
  // After start nobody listens on the socket any more: say it on stderr too.
  if (c.sync_fd < 0) ::dprintf(2, "berth-runtime: %s\n", st.message().c_str());
  ::_exit(1);
}

#define INIT_TRY(c, expr)          \
  do {                             \
    ::berth::Status st_ = (expr);  \
    if (!st_.ok()) fail((c), st_); \
  } while (0)

// Opens a pty in the container's devpts, hands the master over, and makes the slave our
// controlling terminal and stdio.
Status setup_console(const InitConfig& c) {
  int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) return from_errno(errno, "open /dev/ptmx");
  if (::unlockpt(master) < 0) return from_errno(errno, "unlockpt");
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (slave < 0) return from_errno(errno, "open the pty slave");
  if (c.process->console_size) {
    winsize ws{};
    ws.ws_row = static_cast<unsigned short>(c.process->console_size->first);
    ws.ws_col = static_cast<unsigned short>(c.process->console_size->second);
    ::ioctl(master, TIOCSWINSZ, &ws);
  }
  // Bind the slave over /dev/console (when /dev is ours), as runc does.
  if (!c.exec_mode && ::access("/dev", W_OK) == 0) {
    char name[64] = {};
    if (::ptsname_r(master, name, sizeof name) == 0) {
      int f = ::open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
      if (f >= 0) {
        ::close(f);
        ::mount(name, "/dev/console", nullptr, MS_BIND, nullptr);
      }
    }
  }
  BERTH_RETURN_IF_ERROR(send_fd(c.console_fd, master, "").with_context("send the pty master"));
  ::close(master);
  ::close(c.console_fd);
  if (::setsid() < 0) return from_errno(errno, "setsid");
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) return from_errno(errno, "set the controlling terminal");
  for (int fd = 0; fd < 3; ++fd) ::dup2(slave, fd);
  if (slave > 2) ::close(slave);
  return Status();
}

Status rlimits(const Process& p) {
  for (const auto& r : p.rlimits) {
    rlimit l{static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
    if (::setrlimit(r.resource, &l) < 0) return from_errno(errno, "setrlimit {}", r.type);
  }
  return Status();
}

// The executable args[0] names, looked up in the process's PATH like execvp would.
Result<std::string> find_executable(const Process& p) {
  const std::string& name = p.args[0];
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) < 0) return from_errno(errno, "exec \"{}\"", name);
    return name;
  }
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : p.env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find(':', i);
    if (j == std::string::npos) j = path.size();
    std::string dir = path.substr(i, j - i);
    std::string full = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(full.c_str(), X_OK) == 0)
      return full;
    i = j + 1;
  }
  return not_found("exec \"{}\": executable file not found in $PATH", name);
}

Status capabilities_and_user(const InitConfig& c) {
  const Process& p = *c.process;
  // 1. The bounding set, while we still have CAP_SETPCAP.
  if (p.capabilities) {
    std::set<int> keep;
    for (const auto& n : p.capabilities->bounding) keep.insert(*capability_number(n));
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
      if (!keep.count(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
        return from_errno(errno, "drop capability {} from the bounding set", cap);
    }
  }
  // 2. Identity, keeping the permitted set across the uid change.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return from_errno(errno, "PR_SET_KEEPCAPS");
  std::vector<gid_t> groups(p.user.additional_gids.begin(), p.user.additional_gids.end());
  bool userns = c.spec->linux.find("user") != nullptr;
  if (::setgroups(groups.size(), groups.data()) < 0 && !(userns && errno == EPERM))
    return from_errno(errno, "setgroups");
  if (::setresgid(p.user.gid, p.user.gid, p.user.gid) < 0)
    return from_errno(errno, "setgid {}", p.user.gid);
  if (::setresuid(p.user.uid, p.user.uid, p.user.uid) < 0)
    return from_errno(errno, "setuid {}", p.user.uid);
  ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  // 3. The effective, permitted and inheritable sets, then ambient.
  if (p.capabilities) {
    cap_t caps = ::cap_init();
    auto set = [&](const std::vector<std::string>& names, cap_flag_t flag) {
      std::vector<cap_value_t> values;
      for (const auto& n : names) values.push_back(*capability_number(n));
      if (!values.empty())
        ::cap_set_flag(caps, flag, static_cast<int>(values.size()), values.data(), CAP_SET);
    };
    set(p.capabilities->effective, CAP_EFFECTIVE);
    set(p.capabilities->permitted, CAP_PERMITTED);
    set(p.capabilities->inheritable, CAP_INHERITABLE);
    int rc = ::cap_set_proc(caps);
    int err = errno;
    ::cap_free(caps);
    if (rc < 0) return from_errno(err, "set capabilities");
    for (const auto& n : p.capabilities->ambient) {
      int cap = *capability_number(n);
      // Ambient needs the cap in permitted and inheritable; skip silently otherwise, like runc.
      ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    }
  }
  return Status();
}

}  // namespace

bool sync_send(int fd, std::string_view msg) {
  if (fd < 0) return false;
  return ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(msg.size());
}

std::string sync_recv(int fd) {
  for (;;) {
    // A SEQPACKET message whole, whatever its size (a state document with annotations).
    char probe;
    ssize_t size = ::recv(fd, &probe, 1, MSG_PEEK | MSG_TRUNC);
    if (size < 0 && errno == EINTR) continue;
    if (size <= 0) return "";
    std::string buf(static_cast<std::size_t>(size), '\0');
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }
}

Result<int> open_in_root(int root_fd, const std::string& path, bool create, bool as_dir) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") parts.push_back(part);
    i = j + 1;
  }
  if (parts.empty()) {
    int fd = ::dup(root_fd);
    if (fd < 0) return from_errno(errno, "dup");
    return fd;
  }
  // Each prefix is resolved from the root with RESOLVE_IN_ROOT (symlinks, "..", absolute links
  // all stay inside); a missing component is created in its resolved parent.
  std::string prefix;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    std::string parent = prefix.empty() ? "." : prefix;
    prefix += (prefix.empty() ? "" : "/") + parts[k];
    bool last = k + 1 == parts.size();
    long fd = core::open_in_root(root_fd, prefix, O_PATH | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      long dir = core::open_in_root(root_fd, parent, O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) return from_errno(errno, "resolve {} in the rootfs", parent);
      int rc = 0;
      if (!last || as_dir) {
        rc = ::mkdirat(static_cast<int>(dir), parts[k].c_str(), 0755);
      } else {
        int f = ::openat(static_cast<int>(dir), parts[k].c_str(),
                         O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (f >= 0) ::close(f);
        rc = f < 0 ? -1 : 0;
      }
      int err = errno;
      ::close(static_cast<int>(dir));
      if (rc < 0 && err != EEXIST) return from_errno(err, "create {} in the rootfs", prefix);
      fd = core::open_in_root(root_fd, prefix, O_PATH | O_CLOEXEC);
    }
    if (fd < 0) return from_errno(errno, "resolve {} in the rootfs", prefix);
    if (last) return static_cast<int>(fd);
    ::close(static_cast<int>(fd));
  }
  return internal_error("unreachable");
}

// The caller's chosen stdio (a shim's pipes) becomes 0, 1, 2. Moved above 2 first, so a
// source fd that is itself 0..2 is not overwritten before it is used.
static void set_stdio(const InitConfig& c) {
  int moved[3];
  for (int i = 0; i < 3; ++i)
    moved[i] = c.stdio[i] < 0 ? -1 : ::fcntl(c.stdio[i], F_DUPFD_CLOEXEC, 3);
  for (int i = 0; i < 3; ++i) {
    if (moved[i] < 0) continue;
    ::dup2(moved[i], i);
    ::close(moved[i]);
  }
}

// Every descriptor the caller had (a shim's sockets and directories, a daemon's listeners) is
// closed as soon as the process starts, but for those the set-up still needs and the preserved
// ones: none of them can be reached through /proc/self/fd (CVE-2024-21626) while the init works.
static void close_range_(unsigned lo, unsigned hi, unsigned flags) {
  if (lo > hi) return;
  if (::syscall(SYS_close_range, lo, hi, flags) == 0) return;
  for (unsigned fd = lo; fd <= hi && fd < 65536; ++fd) {  // kernels before 5.11
    if (flags) {
      int f = ::fcntl(static_cast<int>(fd), F_GETFD);
      if (f >= 0) ::fcntl(static_cast<int>(fd), F_SETFD, f | FD_CLOEXEC);
    } else {
      ::close(static_cast<int>(fd));
    }
  }
}

static void close_inherited_fds(const InitConfig& c) {
  std::vector<int> keep = {c.sync_fd, c.fifo_fd, c.console_fd};
  for (const auto& [fd, type] : c.join) keep.push_back(fd);
  std::sort(keep.begin(), keep.end());
  unsigned lo = 3 + static_cast<unsigned>(std::max(c.preserve_fds, 0));
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < lo) continue;
    close_range_(lo, static_cast<unsigned>(fd) - 1, 0);
    lo = static_cast<unsigned>(fd) + 1;
  }
  close_range_(lo, ~0U, 0);
}

// What is still open above stdio when the process execs closes there, except the preserved fds,
// which lose close-on-exec.
static void mark_fds_cloexec(int preserve) {
  constexpr unsigned kCloseRangeCloexec = 1U << 2;
  for (int fd = 3; fd < 3 + preserve; ++fd) {
    int f = ::fcntl(fd, F_GETFD);
    if (f >= 0) ::fcntl(fd, F_SETFD, f & ~FD_CLOEXEC);
  }
  close_range_(3 + static_cast<unsigned>(std::max(preserve, 0)), ~0U, kCloseRangeCloexec);
}

// The working directory, resolved inside the container's root: a cwd through a magic link
// (/proc/self/fd/N naming a descriptor of the runtime) or anything that would land outside the
// root is refused.
static Status enter_cwd(const std::string& cwd) {
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return from_errno(errno, "open /");
  long fd = core::open_in_root(root, cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int err = errno;
  ::close(root);
  if (fd < 0) {
    if (err == ELOOP)
      return invalid_argument("process.cwd \"{}\" goes through a /proc magic link; refused", cwd);
    return from_errno(err, "process.cwd \"{}\"", cwd);
  }
  int rc = ::fchdir(static_cast<int>(fd));
  err = errno;
  ::close(static_cast<int>(fd));
  if (rc < 0) return from_errno(err, "chdir to cwd \"{}\"", cwd);
  char buf[4096];
  if (!::getcwd(buf, sizeof buf) || buf[0] != '/')
    return invalid_argument("process.cwd \"{}\" is outside the container's root; refused", cwd);
  return Status();
}

static void reset_signals() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &sa, nullptr);  // KILL/STOP fail harmlessly
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// The LSM label the process gets at its exec: AppArmor's change_onexec ("exec <profile>" into
// attr/apparmor/exec, or attr/exec before Linux 5.1) and SELinux's exec context. Either is
// applied or the container fails; never dropped silently.
static Status set_exec_label(const char* what, const std::vector<std::string>& files,
                             const std::string& value) {
  int last = ENOENT;
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      last = errno;
      continue;
    }
    ssize_t n = ::write(fd, value.data(), value.size());
    last = errno;
    ::close(fd);
    if (n == static_cast<ssize_t>(value.size())) return Status();
  }
  return from_errno(last, "{}: set the exec label \"{}\"", what, value);
}

namespace {

// Joins the namespaces given by path (user first), becomes root of a new user namespace, then
// creates the rest.
void enter_namespaces(InitConfig& c) {
  const Spec& s = *c.spec;
  // Namespaces: join those given by path (user first), then create the rest.
  for (const auto& [fd, type] : c.join) {
    if (::setns(fd, type) < 0) fail(c, from_errno(errno, "join namespace (type {:#x})", type));
    ::close(fd);
  }
  if (!c.exec_mode && s.linux.find("user")) {  // become the new user namespace's root
    ::setresgid(0, 0, 0);
    ::setresuid(0, 0, 0);
  }
  if (c.unshare_flags && ::unshare(c.unshare_flags) < 0)
    fail(c, from_errno(errno, "unshare namespaces {:#x}", c.unshare_flags));
}

// The container's root: hostname, the mounts and /dev on the bound rootfs, the prestart,
// createRuntime and createContainer hooks, pivot_root, propagation, sysctls, masked paths.
void prepare_root(InitConfig& c) {
  const Spec& s = *c.spec;
  if (!s.hostname.empty() && ::sethostname(s.hostname.data(), s.hostname.size()) < 0)
    fail(c, from_errno(errno, "sethostname"));
  if (!s.domainname.empty() && ::setdomainname(s.domainname.data(), s.domainname.size()) < 0)
    fail(c, from_errno(errno, "setdomainname"));
  bool new_mnt = s.linux.find("mount") != nullptr;
  if (new_mnt) {
    if (::mount(nullptr, "/", nullptr, propagation_flags(s.linux.rootfs_propagation), nullptr) < 0)
      fail(c, from_errno(errno, "set the root's propagation"));
    INIT_TRY(c, make_rootfs_parent_private(c.rootfs));
    if (::mount(c.rootfs.c_str(), c.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      fail(c, from_errno(errno, "bind the rootfs {}", c.rootfs));
    int root_fd = ::open(c.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) fail(c, from_errno(errno, "open the rootfs {}", c.rootfs));
    for (std::size_t i = 0; i < s.mounts.size(); ++i) {
      Status st = do_mount(c, root_fd, s.mounts[i]);
      if (!st.ok()) fail(c, Status(st.code(), fmt::format("mounts[{}]: {}", i, st.message())));
    }
    INIT_TRY(c, setup_dev(c, root_fd));
    ::close(root_fd);
  }
  // prestart + createRuntime run in the runtime's namespaces (the parent), now.
  sync_send(c.sync_fd, "hooks");
  std::string ack = sync_recv(c.sync_fd);
  if (ack != "ok") ::_exit(1);
  INIT_TRY(c, run_hooks(s.hooks.create_container, c.state_json, "createContainer"));
  // sysctls go in before /proc/sys becomes read-only.
  if (new_mnt) {
    INIT_TRY(c, pivot(c));
    if (!s.linux.rootfs_propagation.empty() &&
        ::mount(nullptr, "/", nullptr, propagation_flags(s.linux.rootfs_propagation), nullptr) < 0)
      fail(c, from_errno(errno, "linux.rootfsPropagation \"{}\"", s.linux.rootfs_propagation));
    INIT_TRY(c, sysctls(s));
    INIT_TRY(c, mask_paths(s));
  } else {
    if (::chroot(c.rootfs.c_str()) < 0) fail(c, from_errno(errno, "chroot {}", c.rootfs));
    ::chdir("/");
    INIT_TRY(c, sysctls(s));
  }
}

// The process's console, rlimits, OOM score (exec) and whether its LSM labels can apply.
void prepare_process(InitConfig& c) {
  const Process& p = *c.process;
  if (p.terminal) INIT_TRY(c, setup_console(c));
  INIT_TRY(c, rlimits(p));
  if (p.oom_score_adj && c.exec_mode) {
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      std::string v = std::to_string(*p.oom_score_adj);
      (void)!::write(fd, v.data(), v.size());
      ::close(fd);
    }
  }
  if (!p.apparmor_profile.empty() && ::access("/sys/kernel/security/apparmor", F_OK) != 0)
    fail(c, invalid_argument("process.apparmorProfile \"{}\": AppArmor is not enabled on this host",
                             p.apparmor_profile));
  if (!p.selinux_label.empty() && ::access("/sys/fs/selinux/enforce", F_OK) != 0)
    fail(c, invalid_argument("process.selinuxLabel: SELinux is not enabled on this host"));
}

// Created: says "ready", then blocks until `start` opens exec.fifo; runs startContainer.
void wait_for_start(InitConfig& c) {
  const Spec& s = *c.spec;
  // Created: wait until `start` opens the fifo for reading.
  sync_send(c.sync_fd, "ready");
  ::close(c.sync_fd);
  c.sync_fd = -1;
  int w = ::open(fd_path(c.fifo_fd).c_str(), O_WRONLY | O_CLOEXEC);
  if (w < 0) fail(c, from_errno(errno, "open exec.fifo"));
  (void)!::write(w, "0", 1);
  ::close(w);
  ::close(c.fifo_fd);
  if (!s.hooks.start_container.empty()) {
    // startContainer runs during `start`, before the program: the container is "created".
    auto state = nlohmann::json::parse(c.state_json, nullptr, false);
    if (state.is_object()) state["status"] = "created";
    INIT_TRY(c, run_hooks(s.hooks.start_container, state.dump(), "startContainer"));
  }
}

// The last steps, in the order the kernel's rules need them: close-on-exec for everything not
// preserved, LSM exec labels, seccomp (before the capability drop unless no_new_privs),
// capabilities and ids, no_new_privs, umask, cwd, execve.
[[noreturn]] void exec_process(InitConfig& c, const std::string& exe) {
  const Spec& s = *c.spec;
  const Process& p = *c.process;
  // seccomp needs CAP_SYS_ADMIN unless no_new_privs is set: load it before dropping
  // capabilities in that case, else as late as possible.
  auto load_seccomp = [&] {
    if (!c.seccomp || !c.seccomp->has_value()) return;
    auto fd = (*c.seccomp)->load();
    if (!fd.ok()) fail(c, fd.status());
    if (*fd >= 0 && !s.linux.seccomp->listener_path.empty()) {
      INIT_TRY(c, send_seccomp_fd(s.linux.seccomp->listener_path, *fd, c.state_json));
      ::close(*fd);
    }
  };
  // Nothing of the caller's (a shim's sockets, a daemon's listeners) may reach the process: every
  // descriptor above stdio closes at exec (before seccomp, which may forbid close_range).
  mark_fds_cloexec(c.preserve_fds);
  if (!p.apparmor_profile.empty()) {
    INIT_TRY(c,
             set_exec_label("process.apparmorProfile",
                            {"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"},
                            "exec " + p.apparmor_profile));
  }
  if (!p.selinux_label.empty()) {
    INIT_TRY(c, set_exec_label("process.selinuxLabel", {"/proc/thread-self/attr/exec"},
                               p.selinux_label));
  }
  if (!p.no_new_privileges) load_seccomp();
  INIT_TRY(c, capabilities_and_user(c));
  if (p.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    fail(c, from_errno(errno, "PR_SET_NO_NEW_PRIVS"));
  if (p.user.umask) ::umask(*p.user.umask);
  INIT_TRY(c, enter_cwd(p.cwd));
  if (p.no_new_privileges) load_seccomp();

  std::vector<std::string> args = p.args, env = p.env;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::execve(exe.c_str(), argv.data(), envp.data());
  fail(c, from_errno(errno, "exec \"{}\"", exe));
}

}  // namespace

void container_main(InitConfig& c) {
  // Until it execs, this process runs the runtime's code: nothing in the container may ptrace
  // it or open its /proc files (exe, fd, mem). The exec makes it dumpable again.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  {
    // "go", and for an init the state document its hooks get ("go <json>").
    std::string go = sync_recv(c.sync_fd);
    if (go.rfind("go", 0) != 0) ::_exit(1);  // the parent gave up
    if (go.size() > 3) c.state_json = go.substr(3);
  }
  set_stdio(c);
  close_inherited_fds(c);
  reset_signals();
  enter_namespaces(c);
  if (!c.exec_mode) prepare_root(c);
  prepare_process(c);
  auto exe = find_executable(*c.process);
  if (!exe.ok()) fail(c, exe.status());
  if (!c.exec_mode) wait_for_start(c);
  exec_process(c, *exe);
}

}  // namespace berth::oci

#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "core/fd.h"

extern char** environ;

namespace berth::core {

namespace {

Status spawn_error(int err, const std::string& what) {
  return Status(err == ENOENT ? Code::kNotFound : Code::kInternal,
                fmt::format("start {}: {}", what, std::strerror(err)));
}

}  // namespace

Result<SpawnResult> run_program(const std::vector<std::string>& argv, const SpawnOptions& o) {
  if (argv.empty()) return invalid_argument("run_program: no program");
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  Fd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  Fd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) < 0) return from_errno(errno, "pipe");
  Fd err_r(err[0]), err_w(err[1]);

  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  ::posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  ::posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  if (!o.cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&fa, o.cwd.c_str());
  // Only stdio: a shim must not inherit the daemon's listening sockets (it would keep them alive
  // after the daemon dies, and a restarted daemon would find its address taken).
  ::posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  sigset_t none, all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : o.env) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  pid_t pid = -1;
  int rc = argv[0].find('/') == std::string::npos
               ? ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), envp.data())
               : ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&fa);
  ::posix_spawnattr_destroy(&attr);
  if (rc != 0) return spawn_error(rc, argv[0]);
  in_r = Fd();
  out_w = Fd();
  err_w = Fd();

  // stdin: small (an Any); written whole, then closed. A program that does not read it is fine
  // (the daemon ignores SIGPIPE: EPIPE here).
  if (!o.stdin_data.empty()) {
    (void)!::write(in_w.get(), o.stdin_data.data(), o.stdin_data.size());
  }
  in_w = Fd();

  SpawnResult res;
  auto deadline = std::chrono::steady_clock::now() + o.timeout;
  bool exited = false;
  int status = 0;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p[2] = {{out_open ? out_r.get() : -1, POLLIN, 0},
                   {err_open ? err_r.get() : -1, POLLIN, 0}};
    int n = ::poll(p, 2, exited ? 0 : static_cast<int>(std::min<std::int64_t>(left.count(), 20)));
    if (n < 0 && errno != EINTR) break;
    if (n == 0 && exited && o.stop_at_exit) break;
    char buf[8192];
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = ::read(p[i].fd, buf, sizeof buf);
      if (r > 0) {
        std::string& sink = i == 0 ? res.out : res.err;
        if (sink.size() + static_cast<std::size_t>(r) > o.max_output) {
          if (!exited) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
          }
          return Status(Code::kResourceExhausted,
                        fmt::format("{} wrote more than {} bytes to {}", argv[0], o.max_output,
                                    i == 0 ? "stdout" : "stderr"));
        }
        sink.append(buf, static_cast<std::size_t>(r));
      } else {
        (i == 0 ? out_open : err_open) = false;
      }
    }
  }
  if (!exited) {
    // Its output is closed; wait for the exit itself on a pidfd (no polling interval added to
    // every helper run: CNI runs several per container), else by polling.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    auto left = deadline - std::chrono::steady_clock::now();
    while (left.count() > 0) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1;
      if (pidfd.get() >= 0) {
        pollfd p{pidfd.get(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(ms, 1000)));
      } else {
        ::usleep(2000);
      }
      left = deadline - std::chrono::steady_clock::now();
    }
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return Status(Code::kDeadlineExceeded,
                  fmt::format("{} did not finish within {} ms", argv[0], o.timeout.count()));
  }
  res.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  return res;
}

}  // namespace berth::core

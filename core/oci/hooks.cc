#include "core/oci/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

namespace berth::oci {
namespace {

std::vector<char*> cargv(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

Status run_hook(const Hook& hook, const std::string& state_json, std::string_view kind) {
  // stdin is a socket so writing the state to a hook that exits without reading it is an
  // EPIPE for us (MSG_NOSIGNAL), not a SIGPIPE for whichever process embeds the library.
  int in[2], out[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) return from_errno(errno, "socketpair");
  if (::pipe2(out, O_CLOEXEC) < 0) {
    ::close(in[0]);
    ::close(in[1]);
    return from_errno(errno, "pipe");
  }
  std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
  std::vector<std::string> env = hook.env;
  auto argv = cargv(args);
  auto envp = cargv(env);
  pid_t pid = ::fork();
  if (pid < 0) return from_errno(errno, "fork {} hook", kind);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execve(hook.path.c_str(), argv.data(), envp.data());
    ::dprintf(2, "exec %s: %s", hook.path.c_str(), ::strerror(errno));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  // The state is small: it fits in the socket buffer, and a hook that does not read it is fine.
  (void)!::send(in[1], state_json.data(), state_json.size(), MSG_NOSIGNAL);
  ::close(in[1]);
  std::string output;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  auto deadline = hook.timeout ? std::chrono::steady_clock::now() + std::chrono::seconds(*hook.timeout)
                               : std::chrono::steady_clock::time_point::max();
  bool timed_out = false, out_open = true;
  for (;;) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
    int wait_ms = -1;
    if (hook.timeout) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<std::int64_t>(0, left.count()));
    }
    int n = ::poll(out_open ? fds : fds + 1, out_open ? 2 : 1, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP))) {
      char buf[4096];
      ssize_t r = ::read(out[0], buf, sizeof buf);
      if (r <= 0) out_open = false;
      else if (output.size() < 65536) output.append(buf, static_cast<std::size_t>(r));
    }
    if (fds[1].revents & POLLIN) break;
    if (pidfd < 0 && !out_open) break;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out[0]);
  if (pidfd >= 0) ::close(pidfd);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (output.size() > 200) output = "..." + output.substr(output.size() - 200);
  std::string said = output.empty() ? "" : ": " + output;
  if (timed_out)
    return Status(Code::kDeadlineExceeded,
                  fmt::format("{} hook {} timed out after {}s{}", kind, hook.path, *hook.timeout, said));
  if (WIFSIGNALED(status))
    return Status(Code::kFailedPrecondition,
                  fmt::format("{} hook {} killed by signal {}{}", kind, hook.path, WTERMSIG(status), said));
  if (WEXITSTATUS(status) != 0)
    return Status(Code::kFailedPrecondition,
                  fmt::format("{} hook {} exited with status {}{}", kind, hook.path, WEXITSTATUS(status), said));
  return Status();
}

Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                 std::string_view kind) {
  for (const auto& h : hooks) BERTH_RETURN_IF_ERROR(run_hook(h, state_json, kind));
  return Status();
}

}  // namespace berth::oci

#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace berth::e2e {
namespace {

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<char*> to_cargv(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_wait_status(status);
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string bin(const std::string& name) { return std::string(BERTH_BIN_DIR) + "/" + name; }

RunResult run(const std::vector<std::string>& argv_in, std::chrono::milliseconds timeout,
              const std::map<std::string, std::string>& env, const std::string& stdin_path) {
  RunResult result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) < 0 || ::pipe2(err_pipe, O_CLOEXEC) < 0) {
    result.err = "pipe failed";
    return result;
  }
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  auto cargv = to_cargv(argv);
  auto cenv = to_cargv(envs);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    ::dup2(in, 0);
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    std::fprintf(stderr, "exec %s: %s\n", cargv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[8192];
      ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(r));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = decode_wait_status(status);
  return result;
}

bool socket_accepts(const std::string& path) { return core::socket_accepts(path); }

bool wait_for_task(const std::string& id, const std::string& status,
                   const std::function<RunResult()>& tasks_ls) {
  std::regex row(id + " +[0-9]+ +" + status);
  for (int i = 0; i < 200; ++i) {
    if (std::regex_search(tasks_ls().out, row)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::unique_ptr<Daemon> Daemon::create() {
  auto d = core::TempDir::create("berth-e2e-");
  if (!d.ok()) return nullptr;
  return std::unique_ptr<Daemon>(new Daemon(std::move(d).value()));
}

Daemon::~Daemon() { stop(); }

pid_t Daemon::spawn(const DaemonOptions& options) {
  std::ostringstream cfg;
  if (options.write_paths) {
    cfg << "version = 2\nroot = \"" << root() << "\"\nstate = \"" << state() << "\"\n"
        << "plugin_dir = \"" << options.plugin_dir << "\"\n";
  }
  cfg << options.config << "\n";
  if (options.write_paths && options.config.find("[grpc]") == std::string::npos) {
    cfg << "[grpc]\n  address = \"" << address() << "\"\n";
  }
  std::ofstream(config_path()) << cfg.str();
  ++log_generation_;
  std::vector<std::string> argv = {bin("berthd"), "--config", config_path()};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  auto cargv = to_cargv(argv);
  std::string log_path = dir() + "/berthd.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    for (const auto& [k, v] : options.env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  return pid;
}

std::optional<std::string> Daemon::start(const DaemonOptions& options) {
  pid_ = spawn(options);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto code = wait_for(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      return "berthd exited with " + std::to_string(*code) + " before serving:\n" + log();
    }
    if (socket_accepts(address())) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  return "berthd did not serve within 20s:\n" + log();
}

int Daemon::start_expect_exit(const DaemonOptions& options, std::chrono::milliseconds timeout) {
  pid_ = spawn(options);
  auto code = wait_for(pid_, timeout);
  if (!code) {
    stop();
    return -1;
  }
  pid_ = -1;
  return *code;
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  auto code = wait_for(pid_, std::chrono::seconds(10));
  if (!code) {
    ::kill(pid_, SIGKILL);
    code = wait_for(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
  return code.value_or(-1);
}

std::string Daemon::log() const {
  auto text = core::read_file(dir() + "/berthd.log");
  return text.ok() ? *text : std::string();
}

RunResult Daemon::berth(const std::vector<std::string>& args, const std::string& stdin_path) const {
  std::vector<std::string> argv = {bin("berth"), "-a", address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, std::chrono::seconds(120), {}, stdin_path);
}

RunResult Daemon::ctr(const std::vector<std::string>& args, const std::string& stdin_path) const {
  std::vector<std::string> argv = {"ctr", "-a", address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, std::chrono::seconds(120), {}, stdin_path);
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_for(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

std::unique_ptr<Process> Process::start(const std::vector<std::string>& argv_in,
                                        const std::string& log_path) {
  std::vector<std::string> argv = argv_in;
  auto cargv = to_cargv(argv);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  return std::unique_ptr<Process>(new Process(pid));
}

Process::~Process() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!wait_for(pid_, std::chrono::seconds(10))) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_, std::chrono::seconds(10));
  }
}

bool Process::wait_for_socket(const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (socket_accepts(path)) return true;
    if (wait_for(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::unique_ptr<Containerd> Containerd::start(std::string* error) {
  if (::access("/usr/bin/containerd", X_OK) != 0) {
    *error = "containerd is not installed (scripts/setup.sh installs it)";
    return nullptr;
  }
  auto dir = core::TempDir::create("berth-containerd-");
  if (!dir.ok()) {
    *error = dir.status().message();
    return nullptr;
  }
  std::unique_ptr<Containerd> c(new Containerd(std::move(*dir)));
  std::string d = c->dir();
  std::ofstream(d + "/config.toml") << "version = 2\n"
                                    << "root = \"" << d << "/root\"\n"
                                    << "state = \"" << d << "/state\"\n"
                                    << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
                                    << "[grpc]\n  address = \"" << c->address() << "\"\n"
                                    << "[ttrpc]\n  address = \"" << c->address() << ".ttrpc\"\n";
  c->process_ = Process::start(
      {"/usr/bin/containerd", "--config", d + "/config.toml", "--log-level", "warn"}, d + "/log");
  if (!c->process_->wait_for_socket(c->address(), std::chrono::seconds(30))) {
    auto log = core::read_file(d + "/log");
    *error = "containerd did not come up: " + (log.ok() ? *log : std::string("(no log)"));
    return nullptr;
  }
  return c;
}

Containerd::~Containerd() { process_.reset(); }

RunResult Containerd::ctr(const std::vector<std::string>& args,
                          const std::string& stdin_path) const {
  std::vector<std::string> argv = {"ctr", "-a", address()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, std::chrono::seconds(120), {}, stdin_path);
}

}  // namespace berth::e2e

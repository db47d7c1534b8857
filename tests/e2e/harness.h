// End-to-end test harness: runs commands with a timeout and captures their output, and runs a
// private berthd (its own root, state and socket in a temp dir) that is stopped by PID and whose
// directory is removed when the test ends, whether it passed or not.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"

namespace berth::e2e {

struct RunResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs argv[0] (looked up in PATH) with the given extra environment.
RunResult run(const std::vector<std::string>& argv,
              std::chrono::milliseconds timeout = std::chrono::seconds(60),
              const std::map<std::string, std::string>& env = {},
              const std::string& stdin_path = "");

std::string bin(const std::string& name);
// Waits for child `pid` up to `timeout`; returns the exit code or nullopt if still running.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout);  // build/bin/<name>
// Both outputs, for assertion messages.
inline std::string diag(const RunResult& r) { return "stdout:\n" + r.out + "\nstderr:\n" + r.err; }

struct DaemonOptions {
  std::string config;  // TOML appended after the generated root/state/address lines
  std::string plugin_dir = BERTH_PLUGIN_DIR;
  std::vector<std::string> extra_args;
  std::map<std::string, std::string> env;  // added to berthd's environment
  bool write_paths = true;  // put root/state/[grpc] address into the config file
};

class Daemon {
 public:
  // A fresh temp dir; start() may be called again after stop() to restart on the same state.
  static std::unique_ptr<Daemon> create();
  ~Daemon();

  // Starts berthd and waits until its socket accepts connections, or it exits. Returns the
  // error text (log) when it did not come up.
  std::optional<std::string> start(const DaemonOptions& options = {});
  // Starts berthd and waits for it to exit (for startup failures). Returns its exit code.
  int start_expect_exit(const DaemonOptions& options,
                        std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGTERM, wait; SIGKILL after 10 s. Returns the exit code (-1 if not running).
  int stop();
  // SIGKILL, as a crash would; returns once the process is gone.
  void kill9();

  const std::string& dir() const { return dir_.path(); }
  std::string address() const { return dir_.path() + "/berth.sock"; }
  std::string root() const { return dir_.path() + "/root"; }
  std::string state() const { return dir_.path() + "/state"; }
  std::string config_path() const { return dir_.path() + "/config.toml"; }
  std::string log() const;
  pid_t pid() const { return pid_; }

  // berth -a <socket> args...
  RunResult berth(const std::vector<std::string>& args, const std::string& stdin_path = "") const;
  // containerd's ctr -a <socket> args...
  RunResult ctr(const std::vector<std::string>& args, const std::string& stdin_path = "") const;

 private:
  explicit Daemon(core::TempDir dir) : dir_(std::move(dir)) {}
  pid_t spawn(const DaemonOptions& options);

  core::TempDir dir_;
  pid_t pid_ = -1;
  int log_generation_ = 0;
};

bool socket_accepts(const std::string& path);

// Polls `tasks_ls` (ctr's or berth's `tasks ls` table) until task `id` shows `status` (10 s).
bool wait_for_task(const std::string& id, const std::string& status, const std::function<RunResult()>& tasks_ls);

// A helper process the test started (a proxy plugin server, ...): SIGTERM by PID on destruction,
// SIGKILL if it does not stop.
class Process {
 public:
  // Starts argv with stdout/stderr appended to log_path.
  static std::unique_ptr<Process> start(const std::vector<std::string>& argv,
                                        const std::string& log_path);
  ~Process();
  pid_t pid() const { return pid_; }
  // Waits until `path` is a socket accepting connections (or the process died).
  bool wait_for_socket(const std::string& path,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  explicit Process(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// A private containerd (Debian's, for comparing Berth with it): its own root, state and sockets in
// a temporary directory, the CRI plugin off. Stopped by PID when destroyed.
class Containerd {
 public:
  // nullptr (with *error set) when containerd is missing or does not come up.
  static std::unique_ptr<Containerd> start(std::string* error);
  ~Containerd();
  // ctr -a <socket> args...
  RunResult ctr(const std::vector<std::string>& args, const std::string& stdin_path = "") const;
  std::string address() const { return dir_.path() + "/containerd.sock"; }
  const std::string& dir() const { return dir_.path(); }

 private:
  explicit Containerd(core::TempDir dir) : dir_(std::move(dir)) {}
  core::TempDir dir_;
  std::unique_ptr<Process> process_;
};

}  // namespace berth::e2e

// Running a helper program from a multi-threaded daemon: posix_spawn (no fork of a process full of
// threads), a clean signal mask and dispositions, its own process group, stdin fed from a string,
// stdout and stderr collected, and a deadline after which it is killed.
#pragma once

#include <berth/result.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace berth::core {

struct SpawnOptions {
  std::string cwd;
  std::string stdin_data;
  std::map<std::string, std::string> env;  // added to (or replacing in) the daemon's environment
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  // Stop reading once the program exited, even if something it started still holds its stdout
  // (a shim's `start` leaves a server running).
  bool stop_at_exit = true;
  // More than this on stdout or stderr kills the program and fails (a peer's output is bounded).
  std::size_t max_output = std::size_t(64) << 20;
};

struct SpawnResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out, err;
};

// Runs argv[0] (a path, or a name looked up in PATH). Errors only when it cannot be started or
// missed the deadline; a non-zero exit is a result.
Result<SpawnResult> run_program(const std::vector<std::string>& argv, const SpawnOptions& o = {});

}  // namespace berth::core

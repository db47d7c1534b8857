// The foreground machinery of `berth run`, `tasks start|exec|attach`: FIFOs the shim copies a
// process's streams into (containerd's IO), relaying our stdio to them, a raw terminal with
// window-size changes for -t, signals forwarded to the task, and the wait for its exit.
#pragma once

#include <berth/result.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cmd/berth/client.h"

namespace berth::cli {

std::string random_hex(int bytes);

// Relays our stdio to and from a process's FIFOs.
class Attachment {
 public:
  Status open(const std::string& in, const std::string& out, const std::string& err);
  void start();
  // Waits (bounded) for the output to reach EOF: everything the process wrote is shown.
  void finish(std::chrono::milliseconds grace);
  ~Attachment();

 private:
  static Result<int> open_fifo(const std::string& path, int mode);
  static bool write_all(int fd, const char* p, std::size_t n);
  void copy_out(int fd, int to);
  int in_ = -1, out_ = -1, err_ = -1;
  std::vector<std::thread> copiers_;
  std::atomic<int> open_outputs_{0};
  std::atomic<bool> stop_{false};
};

// The FIFOs of one process (in /run/berth/fifo/<random>/), attached to our stdio; the directory
// goes with the object.
class Fifos {
 public:
  static Result<std::unique_ptr<Fifos>> attach(const std::string& id, bool tty, Attachment& io);
  ~Fifos();
  std::string dir, in, out, err;

 private:
  Fifos() = default;
};

struct Exited {
  std::uint32_t status = 0;
};

// Runs a created process in the foreground: relays IO, forwards signals (resizes with -t), waits.
// `start` starts it (and returns its pid) once the relay is in place.
Result<Exited> foreground(Client& c, const std::string& id, const std::string& exec_id, bool tty,
                          Attachment& io, const std::function<Result<std::uint32_t>()>& start);

}  // namespace berth::cli

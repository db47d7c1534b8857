// A container process's standard streams, as the client asked for them (containerd's cio):
//   stdout/stderr  "/path" or "fifo:///path"  a FIFO the client reads; the shim copies into it
//                  "file:///path"             appended to the file (the process writes it directly)
//                  "binary:///path?k=v&..."   a logging program: fd 3 = stdout, fd 4 = stderr,
//                                             fd 5 = a pipe it closes once ready
//                  ""                         /dev/null
//   stdin          a FIFO the client writes; copied into a pipe until the client closes it or
//                  calls CloseIO
//   terminal       the pty master carries stdout and stdin; stderr is unused
// Output FIFOs are opened read-write, so opening never blocks and writing never fails for want of
// a reader: output waits in the FIFO (then in the pipe) until someone reads.
#pragma once

#include <berth/result.h>

#include <functional>
#include <memory>
#include <string>

#include "core/asio.h"

namespace berth::shim {

struct IoConfig {
  std::string stdin, stdout, stderr;
  bool terminal = false;
  std::string container_id, ns;  // for binary:// loggers
};

class Copier;

class ProcessIO {
 public:
  static Result<std::unique_ptr<ProcessIO>> open(boost::asio::io_context& io, const IoConfig& c);
  ~ProcessIO();

  // The fds the process gets as 0, 1, 2 (-1 with a terminal: the pty replaces them).
  const int* child_fds() const { return child_; }
  // After the process is created: drops our copies of its ends and starts copying. `console` is
  // the pty master (terminal only; owned from now on).
  void start(int console);
  // Ends stdin: what the client already wrote is delivered, then the process reads EOF.
  void close_stdin();
  // `done` runs once stdout and stderr reached EOF (at once when nothing is copied).
  void on_output_done(std::function<void()> done);
  Status resize(unsigned width, unsigned height);

 private:
  explicit ProcessIO(boost::asio::io_context& io) : io_(io) {}
  void output_finished();

  boost::asio::io_context& io_;
  int child_[3] = {-1, -1, -1};
  int stdin_fifo_ = -1, stdin_pipe_ = -1;  // stdin: ours until start()
  int out_src_[2] = {-1, -1}, out_dst_[2] = {-1, -1};
  int console_ = -1;
  std::shared_ptr<Copier> stdin_copy_;
  std::vector<std::shared_ptr<Copier>> out_copies_;
  int outputs_open_ = 0;
  std::function<void()> output_done_;
};

}  // namespace berth::shim

// Relays every shim's `log` FIFO into the daemon's log, line by line, on one thread.
#pragma once

#include <string>
#include <thread>

#include "core/asio.h"

namespace berth::plugins::runtime_v2 {

class LogRelay {
 public:
  LogRelay();
  ~LogRelay();
  // Takes the read end (opened before the shim starts, so its write-open does not block).
  void add(int fd, std::string ns, std::string id);

 private:
  struct Stream {
    Stream(boost::asio::io_context& io, int fd, std::string n, std::string i)
        : sd(io, fd), ns(std::move(n)), id(std::move(i)) {}
    boost::asio::posix::stream_descriptor sd;
    std::string ns, id;
    boost::asio::streambuf buf;
  };
  static void read(const std::shared_ptr<Stream>& s);

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace berth::plugins::runtime_v2

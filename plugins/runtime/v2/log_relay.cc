#include "plugins/runtime/v2/log_relay.h"

#include "core/log.h"

namespace berth::plugins::runtime_v2 {

namespace asio = boost::asio;

LogRelay::LogRelay() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}

LogRelay::~LogRelay() {
  guard_.reset();
  io_.stop();
  thread_.join();
}

void LogRelay::add(int fd, std::string ns, std::string id) {
  asio::post(io_, [this, fd, ns = std::move(ns), id = std::move(id)] {
    auto s = std::make_shared<Stream>(io_, fd, ns, id);
    s->sd.non_blocking(true);
    // Until the shim opens its end a read says EOF; epoll says readable only once it did.
    s->sd.async_wait(asio::posix::descriptor_base::wait_read,
                     [s](const boost::system::error_code& ec) {
                       if (!ec) read(s);
                     });
  });
}

void LogRelay::read(const std::shared_ptr<Stream>& s) {
  asio::async_read_until(
      s->sd, s->buf, '\n', [s](const boost::system::error_code& ec, std::size_t n) {
        if (n > 0) {
          std::string line(asio::buffers_begin(s->buf.data()),
                           asio::buffers_begin(s->buf.data()) + static_cast<std::ptrdiff_t>(n));
          s->buf.consume(n);
          while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
          if (!line.empty())
            log::info("shim", {{"namespace", s->ns}, {"id", s->id}, {"msg", line}});
        }
        if (!ec) read(s);
      });
}

}  // namespace berth::plugins::runtime_v2

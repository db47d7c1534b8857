// The shim's event publisher: every task event is written to the bundle it concerns
// (<bundle>/events/<sequence>, a serialized ForwardRequest) before it is queued, and the file is
// removed only when the daemon acknowledged it (containerd.services.events.ttrpc.v1.Events/
// Forward on $TTRPC_ADDRESS). A daemon that is down or restarting gets the queue, in order, when
// it is back; a shim that dies leaves its unsent events in the bundle for the daemon to publish.
//
// Runs on the shim's single io_context thread (no threads: the shim forks containers).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.h"

namespace google::protobuf {
class Message;
}

namespace berth::shim {

class Publisher {
 public:
  Publisher(boost::asio::io_context& io, std::string ttrpc_address);
  ~Publisher();

  // Persists the event under <bundle>/events and queues it. `ns` is the container's namespace.
  void publish(const std::string& bundle, const std::string& container_id, const std::string& ns,
               std::string_view topic, const google::protobuf::Message& event);
  // Calls `done` once no event of `container_id` is queued, or after `timeout`.
  void when_flushed(const std::string& container_id, std::chrono::milliseconds timeout,
                    std::function<void()> done);
  // Calls `done` once the queue is empty, or after `timeout`.
  void when_flushed_all(std::chrono::milliseconds timeout, std::function<void()> done) {
    when_flushed("", timeout, std::move(done));
  }

 private:
  struct Item {
    std::string file, container, request;  // request: the serialized ForwardRequest
  };
  struct Waiter {
    std::string container;  // empty: every container
    std::function<void()> done;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  void pump();
  void send_front();
  void finished(bool delivered, const std::string& why);
  void retry_later();
  void notify_waiters();

  boost::asio::io_context& io_;
  std::string address_;
  std::deque<Item> queue_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::unique_ptr<boost::asio::local::stream_protocol::socket> sock_;
  boost::asio::steady_timer retry_timer_, call_timer_;
  bool busy_ = false;
  int failures_ = 0;
  std::uint32_t stream_ = 1;
  std::uint64_t seq_;
  std::string wbuf_, rbuf_;
  unsigned char hbuf_[10];
};

}  // namespace berth::shim

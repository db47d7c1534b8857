#include "shim/publisher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "berth/ttrpc/ttrpc.pb.h"
#include "core/fs.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"
#include "core/ttrpc/ttrpc.h"

namespace berth::shim {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;
namespace evpb = ::containerd::services::events::ttrpc::v1;

namespace {
constexpr auto kCallTimeout = std::chrono::seconds(10);
constexpr const char* kService = "containerd.services.events.ttrpc.v1.Events";

}  // namespace

Publisher::Publisher(asio::io_context& io, std::string ttrpc_address)
    : io_(io), address_(ttrpc::socket_path(ttrpc_address)), retry_timer_(io), call_timer_(io) {
  // Sequence numbers order the files of one shim; starting from the clock keeps them above those
  // of an earlier shim of the same bundle.
  seq_ = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
}

Publisher::~Publisher() = default;

void Publisher::publish(const std::string& bundle, const std::string& container_id,
                        const std::string& ns, std::string_view topic,
                        const google::protobuf::Message& event) {
  evpb::ForwardRequest req;
  auto* env = req.mutable_envelope();
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  env->mutable_timestamp()->set_seconds(nanos / 1'000'000'000);
  env->mutable_timestamp()->set_nanos(static_cast<int>(nanos % 1'000'000'000));
  env->set_namespace_(ns);
  env->set_topic(std::string(topic));
  env->mutable_event()->set_type_url(event.GetDescriptor()->full_name());
  event.SerializeToString(env->mutable_event()->mutable_value());
  Item item;
  item.container = container_id;
  req.SerializeToString(&item.request);
  std::string dir = bundle + "/events";
  ::mkdir(dir.c_str(), 0700);
  item.file = fmt::format("{}/{:020}", dir, seq_++);
  Status st = core::write_file_atomic(item.file, item.request, 0600, core::Durability::kVolatile);
  if (!st.ok()) {
    // Still sent from memory; only the crash-safety is lost.
    std::fprintf(stderr, "berth-shim: keep event %s: %s\n", std::string(topic).c_str(),
                 st.message().c_str());
    item.file.clear();
  }
  queue_.push_back(std::move(item));
  pump();
}

void Publisher::when_flushed(const std::string& container_id, std::chrono::milliseconds timeout,
                             std::function<void()> done) {
  auto w = std::make_shared<Waiter>();
  w->container = container_id;
  w->done = std::move(done);
  w->timer = std::make_shared<asio::steady_timer>(io_, timeout);
  waiters_.push_back(w);
  std::weak_ptr<Waiter> weak = w;
  w->timer->async_wait([this, weak](const boost::system::error_code& ec) {
    if (ec) return;
    auto w = weak.lock();
    if (!w || !w->done) return;
    auto done = std::move(w->done);
    w->done = nullptr;
    std::erase(waiters_, w);
    done();
  });
  notify_waiters();
}

void Publisher::notify_waiters() {
  auto waiting = waiters_;
  for (auto& w : waiting) {
    bool queued = false;
    for (const auto& item : queue_)
      queued = queued || w->container.empty() || item.container == w->container;
    if (queued || !w->done) continue;
    auto done = std::move(w->done);
    w->done = nullptr;
    w->timer->cancel();
    std::erase(waiters_, w);
    done();
  }
}

void Publisher::pump() {
  if (busy_ || queue_.empty()) return;
  busy_ = true;
  if (address_.empty()) {
    finished(false, "no TTRPC_ADDRESS to publish to");
    return;
  }
  if (sock_ && sock_->is_open()) {
    send_front();
    return;
  }
  sock_ = std::make_unique<stream_protocol::socket>(io_);
  sock_->async_connect(stream_protocol::endpoint(address_),
                       [this](const boost::system::error_code& ec) {
                         if (ec) {
                           retry_later();
                           return;
                         }
                         send_front();
                       });
}

void Publisher::send_front() {
  ::ttrpc::Request req;
  req.set_service(kService);
  req.set_method("Forward");
  req.set_payload(queue_.front().request);
  std::string body = req.SerializeAsString();
  stream_ += 2;
  ttrpc::Header h;
  h.length = static_cast<std::uint32_t>(body.size());
  h.stream = stream_;
  h.type = ttrpc::kTypeRequest;
  wbuf_ = ttrpc::encode_header(h) + body;
  call_timer_.expires_after(kCallTimeout);
  call_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && sock_) {
      boost::system::error_code ignored;
      sock_->close(ignored);  // the pending read fails: retried
    }
  });
  asio::async_write(
      *sock_, asio::buffer(wbuf_), [this](const boost::system::error_code& ec, std::size_t) {
        if (ec) {
          retry_later();
          return;
        }
        asio::async_read(*sock_, asio::buffer(hbuf_, sizeof hbuf_),
                         [this](const boost::system::error_code& ec, std::size_t) {
                           if (ec) {
                             retry_later();
                             return;
                           }
                           ttrpc::Header h = ttrpc::decode_header(hbuf_);
                           if (h.length > ttrpc::kMaxMessage || h.type != ttrpc::kTypeResponse) {
                             retry_later();
                             return;
                           }
                           rbuf_.assign(h.length, '\0');
                           asio::async_read(
                               *sock_, asio::buffer(rbuf_),
                               [this](const boost::system::error_code& ec, std::size_t) {
                                 if (ec) {
                                   retry_later();
                                   return;
                                 }
                                 call_timer_.cancel();
                                 ::ttrpc::Response resp;
                                 if (!resp.ParseFromString(rbuf_)) {
                                   retry_later();
                                   return;
                                 }
                                 int code = resp.status().code();
                                 // Unavailable/deadline: the daemon is going down or busy, try
                                 // again. Anything else is the daemon's final word on this envelope
                                 // (it was published, or it can never be).
                                 if (code == static_cast<int>(Code::kUnavailable) ||
                                     code == static_cast<int>(Code::kDeadlineExceeded)) {
                                   retry_later();
                                   return;
                                 }
                                 finished(code == 0, resp.status().message());
                               });
                         });
      });
}

void Publisher::finished(bool delivered, const std::string& why) {
  Item item = std::move(queue_.front());
  queue_.pop_front();
  if (!delivered) std::fprintf(stderr, "berth-shim: event dropped: %s\n", why.c_str());
  if (!item.file.empty()) ::unlink(item.file.c_str());
  failures_ = 0;
  busy_ = false;
  notify_waiters();
  pump();
}

void Publisher::retry_later() {
  call_timer_.cancel();
  if (sock_) {
    boost::system::error_code ignored;
    sock_->close(ignored);
  }
  sock_.reset();
  // 100 ms, doubling, at most 5 s between attempts; never dropped for being undeliverable.
  auto wait =
      std::chrono::milliseconds(std::min<std::int64_t>(5000, 100LL << std::min(failures_, 6)));
  ++failures_;
  retry_timer_.expires_after(wait);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    busy_ = false;
    pump();
  });
}

}  // namespace berth::shim

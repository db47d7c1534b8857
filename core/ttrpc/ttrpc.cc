#include "core/ttrpc/ttrpc.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>

#include "berth/ttrpc/ttrpc.pb.h"

namespace berth::ttrpc {
namespace {

namespace asio = boost::asio;
using stream_protocol = asio::local::stream_protocol;

std::string frame(std::uint32_t stream, std::uint8_t type, const std::string& body) {
  return encode_header({static_cast<std::uint32_t>(body.size()), stream, type, 0}) + body;
}

std::string response_bytes(const Result<std::string>& r) {
  ::ttrpc::Response resp;
  if (r.ok()) {
    resp.set_payload(*r);
    resp.mutable_status()->set_code(0);
  } else {
    resp.mutable_status()->set_code(static_cast<int>(r.status().code()));
    resp.mutable_status()->set_message(r.status().message());
  }
  return resp.SerializeAsString();
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, char* buf, std::size_t n) {
  std::size_t off = 0;
  while (off < n) {
    ssize_t r = ::read(fd, buf + off, n - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace

std::string encode_header(const Header& h) {
  std::string b(kHeaderSize, '\0');
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    b[at] = static_cast<char>(v >> 24);
    b[at + 1] = static_cast<char>(v >> 16);
    b[at + 2] = static_cast<char>(v >> 8);
    b[at + 3] = static_cast<char>(v);
  };
  put32(0, h.length);
  put32(4, h.stream);
  b[8] = static_cast<char>(h.type);
  b[9] = static_cast<char>(h.flags);
  return b;
}

Header decode_header(const unsigned char* b) {
  auto get32 = [&](std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
           (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
  };
  return {get32(0), get32(4), b[8], b[9]};
}

// One client connection: reads frames, hands requests to the server, writes responses in order
// of completion (a response may come from any thread; writes happen on the io thread).
class Server::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, stream_protocol::socket socket)
      : server_(server), socket_(std::move(socket)), idle_(socket_.get_executor()) {}
  void start() {
    arm_idle();
    read_header();
  }
  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
    idle_.cancel();
  }
  // Called from any thread.
  void respond(std::uint32_t stream, const Result<std::string>& r) {
    std::string bytes = frame(stream, kTypeResponse, response_bytes(r));
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), bytes = std::move(bytes)]() mutable {
                 self->queued_bytes_ += bytes.size();
                 self->queue_.push_back(std::move(bytes));
                 if (self->queue_.size() == 1) self->write_next();
               });
  }
  bool open() const { return socket_.is_open(); }

 private:
  const ServerLimits& limits() const { return server_.limits_; }
  bool over_limits() const {
    return outstanding_ >= limits().max_outstanding || queued_bytes_ >= limits().max_queued_bytes;
  }
  // The next request is read only while the peer is within its limits; else when an answer
  // has been written.
  void next_request() {
    if (over_limits()) {
      paused_ = true;
      return;
    }
    read_header();
  }
  void arm_idle() {
    if (limits().idle_timeout.count() == 0) return;
    idle_.expires_after(limits().idle_timeout);
    idle_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->open()) return;
      if (self->outstanding_ == 0) return self->close();  // idle: nothing asked, nothing owed
      self->arm_idle();
    });
  }
  void read_header() {
    asio::async_read(socket_, asio::buffer(header_),
                     [self = shared_from_this()](auto ec, std::size_t) {
                       if (ec) return self->close();
                       Header h = decode_header(self->header_.data());
                       if (h.type != kTypeRequest) return self->close();  // not a ttrpc client
                       self->arm_idle();
                       ++self->outstanding_;  // answered either way
                       if (h.length > kMaxMessage) return self->discard(h, h.length);
                       self->body_.resize(h.length);
                       self->read_body(h);
                     });
  }
  void read_body(Header h) {
    asio::async_read(socket_, asio::buffer(body_),
                     [self = shared_from_this(), h](auto ec, std::size_t) {
                       if (ec) return self->close();
                       ::ttrpc::Request req;
                       if (!req.ParseFromString(self->body_))
                         return self->close();  // malformed: drop the client
                       Call call;
                       call.service = req.service();
                       call.method = req.method();
                       call.payload = req.payload();
                       for (const auto& kv : req.metadata())
                         call.metadata.emplace(kv.key(), kv.value());
                       if (req.timeout_nano() > 0) {
                         // A timeout the clock cannot hold (a hostile peer's INT64_MAX) is no
                         // deadline.
                         auto now = std::chrono::steady_clock::now();
                         auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::time_point::max() - now);
                         if (req.timeout_nano() < room.count())
                           call.deadline = now + std::chrono::nanoseconds(req.timeout_nano());
                       }
                       self->body_.clear();
                       self->body_.shrink_to_fit();
                       self->server_.dispatch(self, h.stream, std::move(call));
                       self->next_request();
                     });
  }
  // An oversized message is read and thrown away, then refused; the connection stays usable.
  void discard(Header h, std::uint32_t left) {
    if (left == 0) {
      respond(h.stream,
              Status(Code::kResourceExhausted,
                     fmt::format("message length {} exceeds the maximum message size of {}",
                                 h.length, kMaxMessage)));
      return next_request();
    }
    body_.resize(std::min<std::uint32_t>(left, 64 << 10));
    asio::async_read(socket_, asio::buffer(body_),
                     [self = shared_from_this(), h, left](auto ec, std::size_t n) {
                       if (ec) return self->close();
                       self->discard(h, left - static_cast<std::uint32_t>(n));
                     });
  }
  void write_next() {
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](auto ec, std::size_t) {
                        self->queued_bytes_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                        if (self->outstanding_ > 0) --self->outstanding_;
                        if (ec) return self->close();
                        if (!self->queue_.empty()) self->write_next();
                        if (self->paused_ && !self->over_limits() && self->open()) {
                          self->paused_ = false;
                          self->read_header();
                        }
                      });
  }

  Server& server_;
  stream_protocol::socket socket_;
  asio::steady_timer idle_;
  std::array<unsigned char, kHeaderSize> header_{};
  std::string body_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::size_t outstanding_ = 0;  // requests read and not yet answered on the wire
  bool paused_ = false;
};

Server::Server(asio::io_context& io, ServerLimits limits) : io_(io), limits_(limits) {}
Server::~Server() { close(); }

void Server::handle(const std::string& service, const std::string& method, Handler h) {
  handlers_[service + "/" + method] = std::move(h);
}

void Server::handle_sync(const std::string& service, const std::string& method, SyncHandler h) {
  handle(service, method, [h = std::move(h)](Call call, Reply reply) { reply(h(call)); });
}

Status Server::listen(const std::string& path) {
  ::unlink(path.c_str());
  boost::system::error_code ec;
  auto acc = std::make_unique<stream_protocol::acceptor>(io_);
  acc->open(stream_protocol(), ec);
  if (!ec) acc->bind(stream_protocol::endpoint(path), ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Status(Code::kUnavailable, fmt::format("ttrpc: listen on {}: {}", path, ec.message()));
  acceptor_ = std::move(acc);
  accept();
  return Status();
}

Status Server::adopt(int fd) {
  boost::system::error_code ec;
  auto acc = std::make_unique<stream_protocol::acceptor>(io_);
  acc->assign(stream_protocol(), fd, ec);
  if (ec)
    return Status(Code::kInvalidArgument,
                  fmt::format("ttrpc: adopt socket fd {}: {}", fd, ec.message()));
  acceptor_ = std::move(acc);
  accept();
  return Status();
}

void Server::accept() {
  acceptor_->async_accept([this](boost::system::error_code ec, stream_protocol::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) return;
      return accept();
    }
    std::erase_if(conns_, [](const auto& w) {
      auto c = w.lock();
      return !c || !c->open();
    });
    if (limits_.max_connections && conns_.size() >= limits_.max_connections) {
      boost::system::error_code ignored;
      s.close(ignored);  // over the cap: refused as it comes
      return accept();
    }
    auto conn = std::make_shared<Connection>(*this, std::move(s));
    conns_.push_back(conn);
    conn->start();
    accept();
  });
}

void Server::dispatch(const std::shared_ptr<Connection>& conn, std::uint32_t stream, Call call) {
  auto it = handlers_.find(call.service + "/" + call.method);
  if (it == handlers_.end()) {
    conn->respond(
        stream, Status(Code::kUnimplemented,
                       fmt::format("ttrpc: {}/{} is not implemented", call.service, call.method)));
    return;
  }
  std::weak_ptr<Connection> weak = conn;
  auto once = std::make_shared<std::once_flag>();
  Reply reply = [weak, stream, once](Result<std::string> r) {
    std::call_once(*once, [&] {
      if (auto c = weak.lock()) c->respond(stream, r);  // a client that left gets nothing
    });
  };
  try {
    it->second(std::move(call), reply);
  } catch (const std::exception& e) {
    reply(Status(Code::kInternal, fmt::format("ttrpc handler threw: {}", e.what())));
  }
}

void Server::close() {
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
  }
  for (auto& w : conns_) {
    if (auto c = w.lock()) c->close();
  }
  conns_.clear();
}

std::size_t Server::connections() const {
  std::size_t n = 0;
  for (const auto& w : conns_) {
    if (auto c = w.lock(); c && c->open()) ++n;
  }
  return n;
}

Result<std::unique_ptr<Client>> Client::connect(const std::string& path,
                                                std::function<void()> on_close) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return from_errno(errno, "ttrpc: socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return invalid_argument("ttrpc: socket path \"{}\" is too long", path);
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    ::close(fd);
    return Status(Code::kUnavailable,
                  fmt::format("ttrpc: connect to {}: {}", path, std::strerror(err)));
  }
  return std::unique_ptr<Client>(new Client(fd, std::move(on_close)));
}

Client::Client(int fd, std::function<void()> on_close) : on_close_(std::move(on_close)), fd_(fd) {
  reader_ = std::thread([this] { read_loop(); });
}

Client::~Client() {
  destroying_ = true;
  ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  ::close(fd_);
}

void Client::close() {
  destroying_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

bool Client::connected() const {
  std::lock_guard lock(mu_);
  return !closed_;
}

void Client::read_loop() {
  for (;;) {
    unsigned char hb[kHeaderSize];
    if (!read_all(fd_, reinterpret_cast<char*>(hb), kHeaderSize)) break;
    Header h = decode_header(hb);
    if (h.type != kTypeResponse || h.length > kMaxMessage) break;
    std::string body(h.length, '\0');
    if (!read_all(fd_, body.data(), body.size())) break;
    ::ttrpc::Response resp;
    Result<std::string> result = Status(Code::kInternal, "ttrpc: unreadable response");
    if (resp.ParseFromString(body)) {
      if (resp.status().code() != 0) {
        result = Status(static_cast<Code>(resp.status().code()), resp.status().message());
      } else {
        result = resp.payload();
      }
    }
    std::lock_guard lock(mu_);
    auto it = pending_.find(h.stream);
    if (it != pending_.end()) {
      it->second->result = std::move(result);
      it->second->done = true;
      pending_.erase(it);
      cv_.notify_all();
    }
  }
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (auto& [id, p] : pending_) {
      p->result = Status(Code::kUnavailable, "ttrpc: connection closed");
      p->done = true;
    }
    pending_.clear();
    cv_.notify_all();
  }
  if (on_close_ && !destroying_) on_close_();
}

Result<std::string> Client::call(const std::string& service, const std::string& method,
                                 const std::string& payload, const Metadata& md,
                                 std::chrono::milliseconds timeout) {
  ::ttrpc::Request req;
  req.set_service(service);
  req.set_method(method);
  req.set_payload(payload);
  if (timeout.count() > 0)
    req.set_timeout_nano(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  for (const auto& [k, v] : md) {
    auto* kv = req.add_metadata();
    kv->set_key(k);
    kv->set_value(v);
  }
  std::string body = req.SerializeAsString();
  if (body.size() > kMaxMessage)
    return Status(Code::kResourceExhausted,
                  fmt::format("ttrpc: request of {} bytes is over the limit", body.size()));
  auto pending = std::make_shared<Pending>();
  std::uint32_t stream;
  {
    std::lock_guard lock(mu_);
    if (closed_) return Status(Code::kUnavailable, "ttrpc: connection closed");
    stream = next_stream_;
    next_stream_ += 2;
    pending_[stream] = pending;
  }
  {
    std::lock_guard lock(write_mu_);
    if (!write_all(fd_, frame(stream, kTypeRequest, body))) {
      std::lock_guard l(mu_);
      pending_.erase(stream);
      return Status(Code::kUnavailable, "ttrpc: connection closed while sending");
    }
  }
  std::unique_lock lock(mu_);
  auto ready = [&] { return pending->done; };
  if (timeout.count() > 0) {
    if (!cv_.wait_for(lock, timeout, ready)) {
      pending_.erase(stream);
      return Status(Code::kDeadlineExceeded,
                    fmt::format("ttrpc: {}/{} timed out", service, method));
    }
  } else {
    cv_.wait(lock, ready);
  }
  return std::move(pending->result);
}

Status Client::call(const std::string& service, const std::string& method,
                    const google::protobuf::MessageLite& req, google::protobuf::MessageLite* resp,
                    const Metadata& md, std::chrono::milliseconds timeout) {
  BERTH_TRY(auto bytes, call(service, method, req.SerializeAsString(), md, timeout));
  if (resp && !resp->ParseFromString(bytes))
    return Status(Code::kInternal,
                  fmt::format("ttrpc: {}/{}: unreadable response", service, method));
  return Status();
}

}  // namespace berth::ttrpc

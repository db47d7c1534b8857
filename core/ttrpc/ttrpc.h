// ttrpc, containerd's RPC for shims: protobuf Request/Response messages in frames over a unix
// socket. A frame is a 10-byte header — length (u32, big endian), stream id (u32, BE), type
// (1 request, 2 response), flags — then the message, at most 4 MiB. Clients use odd stream ids.
//
// Server: Boost.Asio on one io_context; a handler gets the call and a Reply it may invoke later
// from any thread (a Wait that returns when a process exits does not block the others). A frame
// that is too long is skipped and answered ResourceExhausted; a frame of an unknown type or a
// request that does not parse closes that connection; the server goes on. Per-peer bounds are
// in ServerLimits; a timeout_nano too large to add to the clock means no deadline.
// Client: blocking calls, safe from many threads, multiplexed on one connection.
#pragma once

#include <berth/result.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace google::protobuf {
class MessageLite;
}

namespace berth::ttrpc {

inline constexpr std::size_t kHeaderSize = 10;
inline constexpr std::uint32_t kMaxMessage = 4 << 20;
inline constexpr std::uint8_t kTypeRequest = 1;
inline constexpr std::uint8_t kTypeResponse = 2;

struct Header {
  std::uint32_t length = 0;
  std::uint32_t stream = 0;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
};
std::string encode_header(const Header& h);
Header decode_header(const unsigned char* b);

// Metadata as ttrpc carries it (a key may repeat). containerd puts the namespace under
// "containerd-namespace-ttrpc".
using Metadata = std::multimap<std::string, std::string>;
inline constexpr const char* kNamespaceKey = "containerd-namespace-ttrpc";

// The socket path of an address as shims print and daemons pass it ("unix:///run/x.sock\n").
inline std::string socket_path(std::string_view address) {
  if (address.rfind("unix://", 0) == 0) address.remove_prefix(7);
  while (!address.empty() && (address.back() == '\n' || address.back() == ' '))
    address.remove_suffix(1);
  return std::string(address);
}

struct Call {
  std::string service, method, payload;
  Metadata metadata;
  std::optional<std::chrono::steady_clock::time_point> deadline;
};
// Answers a call once, from any thread: the response payload, or an error status.
using Reply = std::function<void(Result<std::string>)>;
using Handler = std::function<void(Call call, Reply reply)>;
using SyncHandler = std::function<Result<std::string>(const Call& call)>;

// What one peer may hold of a server. Reading a connection pauses while it has max_outstanding
// requests being handled or answered-but-unwritten, or max_queued_bytes of answers it has not
// read: a client that pipelines without reading stops being read, and cannot grow our memory.
// Connections beyond max_connections are closed as they come; a connection with nothing
// outstanding and no request for idle_timeout is closed (0: never).
struct ServerLimits {
  std::size_t max_connections = 1024;
  std::size_t max_outstanding = 128;
  std::size_t max_queued_bytes = 8 << 20;
  std::chrono::seconds idle_timeout{0};
};

class Server {
 public:
  explicit Server(boost::asio::io_context& io, ServerLimits limits = {});
  ~Server();
  void handle(const std::string& service, const std::string& method, Handler h);
  // Runs on the io thread: for quick methods only.
  void handle_sync(const std::string& service, const std::string& method, SyncHandler h);
  // Listens on a new unix socket at path (a stale socket file is replaced).
  Status listen(const std::string& path);
  // Serves on an already listening socket (a shim handed its socket by its parent).
  Status adopt(int listening_fd);
  // Stops accepting and closes every connection.
  void close();
  std::size_t connections() const;

 private:
  class Connection;
  void accept();
  void dispatch(const std::shared_ptr<Connection>& conn, std::uint32_t stream, Call call);
  boost::asio::io_context& io_;
  ServerLimits limits_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  std::map<std::string, Handler> handlers_;
  std::vector<std::weak_ptr<Connection>> conns_;
  friend class Connection;
};

class Client {
 public:
  // `on_close` runs (on the reader thread) when the server closes the connection or dies; not
  // when this client is destroyed.
  static Result<std::unique_ptr<Client>> connect(const std::string& path,
                                                 std::function<void()> on_close = {});
  ~Client();
  // timeout 0: none. Errors: the server's status, or Unavailable when the connection is gone.
  Result<std::string> call(const std::string& service, const std::string& method,
                           const std::string& payload, const Metadata& md = {},
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  Status call(const std::string& service, const std::string& method,
              const google::protobuf::MessageLite& req, google::protobuf::MessageLite* resp,
              const Metadata& md = {},
              std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  bool connected() const;
  // Ends the connection now: calls in flight fail Unavailable; on_close does not run.
  void close();

 private:
  Client(int fd, std::function<void()> on_close);
  void read_loop();
  std::function<void()> on_close_;
  std::atomic<bool> destroying_{false};
  struct Pending {
    bool done = false;
    Result<std::string> result = Status(Code::kUnavailable, "pending");
  };
  int fd_;
  std::mutex write_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint32_t, std::shared_ptr<Pending>> pending_;
  std::uint32_t next_stream_ = 1;
  bool closed_ = false;
  std::thread reader_;
};

}  // namespace berth::ttrpc

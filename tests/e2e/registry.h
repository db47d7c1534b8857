// Registry fixtures for the distribution tests: a private OCI registry (Debian's docker-registry,
// CNCF distribution 2.8) on 127.0.0.1 — plain HTTP or TLS with its own CA, open or with basic auth
// or bearer-token auth (a token issuer served by busybox httpd) — and a fault-injecting proxy in
// front of it. Everything lives in a temporary directory; processes are stopped by PID.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace berth::e2e {

// A port the kernel just handed out on 127.0.0.1 (free now; the caller binds it right after).
int free_port();
bool tcp_accepts(int port);

struct RegistryOptions {
  bool tls = false;
  bool client_certs = false;  // with tls: clients must show a certificate signed by the CA
  enum class Auth { kNone, kBasic, kToken } auth = Auth::kNone;
};

class Registry {
 public:
  // Full access. With token auth, kReader may only pull.
  static constexpr const char* kUser = "tester";
  static constexpr const char* kPassword = "s3cret-pass";
  static constexpr const char* kReader = "reader";
  static constexpr const char* kReaderPassword = "reader-pass";

  // nullptr (with *error set) when a tool is missing or the registry does not come up.
  static std::unique_ptr<Registry> start(std::string* error, RegistryOptions o = {});
  ~Registry();
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  // With TLS: the CA certificate that signed the registry's (PEM).
  std::string ca_file() const { return dir_.path() + "/tls/ca.crt"; }
  // With client_certs: a client certificate and key the registry accepts (PEM).
  std::string client_cert() const { return dir_.path() + "/tls/client.crt"; }
  std::string client_key() const { return dir_.path() + "/tls/client.key"; }
  std::string user_flag() const { return std::string(kUser) + ":" + kPassword; }
  // skopeo's flags to write to (dest) or read from this registry: TLS trust and credentials.
  std::vector<std::string> skopeo_flags(bool dest) const;
  // Pushes an OCI layout tar as host()/repo:tag with skopeo (every manifest of an index;
  // `format` "v2s2" converts to Docker schema 2).
  RunResult push_oci_archive(const std::string& archive, const std::string& repo_tag,
                             const std::string& format = "") const;
  std::string log() const;

 private:
  explicit Registry(core::TempDir dir) : dir_(std::move(dir)) {}
  Status prepare(const RegistryOptions& o);

  core::TempDir dir_;
  RegistryOptions options_;
  int port_ = 0;
  int token_port_ = 0;
  std::unique_ptr<Process> process_;
  std::unique_ptr<Process> issuer_;
};

// A listening socket on 127.0.0.1 whose connections each get a thread of their own running
// `serve` (which owns the fd), for the test servers below. stop() (also on destruction) stops
// accepting and joins every thread.
class LoopbackServer {
 public:
  // false when the socket cannot be made.
  bool start(std::function<void(int fd)> serve);
  ~LoopbackServer() { stop(); }
  void stop();
  int port() const { return port_; }

 private:
  std::function<void(int)> serve_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A TCP proxy in front of a registry, one request per connection, for failure tests: it can cut
// blob downloads short, refuse every connection (a registry that died) or flip a byte of every
// blob it serves. It records each request line (with its Range header, if any).
class FaultProxy {
 public:
  static std::unique_ptr<FaultProxy> start(int upstream_port);
  ~FaultProxy();
  std::string host() const { return "127.0.0.1:" + std::to_string(server_.port()); }

  void cut_blobs_after(std::int64_t bytes) { cut_after_ = bytes; }  // 0: never
  void refuse(bool on) { refuse_ = on; }
  void corrupt_blobs(bool on) { corrupt_ = on; }
  // Blob GETs answered with a 307 to the registry itself (as registries on object storage do).
  void redirect_blobs(bool on) { redirect_ = on; }
  // Blob answers trickle: a pause of `ms` after every 64 KiB.
  void throttle(int ms) { throttle_ms_ = ms; }
  std::vector<std::string> requests() const;
  void clear_requests();

 private:
  FaultProxy() = default;
  void serve(int client);

  int upstream_port_ = 0;
  std::atomic<std::int64_t> cut_after_{0};
  std::atomic<bool> refuse_{false}, corrupt_{false}, redirect_{false}, stopping_{false};
  std::atomic<int> throttle_ms_{0};
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  LoopbackServer server_;  // last: stopped (threads joined) before the rest goes
};

// A scripted HTTP/1.1 server on 127.0.0.1, plain or TLS, for what a hostile registry can do:
// the handler answers each request (one per connection) with whatever bytes it writes: an
// endless chunked body, a trickle, a redirect to another host, a challenge for credentials.
// Every request is recorded with its headers (names in lower case).
class HostileServer {
 public:
  struct Request {
    std::string method, target;
    std::map<std::string, std::string> headers;
  };
  // write() returns false once the client has gone away.
  using Write = std::function<bool(std::string_view)>;
  using Handler = std::function<void(const Request&, const Write& write)>;
  // With cert and key (PEM): TLS.
  static std::unique_ptr<HostileServer> start(Handler handler, const std::string& cert = "",
                                              const std::string& key = "");
  ~HostileServer();
  int port() const { return server_.port(); }
  std::string host() const { return "127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<Request> requests() const;

 private:
  HostileServer() = default;
  void serve(int client);

  Handler handler_;
  void* tls_ = nullptr;  // SSL_CTX
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  LoopbackServer server_;  // last: stopped (threads joined) before the rest goes
};

}  // namespace berth::e2e

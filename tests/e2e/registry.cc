#include "tests/e2e/registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace berth::e2e {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  ::close(fd);
  return port;
}

bool tcp_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

namespace {

constexpr const char* kIssuer = "berth-test-issuer";
constexpr const char* kService = "berth-test-registry";

// The token issuer: a CGI answering Docker's token protocol with an RS256 JWT whose "access"
// grants what was asked (pull only for the reader). The registry checks the signature against
// token.crt and finds the key by "kid", the libtrust key ID of the public key.
constexpr const char* kTokenCgi = R"CGI(#!/bin/sh
. @ENV@
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
scopes=$(printf '%s\n' "$QUERY_STRING" | tr '&' '\n' | sed -n 's/^scope=//p' |
  sed 's/%3[Aa]/:/g; s/%2[Ff]/\//g; s/%2[Cc]/,/g; s/+/ /g')
access=$(printf '%s\n' $scopes | jq -R -s -c --arg u "$REMOTE_USER" '
  split("\n") | map(select(length > 0) | split(":") |
    {type: .[0], name: (.[1:-1] | join(":")),
     actions: (.[-1] | split(",") | if $u == "reader" then map(select(. == "pull")) else . end)})')
header=$(printf '{"typ":"JWT","alg":"RS256","kid":"%s"}' "$KID" | b64url)
claims=$(jq -c -n --arg u "$REMOTE_USER" --arg iss "$ISSUER" --arg aud "$SERVICE" \
  --argjson n "$now" --argjson a "$access" \
  '{iss: $iss, sub: $u, aud: $aud, exp: ($n + 3600), nbf: ($n - 60), iat: $n,
    jti: "\($u)-\($n)-\($a | length)", access: $a}' | b64url)
sig=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$KEY" | b64url)
printf 'Content-Type: application/json\r\n\r\n{"token":"%s.%s.%s","expires_in":3600}\n' \
  "$header" "$claims" "$sig"
)CGI";

Status sh(const std::string& script) {
  auto r = run({"sh", "-ec", script}, std::chrono::seconds(60));
  if (r.exit_code != 0)
    return Status(Code::kInternal, "fixture step failed: " + script + "\n" + r.err);
  return Status();
}

}  // namespace

Status Registry::prepare(const RegistryOptions& o) {
  const std::string d = dir_.path();
  std::string config =
      "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: " + d +
      "/storage\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + std::to_string(port_) +
      "\n";
  if (o.tls) {
    if (::access((d + "/tls/server.crt").c_str(), R_OK) != 0) {
      BERTH_RETURN_IF_ERROR(sh(
          "mkdir -p " + d + "/tls && cd " + d +
          "/tls && "
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
          "-subj /CN=berth-test-ca -keyout ca.key -out ca.crt 2>/dev/null && "
          "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 "
          "-keyout server.key -out server.csr 2>/dev/null && "
          "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > "
          "ext && "
          "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 "
          "-sha256 -extfile ext -out server.crt 2>/dev/null && "
          "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
          "-subj /CN=berth-test-client -keyout client.key -out client.csr 2>/dev/null && "
          "printf 'extendedKeyUsage=clientAuth\\n' > client-ext && "
          "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 "
          "-sha256 -extfile client-ext -out client.crt 2>/dev/null && "
          "mkdir -p certs.d && cp ca.crt certs.d/ca.crt && cp client.crt certs.d/client.cert && "
          "cp client.key certs.d/client.key"));
    }
    config +=
        "  tls:\n    certificate: " + d + "/tls/server.crt\n    key: " + d + "/tls/server.key\n";
    if (o.client_certs) config += "    clientcas:\n      - " + d + "/tls/ca.crt\n";
  }
  if (o.auth == RegistryOptions::Auth::kBasic) {
    BERTH_RETURN_IF_ERROR(
        sh("htpasswd -Bbn -C 4 " + std::string(kUser) + " " + kPassword + " > " + d + "/htpasswd"));
    config += "auth:\n  htpasswd:\n    realm: berth-test\n    path: " + d + "/htpasswd\n";
  }
  if (o.auth == RegistryOptions::Auth::kToken) {
    if (::access((d + "/token.env").c_str(), R_OK) != 0) {
      BERTH_RETURN_IF_ERROR(sh(
          "cd " + d +
          " && openssl req -x509 -newkey rsa:2048 -nodes -days 30 "
          "-subj /CN=berth-test-token -keyout token.key -out token.crt 2>/dev/null && "
          "kid=$(openssl pkey -in token.key -pubout -outform DER | openssl dgst -sha256 -binary | "
          "head -c 30 | base32 | sed 's/.\\{4\\}/&:/g; s/:$//') && "
          "printf 'KID=%s\\nKEY=%s\\nISSUER=%s\\nSERVICE=%s\\n' \"$kid\" " +
          d + "/token.key " + kIssuer + " " + kService + " > token.env && mkdir -p www/cgi-bin"));
      std::string cgi = kTokenCgi;
      cgi.replace(cgi.find("@ENV@"), 5, d + "/token.env");
      std::ofstream(d + "/www/cgi-bin/token") << cgi;
      ::chmod((d + "/www/cgi-bin/token").c_str(), 0755);
      std::ofstream(d + "/httpd.conf") << "/cgi-bin:" << kUser << ":" << kPassword << "\n"
                                       << "/cgi-bin:" << kReader << ":" << kReaderPassword << "\n";
    }
    config += "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(token_port_) +
              "/cgi-bin/token\n    service: " + kService + "\n    issuer: " + kIssuer +
              "\n    rootcertbundle: " + d + "/token.crt\n";
  }
  std::ofstream(d + "/config.yml") << config;
  return Status();
}

std::unique_ptr<Registry> Registry::start(std::string* error, RegistryOptions o) {
  for (const char* tool : {"/usr/bin/docker-registry", "/usr/bin/openssl", "/usr/bin/htpasswd",
                           "/usr/bin/jq", "/bin/busybox"}) {
    if (::access(tool, X_OK) != 0) {
      *error = std::string(tool) + " is not installed (scripts/setup.sh installs it)";
      return nullptr;
    }
  }
  auto dir = core::TempDir::create("berth-registry-");
  if (!dir.ok()) {
    *error = dir.status().message();
    return nullptr;
  }
  std::unique_ptr<Registry> r(new Registry(std::move(*dir)));
  r->options_ = o;
  std::string d = r->dir_.path();
  if (o.auth == RegistryOptions::Auth::kToken) {
    for (int attempt = 0; attempt < 5 && !r->issuer_; ++attempt) {
      r->token_port_ = free_port();
      Status st = r->prepare(o);
      if (!st.ok()) {
        *error = st.message();
        return nullptr;
      }
      r->issuer_ = Process::start(
          {"/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(r->token_port_), "-h",
           d + "/www", "-c", d + "/httpd.conf", "-r", "berth-test-token"},
          d + "/issuer.log");
      for (int i = 0; i < 200 && !tcp_accepts(r->token_port_); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      if (!tcp_accepts(r->token_port_)) r->issuer_.reset();
    }
    if (!r->issuer_) {
      *error = "the token issuer (busybox httpd) did not come up";
      return nullptr;
    }
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    r->port_ = free_port();
    Status st = r->prepare(o);
    if (!st.ok()) {
      *error = st.message();
      return nullptr;
    }
    r->process_ =
        Process::start({"/usr/bin/docker-registry", "serve", d + "/config.yml"}, d + "/log");
    for (int i = 0; i < 200; ++i) {
      if (tcp_accepts(r->port_)) return r;
      if (wait_for(r->process_->pid(), std::chrono::milliseconds(0))) break;  // lost the port race
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    r->process_.reset();
  }
  *error = "docker-registry did not come up: " + r->log();
  return nullptr;
}

Registry::~Registry() {
  process_.reset();
  issuer_.reset();
}

std::string Registry::log() const {
  auto log = core::read_file(dir_.path() + "/log");
  return log.ok() ? *log : std::string("(no log)");
}

std::vector<std::string> Registry::skopeo_flags(bool dest) const {
  std::string prefix = dest ? "--dest-" : "--src-";
  std::vector<std::string> f;
  if (options_.tls) {
    f.push_back(prefix + "cert-dir=" + dir_.path() + "/tls/certs.d");
  } else {
    f.push_back(prefix + "tls-verify=false");
  }
  if (options_.auth != RegistryOptions::Auth::kNone) f.push_back(prefix + "creds=" + user_flag());
  return f;
}

RunResult Registry::push_oci_archive(const std::string& archive, const std::string& repo_tag,
                                     const std::string& format) const {
  std::vector<std::string> argv = {"skopeo", "copy", "--quiet", "--all"};
  if (!format.empty()) argv.push_back("--format=" + format);
  for (auto& f : skopeo_flags(true)) argv.push_back(f);
  argv.push_back("oci-archive:" + archive);
  argv.push_back("docker://" + host() + "/" + repo_tag);
  return run(argv, std::chrono::seconds(120));
}

bool LoopbackServer::start(std::function<void(int fd)> serve) {
  serve_ = std::move(serve);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return false;
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] {
    for (;;) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 100) <= 0) {
        if (stopping_) return;
        continue;
      }
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lock(mu_);
      threads_.emplace_back([this, c] { serve_(c); });
    }
  });
  return true;
}

void LoopbackServer::stop() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

// ---- FaultProxy ----

std::unique_ptr<FaultProxy> FaultProxy::start(int upstream_port) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  p->upstream_port_ = upstream_port;
  bool ok = p->server_.start([raw = p.get()](int c) {
    if (raw->refuse_) {
      ::close(c);
      return;
    }
    raw->serve(c);
  });
  if (!ok) return nullptr;
  return p;
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  server_.stop();
}

std::vector<std::string> FaultProxy::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void FaultProxy::clear_requests() {
  std::lock_guard lock(mu_);
  requests_.clear();
}

namespace {
bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}
}  // namespace

void FaultProxy::serve(int client) {
  timeval tv{10, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string head;
  char buf[64 * 1024];
  while (head.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n <= 0) {
      ::close(client);
      return;
    }
    head.append(buf, static_cast<std::size_t>(n));
  }
  std::string line = head.substr(0, head.find("\r\n"));
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (auto r = lower.find("\r\nrange:"); r != std::string::npos)
    line += " Range:" + head.substr(r + 8, head.find("\r\n", r + 2) - (r + 8));
  {
    std::lock_guard lock(mu_);
    requests_.push_back(line);
  }
  bool blob = line.rfind("GET ", 0) == 0 && line.find("/blobs/sha256:") != std::string::npos;
  if (blob && redirect_) {
    auto sp = line.find(' ');
    std::string path = line.substr(sp + 1, line.find(' ', sp + 1) - sp - 1);
    std::string answer = "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:" +
                         std::to_string(upstream_port_) + path +
                         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    send_all(client, answer.data(), answer.size());
    ::shutdown(client, SHUT_RDWR);
    ::close(client);
    return;
  }
  // One request per upstream connection: the upstream closes when the answer is complete.
  auto end = head.find("\r\n\r\n");
  head.insert(end, "\r\nConnection: close");
  int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::setsockopt(up, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(upstream_port_));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(up, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      !send_all(up, head.data(), head.size())) {
    ::close(up);
    ::close(client);
    return;
  }
  std::string resp_head;
  bool in_body = false;
  std::int64_t body = 0;
  std::int64_t cut = cut_after_;
  for (;;) {
    ssize_t n = ::recv(up, buf, sizeof buf, 0);
    if (n <= 0) break;
    std::string chunk(buf, static_cast<std::size_t>(n));
    std::size_t body_from = 0;
    if (!in_body) {
      resp_head += chunk;
      auto e = resp_head.find("\r\n\r\n");
      if (e == std::string::npos) {
        if (!send_all(client, chunk.data(), chunk.size())) break;
        continue;
      }
      in_body = true;
      body_from = chunk.size() - (resp_head.size() - (e + 4));
    }
    bool success = resp_head.rfind("HTTP/1.1 2", 0) == 0;
    if (blob && success && corrupt_ && body == 0 && body_from < chunk.size())
      chunk[body_from] = static_cast<char>(chunk[body_from] ^ 0x5a);
    std::size_t body_bytes = chunk.size() - body_from;
    if (blob && success && cut > 0 && body + static_cast<std::int64_t>(body_bytes) > cut) {
      auto keep = body_from + static_cast<std::size_t>(cut - body);
      send_all(client, chunk.data(), keep);
      break;  // cut: the client sees the connection close mid-body
    }
    body += static_cast<std::int64_t>(body_bytes);
    if (!send_all(client, chunk.data(), chunk.size())) break;
    if (blob && throttle_ms_ > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(throttle_ms_));
  }
  ::close(up);
  ::shutdown(client, SHUT_RDWR);
  ::close(client);
}

// ---- HostileServer ----

std::unique_ptr<HostileServer> HostileServer::start(Handler handler, const std::string& cert,
                                                    const std::string& key) {
  std::unique_ptr<HostileServer> p(new HostileServer());
  p->handler_ = std::move(handler);
  if (!cert.empty()) {
    SSL_CTX* ctx = ::SSL_CTX_new(::TLS_server_method());
    if (!ctx || ::SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1 ||
        ::SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      if (ctx) ::SSL_CTX_free(ctx);
      return nullptr;
    }
    p->tls_ = ctx;
  }
  if (!p->server_.start([raw = p.get()](int c) { raw->serve(c); })) return nullptr;
  return p;
}

HostileServer::~HostileServer() {
  stopping_ = true;
  server_.stop();
  if (tls_) ::SSL_CTX_free(static_cast<SSL_CTX*>(tls_));
}

std::vector<HostileServer::Request> HostileServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void HostileServer::serve(int client) {
  timeval tv{5, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SSL* ssl = nullptr;
  if (tls_) {
    ssl = ::SSL_new(static_cast<SSL_CTX*>(tls_));
    ::SSL_set_fd(ssl, client);
    if (::SSL_accept(ssl) != 1) {
      ::SSL_free(ssl);
      ::close(client);
      return;
    }
  }
  auto recv_some = [&](char* b, int n) -> int {
    return ssl ? ::SSL_read(ssl, b, n) : static_cast<int>(::recv(client, b, n, 0));
  };
  Write write = [&](std::string_view data) -> bool {
    if (stopping_) return false;
    while (!data.empty()) {
      int k = ssl ? ::SSL_write(ssl, data.data(), static_cast<int>(data.size()))
                  : static_cast<int>(::send(client, data.data(), data.size(), MSG_NOSIGNAL));
      if (k <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(k));
    }
    return true;
  };
  std::string head;
  char buf[16 * 1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < (1 << 20)) {
    int n = recv_some(buf, sizeof buf);
    if (n <= 0) break;
    head.append(buf, static_cast<std::size_t>(n));
  }
  if (head.find("\r\n\r\n") != std::string::npos) {
    Request r;
    std::istringstream in(head.substr(0, head.find("\r\n\r\n")));
    std::string line;
    std::getline(in, line);
    std::istringstream first(line);
    first >> r.method >> r.target;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(value.begin());
      r.headers[name] = value;
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(r);
    }
    handler_(r, write);
  }
  if (ssl) {
    ::SSL_shutdown(ssl);
    ::SSL_free(ssl);
  }
  ::shutdown(client, SHUT_RDWR);
  ::close(client);
}

}  // namespace berth::e2e

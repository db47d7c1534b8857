// A client for the OCI distribution API (registry HTTP API v2) on Boost.Beast: HTTP/1.1 over TCP
// or TLS (system CAs, a custom CA, or no verification), anonymous, basic and bearer-token auth
// (the WWW-Authenticate challenge is answered once per scope and the token cached), redirects,
// and blob fetches that stream the body, checked against Content-Length and the digest.
//
// First user: `berth content fetch-blob`. The pull/push service (#6) builds on it.
#pragma once

#include <berth/result.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace berth::remotes {

struct HostOptions {
  bool plain_http = false;   // http:// instead of https://
  bool skip_verify = false;  // TLS without certificate checks
  std::string ca_file;       // PEM: trusted in addition to the system CAs
  std::string username, password;
  std::chrono::seconds timeout{60};  // per request
};

struct Url {
  bool https = true;
  std::string host, port, target;  // target: path and query
  static Result<Url> parse(std::string_view url);
  std::string str() const;
};

// "docker.io/library/busybox" -> registry host "registry-1.docker.io", repository
// "library/busybox"; "127.0.0.1:5000/x/y" -> "127.0.0.1:5000", "x/y".
struct Repository {
  std::string host, name;
  static Result<Repository> parse(std::string_view ref);
};

class RegistryClient {
 public:
  explicit RegistryClient(HostOptions o) : o_(std::move(o)) {}

  // Streams blob `digest` of `repo` into `sink`; *size_out gets its size. Fails (nothing more
  // is passed to the sink) when the registry's answer is not that blob.
  Status fetch_blob(const Repository& repo, const std::string& digest,
                    const std::function<Status(std::string_view)>& sink, std::int64_t* size_out);

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;                            // when not streamed to a sink
  };
  // One request with auth and redirects handled. A 2xx body goes to `sink` when given.
  Result<Response> request(const std::string& method, const Repository& repo,
                           const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::function<Status(std::string_view)>& sink = nullptr);

 private:
  Result<Response> send(const std::string& method, const Url& url,
                        const std::map<std::string, std::string>& headers,
                        const std::function<Status(std::string_view)>& sink);
  // The Authorization header answering a 401's WWW-Authenticate.
  Result<std::string> authorize(const std::string& challenge, const std::string& scope);

  HostOptions o_;
  std::mutex mu_;
  std::map<std::string, std::string> auth_;  // "<host> <scope>" -> Authorization value
};

}  // namespace berth::remotes

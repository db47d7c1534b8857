// A client for the OCI distribution API (registry HTTP API v2) on Boost.Beast: HTTP/1.1 over TCP
// or TLS (system CAs, a custom CA, or no verification), anonymous, basic and bearer-token auth
// (the WWW-Authenticate challenge is answered once per scope and the token cached), redirects,
// and blob fetches that stream the body, checked against Content-Length and the digest.
//
// The peer is not trusted: credentials and configured headers go only to the configured host
// (never to a host it redirects to, which is refused if it asks for credentials), a redirect
// from https to http is refused, bodies that are not streamed are bounded (4 MiB), and every
// answer has deadlines (HostOptions).
//
// Users: `berth content fetch-blob` and the transfer service (pull/push in the daemon).
#pragma once

#include <berth/result.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace berth::remotes {

struct HostOptions {
  bool plain_http = false;            // http:// instead of https://
  bool skip_verify = false;           // TLS without certificate checks
  std::vector<std::string> ca_files;  // PEM: trusted in addition to the system CAs
  std::string cert_file, key_file;    // PEM client certificate and key (mutual TLS)
  std::string username, password;
  std::map<std::string, std::string> headers;  // sent with every request to this host
  // Bounds on what a peer may make us wait for: each socket operation, a whole answer that is
  // not streamed (headers and small bodies), and the pace of a streamed body (at least
  // min_speed bytes per second over every `timeout` window). Exceeding the last two fails with
  // DeadlineExceeded (not retried: a trickling registry does not get a second chance).
  std::chrono::seconds timeout{30};
  std::chrono::seconds request_timeout{60};
  std::int64_t min_speed = 1024;
};

struct Url {
  bool https = true;
  std::string host, port, target;  // target: path and query
  static Result<Url> parse(std::string_view url);
  std::string str() const;
};

// The manifest and index media types a resolve accepts, OCI and Docker.
std::string manifest_accept_header();

// "docker.io/library/busybox" -> registry host "registry-1.docker.io", repository
// "library/busybox"; "127.0.0.1:5000/x/y" -> "127.0.0.1:5000", "x/y".
struct Repository {
  std::string host, name;
  static Result<Repository> parse(std::string_view ref);
};

// What a tag or digest resolves to.
struct Resolved {
  std::string media_type, digest;
  std::int64_t size = 0;
};

using Sink = std::function<Status(std::string_view)>;

class RegistryClient {
 public:
  // `base`: where the API lives ("https://mirror:5000/v2"); empty: <scheme>://<repo host>/v2.
  explicit RegistryClient(HostOptions o, std::string base = {})
      : o_(std::move(o)), base_(std::move(base)) {}

  // Streams blob `digest` of `repo` into `sink`; *size_out gets its size. Fails (nothing more
  // is passed to the sink) when the registry's answer is not that blob.
  Status fetch_blob(const Repository& repo, const std::string& digest, const Sink& sink,
                    std::int64_t* size_out);
  // Streams blob bytes from `offset` on (a Range request). When the registry ignores the range
  // and sends the whole blob, `restart` is called before the first byte. No digest check: the
  // caller hashes (the content store does, at commit).
  // `manifest`: fetch it from /manifests/ (where registries serve manifests and indexes).
  Status fetch_blob_from(const Repository& repo, const std::string& digest, std::int64_t offset,
                         const std::function<Status()>& restart, const Sink& sink,
                         bool manifest = false);

  // A tag or digest -> the manifest or index descriptor (HEAD, then GET when the registry does not
  // say the digest). NotFound when the registry has no such manifest.
  Result<Resolved> resolve(const Repository& repo, const std::string& reference);

  // Push side; all with the push scope.
  Result<bool> blob_exists(const Repository& repo, const std::string& digest) {
    return exists(repo, "blobs", digest);
  }
  Result<bool> manifest_exists(const Repository& repo, const std::string& digest) {
    return exists(repo, "manifests", digest);
  }
  // Cross-repository mount from `from` (same registry). false: the registry wants an upload.
  Result<bool> mount_blob(const Repository& repo, const std::string& digest,
                          const std::string& from);
  // Uploads a blob: one PUT when size <= chunk_size, else PATCH chunks then PUT. `read` returns
  // the bytes [offset, offset+n). `progress` gets the bytes sent so far.
  Status upload_blob(const Repository& repo, const std::string& digest, std::int64_t size,
                     std::int64_t chunk_size,
                     const std::function<Result<std::string>(std::int64_t, std::size_t)>& read,
                     const std::function<void(std::int64_t)>& progress);
  Status put_manifest(const Repository& repo, const std::string& reference,
                      const std::string& media_type, const std::string& body);

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;                            // when not streamed to a sink
  };
  struct Request {
    std::string method = "GET";
    std::string path;  // after /v2/<name>, or an absolute URL (upload locations)
    std::map<std::string, std::string> headers;
    std::string body;
    bool push = false;                      // needs the push scope
    std::vector<std::string> extra_scopes;  // e.g. pull on a mount's source repository
    Sink sink;                              // a 2xx body goes here when given
    // Called with a 2xx answer's status and headers before its body reaches the sink.
    std::function<Status(const Response&)> on_headers;
  };
  // One request with auth and redirects handled.
  Result<Response> request(const Repository& repo, Request r);

 private:
  // `foreign`: a host the request was redirected to, which gets no configured headers.
  Result<Response> send(const std::string& method, const Url& url,
                        const std::map<std::string, std::string>& headers, const std::string& body,
                        const Sink& sink,
                        const std::function<Status(const Response&)>& on_headers = nullptr,
                        bool foreign = false);
  // The Authorization header answering a 401's WWW-Authenticate.
  Result<std::string> authorize(const std::string& challenge,
                                const std::vector<std::string>& scopes, const Url& registry);

  // HEAD /<what>/<digest> ("blobs" or "manifests") with the push scope.
  Result<bool> exists(const Repository& repo, const std::string& what, const std::string& digest);
  // A registry's error document ({"errors":[{"code","message"}]}) or the HTTP status, for messages.
  static std::string error_text(const Response& r);

  HostOptions o_;
  std::string base_;
  std::mutex mu_;
  std::map<std::string, std::string> auth_;  // "<host> <scope>" -> Authorization value
};

}  // namespace berth::remotes

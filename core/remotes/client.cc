// The distribution API client (client.h). One file on purpose (~680 lines): the transport
// (send: bounds, deadlines, TLS), authentication (basic/bearer, token cache) and the calls built
// on them (resolve, fetch, upload, mount) share the client's private state, and the rules about
// what a redirect target may receive must be read in one place.
#include "core/remotes/client.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/asio.h"
#include "core/digest.h"
#include "core/images/model.h"

namespace berth::remotes {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
namespace images_media = images::model::media_type;

namespace {

constexpr int kMaxRedirects = 5;
// Manifests, indexes, configs (4 MiB at most by their descriptor), tokens and error documents.
constexpr std::size_t kMaxSmallBody = 4 << 20;
constexpr std::size_t kMaxHeader = 64 << 10;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// `Bearer realm="https://auth",service="registry",scope="repository:x:pull"` -> scheme + params.
std::pair<std::string, std::map<std::string, std::string>> parse_challenge(const std::string& h) {
  std::map<std::string, std::string> params;
  auto sp = h.find(' ');
  std::string scheme = lower(h.substr(0, sp));
  std::size_t i = sp == std::string::npos ? h.size() : sp + 1;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    auto eq = h.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = lower(h.substr(i, eq - i));
    i = eq + 1;
    std::string value;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        value += h[i++];
      }
      ++i;
    } else {
      while (i < h.size() && h[i] != ',') value += h[i++];
    }
    params[key] = value;
  }
  return {scheme, params};
}

}  // namespace

Result<Url> Url::parse(std::string_view s) {
  Url u;
  if (s.rfind("https://", 0) == 0) {
    s.remove_prefix(8);
  } else if (s.rfind("http://", 0) == 0) {
    u.https = false;
    s.remove_prefix(7);
  } else {
    return invalid_argument("URL \"{}\" is not http:// or https://", s);
  }
  auto slash = s.find('/');
  std::string authority(s.substr(0, slash));
  u.target = slash == std::string_view::npos ? "/" : std::string(s.substr(slash));
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
    u.port = u.https ? "443" : "80";
  }
  if (u.host.empty()) return invalid_argument("URL \"{}\" has no host", s);
  return u;
}

std::string Url::str() const {
  return fmt::format("{}://{}:{}{}", https ? "https" : "http", host, port, target);
}

Result<Repository> Repository::parse(std::string_view ref) {
  std::string r(ref);
  if (auto at = r.find('@'); at != std::string::npos) r.erase(at);
  auto slash = r.find('/');
  Repository repo;
  std::string first = slash == std::string::npos ? "" : r.substr(0, slash);
  if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
      first == "localhost") {
    repo.host = first;
    repo.name = r.substr(slash + 1);
  } else {
    repo.host = "docker.io";
    repo.name = r;
  }
  // A tag after the last '/' is not part of the repository.
  auto last_slash = repo.name.rfind('/');
  auto colon = repo.name.rfind(':');
  if (colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash))
    repo.name.erase(colon);
  if (repo.host == "docker.io") {
    repo.host = "registry-1.docker.io";
    if (repo.name.find('/') == std::string::npos) repo.name = "library/" + repo.name;
  }
  if (repo.name.empty()) return invalid_argument("\"{}\" names no repository", ref);
  for (char c : repo.name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' ||
          c == '-'))
      return invalid_argument("repository \"{}\": invalid character '{}'", repo.name, c);
  }
  return repo;
}

namespace {

// The request as every registry call sends it: host, user agent, this host's configured headers
// (never to a foreign host: a redirect target), the call's own, the body.
http::request<http::string_body> build_request(const std::string& method, const Url& url,
                                               const std::map<std::string, std::string>& configured,
                                               const std::map<std::string, std::string>& headers,
                                               const std::string& body, bool foreign) {
  http::request<http::string_body> req{http::string_to_verb(method), url.target, 11};
  req.set(http::field::host,
          (url.port == "443" || url.port == "80") ? url.host : url.host + ":" + url.port);
  req.set(http::field::user_agent, "berth/" BERTH_VERSION);
  if (!foreign) {
    for (const auto& [k, v] : configured) req.set(k, v);
  }
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (!body.empty() || method == "PUT" || method == "POST" || method == "PATCH")
    req.prepare_payload();
  return req;
}

// CAs, the client certificate (never offered to a foreign host) and verification.
Status configure_tls(ssl::context& ctx, const HostOptions& o, bool foreign) {
  beast::error_code ec;
  ctx.set_default_verify_paths(ec);
  for (const auto& ca : o.ca_files) {
    ctx.load_verify_file(ca, ec);
    if (ec) return invalid_argument("CA file {}: {}", ca, ec.message());
  }
  if (!o.cert_file.empty() && !foreign) {
    ctx.use_certificate_chain_file(o.cert_file, ec);
    if (ec) return invalid_argument("client certificate {}: {}", o.cert_file, ec.message());
    ctx.use_private_key_file(o.key_file.empty() ? o.cert_file : o.key_file, ssl::context::pem, ec);
    if (ec) return invalid_argument("client key {}: {}", o.key_file, ec.message());
  }
  ctx.set_verify_mode(o.skip_verify ? ssl::verify_none : ssl::verify_peer);
  return Status();
}

}  // namespace

Result<RegistryClient::Response> RegistryClient::send(
    const std::string& method, const Url& url, const std::map<std::string, std::string>& headers,
    const std::string& body, const Sink& sink,
    const std::function<Status(const Response&)>& on_headers, bool foreign) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + o_.request_timeout;
  net::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return Status(Code::kUnavailable, fmt::format("resolve {}: {}", url.host, ec.message()));
  auto req = build_request(method, url, o_.headers, headers, body, foreign);
  Response resp;
  // Blocking calls: each socket operation waits at most `timeout`, and until the deadline of the
  // whole answer when the body is not streamed.
  int native = -1;
  auto arm = [&](bool streaming) -> Status {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(o_.timeout);
    if (!streaming) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0)
        return Status(Code::kDeadlineExceeded,
                      fmt::format("{} {}: no complete answer within {} s", method, url.str(),
                                  o_.request_timeout.count()));
      wait = std::min(wait, left);
    }
    timeval tv{static_cast<time_t>(wait.count() / 1000),
               static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
    ::setsockopt(native, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(native, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return Status();
  };
  // A failed socket operation: past the deadline it is the deadline's error.
  auto io_error = [&](const std::string& what, bool streaming) -> Status {
    if (!streaming && Clock::now() >= deadline)
      return Status(Code::kDeadlineExceeded,
                    fmt::format("{} {}: no complete answer within {} s", method, url.str(),
                                o_.request_timeout.count()));
    return Status(Code::kUnavailable,
                  fmt::format("{} {}: {}{}", method, url.str(), what, ec.message()));
  };
  auto exchange = [&](auto& stream) -> Status {
    BERTH_RETURN_IF_ERROR(arm(false));
    http::write(stream, req, ec);
    if (ec) return io_error("send: ", false);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    // "No limit" (boost::none) compares as exceeded in Boost 1.74's parser: use the largest.
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (method == "HEAD") p.skip(true);
    // The header is read by us, one armed read at a time (Beast's reads would wait for the
    // whole header), so a peer that trickles it byte by byte cannot outlast the deadline.
    for (;;) {
      std::string_view have(static_cast<const char*>(buf.data().data()), buf.size());
      if (have.find("\r\n\r\n") != std::string_view::npos) break;
      if (have.size() > kMaxHeader)
        return Status(Code::kResourceExhausted,
                      fmt::format("{} {}: the answer's header is larger than {} KiB; refused",
                                  method, url.str(), kMaxHeader >> 10));
      BERTH_RETURN_IF_ERROR(arm(false));
      std::size_t n = stream.read_some(buf.prepare(4096), ec);
      buf.commit(n);
      if (ec) return io_error("", false);
    }
    http::read_header(stream, buf, p, ec);
    if (ec) return io_error("", false);
    resp.status = p.get().result_int();
    for (const auto& f : p.get())
      resp.headers[lower(std::string(f.name_string()))] = std::string(f.value());
    bool to_sink = sink && resp.status / 100 == 2;
    if (on_headers && resp.status / 100 == 2) BERTH_RETURN_IF_ERROR(on_headers(resp));
    char chunk[64 * 1024];
    auto window_start = Clock::now();
    std::int64_t window_bytes = 0;
    const std::int64_t window_min = o_.min_speed * o_.timeout.count();
    while (!p.is_done()) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof chunk;
      BERTH_RETURN_IF_ERROR(arm(to_sink));
      http::read_some(stream, buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return io_error("reading the body: ", to_sink);
      std::size_t n = sizeof chunk - p.get().body().size;
      if (to_sink) {
        BERTH_RETURN_IF_ERROR(sink(std::string_view(chunk, n)));
        window_bytes += static_cast<std::int64_t>(n);
        if (Clock::now() - window_start >= o_.timeout) {
          if (window_bytes < window_min)
            return Status(
                Code::kDeadlineExceeded,
                fmt::format("{} {}: {} bytes in {} s, under the {} bytes/s a download "
                            "must keep; giving up",
                            method, url.str(), window_bytes, o_.timeout.count(), o_.min_speed));
          window_start = Clock::now();
          window_bytes = 0;
        }
      } else {
        if (resp.body.size() + n > kMaxSmallBody)
          return Status(Code::kResourceExhausted,
                        fmt::format("{} {}: the answer is larger than {} MiB; refused", method,
                                    url.str(), kMaxSmallBody >> 20));
        resp.body.append(chunk, n);
      }
    }
    return Status();
  };
  if (!url.https) {
    tcp::socket s(io);
    net::connect(s, endpoints, ec);
    if (ec)
      return Status(Code::kUnavailable,
                    fmt::format("connect to {}:{}: {}", url.host, url.port, ec.message()));
    native = s.native_handle();
    BERTH_RETURN_IF_ERROR(exchange(s));
    return resp;
  }
  ssl::context ctx(ssl::context::tls_client);
  BERTH_RETURN_IF_ERROR(configure_tls(ctx, o_, foreign));
  ssl::stream<tcp::socket> s(io, ctx);
  if (!o_.skip_verify) s.set_verify_callback(ssl::host_name_verification(url.host));
  ::SSL_set_tlsext_host_name(s.native_handle(), url.host.c_str());
  net::connect(s.next_layer(), endpoints, ec);
  if (ec)
    return Status(Code::kUnavailable,
                  fmt::format("connect to {}:{}: {}", url.host, url.port, ec.message()));
  native = s.next_layer().native_handle();
  BERTH_RETURN_IF_ERROR(arm(false));
  s.handshake(ssl::stream_base::client, ec);
  if (ec) return Status(Code::kUnavailable, fmt::format("TLS with {}: {}", url.host, ec.message()));
  BERTH_RETURN_IF_ERROR(exchange(s));
  return resp;
}

Result<std::string> RegistryClient::authorize(const std::string& challenge,
                                              const std::vector<std::string>& scopes,
                                              const Url& registry) {
  auto [scheme, params] = parse_challenge(challenge);
  std::string basic = o_.username.empty() ? "" : "Basic " + core::base64_encode(o_.username + ":" + o_.password);
  if (scheme == "basic") {
    if (basic.empty())
      return Status(Code::kUnauthenticated,
                    "401 unauthorized: the registry wants credentials and none were given "
                    "(--user USER:PASSWORD)");
    return basic;
  }
  if (scheme != "bearer")
    return Status(Code::kUnimplemented,
                  fmt::format("registry auth scheme \"{}\" is not supported", scheme));
  auto realm = params.find("realm");
  if (realm == params.end())
    return Status(Code::kUnauthenticated, "bearer challenge without a realm");
  BERTH_TRY(auto url, Url::parse(realm->second));
  std::string query;
  if (auto it = params.find("service"); it != params.end())
    query += "service=" + url_encode(it->second);
  // What the challenge asks for, plus what this request needs besides (a mount's source).
  std::vector<std::string> want;
  if (params.count("scope")) want.push_back(params["scope"]);
  for (const auto& sc : scopes)
    if (std::find(want.begin(), want.end(), sc) == want.end()) want.push_back(sc);
  for (const auto& sc : want)
    query += (query.empty() ? "" : "&") + std::string("scope=") + url_encode(sc);
  if (!query.empty()) url.target += (url.target.find('?') == std::string::npos ? "?" : "&") + query;
  std::map<std::string, std::string> headers;
  if (!basic.empty()) headers["Authorization"] = basic;
  // The registry names its token server and gets our credentials there (as containerd does);
  // the headers configured for the registry stay with the registry.
  bool other_host = url.host != registry.host || url.port != registry.port;
  BERTH_TRY(auto resp, send("GET", url, headers, {}, nullptr, nullptr, other_host));
  if (resp.status == 401 || resp.status == 403)
    return Status(Code::kUnauthenticated,
                  fmt::format("token server {} refused {} (HTTP {})", url.host,
                              o_.username.empty() ? "anonymous access"
                                                  : "the credentials of \"" + o_.username + "\"",
                              resp.status));
  if (resp.status != 200)
    return Status(Code::kUnavailable,
                  fmt::format("token server {}: HTTP {}", url.host, resp.status));
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  std::string token;
  if (j.is_object()) token = j.value("token", j.value("access_token", ""));
  if (token.empty())
    return Status(Code::kUnauthenticated, fmt::format("token server {} sent no token", url.host));
  return "Bearer " + token;
}

Result<RegistryClient::Response> RegistryClient::request(const Repository& repo, Request r) {
  Url url;
  if (r.path.rfind("http://", 0) == 0 || r.path.rfind("https://", 0) == 0) {
    BERTH_TRY(url, Url::parse(r.path));
  } else {
    std::string base = base_.empty()
                           ? fmt::format("{}://{}/v2", o_.plain_http ? "http" : "https", repo.host)
                           : base_;
    if (r.path.rfind("/v2/", 0) == 0) {  // a Location the registry gave (absolute path)
      BERTH_TRY(url, Url::parse(base));
      url.target = r.path;
    } else {
      BERTH_TRY(url, Url::parse(fmt::format("{}/{}{}", base, repo.name, r.path)));
    }
  }
  std::vector<std::string> scopes = {
      fmt::format("repository:{}:{}", repo.name, r.push ? "pull,push" : "pull")};
  scopes.insert(scopes.end(), r.extra_scopes.begin(), r.extra_scopes.end());
  std::string key = url.host + ":" + url.port;
  for (const auto& sc : scopes) key += " " + sc;
  std::map<std::string, std::string> h = r.headers;
  {
    std::lock_guard lock(mu_);
    if (auto it = auth_.find(key); it != auth_.end()) h["Authorization"] = it->second;
  }
  bool retried_auth = false;
  // Credentials, tokens, client certificates and configured headers belong to the host the
  // request was made to; a host it redirects to (blob storage) gets none of them.
  const std::string origin = url.host + ":" + url.port;
  bool foreign = false;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    BERTH_TRY(auto resp, send(r.method, url, h, r.body, r.sink, r.on_headers, foreign));
    if (resp.status == 401 && foreign)
      return Status(Code::kUnauthenticated,
                    fmt::format("{} {}: redirected by {} to a host that asks for credentials; "
                                "the credentials for {} are not sent there",
                                r.method, url.str(), origin, origin));
    if (resp.status == 401 && !retried_auth && resp.headers.count("www-authenticate")) {
      BERTH_TRY(auto value, authorize(resp.headers["www-authenticate"], scopes, url));
      {
        std::lock_guard lock(mu_);
        auth_[key] = value;
      }
      h["Authorization"] = value;
      retried_auth = true;
      --hop;
      continue;
    }
    if (resp.status == 401)
      return Status(
          Code::kUnauthenticated,
          fmt::format("{} {}: 401 unauthorized{}", r.method, url.str(),
                      o_.username.empty() ? " (no credentials given)"
                                          : " (credentials of \"" + o_.username + "\" refused)"));
    if (resp.status == 403)
      return Status(Code::kPermissionDenied,
                    fmt::format("{} {}: 403 forbidden: {}", r.method, url.str(), error_text(resp)));
    if (resp.status / 100 == 3 && resp.headers.count("location")) {
      std::string loc = resp.headers["location"];
      Url next;
      if (loc.rfind("http", 0) == 0) {
        BERTH_TRY(next, Url::parse(loc));
      } else {
        next = url;
        next.target = loc;
      }
      if (url.https && !next.https)
        return Status(Code::kPermissionDenied,
                      fmt::format("{} {}: redirected from https to plain http ({}); refused",
                                  r.method, url.str(), next.str()));
      // Credentials stay with the registry; a storage backend gets a signed URL instead.
      foreign = next.host + ":" + next.port != origin;
      if (foreign) h.erase("Authorization");
      url = next;
      continue;
    }
    return resp;
  }
  return Status(Code::kUnavailable, fmt::format("{} {}: too many redirects", r.method, url.str()));
}

std::string RegistryClient::error_text(const Response& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    std::string out;
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      if (!out.empty()) out += "; ";
      out += e.value("code", std::string("ERROR"));
      if (auto m = e.value("message", std::string()); !m.empty()) out += ": " + m;
    }
    if (!out.empty()) return fmt::format("HTTP {} {}", r.status, out);
  }
  return fmt::format("HTTP {}", r.status);
}

Status RegistryClient::fetch_blob(const Repository& repo, const std::string& digest,
                                  const Sink& sink, std::int64_t* size_out) {
  if (digest.rfind("sha256:", 0) != 0 || digest.size() != 71)
    return invalid_argument("\"{}\" is not a sha256 digest", digest);
  core::Sha256 hash;
  std::int64_t got = 0;
  auto hashing = [&](std::string_view data) -> Status {
    hash.update(data);
    got += static_cast<std::int64_t>(data.size());
    return sink(data);
  };
  BERTH_RETURN_IF_ERROR(fetch_blob_from(
      repo, digest, 0, [] { return Status(); }, hashing));
  if (hash.digest() != digest)
    return Status(Code::kDataLoss,
                  fmt::format("blob {}: the bytes received hash to {}", digest, hash.digest()));
  if (size_out) *size_out = got;
  return Status();
}

std::string manifest_accept_header() {
  return fmt::format("{}, {}, {}, {}", images_media::kOciManifest, images_media::kOciIndex,
                     images_media::kDockerManifest, images_media::kDockerManifestList);
}

Status RegistryClient::fetch_blob_from(const Repository& repo, const std::string& digest,
                                       std::int64_t offset, const std::function<Status()>& restart,
                                       const Sink& sink, bool manifest) {
  std::map<std::string, std::string> h;
  if (offset > 0) h["Range"] = fmt::format("bytes={}-", offset);
  if (manifest) h["Accept"] = manifest_accept_header();
  std::int64_t got = 0;
  auto counting = [&](std::string_view data) -> Status {
    got += static_cast<std::int64_t>(data.size());
    return sink(data);
  };
  auto check_range = [&](const Response& r) -> Status {
    if (auto it = r.headers.find("docker-content-digest");
        it != r.headers.end() && it->second != digest)
      return Status(Code::kDataLoss,
                    fmt::format("{}: the registry says it is sending {}", digest, it->second));
    if (offset > 0 && r.status == 200) return restart();
    return Status();
  };
  BERTH_TRY(auto resp, request(repo, {.path = (manifest ? "/manifests/" : "/blobs/") + digest,
                                      .headers = h,
                                      .sink = counting,
                                      .on_headers = check_range}));
  if (resp.status == 404)
    return not_found("{} {} not found in {}/{}", manifest ? "manifest" : "blob", digest, repo.host,
                     repo.name);
  if (resp.status == 416)  // asked past the end: the partial copy is not of this blob
    return Status(Code::kDataLoss, fmt::format("blob {}: range from {} refused", digest, offset));
  if (resp.status != 200 && resp.status != 206)
    return Status(Code::kUnavailable, fmt::format("GET blob {} from {}/{}: {}", digest, repo.host,
                                                  repo.name, error_text(resp)));
  if (auto it = resp.headers.find("content-length");
      it != resp.headers.end() && std::to_string(got) != it->second)
    return Status(Code::kUnavailable, fmt::format("blob {}: got {} bytes, Content-Length said {}",
                                                  digest, got, it->second));
  return Status();
}

Result<Resolved> RegistryClient::resolve(const Repository& repo, const std::string& reference) {
  const std::map<std::string, std::string> accept = {{"Accept", manifest_accept_header()}};
  BERTH_TRY(
      auto head,
      request(repo, {.method = "HEAD", .path = "/manifests/" + reference, .headers = accept}));
  if (head.status == 404) return not_found("{}/{}:{} not found", repo.host, repo.name, reference);
  Resolved r;
  if (head.status == 200 && head.headers.count("docker-content-digest") &&
      head.headers.count("content-type") && head.headers.count("content-length")) {
    r.digest = head.headers["docker-content-digest"];
    r.media_type = head.headers["content-type"];
    r.size = std::stoll(head.headers["content-length"]);
  } else {
    BERTH_TRY(auto get, request(repo, {.path = "/manifests/" + reference, .headers = accept}));
    if (get.status == 404) return not_found("{}/{}:{} not found", repo.host, repo.name, reference);
    if (get.status != 200)
      return Status(Code::kUnavailable, fmt::format("resolve {}/{}:{}: {}", repo.host, repo.name,
                                                    reference, error_text(get)));
    r.digest = core::Sha256::digest_of(get.body);
    r.media_type = get.headers["content-type"];
    r.size = static_cast<std::int64_t>(get.body.size());
    if (r.media_type.empty() || r.media_type == "application/json") {
      auto j = nlohmann::json::parse(get.body, nullptr, false);
      if (j.is_object()) r.media_type = j.value("mediaType", "");
    }
  }
  if (auto semi = r.media_type.find(';'); semi != std::string::npos) r.media_type.erase(semi);
  if (reference.rfind("sha256:", 0) == 0 && r.digest != reference)
    return Status(Code::kDataLoss, fmt::format("{}/{}@{}: the registry answered with {}", repo.host,
                                               repo.name, reference, r.digest));
  if (!images_media::is_index(r.media_type) && !images_media::is_manifest(r.media_type))
    return Status(Code::kUnimplemented,
                  fmt::format("{}/{}:{} is a \"{}\", not an OCI or Docker schema 2 manifest",
                              repo.host, repo.name, reference, r.media_type));
  return r;
}

Result<bool> RegistryClient::exists(const Repository& repo, const std::string& what,
                                    const std::string& digest) {
  std::map<std::string, std::string> h;
  if (what == "manifests") h["Accept"] = manifest_accept_header();
  BERTH_TRY(
      auto resp,
      request(repo,
              {.method = "HEAD", .path = "/" + what + "/" + digest, .headers = h, .push = true}));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return Status(Code::kUnavailable, fmt::format("HEAD {} {} in {}/{}: {}", what, digest, repo.host,
                                                repo.name, error_text(resp)));
}

namespace {
// An upload session's Location with `digest` added to its query.
std::string with_digest(const std::string& location, const std::string& digest) {
  return location + (location.find('?') == std::string::npos ? "?" : "&") +
         "digest=" + url_encode(digest);
}
}  // namespace

Result<bool> RegistryClient::mount_blob(const Repository& repo, const std::string& digest,
                                        const std::string& from) {
  BERTH_TRY(auto resp, request(repo, {.method = "POST",
                                      .path = fmt::format("/blobs/uploads/?mount={}&from={}",
                                                          url_encode(digest), url_encode(from)),
                                      .push = true,
                                      .extra_scopes = {"repository:" + from + ":pull"}}));
  if (resp.status == 201) return true;
  if (resp.status == 202) {
    // The registry opened an upload instead; cancel it, the caller uploads in its own session.
    if (auto loc = resp.headers.find("location"); loc != resp.headers.end())
      (void)request(repo, {.method = "DELETE", .path = loc->second, .push = true});
    return false;
  }
  return Status(Code::kUnavailable, fmt::format("mount {} from {} into {}/{}: {}", digest, from,
                                                repo.host, repo.name, error_text(resp)));
}

Status RegistryClient::upload_blob(
    const Repository& repo, const std::string& digest, std::int64_t size, std::int64_t chunk_size,
    const std::function<Result<std::string>(std::int64_t, std::size_t)>& read,
    const std::function<void(std::int64_t)>& progress) {
  auto where = [&](const std::string& what) {
    return fmt::format("upload {} to {}/{}: {}", digest, repo.host, repo.name, what);
  };
  BERTH_TRY(auto start, request(repo, {.method = "POST", .path = "/blobs/uploads/", .push = true}));
  if (start.status != 202 || !start.headers.count("location"))
    return Status(Code::kUnavailable, where("starting: " + error_text(start)));
  std::string location = start.headers["location"];
  if (chunk_size <= 0) chunk_size = size;
  if (size <= chunk_size) {  // monolithic: one PUT with the whole blob
    BERTH_TRY(auto data, read(0, static_cast<std::size_t>(size)));
    BERTH_TRY(auto put, request(repo, {.method = "PUT",
                                       .path = with_digest(location, digest),
                                       .headers = {{"Content-Type", "application/octet-stream"}},
                                       .body = std::move(data),
                                       .push = true}));
    if (put.status != 201) return Status(Code::kUnavailable, where(error_text(put)));
    if (progress) progress(size);
    return Status();
  }
  for (std::int64_t off = 0; off < size; off += chunk_size) {
    auto n = static_cast<std::size_t>(std::min(chunk_size, size - off));
    BERTH_TRY(auto data, read(off, n));
    BERTH_TRY(auto patch,
              request(repo, {.method = "PATCH",
                             .path = location,
                             .headers = {{"Content-Type", "application/octet-stream"},
                                         {"Content-Range", fmt::format("{}-{}", off, off + n - 1)}},
                             .body = std::move(data),
                             .push = true}));
    if (patch.status != 202 || !patch.headers.count("location"))
      return Status(Code::kUnavailable,
                    where(fmt::format("chunk at {}: {}", off, error_text(patch))));
    location = patch.headers["location"];
    if (progress) progress(off + static_cast<std::int64_t>(n));
  }
  BERTH_TRY(auto put,
            request(repo, {.method = "PUT", .path = with_digest(location, digest), .push = true}));
  if (put.status != 201) return Status(Code::kUnavailable, where("closing: " + error_text(put)));
  return Status();
}

Status RegistryClient::put_manifest(const Repository& repo, const std::string& reference,
                                    const std::string& media_type, const std::string& body) {
  BERTH_TRY(auto resp, request(repo, {.method = "PUT",
                                      .path = "/manifests/" + reference,
                                      .headers = {{"Content-Type", media_type}},
                                      .body = body,
                                      .push = true}));
  if (resp.status != 201)
    return Status(Code::kUnavailable, fmt::format("PUT manifest {}/{}:{}: {}", repo.host, repo.name,
                                                  reference, error_text(resp)));
  return Status();
}

}  // namespace berth::remotes

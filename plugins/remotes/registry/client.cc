#include "plugins/remotes/registry/client.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/asio.h"
#include "core/digest.h"

namespace berth::remotes {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr int kMaxRedirects = 5;
constexpr std::size_t kMaxSmallBody = 1 << 20;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
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

Result<RegistryClient::Response> RegistryClient::send(
    const std::string& method, const Url& url, const std::map<std::string, std::string>& headers,
    const std::function<Status(std::string_view)>& sink) {
  net::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return Status(Code::kUnavailable, fmt::format("resolve {}: {}", url.host, ec.message()));
  http::request<http::empty_body> req{http::string_to_verb(method), url.target, 11};
  req.set(http::field::host,
          (url.port == "443" || url.port == "80") ? url.host : url.host + ":" + url.port);
  req.set(http::field::user_agent, "berth/" BERTH_VERSION);
  for (const auto& [k, v] : headers) req.set(k, v);
  Response resp;
  auto exchange = [&](auto& stream) -> Status {
    http::write(stream, req, ec);
    if (ec)
      return Status(Code::kUnavailable,
                    fmt::format("{} {}: send: {}", method, url.str(), ec.message()));
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    // "No limit" (boost::none) compares as exceeded in Boost 1.74's parser: use the largest.
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (method == "HEAD") p.skip(true);
    http::read_header(stream, buf, p, ec);
    if (ec)
      return Status(Code::kUnavailable, fmt::format("{} {}: {}", method, url.str(), ec.message()));
    resp.status = p.get().result_int();
    for (const auto& f : p.get())
      resp.headers[lower(std::string(f.name_string()))] = std::string(f.value());
    bool to_sink = sink && resp.status / 100 == 2;
    char chunk[64 * 1024];
    while (!p.is_done()) {
      p.get().body().data = chunk;
      p.get().body().size = sizeof chunk;
      http::read(stream, buf, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec)
        return Status(Code::kUnavailable,
                      fmt::format("{} {}: reading the body: {}", method, url.str(), ec.message()));
      std::size_t n = sizeof chunk - p.get().body().size;
      if (to_sink) {
        BERTH_RETURN_IF_ERROR(sink(std::string_view(chunk, n)));
      } else if (resp.body.size() < kMaxSmallBody) {
        resp.body.append(chunk, n);
      }
    }
    return Status();
  };
  // Blocking calls: a stalled registry is cut off by socket timeouts.
  auto set_timeouts = [&](tcp::socket& s) {
    timeval tv{static_cast<time_t>(o_.timeout.count()), 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  };
  if (!url.https) {
    tcp::socket s(io);
    net::connect(s, endpoints, ec);
    if (ec)
      return Status(Code::kUnavailable,
                    fmt::format("connect to {}:{}: {}", url.host, url.port, ec.message()));
    set_timeouts(s);
    BERTH_RETURN_IF_ERROR(exchange(s));
    return resp;
  }
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_default_verify_paths(ec);
  if (!o_.ca_file.empty()) {
    ctx.load_verify_file(o_.ca_file, ec);
    if (ec) return invalid_argument("CA file {}: {}", o_.ca_file, ec.message());
  }
  ctx.set_verify_mode(o_.skip_verify ? ssl::verify_none : ssl::verify_peer);
  ssl::stream<tcp::socket> s(io, ctx);
  if (!o_.skip_verify) s.set_verify_callback(ssl::host_name_verification(url.host));
  ::SSL_set_tlsext_host_name(s.native_handle(), url.host.c_str());
  net::connect(s.next_layer(), endpoints, ec);
  if (ec)
    return Status(Code::kUnavailable,
                  fmt::format("connect to {}:{}: {}", url.host, url.port, ec.message()));
  set_timeouts(s.next_layer());
  s.handshake(ssl::stream_base::client, ec);
  if (ec) return Status(Code::kUnavailable, fmt::format("TLS with {}: {}", url.host, ec.message()));
  BERTH_RETURN_IF_ERROR(exchange(s));
  return resp;
}

Result<std::string> RegistryClient::authorize(const std::string& challenge,
                                              const std::string& scope) {
  auto [scheme, params] = parse_challenge(challenge);
  std::string basic = o_.username.empty() ? "" : "Basic " + base64(o_.username + ":" + o_.password);
  if (scheme == "basic") {
    if (basic.empty())
      return Status(Code::kUnauthenticated, "the registry needs credentials (--user)");
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
  std::string want = params.count("scope") ? params["scope"] : scope;
  if (!want.empty()) query += (query.empty() ? "" : "&") + std::string("scope=") + url_encode(want);
  if (!query.empty()) url.target += (url.target.find('?') == std::string::npos ? "?" : "&") + query;
  std::map<std::string, std::string> headers;
  if (!basic.empty()) headers["Authorization"] = basic;
  BERTH_TRY(auto resp, send("GET", url, headers, nullptr));
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

Result<RegistryClient::Response> RegistryClient::request(
    const std::string& method, const Repository& repo, const std::string& path,
    const std::map<std::string, std::string>& headers,
    const std::function<Status(std::string_view)>& sink) {
  BERTH_TRY(auto url, Url::parse(fmt::format("{}://{}/v2/{}{}", o_.plain_http ? "http" : "https",
                                             repo.host, repo.name, path)));
  std::string scope = fmt::format("repository:{}:pull", repo.name);
  std::string key = repo.host + " " + scope;
  std::map<std::string, std::string> h = headers;
  {
    std::lock_guard lock(mu_);
    if (auto it = auth_.find(key); it != auth_.end()) h["Authorization"] = it->second;
  }
  bool retried_auth = false;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    BERTH_TRY(auto resp, send(method, url, h, sink));
    if (resp.status == 401 && !retried_auth && resp.headers.count("www-authenticate")) {
      BERTH_TRY(auto value, authorize(resp.headers["www-authenticate"], scope));
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
      return Status(Code::kUnauthenticated,
                    fmt::format("{} {}: 401 unauthorized{}", method, url.str(),
                                o_.username.empty() ? " (no credentials given)" : ""));
    if (resp.status / 100 == 3 && resp.headers.count("location")) {
      std::string loc = resp.headers["location"];
      Url next;
      if (loc.rfind("http", 0) == 0) {
        BERTH_TRY(next, Url::parse(loc));
      } else {
        next = url;
        next.target = loc;
      }
      // Credentials stay with the registry; a storage backend gets a signed URL instead.
      if (next.host != url.host) h.erase("Authorization");
      url = next;
      continue;
    }
    return resp;
  }
  return Status(Code::kUnavailable, fmt::format("{} {}: too many redirects", method, url.str()));
}

Status RegistryClient::fetch_blob(const Repository& repo, const std::string& digest,
                                  const std::function<Status(std::string_view)>& sink,
                                  std::int64_t* size_out) {
  if (digest.rfind("sha256:", 0) != 0 || digest.size() != 71)
    return invalid_argument("\"{}\" is not a sha256 digest", digest);
  core::Sha256 hash;
  std::int64_t got = 0;
  auto counting = [&](std::string_view data) -> Status {
    hash.update(data);
    got += static_cast<std::int64_t>(data.size());
    return sink(data);
  };
  BERTH_TRY(auto resp, request("GET", repo, "/blobs/" + digest, {{"Accept", "*/*"}}, counting));
  if (resp.status == 404)
    return not_found("blob {} not found in {}/{}", digest, repo.host, repo.name);
  if (resp.status != 200)
    return Status(Code::kUnavailable, fmt::format("GET blob {} from {}/{}: HTTP {}", digest,
                                                  repo.host, repo.name, resp.status));
  if (auto it = resp.headers.find("content-length");
      it != resp.headers.end() && std::to_string(got) != it->second)
    return Status(Code::kDataLoss, fmt::format("blob {}: got {} bytes, Content-Length said {}",
                                               digest, got, it->second));
  if (auto it = resp.headers.find("docker-content-digest");
      it != resp.headers.end() && it->second != digest)
    return Status(Code::kDataLoss,
                  fmt::format("blob {}: the registry says it sent {}", digest, it->second));
  if (hash.digest() != digest)
    return Status(Code::kDataLoss,
                  fmt::format("blob {}: the bytes received hash to {}", digest, hash.digest()));
  if (size_out) *size_out = got;
  return Status();
}

}  // namespace berth::remotes

#include "core/remotes/hosts.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>

namespace berth::remotes {
namespace {

namespace fs = std::filesystem;

// The directory name for a registry host: Docker Hub's API host is configured as docker.io.
std::string config_name(const std::string& host) {
  return host == "registry-1.docker.io" ? "docker.io" : host;
}

std::string default_server(const std::string& host, bool plain_http) {
  if (host == "registry-1.docker.io") return "https://registry-1.docker.io";
  return fmt::format("{}://{}", plain_http ? "http" : "https", host);
}

// "https://h:1/x" + override_path -> API base "https://h:1/x" or "https://h:1/x/v2".
std::string api_base(std::string url, bool override_path) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto scheme_end = url.find("://");
  bool has_path =
      scheme_end != std::string::npos && url.find('/', scheme_end + 3) != std::string::npos;
  if (override_path && has_path) return url;
  return url + "/v2";
}

Result<std::vector<std::string>> strings(const toml::node* n, const std::string& where) {
  std::vector<std::string> out;
  if (!n) return out;
  if (auto s = n->value<std::string>()) return std::vector<std::string>{*s};
  if (auto* a = n->as_array()) {
    for (const auto& e : *a) {
      if (auto s = e.value<std::string>()) {
        out.push_back(*s);
      } else if (auto* pair = e.as_array()) {  // client = [["cert", "key"]]
        for (const auto& p : *pair)
          if (auto ps = p.value<std::string>()) out.push_back(*ps);
      } else {
        return invalid_argument("{}: expected strings", where);
      }
    }
    return out;
  }
  return invalid_argument("{}: expected a string or a list of strings", where);
}

std::string resolve_path(const std::string& dir, const std::string& p) {
  return p.empty() || p[0] == '/' ? p : dir + "/" + p;
}

// Reads one host's settings (the top level for the server, or a [host."url"] table).
Status read_host(const toml::table& t, const std::string& dir, const std::string& where,
                 Endpoint& e) {
  if (const auto* caps = t.get("capabilities")) {
    BERTH_TRY(auto list, strings(caps, where + ".capabilities"));
    e.pull = e.resolve = e.push = false;
    for (const auto& c : list) {
      if (c == "pull") {
        e.pull = true;
      } else if (c == "resolve") {
        e.resolve = true;
      } else if (c == "push") {
        e.push = true;
      } else {
        return invalid_argument("{}.capabilities: unknown capability \"{}\"", where, c);
      }
    }
  }
  BERTH_TRY(auto cas, strings(t.get("ca"), where + ".ca"));
  for (const auto& ca : cas) e.options.ca_files.push_back(resolve_path(dir, ca));
  BERTH_TRY(auto client, strings(t.get("client"), where + ".client"));
  if (!client.empty()) {
    e.options.cert_file = resolve_path(dir, client[0]);
    e.options.key_file = client.size() > 1 ? resolve_path(dir, client[1]) : e.options.cert_file;
  }
  if (const auto* sv = t.get("skip_verify")) {
    auto b = sv->value<bool>();
    if (!b) return invalid_argument("{}.skip_verify: expected true or false", where);
    e.options.skip_verify = e.options.skip_verify || *b;
  }
  if (const auto* h = t.get("header")) {
    const auto* ht = h->as_table();
    if (!ht) return invalid_argument("{}.header: expected a table", where);
    for (const auto& [k, v] : *ht) {
      BERTH_TRY(auto values, strings(&v, where + ".header." + std::string(k.str())));
      if (!values.empty()) e.options.headers[std::string(k.str())] = values[0];
    }
  }
  return Status();
}

// Docker's certs.d layout: *.crt CAs, <name>.cert + <name>.key client pairs.
void read_cert_files(const std::string& dir, HostOptions& o) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& f : fs::directory_iterator(dir, ec)) names.push_back(f.path().filename());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    auto ext = fs::path(n).extension().string();
    if (ext == ".crt") o.ca_files.push_back(dir + "/" + n);
    if (ext == ".cert" && o.cert_file.empty()) {
      std::string key = dir + "/" + fs::path(n).stem().string() + ".key";
      if (fs::exists(key, ec)) {
        o.cert_file = dir + "/" + n;
        o.key_file = key;
      }
    }
  }
}

}  // namespace

Result<std::vector<Endpoint>> host_endpoints(const std::string& hosts_dir, const std::string& host,
                                             const HostOptions& defaults) {
  Endpoint server;
  server.options = defaults;
  server.base = api_base(default_server(host, defaults.plain_http), false);
  if (hosts_dir.empty()) return std::vector<Endpoint>{server};

  std::error_code ec;
  std::string dir = hosts_dir + "/" + config_name(host);
  if (!fs::is_directory(dir, ec)) dir = hosts_dir + "/_default";
  if (!fs::is_directory(dir, ec)) return std::vector<Endpoint>{server};
  std::string file = dir + "/hosts.toml";
  if (!fs::exists(file, ec)) {
    read_cert_files(dir, server.options);
    return std::vector<Endpoint>{server};
  }

  toml::table doc;
  try {
    doc = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    return invalid_argument("{}:{}: {}", file, e.source().begin.line, e.description());
  }
  if (auto s = doc["server"].value<std::string>()) {
    if (s->rfind("http://", 0) != 0 && s->rfind("https://", 0) != 0)
      return invalid_argument("{}: server \"{}\" is not an http:// or https:// URL", file, *s);
    server.base = api_base(*s, false);
  }
  BERTH_RETURN_IF_ERROR(read_host(doc, dir, file, server));

  // Mirrors in the order they appear in the file (toml++ keeps tables sorted by key).
  std::vector<std::pair<std::size_t, Endpoint>> mirrors;
  if (const auto* hosts = doc.get("host")) {
    const auto* ht = hosts->as_table();
    if (!ht) return invalid_argument("{}: host must be a table of [host.\"<url>\"] tables", file);
    for (const auto& [url, node] : *ht) {
      std::string where = fmt::format("{}: host.\"{}\"", file, url.str());
      const auto* t = node.as_table();
      if (!t) return invalid_argument("{}: expected a table", where);
      std::string u(url.str());
      if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
        return invalid_argument("{}: not an http:// or https:// URL", where);
      Endpoint m;
      m.options = defaults;
      m.options.plain_http = u.rfind("http://", 0) == 0;
      // The credentials a pull or push was given are the registry's, not a mirror's: a mirror
      // gets them only when its table says so.
      m.options.username.clear();
      m.options.password.clear();
      if (const auto* c = t->get("credentials")) {
        auto b = c->value<bool>();
        if (!b) return invalid_argument("{}.credentials: expected true or false", where);
        if (*b) {
          m.options.username = defaults.username;
          m.options.password = defaults.password;
        }
      }
      bool override_path = (*t)["override_path"].value_or(false);
      m.base = api_base(u, override_path);
      BERTH_RETURN_IF_ERROR(read_host(*t, dir, where, m));
      mirrors.emplace_back(node.source().begin.line, std::move(m));
    }
  }
  std::stable_sort(mirrors.begin(), mirrors.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Endpoint> out;
  for (auto& [line, m] : mirrors) out.push_back(std::move(m));
  server.options.plain_http = server.base.rfind("http://", 0) == 0;
  out.push_back(std::move(server));
  return out;
}

}  // namespace berth::remotes

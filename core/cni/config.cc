#include "core/cni/config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/fs.h"

namespace berth::cni {
namespace {

using nlohmann::json;

constexpr const char* kVersions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

// A config file is small; a huge one is a mistake, not a network.
constexpr std::size_t kMaxConfigBytes = 1 << 20;

Status bad(const std::string& file, std::string_view why) {
  return invalid_argument("CNI config {}: {}", file.empty() ? "(built in)" : file, why);
}

}  // namespace

bool supported_version(std::string_view v) {
  return std::find(std::begin(kVersions), std::end(kVersions), v) != std::end(kVersions);
}

std::string supported_versions_text() {
  std::string out;
  for (const char* v : kVersions) out += (out.empty() ? "" : ", ") + std::string(v);
  return out;
}

json NetworkList::document() const {
  json d = {{"cniVersion", cni_version}, {"name", name}, {"plugins", plugins}};
  if (disable_check) d["disableCheck"] = true;
  return d;
}

std::vector<std::string> NetworkList::types() const {
  std::vector<std::string> out;
  for (const auto& p : plugins) out.push_back(p.value("type", std::string()));
  return out;
}

Status validate_name(std::string_view what, std::string_view name) {
  if (name.empty()) return invalid_argument("{} name is empty", what);
  if (name.size() > 128) return invalid_argument("{} name \"{}\" is longer than 128", what, name);
  auto ok = [](char c, bool first) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           (!first && (c == '_' || c == '.' || c == '-'));
  };
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0))
      return invalid_argument(
          "{} name \"{}\": only letters, digits, '_', '.' and '-' (not first) are allowed", what,
          name);
  }
  return Status();
}

Result<NetworkList> parse_network(std::string_view text, const std::string& file) {
  if (text.size() > kMaxConfigBytes) return bad(file, "larger than 1 MiB");
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return bad(file, "not valid JSON");
  if (!doc.is_object()) return bad(file, "not a JSON object");
  NetworkList n;
  n.file = file;
  auto str = [&](const json& o, const char* key, std::string& out) -> Status {
    if (!o.contains(key)) return Status();
    if (!o[key].is_string()) return bad(file, fmt::format("\"{}\" is not a string", key));
    out = o[key].get<std::string>();
    return Status();
  };
  BERTH_RETURN_IF_ERROR(str(doc, "name", n.name));
  BERTH_RETURN_IF_ERROR(str(doc, "cniVersion", n.cni_version));
  if (n.name.empty()) return bad(file, "no \"name\"");
  if (Status st = validate_name("network", n.name); !st.ok()) return bad(file, st.message());
  if (n.cni_version.empty()) return bad(file, "no \"cniVersion\"");
  if (!supported_version(n.cni_version))
    return bad(file, fmt::format("cniVersion \"{}\" is not supported (Berth speaks {})",
                                 n.cni_version, supported_versions_text()));
  if (doc.contains("disableCheck")) {
    if (!doc["disableCheck"].is_boolean()) return bad(file, "\"disableCheck\" is not a boolean");
    n.disable_check = doc["disableCheck"].get<bool>();
  }
  if (doc.contains("plugins")) {
    if (!doc["plugins"].is_array() || doc["plugins"].empty())
      return bad(file, "\"plugins\" is not a non-empty array");
    n.plugins = doc["plugins"];
  } else {
    // A single plugin's config: the document is the plugin.
    json p = doc;
    p.erase("name");
    p.erase("cniVersion");
    n.plugins = json::array({p});
  }
  for (std::size_t i = 0; i < n.plugins.size(); ++i) {
    const json& p = n.plugins[i];
    if (!p.is_object()) return bad(file, fmt::format("plugins[{}] is not an object", i));
    if (!p.contains("type") || !p["type"].is_string())
      return bad(file, fmt::format("plugins[{}] has no \"type\"", i));
    if (Status st = validate_name("plugin type", p["type"].get<std::string>()); !st.ok())
      return bad(file, fmt::format("plugins[{}]: {}", i, st.message()));
    if (p.contains("capabilities") && !p["capabilities"].is_object())
      return bad(file, fmt::format("plugins[{}]: \"capabilities\" is not an object", i));
  }
  return n;
}

std::vector<ConfigFile> load_dir(const std::string& dir) {
  std::vector<ConfigFile> out;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if (ext != ".conflist" && ext != ".conf" && ext != ".json") continue;
    if (!e.is_regular_file(ec)) continue;
    files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto text = core::read_file(f);
    if (!text.ok()) {
      out.push_back({f, text.status()});
      continue;
    }
    out.push_back({f, parse_network(*text, f)});
  }
  return out;
}

Result<NetworkList> find_network(const std::string& dir, std::string_view name) {
  BERTH_RETURN_IF_ERROR(validate_name("network", name));
  std::vector<std::string> broken;
  for (auto& cf : load_dir(dir)) {
    if (cf.network.ok()) {
      if (cf.network->name == name) return std::move(*cf.network);
      continue;
    }
    // A broken file whose stem is the name is most likely the network asked for: say why.
    if (std::filesystem::path(cf.file).stem() == name) return cf.network.status();
    broken.push_back(cf.network.status().message());
  }
  std::string hint;
  for (const auto& b : broken) hint += "; " + b;
  return not_found("network \"{}\" is not configured in {} (berth network ls lists them){}", name,
                   dir, hint);
}

std::string default_network_conflist(const DefaultNetwork& d) {
  json ipam = {{"type", "host-local"},
               {"ranges", json::array({json::array({{{"subnet", d.subnet}}})})},
               {"routes", json::array({{{"dst", "0.0.0.0/0"}}})}};
  if (!d.ipam_dir.empty()) ipam["dataDir"] = d.ipam_dir;
  json doc = {
      {"cniVersion", "1.0.0"},
      {"name", d.name},
      {"plugins",
       json::array({{{"type", "bridge"},
                     {"bridge", d.bridge},
                     {"isGateway", true},
                     {"ipMasq", d.masquerade},
                     {"hairpinMode", true},
                     {"ipam", ipam}},
                    {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}},
                    {{"type", "firewall"}},
                    {{"type", "tuning"}}})}};
  return doc.dump(2) + "\n";
}

}  // namespace berth::cni

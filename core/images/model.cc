#include "core/images/model.h"

#include <berth/content.h>
#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "core/digest.h"

namespace berth::images::model {
namespace {

using nlohmann::json;

bool one_of(std::string_view mt, std::initializer_list<std::string_view> list) {
  for (auto x : list) {
    if (mt == x) return true;
  }
  return false;
}

Status field_error(std::string_view where, std::string_view why) {
  return invalid_argument("{}: {}", where, why);
}

Result<std::string> string_field(const json& j, const char* key, const std::string& where,
                                 bool required) {
  if (!j.contains(key)) {
    if (required) return field_error(where + "." + key, "is required");
    return std::string();
  }
  if (!j[key].is_string()) return field_error(where + "." + key, "must be a string");
  return j[key].get<std::string>();
}

Result<std::map<std::string, std::string>> annotations(const json& j, const std::string& where) {
  std::map<std::string, std::string> out;
  if (!j.contains("annotations") || j["annotations"].is_null()) return out;
  if (!j["annotations"].is_object())
    return field_error(where + ".annotations", "must be an object");
  for (const auto& [k, v] : j["annotations"].items()) {
    if (!v.is_string()) return field_error(where + ".annotations." + k, "must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

Result<Descriptor> descriptor(const json& j, const std::string& where) {
  if (!j.is_object()) return field_error(where, "must be an object");
  Descriptor d;
  BERTH_TRY(d.media_type, string_field(j, "mediaType", where, true));
  BERTH_TRY(d.digest, string_field(j, "digest", where, true));
  if (Status st = content::validate_digest(d.digest); !st.ok())
    return field_error(where + ".digest", st.message());
  if (!j.contains("size") || !j["size"].is_number_integer())
    return field_error(where + ".size", "must be an integer");
  d.size = j["size"].get<std::int64_t>();
  if (d.size < 0) return field_error(where + ".size", "must not be negative");
  BERTH_TRY(d.annotations, annotations(j, where));
  return d;
}

Result<json> parse_object(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", what);
  if (!j.is_object()) return invalid_argument("{}: must be a JSON object", what);
  return j;
}

Status schema_version(const json& j, std::string_view what) {
  if (!j.contains("schemaVersion") || !j["schemaVersion"].is_number_integer() ||
      j["schemaVersion"].get<int>() != 2) {
    return invalid_argument("{}.schemaVersion: must be 2", what);
  }
  return Status();
}

}  // namespace

namespace media_type {
bool is_index(std::string_view mt) { return one_of(mt, {kOciIndex, kDockerManifestList}); }
bool is_manifest(std::string_view mt) { return one_of(mt, {kOciManifest, kDockerManifest}); }
bool is_config(std::string_view mt) { return one_of(mt, {kOciConfig, kDockerConfig}); }
bool is_layer(std::string_view mt) {
  return one_of(
      mt, {diff::kMediaTypeOciLayer, diff::kMediaTypeOciLayerGzip, diff::kMediaTypeOciLayerZstd,
           diff::kMediaTypeDockerLayer, diff::kMediaTypeDockerLayerGzip,
           "application/vnd.oci.image.layer.nondistributable.v1.tar",
           "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
           "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"});
}
}  // namespace media_type

std::string Platform::to_string() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Platform normalize(Platform p) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  p.os = lower(p.os);
  p.architecture = lower(p.architecture);
  p.variant = lower(p.variant);
  if (p.os == "macos") p.os = "darwin";
  const std::string& a = p.architecture;
  if (a == "x86_64" || a == "x86-64" || a == "amd64") {
    p.architecture = "amd64";
    if (p.variant == "v1") p.variant.clear();
  } else if (a == "i386" || a == "i686") {
    p.architecture = "386";
    p.variant.clear();
  } else if (a == "aarch64" || a == "arm64") {
    p.architecture = "arm64";
    if (p.variant == "8" || p.variant == "v8") p.variant.clear();
  } else if (a == "armhf") {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (a == "armel") {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (a == "arm") {
    if (p.variant.empty() || p.variant == "7") p.variant = "v7";
    if (p.variant == "5" || p.variant == "6" || p.variant == "8") p.variant = "v" + p.variant;
  }
  return p;
}

Result<Platform> parse_platform(std::string_view spec) {
  if (spec.empty()) return invalid_argument("platform must not be empty");
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    auto pos = spec.find('/', start);
    parts.emplace_back(spec.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  for (const auto& p : parts) {
    if (p.empty()) return invalid_argument("platform \"{}\" has an empty component", spec);
  }
  Platform p;
  if (parts.size() == 1) {
    p.os = "linux";
    p.architecture = parts[0];
  } else if (parts.size() <= 3) {
    p.os = parts[0];
    p.architecture = parts[1];
    if (parts.size() == 3) p.variant = parts[2];
  } else {
    return invalid_argument("platform \"{}\" must be os/arch[/variant]", spec);
  }
  return normalize(p);
}

Platform host_platform() {
  utsname u{};
  ::uname(&u);
  Platform p{"linux", u.machine, ""};
  return normalize(p);
}

std::vector<Platform> compatible(const Platform& wanted_in) {
  Platform w = normalize(wanted_in);
  std::vector<Platform> out{w};
  auto arm_down = [&](int from) {
    for (int v = from; v >= 5; --v) out.push_back({w.os, "arm", "v" + std::to_string(v)});
  };
  if (w.architecture == "amd64") {
    out.push_back({w.os, "386", ""});
  } else if (w.architecture == "arm64") {
    arm_down(8);
  } else if (w.architecture == "arm" && w.variant.size() == 2 && w.variant[0] == 'v') {
    arm_down(w.variant[1] - '0' - 1);
  }
  return out;
}

std::optional<std::size_t> match_rank(const Platform& wanted, const Platform& candidate) {
  Platform c = normalize(candidate);
  auto list = compatible(wanted);
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i].os == c.os && list[i].architecture == c.architecture &&
        (list[i].variant == c.variant || (i == 0 && wanted.variant.empty()))) {
      return i;
    }
  }
  return std::nullopt;
}

Result<Index> parse_index(std::string_view text) {
  BERTH_TRY(auto j, parse_object(text, "index"));
  BERTH_RETURN_IF_ERROR(schema_version(j, "index"));
  Index idx;
  BERTH_TRY(idx.media_type, string_field(j, "mediaType", "index", false));
  if (!idx.media_type.empty() && !media_type::is_index(idx.media_type)) {
    return field_error("index.mediaType",
                       fmt::format("\"{}\" is not an index media type", idx.media_type));
  }
  if (!j.contains("manifests") || !j["manifests"].is_array())
    return field_error("index.manifests", "must be an array");
  for (std::size_t i = 0; i < j["manifests"].size(); ++i) {
    std::string where = fmt::format("index.manifests[{}]", i);
    const auto& m = j["manifests"][i];
    IndexEntry e;
    BERTH_TRY(e.descriptor, descriptor(m, where));
    if (m.contains("platform") && !m["platform"].is_null()) {
      const auto& p = m["platform"];
      if (!p.is_object()) return field_error(where + ".platform", "must be an object");
      Platform pl;
      BERTH_TRY(pl.os, string_field(p, "os", where + ".platform", true));
      BERTH_TRY(pl.architecture, string_field(p, "architecture", where + ".platform", true));
      BERTH_TRY(pl.variant, string_field(p, "variant", where + ".platform", false));
      e.platform = normalize(pl);
    }
    idx.manifests.push_back(std::move(e));
  }
  BERTH_TRY(idx.annotations, annotations(j, "index"));
  return idx;
}

Result<Manifest> parse_manifest(std::string_view text) {
  BERTH_TRY(auto j, parse_object(text, "manifest"));
  BERTH_RETURN_IF_ERROR(schema_version(j, "manifest"));
  Manifest m;
  BERTH_TRY(m.media_type, string_field(j, "mediaType", "manifest", false));
  if (!m.media_type.empty() && !media_type::is_manifest(m.media_type)) {
    return field_error("manifest.mediaType",
                       fmt::format("\"{}\" is not a manifest media type", m.media_type));
  }
  if (!j.contains("config")) return field_error("manifest.config", "is required");
  BERTH_TRY(m.config, descriptor(j["config"], "manifest.config"));
  if (!j.contains("layers") || !j["layers"].is_array())
    return field_error("manifest.layers", "must be an array");
  for (std::size_t i = 0; i < j["layers"].size(); ++i) {
    std::string where = fmt::format("manifest.layers[{}]", i);
    BERTH_TRY(auto d, descriptor(j["layers"][i], where));
    if (!media_type::is_layer(d.media_type)) {
      return field_error(where + ".mediaType",
                         fmt::format("\"{}\" is not a layer media type", d.media_type));
    }
    m.layers.push_back(std::move(d));
  }
  BERTH_TRY(m.annotations, annotations(j, "manifest"));
  return m;
}

Result<Config> parse_config(std::string_view text) {
  BERTH_TRY(auto j, parse_object(text, "config"));
  Config c;
  c.raw = std::string(text);
  BERTH_TRY(c.platform.os, string_field(j, "os", "config", true));
  BERTH_TRY(c.platform.architecture, string_field(j, "architecture", "config", true));
  BERTH_TRY(c.platform.variant, string_field(j, "variant", "config", false));
  c.platform = normalize(c.platform);
  if (!j.contains("rootfs") || !j["rootfs"].is_object())
    return field_error("config.rootfs", "is required");
  const auto& r = j["rootfs"];
  BERTH_TRY(auto type, string_field(r, "type", "config.rootfs", true));
  if (type != "layers")
    return field_error("config.rootfs.type", fmt::format("\"{}\" is not \"layers\"", type));
  if (!r.contains("diff_ids") || !r["diff_ids"].is_array())
    return field_error("config.rootfs.diff_ids", "must be an array");
  for (std::size_t i = 0; i < r["diff_ids"].size(); ++i) {
    std::string where = fmt::format("config.rootfs.diff_ids[{}]", i);
    if (!r["diff_ids"][i].is_string()) return field_error(where, "must be a string");
    std::string d = r["diff_ids"][i].get<std::string>();
    if (Status st = content::validate_digest(d); !st.ok()) return field_error(where, st.message());
    c.diff_ids.push_back(std::move(d));
  }
  return c;
}

Result<IndexEntry> select_manifest(const Index& index, const Platform& wanted) {
  std::optional<std::size_t> best_rank;
  const IndexEntry* best = nullptr;
  std::vector<std::string> available;
  for (const auto& e : index.manifests) {
    if (!media_type::is_manifest(e.descriptor.media_type)) continue;
    if (!e.platform) continue;
    available.push_back(e.platform->to_string());
    auto rank = match_rank(wanted, *e.platform);
    if (rank && (!best_rank || *rank < *best_rank)) {
      best_rank = rank;
      best = &e;
    }
  }
  if (!best) {
    std::string list;
    for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
    return not_found("no manifest for platform {} (available: {})", normalize(wanted).to_string(),
                     list.empty() ? "none" : list);
  }
  return *best;
}

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const auto& d : diff_ids) {
    out.push_back(out.empty() ? d : core::Sha256::digest_of(out.back() + " " + d));
  }
  return out;
}

Result<std::string> normalize_reference(std::string_view ref_in) {
  std::string ref(ref_in);
  if (ref.empty()) return invalid_argument("image reference must not be empty");
  for (char c : ref) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      return invalid_argument("image reference \"{}\" contains whitespace", ref);
    }
  }
  std::string digest;
  if (auto at = ref.find('@'); at != std::string::npos) {
    digest = ref.substr(at);
    ref = ref.substr(0, at);
    BERTH_RETURN_IF_ERROR(content::validate_digest(digest.substr(1))
                              .with_context(fmt::format("image reference \"{}\"", ref_in)));
  }
  std::string host, path = ref;
  if (auto slash = ref.find('/'); slash != std::string::npos) {
    std::string first = ref.substr(0, slash);
    if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
        first == "localhost") {
      host = first;
      path = ref.substr(slash + 1);
    }
  }
  if (host.empty()) {
    host = "docker.io";
    if (path.find('/') == std::string::npos) path = "library/" + path;
  } else if (host == "index.docker.io") {
    host = "docker.io";
  }
  std::string tag;
  auto colon = path.rfind(':');
  if (colon != std::string::npos) {
    tag = path.substr(colon + 1);
    path = path.substr(0, colon);
    if (tag.empty()) return invalid_argument("image reference \"{}\" has an empty tag", ref_in);
  }
  if (path.empty()) return invalid_argument("image reference \"{}\" has no repository", ref_in);
  for (char c : path) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' ||
          c == '-')) {
      return invalid_argument(
          "image reference \"{}\": repository \"{}\" may use only a-z 0-9 . _ - /", ref_in, path);
    }
  }
  if (tag.empty() && digest.empty()) tag = "latest";
  return host + "/" + path + (tag.empty() ? "" : ":" + tag) + digest;
}

}  // namespace berth::images::model

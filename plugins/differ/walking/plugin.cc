// io.containerd.differ.v1.walking: registration only; the differ is in walking.cc.
#include "core/size.h"
#include "plugins/differ/walking/walking.h"

namespace berth::plugins::differ {
namespace {

// A size given as "32GiB" (or a plain number of bytes).
Status read_size(ConfigReader& in, std::string_view key, std::int64_t& out) {
  std::int64_t bytes = out;
  if (in.read(key, bytes).ok()) {
    if (bytes <= 0) return invalid_argument("{}: must be positive", key);
    out = bytes;
    return Status();
  }
  std::string text;
  BERTH_RETURN_IF_ERROR(in.read(key, text));
  if (text.empty()) return Status();
  auto parsed = core::parse_size(text);
  if (!parsed.ok()) return invalid_argument("{}: {}", key, parsed.status().message());
  out = *parsed;
  return Status();
}

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kDiffer);
  r.id = "walking";
  r.requires_types = {std::string(plugin_type::kMetadata)};
  // Bounds on what one layer may unpack to (gzip and zstd bombs); see apply.h.
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    ApplyLimits limits;
    BERTH_RETURN_IF_ERROR(read_size(in, "max_layer_size", limits.max_bytes));
    BERTH_RETURN_IF_ERROR(in.read("max_layer_entries", limits.max_entries));
    // Layers on disk before their snapshot is committed (a power loss must not leave a committed
    // layer with lost files). Off trades that for unpack speed where layers can be pulled again.
    BERTH_RETURN_IF_ERROR(in.read("sync_layers", limits.sync));
    if (limits.max_entries <= 0) return invalid_argument("max_layer_entries: must be positive");
    return config_value(limits);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    const auto& limits = ic.config<ApplyLimits>();
    ic.exports()["max_layer_size"] = std::to_string(limits.max_bytes);
    ic.exports()["max_layer_entries"] = std::to_string(limits.max_entries);
    ic.exports()["sync_layers"] = limits.sync ? "true" : "false";
    return std::shared_ptr<Plugin>(
        std::make_shared<WalkingDiffer>(std::move(store), ic.state(), limits));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::differ

BERTH_PLUGIN_MODULE(berth::plugins::differ::registrations)

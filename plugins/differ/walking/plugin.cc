// io.containerd.differ.v1.walking: registration only; the differ is in walking.cc.
#include "plugins/differ/walking/walking.h"

namespace berth::plugins::differ {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kDiffer);
  r.id = "walking";
  r.requires_types = {std::string(plugin_type::kMetadata)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    return std::shared_ptr<Plugin>(std::make_shared<WalkingDiffer>(std::move(store), ic.state()));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::differ

BERTH_PLUGIN_MODULE(berth::plugins::differ::registrations)

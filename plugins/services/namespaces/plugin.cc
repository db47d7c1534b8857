// io.containerd.grpc.v1.namespaces: registration only; the service is in namespaces.cc.
#include "plugins/services/namespaces/namespaces.h"

namespace berth::plugins::services {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "namespaces";
  r.requires_types = {std::string(plugin_type::kMetadata)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    return std::shared_ptr<Plugin>(std::make_shared<NamespacesService>(std::move(store)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

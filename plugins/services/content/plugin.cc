// io.containerd.grpc.v1.content: registration only; the service is in content_service.cc.
#include "plugins/services/content/content_service.h"

namespace berth::plugins::services {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "content";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kEvent)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    return std::shared_ptr<Plugin>(
        std::make_shared<ContentService>(std::move(store), exchange.ok() ? *exchange : nullptr));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

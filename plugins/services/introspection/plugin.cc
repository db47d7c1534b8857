// io.containerd.grpc.v1.introspection: registration only; the service is in introspection.cc.
#include "plugins/services/introspection/introspection.h"

namespace berth::plugins::services {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "introspection";
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    auto svc = std::make_shared<IntrospectionService>(ic.plugins(), ic.root() + "/uuid");
    // Create the UUID now so it exists (and is persisted) before the first client asks.
    BERTH_TRY(auto id, svc->uuid());
    ic.exports()["uuid"] = id;
    return std::shared_ptr<Plugin>(svc);
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

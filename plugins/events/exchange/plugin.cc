// io.containerd.event.v1.exchange: registration only; the exchange is in exchange.cc.
#include "plugins/events/exchange/exchange.h"

namespace berth::plugins::events {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kEvent);
  r.id = "exchange";
  r.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return std::shared_ptr<Plugin>(std::make_shared<Exchange>());
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::events

BERTH_PLUGIN_MODULE(berth::plugins::events::registrations)

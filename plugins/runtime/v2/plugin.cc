// io.containerd.runtime.v2.task: the shim manager (see shim_manager.h).
//
//   [plugins."io.containerd.runtime.v2.task"]
//     shims = { "io.containerd.berth.v1" = "berth-shim" }   # runtime name -> shim binary
//     start_timeout = "20s"
//     shutdown_timeout = "3s"
#include <unistd.h>

#include <climits>

#include "plugins/runtime/v2/shim_manager.h"

namespace berth::plugins::runtime_v2 {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kRuntimeV2);
  r.id = "task";
  r.requires_types = {std::string(plugin_type::kEvent)};
  r.config = [](ConfigReader& rd) -> Result<std::shared_ptr<const void>> {
    auto c = std::make_shared<Config>();
    std::map<std::string, std::string> shims;
    BERTH_RETURN_IF_ERROR(rd.read("shims", shims));
    for (const auto& [k, v] : shims) c->shims[k] = v;
    BERTH_RETURN_IF_ERROR(rd.read_duration("start_timeout", c->start_timeout));
    BERTH_RETURN_IF_ERROR(rd.read_duration("shutdown_timeout", c->shutdown_timeout));
    if (c->start_timeout.count() <= 0) return rd.invalid("start_timeout", "must be positive");
    return std::shared_ptr<const void>(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    Paths p{ic.root(), ic.state(), ic.grpc_address(), ic.ttrpc_address(), self_path()};
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    BERTH_TRY(auto m,
              ShimManager::create(ic.config<Config>(), p, exchange.ok() ? *exchange : nullptr));
    ic.exports()["shims"] = "io.containerd.berth.v1=berth-shim";
    return std::shared_ptr<Plugin>(m);
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::runtime_v2

BERTH_PLUGIN_MODULE(berth::plugins::runtime_v2::registrations)

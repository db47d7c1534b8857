// Registers a URI that an in-tree plugin already has: refused, the first one stays.
#include <berth/plugin.h>

namespace {
class Nothing : public berth::Plugin {};
std::vector<berth::Registration> registrations() {
  berth::Registration r;
  r.type = "io.containerd.grpc.v1";
  r.id = "version";
  r.init = [](berth::InitContext&) -> berth::Result<std::shared_ptr<berth::Plugin>> {
    return std::shared_ptr<berth::Plugin>(std::make_shared<Nothing>());
  };
  return {r};
}
}  // namespace

BERTH_PLUGIN_MODULE(registrations)

// A plugin whose init throws: reported as an error for that plugin only.
#include <berth/plugin.h>

#include <stdexcept>

namespace {
std::vector<berth::Registration> registrations() {
  berth::Registration r;
  r.type = "io.berth.test.v1";
  r.id = "thrower";
  r.init = [](berth::InitContext&) -> berth::Result<std::shared_ptr<berth::Plugin>> {
    throw std::runtime_error("thrown on purpose");
  };
  return {r};
}
}  // namespace

BERTH_PLUGIN_MODULE(registrations)

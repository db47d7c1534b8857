// Built with a foreign ABI key: berthd must refuse it without calling berth_plugin_register.
#include <berth/plugin.h>

#include <cstdlib>

namespace {
std::vector<berth::Registration> registrations() {
  std::abort();  // never reached: the key check comes first
}
}  // namespace

BERTH_PLUGIN_MODULE(registrations)

// io.berth.proxy.v1.io.containerd.snapshotter.v1: the factory the daemon asks to connect
// [proxy_plugins.NAME] type = "snapshot" entries.
#include <berth/snapshots.h>

#include "snapshotters/proxy/client.h"

namespace berth::snapshotters {
namespace {

class ProxyPlugin final : public snapshots::SnapshotterPlugin {
 public:
  explicit ProxyPlugin(std::shared_ptr<ProxySnapshotter> s) : s_(std::move(s)) {}
  std::shared_ptr<snapshots::Snapshotter> snapshotter() override { return s_; }

 private:
  std::shared_ptr<ProxySnapshotter> s_;
};

class Factory final : public ProxyFactory {
 public:
  Result<std::shared_ptr<Plugin>> connect(InitContext& ic, const std::string& name,
                                          const std::string& address) override {
    ic.exports()["address"] = address;
    return std::shared_ptr<Plugin>(
        std::make_shared<ProxyPlugin>(std::make_shared<ProxySnapshotter>(name, address)));
  }
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(kProxyFactoryType);
  r.id = std::string(plugin_type::kSnapshotter);
  r.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return std::shared_ptr<Plugin>(std::make_shared<Factory>());
  };
  return {r};
}

}  // namespace
}  // namespace berth::snapshotters

BERTH_PLUGIN_MODULE(berth::snapshotters::registrations)

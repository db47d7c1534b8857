// io.containerd.snapshotter.v1.native: registration only; the snapshotter is in native.cc.
#include <berth/snapshots.h>

#include "snapshotters/native/native.h"

namespace berth::snapshotters {
namespace {

class NativePlugin final : public snapshots::SnapshotterPlugin {
 public:
  explicit NativePlugin(std::shared_ptr<NativeSnapshotter> s) : s_(std::move(s)) {}
  std::shared_ptr<snapshots::Snapshotter> snapshotter() override { return s_; }

 private:
  std::shared_ptr<NativeSnapshotter> s_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = "io.containerd.snapshotter.v1";
  r.id = "native";
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto s, NativeSnapshotter::open(ic.root()));
    ic.exports()["root"] = ic.root();
    return std::shared_ptr<Plugin>(std::make_shared<NativePlugin>(std::move(s)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::snapshotters

BERTH_PLUGIN_MODULE(berth::snapshotters::registrations)

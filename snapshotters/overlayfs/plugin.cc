// io.containerd.snapshotter.v1.overlayfs: registration only; the snapshotter is in overlay.cc.
#include <berth/snapshots.h>

#include "snapshotters/overlayfs/overlay.h"

namespace berth::snapshotters {
namespace {

class OverlayPlugin final : public snapshots::SnapshotterPlugin {
 public:
  explicit OverlayPlugin(std::shared_ptr<OverlaySnapshotter> s) : s_(std::move(s)) {}
  std::shared_ptr<snapshots::Snapshotter> snapshotter() override { return s_; }

 private:
  std::shared_ptr<OverlaySnapshotter> s_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = "io.containerd.snapshotter.v1";
  r.id = "overlayfs";
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto s, OverlaySnapshotter::open(ic.root()));
    ic.exports()["root"] = ic.root();
    return std::shared_ptr<Plugin>(std::make_shared<OverlayPlugin>(std::move(s)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::snapshotters

BERTH_PLUGIN_MODULE(berth::snapshotters::registrations)

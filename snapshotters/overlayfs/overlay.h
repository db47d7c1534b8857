// io.containerd.snapshotter.v1.overlayfs: each snapshot is snapshots/<id>/{fs,work}; committed
// snapshots keep their directory, so a layer unpacked into an active snapshot is used in place.
// Mounts: no parent -> bind of fs; a view of one parent -> read-only bind of the parent's fs;
// otherwise overlay with index=off (when the kernel has the knob), upperdir/workdir for active
// snapshots and lowerdir nearest parent first. Chains deeper than one page of options are
// mounted by core::mount with per-layer lowerdir+ (up to the kernel's 500 layers).
#pragma once

#include "snapshotters/common/base.h"

namespace berth::snapshotters {

class OverlaySnapshotter final : public DirSnapshotter {
 public:
  // Skip (berth::skip) when the kernel cannot mount overlay on `root`'s filesystem.
  static Result<std::shared_ptr<OverlaySnapshotter>> open(const std::string& root);
  static Status supported(const std::string& root);

 protected:
  Status fill(const std::string& dir, snapshots::Kind kind,
              const std::vector<Record>& parents) override;
  std::vector<Mount> mounts_for(const Record& r, const std::vector<Record>& parents) override;
  void committed(const Record& r) override;
  std::string usage_dir(const Record& r) const override;

 private:
  bool index_off_ = false;
};

}  // namespace berth::snapshotters

// io.containerd.snapshotter.v1.native: each snapshot is the directory snapshots/<id>; an active
// snapshot with a parent starts as a full copy of it (core::copy_tree: reflinks or in-kernel
// copies, keeping owners, modes, xattrs, hard links, devices and holes). Views of a committed
// parent bind it read-only without copying. Mounts are always binds: it works on any filesystem.
#pragma once

#include "snapshotters/common/base.h"

namespace berth::snapshotters {

class NativeSnapshotter final : public DirSnapshotter {
 public:
  static Result<std::shared_ptr<NativeSnapshotter>> open(const std::string& root);

 protected:
  Status fill(const std::string& dir, snapshots::Kind kind,
              const std::vector<Record>& parents) override;
  std::vector<Mount> mounts_for(const Record& r, const std::vector<Record>& parents) override;
  std::string usage_dir(const Record& r) const override;
};

}  // namespace berth::snapshotters

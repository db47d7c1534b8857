#include "snapshotters/native/native.h"

#include <sys/stat.h>

#include "core/copy.h"

namespace berth::snapshotters {

using snapshots::Kind;

Result<std::shared_ptr<NativeSnapshotter>> NativeSnapshotter::open(const std::string& root) {
  auto s = std::shared_ptr<NativeSnapshotter>(new NativeSnapshotter());
  BERTH_RETURN_IF_ERROR(s->DirSnapshotter::open(root));
  return s;
}

Status NativeSnapshotter::fill(const std::string& dir, Kind kind,
                               const std::vector<Record>& parents) {
  if (parents.empty()) {
    if (::chmod(dir.c_str(), 0755) < 0) return from_errno(errno, "chmod \"{}\"", dir);
    return Status();
  }
  if (kind == Kind::kView) return Status();  // mounted from the parent directly
  return core::copy_tree(snapshot_dir(parents.front().id), dir);
}

std::vector<Mount> NativeSnapshotter::mounts_for(const Record& r,
                                                 const std::vector<Record>& parents) {
  if (r.kind == Kind::kView) {
    std::string src = parents.empty() ? snapshot_dir(r.id) : snapshot_dir(parents.front().id);
    return {Mount{"bind", src, "", {"ro", "rbind"}}};
  }
  return {Mount{"bind", snapshot_dir(r.id), "", {"rw", "rbind"}}};
}

std::string NativeSnapshotter::usage_dir(const Record& r) const { return snapshot_dir(r.id); }

}  // namespace berth::snapshotters

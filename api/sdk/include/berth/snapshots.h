// Snapshotters: copy-on-write filesystem trees with a parent chain.
//
// Backend snapshotters (io.containerd.snapshotter.v1.*) are not namespaced: RequestContext::ns is
// ignored and keys are whatever the caller chose. The metadata store wraps every backend in a
// namespaced view (per-namespace keys mapped to unique backend keys) — that is what clients use.
//
// Semantics (containerd's): keys of active/view snapshots and names of committed ones share one
// space; only committed snapshots can be parents; remove refuses a snapshot with children;
// snapshotters return mounts, callers mount. Thread-safe.
// Errors: NotFound (unknown key or parent), AlreadyExists (key taken), FailedPrecondition (parent
// not committed, commit of a non-active snapshot, remove with children), InvalidArgument.
#pragma once

#include <berth/context.h>
#include <berth/labels.h>
#include <berth/mount.h>
#include <berth/plugin.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace berth::snapshots {

enum class Kind { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kView: return "View";
    case Kind::kActive: return "Active";
    case Kind::kCommitted: return "Committed";
    default: return "Unknown";
  }
}

struct Info {
  Kind kind = Kind::kUnknown;
  std::string name;    // key (active/view) or name (committed)
  std::string parent;  // committed parent's name, or ""
  std::map<std::string, std::string> labels;
  Timestamp created;
  Timestamp updated;
};

struct Usage {
  std::int64_t size = 0;  // bytes
  std::int64_t inodes = 0;
};

using WalkFn = std::function<Status(const Info&)>;

// Filter fields of a snapshot: kind, name, parent, labels.<key>.
inline std::optional<std::string> info_field(const Info& info,
                                             const std::vector<std::string>& path) {
  if (path.size() == 1 && path[0] == "kind") return std::string(kind_name(info.kind));
  if (path.size() == 1 && path[0] == "name") return info.name;
  if (path.size() == 1 && path[0] == "parent") return info.parent;
  return label_field(info.labels, path);
}

// Labels a backend keeps (others stay in the metadata store only).
inline bool is_backend_label(const std::string& key) {
  return key.rfind("containerd.io/snapshot/", 0) == 0 || key == "containerd.io/snapshot.ref";
}
inline constexpr std::string_view kSnapshotRefLabel = "containerd.io/snapshot.ref";

class BERTH_API Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  virtual Result<Info> stat(const RequestContext& ctx, std::string_view key) = 0;
  // Paths: "labels" or "labels.<key>"; none replaces all labels.
  virtual Result<Info> update(const RequestContext& ctx, const Info& info,
                              const std::vector<std::string>& paths) = 0;
  virtual Result<Usage> usage(const RequestContext& ctx, std::string_view key) = 0;
  virtual Result<std::vector<Mount>> mounts(const RequestContext& ctx, std::string_view key) = 0;
  virtual Result<std::vector<Mount>> prepare(const RequestContext& ctx, std::string_view key,
                                             std::string_view parent,
                                             const std::map<std::string, std::string>& labels) = 0;
  virtual Result<std::vector<Mount>> view(const RequestContext& ctx, std::string_view key,
                                          std::string_view parent,
                                          const std::map<std::string, std::string>& labels) = 0;
  virtual Status commit(const RequestContext& ctx, std::string_view name, std::string_view key,
                        const std::map<std::string, std::string>& labels) = 0;
  virtual Status remove(const RequestContext& ctx, std::string_view key) = 0;
  // Filters over kind, name, parent, labels.<key>.
  virtual Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                      const WalkFn& fn) = 0;
  // Reclaims space of removed snapshots and debris of interrupted operations.
  virtual Status cleanup(const RequestContext& ctx) = 0;
};

class BERTH_API SnapshotterPlugin : public virtual Plugin {
 public:
  virtual std::shared_ptr<Snapshotter> snapshotter() = 0;
};

}  // namespace berth::snapshots

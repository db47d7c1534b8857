// The namespaced view of one backend snapshotter. Records live in the "snapshots" family, key
// <ns>\0<snapshotter>\0<key>, and name the backend key "<ns>/<unique>/<key>", so namespaces
// never collide in the backend. Removal deletes the record; the garbage collector removes the
// backend snapshot (children first) and calls the backend's cleanup.
#pragma once

#include <berth/snapshots.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

struct SnapshotRecord {
  std::string backend_key;
  std::string parent;  // user key of the parent in the same namespace
  snapshots::Kind kind = snapshots::Kind::kUnknown;
  Labels labels;
  std::int64_t created = 0;
  std::int64_t updated = 0;
};
std::string encode(const SnapshotRecord& r);
Result<SnapshotRecord> decode_snapshot(std::string_view v);

class SnapshotView final : public snapshots::Snapshotter {
 public:
  SnapshotView(RocksStore& db, std::string name, std::shared_ptr<snapshots::Snapshotter> backend)
      : db_(db), name_(std::move(name)), backend_(std::move(backend)) {}

  Result<snapshots::Info> stat(const RequestContext& ctx, std::string_view key) override;
  Result<snapshots::Info> update(const RequestContext& ctx, const snapshots::Info& info,
                                 const std::vector<std::string>& paths) override;
  Result<snapshots::Usage> usage(const RequestContext& ctx, std::string_view key) override;
  Result<std::vector<Mount>> mounts(const RequestContext& ctx, std::string_view key) override;
  Result<std::vector<Mount>> prepare(const RequestContext& ctx, std::string_view key,
                                     std::string_view parent, const Labels& labels) override;
  Result<std::vector<Mount>> view(const RequestContext& ctx, std::string_view key,
                                  std::string_view parent, const Labels& labels) override;
  Status commit(const RequestContext& ctx, std::string_view name, std::string_view key,
                const Labels& labels) override;
  Status remove(const RequestContext& ctx, std::string_view key) override;
  Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
              const snapshots::WalkFn& fn) override;
  Status cleanup(const RequestContext& ctx) override;

  const std::shared_ptr<snapshots::Snapshotter>& backend() const { return backend_; }
  // Family key of a record.
  static std::string record_key(std::string_view ns, std::string_view snapshotter,
                                std::string_view key);

 private:
  Status check(const RequestContext& ctx, std::string_view key) const;
  Result<SnapshotRecord> get(const RequestContext& ctx, std::string_view key);
  Result<std::vector<Mount>> create(const RequestContext& ctx, std::string_view key,
                                    std::string_view parent, const Labels& labels, bool view);

  RocksStore& db_;
  std::string name_;
  std::shared_ptr<snapshots::Snapshotter> backend_;
};

}  // namespace berth::plugins::metadata

// What every directory-based snapshotter shares: records in a MetaStore, one directory per
// snapshot id under <root>/snapshots/<id>, crash-safe creation, asynchronous removal reclaimed by
// cleanup(). Subclasses decide how a snapshot's directory is filled and how it is mounted.
//
// Creation order: a fresh id is persisted, the directory is filled, then the record is written.
// A crash in between leaves a directory with no record, which cleanup() (also run at open)
// removes. cleanup() takes the operations lock exclusively so it never races a creation.
#pragma once

#include <berth/snapshots.h>

#include <shared_mutex>

#include "snapshotters/common/metastore.h"

namespace berth::snapshotters {

class DirSnapshotter : public snapshots::Snapshotter {
 public:
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

  const std::string& root() const { return root_; }
  std::string snapshot_dir(std::uint64_t id) const;

 protected:
  // Opens the records and runs a first cleanup; call from the subclass's factory.
  Status open(const std::string& root);

  // Fills `dir` (already created, empty) for a new snapshot.
  virtual Status fill(const std::string& dir, snapshots::Kind kind,
                      const std::vector<Record>& parents) = 0;
  virtual std::vector<Mount> mounts_for(const Record& r, const std::vector<Record>& parents) = 0;
  // Called after a commit was recorded (e.g. drop overlay's work dir).
  virtual void committed(const Record& r) {}
  // The tree whose usage is the snapshot's own (overlay: the upper dir only).
  virtual std::string usage_dir(const Record& r) const = 0;

  std::unique_ptr<MetaStore> store_;

 private:
  Result<std::vector<Mount>> create(std::string_view key, std::string_view parent,
                                    snapshots::Kind kind, const Labels& labels);

  std::string root_;
  std::shared_mutex ops_mu_;
};

}  // namespace berth::snapshotters

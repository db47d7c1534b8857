// Namespaced metadata in RocksDB.
//
// Layout: one column family per object kind. The "namespaces" family is keyed by namespace name;
// every other family is keyed "<namespace>\0<key>", so a namespace's objects are one prefix scan
// away and a namespace can only be deleted when every family is empty under its prefix.
// Values are JSON documents (records.h).
//
// Concurrency: ordinary mutations hold gc_lock() shared, so they run in parallel (RocksDB
// serialises only the WAL append); the garbage collector holds it exclusively while it marks and
// sweeps. Read-modify-write of one key takes a striped key lock.
#pragma once

#include <berth/metadata.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "plugins/metadata/rocksdb/records.h"

namespace berth::plugins::metadata {

class ContentView;
class LeaseStore;
class SnapshotView;
class ImageStore;
class ContainerStore;

enum class SharingPolicy { kShared, kIsolated };

struct StoreOptions {
  std::string path;                                // database directory
  std::shared_ptr<berth::content::Store> backend;  // may be null (namespace-only use, tests)
  std::map<std::string, std::shared_ptr<berth::snapshots::Snapshotter>> snapshotters;  // by id
  SharingPolicy content_sharing = SharingPolicy::kShared;
  // Ingests not held by a lease expire after this long.
  std::chrono::milliseconds ingest_expiry = std::chrono::hours(24);
};

class RocksStore final : public berth::metadata::MetadataStore,
                         public berth::metadata::NamespaceStore,
                         public berth::gc::Collector,
                         public std::enable_shared_from_this<RocksStore> {
 public:
  // Column families every version of Berth creates, so an older binary can open a newer db.
  static const std::vector<std::string>& kinds();

  static Result<std::shared_ptr<RocksStore>> open(const StoreOptions& options);
  ~RocksStore() override;

  // MetadataStore
  berth::metadata::NamespaceStore& namespaces() override { return *this; }
  std::shared_ptr<berth::content::Store> content() override;
  berth::leases::Manager& leases() override;
  berth::images::Store& images() override;
  berth::containers::Store& containers() override;
  berth::gc::Collector& collector() override { return *this; }
  Result<std::shared_ptr<berth::snapshots::Snapshotter>> snapshotter(
      std::string_view name) override;
  std::vector<std::string> snapshotter_names() override;
  Status close() override;

  // NamespaceStore
  Status create(const berth::metadata::Namespace& ns) override;
  Result<berth::metadata::Namespace> get(std::string_view name) override;
  Result<std::vector<berth::metadata::Namespace>> list() override;
  Result<berth::metadata::Namespace> update(const berth::metadata::Namespace& ns,
                                            const std::vector<std::string>& paths) override;
  Status remove(std::string_view name) override;

  // Collector (gc.cc)
  Result<berth::gc::Stats> collect() override;
  void set_mutation_listener(std::function<void(const berth::gc::Mutation&)> listener) override;

  // --- for the stores in this plugin ---
  static std::string key(std::string_view ns, std::string_view k);
  static std::string lease_resource_key(std::string_view ns, std::string_view lease,
                                        std::string_view type, std::string_view id);
  rocksdb::DB& db() { return *db_; }
  rocksdb::ColumnFamilyHandle* family(std::string_view kind) const;
  std::shared_mutex& gc_lock() { return gc_mu_; }
  std::mutex& key_lock(std::string_view kind, std::string_view key);
  const StoreOptions& options() const { return options_; }
  const std::map<std::string, std::shared_ptr<SnapshotView>, std::less<>>& snapshot_views() const {
    return snapshot_views_;
  }

  // Adds the namespace record to `batch` when the namespace does not exist yet (objects create
  // their namespace implicitly, as in containerd).
  Status ensure_namespace(rocksdb::WriteBatch& batch, std::string_view ns);
  // When ctx carries a lease: checks it exists and adds the resource to `batch`.
  Status attach_to_lease(rocksdb::WriteBatch& batch, const RequestContext& ctx,
                         std::string_view type, std::string_view id);
  Status write(rocksdb::WriteBatch& batch);
  Result<std::optional<std::string>> read(std::string_view kind, const std::string& key);
  // Calls fn(key without namespace prefix, value) for every key of `kind` in `ns` that starts
  // with key_prefix (seeks straight to it: no scan of the rest of the namespace).
  Status scan(std::string_view kind, std::string_view ns,
              const std::function<Status(std::string_view, std::string_view)>& fn,
              std::string_view key_prefix = {});
  void notify_mutation(bool deletion, std::optional<Timestamp> expires = std::nullopt);
  Status db_error(const rocksdb::Status& s, std::string_view op) const;

  // Generic access (tests, and kinds without a store yet).
  Status put(std::string_view kind, std::string_view ns, std::string_view key,
             std::string_view value);
  Result<std::string> get_raw(std::string_view kind, std::string_view ns, std::string_view key);
  Status erase(std::string_view kind, std::string_view ns, std::string_view key);
  // True when no family other than "namespaces" holds a key under `ns`.
  Result<bool> namespace_empty(std::string_view ns);

 private:
  RocksStore() = default;

  StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // parallel to handle_names_
  std::vector<std::string> handle_names_;
  // Namespace create/update/delete are read-check-write sequences; they are rare, so one mutex
  // serialises them. Object writes never take it.
  std::mutex namespace_mu_;
  std::shared_mutex gc_mu_;
  std::array<std::mutex, 64> key_locks_;
  std::mutex listener_mu_;
  std::function<void(const berth::gc::Mutation&)> listener_;
  std::shared_ptr<ContentView> content_;
  std::unique_ptr<LeaseStore> leases_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<ContainerStore> containers_;
  std::map<std::string, std::shared_ptr<SnapshotView>, std::less<>> snapshot_views_;
};

}  // namespace berth::plugins::metadata

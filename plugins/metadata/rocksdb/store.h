// Namespaced metadata in RocksDB.
//
// Layout: one column family per object kind. The "namespaces" family is keyed by namespace name;
// every other family is keyed "<namespace>\0<key>", so a namespace's objects are one prefix scan
// away and a namespace can only be deleted when every family is empty under its prefix.
// Values are JSON documents (small, schema-tolerant across versions).
#pragma once

#include <berth/metadata.h>
#include <rocksdb/db.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace berth::plugins::metadata {

struct StoreOptions {
  std::string path;  // database directory
};

class RocksStore final : public berth::metadata::MetadataStore,
                         public berth::metadata::NamespaceStore {
 public:
  // Column families every version of Berth creates, so an older binary can open a newer db.
  static const std::vector<std::string>& kinds();

  static Result<std::shared_ptr<RocksStore>> open(const StoreOptions& options);
  ~RocksStore() override;

  // MetadataStore
  berth::metadata::NamespaceStore& namespaces() override { return *this; }
  Status close() override;

  // NamespaceStore
  Status create(const berth::metadata::Namespace& ns) override;
  Result<berth::metadata::Namespace> get(std::string_view name) override;
  Result<std::vector<berth::metadata::Namespace>> list() override;
  Result<berth::metadata::Namespace> update(const berth::metadata::Namespace& ns,
                                            const std::vector<std::string>& paths) override;
  Status remove(std::string_view name) override;

  // Generic access for other stores in this plugin (and tests): kind is a column family name.
  Status put(std::string_view kind, std::string_view ns, std::string_view key,
             std::string_view value);
  Result<std::string> get_raw(std::string_view kind, std::string_view ns, std::string_view key);
  Status erase(std::string_view kind, std::string_view ns, std::string_view key);
  // True when no family other than "namespaces" holds a key under `ns`.
  Result<bool> namespace_empty(std::string_view ns);

 private:
  RocksStore() = default;
  rocksdb::ColumnFamilyHandle* family(std::string_view kind) const;
  Status db_error(const rocksdb::Status& s, std::string_view op) const;

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // parallel to kinds() with "default" first
  std::vector<std::string> handle_names_;
  // Namespace create/update/delete are read-check-write sequences; they are rare, so one mutex
  // serialises them. Object writes in other families never take it.
  std::mutex namespace_mu_;
};

}  // namespace berth::plugins::metadata

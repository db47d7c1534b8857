#include "plugins/metadata/rocksdb/store.h"

#include <berth/identifiers.h>
#include <rocksdb/cache.h>
#include <rocksdb/table.h>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "plugins/metadata/rocksdb/container_store.h"
#include "plugins/metadata/rocksdb/content_view.h"
#include "plugins/metadata/rocksdb/image_store.h"
#include "plugins/metadata/rocksdb/lease_store.h"
#include "plugins/metadata/rocksdb/snapshot_view.h"

namespace berth::plugins::metadata {
namespace {

using berth::metadata::Namespace;
using nlohmann::json;

constexpr std::string_view kNamespaces = "namespaces";

// Every write a client sees as done reaches the disk first: the WAL is synced (RocksDB groups
// concurrent writers into one sync).
rocksdb::WriteOptions durable() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return wo;
}

std::string prefixed(std::string_view ns, std::string_view key) { return RocksStore::key(ns, key); }

std::string encode(const Namespace& ns) {
  json j;
  j["labels"] = ns.labels;
  return j.dump();
}

Result<Namespace> decode(std::string_view name, const std::string& value) {
  Namespace ns;
  ns.name = std::string(name);
  try {
    auto j = json::parse(value);
    if (j.contains("labels")) ns.labels = j["labels"].get<std::map<std::string, std::string>>();
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss,
                  fmt::format("namespace \"{}\": corrupt record: {}", name, e.what()));
  }
  return ns;
}

}  // namespace

const std::vector<std::string>& RocksStore::kinds() {
  static const std::vector<std::string> k = {"namespaces", "images",    "containers",
                                             "content",    "ingests",   "snapshots",
                                             "leases",     "sandboxes", "lease_resources"};
  return k;
}

Result<std::shared_ptr<RocksStore>> RocksStore::open(const StoreOptions& options) {
  BERTH_RETURN_IF_ERROR(core::make_dirs(options.path, 0700));
  rocksdb::Options db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  // A control-plane database: small memtables and cache keep the daemon's idle RSS low.
  db_opts.write_buffer_size = 2 << 20;
  db_opts.max_write_buffer_number = 2;
  db_opts.max_open_files = 64;
  db_opts.keep_log_file_num = 2;
  db_opts.max_log_file_size = 1 << 20;
  db_opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_opts.max_background_jobs = 2;
  // Opening loads table handles with max_file_opening_threads threads per column family (16 by
  // default: ~190 threads started and stopped at every daemon start for a few small files).
  db_opts.max_file_opening_threads = 1;
  db_opts.skip_stats_update_on_db_open = true;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(1 << 20);
  rocksdb::ColumnFamilyOptions cf_opts(db_opts);
  cf_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_opts.write_buffer_size = 1 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  families.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_opts);
  for (const auto& k : kinds()) {
    families.emplace_back(k, cf_opts);
    names.push_back(k);
  }
  // Families written by a newer Berth must be opened too, or RocksDB refuses the database.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_opts, options.path, &existing).ok()) {
    for (const auto& e : existing) {
      if (std::find(names.begin(), names.end(), e) == names.end()) {
        families.emplace_back(e, cf_opts);
        names.push_back(e);
      }
    }
  }

  auto store = std::shared_ptr<RocksStore>(new RocksStore());
  store->options_ = options;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_opts, options.path, families, &store->handles_, &db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return unavailable("open metadata database \"{}\": it is in use by another process ({})",
                         options.path, s.ToString());
    }
    return internal_error("open metadata database \"{}\": {}", options.path, s.ToString());
  }
  store->db_.reset(db);
  store->handle_names_ = std::move(names);
  store->content_ = std::make_shared<ContentView>(*store);
  store->leases_ = std::make_unique<LeaseStore>(*store);
  store->images_ = std::make_unique<ImageStore>(*store);
  store->containers_ = std::make_unique<ContainerStore>(*store);
  for (const auto& [name, backend] : options.snapshotters) {
    store->snapshot_views_[name] = std::make_shared<SnapshotView>(*store, name, backend);
  }
  return store;
}

RocksStore::~RocksStore() { close().ignore(); }

Status RocksStore::close() {
  if (!db_) return Status();
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  rocksdb::Status s = db_->Close();
  db_.reset();
  if (!s.ok())
    return internal_error("close metadata database \"{}\": {}", options_.path, s.ToString());
  return Status();
}

rocksdb::ColumnFamilyHandle* RocksStore::family(std::string_view kind) const {
  for (std::size_t i = 0; i < handle_names_.size(); ++i) {
    if (handle_names_[i] == kind) return handles_[i];
  }
  return nullptr;
}

Status RocksStore::db_error(const rocksdb::Status& s, std::string_view op) const {
  return internal_error("metadata {} in \"{}\": {}", op, options_.path, s.ToString());
}

Status RocksStore::create(const Namespace& ns) {
  BERTH_RETURN_IF_ERROR(validate_identifier(ns.name));
  BERTH_RETURN_IF_ERROR(validate_labels(ns.labels));
  std::lock_guard lock(namespace_mu_);
  std::string existing;
  auto s = db_->Get(rocksdb::ReadOptions(), family(kNamespaces), ns.name, &existing);
  if (s.ok()) return already_exists("namespace \"{}\" already exists", ns.name);
  if (!s.IsNotFound()) return db_error(s, "get");
  s = db_->Put(durable(), family(kNamespaces), ns.name, encode(ns));
  if (!s.ok()) return db_error(s, "put");
  return Status();
}

Result<Namespace> RocksStore::get(std::string_view name) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), family(kNamespaces),
                    rocksdb::Slice(name.data(), name.size()), &value);
  if (s.IsNotFound()) return not_found("namespace \"{}\" not found", name);
  if (!s.ok()) return db_error(s, "get");
  return decode(name, value);
}

Result<std::vector<Namespace>> RocksStore::list() {
  std::vector<Namespace> out;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), family(kNamespaces)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    BERTH_TRY(auto ns, decode(it->key().ToStringView(), it->value().ToString()));
    out.push_back(std::move(ns));
  }
  if (!it->status().ok()) return db_error(it->status(), "list");
  return out;
}

Result<Namespace> RocksStore::update(const Namespace& ns, const std::vector<std::string>& paths) {
  BERTH_RETURN_IF_ERROR(validate_labels(ns.labels));
  std::lock_guard lock(namespace_mu_);
  BERTH_TRY(auto current, get(ns.name));
  BERTH_RETURN_IF_ERROR(
      update_labels(current.labels, ns.labels, paths, fmt::format("namespace \"{}\"", ns.name)));
  auto s = db_->Put(durable(), family(kNamespaces), current.name, encode(current));
  if (!s.ok()) return db_error(s, "put");
  return current;
}

Status RocksStore::remove(std::string_view name) {
  // Exclusive: no object can be created in the namespace between the emptiness check and the
  // delete (object writes hold the lock shared).
  std::unique_lock gc(gc_mu_);
  std::lock_guard lock(namespace_mu_);
  BERTH_TRY(auto current, get(name));
  BERTH_TRY(bool empty, namespace_empty(name));
  if (!empty) {
    return failed_precondition(
        "namespace \"{}\" must be empty, but it still has content, images, "
        "containers, snapshots or leases",
        name);
  }
  auto s = db_->Delete(durable(), family(kNamespaces), current.name);
  if (!s.ok()) return db_error(s, "delete");
  return Status();
}

Result<bool> RocksStore::namespace_empty(std::string_view ns) {
  std::string prefix = prefixed(ns, "");
  for (std::size_t i = 0; i < handle_names_.size(); ++i) {
    if (handle_names_[i] == kNamespaces || handle_names_[i] == rocksdb::kDefaultColumnFamilyName)
      continue;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[i]));
    it->Seek(prefix);
    if (it->Valid() && it->key().starts_with(prefix)) return false;
    if (!it->status().ok()) return db_error(it->status(), "scan");
  }
  return true;
}

Status RocksStore::put(std::string_view kind, std::string_view ns, std::string_view key,
                       std::string_view value) {
  auto* cf = family(kind);
  if (!cf) return invalid_argument("unknown metadata kind \"{}\"", kind);
  auto s = db_->Put(durable(), cf, prefixed(ns, key), rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) return db_error(s, "put");
  return Status();
}

Result<std::string> RocksStore::get_raw(std::string_view kind, std::string_view ns,
                                        std::string_view key) {
  auto* cf = family(kind);
  if (!cf) return invalid_argument("unknown metadata kind \"{}\"", kind);
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf, prefixed(ns, key), &value);
  if (s.IsNotFound()) return not_found("{} \"{}\" not found in namespace \"{}\"", kind, key, ns);
  if (!s.ok()) return db_error(s, "get");
  return value;
}

Status RocksStore::erase(std::string_view kind, std::string_view ns, std::string_view key) {
  auto* cf = family(kind);
  if (!cf) return invalid_argument("unknown metadata kind \"{}\"", kind);
  auto s = db_->Delete(durable(), cf, prefixed(ns, key));
  if (!s.ok()) return db_error(s, "delete");
  return Status();
}

std::string RocksStore::key(std::string_view ns, std::string_view k) {
  std::string out;
  out.reserve(ns.size() + 1 + k.size());
  out.append(ns);
  out.push_back('\0');
  out.append(k);
  return out;
}

std::string RocksStore::lease_resource_key(std::string_view ns, std::string_view lease,
                                           std::string_view type, std::string_view id) {
  std::string out = key(ns, lease);
  out.push_back('\0');
  out.append(type);
  out.push_back('\0');
  out.append(id);
  return out;
}

std::shared_ptr<content::Store> RocksStore::content() { return content_; }

berth::leases::Manager& RocksStore::leases() { return *leases_; }

berth::images::Store& RocksStore::images() { return *images_; }
berth::containers::Store& RocksStore::containers() { return *containers_; }

Result<std::shared_ptr<snapshots::Snapshotter>> RocksStore::snapshotter(std::string_view name) {
  auto it = snapshot_views_.find(name);
  if (it == snapshot_views_.end()) {
    std::string known;
    for (const auto& [n, v] : snapshot_views_) known += (known.empty() ? "" : ", ") + n;
    return not_found("snapshotter \"{}\" is not loaded (loaded: {})", name,
                     known.empty() ? "none" : known);
  }
  return std::shared_ptr<snapshots::Snapshotter>(it->second);
}

std::vector<std::string> RocksStore::snapshotter_names() {
  std::vector<std::string> out;
  for (const auto& [n, v] : snapshot_views_) out.push_back(n);
  return out;
}

std::mutex& RocksStore::key_lock(std::string_view kind, std::string_view k) {
  std::size_t h = std::hash<std::string_view>()(k) ^ (std::hash<std::string_view>()(kind) << 1);
  return key_locks_[h % key_locks_.size()];
}

Status RocksStore::ensure_namespace(rocksdb::WriteBatch& batch, std::string_view ns) {
  BERTH_RETURN_IF_ERROR(validate_identifier(ns));
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), family(kNamespaces),
                    rocksdb::Slice(ns.data(), ns.size()), &value);
  if (s.ok()) return Status();
  if (!s.IsNotFound()) return db_error(s, "get");
  batch.Put(family(kNamespaces), rocksdb::Slice(ns.data(), ns.size()),
            encode(Namespace{std::string(ns), {}}));
  return Status();
}

Status RocksStore::attach_to_lease(rocksdb::WriteBatch& batch, const RequestContext& ctx,
                                   std::string_view type, std::string_view id) {
  if (ctx.lease.empty()) return Status();
  BERTH_TRY(auto lease, read("leases", key(ctx.ns, ctx.lease)));
  if (!lease) return not_found("lease \"{}\" not found in namespace \"{}\"", ctx.lease, ctx.ns);
  batch.Put(family("lease_resources"), lease_resource_key(ctx.ns, ctx.lease, type, id), "");
  return Status();
}

Status RocksStore::write(rocksdb::WriteBatch& batch) {
  auto s = db_->Write(durable(), &batch);
  if (!s.ok()) return db_error(s, "write");
  return Status();
}

Result<std::optional<std::string>> RocksStore::read(std::string_view kind, const std::string& k) {
  auto* cf = family(kind);
  if (!cf) return invalid_argument("unknown metadata kind \"{}\"", kind);
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), cf, k, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return db_error(s, "get");
  return std::optional<std::string>(std::move(value));
}

Status RocksStore::scan(std::string_view kind, std::string_view ns,
                        const std::function<Status(std::string_view, std::string_view)>& fn,
                        std::string_view key_prefix) {
  auto* cf = family(kind);
  if (!cf) return invalid_argument("unknown metadata kind \"{}\"", kind);
  std::string ns_prefix = key(ns, "");
  std::string prefix = key(ns, key_prefix);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view k = it->key().ToStringView().substr(ns_prefix.size());
    BERTH_RETURN_IF_ERROR(fn(k, it->value().ToStringView()));
  }
  if (!it->status().ok()) return db_error(it->status(), "scan");
  return Status();
}

void RocksStore::set_mutation_listener(std::function<void(const berth::gc::Mutation&)> listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = std::move(listener);
}

void RocksStore::notify_mutation(bool deletion, std::optional<Timestamp> expires) {
  std::function<void(const berth::gc::Mutation&)> l;
  {
    std::lock_guard lock(listener_mu_);
    l = listener_;
  }
  if (l) l(berth::gc::Mutation{deletion, expires});
}

}  // namespace berth::plugins::metadata

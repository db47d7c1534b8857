#include "snapshotters/common/metastore.h"

#include <rocksdb/cache.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/time.h"

namespace berth::snapshotters {
namespace {

// Snapshot records are written synced: a commit a client saw must survive a power loss.
rocksdb::WriteOptions durable() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return wo;
}

using nlohmann::json;
using snapshots::Kind;

std::string skey(std::string_view key) { return std::string("s") + '\0' + std::string(key); }
std::string ckey(std::string_view parent, std::string_view child) {
  return std::string("c") + '\0' + std::string(parent) + '\0' + std::string(child);
}

std::string encode(const Record& r) {
  return json{{"id", r.id},           {"kind", static_cast<int>(r.kind)},
              {"parent", r.parent},   {"labels", r.labels},
              {"size", r.size},       {"inodes", r.inodes},
              {"created", r.created}, {"updated", r.updated}}
      .dump();
}

Result<Record> decode(std::string_view key, const std::string& v) {
  try {
    auto j = json::parse(v);
    Record r;
    r.key = std::string(key);
    r.id = j.at("id").get<std::uint64_t>();
    r.kind = static_cast<Kind>(j.at("kind").get<int>());
    r.parent = j.value("parent", std::string());
    r.labels = j.value("labels", Labels{});
    r.size = j.value("size", std::int64_t{0});
    r.inodes = j.value("inodes", std::int64_t{0});
    r.created = j.value("created", std::int64_t{0});
    r.updated = j.value("updated", std::int64_t{0});
    return r;
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss,
                  fmt::format("snapshot \"{}\": corrupt record: {}", key, e.what()));
  }
}

std::int64_t now_ns() { return core::to_unix_nanos(std::chrono::system_clock::now()); }

}  // namespace

snapshots::Info Record::info() const {
  snapshots::Info i;
  i.kind = kind;
  i.name = key;
  i.parent = parent;
  i.labels = labels;
  i.created = core::from_unix_nanos(created);
  i.updated = core::from_unix_nanos(updated);
  return i;
}

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& path) {
  BERTH_RETURN_IF_ERROR(core::make_dirs(path, 0700));
  rocksdb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = 1 << 20;
  o.max_write_buffer_number = 2;
  o.keep_log_file_num = 2;
  o.max_open_files = 32;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.max_file_opening_threads = 1;  // a few small files: no thread pool at open
  o.skip_stats_update_on_db_open = true;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(256 << 10);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok()) return internal_error("open snapshot records \"{}\": {}", path, s.ToString());
  auto m = std::unique_ptr<MetaStore>(new MetaStore());
  m->path_ = path;
  m->db_.reset(db);
  return m;
}

MetaStore::~MetaStore() {
  if (db_) db_->Close().PermitUncheckedError();
}

Status MetaStore::validate_key(std::string_view key) const {
  if (key.empty()) return invalid_argument("snapshot key must not be empty");
  if (key.find('\0') != std::string_view::npos)
    return invalid_argument("snapshot key contains a NUL byte");
  return Status();
}

Result<Record> MetaStore::get_locked(std::string_view key) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), skey(key), &v);
  if (s.IsNotFound()) return not_found("snapshot \"{}\" not found", key);
  if (!s.ok()) return internal_error("read snapshot \"{}\": {}", key, s.ToString());
  return decode(key, v);
}

Result<Record> MetaStore::get(std::string_view key) {
  std::lock_guard lock(mu_);
  return get_locked(key);
}

Result<std::uint64_t> MetaStore::next_id() {
  std::lock_guard lock(mu_);
  std::string v;
  std::uint64_t id = 0;
  auto s = db_->Get(rocksdb::ReadOptions(), "seq", &v);
  if (s.ok()) {
    char* end = nullptr;
    id = std::strtoull(v.c_str(), &end, 10);
    if (end == v.c_str())
      return Status(Code::kDataLoss, fmt::format("snapshot sequence in \"{}\" is corrupt", path_));
  }
  ++id;
  s = db_->Put(durable(), "seq", std::to_string(id));
  if (!s.ok()) return internal_error("snapshot sequence in \"{}\": {}", path_, s.ToString());
  return id;
}

Status MetaStore::put(rocksdb::WriteBatch& b, const Record& r) {
  b.Put(skey(r.key), encode(r));
  return Status();
}

Result<Record> MetaStore::insert(std::uint64_t id, std::string_view key, std::string_view parent,
                                 Kind kind, const Labels& labels) {
  BERTH_RETURN_IF_ERROR(validate_key(key));
  std::lock_guard lock(mu_);
  if (get_locked(key).ok()) return already_exists("snapshot \"{}\" already exists", key);
  if (!parent.empty()) {
    BERTH_TRY(auto p, get_locked(parent));
    if (p.kind != Kind::kCommitted) {
      return failed_precondition("parent \"{}\" is not committed (it is {})", parent,
                                 snapshots::kind_name(p.kind));
    }
  }
  Record r;
  r.id = id;
  r.kind = kind;
  r.key = std::string(key);
  r.parent = std::string(parent);
  r.labels = labels;
  r.created = r.updated = now_ns();
  rocksdb::WriteBatch b;
  BERTH_RETURN_IF_ERROR(put(b, r));
  if (!parent.empty()) b.Put(ckey(parent, key), "");
  auto s = db_->Write(durable(), &b);
  if (!s.ok()) return internal_error("write snapshot \"{}\": {}", key, s.ToString());
  return r;
}

Result<Record> MetaStore::commit(std::string_view name, std::string_view key, std::int64_t size,
                                 std::int64_t inodes, const Labels& labels) {
  BERTH_RETURN_IF_ERROR(validate_key(name));
  std::lock_guard lock(mu_);
  BERTH_TRY(auto r, get_locked(key));
  if (r.kind != Kind::kActive) {
    return failed_precondition("snapshot \"{}\" is {}, only active snapshots can be committed", key,
                               snapshots::kind_name(r.kind));
  }
  if (get_locked(name).ok()) return already_exists("snapshot \"{}\" already exists", name);
  std::string prefix = std::string("c") + '\0' + std::string(key) + '\0';
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->Seek(prefix);
    if (it->Valid() && it->key().starts_with(prefix)) {
      return failed_precondition("snapshot \"{}\" has children", key);
    }
  }
  rocksdb::WriteBatch b;
  b.Delete(skey(key));
  if (!r.parent.empty()) {
    b.Delete(ckey(r.parent, key));
    b.Put(ckey(r.parent, name), "");
  }
  r.key = std::string(name);
  r.kind = Kind::kCommitted;
  r.size = size;
  r.inodes = inodes;
  for (const auto& [k, v] : labels) r.labels[k] = v;
  r.updated = now_ns();
  BERTH_RETURN_IF_ERROR(put(b, r));
  auto s = db_->Write(durable(), &b);
  if (!s.ok()) return internal_error("commit snapshot \"{}\": {}", key, s.ToString());
  return r;
}

Result<Record> MetaStore::remove(std::string_view key) {
  std::lock_guard lock(mu_);
  BERTH_TRY(auto r, get_locked(key));
  std::string prefix = std::string("c") + '\0' + std::string(key) + '\0';
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek(prefix);
  if (it->Valid() && it->key().starts_with(prefix)) {
    std::string child(it->key().ToStringView().substr(prefix.size()));
    return failed_precondition("cannot remove snapshot \"{}\": it has children (e.g. \"{}\")", key,
                               child);
  }
  rocksdb::WriteBatch b;
  b.Delete(skey(key));
  if (!r.parent.empty()) b.Delete(ckey(r.parent, key));
  auto s = db_->Write(durable(), &b);
  if (!s.ok()) return internal_error("remove snapshot \"{}\": {}", key, s.ToString());
  return r;
}

Result<Record> MetaStore::update(const snapshots::Info& info,
                                 const std::vector<std::string>& paths) {
  std::lock_guard lock(mu_);
  BERTH_TRY(auto r, get_locked(info.name));
  BERTH_RETURN_IF_ERROR(
      update_labels(r.labels, info.labels, paths, fmt::format("snapshot \"{}\"", info.name)));
  r.updated = now_ns();
  rocksdb::WriteBatch b;
  BERTH_RETURN_IF_ERROR(put(b, r));
  auto s = db_->Write(durable(), &b);
  if (!s.ok()) return internal_error("update snapshot \"{}\": {}", info.name, s.ToString());
  return r;
}

Status MetaStore::walk(const std::function<Status(const Record&)>& fn) {
  std::vector<Record> all;
  {
    std::lock_guard lock(mu_);
    std::string prefix = std::string("s") + '\0';
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      BERTH_TRY(auto r,
                decode(it->key().ToStringView().substr(prefix.size()), it->value().ToString()));
      all.push_back(std::move(r));
    }
  }
  for (const auto& r : all) BERTH_RETURN_IF_ERROR(fn(r));
  return Status();
}

Result<std::vector<Record>> MetaStore::parents(const Record& r) {
  std::lock_guard lock(mu_);
  std::vector<Record> out;
  std::string p = r.parent;
  while (!p.empty()) {
    BERTH_TRY(auto rec, get_locked(p));
    p = rec.parent;
    out.push_back(std::move(rec));
    if (out.size() > 10000) return internal_error("snapshot \"{}\": parent chain loops", r.key);
  }
  return out;
}

Result<std::set<std::uint64_t>> MetaStore::ids() {
  std::set<std::uint64_t> out;
  BERTH_RETURN_IF_ERROR(walk([&](const Record& r) {
    out.insert(r.id);
    return Status();
  }));
  return out;
}

}  // namespace berth::snapshotters

// The per-snapshotter record of snapshots: one small RocksDB at <root>/<uri>/metadata.
//   "s\0<key>"            JSON record {id, kind, parent, labels, size, inodes, created, updated}
//   "c\0<parent>\0<key>"  children index (remove refuses a snapshot with children)
//   "seq"                 last id handed out; ids name directories and survive commit
// All writes are serialised by one mutex (snapshot operations are few and short here; the slow
// part, filling directories, happens outside it).
#pragma once

#include <berth/snapshots.h>
#include <rocksdb/db.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace berth::snapshotters {

using Labels = std::map<std::string, std::string>;

struct Record {
  std::uint64_t id = 0;
  snapshots::Kind kind = snapshots::Kind::kUnknown;
  std::string key;
  std::string parent;
  Labels labels;
  std::int64_t size = 0;  // committed usage
  std::int64_t inodes = 0;
  std::int64_t created = 0;
  std::int64_t updated = 0;
  snapshots::Info info() const;
};

class MetaStore {
 public:
  static Result<std::unique_ptr<MetaStore>> open(const std::string& path);
  ~MetaStore();

  Result<Record> get(std::string_view key);
  // A fresh id (persisted before use, so ids are never reused after a crash).
  Result<std::uint64_t> next_id();
  // Inserts an active or view snapshot with the given id. AlreadyExists, NotFound (parent),
  // FailedPrecondition (parent not committed).
  Result<Record> insert(std::uint64_t id, std::string_view key, std::string_view parent,
                        snapshots::Kind kind, const Labels& labels);
  // Active `key` becomes committed `name` with the same id.
  Result<Record> commit(std::string_view name, std::string_view key, std::int64_t size,
                        std::int64_t inodes, const Labels& labels);
  // FailedPrecondition when it has children.
  Result<Record> remove(std::string_view key);
  Result<Record> update(const snapshots::Info& info, const std::vector<std::string>& paths);
  Status walk(const std::function<Status(const Record&)>& fn);
  // The parent chain of r, nearest parent first.
  Result<std::vector<Record>> parents(const Record& r);
  Result<std::set<std::uint64_t>> ids();
  Status validate_key(std::string_view key) const;

 private:
  MetaStore() = default;
  Status put(rocksdb::WriteBatch& b, const Record& r);
  Result<Record> get_locked(std::string_view key);

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  std::mutex mu_;
};

}  // namespace berth::snapshotters

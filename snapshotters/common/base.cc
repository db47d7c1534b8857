#include "snapshotters/common/base.h"

#include <dirent.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/copy.h"
#include "core/filters.h"
#include "core/fs.h"

namespace berth::snapshotters {

using snapshots::Kind;

Status DirSnapshotter::open(const std::string& root) {
  root_ = root;
  BERTH_RETURN_IF_ERROR(core::make_dirs(root + "/snapshots", 0700));
  BERTH_TRY(store_, MetaStore::open(root + "/metadata"));
  return cleanup(RequestContext{});
}

std::string DirSnapshotter::snapshot_dir(std::uint64_t id) const {
  return root_ + "/snapshots/" + std::to_string(id);
}

Result<snapshots::Info> DirSnapshotter::stat(const RequestContext&, std::string_view key) {
  BERTH_TRY(auto r, store_->get(key));
  return r.info();
}

Result<snapshots::Info> DirSnapshotter::update(const RequestContext&, const snapshots::Info& info,
                                               const std::vector<std::string>& paths) {
  BERTH_TRY(auto r, store_->update(info, paths));
  return r.info();
}

Result<snapshots::Usage> DirSnapshotter::usage(const RequestContext&, std::string_view key) {
  BERTH_TRY(auto r, store_->get(key));
  if (r.kind == Kind::kCommitted) return snapshots::Usage{r.size, r.inodes};
  BERTH_TRY(auto du, core::disk_usage(usage_dir(r)));
  return snapshots::Usage{du.size, du.inodes};
}

Result<std::vector<Mount>> DirSnapshotter::mounts(const RequestContext&, std::string_view key) {
  BERTH_TRY(auto r, store_->get(key));
  if (r.kind == Kind::kCommitted) {
    return failed_precondition(
        "snapshot \"{}\" is committed; mount a view or an active child of it", key);
  }
  BERTH_TRY(auto parents, store_->parents(r));
  return mounts_for(r, parents);
}

Result<std::vector<Mount>> DirSnapshotter::create(std::string_view key, std::string_view parent,
                                                  Kind kind, const Labels& labels) {
  BERTH_RETURN_IF_ERROR(store_->validate_key(key));
  std::shared_lock ops(ops_mu_);
  if (store_->get(key).ok()) return already_exists("snapshot \"{}\" already exists", key);
  std::vector<Record> parents;
  if (!parent.empty()) {
    BERTH_TRY(auto p, store_->get(parent));
    if (p.kind != Kind::kCommitted) {
      return failed_precondition("parent \"{}\" is not committed (it is {})", parent,
                                 snapshots::kind_name(p.kind));
    }
    BERTH_TRY(auto chain, store_->parents(p));
    parents.push_back(p);
    parents.insert(parents.end(), chain.begin(), chain.end());
  }
  BERTH_TRY(auto id, store_->next_id());
  std::string dir = snapshot_dir(id);
  if (::mkdir(dir.c_str(), 0700) < 0) return from_errno(errno, "mkdir \"{}\"", dir);
  Status st = fill(dir, kind, parents);
  Result<Record> rec = st.ok() ? store_->insert(id, key, parent, kind, labels) : Result<Record>(st);
  if (!rec.ok()) {
    core::remove_tree(dir).ignore();
    return rec.status();
  }
  return mounts_for(*rec, parents);
}

Result<std::vector<Mount>> DirSnapshotter::prepare(const RequestContext&, std::string_view key,
                                                   std::string_view parent, const Labels& labels) {
  return create(key, parent, Kind::kActive, labels);
}

Result<std::vector<Mount>> DirSnapshotter::view(const RequestContext&, std::string_view key,
                                                std::string_view parent, const Labels& labels) {
  return create(key, parent, Kind::kView, labels);
}

Status DirSnapshotter::commit(const RequestContext&, std::string_view name, std::string_view key,
                              const Labels& labels) {
  std::shared_lock ops(ops_mu_);
  BERTH_TRY(auto r, store_->get(key));
  if (r.kind != Kind::kActive) {
    return failed_precondition("snapshot \"{}\" is {}, only active snapshots can be committed", key,
                               snapshots::kind_name(r.kind));
  }
  BERTH_TRY(auto du, core::disk_usage(usage_dir(r)));
  BERTH_TRY(auto c, store_->commit(name, key, du.size, du.inodes, labels));
  committed(c);
  return Status();
}

Status DirSnapshotter::remove(const RequestContext&, std::string_view key) {
  std::shared_lock ops(ops_mu_);
  BERTH_TRY(auto r, store_->remove(key));
  // The directory goes in cleanup(): removal stays fast and crash-safe (a half-deleted tree is
  // never visible under a live record).
  return Status();
}

Status DirSnapshotter::walk(const RequestContext&, const std::vector<std::string>& filters,
                            const snapshots::WalkFn& fn) {
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  return store_->walk([&](const Record& r) -> Status {
    auto info = r.info();
    bool match = filter.match([&](const auto& path) { return snapshots::info_field(info, path); });
    return match ? fn(info) : Status();
  });
}

Status DirSnapshotter::cleanup(const RequestContext&) {
  std::unique_lock ops(ops_mu_);
  BERTH_TRY(auto live, store_->ids());
  std::string dir = root_ + "/snapshots";
  std::error_code ec;
  std::vector<std::string> doomed;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    char* end = nullptr;
    unsigned long long id = std::strtoull(name.c_str(), &end, 10);
    if (end && *end == '\0' && !name.empty() && live.count(id)) continue;
    doomed.push_back(e.path().string());
  }
  for (const auto& d : doomed) {
    // A leftover that is still mounted (a crashed caller) cannot be removed; leave it for the
    // next cleanup instead of failing the whole pass.
    core::remove_tree(d).ignore();
  }
  return Status();
}

}  // namespace berth::snapshotters

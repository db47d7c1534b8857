#include "plugins/metadata/rocksdb/snapshot_view.h"

#include <berth/identifiers.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "core/filters.h"
#include "core/time.h"

namespace berth::plugins::metadata {
namespace {

using nlohmann::json;
using snapshots::Kind;

std::int64_t now_ns() { return core::to_unix_nanos(std::chrono::system_clock::now()); }

std::string unique_backend_key(std::string_view ns, std::string_view key) {
  static std::atomic<std::uint64_t> seq{0};
  return fmt::format("{}/{}-{}/{}", ns, now_ns(), seq.fetch_add(1), key);
}

Labels backend_labels(const Labels& all) {
  Labels out;
  for (const auto& [k, v] : all) {
    if (snapshots::is_backend_label(k)) out[k] = v;
  }
  return out;
}

snapshots::Info to_info(std::string_view key, const SnapshotRecord& r) {
  snapshots::Info i;
  i.kind = r.kind;
  i.name = std::string(key);
  i.parent = r.parent;
  i.labels = r.labels;
  i.created = core::from_unix_nanos(r.created);
  i.updated = core::from_unix_nanos(r.updated);
  return i;
}

}  // namespace

std::string encode(const SnapshotRecord& r) {
  return json{{"bkey", r.backend_key}, {"parent", r.parent},   {"kind", static_cast<int>(r.kind)},
              {"labels", r.labels},    {"created", r.created}, {"updated", r.updated}}
      .dump();
}

Result<SnapshotRecord> decode_snapshot(std::string_view v) {
  try {
    auto j = json::parse(v);
    SnapshotRecord r;
    r.backend_key = j.at("bkey").get<std::string>();
    r.parent = j.value("parent", std::string());
    r.kind = static_cast<Kind>(j.value("kind", 0));
    r.labels = j.value("labels", Labels{});
    r.created = j.value("created", std::int64_t{0});
    r.updated = j.value("updated", std::int64_t{0});
    return r;
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss, fmt::format("corrupt snapshot record: {}", e.what()));
  }
}

std::string SnapshotView::record_key(std::string_view ns, std::string_view snapshotter,
                                     std::string_view key) {
  return RocksStore::key(ns, std::string(snapshotter) + '\0' + std::string(key));
}

Status SnapshotView::check(const RequestContext& ctx, std::string_view key) const {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_RETURN_IF_ERROR(validate_identifier(ctx.ns));
  if (key.empty()) return invalid_argument("snapshot key must not be empty");
  if (key.find('\0') != std::string_view::npos)
    return invalid_argument("snapshot key contains a NUL byte");
  return Status();
}

Result<SnapshotRecord> SnapshotView::get(const RequestContext& ctx, std::string_view key) {
  BERTH_RETURN_IF_ERROR(check(ctx, key));
  BERTH_TRY(auto v, db_.read("snapshots", record_key(ctx.ns, name_, key)));
  if (!v)
    return not_found("snapshot \"{}\" not found in snapshotter {} of namespace \"{}\"", key, name_,
                     ctx.ns);
  return decode_snapshot(*v);
}

Result<snapshots::Info> SnapshotView::stat(const RequestContext& ctx, std::string_view key) {
  BERTH_TRY(auto r, get(ctx, key));
  return to_info(key, r);
}

Result<snapshots::Info> SnapshotView::update(const RequestContext& ctx, const snapshots::Info& info,
                                             const std::vector<std::string>& paths) {
  BERTH_RETURN_IF_ERROR(check(ctx, info.name));
  BERTH_RETURN_IF_ERROR(validate_labels(info.labels));
  std::shared_lock gc(db_.gc_lock());
  std::string k = record_key(ctx.ns, name_, info.name);
  std::lock_guard lock(db_.key_lock("snapshots", k));
  BERTH_TRY(auto r, get(ctx, info.name));
  BERTH_RETURN_IF_ERROR(
      update_labels(r.labels, info.labels, paths, fmt::format("snapshot \"{}\"", info.name)));
  BERTH_RETURN_IF_ERROR(validate_labels(r.labels));
  r.updated = now_ns();
  snapshots::Info binfo;
  binfo.name = r.backend_key;
  binfo.labels = backend_labels(r.labels);
  backend_->update(ctx, binfo, {"labels"}).status().ignore();
  rocksdb::WriteBatch batch;
  batch.Put(db_.family("snapshots"), k, encode(r));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  return to_info(info.name, r);
}

Result<snapshots::Usage> SnapshotView::usage(const RequestContext& ctx, std::string_view key) {
  BERTH_TRY(auto r, get(ctx, key));
  return backend_->usage(ctx, r.backend_key);
}

Result<std::vector<Mount>> SnapshotView::mounts(const RequestContext& ctx, std::string_view key) {
  BERTH_TRY(auto r, get(ctx, key));
  return backend_->mounts(ctx, r.backend_key);
}

Result<std::vector<Mount>> SnapshotView::create(const RequestContext& ctx, std::string_view key,
                                                std::string_view parent, const Labels& labels,
                                                bool view) {
  BERTH_RETURN_IF_ERROR(check(ctx, key));
  BERTH_RETURN_IF_ERROR(validate_labels(labels));
  std::shared_lock gc(db_.gc_lock());
  std::string k = record_key(ctx.ns, name_, key);
  std::lock_guard lock(db_.key_lock("snapshots", k));
  BERTH_TRY(auto existing, db_.read("snapshots", k));
  if (existing) return already_exists("snapshot \"{}\" already exists", key);
  SnapshotRecord parent_rec;
  if (!parent.empty()) {
    auto p = get(ctx, parent);
    if (!p.ok())
      return not_found("parent snapshot \"{}\" not found in namespace \"{}\"", parent, ctx.ns);
    parent_rec = *p;
    if (parent_rec.kind != Kind::kCommitted) {
      return failed_precondition("parent \"{}\" is not committed (it is {})", parent,
                                 snapshots::kind_name(parent_rec.kind));
    }
  }
  SnapshotRecord r;
  r.backend_key = unique_backend_key(ctx.ns, key);
  r.parent = std::string(parent);
  r.kind = view ? Kind::kView : Kind::kActive;
  r.labels = labels;
  r.created = r.updated = now_ns();
  Labels blabels = backend_labels(labels);
  std::string target;
  if (auto it = blabels.find(std::string(snapshots::kSnapshotRefLabel)); it != blabels.end()) {
    target = it->second;
    it->second = unique_backend_key(ctx.ns, target);
  }
  auto mounts = view ? backend_->view(ctx, r.backend_key, parent_rec.backend_key, blabels)
                     : backend_->prepare(ctx, r.backend_key, parent_rec.backend_key, blabels);
  rocksdb::WriteBatch batch;
  BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
  if (!mounts.ok()) {
    if (mounts.status().code() == Code::kAlreadyExists && !target.empty()) {
      // A remote snapshotter already has the target committed: record it and report so.
      SnapshotRecord t;
      t.backend_key = blabels[std::string(snapshots::kSnapshotRefLabel)];
      t.parent = std::string(parent);
      t.kind = Kind::kCommitted;
      t.labels = labels;
      t.created = t.updated = now_ns();
      batch.Put(db_.family("snapshots"), record_key(ctx.ns, name_, target), encode(t));
      BERTH_RETURN_IF_ERROR(db_.attach_to_lease(batch, ctx, "snapshots/" + name_, target));
      BERTH_RETURN_IF_ERROR(db_.write(batch));
      db_.notify_mutation(false);
      return already_exists("target snapshot \"{}\" already exists", target);
    }
    return mounts.status();
  }
  batch.Put(db_.family("snapshots"), k, encode(r));
  Status st = db_.attach_to_lease(batch, ctx, "snapshots/" + name_, key);
  if (st.ok()) st = db_.write(batch);
  if (!st.ok()) {
    backend_->remove(ctx, r.backend_key).ignore();
    return st;
  }
  db_.notify_mutation(false);
  return mounts;
}

Result<std::vector<Mount>> SnapshotView::prepare(const RequestContext& ctx, std::string_view key,
                                                 std::string_view parent, const Labels& labels) {
  return create(ctx, key, parent, labels, false);
}

Result<std::vector<Mount>> SnapshotView::view(const RequestContext& ctx, std::string_view key,
                                              std::string_view parent, const Labels& labels) {
  return create(ctx, key, parent, labels, true);
}

Status SnapshotView::commit(const RequestContext& ctx, std::string_view name, std::string_view key,
                            const Labels& labels) {
  BERTH_RETURN_IF_ERROR(check(ctx, name));
  BERTH_RETURN_IF_ERROR(validate_labels(labels));
  std::shared_lock gc(db_.gc_lock());
  std::string kk = record_key(ctx.ns, name_, key);
  std::string nk = record_key(ctx.ns, name_, name);
  std::lock_guard lock(db_.key_lock("snapshots", kk));
  BERTH_TRY(auto r, get(ctx, key));
  if (r.kind != Kind::kActive) {
    return failed_precondition("snapshot \"{}\" is {}, only active snapshots can be committed", key,
                               snapshots::kind_name(r.kind));
  }
  BERTH_TRY(auto existing, db_.read("snapshots", nk));
  if (existing) return already_exists("snapshot \"{}\" already exists", name);
  for (const auto& [lk, lv] : labels) r.labels[lk] = lv;
  std::string bname = unique_backend_key(ctx.ns, name);
  BERTH_RETURN_IF_ERROR(backend_->commit(ctx, bname, r.backend_key, backend_labels(r.labels)));
  r.backend_key = bname;
  r.kind = Kind::kCommitted;
  r.updated = now_ns();
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("snapshots"), kk);
  batch.Put(db_.family("snapshots"), nk, encode(r));
  BERTH_RETURN_IF_ERROR(db_.attach_to_lease(batch, ctx, "snapshots/" + name_, name));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  return Status();
}

Status SnapshotView::remove(const RequestContext& ctx, std::string_view key) {
  BERTH_RETURN_IF_ERROR(check(ctx, key));
  std::shared_lock gc(db_.gc_lock());
  std::string k = record_key(ctx.ns, name_, key);
  std::lock_guard lock(db_.key_lock("snapshots", k));
  BERTH_TRY(auto r, get(ctx, key));
  std::string child;
  std::string prefix = std::string(name_) + '\0';
  BERTH_RETURN_IF_ERROR(db_.scan(
      "snapshots", ctx.ns,
      [&](std::string_view sk, std::string_view v) -> Status {
        if (!child.empty()) return Status();
        auto c = decode_snapshot(v);
        if (c.ok() && c->parent == key) child = std::string(sk.substr(prefix.size()));
        return Status();
      },
      prefix));
  if (!child.empty()) {
    return failed_precondition("cannot remove snapshot \"{}\": it has children (e.g. \"{}\")", key,
                               child);
  }
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("snapshots"), k);
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  // The backend snapshot is removed by the collector, which this deletion triggers.
  db_.notify_mutation(true);
  return Status();
}

Status SnapshotView::walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                          const snapshots::WalkFn& fn) {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::string prefix = std::string(name_) + '\0';
  std::vector<snapshots::Info> all;
  BERTH_RETURN_IF_ERROR(db_.scan(
      "snapshots", ctx.ns,
      [&](std::string_view sk, std::string_view v) -> Status {
        BERTH_TRY(auto r, decode_snapshot(v));
        all.push_back(to_info(sk.substr(prefix.size()), r));
        return Status();
      },
      prefix));
  for (const auto& info : all) {
    bool match = filter.match([&](const auto& path) { return snapshots::info_field(info, path); });
    if (match) BERTH_RETURN_IF_ERROR(fn(info));
  }
  return Status();
}

Status SnapshotView::cleanup(const RequestContext& ctx) { return backend_->cleanup(ctx); }

}  // namespace berth::plugins::metadata

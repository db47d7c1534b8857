// Garbage collection over the metadata store (mark and sweep), then over the backend.
//
// Roots: unexpired leases and their resources; images (target and gc.ref labels); containers
// (gc.ref labels); content labelled containerd.io/gc.root; ingests whose expiry is in the future.
// Edges: content -> the values of its containerd.io/gc.ref.content* labels (same namespace),
// ingest -> its expected digest. Leases labelled containerd.io/gc.flat hold only their direct
// resources. Everything unmarked is deleted; then blobs and backend ingests that no namespace
// references are removed. The whole pass holds the store's gc lock exclusively, so no write can
// slip in between mark and sweep.
#include <berth/leases.h>

#include <deque>
#include <map>
#include <set>

#include "core/log.h"
#include "core/time.h"
#include "plugins/metadata/rocksdb/snapshot_view.h"
#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {
namespace {

constexpr std::string_view kContentRef = "containerd.io/gc.ref.content";
constexpr std::string_view kSnapshotRef = "containerd.io/gc.ref.snapshot.";
constexpr std::string_view kGcRoot = "containerd.io/gc.root";

struct Node {
  bool snapshot;  // else content
  std::string ns;
  std::string sn;  // snapshotter, for snapshots
  std::string id;  // digest or snapshot key
  bool follow;
};

// Splits "<ns>\0<rest>".
std::pair<std::string_view, std::string_view> split_key(std::string_view k) {
  auto sep = k.find('\0');
  if (sep == std::string_view::npos) return {k, {}};
  return {k.substr(0, sep), k.substr(sep + 1)};
}

bool is_content_ref(std::string_view label) {
  return label.substr(0, kContentRef.size()) == kContentRef &&
         (label.size() == kContentRef.size() || label[kContentRef.size()] == '.' ||
          label[kContentRef.size()] == '/');
}

// Calls fn(key, value) for every record of `kind`, across namespaces.
Status scan_all(RocksStore& store, std::string_view kind,
                const std::function<Status(std::string_view, std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      store.db().NewIterator(rocksdb::ReadOptions(), store.family(kind)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    BERTH_RETURN_IF_ERROR(fn(it->key().ToStringView(), it->value().ToStringView()));
  }
  if (!it->status().ok()) return store.db_error(it->status(), "gc scan");
  return Status();
}

// The mark phase's result: what is live, what expired, and when the next lease or ingest does.
class Marks {
 public:
  explicit Marks(std::int64_t now) : now_(now) {}

  std::set<std::string> content;    // full keys <ns>\0<digest>
  std::set<std::string> ingests;    // full keys <ns>\0<ref>
  std::set<std::string> snapshots;  // full keys <ns>\0<snapshotter>\0<key>
  std::set<std::string> live_leases, flat_leases, expired_leases;
  std::vector<std::string> orphan_resources;  // lease resources of leases that do not exist
  std::optional<std::int64_t> next_expiry;

  std::int64_t now() const { return now_; }
  void note_expiry(std::int64_t t) {
    if (t > now_ && (!next_expiry || t < *next_expiry)) next_expiry = t;
  }
  void mark_content(std::string_view ns, std::string_view digest, bool follow) {
    if (digest.empty()) return;
    if (content.insert(RocksStore::key(ns, digest)).second)
      queue_.push_back({false, std::string(ns), "", std::string(digest), follow});
  }
  void mark_snapshot(std::string_view ns, std::string_view sn, std::string_view skey, bool follow) {
    if (sn.empty() || skey.empty()) return;
    if (snapshots.insert(SnapshotView::record_key(ns, sn, skey)).second)
      queue_.push_back({true, std::string(ns), std::string(sn), std::string(skey), follow});
  }
  void mark_labels(std::string_view ns, const Labels& labels) {
    for (const auto& [lk, lv] : labels) {
      if (is_content_ref(lk)) mark_content(ns, lv, true);
      if (lk.rfind(kSnapshotRef, 0) == 0) {
        std::string sn = lk.substr(kSnapshotRef.size());
        sn = sn.substr(0, sn.find('/'));
        mark_snapshot(ns, sn, lv, true);
      }
    }
  }
  // Follows references from everything marked: content labels, snapshot parents and labels.
  void follow(RocksStore& store) {
    while (!queue_.empty()) {
      Node n = std::move(queue_.front());
      queue_.pop_front();
      std::string value;
      if (n.snapshot) {
        auto s = store.db().Get(rocksdb::ReadOptions(), store.family("snapshots"),
                                SnapshotView::record_key(n.ns, n.sn, n.id), &value);
        if (!s.ok()) continue;
        auto r = decode_snapshot(value);
        if (!r.ok()) continue;
        // A parent is needed for the child to exist at all, flat or not.
        mark_snapshot(n.ns, n.sn, r->parent, n.follow);
        if (n.follow) mark_labels(n.ns, r->labels);
        continue;
      }
      if (!n.follow) continue;
      auto s = store.db().Get(rocksdb::ReadOptions(), store.family("content"),
                              RocksStore::key(n.ns, n.id), &value);
      if (!s.ok()) continue;
      auto r = decode_content(value);
      if (r.ok()) mark_labels(n.ns, r->labels);
    }
  }

 private:
  std::int64_t now_;
  std::deque<Node> queue_;
};

// Leases: live ones are roots (flat ones hold only their direct resources); expired ones and
// resources of leases that no longer exist are swept.
Status mark_leases(RocksStore& store, Marks& m) {
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "leases", [&](std::string_view k, std::string_view v) -> Status {
        auto r = decode_lease(v);
        if (!r.ok()) return Status();  // a corrupt lease protects nothing
        if (auto it = r->labels.find(std::string(berth::leases::kExpireLabel));
            it != r->labels.end()) {
          auto t = core::parse_rfc3339(it->second);
          if (t.ok() && core::to_unix_nanos(*t) <= m.now()) {
            m.expired_leases.emplace(k);
            return Status();
          }
          if (t.ok()) m.note_expiry(core::to_unix_nanos(*t));
        }
        m.live_leases.emplace(k);
        if (r->labels.count(std::string(berth::leases::kFlatLabel))) m.flat_leases.emplace(k);
        return Status();
      }));
  return scan_all(store, "lease_resources", [&](std::string_view k, std::string_view) -> Status {
    // <ns>\0<lease>\0<type>\0<id>
    auto [ns, rest] = split_key(k);
    auto [lease, rest2] = split_key(rest);
    auto [type, id] = split_key(rest2);
    std::string lease_key = RocksStore::key(ns, lease);
    if (!m.live_leases.count(lease_key)) {
      if (!m.expired_leases.count(lease_key)) m.orphan_resources.emplace_back(k);
      return Status();
    }
    bool follow = !m.flat_leases.count(lease_key);
    if (type == "content") m.mark_content(ns, id, follow);
    if (type == "ingests") m.ingests.insert(RocksStore::key(ns, id));
    if (type.substr(0, 10) == "snapshots/") m.mark_snapshot(ns, type.substr(10), id, follow);
    return Status();
  });
}

// Images, containers, and snapshots and content labelled containerd.io/gc.root.
Status mark_objects(RocksStore& store, Marks& m) {
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "images", [&](std::string_view k, std::string_view v) -> Status {
        auto [ns, name] = split_key(k);
        auto r = decode_image(v);
        if (!r.ok()) return Status();
        m.mark_content(ns, r->target_digest, true);
        m.mark_labels(ns, r->labels);
        return Status();
      }));
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "containers", [&](std::string_view k, std::string_view v) -> Status {
        auto [ns, id] = split_key(k);
        auto r = decode_container(v);
        if (r.ok()) {
          m.mark_labels(ns, r->labels);
          m.mark_snapshot(ns, r->snapshotter, r->snapshot_key, true);
        }
        return Status();
      }));
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "snapshots", [&](std::string_view k, std::string_view v) -> Status {
        auto r = decode_snapshot(v);
        if (r.ok() && r->labels.count(std::string(kGcRoot))) {
          auto [ns, rest] = split_key(k);
          auto [sn, skey] = split_key(rest);
          m.mark_snapshot(ns, sn, skey, true);
        }
        return Status();
      }));
  return scan_all(store, "content", [&](std::string_view k, std::string_view v) -> Status {
    auto r = decode_content(v);
    if (r.ok() && r->labels.count(std::string(kGcRoot))) {
      auto [ns, digest] = split_key(k);
      m.mark_content(ns, digest, true);
    }
    return Status();
  });
}

// Ingests still within their expiry (or held by a lease) keep the blob they are writing.
Status mark_ingests(RocksStore& store, Marks& m) {
  return scan_all(store, "ingests", [&](std::string_view k, std::string_view v) -> Status {
    auto r = decode_ingest(v);
    if (!r.ok()) return Status();
    if (r->expires > m.now()) {
      m.ingests.emplace(k);
      m.note_expiry(r->expires);
    }
    if (m.ingests.count(std::string(k)) && !r->expected.empty()) {
      auto [ns, ref] = split_key(k);
      m.mark_content(ns, r->expected, true);
    }
    return Status();
  });
}

// What the metadata sweep leaves for the backends to keep.
struct Survivors {
  std::set<std::string> digests;                           // blobs some namespace references
  std::set<std::string> backend_refs;                      // backend ingests of live ingests
  std::map<std::string, std::set<std::string>> snapshots;  // backend keys, by snapshotter
};

// Deletes every unmarked record in one batch.
Result<Survivors> sweep_metadata(RocksStore& store, const Marks& m, berth::gc::Stats& stats) {
  rocksdb::WriteBatch batch;
  Survivors keep;
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "content", [&](std::string_view k, std::string_view) -> Status {
        if (m.content.count(std::string(k))) {
          keep.digests.emplace(split_key(k).second);
        } else {
          batch.Delete(store.family("content"), rocksdb::Slice(k.data(), k.size()));
          ++stats.content_removed;
        }
        return Status();
      }));
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "ingests", [&](std::string_view k, std::string_view v) -> Status {
        auto r = decode_ingest(v);
        if (m.ingests.count(std::string(k))) {
          if (r.ok()) keep.backend_refs.insert(r->backend_ref);
        } else {
          batch.Delete(store.family("ingests"), rocksdb::Slice(k.data(), k.size()));
          ++stats.ingests_removed;
        }
        return Status();
      }));
  for (const auto& k : m.expired_leases) {
    batch.Delete(store.family("leases"), k);
    std::string prefix = k + std::string(1, '\0');
    batch.DeleteRange(store.family("lease_resources"), prefix, prefix + std::string(1, '\xff'));
    ++stats.leases_removed;
  }
  for (const auto& k : m.orphan_resources) batch.Delete(store.family("lease_resources"), k);
  BERTH_RETURN_IF_ERROR(
      scan_all(store, "snapshots", [&](std::string_view k, std::string_view v) -> Status {
        if (m.snapshots.count(std::string(k))) {
          auto [ns, rest] = split_key(k);
          auto [sn, skey] = split_key(rest);
          if (auto r = decode_snapshot(v); r.ok())
            keep.snapshots[std::string(sn)].insert(r->backend_key);
        } else {
          batch.Delete(store.family("snapshots"), rocksdb::Slice(k.data(), k.size()));
        }
        return Status();
      }));
  BERTH_RETURN_IF_ERROR(store.write(batch));
  return keep;
}

// Backend snapshots no namespace references: children before parents, then cleanup().
void sweep_snapshotters(RocksStore& store, Survivors& keep, berth::gc::Stats& stats) {
  for (const auto& [sn, view] : store.snapshot_views()) {
    RequestContext ctx;
    const auto& live = keep.snapshots[sn];
    std::vector<snapshots::Info> doomed;
    Status walk = view->backend()->walk(ctx, {}, [&](const snapshots::Info& info) {
      if (!live.count(info.name)) doomed.push_back(info);
      return Status();
    });
    if (!walk.ok()) {
      log::warn("gc: walking a snapshotter failed", {{"snapshotter", sn}, {"error", walk}});
      continue;
    }
    bool progress = true;
    while (!doomed.empty() && progress) {
      progress = false;
      for (auto it = doomed.begin(); it != doomed.end();) {
        Status st = view->backend()->remove(ctx, it->name);
        if (st.ok() || st.code() == Code::kNotFound) {
          ++stats.snapshots_removed;
          it = doomed.erase(it);
          progress = true;
        } else {
          ++it;  // has children still; retried after they go
        }
      }
    }
    if (Status st = view->backend()->cleanup(ctx); !st.ok()) {
      log::warn("gc: snapshotter cleanup failed", {{"snapshotter", sn}, {"error", st}});
    }
  }
}

// Blobs and backend ingests that no namespace references any more.
void sweep_content(RocksStore& store, const Survivors& keep, berth::gc::Stats& stats) {
  auto* backend = store.options().backend.get();
  if (!backend) return;
  RequestContext ctx;
  std::vector<std::string> unreferenced;
  Status walk = backend->walk(ctx, {}, [&](const content::Info& info) {
    if (!keep.digests.count(info.digest)) unreferenced.push_back(info.digest);
    return Status();
  });
  if (!walk.ok()) log::warn("gc: walking the content store failed", {{"error", walk}});
  for (const auto& d : unreferenced) {
    Status st = backend->remove(ctx, d);
    if (st.ok()) {
      ++stats.blobs_removed;
    } else if (st.code() != Code::kNotFound) {
      log::warn("gc: removing a blob failed", {{"digest", d}, {"error", st}});
    }
  }
  if (auto ingests = backend->list_statuses(ctx, {}); ingests.ok()) {
    for (const auto& s : *ingests) {
      if (keep.backend_refs.count(s.ref)) continue;
      // Unavailable: a writer is active right now; it is reconsidered next time.
      backend->abort(ctx, s.ref).ignore();
    }
  }
}

}  // namespace

Result<berth::gc::Stats> RocksStore::collect() {
  auto started = std::chrono::steady_clock::now();
  berth::gc::Stats stats;
  std::unique_lock lock(gc_mu_);
  Marks marks(core::to_unix_nanos(std::chrono::system_clock::now()));
  BERTH_RETURN_IF_ERROR(mark_leases(*this, marks));
  BERTH_RETURN_IF_ERROR(mark_objects(*this, marks));
  BERTH_RETURN_IF_ERROR(mark_ingests(*this, marks));
  marks.follow(*this);
  BERTH_TRY(auto keep, sweep_metadata(*this, marks, stats));
  sweep_snapshotters(*this, keep, stats);
  sweep_content(*this, keep, stats);
  if (marks.next_expiry) stats.next_expiry = core::from_unix_nanos(*marks.next_expiry);
  stats.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  return stats;
}

}  // namespace berth::plugins::metadata

#include "plugins/metadata/rocksdb/snapshot_view.h"

#include <gtest/gtest.h>

#include "core/fs.h"

namespace berth::plugins::metadata {
namespace {

// A remote-style snapshotter that already has every layer it is asked to produce: Prepare with
// containerd.io/snapshot.ref answers AlreadyExists, as stargz-like snapshotters do.
class RemoteLike : public snapshots::Snapshotter {
 public:
  Result<snapshots::Info> stat(const RequestContext&, std::string_view key) override {
    if (key == committed_target)
      return snapshots::Info{snapshots::Kind::kCommitted, std::string(key), "", {}, {}, {}};
    return not_found("no {}", key);
  }
  Result<snapshots::Info> update(const RequestContext&, const snapshots::Info& i,
                                 const std::vector<std::string>&) override {
    return i;
  }
  Result<snapshots::Usage> usage(const RequestContext&, std::string_view) override {
    return snapshots::Usage{};
  }
  Result<std::vector<Mount>> mounts(const RequestContext&, std::string_view) override {
    return std::vector<Mount>{};
  }
  Result<std::vector<Mount>> prepare(const RequestContext&, std::string_view, std::string_view,
                                     const std::map<std::string, std::string>& labels) override {
    auto it = labels.find(std::string(snapshots::kSnapshotRefLabel));
    if (it != labels.end()) {
      committed_target = it->second;
      return already_exists("target {} exists", it->second);
    }
    return std::vector<Mount>{};
  }
  Result<std::vector<Mount>> view(const RequestContext&, std::string_view, std::string_view,
                                  const std::map<std::string, std::string>&) override {
    return std::vector<Mount>{};
  }
  Status commit(const RequestContext&, std::string_view, std::string_view,
                const std::map<std::string, std::string>&) override {
    return Status();
  }
  Status remove(const RequestContext&, std::string_view) override { return Status(); }
  Status walk(const RequestContext&, const std::vector<std::string>&,
              const snapshots::WalkFn&) override {
    return Status();
  }
  Status cleanup(const RequestContext&) override { return Status(); }
  std::string committed_target;
};

TEST(SnapshotView, SnapshotRefAlreadyExistsRecordsTheTargetAsCommitted) {
  auto d = core::TempDir::create("berth-sv-");
  ASSERT_TRUE(d.ok());
  auto remote = std::make_shared<RemoteLike>();
  StoreOptions o;
  o.path = d->path() + "/db";
  o.snapshotters["remote"] = remote;
  auto store = RocksStore::open(o);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto sn = (*store)->snapshotter("remote");
  ASSERT_TRUE(sn.ok());
  RequestContext ctx;
  ctx.ns = "default";
  auto r = (*sn)->prepare(ctx, "extract-1 sha256:abc", "",
                          {{"containerd.io/snapshot.ref", "sha256:abc"}});
  EXPECT_EQ(r.status().code(), Code::kAlreadyExists);
  auto target = (*sn)->stat(ctx, "sha256:abc");
  ASSERT_TRUE(target.ok()) << target.status().message();
  EXPECT_EQ(target->kind, snapshots::Kind::kCommitted);
  // The backend was asked for a namespaced target, not the client's bare name.
  EXPECT_NE(remote->committed_target, "sha256:abc");
  EXPECT_NE(remote->committed_target.find("default/"), std::string::npos);
  EXPECT_EQ((*sn)->stat(ctx, "extract-1 sha256:abc").status().code(), Code::kNotFound);
  // Another namespace does not see it.
  RequestContext other;
  other.ns = "other";
  EXPECT_EQ((*sn)->stat(other, "sha256:abc").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace berth::plugins::metadata

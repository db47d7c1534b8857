#include "core/unpack/unpack.h"

#include <gtest/gtest.h>

#include <set>

#include "core/digest.h"

namespace berth::unpack {
namespace {

// Stores in memory: committed snapshots by name, active keys, labels by digest, and what the
// "differ" yields for a blob digest.
class FakeStores : public Stores {
 public:
  std::string name = "overlayfs";
  std::set<std::string> committed, active, leased;
  std::map<std::string, std::string> parent_of;  // key -> parent
  std::map<std::string, std::map<std::string, std::string>> labels;
  std::map<std::string, std::string> content;  // blob digest -> diffID the apply yields
  std::vector<std::string> calls;
  Status fail_apply, fail_commit;
  bool race = false;  // another unpacker commits the name just before ours

  const std::string& snapshotter() const override { return name; }
  Status stat(const std::string& n) override {
    calls.push_back("stat " + n);
    return committed.count(n) ? Status() : not_found("snapshot {}", n);
  }
  Result<std::vector<Mount>> prepare(const std::string& key, const std::string& parent) override {
    calls.push_back("prepare " + parent);
    if (!parent.empty() && !committed.count(parent)) return not_found("parent {}", parent);
    active.insert(key);
    parent_of[key] = parent;
    return std::vector<Mount>{{"bind", "/x/" + key, "", {"rw"}}};
  }
  Result<std::string> apply(const diff::Descriptor& layer, const std::vector<Mount>& m) override {
    calls.push_back("apply " + layer.digest);
    if (!fail_apply.ok()) return fail_apply;
    return content.at(layer.digest);
  }
  Status commit(const std::string& n, const std::string& key) override {
    calls.push_back("commit " + n);
    if (!fail_commit.ok()) return fail_commit;
    if (race) committed.insert(n);
    if (committed.count(n)) return already_exists("snapshot {}", n);
    active.erase(key);
    committed.insert(n);
    return Status();
  }
  Status remove(const std::string& key) override {
    calls.push_back("remove");
    active.erase(key);
    return Status();
  }
  Status lease(const std::string& n) override {
    leased.insert(n);
    return Status();
  }
  Status label(const std::string& digest, const std::map<std::string, std::string>& l) override {
    for (const auto& [k, v] : l) labels[digest][k] = v;
    return Status();
  }
};

std::string sha(const std::string& s) { return core::Sha256::digest_of(s); }

Layer layer(FakeStores& f, const std::string& name, bool known_diff = true) {
  Layer l{{std::string(diff::kMediaTypeOciLayerGzip), sha("blob " + name), 10, {}},
          known_diff ? sha("tar " + name) : ""};
  f.content[l.blob.digest] = sha("tar " + name);
  return l;
}

TEST(Unpack, AppliesEachLayerOnItsParentAndLabels) {
  FakeStores f;
  std::vector<Layer> layers = {layer(f, "a"), layer(f, "b")};
  std::vector<std::string> steps;
  auto top = unpack_image(f, layers, sha("config"), [&](std::size_t i, const Layer&, Step s) {
    steps.push_back(std::to_string(i) + (s == Step::kApplying ? "applying" : "applied"));
  });
  ASSERT_TRUE(top.ok()) << top.status().message();
  std::string chain0 = layers[0].diff_id;
  std::string chain1 = sha(chain0 + " " + layers[1].diff_id);
  EXPECT_EQ(*top, chain1);
  EXPECT_EQ(f.committed, (std::set<std::string>{chain0, chain1}));
  EXPECT_TRUE(f.active.empty());
  EXPECT_EQ(steps, (std::vector<std::string>{"0applying", "0applied", "1applying", "1applied"}));
  EXPECT_EQ(f.labels[layers[1].blob.digest]["containerd.io/uncompressed"], layers[1].diff_id);
  EXPECT_EQ(f.labels[sha("config")]["containerd.io/gc.ref.snapshot.overlayfs"], chain1);
  // The second layer was prepared on the first's chain, under a key that names its chain.
  bool found = false;
  for (const auto& [key, parent] : f.parent_of) {
    if (parent == chain0) {
      found = true;
      EXPECT_EQ(key.rfind("extract-", 0), 0u);
      EXPECT_NE(key.find(" " + chain1), std::string::npos);
    }
  }
  EXPECT_TRUE(found);
  auto unpacked = is_unpacked(f, {layers[0].diff_id, layers[1].diff_id});
  ASSERT_TRUE(unpacked.ok());
  EXPECT_TRUE(*unpacked);
}

TEST(Unpack, AnExistingChainIsLeasedNotApplied) {
  FakeStores f;
  Layer a = layer(f, "a");
  f.committed.insert(a.diff_id);
  std::vector<Step> steps;
  auto done = unpack_layer(f, a, "", [&](Step s) { steps.push_back(s); });
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->step, Step::kExisted);
  EXPECT_EQ(steps, std::vector<Step>{Step::kExisted});
  EXPECT_TRUE(f.leased.count(a.diff_id));
  for (const auto& c : f.calls) EXPECT_EQ(c.rfind("apply", 0), std::string::npos) << c;
  EXPECT_EQ(f.labels[a.blob.digest]["containerd.io/uncompressed"], a.diff_id);
}

TEST(Unpack, WrongDiffIdRemovesTheKeyAndCommitsNothing) {
  FakeStores f;
  Layer a = layer(f, "a");
  a.diff_id = sha("what the config claims");
  auto done = unpack_layer(f, a, "");
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(done.status().message().find("wrong diffID"), std::string::npos);
  EXPECT_NE(done.status().message().find(a.blob.digest), std::string::npos);
  EXPECT_TRUE(f.committed.empty());
  EXPECT_TRUE(f.active.empty());
  EXPECT_TRUE(f.labels.empty());
}

TEST(Unpack, ApplyAndCommitFailuresRemoveTheKey) {
  for (int which = 0; which < 2; ++which) {
    FakeStores f;
    Layer a = layer(f, "a");
    (which == 0 ? f.fail_apply : f.fail_commit) = Status(Code::kResourceExhausted, "too big");
    auto done = unpack_layer(f, a, "");
    ASSERT_FALSE(done.ok());
    EXPECT_EQ(done.status().code(), Code::kResourceExhausted);
    EXPECT_TRUE(f.active.empty());
    EXPECT_TRUE(f.committed.empty());
  }
}

TEST(Unpack, LosingACommitRaceIsSuccess) {
  FakeStores f;
  f.race = true;
  Layer a = layer(f, "a");
  auto done = unpack_layer(f, a, "");
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->chain_id, a.diff_id);
  EXPECT_TRUE(f.active.empty());  // our key went
  EXPECT_TRUE(f.leased.count(a.diff_id));
  EXPECT_EQ(f.labels[a.blob.digest]["containerd.io/uncompressed"], a.diff_id);
}

TEST(Unpack, AnUnknownDiffIdIsLearnedFromTheApply) {
  FakeStores f;
  Layer base = layer(f, "base");
  f.committed.insert(base.diff_id);
  Layer a = layer(f, "a", /*known_diff=*/false);
  auto done = unpack_layer(f, a, base.diff_id);
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->diff_id, sha("tar a"));
  EXPECT_EQ(done->chain_id, sha(base.diff_id + " " + sha("tar a")));
  EXPECT_TRUE(f.committed.count(done->chain_id));
  EXPECT_EQ(f.calls.front(), "prepare " + base.diff_id);  // nothing to stat without a diffID
}

TEST(Unpack, MissingParentAndNothingToUnpack) {
  FakeStores f;
  Layer a = layer(f, "a");
  EXPECT_EQ(unpack_layer(f, a, sha("nope")).status().code(), Code::kNotFound);
  auto none = unpack_image(f, {}, sha("config"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
  EXPECT_TRUE(f.labels.empty());
  auto unpacked = is_unpacked(f, {a.diff_id});
  ASSERT_TRUE(unpacked.ok());
  EXPECT_FALSE(*unpacked);
}

}  // namespace
}  // namespace berth::unpack

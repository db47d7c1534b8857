#include "plugins/metadata/rocksdb/store.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/fs.h"

namespace berth::plugins::metadata {
namespace {

using berth::metadata::Namespace;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-meta-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    path_ = dir_->path() + "/db";
    auto s = RocksStore::open({path_});
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = *s;
  }
  std::optional<core::TempDir> dir_;
  std::string path_;
  std::shared_ptr<RocksStore> store_;
};

TEST_F(StoreTest, CreateGetListRoundTrip) {
  ASSERT_TRUE(store_->create({"default", {}}).ok());
  ASSERT_TRUE(store_->create({"k8s.io", {{"team", "a"}}}).ok());
  auto got = store_->get("k8s.io");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels.at("team"), "a");
  auto all = store_->list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "default");
}

TEST_F(StoreTest, DuplicateAndInvalidNamesAreRejected) {
  ASSERT_TRUE(store_->create({"a", {}}).ok());
  EXPECT_EQ(store_->create({"a", {}}).code(), Code::kAlreadyExists);
  EXPECT_EQ(store_->create({"bad name", {}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->create({"x", {{"", "v"}}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->get("nope").status().code(), Code::kNotFound);
}

TEST_F(StoreTest, UpdateWithFieldPaths) {
  ASSERT_TRUE(store_->create({"a", {{"keep", "1"}, {"drop", "2"}}}).ok());
  auto u = store_->update({"a", {{"new", "3"}}}, {"labels.new", "labels.drop"});
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->labels, (std::map<std::string, std::string>{{"keep", "1"}, {"new", "3"}}));
  auto all = store_->update({"a", {{"only", "x"}}}, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->labels, (std::map<std::string, std::string>{{"only", "x"}}));
  EXPECT_EQ(store_->update({"a", {}}, {"name"}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->update({"missing", {}}, {}).status().code(), Code::kNotFound);
}

TEST_F(StoreTest, RemoveRefusesNonEmptyNamespace) {
  ASSERT_TRUE(store_->create({"busy", {}}).ok());
  ASSERT_TRUE(store_->put("images", "busy", "docker.io/library/busybox:latest", "{}").ok());
  // An object in another namespace whose name is a prefix must not count.
  ASSERT_TRUE(store_->create({"bus", {}}).ok());
  EXPECT_EQ(store_->remove("busy").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(store_->remove("bus").ok());
  ASSERT_TRUE(store_->erase("images", "busy", "docker.io/library/busybox:latest").ok());
  EXPECT_TRUE(store_->remove("busy").ok());
  EXPECT_EQ(store_->remove("busy").code(), Code::kNotFound);
}

TEST_F(StoreTest, SurvivesReopen) {
  ASSERT_TRUE(store_->create({"persist", {{"a", "b"}}}).ok());
  ASSERT_TRUE(store_->close().ok());
  store_.reset();
  auto again = RocksStore::open({path_});
  ASSERT_TRUE(again.ok());
  auto got = (*again)->get("persist");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels.at("a"), "b");
}

TEST_F(StoreTest, SecondOpenOfSameDatabaseFailsClearly) {
  auto second = RocksStore::open({path_});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(path_), std::string::npos);
}

TEST_F(StoreTest, ConcurrentCreatesOfOneNameHaveOneWinner) {
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (store_->create({"race", {}}).ok()) ++wins;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

}  // namespace
}  // namespace berth::plugins::metadata

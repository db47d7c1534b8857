#include <thread>

#include "core/time.h"
#include "plugins/metadata/rocksdb/lease_store.h"
#include "plugins/metadata/rocksdb/test_util.h"

namespace berth::plugins::metadata {
namespace {

using GcTest = MetadataFixture;

std::string in(std::chrono::milliseconds d) {
  return core::format_rfc3339(std::chrono::system_clock::now() + d);
}

TEST_F(GcTest, RemovesExactlyTheUnreferencedBlobs) {
  auto a = ns("a");
  std::string layer = put(a, "layer");
  std::string config = put(a, "config");
  std::string manifest = put(a, "manifest",
                             {{"containerd.io/gc.ref.content.l.0", layer},
                              {"containerd.io/gc.ref.content.config", config}});
  std::string root = put(a, "rooted", {{"containerd.io/gc.root", "x"}});
  // The manifest is referenced by an image record.
  ASSERT_TRUE(
      store_->put("images", "a", "img:latest", R"({"target":{"digest":")" + manifest + R"("}})")
          .ok());
  std::string loose = put(a, "loose");
  std::string leased;
  ASSERT_TRUE(store_->leases().create(a, {.id = "keep"}).ok());
  leased = put(ns("a", "keep"), "leased");
  // The ingest puts give every blob an unexpired ingest record only until commit; nothing else
  // holds `loose`.
  auto stats = store_->collect();
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->content_removed, 1u);
  EXPECT_EQ(stats->blobs_removed, 1u);
  for (const auto& d : {layer, config, manifest, root, leased}) {
    EXPECT_TRUE(store_->content()->info(a, d).ok()) << d;
    EXPECT_TRUE(blob_on_disk(d)) << d;
  }
  EXPECT_EQ(store_->content()->info(a, loose).status().code(), Code::kNotFound);
  EXPECT_FALSE(blob_on_disk(loose));
}

TEST_F(GcTest, BlobSharedByTwoNamespacesStaysUntilBothLetGo) {
  std::string d = put(ns("a"), "both", {{"containerd.io/gc.root", "1"}});
  put(ns("b"), "both");
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_FALSE(store_->content()->info(ns("b"), d).ok());  // b had no root
  EXPECT_TRUE(blob_on_disk(d));                            // a still holds it
  ASSERT_TRUE(store_->content()->remove(ns("a"), d).ok());
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_FALSE(blob_on_disk(d));
}

TEST_F(GcTest, ExpiredLeaseIsReclaimedAndReportsNextExpiry) {
  auto a = ns("a");
  ASSERT_TRUE(
      store_->leases()
          .create(a, {.id = "short",
                      .labels = {{"containerd.io/gc.expire", in(std::chrono::milliseconds(300))}}})
          .ok());
  std::string d = put(ns("a", "short"), "temporary");
  auto first = store_->collect();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(blob_on_disk(d));
  ASSERT_TRUE(first->next_expiry.has_value());
  std::this_thread::sleep_until(*first->next_expiry + std::chrono::milliseconds(50));
  auto second = store_->collect();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->leases_removed, 1u);
  EXPECT_FALSE(blob_on_disk(d));
  auto leases = store_->leases().list(a, {});
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
}

TEST_F(GcTest, FlatLeaseDoesNotFollowReferences) {
  auto a = ns("a");
  std::string child = put(a, "child");
  ASSERT_TRUE(
      store_->leases().create(a, {.id = "flat", .labels = {{"containerd.io/gc.flat", ""}}}).ok());
  std::string parent = put(ns("a", "flat"), "parent", {{"containerd.io/gc.ref.content.0", child}});
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_TRUE(blob_on_disk(parent));
  EXPECT_FALSE(blob_on_disk(child));
}

TEST_F(GcTest, LiveIngestsAndTheirExpectedDigestSurvive) {
  auto w = store_->content()->writer(ns("a"), {.ref = "in-progress"});
  ASSERT_TRUE((*w)->write("partial").ok());
  w->reset();
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_TRUE(store_->content()->status(ns("a"), "in-progress").ok());
}

TEST_F(GcTest, LeaseResourcesAreManagedExplicitly) {
  auto a = ns("a");
  std::string d = put(a, "adopted");
  ASSERT_TRUE(store_->leases().create(a, {.id = "l"}).ok());
  ASSERT_TRUE(store_->leases().add_resource(a, "l", {d, "content"}).ok());
  EXPECT_EQ(store_->leases().add_resource(a, "l", {"x", "bogus"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->leases().add_resource(a, "missing", {d, "content"}).code(), Code::kNotFound);
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_TRUE(blob_on_disk(d));
  ASSERT_TRUE(store_->leases().delete_resource(a, "l", {d, "content"}).ok());
  ASSERT_TRUE(store_->collect().ok());
  EXPECT_FALSE(blob_on_disk(d));
}

TEST_F(GcTest, LeaseValidation) {
  auto a = ns("a");
  EXPECT_EQ(store_->leases().create(a, {.id = ""}).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(store_->leases().create(a, {.id = "/mnt/path-like ids work"}).ok());
  EXPECT_EQ(store_->leases()
                .create(a, {.id = "x", .labels = {{"containerd.io/gc.expire", "soon"}}})
                .status()
                .code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(store_->leases().create(a, {.id = "x"}).ok());
  EXPECT_EQ(store_->leases().create(a, {.id = "x"}).status().code(), Code::kAlreadyExists);
  ASSERT_TRUE(store_->leases().remove(a, "x").ok());
  EXPECT_EQ(store_->leases().remove(a, "x").code(), Code::kNotFound);
}

}  // namespace
}  // namespace berth::plugins::metadata

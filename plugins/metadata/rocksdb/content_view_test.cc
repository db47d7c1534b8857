#include "plugins/metadata/rocksdb/content_view.h"

#include "plugins/metadata/rocksdb/test_util.h"

namespace berth::plugins::metadata {
namespace {

using ContentViewTest = MetadataFixture;

TEST_F(ContentViewTest, BlobsAreVisibleOnlyInTheirNamespace) {
  std::string d = put(ns("a"), "secret");
  EXPECT_TRUE(store_->content()->info(ns("a"), d).ok());
  EXPECT_EQ(store_->content()->info(ns("b"), d).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->content()->reader(ns("b"), d).status().code(), Code::kNotFound);
  int n = 0;
  ASSERT_TRUE(store_->content()
                  ->walk(ns("b"), {},
                         [&](const auto&) {
                           ++n;
                           return Status();
                         })
                  .ok());
  EXPECT_EQ(n, 0);
  // Writing creates the namespace implicitly, as containerd does.
  EXPECT_TRUE(store_->get("a").ok());
}

TEST_F(ContentViewTest, SharedPolicyLinksExistingBytesWithoutUpload) {
  std::string d = put(ns("a"), "shared bytes");
  auto w = store_->content()->writer(ns("b"), {.ref = "x", .expected = d});
  EXPECT_EQ(w.status().code(), Code::kAlreadyExists);
  auto info = store_->content()->info(ns("b"), d);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 12);
}

TEST_F(ContentViewTest, IsolatedPolicyMakesTheClientUploadAgain) {
  open_store(SharingPolicy::kIsolated);
  std::string d = put(ns("a"), "isolated bytes");
  auto w = store_->content()->writer(ns("b"), {.ref = "x", .expected = d});
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(store_->content()->info(ns("b"), d).status().code(), Code::kNotFound);
  ASSERT_TRUE((*w)->write("isolated bytes").ok());
  ASSERT_TRUE((*w)->commit(14, d, {}).ok());
  EXPECT_TRUE(store_->content()->info(ns("b"), d).ok());
}

TEST_F(ContentViewTest, IngestRefsAreNamespacedAndResumable) {
  auto w = store_->content()->writer(ns("a"), {.ref = "layer-1", .total = 10});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->write("01234").ok());
  EXPECT_EQ((*w)->status().ref, "layer-1");
  // Same ref in another namespace is a different ingest.
  auto other = store_->content()->writer(ns("b"), {.ref = "layer-1"});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->status().offset, 0);
  // Second writer on the same ref in the same namespace: Unavailable.
  EXPECT_EQ(store_->content()->writer(ns("a"), {.ref = "layer-1"}).status().code(),
            Code::kUnavailable);
  w->reset();
  auto st = store_->content()->status(ns("a"), "layer-1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->offset, 5);
  EXPECT_EQ(st->total, 10);
  auto statuses = store_->content()->list_statuses(ns("a"), {"ref~=layer"});
  ASSERT_TRUE(statuses.ok());
  ASSERT_EQ(statuses->size(), 1u);
  auto resumed = store_->content()->writer(ns("a"), {.ref = "layer-1"});
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ((*resumed)->status().offset, 5);
  ASSERT_TRUE((*resumed)->write("56789").ok());
  ASSERT_TRUE((*resumed)->commit(10, core::Sha256::digest_of("0123456789"), {{"k", "v"}}).ok());
  auto info = store_->content()->info(ns("a"), core::Sha256::digest_of("0123456789"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("k"), "v");
  EXPECT_EQ(store_->content()->status(ns("a"), "layer-1").status().code(), Code::kNotFound);
}

TEST_F(ContentViewTest, AbortRemovesTheIngest) {
  auto w = store_->content()->writer(ns("a"), {.ref = "gone"});
  ASSERT_TRUE((*w)->write("x").ok());
  w->reset();
  ASSERT_TRUE(store_->content()->abort(ns("a"), "gone").ok());
  EXPECT_EQ(store_->content()->status(ns("a"), "gone").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->content()->abort(ns("a"), "gone").code(), Code::kNotFound);
}

TEST_F(ContentViewTest, LabelsUpdateWithMasksAndLimits) {
  std::string d = put(ns("a"), "labelled", {{"a", "1"}, {"b", "2"}});
  berth::content::Info upd;
  upd.digest = d;
  upd.labels = {{"c", "3"}};
  auto r = store_->content()->update(ns("a"), upd, {"labels.c", "labels.a"});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->labels, (std::map<std::string, std::string>{{"b", "2"}, {"c", "3"}}));
  upd.labels = {{"big", std::string(5000, 'x')}};
  EXPECT_EQ(store_->content()->update(ns("a"), upd, {"labels.big"}).status().code(),
            Code::kInvalidArgument);
  upd.labels = {};
  EXPECT_EQ(store_->content()->update(ns("a"), upd, {"size"}).status().code(),
            Code::kInvalidArgument);
  int n = 0;
  ASSERT_TRUE(store_->content()
                  ->walk(ns("a"), {"labels.c==3"},
                         [&](const auto&) {
                           ++n;
                           return Status();
                         })
                  .ok());
  EXPECT_EQ(n, 1);
}

TEST_F(ContentViewTest, WritesUnderAnUnknownLeaseFail) {
  auto w = store_->content()->writer(ns("a", "nope"), {.ref = "r"});
  EXPECT_EQ(w.status().code(), Code::kNotFound);
  EXPECT_NE(w.status().message().find("lease \"nope\""), std::string::npos);
}

TEST_F(ContentViewTest, LeaseCollectsWhatIsCreatedUnderIt) {
  ASSERT_TRUE(store_->leases().create(ns("a"), {.id = "l1"}).ok());
  std::string d = put(ns("a", "l1"), "leased");
  auto res = store_->leases().list_resources(ns("a"), "l1");
  ASSERT_TRUE(res.ok());
  bool found_content = false;
  for (const auto& r : *res) found_content |= r.type == "content" && r.id == d;
  EXPECT_TRUE(found_content);
}

TEST_F(ContentViewTest, NamespaceWithContentCannotBeDeleted) {
  put(ns("full"), "x");
  EXPECT_EQ(store_->remove("full").code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace berth::plugins::metadata

#include "plugins/content/local/local_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/digest.h"
#include "core/fs.h"

namespace berth::plugins::content {
namespace {

using berth::content::WriterOptions;

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-content-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    auto s = LocalStore::open(dir_->path());
    ASSERT_TRUE(s.ok());
    store_ = *s;
  }
  std::string read_all(std::string_view digest) {
    auto r = store_->reader(ctx_, digest);
    EXPECT_TRUE(r.ok()) << r.status().message();
    std::string out((*r)->size(), '\0');
    auto n = (*r)->read_at(out.data(), out.size(), 0);
    EXPECT_TRUE(n.ok());
    return out;
  }
  std::optional<core::TempDir> dir_;
  std::shared_ptr<LocalStore> store_;
  RequestContext ctx_;
};

TEST_F(LocalStoreTest, WriteCommitReadBack) {
  std::string data = "hello content";
  std::string digest = core::Sha256::digest_of(data);
  auto w = store_->writer(ctx_, {.ref = "ref1", .total = 13});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->write(data).ok());
  EXPECT_EQ((*w)->status().offset, 13);
  EXPECT_EQ((*w)->digest(), digest);
  ASSERT_TRUE((*w)->commit(13, digest, {}).ok());
  EXPECT_EQ(read_all(digest), data);
  struct stat st {};
  ASSERT_EQ(::stat(store_->blob_path(digest).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(store_->status(ctx_, "ref1").status().code(), Code::kNotFound);
  auto info = store_->info(ctx_, digest);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 13);
}

TEST_F(LocalStoreTest, SecondWriterOnRefIsUnavailable) {
  auto w1 = store_->writer(ctx_, {.ref = "busy"});
  ASSERT_TRUE(w1.ok());
  auto w2 = store_->writer(ctx_, {.ref = "busy"});
  EXPECT_EQ(w2.status().code(), Code::kUnavailable);
  EXPECT_EQ(store_->abort(ctx_, "busy").code(), Code::kUnavailable);
  w1->reset();
  EXPECT_TRUE(store_->writer(ctx_, {.ref = "busy"}).ok());
}

TEST_F(LocalStoreTest, ResumeContinuesAtOffsetWithTheRightDigest) {
  std::string a(300000, 'a'), b(200000, 'b');
  {
    auto w = store_->writer(ctx_, {.ref = "resume", .total = 500000});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->write(a).ok());
  }  // dropped without commit, like a client that went away
  auto st = store_->status(ctx_, "resume");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->offset, 300000);
  EXPECT_EQ(st->total, 500000);
  auto w = store_->writer(ctx_, {.ref = "resume"});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->status().offset, 300000);
  ASSERT_TRUE((*w)->write(b).ok());
  std::string digest = core::Sha256::digest_of(a + b);
  ASSERT_TRUE((*w)->commit(500000, digest, {}).ok());
  EXPECT_EQ(read_all(digest), a + b);
}

TEST_F(LocalStoreTest, ResumeWithStaleHashStateHashesTheTail) {
  std::string a(1000, 'x');
  {
    auto w = store_->writer(ctx_, {.ref = "tail"});
    ASSERT_TRUE((*w)->write(a).ok());
  }
  // Simulate a crash between the data write and the state save: more data than the state says.
  std::string data_path = store_->ingest_dir("tail") + "/data";
  FILE* f = std::fopen(data_path.c_str(), "a");
  std::fputs("yyyy", f);
  std::fclose(f);
  auto w = store_->writer(ctx_, {.ref = "tail"});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->status().offset, 1004);
  EXPECT_EQ((*w)->digest(), core::Sha256::digest_of(a + "yyyy"));
}

TEST_F(LocalStoreTest, WrongSizeOrDigestCommitsNothing) {
  std::string data = "payload";
  std::string digest = core::Sha256::digest_of(data);
  {
    auto w = store_->writer(ctx_, {.ref = "bad-size"});
    ASSERT_TRUE((*w)->write(data).ok());
    Status s = (*w)->commit(99, "", {});
    EXPECT_EQ(s.code(), Code::kFailedPrecondition);
    EXPECT_NE(s.message().find("unexpected size 7, expected 99"), std::string::npos);
  }
  {
    auto w = store_->writer(ctx_, {.ref = "bad-digest"});
    ASSERT_TRUE((*w)->write(data).ok());
    std::string wrong = core::Sha256::digest_of("other");
    Status s = (*w)->commit(0, wrong, {});
    EXPECT_EQ(s.code(), Code::kFailedPrecondition);
    EXPECT_NE(s.message().find("unexpected digest"), std::string::npos);
  }
  EXPECT_EQ(store_->info(ctx_, digest).status().code(), Code::kNotFound);
}

TEST_F(LocalStoreTest, ExistingDigestIsAlreadyExists) {
  std::string data = "same";
  std::string digest = core::Sha256::digest_of(data);
  for (const char* ref : {"one", "two"}) {
    auto w = store_->writer(ctx_, {.ref = ref});
    ASSERT_TRUE((*w)->write(data).ok());
    Status s = (*w)->commit(0, digest, {});
    if (std::string(ref) == "one") {
      EXPECT_TRUE(s.ok());
    } else {
      EXPECT_EQ(s.code(), Code::kAlreadyExists);
    }
  }
  EXPECT_EQ(store_->writer(ctx_, {.ref = "three", .expected = digest}).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(store_->status(ctx_, "two").status().code(), Code::kNotFound);
}

TEST_F(LocalStoreTest, TruncateRestartsTheIngest) {
  auto w = store_->writer(ctx_, {.ref = "t"});
  ASSERT_TRUE((*w)->write("garbage").ok());
  ASSERT_TRUE((*w)->truncate(0).ok());
  EXPECT_FALSE((*w)->truncate(3).ok());
  ASSERT_TRUE((*w)->write("good").ok());
  ASSERT_TRUE((*w)->commit(4, core::Sha256::digest_of("good"), {}).ok());
}

TEST_F(LocalStoreTest, WalkListAbortRemoveAndReadAtOffsets) {
  for (std::string s : {"a", "bb", "ccc"}) {
    auto w = store_->writer(ctx_, {.ref = "w-" + s});
    ASSERT_TRUE((*w)->write(s).ok());
    ASSERT_TRUE((*w)->commit(0, "", {}).ok());
  }
  int n = 0;
  ASSERT_TRUE(store_
                  ->walk(ctx_, {},
                         [&](const auto&) {
                           ++n;
                           return Status();
                         })
                  .ok());
  EXPECT_EQ(n, 3);
  n = 0;
  ASSERT_TRUE(store_
                  ->walk(ctx_, {"size==2"},
                         [&](const auto& i) {
                           EXPECT_EQ(i.size, 2);
                           ++n;
                           return Status();
                         })
                  .ok());
  EXPECT_EQ(n, 1);

  auto w = store_->writer(ctx_, {.ref = "layer-1"});
  ASSERT_TRUE((*w)->write("x").ok());
  w->reset();
  auto statuses = store_->list_statuses(ctx_, {"ref~=^layer-"});
  ASSERT_TRUE(statuses.ok());
  ASSERT_EQ(statuses->size(), 1u);
  ASSERT_TRUE(store_->abort(ctx_, "layer-1").ok());
  EXPECT_EQ(store_->abort(ctx_, "layer-1").code(), Code::kNotFound);

  std::string d = core::Sha256::digest_of("ccc");
  auto r = store_->reader(ctx_, d);
  char c[4] = {};
  EXPECT_EQ(*(*r)->read_at(c, 4, 1), 2u);
  EXPECT_EQ(std::string(c, 2), "cc");
  EXPECT_EQ((*r)->read_at(c, 4, 10).status().code(), Code::kOutOfRange);
  ASSERT_TRUE(store_->remove(ctx_, d).ok());
  EXPECT_EQ(store_->remove(ctx_, d).code(), Code::kNotFound);
  EXPECT_EQ(store_->info(ctx_, "sha256:nothex").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace berth::plugins::content

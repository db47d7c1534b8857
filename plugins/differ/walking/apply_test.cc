// Layer application: content, metadata, whiteouts in both modes, compression, and hostile layers.
// Needs root (owners, device nodes, trusted.* xattrs).
#include "plugins/differ/walking/apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/digest.h"
#include "core/fs.h"
#include "tests/support/layer_reader.h"
#include "tests/support/tar_builder.h"

namespace berth::plugins::differ {
namespace {

namespace fs = std::filesystem;
using test::compress;
using test::TarBuilder;

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  std::uint64_t x = 88172645463325252ull;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

std::string slurp(const std::string& p) {
  auto r = core::read_file(p);
  return r.ok() ? *r : "<missing>";
}

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto d = core::TempDir::create("berth-apply-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    root_ = dir_->path() + "/root";
    fs::create_directories(root_);
  }
  Result<ApplyResult> apply(const std::string& tar, ApplyOptions o = {}) {
    return apply_layer(test::reader_of(tar), root_, o);
  }
  std::optional<core::TempDir> dir_;
  std::string root_;
};

TEST_F(ApplyTest, FilesDirsLinksOwnersModesXattrsAndDiffId) {
  std::string tar =
      TarBuilder()
          .dir("etc", 0750, 7)
          .file("etc/conf", "hello", 04755, 7, {{"user.note", "n"}, {"trusted.note", "t"}})
          .symlink("etc/link", "conf")
          .hardlink("etc/hard", "etc/conf", 04755, 7)
          .fifo("run.fifo")
          .file("./deep/er/x", "x")
          .finish();
  auto r = apply(tar);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->diff_id, core::Sha256::digest_of(tar));
  EXPECT_EQ(r->uncompressed_size, static_cast<std::int64_t>(tar.size()));
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  ASSERT_EQ(::lstat((root_ + "/etc/conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(slurp(root_ + "/etc/conf"), "hello");
  char v[8] = {};
  EXPECT_EQ(::lgetxattr((root_ + "/etc/conf").c_str(), "user.note", v, sizeof v), 1);
  EXPECT_EQ(fs::read_symlink(root_ + "/etc/link"), "conf");
  ASSERT_EQ(::lstat((root_ + "/run.fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(slurp(root_ + "/deep/er/x"), "x");
}

TEST_F(ApplyTest, CompressedLayersHashTheUncompressedStream) {
  for (const char* filter : {"gzip", "zstd"}) {
    for (bool typed : {true, false}) {
      fs::remove_all(root_);
      fs::create_directories(root_);
      std::string plain = TarBuilder().file("a", std::string(10000, 'a')).finish();
      ApplyOptions o;
      if (typed) o.media_type = std::string("application/vnd.oci.image.layer.v1.tar+") + filter;
      auto r = apply(compress(plain, filter), o);
      ASSERT_TRUE(r.ok()) << filter << ": " << r.status().message();
      EXPECT_EQ(r->diff_id, core::Sha256::digest_of(plain)) << filter;
      EXPECT_EQ(slurp(root_ + "/a"), std::string(10000, 'a'));
    }
  }
}

// Only the decoder the media type names runs; other compressions are not decoded at all.
TEST_F(ApplyTest, OnlyTheMediaTypesDecompressorRuns) {
  std::string plain = TarBuilder().file("a", "a").finish();
  auto with = [&](const std::string& blob, const std::string& media_type) {
    fs::remove_all(root_);
    fs::create_directories(root_);
    ApplyOptions o;
    o.media_type = media_type;
    return apply(blob, o);
  };
  const std::string oci = "application/vnd.oci.image.layer.v1.tar";
  EXPECT_FALSE(with(compress(plain, "gzip"), oci + "+zstd").ok());
  EXPECT_FALSE(with(compress(plain, "zstd"), oci + "+gzip").ok());
  EXPECT_FALSE(with(compress(plain, "gzip"), oci).ok());
  for (const char* other : {"xz", "bzip2", "lz4", "lzip"}) {
    EXPECT_FALSE(with(compress(plain, other), "").ok()) << other;
    EXPECT_FALSE(with(compress(plain, other), oci + "+gzip").ok()) << other;
    EXPECT_FALSE(fs::exists(root_ + "/a")) << other << " was decoded";
  }
  // Uncompressed bytes under a compressed media type pass through (docker-archive imports).
  auto r = with(plain, "application/vnd.docker.image.rootfs.diff.tar.gzip");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(slurp(root_ + "/a"), "a");
  auto bad = with(plain, "application/vnd.example.layer.v1.tar+lz4");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unsupported layer media type"), std::string::npos);
  EXPECT_EQ(*layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            Compression::kGzip);
}

TEST_F(ApplyTest, CompressionBombsStopAtTheSizeLimit) {
  std::string zeros = TarBuilder().file("zeros", std::string(64 << 20, '\0')).finish();
  for (const char* filter : {"gzip", "zstd"}) {
    SCOPED_TRACE(filter);
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::string bomb = compress(zeros, filter);
    ASSERT_LT(bomb.size(), 1u << 20);  // a small blob that expands 64 MiB
    ApplyOptions o;
    o.limits.max_bytes = 16 << 20;
    // The entry's header already says 64 MiB; hide that by a stream of many 1 MiB entries.
    TarBuilder many;
    for (int i = 0; i < 64; ++i) many.file("z" + std::to_string(i), std::string(1 << 20, '\0'));
    for (const std::string& tar : {zeros, many.finish()}) {
      auto r = apply(compress(tar, filter), o);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().message();
      EXPECT_NE(r.status().message().find("max_layer_size"), std::string::npos)
          << r.status().message();
      EXPECT_NE(r.status().message().find("16 MiB"), std::string::npos) << r.status().message();
    }
  }
}

TEST_F(ApplyTest, EntryCountIsBounded) {
  TarBuilder b;
  for (int i = 0; i < 200; ++i) b.file("f" + std::to_string(i), "");
  ApplyOptions o;
  o.limits.max_entries = 100;
  auto r = apply(b.finish(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("max_layer_entries"), std::string::npos)
      << r.status().message();
}

TEST_F(ApplyTest, WhiteoutsAndOpaqueDirectoriesOnAFullTree) {
  ASSERT_TRUE(apply(TarBuilder()
                        .file("a", "a")
                        .dir("d")
                        .file("d/keep", "k")
                        .dir("o")
                        .file("o/old1", "1")
                        .file("o/old2", "2")
                        .finish())
                  .ok());
  auto r = apply(TarBuilder()
                     .file(".wh.a", "")
                     .file("d/.wh.missing", "")
                     .file("o/.wh..wh..opq", "")
                     .file("o/new", "n")
                     .finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(root_ + "/a"));
  EXPECT_TRUE(fs::exists(root_ + "/d/keep"));
  EXPECT_FALSE(fs::exists(root_ + "/o/old1"));
  EXPECT_FALSE(fs::exists(root_ + "/o/old2"));
  EXPECT_EQ(slurp(root_ + "/o/new"), "n");
  EXPECT_FALSE(fs::exists(root_ + "/o/.wh..wh..opq"));
}

TEST_F(ApplyTest, OverlayUpperGetsOverlayWhiteoutsAndParentAttributes) {
  std::string lower = dir_->path() + "/lower";
  fs::create_directories(lower + "/usr/share");
  ::chmod((lower + "/usr").c_str(), 0711);
  ApplyOptions o;
  o.mode = ApplyOptions::Mode::kOverlayUpper;
  o.lowerdirs = {lower};
  auto r = apply(TarBuilder()
                     .file("usr/share/.wh.gone", "")
                     .file("usr/.wh..wh..opq", "")
                     .file("usr/share/new", "n")
                     .finish(),
                 o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  struct stat st {};
  ASSERT_EQ(::lstat((root_ + "/usr/share/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  char v[4] = {};
  EXPECT_EQ(::getxattr((root_ + "/usr").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  ASSERT_EQ(::lstat((root_ + "/usr").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);  // copied from the lower layer
}

TEST_F(ApplyTest, DotDotIsRefusedAndNothingEscapes) {
  auto r = apply(TarBuilder().file("../escaped", "evil").finish());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("escapes the root"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(fs::exists(dir_->path() + "/escaped"));
  auto w = apply(TarBuilder().file("x/.wh...", "").finish());
  ASSERT_FALSE(w.ok());
}

TEST_F(ApplyTest, AbsoluteNamesAndSymlinksResolveInsideTheRoot) {
  auto r = apply(TarBuilder()
                     .file("/abs", "a")
                     .symlink("up", "/")
                     .file("up/through-root-link", "t")
                     .symlink("etcdir", "/etc")
                     .file("etcdir/passwd-in-root", "p")
                     .finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(slurp(root_ + "/abs"), "a");
  EXPECT_EQ(slurp(root_ + "/through-root-link"), "t");
  EXPECT_EQ(slurp(root_ + "/etc/passwd-in-root"), "p");
  EXPECT_FALSE(fs::exists("/etc/passwd-in-root"));
  EXPECT_FALSE(fs::exists("/through-root-link"));
}

TEST_F(ApplyTest, HardLinkToAHostFileIsRefused) {
  auto r = apply(TarBuilder().hardlink("shadow", "/etc/shadow").finish());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not in the layer"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(fs::exists(root_ + "/shadow"));
}

TEST_F(ApplyTest, TruncatedAndGarbageStreamsFailClearly) {
  std::string gz =
      compress(TarBuilder().file("big", random_bytes(1 << 20)).file("b", "b").finish(), "gzip");
  auto r = apply(gz.substr(0, gz.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == Code::kDataLoss || r.status().code() == Code::kInvalidArgument)
      << r.status().message();
  std::cerr << "truncated gzip: " << r.status().message() << "\n";
  auto g = apply(std::string(5000, '\x42'));
  EXPECT_FALSE(g.ok());
}

TEST_F(ApplyTest, HugeNamesAreRefused) {
  std::string name(5000, 'n');
  auto r = apply(TarBuilder().file(name, "x").finish());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("limit"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace berth::plugins::differ

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

namespace berth::plugins::differ {
namespace {

namespace fs = std::filesystem;

// Builds a tar (optionally compressed) in memory.
class TarBuilder {
 public:
  explicit TarBuilder(const char* filter = nullptr) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (filter) archive_write_add_filter_by_name(a_, filter);
    archive_write_open(a_, this, nullptr, &TarBuilder::write_cb, nullptr);
  }
  ~TarBuilder() {
    if (a_) archive_write_free(a_);
  }
  TarBuilder& file(const std::string& path, const std::string& data, int mode = 0644, int uid = 0,
                   std::map<std::string, std::string> xattrs = {}) {
    auto* e = entry(path, AE_IFREG, mode, uid);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    for (const auto& [k, v] : xattrs)
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    archive_write_header(a_, e);
    archive_write_data(a_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& dir(const std::string& path, int mode = 0755, int uid = 0) {
    auto* e = entry(path, AE_IFDIR, mode, uid);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& symlink(const std::string& path, const std::string& target) {
    auto* e = entry(path, AE_IFLNK, 0777, 0);
    archive_entry_set_symlink(e, target.c_str());
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& hardlink(const std::string& path, const std::string& target) {
    auto* e = entry(path, AE_IFREG, 0644, 0);
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& fifo(const std::string& path) {
    auto* e = entry(path, AE_IFIFO, 0600, 0);
    archive_write_header(a_, e);
    archive_entry_free(e);
    return *this;
  }
  std::string finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  archive_entry* entry(const std::string& path, unsigned type, int mode, int uid) {
    auto* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, uid);
    archive_entry_set_mtime(e, 1700000000, 0);
    return e;
  }
  static la_ssize_t write_cb(archive*, void* self, const void* buf, size_t n) {
    static_cast<TarBuilder*>(self)->out_.append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive* a_;
  std::string out_;
};

// Compresses a byte string with a libarchive filter ("gzip", "zstd", "xz").
std::string compress(const std::string& plain, const char* filter) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_by_name(a, filter);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* o, const void* b, size_t n) -> la_ssize_t {
        static_cast<std::string*>(o)->append(static_cast<const char*>(b), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_pathname(e, "data");
  archive_write_header(a, e);
  archive_write_data(a, plain.data(), plain.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

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

ReadFn from_string(const std::string& data) {
  auto pos = std::make_shared<std::size_t>(0);
  return [data, pos](char* buf, std::size_t n) -> Result<std::size_t> {
    std::size_t k = std::min(n, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, k);
    *pos += k;
    return k;
  };
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
    return apply_layer(from_string(tar), root_, o);
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
          .hardlink("etc/hard", "etc/conf")
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
  for (const char* filter : {"gzip", "zstd", "xz"}) {
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::string plain = TarBuilder().file("a", std::string(10000, 'a')).finish();
    std::string packed = compress(plain, filter);
    auto r = apply(packed);
    ASSERT_TRUE(r.ok()) << filter << ": " << r.status().message();
    EXPECT_EQ(r->diff_id, core::Sha256::digest_of(plain)) << filter;
    EXPECT_EQ(slurp(root_ + "/a"), std::string(10000, 'a'));
  }
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

// Hostile layers and snapshots: symlinks planted to redirect a removal, a replacement, an opaque
// directory or an attribute read outside the root. Each case names, through an absolute or a
// relative symlink, a canary directory on the host that must survive untouched, and checks what
// happened inside the root instead. Needs root (overlay mounts, owners, device nodes).
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "core/fs.h"
#include "plugins/differ/walking/apply.h"
#include "plugins/differ/walking/compare.h"
#include "tests/support/canary.h"
#include "tests/support/layer_reader.h"
#include "tests/support/tar_builder.h"

namespace berth::plugins::differ {
namespace {

namespace fs = std::filesystem;
using test::Canary;
using test::TarBuilder;

enum class Link { kAbsolute, kRelative };

class HostileLayerTest : public ::testing::TestWithParam<Link> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto d = core::TempDir::create("berth-hostile-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    root_ = dir_->path() + "/root";
    fs::create_directories(root_);
    canary_ = Canary::create();
    ASSERT_TRUE(canary_);
    in_root_ = canary_->path().substr(1);  // the same path, inside the root
  }
  void TearDown() override {
    if (canary_) {
      EXPECT_TRUE(canary_->intact()) << canary_->report();
    }
  }
  // Where a planted symlink points: the canary by its absolute name, or by enough ".." to climb
  // from anywhere to "/" (inside the root, ".." stops at the root).
  std::string target() const {
    if (GetParam() == Link::kAbsolute) return canary_->path();
    std::string up;
    for (int i = 0; i < 40; ++i) up += "../";
    return up + in_root_;
  }
  Result<ApplyResult> apply(const std::string& tar, ApplyOptions o = {}) {
    return apply_layer(test::reader_of(tar), root_, o);
  }
  // The canary's path inside the root, with the directory the layers put there.
  TarBuilder& with_victim(TarBuilder& b) {
    std::string p;
    for (const auto& part : fs::path(in_root_)) {
      p = p.empty() ? part.string() : p + "/" + part.string();
      b.dir(p);
    }
    return b.dir(in_root_ + "/victim").file(in_root_ + "/victim/in-root", "r");
  }
  std::string in(const std::string& rel) const { return root_ + "/" + in_root_ + "/" + rel; }

  std::optional<core::TempDir> dir_;
  std::string root_;
  std::optional<Canary> canary_;
  std::string in_root_;
};

TEST_P(HostileLayerTest, WhiteoutOfADirectoryThroughASymlink) {
  TarBuilder b;
  with_victim(b).symlink("x", target()).file("x/.wh.victim", "");
  auto r = apply(b.finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(in("victim")));  // the root's own copy went, the host's stays
}

TEST_P(HostileLayerTest, FileReplacingADirectoryThroughASymlink) {
  TarBuilder b;
  with_victim(b).symlink("x", target()).file("x/victim", "evil");
  auto r = apply(b.finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(in("victim"))));
}

TEST_P(HostileLayerTest, OpaqueDirectoryThroughASymlinkInNaiveMode) {
  TarBuilder b;
  with_victim(b).symlink("x", target()).file("x/.wh..wh..opq", "");
  auto r = apply(b.finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(in("victim/in-root")));
}

TEST_P(HostileLayerTest, SymlinkInOneLayerDeletionInTheNext) {
  TarBuilder first;
  with_victim(first).symlink("x", target());
  ASSERT_TRUE(apply(first.finish()).ok());
  auto r = apply(TarBuilder().file("x/.wh.victim", "").finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(in("victim")));
  TarBuilder again;
  with_victim(again);
  ASSERT_TRUE(apply(again.finish()).ok());
  r = apply(TarBuilder().file("x/victim", "evil").finish());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(in("victim"))));
}

TEST_P(HostileLayerTest, OverlayUpperWhiteoutThroughASymlinkInTheSameLayer) {
  ApplyOptions o;
  o.mode = ApplyOptions::Mode::kOverlayUpper;
  TarBuilder b;
  with_victim(b).symlink("x", target()).file("x/.wh.victim", "");
  auto r = apply(b.finish(), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  struct stat st {};
  ASSERT_EQ(::lstat(in("victim").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0));  // an overlay whiteout
}

// The lower layer plants the symlink; the layer applied into the upper dir deletes through it.
// The upper dir alone cannot express that, so apply asks for the mounted fallback, which the
// test then performs as the differ does: the merged overlay, applied in naive mode.
TEST_P(HostileLayerTest, OverlayUpperDeletionThroughALowerLayerSymlink) {
  std::string lower = dir_->path() + "/lower";
  fs::create_directories(lower);
  {
    TarBuilder b;
    with_victim(b).symlink("x", target());
    ASSERT_TRUE(apply_layer(test::reader_of(b.finish()), lower, {}).ok());
  }
  ApplyOptions o;
  o.mode = ApplyOptions::Mode::kOverlayUpper;
  o.lowerdirs = {lower};
  std::string layer = TarBuilder().file("x/.wh.victim", "").file("x/victim2", "v").finish();
  auto r = apply(layer, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("overlay fallback:", 0), 0u) << r.status().message();

  fs::remove_all(root_);
  fs::create_directories(root_);
  std::string work = dir_->path() + "/work", merged = dir_->path() + "/merged";
  fs::create_directories(work);
  fs::create_directories(merged);
  std::string opts = "lowerdir=" + lower + ",upperdir=" + root_ + ",workdir=" + work;
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()), 0) << strerror(errno);
  auto m = apply_layer(test::reader_of(layer), merged, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  EXPECT_FALSE(fs::exists(merged + "/" + in_root_ + "/victim"));
  EXPECT_TRUE(fs::exists(merged + "/" + in_root_ + "/victim2"));
  ::umount2(merged.c_str(), MNT_DETACH);
}

// A directory the layer creates below a path that is a symlink in a lower layer: its attributes
// must not be read through that symlink (which names the canary's victim, mode 0750, uid 4321).
TEST_P(HostileLayerTest, OverlayUpperParentAttributesAreNotReadThroughALowerSymlink) {
  std::string lower = dir_->path() + "/lower";
  fs::create_directories(lower);
  ASSERT_EQ(::symlink(target().c_str(), (lower + "/l").c_str()), 0);
  ApplyOptions o;
  o.mode = ApplyOptions::Mode::kOverlayUpper;
  o.lowerdirs = {lower};
  auto r = apply(TarBuilder().dir("l").file("l/victim/f", "f").finish(), o);
  if (r.ok()) {
    struct stat st {};
    ASSERT_EQ(::lstat((root_ + "/l/victim").c_str(), &st), 0);
    EXPECT_NE(st.st_uid, 4321u) << "attributes were read from the host's directory";
  } else {
    EXPECT_EQ(r.status().message().rfind("overlay fallback:", 0), 0u) << r.status().message();
  }
}

INSTANTIATE_TEST_SUITE_P(Links, HostileLayerTest,
                         ::testing::Values(Link::kAbsolute, Link::kRelative), [](const auto& info) {
                           return info.param == Link::kAbsolute ? "Absolute" : "Relative";
                         });

// Collects what the diff writer produces.
class StringWriter : public content::Writer {
 public:
  Status write(std::string_view d) override {
    data += d;
    return Status();
  }
  content::IngestStatus status() const override { return {}; }
  std::string digest() const override { return ""; }
  Status truncate(std::int64_t) override {
    data.clear();
    return Status();
  }
  Status commit(std::int64_t, std::string_view,
                const std::map<std::string, std::string>&) override {
    return Status();
  }
  std::string data;
};

class HostileDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    auto d = core::TempDir::create("berth-hostile-diff-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    lower_ = dir_->path() + "/lower";
    upper_ = dir_->path() + "/upper";
    fs::create_directories(lower_);
    fs::create_directories(upper_);
    canary_ = Canary::create();
    ASSERT_TRUE(canary_);
  }
  void TearDown() override {
    if (canary_) {
      EXPECT_TRUE(canary_->intact()) << canary_->report();
    }
  }
  std::optional<core::TempDir> dir_;
  std::string lower_, upper_;
  std::optional<Canary> canary_;
};

TEST_F(HostileDiffTest, SymlinksAreWrittenAsSymlinksAndNeverFollowed) {
  fs::create_directories(lower_ + "/x");
  ASSERT_EQ(::symlink(canary_->path().c_str(), (upper_ + "/x").c_str()), 0);
  ASSERT_EQ(::symlink((canary_->path() + "/victim/precious").c_str(), (upper_ + "/f").c_str()), 0);
  StringWriter w;
  auto r = write_diff(lower_, upper_, false, w);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(w.data.find("do not delete"), std::string::npos) << "host file content in the diff";
  EXPECT_NE(w.data.find(canary_->path()), std::string::npos) << "the symlink target is recorded";
}

// A container keeps swapping a directory of its rootfs for a symlink to the host while the
// snapshot is diffed: no diff may ever contain the host's bytes.
TEST_F(HostileDiffTest, SwappingADirectoryForASymlinkDuringTheWalkNeverLeaks) {
  fs::create_directories(upper_ + "/d");
  for (int i = 0; i < 20; ++i) std::ofstream(upper_ + "/d/f" + std::to_string(i)) << "mine";
  std::ofstream(upper_ + "/d/precious") << "mine";
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    std::string d = upper_ + "/d", aside = upper_ + "/aside", link = upper_ + "/link";
    ::symlink((canary_->path() + "/victim").c_str(), link.c_str());
    // Half of the time a directory, half of the time the symlink.
    while (!stop) {
      ::rename(d.c_str(), aside.c_str());
      ::rename(link.c_str(), d.c_str());
      ::usleep(20);
      ::rename(d.c_str(), link.c_str());
      ::rename(aside.c_str(), d.c_str());
      ::usleep(20);
    }
  });
  int leaks = 0;
  for (int i = 0; i < 2000; ++i) {
    StringWriter w;
    auto r = write_diff(lower_, upper_, false, w);
    if (r.ok() && w.data.find("do not delete") != std::string::npos) ++leaks;
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(leaks, 0);
}

}  // namespace
}  // namespace berth::plugins::differ

// Hostile images through the whole daemon: layers that plant a symlink to a canary directory on
// the host and then delete or replace through it (whiteouts, a file over a directory, an opaque
// directory, across two layers, through a link to "/"), imported with `berth images import` and
// pulled from a real registry with `berth images pull` and with containerd's `ctr images pull`,
// into both snapshotters. The canary must survive untouched and the images unpack.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/digest.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/registry.h"
#include "tests/support/canary.h"
#include "tests/support/oci_layout.h"
#include "tests/support/tar_builder.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using test::Canary;
using test::Layer;
using test::Layout;
using test::make_layer;
using test::TarBuilder;
using ::testing::HasSubstr;

struct HostileCase {
  std::string name;
  std::vector<Layer> layers;
};

// The canary's own path inside the image's root, with every directory on the way and a victim
// directory below it, so the whiteouts find a directory to remove.
TarBuilder& victim(TarBuilder& b, const std::string& in_root) {
  std::string p;
  for (const auto& part : fs::path(in_root)) {
    p = p.empty() ? part.string() : p + "/" + part.string();
    b.dir(p);
  }
  return b.dir(in_root + "/victim").file(in_root + "/victim/in-image", "i");
}

std::vector<HostileCase> hostile_cases(const Canary& canary) {
  std::string abs = canary.path();
  std::string in_root = abs.substr(1);
  std::string rel;
  for (int i = 0; i < 30; ++i) rel += "../";
  rel += in_root;
  std::string parent = fs::path(in_root).parent_path().string();
  std::string base = fs::path(in_root).filename().string();
  std::vector<HostileCase> out;
  {
    TarBuilder b;
    victim(b, in_root).symlink("x", abs).file("x/.wh.victim", "");
    out.push_back({"whiteout-absolute", {make_layer(b.finish(), "gzip")}});
  }
  {
    TarBuilder b;
    victim(b, in_root).symlink("y", rel).file("y/victim", "evil");
    out.push_back({"file-over-dir-relative", {make_layer(b.finish(), "gzip")}});
  }
  {
    TarBuilder b;
    victim(b, in_root).symlink("x", abs).file("x/.wh..wh..opq", "");
    out.push_back({"opaque", {make_layer(b.finish(), "gzip")}});
  }
  {
    TarBuilder first;
    victim(first, in_root).symlink("x", abs).symlink("y", rel);
    out.push_back({"two-layers",
                   {make_layer(first.finish(), "gzip"), make_layer(TarBuilder()
                                                                       .file("x/.wh.victim", "")
                                                                       .file("y/victim", "evil")
                                                                       .file("x/added", "a")
                                                                       .finish(),
                                                                   "gzip")}});
  }
  {
    TarBuilder b;
    victim(b, in_root).symlink("r", "/").file("r/" + parent + "/.wh." + base, "");
    out.push_back({"root-link", {make_layer(b.finish(), "gzip")}});
  }
  return out;
}

std::string archive_of(const HostileCase& c, const std::string& name) {
  Layout layout;
  layout.name(layout.manifest(test::host_arch(), c.layers), name);
  return layout.tar();
}

class HostileImageTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
    canary_ = Canary::create();
    ASSERT_TRUE(canary_);
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    auto err = d_->start();
    ASSERT_FALSE(err.has_value()) << *err;
  }
  void TearDown() override {
    if (canary_) {
      EXPECT_TRUE(canary_->intact()) << canary_->report();
    }
  }
  void expect_unpacked(const std::string& ref) {
    auto check = d_->berth({"images", "check", "--snapshotter", GetParam()});
    EXPECT_EQ(check.exit_code, 0) << diag(check);
    EXPECT_THAT(check.out, HasSubstr(ref));
    EXPECT_THAT(check.out, ::testing::Not(HasSubstr("incomplete"))) << check.out;
    EXPECT_TRUE(canary_->intact()) << ref << "\n" << canary_->report();
  }
  std::optional<Canary> canary_;
  std::unique_ptr<Daemon> d_;
};

TEST_P(HostileImageTest, ImportLeavesTheHostUntouched) {
  for (const auto& c : hostile_cases(*canary_)) {
    SCOPED_TRACE(c.name);
    std::string ref = "example.com/hostile:" + c.name;
    std::string archive = d_->dir() + "/" + c.name + ".tar";
    test::write_file(archive, archive_of(c, ref));
    auto r = d_->berth({"images", "import", "--snapshotter", GetParam(), archive});
    ASSERT_EQ(r.exit_code, 0) << diag(r) << d_->log();
    expect_unpacked(ref);
  }
}

TEST_P(HostileImageTest, PullLeavesTheHostUntouched) {
  std::string why;
  auto registry = Registry::start(&why);
  ASSERT_TRUE(registry) << why;
  for (const auto& c : hostile_cases(*canary_)) {
    SCOPED_TRACE(c.name);
    std::string archive = d_->dir() + "/" + c.name + ".tar";
    test::write_file(archive, archive_of(c, "example.com/hostile:" + c.name));
    auto push = registry->push_oci_archive(archive, "hostile/" + c.name + ":1");
    ASSERT_EQ(push.exit_code, 0) << diag(push);
    // In the daemon (berth's transfer service) ...
    std::string ref = registry->host() + "/hostile/" + c.name + ":1";
    auto pull = d_->berth({"images", "pull", "--plain-http", "--snapshotter", GetParam(), ref});
    ASSERT_EQ(pull.exit_code, 0) << diag(pull) << d_->log();
    expect_unpacked(ref);
    // ... and client-side, containerd's ctr driving berthd's differ.
    auto rm = d_->berth({"images", "rm", "--sync", ref});
    ASSERT_EQ(rm.exit_code, 0) << diag(rm);
    auto ctr = d_->ctr({"images", "pull", "--plain-http", "--snapshotter", GetParam(), ref});
    ASSERT_EQ(ctr.exit_code, 0) << diag(ctr) << d_->log();
    expect_unpacked(ref);
  }
}

// A gzip bomb (a 64 MiB layer in a blob of a few KiB) against a daemon whose differ allows
// 16 MiB: import and pull fail naming the layer and the limit, and leave no snapshot and no
// lease behind.
TEST(LayerBombTest, RefusedByImportAndPullLeavingNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
  auto d = Daemon::create();
  ASSERT_TRUE(d);
  DaemonOptions o;
  o.config = "[plugins.\"io.containerd.differ.v1.walking\"]\n  max_layer_size = \"16MiB\"\n";
  auto err = d->start(o);
  ASSERT_FALSE(err.has_value()) << *err;
  TarBuilder zeros;
  for (int i = 0; i < 64; ++i) zeros.file("z" + std::to_string(i), std::string(1 << 20, '\0'));
  HostileCase bomb{"bomb", {make_layer(zeros.finish(), "gzip")}};
  std::string digest = core::Sha256::digest_of(bomb.layers[0].blob);
  std::string archive = d->dir() + "/bomb.tar";
  test::write_file(archive, archive_of(bomb, "example.com/bomb:1"));
  auto nothing_left = [&] {
    auto snaps = d->berth({"--format", "json", "snapshots", "ls"});
    ASSERT_EQ(snaps.exit_code, 0) << diag(snaps);
    EXPECT_EQ(snaps.out.find("Active"), std::string::npos) << snaps.out;
    auto leases = d->berth({"leases", "ls", "-q"});
    EXPECT_EQ(leases.out, "") << leases.out;
    auto ls = d->berth({"images", "ls", "-q"});
    EXPECT_EQ(ls.out.find("bomb"), std::string::npos) << ls.out;
  };
  auto r = d->berth({"images", "import", archive});
  EXPECT_NE(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.err, HasSubstr(digest));
  EXPECT_THAT(r.err, HasSubstr("max_layer_size"));
  EXPECT_THAT(r.err, HasSubstr("16 MiB"));
  nothing_left();

  std::string why;
  auto registry = Registry::start(&why);
  ASSERT_TRUE(registry) << why;
  auto push = registry->push_oci_archive(archive, "bomb/x:1");
  ASSERT_EQ(push.exit_code, 0) << diag(push);
  auto pull = d->berth({"images", "pull", "--plain-http", registry->host() + "/bomb/x:1"});
  EXPECT_NE(pull.exit_code, 0) << diag(pull);
  EXPECT_THAT(pull.err, HasSubstr(digest));
  EXPECT_THAT(pull.err, HasSubstr("max_layer_size"));
  nothing_left();
}

INSTANTIATE_TEST_SUITE_P(Snapshotters, HostileImageTest, ::testing::Values("overlayfs", "native"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace berth::e2e

// Snapshotters end to end: containerd's ctr snapshots against berthd for overlayfs, native and a
// proxy snapshotter process, mounting what `ctr snapshots mounts` prints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class SnapshotsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounts need root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    DaemonOptions o;
    if (GetParam() == "proxied") {
      proxy_ = Process::start({bin("berth-test-snapshotter"), "--root", d_->dir() + "/proxy-root",
                               "--address", d_->dir() + "/proxy.sock"},
                              d_->dir() + "/proxy.log");
      ASSERT_TRUE(proxy_->wait_for_socket(d_->dir() + "/proxy.sock"))
          << "proxy snapshotter did not start";
      o.config = "[proxy_plugins.proxied]\n  type = \"snapshot\"\n  address = \"" + d_->dir() +
                 "/proxy.sock\"\n";
    }
    // Collections only when the test asks (sync lease deletes), so views stay until then.
    o.config += "[plugins.\"io.containerd.gc.v1.scheduler\"]\n  startup_delay = \"1h\"\n";
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
  }
  void TearDown() override {
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it)
      ::umount2(it->c_str(), MNT_DETACH);
    if (d_) d_->stop();
    proxy_.reset();
  }
  RunResult snap(std::vector<std::string> args) {
    std::vector<std::string> full = {"snapshots", "--snapshotter", GetParam()};
    full.insert(full.end(), args.begin(), args.end());
    return d_->ctr(full);
  }
  // Runs the mount command ctr printed for `key` on a fresh directory.
  std::string mount(const std::string& key) {
    std::string target = d_->dir() + "/mnt" + std::to_string(mounted_.size());
    fs::create_directories(target);
    auto m = snap({"mounts", target, key});
    EXPECT_EQ(m.exit_code, 0) << diag(m);
    auto r = run({"sh", "-c", m.out});
    EXPECT_EQ(r.exit_code, 0) << "mount command failed: " << m.out << diag(r);
    mounted_.push_back(target);
    return target;
  }
  void unmount(const std::string& t) {
    ASSERT_EQ(::umount2(t.c_str(), 0), 0) << t;
    mounted_.erase(std::remove(mounted_.begin(), mounted_.end(), t), mounted_.end());
  }

  std::unique_ptr<Daemon> d_;
  std::unique_ptr<Process> proxy_;
  std::vector<std::string> mounted_;
};

TEST_P(SnapshotsTest, CtrSnapshotCommandsWithRealMounts) {
  ASSERT_EQ(snap({"prepare", "base"}).exit_code, 0);
  std::string t = mount("base");
  std::ofstream(t + "/hello") << "from base";
  unmount(t);
  auto c = snap({"commit", "base-c", "base"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  ASSERT_EQ(snap({"prepare", "child", "base-c"}).exit_code, 0);
  std::string ct = mount("child");
  std::string hello;
  std::getline(std::ifstream(ct + "/hello"), hello);
  EXPECT_EQ(hello, "from base");
  std::ofstream(ct + "/child-file") << "x";
  unmount(ct);

  auto v = snap({"view", "v", "base-c"});
  ASSERT_EQ(v.exit_code, 0) << diag(v);
  std::string vt = mount("v");
  EXPECT_TRUE(fs::exists(vt + "/hello"));
  EXPECT_FALSE(fs::exists(vt + "/child-file"));
  unmount(vt);

  auto ls = snap({"ls"});
  ASSERT_EQ(ls.exit_code, 0) << diag(ls);
  EXPECT_THAT(ls.out, HasSubstr("base-c"));
  EXPECT_THAT(ls.out, ::testing::ContainsRegex("child +base-c +Active"));
  auto tree = snap({"tree"});
  EXPECT_THAT(tree.out, HasSubstr("\\_ child"));
  auto usage = snap({"usage", "base-c"});
  ASSERT_EQ(usage.exit_code, 0) << diag(usage);
  EXPECT_THAT(usage.out, HasSubstr("base-c"));
  auto info = snap({"info", "child"});
  ASSERT_EQ(info.exit_code, 0) << diag(info);
  EXPECT_THAT(info.out, HasSubstr("\"Parent\": \"base-c\""));
  auto label = snap({"label", "child", "team=blue"});
  ASSERT_EQ(label.exit_code, 0) << diag(label);
  EXPECT_THAT(snap({"info", "child"}).out, HasSubstr("team"));

  auto rm_parent = snap({"rm", "base-c"});
  EXPECT_NE(rm_parent.exit_code, 0);
  EXPECT_THAT(rm_parent.err, HasSubstr("has children"));
  auto rm = snap({"rm", "child", "v", "base-c"});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  EXPECT_EQ(snap({"ls"}).out.find("base-c"), std::string::npos);

  // berth's CLI sees the same.
  auto bls = d_->berth({"snapshots", "--snapshotter", GetParam(), "ls"});
  ASSERT_EQ(bls.exit_code, 0) << diag(bls);
  EXPECT_THAT(bls.out, Not(HasSubstr("base")));
}

TEST_P(SnapshotsTest, DiffWritesTheChangesAsALayer) {
  ASSERT_EQ(snap({"prepare", "a"}).exit_code, 0);
  std::string t = mount("a");
  std::ofstream(t + "/f1") << "one";
  std::ofstream(t + "/f2") << "two";
  unmount(t);
  ASSERT_EQ(snap({"commit", "a-c", "a"}).exit_code, 0);
  ASSERT_EQ(snap({"prepare", "b", "a-c"}).exit_code, 0);
  std::string u = mount("b");
  fs::remove(u + "/f1");
  std::ofstream(u + "/f3") << "three";
  unmount(u);
  auto d = d_->berth({"snapshots", "--snapshotter", GetParam(), "diff", "b"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  std::string digest = d.out.substr(0, d.out.find('\n'));
  ASSERT_EQ(digest.rfind("sha256:", 0), 0u) << d.out;
  auto get = d_->berth({"content", "get", digest});
  std::ofstream(d_->dir() + "/layer.tgz", std::ios::binary) << get.out;
  auto list = run({"tar", "tzf", d_->dir() + "/layer.tgz"});
  ASSERT_EQ(list.exit_code, 0) << diag(list);
  EXPECT_THAT(list.out, HasSubstr(".wh.f1"));
  EXPECT_THAT(list.out, HasSubstr("f3"));
  EXPECT_THAT(list.out, Not(HasSubstr("f2")));
  // containerd's ctr streams the same kind of layer.
  auto c = snap({"diff", "b"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  std::ofstream(d_->dir() + "/ctr.tgz", std::ios::binary) << c.out;
  auto clist = run({"tar", "tzf", d_->dir() + "/ctr.tgz"});
  EXPECT_THAT(clist.out, HasSubstr(".wh.f1"));
}

TEST_P(SnapshotsTest, GcRemovesSnapshotsALeaseHeldOnceItIsGone) {
  ASSERT_EQ(d_->berth({"leases", "create", "--id", "hold"}).exit_code, 0);
  // A view carries no gc.root: only the lease keeps it (and its committed parent).
  ASSERT_EQ(snap({"prepare", "p"}).exit_code, 0);
  ASSERT_EQ(snap({"commit", "p-c", "p"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"snapshots", "--snapshotter", GetParam(), "label", "p-c",
                       "containerd.io/gc.root="})
                .exit_code,
            0);
  auto l = d_->berth({"snapshots", "--snapshotter", GetParam(), "view", "leased-view", "p-c"});
  ASSERT_EQ(l.exit_code, 0) << diag(l);
  ASSERT_EQ(d_->berth({"leases", "rm", "--sync", "hold"}).exit_code, 0);
  // Unleased, unrooted: collected with their backend data.
  auto ls = snap({"ls"});
  EXPECT_THAT(ls.out, Not(HasSubstr("leased-view")));
  EXPECT_THAT(ls.out, Not(HasSubstr("p-c")));
  std::string backend = GetParam() == "proxied" ? d_->dir() + "/proxy-root/snapshots"
                                                : d_->root() + "/io.containerd.snapshotter.v1." +
                                                      GetParam() + "/snapshots";
  std::size_t left = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(backend)) ++left;
  EXPECT_EQ(left, 0u) << "backend directories left in " << backend;
}

INSTANTIATE_TEST_SUITE_P(Snapshotters, SnapshotsTest,
                         ::testing::Values("overlayfs", "native", "proxied"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace berth::e2e

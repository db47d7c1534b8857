// containerd driving berth-shim: Debian's containerd (a private instance) runs a busybox image with
// runtime "io.containerd.berth.v1", which it resolves to containerd-shim-berth-v1 on PATH (our
// build directory). Foreground and detached runs, exec, ps, pause/resume, metrics, kill, delete,
// and the event sequence containerd publishes for them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "core/fs.h"
#include "shim/oci/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kCgroupParent = "/berth-shim-test-" + std::to_string(::getpid());

class ContainerdBerthShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    std::string path = fs::path(bin("berth-shim")).parent_path().string() + ":" + std::getenv("PATH");
    ::setenv("PATH", path.c_str(), 1);
    std::string why;
    containerd_ = Containerd::start(&why);
    ASSERT_TRUE(containerd_) << why;
    test::write_file(containerd_->dir() + "/busybox.tar", test::busybox_image_tar(image_));
    auto imp = containerd_->ctr({"images", "import", containerd_->dir() + "/busybox.tar"});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }
  void TearDown() override {
    if (!containerd_) return;
    for (const auto& id : ids_) {
      containerd_->ctr({"tasks", "kill", "-s", "KILL", id});
      containerd_->ctr({"tasks", "rm", "-f", id});
      containerd_->ctr({"containers", "rm", id});
    }
    containerd_.reset();
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + kCgroupParent).c_str());
    }
  }
  RunResult run(std::vector<std::string> flags, const std::string& id, std::vector<std::string> cmd) {
    ids_.push_back(id);
    std::vector<std::string> args = {"run", "--runtime", "io.containerd.berth.v1", "--cgroup", kCgroupParent + "/" + id};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(image_);
    args.push_back(id);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return containerd_->ctr(args);
  }
  bool wait_for(const std::string& id, const std::string& status) {
    for (int i = 0; i < 200; ++i) {
      auto ls = containerd_->ctr({"tasks", "ls"});
      if (std::regex_search(ls.out, std::regex(id + " +[0-9]+ +" + status))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  std::unique_ptr<Containerd> containerd_;
  std::string image_ = "example.com/busybox:1";
  std::vector<std::string> ids_;
};

TEST_F(ContainerdBerthShimTest, ForegroundRunPrintsOutputAndExitCode) {
  auto fg = run({"--rm"}, "fg", {"sh", "-c", "echo hello from $(hostname); echo to-stderr >&2; exit 3"});
  EXPECT_EQ(fg.exit_code, 3) << diag(fg);
  EXPECT_THAT(fg.out, HasSubstr("hello from"));
  EXPECT_THAT(fg.err, HasSubstr("to-stderr"));
  auto ls = containerd_->ctr({"containers", "ls", "-q"});
  EXPECT_THAT(ls.out, ::testing::Not(HasSubstr("fg")));
}

TEST_F(ContainerdBerthShimTest, StdinReachesTheContainer) {
  std::string in = containerd_->dir() + "/stdin.txt";
  test::write_file(in, "line one\nline two\n");
  ids_.push_back("cat");
  auto r = containerd_->ctr({"run", "--rm", "--runtime", "io.containerd.berth.v1", "--cgroup", kCgroupParent + "/cat",
                             image_, "cat", "sh", "-c", "wc -l"}, in);
  EXPECT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("2"));
}

TEST_F(ContainerdBerthShimTest, DetachedLifecycle) {
  auto d = run({"-d"}, "bg", {"sleep", "1000"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  EXPECT_TRUE(wait_for("bg", "RUNNING"));
  auto ex = containerd_->ctr({"tasks", "exec", "--exec-id", "e1", "bg", "sh", "-c", "echo exec-ok; ps"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  EXPECT_THAT(ex.out, HasSubstr("exec-ok"));
  EXPECT_THAT(ex.out, HasSubstr("sleep 1000"));
  auto ps = containerd_->ctr({"tasks", "ps", "bg"});
  EXPECT_EQ(ps.exit_code, 0) << diag(ps);
  EXPECT_THAT(ps.out, ::testing::ContainsRegex("[0-9]+"));
  auto metrics = containerd_->ctr({"tasks", "metrics", "bg"});
  EXPECT_EQ(metrics.exit_code, 0) << diag(metrics);
  EXPECT_THAT(metrics.out, HasSubstr("memory"));
  ASSERT_EQ(containerd_->ctr({"tasks", "pause", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "PAUSED"));
  ASSERT_EQ(containerd_->ctr({"tasks", "resume", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "RUNNING"));
  ASSERT_EQ(containerd_->ctr({"tasks", "kill", "-s", "KILL", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "STOPPED"));
  auto rm = containerd_->ctr({"tasks", "rm", "bg"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
  auto crm = containerd_->ctr({"containers", "rm", "bg"});
  EXPECT_EQ(crm.exit_code, 0) << diag(crm);
  // The shim is gone, the rootfs unmounted, the cgroup removed.
  auto mounts = core::read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_THAT(*mounts, ::testing::Not(HasSubstr(containerd_->dir() + "/state")));
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  for (const auto& m : layout->mounts) EXPECT_FALSE(fs::exists(m.mountpoint + kCgroupParent + "/bg")) << m.mountpoint;
}

}  // namespace
}  // namespace berth::e2e

// containerd driving berth-shim: Debian's containerd (a private instance) runs a busybox image with
// runtime "io.containerd.berth.v1", which it resolves to containerd-shim-berth-v1 on PATH (our
// build directory). Foreground output and exit codes, stdin, and a detached run that is exec'd
// into, listed, measured, paused, resumed, killed and deleted, leaving nothing behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "tests/e2e/containerd_tasks.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ContainerdBerthShimTest : public ContainerdTasksTest {
 protected:
  void SetUp() override {
    // containerd finds containerd-shim-berth-v1 in its PATH: our build directory first.
    std::string path = fs::path(bin("berth-shim")).parent_path().string() + ":" + std::getenv("PATH");
    ::setenv("PATH", path.c_str(), 1);
    ContainerdTasksTest::SetUp();
  }
  RunResult run(std::vector<std::string> flags, const std::string& id, std::vector<std::string> cmd,
                const std::string& stdin_path = "") {
    return ContainerdTasksTest::run({"--runtime", "io.containerd.berth.v1"}, flags, id, cmd, stdin_path);
  }
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
  auto r = run({"--rm"}, "cat", {"sh", "-c", "wc -l"}, in);
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
  for (const auto& m : layout->mounts) EXPECT_FALSE(fs::exists(m.mountpoint + cgroup_parent_ + "/bg")) << m.mountpoint;
}

}  // namespace
}  // namespace berth::e2e

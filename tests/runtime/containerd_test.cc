// containerd's runc shim driving berth-runtime: Debian's containerd (a private instance) runs a
// busybox image with `ctr run --runc-binary build/bin/berth-runtime`: a foreground run, then a
// detached one that is exec'd into, listed, paused, resumed, killed and deleted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/fs.h"
#include "shim/oci/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kCgroupParent = "/berth-ctr-test-" + std::to_string(::getpid());

std::string busybox_archive(const std::string& path) {
  test::write_file(path, test::busybox_image_tar("example.com/busybox:1"));
  return "example.com/busybox:1";
}

class ContainerdRuncShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    std::string why;
    containerd_ = Containerd::start(&why);
    ASSERT_TRUE(containerd_) << why;
    image_ = busybox_archive(containerd_->dir() + "/busybox.tar");
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
  // ctr run with berth-runtime as the runc binary, state under our directory.
  RunResult run(std::vector<std::string> flags, const std::string& id, std::vector<std::string> cmd) {
    ids_.push_back(id);
    std::vector<std::string> args = {"run", "--runc-binary", bin("berth-runtime"), "--runc-root",
                                     containerd_->dir() + "/runc", "--cgroup",
                                     kCgroupParent + "/" + id};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(image_);
    args.push_back(id);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return containerd_->ctr(args);
  }
  std::unique_ptr<Containerd> containerd_;
  std::string image_;
  std::vector<std::string> ids_;
};

TEST_F(ContainerdRuncShimTest, RunExecPauseResumeKillDelete) {
  auto fg = run({"--rm"}, "fg", {"sh", "-c", "echo hello from $(hostname); exit 0"});
  ASSERT_EQ(fg.exit_code, 0) << diag(fg);
  EXPECT_THAT(fg.out, HasSubstr("hello from"));

  auto d = run({"-d"}, "bg", {"sleep", "1000"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  auto ls = containerd_->ctr({"tasks", "ls"});
  EXPECT_THAT(ls.out, ::testing::ContainsRegex("bg +[0-9]+ +RUNNING"));
  auto ex = containerd_->ctr({"tasks", "exec", "--exec-id", "e1", "bg", "sh", "-c", "echo exec-ok; ps"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  EXPECT_THAT(ex.out, HasSubstr("exec-ok"));
  EXPECT_THAT(ex.out, HasSubstr("sleep 1000"));
  auto ps = containerd_->ctr({"tasks", "ps", "bg"});
  EXPECT_EQ(ps.exit_code, 0) << diag(ps);
  ASSERT_EQ(containerd_->ctr({"tasks", "pause", "bg"}).exit_code, 0);
  EXPECT_THAT(containerd_->ctr({"tasks", "ls"}).out, ::testing::ContainsRegex("bg +[0-9]+ +PAUSED"));
  ASSERT_EQ(containerd_->ctr({"tasks", "resume", "bg"}).exit_code, 0);
  EXPECT_THAT(containerd_->ctr({"tasks", "ls"}).out, ::testing::ContainsRegex("bg +[0-9]+ +RUNNING"));
  ASSERT_EQ(containerd_->ctr({"tasks", "kill", "-s", "KILL", "bg"}).exit_code, 0);
  bool stopped = false;
  for (int i = 0; i < 100 && !stopped; ++i) {
    stopped = containerd_->ctr({"tasks", "ls"}).out.find("STOPPED") != std::string::npos;
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(stopped);
  auto rm = containerd_->ctr({"tasks", "rm", "bg"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
  auto crm = containerd_->ctr({"containers", "rm", "bg"});
  EXPECT_EQ(crm.exit_code, 0) << diag(crm);
  // berth-runtime's state for both containers is gone.
  EXPECT_TRUE(!fs::exists(containerd_->dir() + "/runc/default") ||
              fs::is_empty(containerd_->dir() + "/runc/default"));
}

TEST_F(ContainerdRuncShimTest, RuntimeErrorsReachCtr) {
  auto bad = run({"--rm"}, "bad", {"no-such-program"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("no-such-program"));
}

}  // namespace
}  // namespace berth::e2e

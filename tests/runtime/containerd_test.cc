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
#include "tests/e2e/containerd_tasks.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ContainerdRuncShimTest : public ContainerdTasksTest {
 protected:
  // ctr run with berth-runtime as the runc binary, state under our directory.
  RunResult run(std::vector<std::string> flags, const std::string& id, std::vector<std::string> cmd) {
    return ContainerdTasksTest::run({"--runc-binary", bin("berth-runtime"), "--runc-root", containerd_->dir() + "/runc"},
                                    flags, id, cmd);
  }
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
  EXPECT_TRUE(wait_for("bg", "STOPPED"));
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

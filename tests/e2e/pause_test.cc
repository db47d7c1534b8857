// berth-pause, the pod sandbox's namespace holder: exits 0 on SIGTERM/SIGINT, and as pid 1 of a
// pid namespace reaps the orphans re-parented to it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

pid_t spawn(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// Children of `parent` in state Z.
int zombies_of(pid_t parent) {
  int n = 0;
  DIR* d = ::opendir("/proc");
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state == 'Z') ++n;
  }
  if (d) ::closedir(d);
  return n;
}

TEST(BerthPause, PrintsItsVersion) {
  auto r = run({bin("berth-pause"), "-v"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("berth-pause ", 0), 0u) << r.out;
  EXPECT_EQ(run({bin("berth-pause"), "extra"}).exit_code, 2);
}

TEST(BerthPause, ExitsZeroOnSigtermAndSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    pid_t pid = spawn({bin("berth-pause")});
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // handlers installed
    ASSERT_EQ(::kill(pid, sig), 0);
    auto code = wait_for(pid, std::chrono::seconds(10));
    if (!code) ::kill(pid, SIGKILL), wait_for(pid, std::chrono::seconds(10));
    ASSERT_TRUE(code.has_value()) << "berth-pause ignored signal " << sig;
    EXPECT_EQ(*code, 0) << "signal " << sig;
  }
}

TEST(BerthPause, ReapsOrphansAsPidOneOfAPidNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "a pid namespace needs root";
  // unshare forks berth-pause as pid 1 of a new pid namespace.
  pid_t outer = spawn({"/usr/bin/unshare", "--pid", "--fork", "--kill-child", bin("berth-pause")});
  ASSERT_GT(outer, 0);
  pid_t pause_pid = 0;
  for (int i = 0; i < 100 && !pause_pid; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f("/proc/" + std::to_string(outer) + "/task/" + std::to_string(outer) +
                    "/children");
    f >> pause_pid;
  }
  ASSERT_GT(pause_pid, 0);
  // A shell in that namespace leaves a child behind: it is re-parented to berth-pause, exits,
  // and must be reaped rather than left a zombie.
  auto r = run({"/usr/bin/nsenter", "-t", std::to_string(pause_pid), "-p", "--", "/bin/sh", "-c",
                "sleep 0.2 & exit 0"});
  EXPECT_EQ(r.exit_code, 0) << diag(r);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(zombies_of(pause_pid), 0);
  ::kill(pause_pid, SIGTERM);
  auto code = wait_for(outer, std::chrono::seconds(10));
  if (!code) ::kill(outer, SIGKILL), wait_for(outer, std::chrono::seconds(10));
  EXPECT_TRUE(code.has_value());
}

}  // namespace
}  // namespace berth::e2e

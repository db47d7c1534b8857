// Tasks end to end: containerd's ctr runs containers through berthd, with berth-shim
// (io.containerd.berth.v1) and with containerd's own containerd-shim-runc-v2 + runc
// (io.containerd.runc.v2): output and exit codes, the detached lifecycle, and the events ctr sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;

constexpr const char* kImage = "example.com/busybox:1";
constexpr const char* kBerthRuntime = "io.containerd.berth.v1";
const std::string kCgroupParent = "/berth-tasks-test-" + std::to_string(::getpid());

class TasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    auto err = d_->start();
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d_->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar(kImage));
    auto imp = d_->berth({"images", "import", "-q", tar});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }
  void TearDown() override {
    if (!d_) return;
    // A test that ended with the daemon down (a failed restart) still cleans up through it.
    if (d_->pid() <= 0 || ::kill(d_->pid(), 0) != 0) d_->start();
    // berth's tasks rm needs no container record (ctr's does).
    for (const auto& id : ids_) {
      d_->berth({"tasks", "rm", "-f", id});
      d_->berth({"containers", "rm", id});
    }
    d_->stop();
    d_.reset();
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) {
        ::rmdir((m.mountpoint + kCgroupParent).c_str());
        ::rmdir((m.mountpoint + "/default").c_str());  // berth run's default parent; fails while in use
      }
    }
  }
  RunResult run(const std::string& runtime, std::vector<std::string> flags, const std::string& id,
                std::vector<std::string> cmd, const std::string& stdin_path = "") {
    ids_.push_back(id);
    std::vector<std::string> args = {"run", "--runtime", runtime, "--cgroup", kCgroupParent + "/" + id};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(kImage);
    args.push_back(id);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return d_->ctr(args, stdin_path);
  }
  bool wait_for(const std::string& id, const std::string& status) {
    return wait_for_task(id, status, [this] { return d_->ctr({"tasks", "ls"}); });
  }
  std::unique_ptr<Daemon> d_;
  std::vector<std::string> ids_;
};

TEST_F(TasksTest, CtrRunRmPrintsHello) {
  auto r = run(kBerthRuntime, {"--rm"}, "hello", {"echo", "hello"});
  EXPECT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  EXPECT_EQ(r.out, "hello\n");
  auto code = run(kBerthRuntime, {"--rm"}, "code", {"sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(code.exit_code, 7) << diag(code);
  EXPECT_EQ(code.out, "out\n");
  EXPECT_EQ(code.err, "err\n");
  EXPECT_THAT(d_->ctr({"containers", "ls", "-q"}).out, ::testing::Not(HasSubstr("hello")));
  EXPECT_THAT(d_->ctr({"tasks", "ls"}).out, ::testing::Not(HasSubstr("hello")));
}

TEST_F(TasksTest, CtrRunWithContainerdRuncShim) {
  if (::access("/usr/bin/containerd-shim-runc-v2", X_OK) != 0) GTEST_SKIP() << "containerd-shim-runc-v2 is not installed";
  auto r = run("io.containerd.runc.v2", {"--rm"}, "runc", {"sh", "-c", "echo hello from runc; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << diag(r) << d_->log();
  EXPECT_EQ(r.out, "hello from runc\n");
}

TEST_F(TasksTest, DetachedLifecycleAndEvents) {
  std::string events_log = d_->dir() + "/events.log";
  auto events = Process::start({"/usr/bin/ctr", "-a", d_->address(), "events"}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  auto d = run(kBerthRuntime, {"-d"}, "bg", {"sleep", "1000"});
  ASSERT_EQ(d.exit_code, 0) << diag(d) << d_->log();
  EXPECT_TRUE(wait_for("bg", "RUNNING"));
  auto ps = d_->ctr({"tasks", "ps", "bg"});
  EXPECT_EQ(ps.exit_code, 0) << diag(ps);
  ASSERT_EQ(d_->ctr({"tasks", "pause", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "PAUSED"));
  ASSERT_EQ(d_->ctr({"tasks", "resume", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "RUNNING"));
  auto ex = d_->ctr({"tasks", "exec", "--exec-id", "e1", "bg", "sh", "-c", "echo exec-ok; ps"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  EXPECT_THAT(ex.out, HasSubstr("exec-ok"));
  EXPECT_THAT(ex.out, HasSubstr("sleep 1000"));
  auto metrics = d_->ctr({"tasks", "metrics", "bg"});
  EXPECT_EQ(metrics.exit_code, 0) << diag(metrics);
  EXPECT_THAT(metrics.out, HasSubstr("memory"));
  ASSERT_EQ(d_->ctr({"tasks", "kill", "-s", "KILL", "bg"}).exit_code, 0);
  EXPECT_TRUE(wait_for("bg", "STOPPED"));
  auto rm = d_->ctr({"tasks", "rm", "bg"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
  auto crm = d_->ctr({"containers", "rm", "bg"});
  EXPECT_EQ(crm.exit_code, 0) << diag(crm);

  // The topics containerd shows for the same steps, in order.
  const std::vector<std::string> want = {"/snapshot/prepare", "/containers/create", "/tasks/create", "/tasks/start",
                                         "/tasks/paused", "/tasks/resumed", "/tasks/exec-added", "/tasks/exec-started",
                                         "/tasks/exit", "/tasks/exit", "/tasks/delete", "/snapshot/remove",
                                         "/containers/delete"};
  std::vector<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto text = core::read_file(events_log);
    seen.clear();
    std::regex topic(" (/[a-z/-]+) ");
    std::string s = text.ok() ? *text : "";
    for (std::sregex_iterator it(s.begin(), s.end(), topic), end; it != end; ++it) {
      std::string t = (*it)[1];
      if (t.rfind("/tasks", 0) == 0 || t.rfind("/containers", 0) == 0 || t == "/snapshot/prepare" || t == "/snapshot/remove")
        seen.push_back(t);
    }
    if (seen.size() >= want.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(seen, want);
}

TEST_F(TasksTest, BerthRunExecAndEvents) {
  std::string events_log = d_->dir() + "/berth-events.log";
  auto events = Process::start({bin("berth"), "-a", d_->address(), "events", "topic~=\"^/tasks/\""}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ids_.insert(ids_.end(), {"r1", "r2", "r3", "r4"});
  auto r1 = d_->berth({"run", "--rm", "--cgroup-parent-unused-check", kImage, "r1", "true"});
  EXPECT_NE(r1.exit_code, 0);  // an unknown flag is refused before anything is created
  auto hello = d_->berth({"run", "--rm", kImage, "r1", "sh", "-c", "echo hello; echo oops >&2; exit 4"});
  EXPECT_EQ(hello.exit_code, 4) << diag(hello);
  EXPECT_EQ(hello.out, "hello\n");
  EXPECT_EQ(hello.err, "oops\n");
  std::string in = d_->dir() + "/in.txt";
  test::write_file(in, "a\nb\nc\n");
  auto cat = d_->berth({"run", "--rm", "--env", "X=y", kImage, "r2", "sh", "-c", "wc -l; echo $X"}, in);
  EXPECT_EQ(cat.exit_code, 0) << diag(cat);
  EXPECT_THAT(cat.out, HasSubstr("3"));
  EXPECT_THAT(cat.out, HasSubstr("y"));

  auto d = d_->berth({"run", "-d", "--memory-limit", "64m", kImage, "r3", "sleep", "1000"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  auto ls = d_->berth({"tasks", "ls"});
  EXPECT_THAT(ls.out, ::testing::ContainsRegex("r3 +[0-9]+ +RUNNING"));
  auto ex = d_->berth({"tasks", "exec", "--exec-id", "x1", "r3", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; exit 2"});
  EXPECT_EQ(ex.exit_code, 2) << diag(ex);
  EXPECT_THAT(ex.out, HasSubstr("67108864"));
  auto ps = d_->berth({"tasks", "ps", "r3"});
  EXPECT_EQ(ps.exit_code, 0) << diag(ps);
  EXPECT_THAT(ps.out, ::testing::ContainsRegex("[0-9]+ +-"));
  auto metrics = d_->berth({"--format", "json", "tasks", "metrics", "r3"});
  EXPECT_EQ(metrics.exit_code, 0) << diag(metrics);
  EXPECT_THAT(metrics.out, HasSubstr("memory"));
  EXPECT_EQ(d_->berth({"tasks", "pause", "r3"}).exit_code, 0);
  EXPECT_THAT(d_->berth({"tasks", "ls"}).out, ::testing::ContainsRegex("r3 +[0-9]+ +PAUSED"));
  EXPECT_EQ(d_->berth({"tasks", "resume", "r3"}).exit_code, 0);
  EXPECT_EQ(d_->berth({"tasks", "kill", "-s", "KILL", "r3"}).exit_code, 0);
  EXPECT_TRUE(wait_for("r3", "STOPPED"));
  auto rm = d_->berth({"tasks", "rm", "r3"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
  EXPECT_EQ(d_->berth({"containers", "rm", "r3"}).exit_code, 0);
  // Clear errors.
  auto missing = d_->berth({"tasks", "kill", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("nope"));
  auto bad_image = d_->berth({"run", "--rm", "example.com/none:1", "r4", "true"});
  EXPECT_NE(bad_image.exit_code, 0);
  EXPECT_THAT(bad_image.err, HasSubstr("example.com/none:1"));

  std::string seen;
  for (int i = 0; i < 50 && seen.find("/tasks/delete") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto text = core::read_file(events_log);
    seen = text.ok() ? *text : "";
  }
  EXPECT_THAT(seen, ::testing::ContainsRegex("/tasks/exit \\{.*\"containerId\":\"r1\".*\"exitStatus\":4"));
  EXPECT_THAT(seen, HasSubstr("/tasks/exec-started"));
  EXPECT_THAT(seen, ::testing::Not(HasSubstr("/containers/")));  // the filter applies
}

TEST_F(TasksTest, BerthRunWithATerminal) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script(1) is not installed";
  ids_.push_back("tty");
  // script(1) gives berth a real terminal; the container sees a pty of the same size, and of the
  // new size after the terminal is resized (SIGWINCH -> ResizePty). Without job control the
  // resizing subshell shares berth's process group, so berth gets the SIGWINCH.
  std::string cmd = "stty cols 91 rows 33; (sleep 1; stty cols 100 rows 40 </dev/tty) & " + bin("berth") + " -a " +
                    d_->address() + " run -t --rm " + kImage +
                    " tty sh -c 'tty; stty size; sleep 2; stty size; exit 6'";
  auto r = e2e::run({"script", "-qec", cmd, "/dev/null"}, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 6) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("/dev/pts/"));
  EXPECT_THAT(r.out, HasSubstr("33 91"));
  EXPECT_THAT(r.out, HasSubstr("40 100"));
}

TEST_F(TasksTest, MemoryLimitOomIsReported) {
  std::string events_log = d_->dir() + "/oom-events.log";
  auto events = Process::start({bin("berth"), "-a", d_->address(), "events", "topic==/tasks/oom"}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ids_.push_back("oom");
  // busybox tail keeps a line without newline in memory: /dev/zero grows it until the OOM killer
  // (the standalone shell runs applets that have no link in the image).
  auto r = d_->berth({"run", "--rm", "--memory-limit", "32m", kImage, "oom", "sh", "-c", "tail /dev/zero"});
  EXPECT_EQ(r.exit_code, 137) << diag(r);
  std::string seen;
  for (int i = 0; i < 50 && seen.find("/tasks/oom") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto text = core::read_file(events_log);
    seen = text.ok() ? *text : "";
  }
  EXPECT_THAT(seen, HasSubstr("/tasks/oom"));
  EXPECT_THAT(seen, HasSubstr("oom"));
}

TEST_F(TasksTest, ShimRunsAnExternalRuntimeBinary) {
  if (::access("/usr/bin/runc", X_OK) != 0) GTEST_SKIP() << "runc is not installed";
  // runc options' BinaryName: berth-shim drives runc instead of libberth-oci.
  ids_.insert(ids_.end(), {"ext1", "ext2"});
  auto fg = d_->berth({"run", "--rm", "--runc-binary", "runc", kImage, "ext1", "sh", "-c", "echo via runc; exit 5"});
  EXPECT_EQ(fg.exit_code, 5) << diag(fg) << d_->log();
  EXPECT_EQ(fg.out, "via runc\n");
  auto d = d_->berth({"run", "-d", "--runc-binary", "/usr/bin/runc", kImage, "ext2", "sleep", "1000"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  auto backend = core::read_file(d_->state() + "/io.containerd.runtime.v2.task/default/ext2/.backend");
  ASSERT_TRUE(backend.ok());
  EXPECT_THAT(*backend, HasSubstr("/usr/bin/runc"));
  auto ex = d_->berth({"tasks", "exec", "ext2", "sh", "-c", "echo exec via runc"});
  EXPECT_EQ(ex.exit_code, 0) << diag(ex);
  EXPECT_EQ(ex.out, "exec via runc\n");
  EXPECT_EQ(d_->berth({"tasks", "pause", "ext2"}).exit_code, 0);
  EXPECT_TRUE(wait_for("ext2", "PAUSED"));
  EXPECT_EQ(d_->berth({"tasks", "resume", "ext2"}).exit_code, 0);
  auto ps = d_->berth({"tasks", "ps", "ext2"});
  EXPECT_EQ(ps.exit_code, 0) << diag(ps);
  EXPECT_EQ(d_->berth({"tasks", "kill", "-s", "KILL", "ext2"}).exit_code, 0);
  EXPECT_TRUE(wait_for("ext2", "STOPPED"));
  auto rm = d_->berth({"tasks", "rm", "ext2"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
  // A binary that is not there is a clear error.
  auto bad = d_->berth({"run", "--rm", "--runc-binary", "no-such-runtime", kImage, "ext3", "true"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("no-such-runtime"));
  d_->berth({"containers", "rm", "ext3"});
}

std::map<std::string, std::pair<int, std::string>> task_table(Daemon& d);
int parent_of(int pid);
bool process_gone(int pid);

TEST_F(TasksTest, BadSpecIsRefusedNamingTheFieldAndLeavesNothing) {
  ids_.push_back("badspec");
  std::string spec = d_->dir() + "/bad.json";
  test::write_file(spec, R"({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
    "process": {"args": ["true"], "cwd": "/", "rlimits": [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]},
    "linux": {"namespaces": [{"type": "mount"}]}})");
  auto c = d_->berth({"containers", "create", "--config", spec, kImage, "badspec"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto start = d_->berth({"tasks", "start", "badspec"});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_THAT(start.err, HasSubstr("RLIMIT_BOGUS"));
  EXPECT_EQ(task_table(*d_).count("badspec"), 0u);
  EXPECT_FALSE(std::filesystem::exists(d_->state() + "/io.containerd.runtime.v2.task/default/badspec"));
  auto mounts = core::read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_THAT(*mounts, ::testing::Not(HasSubstr(d_->state() + "/io.containerd.runtime.v2.task")));
  // The daemon is fine: the next container runs.
  ids_.push_back("after");
  auto ok = d_->berth({"run", "--rm", kImage, "after", "echo", "fine"});
  EXPECT_EQ(ok.out, "fine\n") << diag(ok);
}

TEST_F(TasksTest, DetachedOutputGoesToFileAndBinaryLogUris) {
  ids_.insert(ids_.end(), {"logf", "logb"});
  std::string file = d_->dir() + "/logs/out.log";
  auto f = d_->berth({"run", "-d", "--log-uri", "file://" + file, kImage, "logf", "sh", "-c", "echo to-file; echo err-to-file >&2"});
  ASSERT_EQ(f.exit_code, 0) << diag(f);
  // A logging program (containerd's binary:// protocol): fd 3 stdout, fd 4 stderr, fd 5 ready.
  std::string logger = d_->dir() + "/logger.sh";
  std::string captured = d_->dir() + "/captured.log";
  test::write_file(logger, "#!/bin/sh\nexec 5>&-\necho \"$CONTAINER_NAMESPACE/$CONTAINER_ID $1=$2\" > " + captured +
                               "\ncat <&3 >> " + captured + "\n");
  ::chmod(logger.c_str(), 0755);
  auto b = d_->berth({"run", "-d", "--log-uri", "binary://" + logger + "?tag=t1", kImage, "logb", "sh", "-c", "echo to-binary"});
  ASSERT_EQ(b.exit_code, 0) << diag(b);
  EXPECT_TRUE(wait_for("logf", "STOPPED"));
  EXPECT_TRUE(wait_for("logb", "STOPPED"));
  std::string got_file, got_binary;
  for (int i = 0; i < 50; ++i) {
    got_file = core::read_file(file).value_or("");
    got_binary = core::read_file(captured).value_or("");
    if (got_file.find("err-to-file") != std::string::npos && got_binary.find("to-binary") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(got_file, HasSubstr("to-file\n"));
  EXPECT_THAT(got_file, HasSubstr("err-to-file\n"));
  EXPECT_THAT(got_binary, HasSubstr("default/logb tag=t1"));
  EXPECT_THAT(got_binary, HasSubstr("to-binary\n"));
}

TEST_F(TasksTest, ContainersOfAGroupShareOneShim) {
  ids_.insert(ids_.end(), {"g1", "g2", "solo"});
  for (const char* id : {"g1", "g2"}) {
    auto r = d_->berth({"run", "-d", "--annotation", "io.containerd.runc.v2.group=pod1", kImage, id, "sleep", "1000"});
    ASSERT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  }
  ASSERT_EQ(d_->berth({"run", "-d", kImage, "solo", "sleep", "1000"}).exit_code, 0);
  auto tasks = task_table(*d_);
  int shim1 = parent_of(tasks["g1"].first), shim2 = parent_of(tasks["g2"].first), shim3 = parent_of(tasks["solo"].first);
  EXPECT_GT(shim1, 1);
  EXPECT_EQ(shim1, shim2);
  EXPECT_NE(shim1, shim3);
  // Deleting one container of the group leaves the shim serving the other.
  EXPECT_EQ(d_->berth({"tasks", "rm", "-f", "g1"}).exit_code, 0);
  EXPECT_EQ(::kill(shim1, 0), 0);
  EXPECT_EQ(d_->berth({"tasks", "exec", "g2", "echo", "still-served"}).out, "still-served\n");
  EXPECT_EQ(d_->berth({"tasks", "rm", "-f", "g2"}).exit_code, 0);
  EXPECT_TRUE(process_gone(shim1));
}

// The pid of a task's init, from `berth tasks ls --format json`.
std::map<std::string, std::pair<int, std::string>> task_table(Daemon& d) {
  std::map<std::string, std::pair<int, std::string>> out;
  auto ls = d.berth({"--format", "json", "tasks", "ls"});
  if (ls.exit_code != 0) return out;
  for (const auto& t : nlohmann::json::parse(ls.out)) out[t["id"]] = {t["pid"].get<int>(), t["status"].get<std::string>()};
  return out;
}

int parent_of(int pid) {
  auto stat = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return -1;
  auto close = stat->rfind(')');
  std::istringstream in(stat->substr(close + 2));
  std::string state;
  int ppid = -1;
  in >> state >> ppid;
  return ppid;
}

bool process_gone(int pid) {
  for (int i = 0; i < 100; ++i) {
    if (::kill(pid, 0) < 0 && errno == ESRCH) return true;
    auto stat = core::read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.ok() && stat->find(") Z") != std::string::npos) return true;  // exited, awaiting its reaper
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST_F(TasksTest, DaemonKilledWithRunningContainersReconnects) {
  constexpr int kCount = 10;
  for (int i = 0; i < kCount; ++i) {
    std::string id = "live" + std::to_string(i);
    ids_.push_back(id);
    auto r = d_->berth({"run", "-d", kImage, id, "sleep", "1000"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
  }
  auto before = task_table(*d_);
  ASSERT_EQ(before.size(), static_cast<std::size_t>(kCount));
  d_->kill9();
  // While berthd is down, one container ends: its shim keeps the exit in the bundle and retries.
  int victim = before["live0"].first;
  ASSERT_GT(victim, 0);
  ::kill(victim, SIGKILL);
  std::string pending = d_->state() + "/io.containerd.runtime.v2.task/default/live0/events";
  bool kept = false;
  for (int i = 0; i < 100 && !kept; ++i) {
    std::error_code ec;
    kept = std::filesystem::exists(pending) && !std::filesystem::is_empty(pending, ec);
    if (!kept) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(kept) << "the exit was not kept in the bundle while the daemon was down";

  auto err = d_->start();
  ASSERT_FALSE(err.has_value()) << *err;
  auto after = task_table(*d_);
  EXPECT_EQ(after.size(), static_cast<std::size_t>(kCount)) << d_->log();
  EXPECT_EQ(after["live0"].second, "STOPPED");
  for (int i = 1; i < kCount; ++i) EXPECT_EQ(after["live" + std::to_string(i)].second, "RUNNING") << i;
  // The exit that happened while the daemon was down was delivered (acknowledged, so removed).
  bool delivered = false;
  for (int i = 0; i < 200 && !delivered; ++i) {
    std::error_code ec;
    delivered = !std::filesystem::exists(pending) || std::filesystem::is_empty(pending, ec);
    if (!delivered) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(delivered);
  EXPECT_THAT(d_->log(), HasSubstr("reconnected to shim"));
  // Kill and delete still work through the reconnected shims.
  EXPECT_EQ(d_->berth({"tasks", "kill", "-s", "KILL", "live1"}).exit_code, 0);
  EXPECT_TRUE(wait_for("live1", "STOPPED"));
  auto rm = d_->berth({"tasks", "rm", "live1"});
  EXPECT_EQ(rm.exit_code, 0) << diag(rm);
}

TEST_F(TasksTest, KilledShimIsReportedExitedAndCleanedUp) {
  std::string events_log = d_->dir() + "/shim-events.log";
  auto events = Process::start({bin("berth"), "-a", d_->address(), "events", "topic~=\"^/tasks/(exit|delete)\""}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ids_.push_back("doomed");
  auto r = d_->berth({"run", "-d", kImage, "doomed", "sleep", "1000"});
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  int init = task_table(*d_)["doomed"].first;
  ASSERT_GT(init, 0);
  int shim = parent_of(init);
  ASSERT_GT(shim, 1);
  auto comm = core::read_file("/proc/" + std::to_string(shim) + "/comm");
  ASSERT_TRUE(comm.ok());
  ASSERT_THAT(*comm, HasSubstr("berth-shim"));
  auto address = core::read_file(d_->state() + "/io.containerd.runtime.v2.task/default/doomed/address");
  ASSERT_TRUE(address.ok());
  std::string socket = address->substr(std::string("unix://").size());
  ::kill(shim, SIGKILL);

  std::string seen;
  for (int i = 0; i < 100 && seen.find("/tasks/delete") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto text = core::read_file(events_log);
    seen = text.ok() ? *text : "";
  }
  EXPECT_THAT(seen, ::testing::ContainsRegex("/tasks/exit .*\"containerId\":\"doomed\""));
  EXPECT_THAT(seen, HasSubstr("/tasks/delete"));
  EXPECT_EQ(task_table(*d_).count("doomed"), 0u);
  EXPECT_TRUE(process_gone(init));
  auto mounts = core::read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_THAT(*mounts, ::testing::Not(HasSubstr(d_->state())));
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  for (const auto& m : layout->mounts) EXPECT_FALSE(std::filesystem::exists(m.mountpoint + "/default/doomed")) << m.mountpoint;
  EXPECT_FALSE(std::filesystem::exists(d_->state() + "/io.containerd.runtime.v2.task/default/doomed"));
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the dead shim's socket file is left";
}

TEST_F(TasksTest, TwoHundredParallelRunsLeaveNothingBehind) {
  auto fds = [&] {
    std::error_code ec;
    auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(d_->pid()) + "/fd", ec);
    return std::distance(it, std::filesystem::directory_iterator());
  };
  auto fifo_dirs = [] {
    std::error_code ec;
    auto it = std::filesystem::directory_iterator("/run/berth/fifo", ec);
    return ec ? 0 : std::distance(it, std::filesystem::directory_iterator());
  };
  // Warm up (first-use allocations in the daemon), then measure.
  ASSERT_EQ(d_->berth({"run", "--rm", kImage, "warm", "true"}).exit_code, 0);
  auto fds_before = fds();
  auto fifos_before = fifo_dirs();
  constexpr int kTotal = 200, kParallel = 25;
  std::atomic<int> next{0}, failed{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> workers;
  for (int w = 0; w < kParallel; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < kTotal; i = next++) {
        std::string id = "p" + std::to_string(i);
        auto r = d_->berth({"run", "--rm", kImage, id, "sh", "-c", "echo " + id});
        if (r.exit_code != 0 || r.out != id + "\n") {
          ++failed;
          std::lock_guard lock(mu);
          if (first_error.empty()) first_error = id + ": " + diag(r);
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_TRUE(task_table(*d_).empty());
  EXPECT_THAT(d_->berth({"containers", "ls", "-q"}).out, ::testing::Not(HasSubstr("p")));
  auto mounts = core::read_file("/proc/self/mountinfo");
  ASSERT_TRUE(mounts.ok());
  EXPECT_THAT(*mounts, ::testing::Not(HasSubstr(d_->state() + "/io.containerd.runtime.v2.task")));
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  for (const auto& m : layout->mounts) {
    for (int i = 0; i < kTotal; ++i)
      ASSERT_FALSE(std::filesystem::exists(m.mountpoint + "/default/p" + std::to_string(i))) << m.mountpoint << " p" << i;
  }
  EXPECT_EQ(fifo_dirs(), fifos_before);
  std::error_code ec;
  auto bundles = std::filesystem::directory_iterator(d_->state() + "/io.containerd.runtime.v2.task/default", ec);
  EXPECT_EQ(ec ? 0 : std::distance(bundles, std::filesystem::directory_iterator()), 0);
  // No shim of this daemon is left (they name its socket on their command line).
  int shims = 0;
  for (const auto& p : std::filesystem::directory_iterator("/proc", ec)) {
    auto cmdline = core::read_file(p.path().string() + "/cmdline");
    if (cmdline.ok() && cmdline->find("berth-shim") != std::string::npos && cmdline->find(d_->address()) != std::string::npos)
      ++shims;
  }
  EXPECT_EQ(shims, 0);
  // The daemon's descriptors are back where they were (a few may be in flight: gRPC threads).
  EXPECT_LE(fds(), fds_before + 4);
}

}  // namespace
}  // namespace berth::e2e

// A hostile container through berthd and berth-shim: the serving shim runs from a read-only
// mount of its binary, a container that execs `#!/proc/self/exe` and then writes through
// /proc/<pid>/exe cannot change the shim on the host, only stdio reaches the container's
// processes, and a working directory through a /proc magic link is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "core/digest.h"
#include "core/oci/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kImage = "example.com/hostile-task:1";

std::string slurp(const std::string& p) {
  auto r = core::read_file(p);
  return r.ok() ? *r : "";
}

std::set<std::string> fds_of(pid_t pid) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
    out.insert(e.path().filename().string());
  return out;
}

class TaskSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "containers need root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    // The shim under attack is a copy, so a failure here cannot break the build's binary.
    shim_ = d_->dir() + "/berth-shim";
    fs::copy_file(bin("berth-shim"), shim_);
    shim_digest_ = core::Sha256::digest_of(slurp(shim_));
    DaemonOptions o;
    o.config =
        "[plugins.\"io.containerd.runtime.v2.task\"]\n  shims = { \"io.containerd.berth.v1\" = \"" +
        shim_ + "\" }\n";
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
    auto attacker = core::read_file(BERTH_EXE_ATTACKER);
    ASSERT_TRUE(attacker.ok());
    test::Layout layout;
    layout.name(layout.manifest(test::host_arch(),
                                {test::make_layer(test::busybox_rootfs_tar(), "gzip"),
                                 test::make_layer(test::TarBuilder()
                                                      .file("attacker", *attacker, 0755)
                                                      .file("evil", "#!/proc/self/exe\n", 0755)
                                                      .finish(),
                                                  "gzip")}),
                kImage);
    std::string tar = d_->dir() + "/image.tar";
    test::write_file(tar, layout.tar());
    auto imp = d_->berth({"images", "import", "-q", tar});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }
  void TearDown() override {
    if (!d_) return;
    for (const auto& id : ids_) {
      d_->berth({"tasks", "rm", "-f", id});
      d_->berth({"containers", "rm", id});
    }
    d_->stop();
    if (!shim_digest_.empty()) {
      EXPECT_EQ(core::Sha256::digest_of(slurp(shim_)), shim_digest_) << "the host's shim changed";
    }
    d_.reset();
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + "/default").c_str());
    }
  }
  pid_t task_pid(const std::string& id) {
    auto ls = d_->berth({"--format", "json", "tasks", "ls"});
    if (ls.exit_code != 0) return -1;
    for (const auto& t : nlohmann::json::parse(ls.out)) {
      if (t.value("id", "") == id) return t.value("pid", 0);
    }
    return -1;
  }
  std::unique_ptr<Daemon> d_;
  std::string shim_, shim_digest_;
  std::vector<std::string> ids_;
};

TEST_F(TaskSecurityTest, TheShimRunsReadOnlyAndCannotBeOverwrittenFromTheContainer) {
  ids_.push_back("t1");
  auto r = d_->berth({"run", "-d", kImage, "t1", "/attacker", "60", "/tmp/report", "0"});
  ASSERT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  pid_t init = task_pid("t1");
  ASSERT_GT(init, 0);
  // The serving shim (the init's parent) executes a file on a read-only mount.
  std::string status = slurp("/proc/" + std::to_string(init) + "/status");
  auto at = status.find("PPid:");
  ASSERT_NE(at, std::string::npos);
  pid_t shim_pid = std::stoi(status.substr(at + 5));
  struct statvfs sv {};
  ASSERT_EQ(::statvfs(("/proc/" + std::to_string(shim_pid) + "/exe").c_str(), &sv), 0);
  EXPECT_TRUE(sv.f_flag & ST_RDONLY) << "the serving shim runs from a writable file";
  EXPECT_EQ(slurp("/proc/" + std::to_string(shim_pid) + "/comm"), "berth-shim\n");

  auto report = [&] { return d_->berth({"tasks", "exec", "t1", "cat", "/tmp/report"}).out; };
  auto count = [](const std::string& text, const std::string& word) {
    std::size_t n = 0;
    for (auto p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) ++n;
    return n;
  };
  std::string text;
  for (int i = 0; i < 30 && count(text, "write") < 3; ++i) {
    auto e = d_->berth({"tasks", "exec", "t1", "/evil"});
    EXPECT_NE(e.exit_code, 0);
    text = report();
  }
  ASSERT_GT(count(text, "caught"), 0u) << "the attacker never got hold of the shim's binary:\n"
                                       << text;
  EXPECT_THAT(text, ::testing::Not(HasSubstr("WROTE"))) << text;
  EXPECT_EQ(core::Sha256::digest_of(slurp(shim_)), shim_digest_) << "the host's shim changed";
}

TEST_F(TaskSecurityTest, OnlyStdioReachesTheContainersProcesses) {
  ids_.push_back("t2");
  auto r = d_->berth({"run", "-d", kImage, "t2", "sleep", "1000"});
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  pid_t init = task_pid("t2");
  ASSERT_GT(init, 0);
  const std::set<std::string> stdio = {"0", "1", "2"};
  EXPECT_EQ(fds_of(init), stdio);
  auto ex = d_->berth({"tasks", "exec", "-d", "--exec-id", "s1", "t2", "sleep", "1000"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  std::set<pid_t> pids;
  for (int i = 0; i < 50 && pids.size() < 2; ++i) {
    auto ps = d_->berth({"--format", "json", "tasks", "ps", "t2"});
    pids.clear();
    if (ps.exit_code == 0) {
      for (const auto& p : nlohmann::json::parse(ps.out)) pids.insert(p.value("pid", 0));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(pids.size(), 2u);
  for (pid_t p : pids) {
    if (p == init) continue;
    for (int i = 0; i < 100 && slurp("/proc/" + std::to_string(p) + "/comm") != "sleep\n"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(fds_of(p), stdio) << "exec'd process " << p;
  }
}

// CVE-2021-41103: no other host user reaches a container's bundle (its rootfs) or the
// snapshots (setuid programs from images).
TEST_F(TaskSecurityTest, BundlesAndSnapshotsAreNotReachableByOtherUsers) {
  ids_.push_back("t4");
  auto r = d_->berth({"run", "-d", kImage, "t4", "sleep", "1000"});
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  for (const std::string dir : {d_->state() + "/io.containerd.runtime.v2.task",
                                d_->root() + "/io.containerd.runtime.v2.task",
                                d_->root() + "/io.containerd.snapshotter.v1.overlayfs",
                                d_->root() + "/io.containerd.content.v1.content"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
  }
  std::string rootfs = d_->state() + "/io.containerd.runtime.v2.task/default/t4/rootfs";
  ASSERT_TRUE(fs::exists(rootfs + "/bin/busybox"));
  auto nobody = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                     "/bin/busybox", "ls", rootfs + "/bin"});
  EXPECT_NE(nobody.exit_code, 0) << "another user listed the rootfs: " << diag(nobody);
  EXPECT_THAT(nobody.err, HasSubstr("Permission denied"));
}

TEST_F(TaskSecurityTest, AWorkingDirectoryThroughAProcMagicLinkIsRefused) {
  for (const std::string cwd : {"/proc/self/cwd", "/proc/1/root", "/proc/self/fd/3"}) {
    SCOPED_TRACE(cwd);
    std::string id = "t3-" + std::to_string(ids_.size());
    ids_.push_back(id);
    auto r = d_->berth({"run", "--rm", "--cwd", cwd, kImage, id, "sh", "-c", "pwd"});
    EXPECT_NE(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("process.cwd")) << diag(r);
  }
}

}  // namespace
}  // namespace berth::e2e

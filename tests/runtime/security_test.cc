// berth-runtime against a hostile container, as root: the runtime's binary cannot be overwritten
// from inside (CVE-2019-5736: a `#!/proc/self/exe` program and a process in the container that
// waits to write through /proc/<pid>/exe), container processes are not dumpable until they exec,
// only stdio and the preserved descriptors reach the process, and a working directory through a
// /proc magic link is refused (CVE-2024-21626).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <set>
#include <sstream>
#include <thread>

#include "core/digest.h"
#include "tests/runtime/runtime_fixture.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RuntimeSecurityTest : public RuntimeTest {
 protected:
  // Runs berth-runtime from `binary` (a copy the test may watch) instead of the build's.
  RunResult runtime_from(const std::string& binary, std::vector<std::string> args) {
    std::vector<std::string> argv = {binary, "--root", dir_->path() + "/state"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, std::chrono::seconds(30));
  }
  RunResult create_from(const std::string& binary) {
    std::string cmd = "exec " + binary + " --root " + dir_->path() + "/state create --bundle " +
                      bundle_ + " " + id_ + " </dev/null >/dev/null 2>" + dir_->path() +
                      "/create.err";
    auto r = run({"/bin/sh", "-c", cmd});
    r.err = slurp(dir_->path() + "/create.err");
    return r;
  }
  pid_t init_pid() {
    auto s = runtime({"state", id_});
    if (s.exit_code != 0) return -1;
    return nlohmann::json::parse(s.out)["pid"].get<pid_t>();
  }
};

TEST_F(RuntimeSecurityTest, TheRuntimeBinaryCannotBeOverwrittenFromTheContainer) {
  // The runtime under attack is a copy, so a failure here cannot break the build's binary.
  std::string copy = dir_->path() + "/berth-runtime";
  fs::copy_file(bin("berth-runtime"), copy);
  std::string before = core::Sha256::digest_of(slurp(copy));
  fs::copy_file(BERTH_EXE_ATTACKER, rootfs_ + "/attacker");
  std::ofstream(rootfs_ + "/evil") << "#!/proc/self/exe\n";
  fs::permissions(rootfs_ + "/evil", fs::perms(0755));
  spec_["process"]["args"] = {"/attacker", "60", "/tmp/report"};
  write_spec();
  ASSERT_EQ(create_from(copy).exit_code, 0);
  ASSERT_EQ(runtime_from(copy, {"start", id_}).exit_code, 0);
  std::string report = rootfs_ + "/tmp/report";
  auto count = [&](const std::string& word) {
    std::string text = slurp(report);
    std::size_t n = 0;
    for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
    return n;
  };
  // Each exec runs the runtime's binary inside the container ("#!/proc/self/exe"), as the
  // exploit does; the attacker grabs it and writes once it has exited.
  for (int i = 0; i < 40 && count("caught") < 5; ++i) {
    auto e = runtime_from(copy, {"exec", id_, "/evil"});
    EXPECT_NE(e.exit_code, 0);
  }
  for (int i = 0; i < 100 && count("write") < count("caught"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string text = slurp(report);
  ASSERT_GT(count("caught"), 0u) << "the attacker never got hold of the runtime's binary:\n"
                                 << text;
  EXPECT_EQ(count("write"), count("caught")) << text;
  EXPECT_THAT(text, ::testing::Not(HasSubstr("WROTE")));
  EXPECT_THAT(text, HasSubstr("EROFS")) << text;
  // The exec'd processes could not be opened while they still ran the runtime's set-up code.
  EXPECT_THAT(text, HasSubstr("EACCES")) << text;
  EXPECT_EQ(core::Sha256::digest_of(slurp(copy)), before) << "the host's berth-runtime changed";
}

// Before its exec a container process runs the runtime's code; a non-dumpable process's /proc
// files belong to the host's root, not to the (mapped) container user, so nothing in the
// container can ptrace it or open /proc/<pid>/exe, mem or fd. This checks the property, not
// only init.cc's PR_SET_DUMPABLE: in a user namespace the kernel clears dumpability itself when
// the init becomes the namespace's root, and without one the capability-subset rule of ptrace
// already keeps a container's processes from a runtime-privileged one. The prctl is the same
// guarantee made explicit (as runc's nsexec does), for whatever changes around it.
TEST_F(RuntimeSecurityTest, ContainerProcessesAreNotDumpableUntilTheyExec) {
  spec_["linux"]["namespaces"].push_back({{"type", "user"}});
  spec_["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  spec_["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  spec_["linux"].erase("resources");
  fs::permissions(dir_->path(), fs::perms(0755));
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  pid_t pid = init_pid();
  ASSERT_GT(pid, 0);
  // (The /proc/<pid> directory itself always shows the euid; its files show dumpability.)
  std::string environ_file = "/proc/" + std::to_string(pid) + "/environ";
  struct stat st {};
  ASSERT_EQ(::stat(environ_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "the created init (before exec) is dumpable";
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  for (int i = 0; i < 100; ++i) {
    if (slurp("/proc/" + std::to_string(pid) + "/comm") == "sleep\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(::stat(environ_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u) << "after its exec the process is the container user's again";
}

TEST_F(RuntimeSecurityTest, OnlyStdioAndPreservedDescriptorsReachTheProcess) {
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  auto fds_of = [](pid_t pid) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
      out.insert(e.path().filename().string());
    return out;
  };
  const std::set<std::string> stdio = {"0", "1", "2"};
  EXPECT_EQ(fds_of(init_pid()), stdio);
  std::string pid_file = dir_->path() + "/exec.pid";
  // Detached, its stdio must not be our pipes (they would stay open as long as it runs).
  auto ex = run({"/bin/sh", "-c",
                 "exec " + bin("berth-runtime") + " --root " + dir_->path() +
                     "/state exec -d --pid-file " + pid_file + " " + id_ +
                     " sleep 1000 </dev/null >/dev/null 2>&1"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  pid_t exec_pid = std::stoi(slurp(pid_file));
  for (int i = 0; i < 100 && slurp("/proc/" + std::to_string(exec_pid) + "/comm") != "sleep\n"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(fds_of(exec_pid), stdio);
  ::kill(exec_pid, SIGKILL);

  // --preserve-fds 1: the caller's fd 3 is the process's fd 3; without it there is none.
  std::string file = dir_->path() + "/passed";
  std::ofstream(file) << "passed along\n";
  spec_["process"]["args"] = {"sh", "-c", "cat <&3"};
  write_spec();
  std::string rt =
      bin("berth-runtime") + " --root " + dir_->path() + "/state run --bundle " + bundle_ + " ";
  auto kept =
      run({"/bin/sh", "-c", "exec 3<" + file + "; exec " + rt + "--preserve-fds 1 " + id_ + "-p"});
  extra_ids_.push_back(id_ + "-p");
  EXPECT_EQ(kept.exit_code, 0) << diag(kept);
  EXPECT_EQ(kept.out, "passed along\n");
  auto dropped = run({"/bin/sh", "-c", "exec 3<" + file + "; exec " + rt + id_ + "-n"});
  extra_ids_.push_back(id_ + "-n");
  EXPECT_NE(dropped.exit_code, 0) << diag(dropped);
  EXPECT_EQ(dropped.out, "");
}

TEST_F(RuntimeSecurityTest, AWorkingDirectoryThroughAProcMagicLinkIsRefused) {
  for (const std::string cwd :
       {"/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/5", "/proc/self/fd/6",
        "/proc/self/fd/7", "/proc/self/fd/8", "/proc/self/cwd", "/proc/1/root"}) {
    SCOPED_TRACE(cwd);
    spec_["process"]["cwd"] = cwd;
    auto r = sh("pwd; ls");
    EXPECT_NE(r.exit_code, 0) << diag(r);
    EXPECT_THAT(r.err, HasSubstr("process.cwd")) << diag(r);
    EXPECT_EQ(r.out, "");
    if (cwd.find("/fd/") == std::string::npos) EXPECT_THAT(r.err, HasSubstr("magic link"));
  }
  spec_["process"]["cwd"] = "/tmp";
  auto ok = sh("pwd");
  EXPECT_EQ(ok.exit_code, 0) << diag(ok);
  EXPECT_EQ(ok.out, "/tmp\n");
}

// Mounts are made detached and attached onto the destination's descriptor: "ro" on an rbind
// makes every submount read-only too, and flags and propagation land on the new mount.
TEST_F(RuntimeSecurityTest, ReadOnlyBindsAreReadOnlyAllTheWayDown) {
  std::string shared = dir_->path() + "/shared";
  rt_fs::create_directories(shared + "/sub");
  ASSERT_EQ(::mount("tmpfs", (shared + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{shared + "/sub"};
  spec_["mounts"].push_back({{"destination", "/data"},
                             {"type", "bind"},
                             {"source", shared},
                             {"options", {"rbind", "ro", "nosuid", "rshared"}}});
  auto r =
      sh("touch /data/top 2>&1; touch /data/sub/below 2>&1; "
         "grep ' /data' /proc/self/mountinfo");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("touch: /data/top: Read-only file system"));
  EXPECT_THAT(r.out, HasSubstr("touch: /data/sub/below: Read-only file system"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(" /data ro,nosuid[^ ]* shared:"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(" /data/sub ro,nosuid"));
  EXPECT_FALSE(rt_fs::exists(shared + "/sub/below"));
}

// cgroup v2 has no devices controller: the rules are an eBPF program on the container's cgroup.
// The test runs berth-runtime in a private mount namespace where /sys/fs/cgroup is this host's
// cgroup2 hierarchy alone (a pure v2 view; device programs need no controller). A container
// with no device rules gets the default allow-list, not every device.
TEST_F(RuntimeSecurityTest, DeviceRulesAreEnforcedOnCgroupV2) {
  spec_["process"]["capabilities"]["bounding"].push_back("CAP_MKNOD");
  spec_["process"]["capabilities"]["effective"].push_back("CAP_MKNOD");
  spec_["process"]["capabilities"]["permitted"].push_back("CAP_MKNOD");
  // Opening needs no capability for any of these; only the device rules can refuse it.
  std::string script =
      "cd /tmp; busybox mknod null c 1 3; busybox mknod tun c 10 200; busybox mknod loop b 7 0;"
      "for d in null tun loop; do if (: < $d) 2>/dev/null; then echo $d=open; "
      "else echo $d=denied; fi; done";
  spec_["process"]["args"] = {"sh", "-c", script};
  auto in_v2_view = [&](const std::string& id) {
    std::string rt = bin("berth-runtime") + " --root " + dir_->path() + "/state run --bundle " +
                     bundle_ + " " + id;
    return run({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                "set -e; umount -R /sys/fs/cgroup; mount -t cgroup2 cgroup2 /sys/fs/cgroup; "
                "exec " +
                    rt});
  };
  for (bool with_rules : {true, false}) {
    SCOPED_TRACE(with_rules ? "the spec's rules" : "no device rules at all");
    if (with_rules) {
      spec_["linux"]["resources"] = {
          {"devices",
           {{{"allow", false}, {"access", "rwm"}},
            {{"allow", true}, {"type", "b"}, {"major", 7}, {"minor", 0}, {"access", "r"}}}}};
    } else {
      spec_["linux"].erase("resources");
    }
    write_spec();
    std::string id = id_ + (with_rules ? "-r" : "-n");
    extra_ids_.push_back(id);
    auto r = in_v2_view(id);
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_THAT(r.out, HasSubstr("null=open"));
    EXPECT_THAT(r.out, HasSubstr("tun=denied"));
    EXPECT_THAT(r.out, HasSubstr(with_rules ? "loop=open" : "loop=denied"));
  }
}

}  // namespace
}  // namespace berth::e2e

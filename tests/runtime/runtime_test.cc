// berth-runtime as root, feature by feature, each checked from inside the container (busybox from
// the host's busybox-static): lifecycle, namespaces, user namespace maps, mounts, masked and
// read-only paths, devices, capabilities, no_new_privs, rlimits, seccomp, cgroups (v1, and the
// hybrid host's v2 tree), hooks, console, errors. Every test deletes its container, its cgroups
// and its temporary directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "core/oci/spec.h"
#include "tests/e2e/harness.h"
#include "tests/runtime/runtime_fixture.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

TEST_F(RuntimeTest, RunReportsOutputAndExitCodeAndLeavesNothing) {
  auto r = sh("echo hello; exit 3");
  EXPECT_EQ(r.exit_code, 3) << diag(r);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_TRUE(fs::is_empty(dir_->path() + "/state")) << "state directory left behind";
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  for (const auto& m : layout->mounts)
    EXPECT_FALSE(fs::exists(m.mountpoint + kCgroupParent + "/" + id_)) << m.mountpoint;
  // Killed by a signal: 128 + the signal (not as PID 1, which ignores it in its namespace).
  spec_["linux"]["namespaces"] = {{{"type", "mount"}}, {{"type", "uts"}}};
  auto killed = sh("kill -9 $$");
  EXPECT_EQ(killed.exit_code, 137) << diag(killed);
}

TEST_F(RuntimeTest, LifecycleCreateStartExecPsPauseResumeKillDelete) {
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  std::string pid_file = dir_->path() + "/pid";
  auto c = create({"--pid-file", pid_file});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto state = [&] {
    auto s = runtime({"state", id_});
    EXPECT_EQ(s.exit_code, 0) << diag(s);
    return s.exit_code == 0 ? json::parse(s.out) : json::object();
  };
  json st = state();
  EXPECT_EQ(st["status"], "created");
  EXPECT_EQ(std::to_string(st["pid"].get<int>()), slurp(pid_file));
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  EXPECT_EQ(state()["status"], "running");
  auto again = runtime({"start", id_});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("running, not created"));

  auto ex = runtime({"exec", id_, "sh", "-c", "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); exit 4"});
  EXPECT_EQ(ex.exit_code, 4) << diag(ex);
  EXPECT_THAT(ex.out, HasSubstr("pid1=sleep 1000"));
  auto ps = runtime({"ps", "--format", "json", id_});
  ASSERT_EQ(ps.exit_code, 0) << diag(ps);
  EXPECT_EQ(json::parse(ps.out), json::array({st["pid"]}));

  ASSERT_EQ(runtime({"pause", id_}).exit_code, 0);
  EXPECT_EQ(state()["status"], "paused");
  auto paused_del = runtime({"delete", id_});
  EXPECT_NE(paused_del.exit_code, 0);
  EXPECT_THAT(paused_del.err, HasSubstr("use --force"));
  ASSERT_EQ(runtime({"resume", id_}).exit_code, 0);
  EXPECT_EQ(state()["status"], "running");
  auto list = runtime({"list", "--format", "json"});
  EXPECT_THAT(list.out, HasSubstr(id_));

  ASSERT_EQ(runtime({"kill", id_, "KILL"}).exit_code, 0);
  for (int i = 0; i < 100 && state()["status"] != "stopped"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(state()["status"], "stopped");
  auto d = runtime({"delete", id_});
  EXPECT_EQ(d.exit_code, 0) << diag(d);
  auto gone = runtime({"state", id_});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("does not exist"));
}

TEST_F(RuntimeTest, NamespacesHostnameAndUserNamespaceMaps) {
  spec_["linux"]["namespaces"].push_back({{"type", "user"}});
  spec_["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  spec_["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  spec_["linux"].erase("resources");
  fs::permissions(dir_->path(), fs::perms(0755));  // the mapped root must reach the rootfs
  auto r = sh("hostname; cat /proc/self/uid_map /proc/self/gid_map; echo pid=$$; id -u; "
              "readlink /proc/self/ns/net");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("berth-test\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("0 +100000 +65536"));
  EXPECT_THAT(r.out, HasSubstr("pid=1\n"));
  EXPECT_THAT(r.out, HasSubstr("\n0\n"));
  char host_net[256] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", host_net, sizeof host_net - 1), 0);
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(host_net)));
}

TEST_F(RuntimeTest, MountsMaskedAndReadOnlyPathsAndReadOnlyRoot) {
  std::string shared = dir_->path() + "/shared";
  fs::create_directories(shared);
  std::ofstream(shared + "/from-host") << "host data";
  spec_["mounts"].push_back({{"destination", "/data/ro"}, {"type", "bind"}, {"source", shared},
                             {"options", {"rbind", "ro"}}});
  spec_["mounts"].push_back({{"destination", "/data/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"},
                             {"options", {"size=1m", "mode=1777"}}});
  spec_["root"]["readonly"] = true;
  std::ofstream(rootfs_ + "/etc/secret") << "do not show";
  spec_["linux"]["maskedPaths"].push_back("/etc/secret");
  auto r = sh("cat /data/ro/from-host; echo; touch /data/ro/x 2>&1; touch /data/tmp/ok && echo tmp-ok; "
              "touch /newfile 2>&1; echo \"[$(cat /etc/secret)]\"; echo 1 > /proc/sys/kernel/domainname 2>&1; "
              "grep ' /data/tmp ' /proc/mounts");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("host data\n"));
  EXPECT_THAT(r.out, HasSubstr("touch: /data/ro/x: Read-only file system"));
  EXPECT_THAT(r.out, HasSubstr("tmp-ok"));
  EXPECT_THAT(r.out, HasSubstr("touch: /newfile: Read-only file system"));
  EXPECT_THAT(r.out, HasSubstr("[]\n"));  // masked by /dev/null
  EXPECT_THAT(r.out, HasSubstr("Read-only file system"));
  EXPECT_THAT(r.out, HasSubstr("size=1024k"));
  EXPECT_FALSE(fs::exists(shared + "/x"));
}

TEST_F(RuntimeTest, DevicesAndDevSymlinks) {
  // berth-null is allowed by the default device list (1:3); berth-mem (1:1, /dev/mem) is not.
  spec_["linux"]["devices"] = {{{"type", "c"}, {"path", "/dev/berth-null"}, {"major", 1}, {"minor", 3},
                                {"fileMode", 0600}, {"uid", 0}, {"gid", 0}},
                               {{"type", "c"}, {"path", "/dev/berth-mem"}, {"major", 1}, {"minor", 1}}};
  auto r = sh("stat -c '%n %t:%T %a' /dev/null /dev/berth-null /dev/zero /dev/tty; readlink /dev/fd; "
              "readlink /dev/ptmx; echo x > /dev/berth-null && echo write-ok; "
              "head -c 1 /dev/berth-mem >/dev/null 2>&1 || echo mem-denied");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("/dev/null 1:3 666"));
  EXPECT_THAT(r.out, HasSubstr("/dev/berth-null 1:3 600"));
  EXPECT_THAT(r.out, HasSubstr("/dev/zero 1:5 666"));
  EXPECT_THAT(r.out, HasSubstr("/proc/self/fd"));
  EXPECT_THAT(r.out, HasSubstr("pts/ptmx"));
  EXPECT_THAT(r.out, HasSubstr("write-ok"));
  EXPECT_THAT(r.out, HasSubstr("mem-denied"));  // the device cgroup denies 1:1
}

TEST_F(RuntimeTest, CapabilitiesNoNewPrivsUserRlimitsUmaskCwdEnv) {
  json caps = {"CAP_CHOWN", "CAP_KILL"};
  spec_["process"]["capabilities"] = {{"bounding", caps}, {"effective", caps}, {"permitted", caps},
                                      {"inheritable", json::array()}, {"ambient", json::array()}};
  spec_["process"]["noNewPrivileges"] = true;
  spec_["process"]["user"] = {{"uid", 1000}, {"gid", 1000}, {"additionalGids", {5, 6}}, {"umask", 027}};
  spec_["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"hard", 512}, {"soft", 256}}};
  spec_["process"]["cwd"] = "/tmp";
  spec_["process"]["env"] = {"PATH=/bin", "GREETING=hi"};
  spec_["process"]["oomScoreAdj"] = 123;
  auto r = sh("grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status; id; ulimit -n; ulimit -H -n; "
              "umask; pwd; echo $GREETING; cat /proc/self/oom_score_adj");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  // CAP_CHOWN (0) and CAP_KILL (5): 0x21. A non-root uid keeps no effective caps after exec
  // (no ambient), but the bounding set shows the spec's.
  EXPECT_THAT(r.out, HasSubstr("CapBnd:\t0000000000000021"));
  EXPECT_THAT(r.out, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(r.out, HasSubstr("uid=1000 gid=1000 groups=5,6"));
  EXPECT_THAT(r.out, HasSubstr("\n256\n512\n"));
  EXPECT_THAT(r.out, HasSubstr("0027\n/tmp\nhi\n123\n"));

  spec_["process"]["user"] = {{"uid", 0}, {"gid", 0}};
  auto root = sh("grep -E '^CapEff' /proc/self/status");
  EXPECT_THAT(root.out, HasSubstr("CapEff:\t0000000000000021")) << diag(root);
}

TEST_F(RuntimeTest, SeccompErrnoKillAndArgumentFilters) {
  spec_["linux"]["seccomp"] = {
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"}},
      {"syscalls",
       {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}},
        {{"names", {"sethostname"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 38}},
        // kill(_, SIGUSR1) is refused, other signals pass.
        {{"names", {"kill"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 13},
         {"args", {{{"index", 1}, {"value", 10}, {"op", "SCMP_CMP_EQ"}}}}}}}};
  auto r = sh("mkdir /tmp/x 2>&1; hostname other 2>&1; kill -USR1 $$ 2>&1; kill -0 $$ && echo sig0-ok; echo done");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("Operation not permitted"));
  EXPECT_THAT(r.out, HasSubstr("Function not implemented"));
  EXPECT_THAT(r.out, HasSubstr("Permission denied"));  // errnoRet 13 on SIGUSR1 only
  EXPECT_THAT(r.out, HasSubstr("sig0-ok"));
  EXPECT_THAT(r.out, HasSubstr("done"));
  EXPECT_FALSE(fs::exists(rootfs_ + "/tmp/x"));

  spec_["linux"]["seccomp"]["syscalls"] = {{{"names", {"getppid"}}, {"action", "SCMP_ACT_KILL_PROCESS"}}};
  auto killed = sh("echo before; cat /proc/self/status >/dev/null; exec sh -c 'echo $PPID'");
  EXPECT_EQ(killed.exit_code, 128 + 31) << diag(killed);  // SIGSYS

  spec_["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_NOPE"}};
  auto bad = sh("true");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("linux.seccomp.defaultAction"));
}

TEST_F(RuntimeTest, CgroupLimitsAreVisibleInsideAndOnTheHost) {
  spec_["linux"]["resources"]["memory"] = {{"limit", 64 << 20}, {"reservation", 32 << 20}};
  spec_["linux"]["resources"]["pids"] = {{"limit", 42}};
  spec_["linux"]["resources"]["cpu"] = {{"shares", 512}, {"quota", 50000}, {"period", 100000}};
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  std::string script =
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
      "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us; "
      "touch /sys/fs/cgroup/memory/x 2>&1; cat /sys/fs/cgroup/unified/hugetlb.2MB.max 2>&1; true";
  bool hybrid = layout->describe() == "hybrid" &&
                slurp("/sys/fs/cgroup/unified/cgroup.controllers").find("hugetlb") != std::string::npos;
  if (hybrid) spec_["linux"]["resources"]["hugepageLimits"] = {{{"pageSize", "2MB"}, {"limit", 4194304}}};
  if (layout->pure_v2()) script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.weight";
  auto r = sh(script);
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  if (!layout->pure_v2()) {
    EXPECT_THAT(r.out, HasSubstr("67108864\n42\n512\n50000\n"));
    EXPECT_THAT(r.out, HasSubstr("Read-only file system"));
    // hugetlb lives in the cgroup2 tree of this hybrid host: set there, visible there.
    if (hybrid) EXPECT_THAT(r.out, HasSubstr("4194304"));
  } else {
    EXPECT_THAT(r.out, HasSubstr("67108864\n42\n"));
  }
  spec_["linux"]["resources"]["memory"] = {{"limit", "lots"}};
  auto bad = sh("true");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("linux.resources.memory.limit: must be an integer"));
}

TEST_F(RuntimeTest, SysctlDomainnameAmbientCapsAndNoPivot) {
  spec_["domainname"] = "berth.example";
  spec_["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}, {"kernel.msgmax", "12345"}};
  json caps = {"CAP_NET_BIND_SERVICE", "CAP_KILL"};
  spec_["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
  spec_["process"]["capabilities"] = {{"bounding", caps}, {"effective", caps}, {"permitted", caps},
                                      {"inheritable", caps}, {"ambient", {"CAP_NET_BIND_SERVICE"}}};
  spec_["annotations"] = {{"org.example/key", "value"}};
  auto r = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax /proc/sys/kernel/domainname; "
              "grep -E '^Cap(Amb|Eff)' /proc/self/status");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("1\n12345\nberth.example\n"));
  // CAP_NET_BIND_SERVICE is bit 10: ambient survives the exec as uid 1000.
  EXPECT_THAT(r.out, HasSubstr("CapAmb:\t0000000000000400"));
  EXPECT_THAT(r.out, HasSubstr("CapEff:\t0000000000000400"));
  // The host's own values are untouched (the container has its own net and ipc namespaces).
  EXPECT_NE(slurp("/proc/sys/kernel/msgmax"), "12345\n");

  spec_["process"]["args"] = {"sh", "-c", "cat /proc/self/mountinfo | head -1; ls /"};
  spec_.erase("domainname");
  spec_["linux"].erase("sysctl");
  write_spec();
  auto np = runtime({"run", "--no-pivot", "--bundle", bundle_, id_});
  ASSERT_EQ(np.exit_code, 0) << diag(np);
  EXPECT_THAT(np.out, HasSubstr("bin"));
}

TEST_F(RuntimeTest, MemoryLimitOomKillsAndIsCounted) {
  // busybox sort holds its whole input: 64 MiB without a newline against a 16 MiB limit.
  spec_["linux"]["resources"]["memory"] = {{"limit", 16 << 20}, {"swap", 16 << 20}};
  spec_["linux"]["namespaces"] = {{{"type", "mount"}}, {{"type", "pid"}}, {{"type", "uts"}}};
  auto r = sh("head -c 67108864 /dev/zero | sort > /dev/null; echo sort=$?; "
              "grep oom_kill /sys/fs/cgroup/memory/memory.oom_control");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("sort=137"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("oom_kill [1-9]"));
}

TEST_F(RuntimeTest, JoinsNamespacesByPath) {
  // A first container owns a network and an IPC namespace; a second one joins them by path.
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  auto st = runtime({"state", id_});
  int pid = json::parse(st.out)["pid"].get<int>();
  std::string first = id_;
  extra_ids_.push_back(first);
  id_ = first + "-b";
  spec_["linux"]["cgroupsPath"] = kCgroupParent + "/" + id_;
  spec_["linux"]["namespaces"] = {{{"type", "mount"}},
                                  {{"type", "pid"}},
                                  {{"type", "uts"}},
                                  {{"type", "network"}, {"path", "/proc/" + std::to_string(pid) + "/ns/net"}},
                                  {{"type", "ipc"}, {"path", "/proc/" + std::to_string(pid) + "/ns/ipc"}}};
  auto r = sh("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  char net[128] = {}, ipc[128] = {};
  ASSERT_GT(::readlink(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), net, sizeof net - 1), 0);
  ASSERT_GT(::readlink(("/proc/" + std::to_string(pid) + "/ns/ipc").c_str(), ipc, sizeof ipc - 1), 0);
  EXPECT_EQ(r.out, std::string(net) + "\n" + ipc + "\n");
  runtime({"delete", "--force", first});
}

TEST_F(RuntimeTest, UpdateAndStats) {
  spec_["process"]["args"] = {"sleep", "1000"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  std::string res = dir_->path() + "/res.json";
  std::ofstream(res) << R"({"pids":{"limit":7},"memory":{"limit":33554432}})";
  auto u = runtime({"update", "--resources", res, id_});
  ASSERT_EQ(u.exit_code, 0) << diag(u);
  auto ev = runtime({"events", "--stats", id_});
  ASSERT_EQ(ev.exit_code, 0) << diag(ev);
  auto j = json::parse(ev.out);
  EXPECT_EQ(j["type"], "stats");
  EXPECT_EQ(j["data"]["pids"]["current"], 1);
  EXPECT_EQ(j["data"]["pids"]["limit"], 7);
  EXPECT_EQ(j["data"]["memory"]["usage"]["limit"], 33554432);
  EXPECT_GT(j["data"]["memory"]["usage"]["usage"].get<std::uint64_t>(), 0u);
}

TEST_F(RuntimeTest, HooksRunInOrderWithStateAndTimeouts) {
  std::string log = dir_->path() + "/hooks.log";
  std::string share = dir_->path() + "/share";
  fs::create_directories(share);
  spec_["mounts"].push_back({{"destination", "/share"}, {"type", "bind"}, {"source", share}, {"options", {"rbind"}}});
  auto hook = [&](const std::string& name, const std::string& file) {
    return json{{"path", "/bin/sh"},
                {"args", {"sh", "-c", "read s; echo \"" + name + " $s\" >> " + file}}};
  };
  spec_["hooks"] = {{"prestart", {hook("prestart", log)}},
                    {"createRuntime", {hook("createRuntime", log)}},
                    {"createContainer", {hook("createContainer", log)}},
                    {"startContainer", {hook("startContainer", "/share/inside.log")}},
                    {"poststart", {hook("poststart", log)}},
                    {"poststop", {hook("poststop", log)}}};
  auto r = sh("echo container-ran");
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  std::string text = slurp(log);
  std::vector<std::string> order;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) order.push_back(line.substr(0, line.find(' ')));
  EXPECT_EQ(order, (std::vector<std::string>{"prestart", "createRuntime", "createContainer", "poststart", "poststop"}))
      << text;
  EXPECT_THAT(text, HasSubstr("\"id\":\"" + id_ + "\""));
  EXPECT_THAT(text, HasSubstr("\"status\":\"creating\""));
  EXPECT_THAT(text, HasSubstr("\"status\":\"stopped\""));
  EXPECT_THAT(slurp(share + "/inside.log"), HasSubstr("startContainer {"));

  spec_["hooks"] = {{"createRuntime", {{{"path", "/bin/sleep"}, {"args", {"sleep", "30"}}, {"timeout", 1}}}}};
  auto slow = sh("true");
  EXPECT_NE(slow.exit_code, 0);
  EXPECT_THAT(slow.err, HasSubstr("createRuntime hook /bin/sleep timed out after 1s"));
  spec_["hooks"] = {{"prestart", {{{"path", "/bin/false"}}}}};
  auto failing = sh("true");
  EXPECT_THAT(failing.err, HasSubstr("prestart hook /bin/false exited with status 1"));
  EXPECT_TRUE(fs::is_empty(dir_->path() + "/state"));
}

// Receives the pty master on a console socket, as containerd's shim does.
TEST_F(RuntimeTest, ConsoleSocketGetsThePtyMaster) {
  std::string sock = dir_->path() + "/console.sock";
  int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(srv, 1), 0);
  std::string output;
  std::thread reader([&] {
    int conn = ::accept(srv, nullptr, nullptr);
    if (conn < 0) return;
    msghdr msg{};
    char byte;
    iovec iov{&byte, 1};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(conn, &msg, 0) > 0 && CMSG_FIRSTHDR(&msg)) {
      int master;
      std::memcpy(&master, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof master);
      char buf[4096];
      for (;;) {
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;
        output.append(buf, static_cast<std::size_t>(n));
      }
      ::close(master);
    }
    ::close(conn);
  });
  spec_["process"]["terminal"] = true;
  spec_["process"]["args"] = {"sh", "-c", "tty; stat -c %t:%T /dev/console"};
  write_spec();
  auto c = create({"--console-socket", sock});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  ASSERT_EQ(runtime({"start", id_}).exit_code, 0);
  reader.join();
  ::close(srv);
  EXPECT_THAT(output, HasSubstr("/dev/pts/0"));
  EXPECT_THAT(output, HasSubstr("88:0"));  // /dev/console is the pty slave

  spec_["process"]["args"] = {"true"};
  write_spec();
  extra_ids_.push_back(id_ + "-x");
  auto no_socket = runtime({"create", "--bundle", bundle_, id_ + "-x"});
  EXPECT_NE(no_socket.exit_code, 0);
  EXPECT_THAT(no_socket.err, HasSubstr("console-socket"));
}

TEST_F(RuntimeTest, ErrorsAreOneClearLine) {
  auto count_lines = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  // No config.json.
  auto none = runtime({"create", "--bundle", dir_->path(), id_});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("config.json"));
  EXPECT_EQ(count_lines(none.err), 1);
  // An invalid field.
  spec_["process"]["rlimits"] = {{{"type", "RLIMIT_BOGUS"}, {"hard", 1}, {"soft", 1}}};
  write_spec();
  auto bad = runtime({"create", "--bundle", bundle_, id_});
  EXPECT_THAT(bad.err, HasSubstr("process.rlimits[0].type: unknown rlimit \"RLIMIT_BOGUS\""));
  EXPECT_EQ(count_lines(bad.err), 1);
  // A missing rootfs.
  spec_["process"].erase("rlimits");
  spec_["root"]["path"] = "nowhere";
  write_spec();
  auto noroot = runtime({"create", "--bundle", bundle_, id_});
  EXPECT_THAT(noroot.err, HasSubstr("root.path: rootfs"));
  // An id in use.
  spec_["root"]["path"] = "rootfs";
  spec_["process"]["args"] = {"sleep", "100"};
  write_spec();
  ASSERT_EQ(create().exit_code, 0);
  auto dup = create();
  EXPECT_NE(dup.exit_code, 0);
  EXPECT_THAT(dup.err, HasSubstr("container \"" + id_ + "\" already exists"));
  EXPECT_EQ(count_lines(dup.err), 1);
  // Unknown ids, bad ids, bad signals, missing programs.
  auto unknown = runtime({"kill", "no-such-container", "KILL"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("container \"no-such-container\" does not exist"));
  EXPECT_EQ(count_lines(unknown.err), 1);
  auto badid = runtime({"state", "../etc"});
  EXPECT_THAT(badid.err, HasSubstr("invalid container id"));
  auto badsig = runtime({"kill", id_, "SIGNOPE"});
  EXPECT_THAT(badsig.err, HasSubstr("unknown signal"));
  spec_["process"]["args"] = {"no-such-program"};
  spec_["linux"]["cgroupsPath"] = kCgroupParent + "/" + id_ + "-p";
  extra_ids_.push_back(id_ + "-p");
  write_spec();
  auto noprog = runtime({"run", "--bundle", bundle_, id_ + "-p"});
  EXPECT_NE(noprog.exit_code, 0);
  EXPECT_THAT(noprog.err, HasSubstr("\"no-such-program\": executable file not found in $PATH"));
  EXPECT_EQ(count_lines(noprog.err), 1);
}

// The hybrid host's cgroup2 tree (/sys/fs/cgroup/unified) through the v2 implementation:
// create, delegate, join, freeze, list, remove.
TEST(CgroupV2Test, FreezeAndProcsOnACgroup2Hierarchy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  std::string v2_root;
  for (const auto& m : layout->mounts) {
    if (m.v2) v2_root = m.mountpoint;
  }
  if (v2_root.empty()) GTEST_SKIP() << "no cgroup2 mount";
  auto cg = oci::cgroups::Cgroup::open(oci::cgroups::v2_layout(v2_root), "/berth-v2-test/" + std::to_string(::getpid()));
  ASSERT_TRUE(cg.ok()) << cg.status().message();
  ASSERT_TRUE(cg->create().ok());
  pid_t child = ::fork();
  if (child == 0) {
    for (;;) ::pause();
  }
  ASSERT_TRUE(cg->add(child).ok());
  auto pids = cg->pids();
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{child});
  ASSERT_TRUE(cg->freeze(true).ok());
  EXPECT_TRUE(*cg->frozen());
  EXPECT_THAT(slurp("/proc/" + std::to_string(child) + "/status"), HasSubstr("State:\tS"));
  ASSERT_TRUE(cg->freeze(false).ok());
  EXPECT_FALSE(*cg->frozen());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(cg->destroy().ok());
  ::rmdir((v2_root + "/berth-v2-test").c_str());
  EXPECT_FALSE(fs::exists(v2_root + "/berth-v2-test"));
}

// On the hybrid host the v2 tree drives only what v1 lacks (hugetlb here).
TEST(CgroupLayoutTest, HybridSplitsControllersByHierarchy) {
  auto layout = oci::cgroups::probe();
  ASSERT_TRUE(layout.ok());
  if (layout->describe() != "hybrid") GTEST_SKIP() << "host is " << layout->describe();
  auto cg = oci::cgroups::Cgroup::open(*layout, "/x/y");
  ASSERT_TRUE(cg.ok());
  bool unified = false;
  for (const auto& d : cg->dirs()) unified = unified || d.find("/unified/x/y") != std::string::npos;
  EXPECT_TRUE(unified);
  EXPECT_EQ(oci::cgroups::shares_to_weight(1024), 39u);
  EXPECT_EQ(oci::cgroups::shares_to_weight(2), 1u);
  EXPECT_EQ(oci::cgroups::shares_to_weight(262144), 10000u);
}

}  // namespace
}  // namespace berth::e2e

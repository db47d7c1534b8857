// Container networking end to end: berthd's io.berth.network.v1.cni with the reference CNI plugins
// (bridge, host-local, portmap, firewall, loopback), driven by `berth run --net`. As root. Each
// test owns its CNI config dir, a bridge name and a 10.231.N.0/24 subnet, keeps host-local's
// leases in its temp dir, and removes the bridge, the iptables chains it made and restores
// ip_forward, also when it fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "core/fs.h"
#include "tests/e2e/harness.h"
#include "tests/support/host_network.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

constexpr const char* kImage = "example.com/busybox:1";

using test::host_sh;
const auto& sh = host_sh;

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "networks need root";
    if (::access("/usr/lib/cni/bridge", X_OK) != 0)
      GTEST_SKIP() << "containernetworking-plugins is missing (scripts/setup.sh installs it)";
    int n = 10 + ::getpid() % 90;
    bridge_ = "be" + std::to_string(::getpid() % 100000);
    subnet_ = "10.231." + std::to_string(n);
    guard_.emplace(std::vector<std::string>{bridge_, bridge_ + "d"});
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    conf_dir_ = d_->dir() + "/net.d";
    ASSERT_TRUE(core::make_dirs(conf_dir_).ok());
    write_net("e2e", {R"({"type":"bridge","bridge":")" + bridge_ +
                          R"(","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":")" +
                          d_->dir() + R"(/ipam","ranges":[[{"subnet":")" + subnet_ + R"(.0/24"}]]}})",
                      R"({"type":"portmap","capabilities":{"portMappings":true}})",
                      R"({"type":"firewall"})"});
    DaemonOptions o;
    o.config = "[plugins.\"io.berth.network.v1.cni\"]\n  conf_dir = \"" + conf_dir_ +
               "\"\n  bin_dirs = [\"/usr/lib/cni\"]\n  default_bridge = \"" + bridge_ +
               "d\"\n  default_subnet = \"10.231." + std::to_string(n + 100) +
               ".0/24\"\n  default_masquerade = false\n";
    options_ = o;
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d_->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar(kImage));
    auto imp = d_->berth({"images", "import", "-q", tar});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }

  void TearDown() override {
    if (d_) {
      if (d_->pid() <= 0 || ::kill(d_->pid(), 0) != 0) d_->start(options_);
      for (const auto& id : ids_) {
        d_->berth({"tasks", "rm", "-f", id});
        d_->berth({"containers", "rm", id});
      }
      d_->stop();
    }
    d_.reset();
    guard_.reset();
  }

  void write_net(const std::string& name, const std::vector<std::string>& plugins) {
    std::string list;
    for (const auto& p : plugins) list += (list.empty() ? "" : ",") + p;
    test::write_file(conf_dir_ + "/" + name + ".conflist",
                     R"({"cniVersion":"1.0.0","name":")" + name + R"(","plugins":[)" + list + "]}");
  }

  RunResult berth_run(const std::vector<std::string>& flags, const std::string& id,
                      const std::vector<std::string>& cmd) {
    ids_.push_back(id);
    std::vector<std::string> args = {"run"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(kImage);
    args.push_back(id);
    args.insert(args.end(), cmd.begin(), cmd.end());
    return d_->berth(args);
  }

  std::string ip_of(const std::string& id) {
    auto ls = d_->berth({"--format", "json", "tasks", "ls"});
    json j = json::parse(ls.out, nullptr, false);
    if (!j.is_array()) return "";
    for (const auto& t : j)
      if (t["id"] == id && !t["ips"].empty()) return t["ips"][0].get<std::string>();
    return "";
  }

  // What a container's networking can leave on the host.
  std::string leftovers() {
    std::string out;
    std::string veths = sh("ip -o link show master " + bridge_ + " 2>/dev/null");
    if (!veths.empty()) out += "veths on the bridge:\n" + veths;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(d_->dir() + "/ipam", ec))
      if (e.path().filename().string().rfind(subnet_, 0) == 0) out += "lease " + e.path().string() + "\n";
    std::string netns_dir = d_->state() + "/io.berth.network.v1.cni/netns";
    for (const auto& e : std::filesystem::directory_iterator(netns_dir, ec))
      out += "netns " + e.path().string() + "\n";
    std::string nat = sh("iptables-save");
    std::istringstream in(nat);
    std::string line;
    while (std::getline(in, line))
      if (line.find(subnet_ + ".") != std::string::npos && line.rfind("-A ", 0) == 0)
        out += "rule " + line + "\n";
    std::string mounts = sh("grep io.berth.network.v1.cni /proc/self/mountinfo | grep " + d_->dir());
    if (!mounts.empty()) out += "mounts:\n" + mounts;
    return out;
  }

  std::unique_ptr<Daemon> d_;
  DaemonOptions options_;
  std::string bridge_, subnet_, conf_dir_;
  std::optional<test::HostNetworkGuard> guard_;
  std::vector<std::string> ids_;
};

TEST_F(NetworkTest, TwoContainersOnOneBridgeReachEachOther) {
  auto a = berth_run({"-d", "--net", "e2e"}, "net-a", {"sleep", "1000"});
  ASSERT_EQ(a.exit_code, 0) << diag(a) << d_->log();
  std::string ip = ip_of("net-a");
  ASSERT_EQ(ip.rfind(subnet_ + ".", 0), 0u) << ip << "\n" << d_->berth({"tasks", "ls"}).out;
  auto b = berth_run({"--rm", "--net", "e2e"}, "net-b",
                     {"sh", "-c", "busybox ip -o -4 addr show eth0 && busybox ping -c 1 -W 3 " + ip});
  EXPECT_EQ(b.exit_code, 0) << diag(b) << d_->log();
  EXPECT_THAT(b.out, HasSubstr("1 packets received"));
  EXPECT_THAT(b.out, HasSubstr("inet " + subnet_ + "."));
  // Listings show the address.
  EXPECT_THAT(d_->berth({"tasks", "ls"}).out, HasSubstr(ip));
  EXPECT_THAT(d_->berth({"containers", "info", "net-a"}).out, HasSubstr(ip));
  EXPECT_THAT(d_->berth({"network", "attachments"}).out, HasSubstr("net-a"));
  EXPECT_EQ(d_->berth({"network", "check", "net-a"}).exit_code, 0);
  // --rm took net-b's network with it; deleting net-a takes the rest.
  ASSERT_EQ(d_->berth({"tasks", "rm", "-f", "net-a"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"containers", "rm", "net-a"}).exit_code, 0);
  EXPECT_EQ(leftovers(), "");
}

TEST_F(NetworkTest, APublishedPortReachesHttpdInTheContainerFromTheHost) {
  int port = 20000 + ::getpid() % 20000;
  auto web = berth_run({"-d", "--net", "e2e", "-p", "127.0.0.1:" + std::to_string(port) + ":80"},
                       "net-web",
                       {"sh", "-c", "busybox mkdir -p /w && echo hello-from-berth > /w/index.html && "
                                    "exec busybox httpd -f -p 80 -h /w"});
  ASSERT_EQ(web.exit_code, 0) << diag(web) << d_->log();
  std::string got;
  for (int i = 0; i < 50 && got.find("hello-from-berth") == std::string::npos; ++i) {
    // bash's /dev/tcp: a plain HTTP/1.0 GET from the host, no client program needed.
    got = run({"/bin/bash", "-c",
               "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                   " && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 2 cat <&3"},
              std::chrono::seconds(5))
              .out;
    if (got.find("hello-from-berth") == std::string::npos)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(got, HasSubstr("hello-from-berth"));
  EXPECT_THAT(d_->berth({"network", "attachments"}).out,
              HasSubstr("127.0.0.1:" + std::to_string(port) + "->80/tcp"));
  ASSERT_EQ(d_->berth({"tasks", "rm", "-f", "net-web"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"containers", "rm", "net-web"}).exit_code, 0);
  EXPECT_THAT(sh("iptables-save -t nat"), Not(HasSubstr("dport " + std::to_string(port))));
  EXPECT_EQ(leftovers(), "");
}

TEST_F(NetworkTest, DnsHostsAndHostnameFilesAreGenerated) {
  auto r = berth_run({"--rm", "--net", "e2e", "--dns", "192.0.2.53", "--dns-search", "corp.example",
                      "--add-host", "db:10.1.2.3", "--hostname", "web1"},
                     "net-dns",
                     {"sh", "-c", "cat /etc/resolv.conf /etc/hosts /etc/hostname; hostname"});
  ASSERT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  EXPECT_THAT(r.out, HasSubstr("nameserver 192.0.2.53\nsearch corp.example\n"));
  EXPECT_THAT(r.out, HasSubstr("10.1.2.3\tdb\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(subnet_ + "\\.[0-9]+\tweb1\n"));
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1\tlocalhost\n"));
  EXPECT_THAT(r.out, ::testing::EndsWith("web1\nweb1\n"));
  EXPECT_EQ(leftovers(), "");
  // Network flags without a network say what is missing.
  auto bad = berth_run({"--rm", "-p", "8080:80"}, "net-nop", {"true"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("-p needs a CNI network: add --net NAME"));
}

TEST_F(NetworkTest, Kill9OfTheDaemonThenRestartAndDeleteLeavesNothing) {
  ASSERT_EQ(berth_run({"-d", "--net", "e2e", "-p", "127.0.0.1:" + std::to_string(21000 + ::getpid() % 20000) + ":80"},
                      "net-k1", {"sleep", "1000"}).exit_code, 0) << d_->log();
  ASSERT_EQ(berth_run({"-d", "--net", "e2e"}, "net-k2", {"sleep", "1000"}).exit_code, 0);
  ASSERT_EQ(berth_run({"-d", "--net", "e2e"}, "net-k3", {"sleep", "1000"}).exit_code, 0);
  ASSERT_NE(leftovers(), "");  // the check below can see what it is looking for
  d_->kill9();
  auto err = d_->start(options_);
  ASSERT_FALSE(err.has_value()) << *err;
  EXPECT_FALSE(ip_of("net-k1").empty()) << "the attachment survives the restart";
  for (const char* id : {"net-k1", "net-k2"}) {
    ASSERT_EQ(d_->berth({"tasks", "rm", "-f", id}).exit_code, 0);
    ASSERT_EQ(d_->berth({"containers", "rm", id}).exit_code, 0);
  }
  // containerd's ctr knows nothing of networks: the daemon tears down when the record goes.
  ASSERT_EQ(d_->berth({"tasks", "rm", "-f", "net-k3"}).exit_code, 0);
  auto rm = d_->ctr({"containers", "rm", "net-k3"});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  std::string left;
  for (int i = 0; i < 100 && !(left = leftovers()).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(left, "");
}

TEST_F(NetworkTest, ABrokenConfigIsAClearErrorAndNothingStarts) {
  std::string events_log = d_->dir() + "/events.log";
  auto events = Process::start({bin("berth"), "-a", d_->address(), "events"}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  test::write_file(conf_dir_ + "/broken.conflist", "{\"cniVersion\":\"1.0.0\",");
  auto r = berth_run({"--rm", "--net", "broken"}, "net-broken", {"true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(conf_dir_ + "/broken.conflist: not valid JSON"));
  write_net("failing", {R"({"type":"bridge","bridge":")" + bridge_ +
                            R"(","ipam":{"type":"host-local","dataDir":")" + d_->dir() +
                            R"(/ipam","ranges":[[{"subnet":")" + subnet_ + R"(.0/24"}]]}})",
                        R"({"type":"host-device","device":"berthnodev0"})"});
  auto f = berth_run({"-d", "--net", "failing"}, "net-failing", {"sleep", "1000"});
  EXPECT_NE(f.exit_code, 0);
  EXPECT_THAT(f.err, HasSubstr("network \"failing\": plugin host-device (ADD)"));
  // The failure is an event too, with the plugin's message.
  std::string seen;
  for (int i = 0; i < 50 && seen.find("/network/error") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t = core::read_file(events_log);
    seen = t.ok() ? *t : "";
  }
  EXPECT_THAT(seen, HasSubstr("/network/error"));
  EXPECT_THAT(seen, HasSubstr("plugin host-device (ADD)"));
  EXPECT_THAT(d_->berth({"containers", "ls", "-q"}).out, Not(HasSubstr("net-failing")));
  EXPECT_THAT(d_->berth({"tasks", "ls"}).out, Not(HasSubstr("net-failing")));
  EXPECT_EQ(leftovers(), "");
  auto ls = d_->berth({"network", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("e2e"));
  EXPECT_THAT(ls.out, HasSubstr("broken"));
  EXPECT_THAT(ls.out, HasSubstr("not valid JSON"));
  auto inspect = d_->berth({"network", "inspect", "e2e"});
  EXPECT_EQ(inspect.exit_code, 0) << diag(inspect);
  EXPECT_THAT(inspect.out, HasSubstr(bridge_));
}

TEST_F(NetworkTest, TheDefaultNetworkIsWrittenOnFirstUse) {
  EXPECT_THAT(d_->berth({"network", "ls"}).out, HasSubstr("(default: written to"));
  auto r = berth_run({"--rm", "--net", "berth"}, "net-default", {"busybox", "ip", "-o", "-4", "addr", "show", "eth0"});
  EXPECT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  EXPECT_THAT(r.out, HasSubstr("inet 10.231."));
  EXPECT_TRUE(std::filesystem::exists(conf_dir_ + "/10-berth.conflist"));
  EXPECT_THAT(sh("ip -o link show master " + bridge_ + "d 2>/dev/null"), Not(HasSubstr("veth")));
}

// containerd's ctr runs the CNI plugins itself (from /etc/cni/net.d, the first file by name) on
// the task's /proc/PID/ns/net: against berthd that works as against containerd.
TEST_F(NetworkTest, CtrRunCniWorksAgainstBerthd) {
  if (::access("/usr/bin/ctr", X_OK) != 0) GTEST_SKIP() << "containerd's ctr is not installed";
  const std::string dir = "/etc/cni/net.d";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    GTEST_SKIP() << dir << " has configs of its own (" << e.path() << "); ctr would pick among them";
  bool made_etc_cni = !std::filesystem::exists("/etc/cni");
  ASSERT_TRUE(core::make_dirs(dir, 0755).ok());
  std::string conf = dir + "/00-berth-e2e.conflist";
  std::filesystem::copy_file(conf_dir_ + "/e2e.conflist", conf, ec);
  ASSERT_FALSE(ec) << ec.message();
  struct Remove {
    std::string conf;
    bool etc;
    ~Remove() {
      std::error_code e;
      std::filesystem::remove(conf, e);
      std::filesystem::remove("/etc/cni/net.d", e);
      if (etc) std::filesystem::remove("/etc/cni", e);
    }
  } remove{conf, made_etc_cni};
  ids_.push_back("net-ctr");
  auto r = d_->ctr({"run", "--rm", "--cni", "--runtime", "io.containerd.berth.v1", kImage, "net-ctr",
                    "busybox", "ip", "-o", "-4", "addr", "show", "eth0"});
  EXPECT_EQ(r.exit_code, 0) << diag(r) << d_->log();
  EXPECT_THAT(r.out, HasSubstr("inet " + subnet_ + "."));
  EXPECT_EQ(leftovers(), "");
}

}  // namespace
}  // namespace berth::e2e

// The manager against the real reference plugins (containernetworking-plugins): bridge,
// host-local, portmap, loopback. As root. Each test owns a bridge name and a 10.231.N.0/24
// subnet, keeps host-local's leases in its temp dir, and removes the bridge on the way out.
#include "core/cni/manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/cni/netns.h"
#include "core/fs.h"
#include "core/process.h"
#include "tests/support/host_network.h"

namespace berth::cni {
namespace {

using ::testing::HasSubstr;

using test::host_sh;
const auto& sh = host_sh;

class CniManager : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    if (::access("/usr/lib/cni/bridge", X_OK) != 0)
      GTEST_SKIP() << "containernetworking-plugins is not installed (scripts/setup.sh installs it)";
    auto d = core::TempDir::create("berth-cni-manager-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    bridge_ = "bt" + std::to_string(::getpid() % 100000);
    guard_.emplace(std::vector<std::string>{bridge_});
    // 10.231.<N> from the pid: parallel runs of this suite do not meet.
    subnet_ = fmt::format("10.231.{}", 100 + ::getpid() % 100);
    ManagerOptions o;
    o.conf_dir = dir_->path() + "/net.d";
    o.root = dir_->path() + "/root";
    o.state = dir_->path() + "/state";
    o.write_default = false;
    o.bin_dirs = {"/usr/lib/cni"};
    ASSERT_TRUE(core::make_dirs(o.conf_dir).ok());
    write_net("test", fmt::format(R"({{"cniVersion":"1.0.0","name":"test","plugins":[
        {{"type":"bridge","bridge":"{}","isGateway":true,"ipMasq":false,
          "ipam":{{"type":"host-local","dataDir":"{}/ipam","ranges":[[{{"subnet":"{}.0/24"}}]]}}}},
        {{"type":"portmap","capabilities":{{"portMappings":true}},"snat":false}}]}})",
                                  bridge_, dir_->path(), subnet_));
    auto m = Manager::open(o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    manager_ = std::move(*m);
  }
  void TearDown() override {
    if (manager_) manager_->collect([](const network::Attachment&) { return true; });
    manager_.reset();
    guard_.reset();
  }
  void write_net(const std::string& name, const std::string& text) {
    ASSERT_TRUE(core::write_file_atomic(dir_->path() + "/net.d/" + name + ".conflist", text).ok());
  }
  std::string in_netns(const network::Attachment& a, const std::string& cmd) {
    return sh("nsenter --net=" + a.netns_path + " " + cmd + " 2>&1");
  }
  std::vector<std::string> leases() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_->path() + "/ipam", ec))
      if (e.path().filename().string().rfind(subnet_, 0) == 0) out.push_back(e.path().string());
    return out;
  }
  std::string veths_on_bridge() { return sh("ip -o link show master " + bridge_ + " 2>/dev/null"); }

  std::optional<core::TempDir> dir_;
  std::string bridge_, subnet_;
  std::unique_ptr<Manager> manager_;
  std::optional<test::HostNetworkGuard> guard_;
};

TEST_F(CniManager, TwoAttachmentsOnOneBridgeReachEachOtherAndDetachLeavesNothing) {
  network::AttachOptions o;
  o.networks = {"test"};
  auto a = manager_->attach("default", "one", o);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  auto b = manager_->attach("default", "two", o);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ(a->ips().size(), 1u);
  EXPECT_EQ(a->ips()[0].rfind(subnet_ + ".", 0), 0u) << a->ips()[0];
  EXPECT_TRUE(is_netns(a->netns_path));
  EXPECT_THAT(in_netns(*a, "ip -o addr show eth0"), HasSubstr(a->ips()[0] + "/24"));
  EXPECT_THAT(in_netns(*a, "ip -o link show lo"), HasSubstr("UP"));  // the loopback network
  std::string ping = in_netns(*a, "busybox ping -c 1 -W 2 " + b->ips()[0]);
  EXPECT_THAT(ping, HasSubstr("1 packets received")) << ping;
  auto hosts = core::read_file(a->hosts_path);
  ASSERT_TRUE(hosts.ok());
  EXPECT_THAT(*hosts, HasSubstr(a->ips()[0] + "\tone\n"));
  // The record, the cache and the lease are on disk as documented.
  EXPECT_TRUE(std::filesystem::exists(dir_->path() + "/root/results/test-" +
                                      Manager::cni_id("default", "one") + "-eth0"));
  EXPECT_EQ(leases().size(), 2u);
  auto listed = manager_->list("default");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_TRUE(manager_->check("default", "one").ok());

  auto again = manager_->attach("default", "one", o);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);

  ASSERT_TRUE(manager_->detach("default", "one").ok());
  ASSERT_TRUE(manager_->detach("default", "two").ok());
  ASSERT_TRUE(manager_->detach("default", "two").ok());  // idempotent
  EXPECT_FALSE(std::filesystem::exists(a->netns_path));
  EXPECT_FALSE(std::filesystem::exists(a->hosts_path));
  EXPECT_TRUE(leases().empty());
  EXPECT_EQ(veths_on_bridge(), "");
  EXPECT_TRUE(std::filesystem::is_empty(dir_->path() + "/root/results"));
  EXPECT_EQ(manager_->get("default", "one").status().code(), Code::kNotFound);
}

TEST_F(CniManager, AFailedAddLeavesNoNamespaceLeaseOrVeth) {
  write_net("broken", fmt::format(R"({{"cniVersion":"1.0.0","name":"broken","plugins":[
      {{"type":"bridge","bridge":"{}","ipam":{{"type":"host-local","dataDir":"{}/ipam",
        "ranges":[[{{"subnet":"{}.0/24"}}]]}}}},
      {{"type":"portmap","capabilities":{{"portMappings":true}}}},
      {{"type":"host-device","device":"berthnodev0"}}]}})",
                                  bridge_, dir_->path(), subnet_));
  network::AttachOptions o;
  o.networks = {"broken"};
  auto a = manager_->attach("default", "fails", o);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("network \"broken\": plugin host-device (ADD)"));
  EXPECT_TRUE(leases().empty());
  EXPECT_EQ(veths_on_bridge(), "");
  EXPECT_TRUE(std::filesystem::is_empty(dir_->path() + "/state/netns"));
  EXPECT_FALSE(std::filesystem::exists(dir_->path() + "/root/attachments/default/fails.json"));

  o.networks = {"nonexistent"};
  auto missing = manager_->attach("default", "fails", o);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("network \"nonexistent\" is not configured"));
}

TEST_F(CniManager, ARestartedManagerTearsDownWhatTheLastOneLeft) {
  network::AttachOptions o;
  o.networks = {"test"};
  o.ports = {{18080, 80, "tcp", "127.0.0.1"}};
  auto a = manager_->attach("ns1", "left", o);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_THAT(sh("iptables-save -t nat"), HasSubstr("18080"));
  // A new manager over the same directories (the daemon after kill -9) finds and removes it.
  ManagerOptions again = manager_->options();
  manager_.reset();
  auto m = Manager::open(again);
  ASSERT_TRUE(m.ok());
  manager_ = std::move(*m);
  auto gone = manager_->collect([](const network::Attachment& x) { return x.id == "left"; });
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_TRUE(gone[0].status.ok()) << gone[0].status.to_string();
  EXPECT_FALSE(std::filesystem::exists(a->netns_path));
  EXPECT_TRUE(leases().empty());
  EXPECT_EQ(veths_on_bridge(), "");
  EXPECT_THAT(sh("iptables-save -t nat"), ::testing::Not(HasSubstr("18080")));
}

}  // namespace
}  // namespace berth::cni

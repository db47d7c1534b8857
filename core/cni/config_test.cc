#include "core/cni/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/cni/invoke.h"
#include "core/fs.h"

namespace berth::cni {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(CniConfig, ParsesAListAndASinglePluginFile) {
  auto list = parse_network(R"({"cniVersion":"1.0.0","name":"n1","plugins":[
      {"type":"bridge","bridge":"b0"},{"type":"portmap","capabilities":{"portMappings":true}}]})",
                            "/x/n1.conflist");
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  EXPECT_EQ(list->name, "n1");
  EXPECT_EQ(list->types(), (std::vector<std::string>{"bridge", "portmap"}));
  auto one = parse_network(R"({"cniVersion":"0.4.0","name":"n2","type":"bridge","bridge":"b1"})",
                           "/x/n2.conf");
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  ASSERT_EQ(one->plugins.size(), 1u);
  EXPECT_EQ(one->plugins[0]["bridge"], "b1");
  EXPECT_FALSE(one->plugins[0].contains("name"));
  EXPECT_EQ(one->document()["name"], "n2");
}

TEST(CniConfig, BadFilesSayWhatIsWrongAndWhere) {
  auto msg = [](std::string_view text) {
    auto r = parse_network(text, "/etc/x.conflist");
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_THAT(msg("{not json"), HasSubstr("/etc/x.conflist: not valid JSON"));
  EXPECT_THAT(msg(R"({"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]})"), HasSubstr("no \"name\""));
  EXPECT_THAT(msg(R"({"cniVersion":"9.9.9","name":"a","plugins":[{"type":"bridge"}]})"),
              HasSubstr("cniVersion \"9.9.9\" is not supported"));
  EXPECT_THAT(msg(R"({"cniVersion":"1.0.0","name":"../a","plugins":[{"type":"bridge"}]})"),
              HasSubstr("network name \"../a\""));
  EXPECT_THAT(msg(R"({"cniVersion":"1.0.0","name":"a","plugins":[]})"), HasSubstr("non-empty array"));
  EXPECT_THAT(msg(R"({"cniVersion":"1.0.0","name":"a","plugins":[{"type":"../../bin/sh"}]})"),
              HasSubstr("plugins[0]: plugin type name"));
  EXPECT_THAT(msg(R"({"cniVersion":"1.0.0","name":"a","plugins":[{"bridge":"x"}]})"),
              HasSubstr("plugins[0] has no \"type\""));
}

TEST(CniConfig, LoadsADirectoryInNameOrderAndExplainsAMissingNetwork) {
  auto dir = core::TempDir::create();
  ASSERT_TRUE(dir.ok());
  auto put = [&](const std::string& f, const std::string& text) {
    ASSERT_TRUE(core::write_file_atomic(dir->path() + "/" + f, text).ok());
  };
  put("20-b.conflist", R"({"cniVersion":"1.0.0","name":"shared","plugins":[{"type":"bridge","bridge":"second"}]})");
  put("10-a.conflist", R"({"cniVersion":"1.0.0","name":"shared","plugins":[{"type":"bridge","bridge":"first"}]})");
  put("30-broken.conflist", "{");
  put("README", "not a config");
  auto files = load_dir(dir->path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_TRUE(files[0].file.ends_with("10-a.conflist"));
  EXPECT_FALSE(files[2].network.ok());
  auto shared = find_network(dir->path(), "shared");
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(shared->plugins[0]["bridge"], "first");
  auto broken = find_network(dir->path(), "30-broken");
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.status().message(), HasSubstr("not valid JSON"));
  auto missing = find_network(dir->path(), "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("network \"nope\" is not configured in"));
  EXPECT_TRUE(load_dir(dir->path() + "/absent").empty());
}

TEST(CniConfig, TheDefaultNetworkIsAValidBridgeList) {
  DefaultNetwork d;
  d.subnet = "10.231.9.0/24";
  d.ipam_dir = "/var/lib/berth/ipam";
  auto n = parse_network(default_network_conflist(d), "");
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(n->name, "berth");
  EXPECT_EQ(n->types(), (std::vector<std::string>{"bridge", "portmap", "firewall", "tuning"}));
  EXPECT_EQ(n->plugins[0]["ipam"]["ranges"][0][0]["subnet"], "10.231.9.0/24");
  EXPECT_EQ(n->plugins[0]["ipam"]["dataDir"], "/var/lib/berth/ipam");
}

// Fake plugins: shell scripts that log what they were asked and answer like CNI plugins.
class CniInvoke : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-cni-invoke-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    log_ = dir_->path() + "/calls.log";
  }
  void plugin(const std::string& name, const std::string& body) {
    std::string path = dir_->path() + "/" + name;
    std::string script = "#!/bin/sh\nLOG=" + log_ +
                         "\nIN=$(cat)\n"
                         "if [ \"$CNI_COMMAND\" = VERSION ]; then echo '{\"cniVersion\":\"1.0.0\","
                         "\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'; exit 0; fi\n"
                         "echo \"" + name + " $CNI_COMMAND $CNI_IFNAME $CNI_CONTAINERID $CNI_ARGS\" >> $LOG\n"
                         "echo \"$IN\" > " + dir_->path() + "/" + name + ".$CNI_COMMAND.stdin\n" +
                         body + "\n";
    ASSERT_TRUE(core::write_file_atomic(path, script, 0755).ok());
  }
  std::string stdin_of(const std::string& name, const std::string& cmd) {
    auto t = core::read_file(dir_->path() + "/" + name + "." + cmd + ".stdin");
    return t.ok() ? *t : "";
  }
  std::string calls() {
    auto t = core::read_file(log_);
    return t.ok() ? *t : "";
  }
  std::optional<core::TempDir> dir_;
  std::string log_;
};

TEST_F(CniInvoke, ChainsResultsAddsInOrderDeletesInReverse) {
  plugin("first", R"(echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}]}')");
  plugin("second", R"(echo "$IN" | sed -n 's/.*"prevResult":\(.*\),"runtimeConfig".*/\1/p')");
  auto net = parse_network(R"({"cniVersion":"1.0.0","name":"chain","plugins":[{"type":"first"},
      {"type":"second","capabilities":{"portMappings":true,"other":true}}]})", "");
  ASSERT_TRUE(net.ok());
  Invoker inv({dir_->path()}, std::chrono::seconds(10));
  RuntimeConf rt{"ns-c1", "/ns", "eth0", {{"IgnoreUnknown", "1"}}, json::object()};
  rt.capability_args["portMappings"] = json::array({{{"hostPort", 8080}, {"containerPort", 80}}});
  auto res = inv.add(*net, rt);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  json second_in = json::parse(stdin_of("second", "ADD"));
  EXPECT_EQ(second_in["name"], "chain");
  EXPECT_EQ(second_in["cniVersion"], "1.0.0");
  EXPECT_EQ(second_in["prevResult"]["ips"][0]["address"], "10.1.0.5/24");
  EXPECT_EQ(second_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
  EXPECT_FALSE(second_in["runtimeConfig"].contains("other"));  // nothing given for it
  EXPECT_FALSE(json::parse(stdin_of("first", "ADD")).contains("runtimeConfig"));
  auto parsed = parse_result(*res, "chain", "eth0");
  ASSERT_EQ(parsed.interfaces.size(), 1u);
  EXPECT_EQ(parsed.interfaces[0].addresses, std::vector<std::string>{"10.1.0.5/24"});

  ASSERT_TRUE(inv.del(*net, rt, *res).ok());
  EXPECT_EQ(json::parse(stdin_of("first", "DEL"))["prevResult"]["ips"][0]["address"], "10.1.0.5/24");
  ASSERT_TRUE(inv.check(*net, rt, *res).ok());
  EXPECT_EQ(calls(),
            "first ADD eth0 ns-c1 IgnoreUnknown=1\nsecond ADD eth0 ns-c1 IgnoreUnknown=1\n"
            "second DEL eth0 ns-c1 IgnoreUnknown=1\nfirst DEL eth0 ns-c1 IgnoreUnknown=1\n"
            "first CHECK eth0 ns-c1 IgnoreUnknown=1\nsecond CHECK eth0 ns-c1 IgnoreUnknown=1\n");
}

TEST_F(CniInvoke, APluginErrorIsShownAsThePluginWroteIt) {
  plugin("bad", R"(echo '{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range is full"}'; exit 1)");
  plugin("crash", "echo 'panic: oops' >&2; exit 2");
  auto net = parse_network(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bad"}]})", "");
  Invoker inv({dir_->path()}, std::chrono::seconds(10));
  RuntimeConf rt{"x", "/ns", "eth0", {}, json::object()};
  auto r = inv.add(*net, rt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "network \"n\": plugin bad (ADD): failed to allocate: range is full (CNI error code 11)");
  auto crash = parse_network(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"crash"}]})", "");
  auto c = inv.add(*crash, rt);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("plugin crash (ADD): exit status 2: panic: oops"));
  auto missing = parse_network(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"nothere"}]})", "");
  auto m = inv.add(*missing, rt);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("CNI plugin \"nothere\" is not in " + dir_->path()));
}

TEST_F(CniInvoke, VersionNegotiationRefusesAVersionThePluginDoesNotSpeak) {
  plugin("old", "exit 0");
  auto net = parse_network(R"({"cniVersion":"1.1.0","name":"n","plugins":[{"type":"old"}]})", "");
  Invoker inv({dir_->path()}, std::chrono::seconds(10));
  auto r = inv.add(*net, {"x", "/ns", "eth0", {}, json::object()});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("CNI plugin old does not speak cniVersion 1.1.0 (it speaks 0.4.0, 1.0.0)"));
  EXPECT_EQ(calls(), "");  // never asked to ADD
}

TEST(CniResult, ReadsOlderResultsToo) {
  json r040 = json::parse(R"({"cniVersion":"0.4.0","interfaces":[{"name":"cni0"},{"name":"veth1"},
      {"name":"eth0","mac":"aa:bb","sandbox":"/n"}],"ips":[{"version":"4","address":"10.2.0.7/16",
      "gateway":"10.2.0.1","interface":2}],"dns":{"nameservers":["10.2.0.53"],"domain":"cluster"}})");
  auto p = parse_result(r040, "net", "eth0");
  ASSERT_EQ(p.interfaces.size(), 1u);
  EXPECT_EQ(p.interfaces[0].name, "eth0");
  EXPECT_EQ(p.interfaces[0].mac, "aa:bb");
  EXPECT_EQ(p.interfaces[0].gateways, std::vector<std::string>{"10.2.0.1"});
  EXPECT_EQ(p.dns.servers, std::vector<std::string>{"10.2.0.53"});
  EXPECT_EQ(p.dns.searches, std::vector<std::string>{"cluster"});
  // An address without an interface belongs to the container's.
  auto q = parse_result(json::parse(R"({"ips":[{"address":"10.3.0.2/24"}]})"), "n", "eth1");
  ASSERT_EQ(q.interfaces.size(), 1u);
  EXPECT_EQ(q.interfaces[0].name, "eth1");
}

}  // namespace
}  // namespace berth::cni

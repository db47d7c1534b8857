#include "core/config.h"

#include <gtest/gtest.h>

namespace berth::core {
namespace {

TEST(Config, DefaultsMatchTheDesign) {
  auto c = parse_config("", "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->root, "/var/lib/berth");
  EXPECT_EQ(c->state, "/run/berth");
  EXPECT_EQ(c->grpc_address, "/run/berth/berth.sock");
  EXPECT_EQ(c->effective_ttrpc_address(), "/run/berth/berth.sock.ttrpc");
}

TEST(Config, DefaultConfigParses) {
  auto c = parse_config(default_config_toml(), "default");
  ASSERT_TRUE(c.ok()) << c.status().message();
}

TEST(Config, ContainerdShapedKeys) {
  auto c = parse_config(R"(
version = 2
root = "/r"
state = "/s"
disabled_plugins = ["io.containerd.snapshotter.v1.native"]
required_plugins = ["io.containerd.metadata.v1.rocksdb"]
[grpc]
  address = "/s/x.sock"
  gid = 5
[ttrpc]
  address = "/s/x.ttrpc"
[debug]
  level = "debug"
  format = "json"
[plugins."io.containerd.gc.v1.scheduler"]
  pause_threshold = 0.05
[proxy_plugins.stargz]
  type = "snapshot"
  address = "/run/stargz.sock"
)",
                        "test.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->root, "/r");
  EXPECT_EQ(c->grpc_gid, 5);
  EXPECT_EQ(c->effective_ttrpc_address(), "/s/x.ttrpc");
  EXPECT_EQ(c->disabled_plugins.size(), 1u);
  EXPECT_EQ(c->log_format, "json");
  ASSERT_EQ(c->plugins.count("io.containerd.gc.v1.scheduler"), 1u);
  EXPECT_EQ(c->proxy_plugins.at("stargz").type, "io.containerd.snapshotter.v1");
}

// Each bad config fails with the file name, the key and the reason in the message.
struct BadCase {
  const char* toml;
  const char* key;
  const char* reason;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.key; }

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, NamesFileKeyAndReason) {
  auto c = parse_config(GetParam().toml, "/etc/berth/bad.toml");
  ASSERT_FALSE(c.ok());
  const auto& m = c.status().message();
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(m.find("/etc/berth/bad.toml"), std::string::npos) << m;
  EXPECT_NE(m.find(GetParam().key), std::string::npos) << m;
  EXPECT_NE(m.find(GetParam().reason), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfig,
    ::testing::Values(
        BadCase{"roott = \"/x\"", "roott", "unknown key"},
        BadCase{"root = 5", "root", "must be a string"},
        BadCase{"root = \"relative\"", "root", "absolute path"},
        BadCase{"version = 1", "version", "not supported"},
        BadCase{"[grpc]\naddres = \"/x\"", "grpc.addres", "unknown key"},
        BadCase{"[grpc]\nuid = \"root\"", "grpc.uid", "must be an integer"},
        BadCase{"[debug]\nlevel = \"loud\"", "debug.level", "loud"},
        BadCase{"disabled_plugins = [\"native\"]", "disabled_plugins", "not a plugin URI"},
        BadCase{"[proxy_plugins.x]\ntype = \"disk\"\naddress = \"/s\"", "proxy_plugins.x.type",
                "not a proxy plugin type"},
        BadCase{"[proxy_plugins.x]\ntype = \"snapshot\"", "proxy_plugins.x.address", "is required"},
        BadCase{"root = \"/x\"\nstate = \"/x\"", "state", "must differ"},
        BadCase{"root = \"/x", "line 1", "column"}));

TEST(TomlConfigReader, DecodesOverDefaultsAndReportsUnknownKeys) {
  auto c = parse_config(R"(
[plugins."io.x.y.v1.z"]
  name = "n"
  count = 3
  flag = true
  list = ["a", "b"]
  delay = "250ms"
  typo = 1
)",
                        "t.toml");
  ASSERT_TRUE(c.ok());
  TomlConfigReader r(&c->plugins.at("io.x.y.v1.z"), "io.x.y.v1.z", "t.toml");
  std::string name = "default";
  std::int64_t count = 0;
  bool flag = false;
  std::vector<std::string> list;
  std::chrono::milliseconds delay{0};
  std::string untouched = "keep";
  ASSERT_TRUE(r.read("name", name).ok());
  ASSERT_TRUE(r.read("count", count).ok());
  ASSERT_TRUE(r.read("flag", flag).ok());
  ASSERT_TRUE(r.read("list", list).ok());
  ASSERT_TRUE(r.read_duration("delay", delay).ok());
  ASSERT_TRUE(r.read("absent", untouched).ok());
  EXPECT_EQ(name, "n");
  EXPECT_EQ(count, 3);
  EXPECT_TRUE(flag);
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(delay.count(), 250);
  EXPECT_EQ(untouched, "keep");
  Status unknown = r.check_unknown_keys();
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("typo"), std::string::npos);
  EXPECT_NE(unknown.message().find("unknown key"), std::string::npos);

  std::int64_t wrong = 0;
  Status st = r.read("name", wrong);
  EXPECT_NE(st.message().find("must be an integer"), std::string::npos);
}

}  // namespace
}  // namespace berth::core

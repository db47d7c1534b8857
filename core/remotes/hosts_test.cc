#include "core/remotes/hosts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"

namespace berth::remotes {
namespace {

class HostsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-hosts-");
    ASSERT_TRUE(d.ok());
    dir = std::make_unique<core::TempDir>(std::move(*d));
  }
  void write(const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(
        std::filesystem::path(dir->path() + "/" + rel).parent_path());
    std::ofstream(dir->path() + "/" + rel) << text;
  }
  std::unique_ptr<core::TempDir> dir;
};

TEST_F(HostsTest, NoConfigurationMeansTheServerItself) {
  auto e = host_endpoints(dir->path(), "reg.example:5000", {});
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->size(), 1u);
  EXPECT_EQ((*e)[0].base, "https://reg.example:5000/v2");
  HostOptions plain;
  plain.plain_http = true;
  EXPECT_EQ((*host_endpoints("", "reg.example:5000", plain))[0].base, "http://reg.example:5000/v2");
  EXPECT_EQ((*host_endpoints("", "registry-1.docker.io", {}))[0].base,
            "https://registry-1.docker.io/v2");
}

// The credentials a pull was given are the registry's: a mirror gets them only when it says so.
TEST_F(HostsTest, MirrorsGetThePullsCredentialsOnlyWhenConfiguredFor) {
  write("reg.example/hosts.toml", R"(
[host."https://plain-mirror.local"]
[host."https://trusted-mirror.local"]
  credentials = true
)");
  HostOptions given;
  given.username = "alice";
  given.password = "secret";
  auto e = host_endpoints(dir->path(), "reg.example", given);
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0].base, "https://plain-mirror.local/v2");
  EXPECT_EQ((*e)[0].options.username, "");
  EXPECT_EQ((*e)[0].options.password, "");
  EXPECT_EQ((*e)[1].options.username, "alice");
  EXPECT_EQ((*e)[2].options.password, "secret");  // the server itself
  write("reg.example/hosts.toml", "[host.\"https://m.local\"]\n  credentials = \"yes\"\n");
  auto bad = host_endpoints(dir->path(), "reg.example", given);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("credentials: expected true or false"), std::string::npos);
}

TEST_F(HostsTest, MirrorsComeFirstInFileOrderWithTheirSettings) {
  write("docker.io/hosts.toml", R"(
server = "https://registry-1.docker.io"
[host."https://zz-mirror.local"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["/etc/c.pem", "/etc/k.pem"]]
[host."http://aa-mirror.local:5000/prefix"]
  capabilities = ["pull"]
  override_path = true
  skip_verify = true
  [host."http://aa-mirror.local:5000/prefix".header]
    x-trace = "1"
)");
  auto e = host_endpoints(dir->path(), "registry-1.docker.io", {});
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->size(), 3u);
  EXPECT_EQ((*e)[0].base, "https://zz-mirror.local/v2");
  EXPECT_TRUE((*e)[0].resolve);
  EXPECT_FALSE((*e)[0].push);
  ASSERT_EQ((*e)[0].options.ca_files.size(), 1u);
  EXPECT_EQ((*e)[0].options.ca_files[0], dir->path() + "/docker.io/ca.pem");
  EXPECT_EQ((*e)[0].options.cert_file, "/etc/c.pem");
  EXPECT_EQ((*e)[0].options.key_file, "/etc/k.pem");
  EXPECT_EQ((*e)[1].base, "http://aa-mirror.local:5000/prefix");
  EXPECT_TRUE((*e)[1].options.plain_http);
  EXPECT_TRUE((*e)[1].options.skip_verify);
  EXPECT_FALSE((*e)[1].resolve);
  EXPECT_EQ((*e)[1].options.headers.at("x-trace"), "1");
  EXPECT_EQ((*e)[2].base, "https://registry-1.docker.io/v2");
  EXPECT_TRUE((*e)[2].push);
}

TEST_F(HostsTest, DefaultDirectoryAndDockerCertFiles) {
  write("_default/hosts.toml", "server = \"http://fallback.local\"\n");
  auto e = host_endpoints(dir->path(), "other.example", {});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e).back().base, "http://fallback.local/v2");
  EXPECT_TRUE((*e).back().options.plain_http);
  write("certs.example/ca.crt", "x");
  write("certs.example/client.cert", "x");
  write("certs.example/client.key", "x");
  auto c = host_endpoints(dir->path(), "certs.example", {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)[0].options.ca_files.at(0), dir->path() + "/certs.example/ca.crt");
  EXPECT_EQ((*c)[0].options.cert_file, dir->path() + "/certs.example/client.cert");
}

TEST_F(HostsTest, BadFilesAreNamed) {
  write("a.example/hosts.toml", "server = [1\n");
  auto bad = host_endpoints(dir->path(), "a.example", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("hosts.toml"), std::string::npos);
  write("b.example/hosts.toml", "[host.\"https://m\"]\n  capabilities = [\"fly\"]\n");
  auto caps = host_endpoints(dir->path(), "b.example", {});
  ASSERT_FALSE(caps.ok());
  EXPECT_NE(caps.status().message().find("fly"), std::string::npos);
  write("c.example/hosts.toml", "server = \"ftp://x\"\n");
  EXPECT_FALSE(host_endpoints(dir->path(), "c.example", {}).ok());
}

}  // namespace
}  // namespace berth::remotes

// berthd end to end: containerd's own ctr and berth against a private daemon.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
  }
  void start(const DaemonOptions& o = {}) {
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
  }
  std::unique_ptr<Daemon> d_;
};

TEST_F(DaemonTest, ContainerdCtrVersionPluginsAndNamespaces) {
  start();
  auto v = d_->ctr({"version"});
  ASSERT_EQ(v.exit_code, 0) << diag(v);
  EXPECT_THAT(v.out, HasSubstr("Server:"));
  EXPECT_THAT(v.out, HasSubstr("UUID:"));

  auto p = d_->ctr({"plugins", "ls"});
  ASSERT_EQ(p.exit_code, 0) << diag(p);
  for (const char* id : {"rocksdb", "version", "namespaces", "introspection", "healthcheck"}) {
    bool found = false;
    std::istringstream lines(p.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.find(std::string(" ") + id + " ") != std::string::npos) {
        found = true;
        EXPECT_THAT(line, HasSubstr("ok")) << line;
      }
    }
    EXPECT_TRUE(found) << id << " missing from:\n" << p.out;
  }

  auto c = d_->ctr({"namespaces", "create", "x", "team=blue"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto ls = d_->ctr({"namespaces", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << diag(ls);
  EXPECT_THAT(ls.out, HasSubstr("x "));
  EXPECT_THAT(ls.out, HasSubstr("team=blue"));
  auto rm = d_->ctr({"namespaces", "rm", "x"});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  auto ls2 = d_->ctr({"namespaces", "ls", "-q"});
  EXPECT_THAT(ls2.out, Not(HasSubstr("x")));
}

TEST_F(DaemonTest, CtrPluginFiltersAndDetail) {
  start();
  auto p = d_->ctr({"plugins", "ls", "type==io.containerd.metadata.v1"});
  ASSERT_EQ(p.exit_code, 0) << diag(p);
  EXPECT_THAT(p.out, HasSubstr("rocksdb"));
  EXPECT_THAT(p.out, Not(HasSubstr("version")));
  auto d = d_->ctr({"plugins", "ls", "-d", "id==rocksdb"});
  ASSERT_EQ(d.exit_code, 0) << diag(d);
  EXPECT_THAT(d.out, HasSubstr(d_->root() + "/io.containerd.metadata.v1.rocksdb/db"));
}

TEST_F(DaemonTest, BerthCliTablesAndJson) {
  start();
  auto v = d_->berth({"--format", "json", "version"});
  ASSERT_EQ(v.exit_code, 0) << diag(v);
  auto vj = json::parse(v.out);
  EXPECT_EQ(vj["server"]["uuid"].get<std::string>().size(), 36u);

  auto p = d_->berth({"plugins", "ls", "--format", "json", "type==io.containerd.grpc.v1"});
  ASSERT_EQ(p.exit_code, 0) << diag(p);
  auto pj = json::parse(p.out);
  ASSERT_GE(pj.size(), 4u);
  for (const auto& plugin : pj) {
    EXPECT_EQ(plugin["type"], "io.containerd.grpc.v1");
    EXPECT_EQ(plugin["status"], "ok");
  }
  auto table = d_->berth({"plugins", "ls"});
  EXPECT_THAT(table.out, HasSubstr("TYPE"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex("io.containerd.metadata.v1 +rocksdb +- +ok"));

  ASSERT_EQ(d_->berth({"namespaces", "create", "web", "a=1", "b=2"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"ns", "label", "web", "a=", "c=3"}).exit_code, 0);
  auto ls = d_->berth({"ns", "ls", "--format", "json"});
  auto lj = json::parse(ls.out);
  ASSERT_EQ(lj.size(), 1u);
  EXPECT_EQ(lj[0]["name"], "web");
  EXPECT_EQ(lj[0]["labels"], (json{{"b", "2"}, {"c", "3"}}));
  auto rm = d_->berth({"ns", "rm", "web", "ghost"});
  EXPECT_EQ(rm.exit_code, 1);
  EXPECT_THAT(rm.out, HasSubstr("web"));
  EXPECT_THAT(rm.err, HasSubstr("namespace \"ghost\" not found"));
}

TEST_F(DaemonTest, InvalidNamespaceNamesAreRejectedClearly) {
  start();
  for (const std::string& bad :
       {std::string("bad name"), std::string("-lead"), std::string("a..b"), std::string(77, 'n')}) {
    auto b = d_->berth({"ns", "create", "--", bad});
    EXPECT_EQ(b.exit_code, 1) << bad;
    EXPECT_THAT(b.err, HasSubstr("identifier")) << bad << diag(b);
    auto c = d_->ctr({"namespaces", "create", "--", bad});
    EXPECT_NE(c.exit_code, 0) << bad;
    EXPECT_THAT(c.err, HasSubstr("invalid argument")) << diag(c);
  }
  auto ls = d_->berth({"ns", "ls", "-q"});
  EXPECT_EQ(ls.out, "");
}

TEST_F(DaemonTest, RestartKeepsNamespacesAndServerUuid) {
  start();
  ASSERT_EQ(d_->berth({"ns", "create", "kept", "x=y"}).exit_code, 0);
  std::string uuid = json::parse(d_->berth({"--format", "json", "version"}).out)["server"]["uuid"];
  EXPECT_EQ(d_->stop(), 0) << d_->log();
  struct stat st {};
  EXPECT_NE(::lstat(d_->address().c_str(), &st), 0) << "socket left behind after SIGTERM";

  start();
  auto ls = d_->berth({"ns", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("kept"));
  EXPECT_THAT(ls.out, HasSubstr("x=y"));
  std::string uuid2 = json::parse(d_->berth({"--format", "json", "version"}).out)["server"]["uuid"];
  EXPECT_EQ(uuid, uuid2);
}

TEST_F(DaemonTest, SecondDaemonOnSameSocketIsRefused) {
  start();
  auto other = Daemon::create();
  DaemonOptions o;
  o.write_paths = true;
  o.config = "[grpc]\n  address = \"" + d_->address() + "\"\n";
  int code = other->start_expect_exit(o);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(other->log(), HasSubstr("already serving \"" + d_->address() + "\""));
  // The first daemon is unharmed.
  EXPECT_EQ(d_->berth({"version"}).exit_code, 0);
}

TEST_F(DaemonTest, SecondDaemonOnSameRootIsRefused) {
  start();
  auto other = Daemon::create();
  DaemonOptions o;
  o.write_paths = false;
  o.config = "version = 2\nroot = \"" + d_->root() + "\"\nstate = \"" + other->state() +
             "\"\nplugin_dir = \"" BERTH_PLUGIN_DIR "\"\n[grpc]\n  address = \"" +
             other->address() + "\"\n";
  EXPECT_EQ(other->start_expect_exit(o), 1);
  EXPECT_THAT(other->log(), HasSubstr("another berthd (pid " + std::to_string(d_->pid()) + ")"));
}

TEST_F(DaemonTest, StaleSocketFromACrashIsReplaced) {
  // A socket file nobody listens on, as a killed daemon leaves behind.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, d_->address().c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  start();
  EXPECT_EQ(d_->berth({"version"}).exit_code, 0);
}

TEST_F(DaemonTest, SocketIsNotWorldAccessible) {
  start();
  struct stat st {};
  ASSERT_EQ(::stat(d_->address().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(DaemonTest, BadConfigFailsNamingFileKeyAndReason) {
  DaemonOptions o;
  o.config = "[grpc]\n  adress = \"/x\"\n";
  EXPECT_EQ(d_->start_expect_exit(o), 1);
  EXPECT_THAT(d_->log(), HasSubstr(d_->config_path()));
  EXPECT_THAT(d_->log(), HasSubstr("grpc.adress"));
  EXPECT_THAT(d_->log(), HasSubstr("unknown key"));
}

TEST_F(DaemonTest, BadPluginConfigFailsStartup) {
  DaemonOptions o;
  o.config = "[plugins.\"io.containerd.metadata.v1.rocksdb\"]\n  cache = 1\n";
  EXPECT_EQ(d_->start_expect_exit(o), 1);
  EXPECT_THAT(d_->log(), HasSubstr("plugins.\\\"io.containerd.metadata.v1.rocksdb\\\".cache"));
  EXPECT_THAT(d_->log(), HasSubstr("unknown key"));
}

TEST_F(DaemonTest, MissingExplicitConfigFileIsAnError) {
  auto r = run({bin("berthd"), "--config", d_->dir() + "/nope.toml"}, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(d_->dir() + "/nope.toml"));
}

TEST_F(DaemonTest, RequiredPluginMissingFailsStartup) {
  DaemonOptions o;
  o.config = "required_plugins = [\"io.containerd.snapshotter.v1.zfs\"]\n";
  EXPECT_EQ(d_->start_expect_exit(o), 1);
  EXPECT_THAT(d_->log(),
              HasSubstr("required plugin io.containerd.snapshotter.v1.zfs is not loaded"));
}

TEST_F(DaemonTest, DisabledPluginIsReportedAsSkipped) {
  DaemonOptions o;
  o.config = "disabled_plugins = [\"io.containerd.grpc.v1.healthcheck\"]\n";
  start(o);
  auto p = d_->ctr({"plugins", "ls", "id==healthcheck"});
  ASSERT_EQ(p.exit_code, 0) << diag(p);
  EXPECT_THAT(p.out, HasSubstr("skip"));
}

TEST_F(DaemonTest, FlagsOverrideConfigAndJsonLogsParse) {
  DaemonOptions o;
  o.extra_args = {"--log-format", "json", "--log-level", "debug"};
  start(o);
  d_->stop();
  std::istringstream lines(d_->log());
  int count = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_TRUE(j.contains("level") && j.contains("msg") && j.contains("time"));
    ++count;
  }
  EXPECT_GT(count, 3);
}

TEST_F(DaemonTest, GrpcHealthReportsServing) {
  start();
  auto channel = grpc::CreateChannel("unix:" + d_->address(), grpc::InsecureChannelCredentials());
  auto stub = ::grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::grpc::health::v1::HealthCheckRequest req;
  ::grpc::health::v1::HealthCheckResponse resp;
  auto st = stub->Check(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.status(), ::grpc::health::v1::HealthCheckResponse::SERVING);
}

// containerd answers Namespaces.Get for a namespace nobody created yet with its name and no
// labels (namespaces come into being on first use); dockerd's start depends on it ("moby").
TEST_F(DaemonTest, NamespacesGetOfANamespaceNotCreatedYetIsEmptyNotAnError) {
  start();
  namespace npb = ::containerd::services::namespaces::v1;
  auto channel = grpc::CreateChannel("unix:" + d_->address(), grpc::InsecureChannelCredentials());
  auto stub = npb::Namespaces::NewStub(channel);
  auto get = [&](const std::string& name, npb::GetNamespaceResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    npb::GetNamespaceRequest req;
    req.set_name(name);
    return stub->Get(&ctx, req, resp);
  };
  npb::GetNamespaceResponse fresh;
  auto st = get("moby", &fresh);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(fresh.namespace_().name(), "moby");
  EXPECT_TRUE(fresh.namespace_().labels().empty());
  // Asking does not create it; a created one keeps answering with its labels.
  auto ls = d_->berth({"ns", "ls", "-q"});
  EXPECT_THAT(ls.out, Not(HasSubstr("moby")));
  ASSERT_EQ(d_->berth({"ns", "create", "web", "team=blue"}).exit_code, 0);
  npb::GetNamespaceResponse web;
  ASSERT_TRUE(get("web", &web).ok());
  EXPECT_EQ(web.namespace_().labels().at("team"), "blue");
  // A name that can never be a namespace is still refused.
  npb::GetNamespaceResponse bad;
  EXPECT_EQ(get("../etc", &bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(DaemonTest, CliSaysWhichSocketItTriedWhenDaemonIsDown) {
  auto r = run({bin("berth"), "-a", d_->dir() + "/absent.sock", "version"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(d_->dir() + "/absent.sock"));
  EXPECT_THAT(r.err, HasSubstr("is berthd running"));
  auto env = run({bin("berth"), "ns", "ls"}, std::chrono::seconds(30),
                 {{"BERTH_ADDRESS", d_->dir() + "/env.sock"}});
  EXPECT_THAT(env.err, HasSubstr(d_->dir() + "/env.sock"));
}

}  // namespace
}  // namespace berth::e2e

// Operator tools end to end (#18): `berth lsns` against util-linux `lsns` on the same host, and its
// CONTAINER column against /proc of a running Berth container. As root (all of /proc/*/ns is only
// readable there).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

constexpr const char* kImage = "example.com/busybox:1";

using NsSet = std::set<std::pair<std::uint64_t, std::string>>;

NsSet ns_set(const std::string& json_text) {
  NsSet out;
  json listed = json::parse(json_text);
  for (const auto& n : listed.at("namespaces"))
    out.insert({n.at("ns").get<std::uint64_t>(), n.at("type").get<std::string>()});
  return out;
}

std::uint64_t ns_inode_of(int pid, const std::string& type) {
  char buf[128];
  std::string link = "/proc/" + std::to_string(pid) + "/ns/" + type;
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  std::string v(buf, static_cast<std::size_t>(n));
  return std::stoull(v.substr(v.find('[') + 1));
}

class OperatorToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "reading every process's namespaces needs root";
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
    for (const auto& id : ids_) {
      d_->berth({"tasks", "rm", "-f", id});
      d_->berth({"containers", "rm", id});
    }
    d_->stop();
    d_.reset();
  }

  int run_detached(const std::string& id) {
    ids_.push_back(id);
    auto r = d_->berth({"run", "-d", kImage, id, "sleep", "1000"});
    EXPECT_EQ(r.exit_code, 0) << diag(r);
    auto info = d_->berth({"--format", "json", "tasks", "ls"});
    for (const auto& t : json::parse(info.out))
      if (t.value("id", "") == id) return t.value("pid", 0);
    ADD_FAILURE() << "task " << id << " not listed: " << info.out;
    return 0;
  }

  std::unique_ptr<Daemon> d_;
  std::vector<std::string> ids_;
};

TEST_F(OperatorToolsTest, LsnsListsTheSameNamespacesAsUtilLinux) {
  if (::access("/usr/bin/lsns", X_OK) != 0) GTEST_SKIP() << "util-linux lsns is missing";
  ASSERT_NE(run_detached("lsns1"), 0);
  // Processes come and go between the two walks (this test's own helpers among them): compare
  // until two consecutive snapshots agree, a few times at most.
  NsSet ours, theirs;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto u = run({"lsns", "-J", "--list"});  // flat, as berth prints it
    ASSERT_EQ(u.exit_code, 0) << diag(u);
    auto b = d_->berth({"--format", "json", "lsns"});
    ASSERT_EQ(b.exit_code, 0) << diag(b);
    ours = ns_set(b.out);
    theirs = ns_set(u.out);
    if (ours == theirs) break;
  }
  EXPECT_EQ(ours, theirs);
  // The keys lsns -J has, plus container.
  auto b = d_->berth({"--format", "json", "lsns", "-t", "net"});
  auto first = json::parse(b.out).at("namespaces").at(0);
  for (const char* key : {"ns", "type", "nprocs", "pid", "user", "command", "container"})
    EXPECT_TRUE(first.contains(key)) << key << " missing in " << first.dump();
}

TEST_F(OperatorToolsTest, LsnsNamesTheContainerThatOwnsANamespace) {
  int pid = run_detached("lsns2");
  ASSERT_NE(pid, 0);
  auto r = d_->berth({"--format", "json", "lsns", "--container", "lsns2"});
  ASSERT_EQ(r.exit_code, 0) << diag(r);
  std::map<std::string, std::uint64_t> got;
  json listed = json::parse(r.out);
  for (const auto& n : listed.at("namespaces")) {
    EXPECT_EQ(n.at("container"), "default/lsns2");
    got[n.at("type").get<std::string>()] = n.at("ns").get<std::uint64_t>();
  }
  // berth run's defaults: its own mnt, pid, ipc, uts and net namespaces.
  for (const char* type : {"mnt", "pid", "ipc", "uts", "net"}) {
    ASSERT_TRUE(got.count(type)) << type << " not listed: " << r.out;
    EXPECT_EQ(got[type], ns_inode_of(pid, type)) << type;
  }
  // The host's are not the container's.
  EXPECT_FALSE(got.count("user")) << r.out;
  auto table = d_->berth({"lsns", "-t", "pid", "-o", "NS,PID,CONTAINER"});
  ASSERT_EQ(table.exit_code, 0) << diag(table);
  EXPECT_THAT(table.out, HasSubstr(std::to_string(got["pid"])));
  EXPECT_THAT(table.out, HasSubstr("default/lsns2"));
  EXPECT_THAT(table.out, Not(HasSubstr("COMMAND")));
}

TEST_F(OperatorToolsTest, LsnsRejectsBadArgumentsByName) {
  auto t = d_->berth({"lsns", "-t", "bogus"});
  EXPECT_NE(t.exit_code, 0);
  EXPECT_THAT(t.err, HasSubstr("--type bogus"));
  auto o = d_->berth({"lsns", "-o", "NS,WAT"});
  EXPECT_NE(o.exit_code, 0);
  EXPECT_THAT(o.err, HasSubstr("\"WAT\""));
  auto c = d_->berth({"lsns", "--container", "nope"});
  EXPECT_NE(c.exit_code, 0);
  EXPECT_THAT(c.err, HasSubstr("\"nope\""));
}

TEST_F(OperatorToolsTest, LsnsWorksWithoutTheDaemon) {
  d_->stop();
  auto r = d_->berth({"lsns", "-t", "mnt"});
  EXPECT_EQ(r.exit_code, 0) << diag(r);
  EXPECT_THAT(r.out, HasSubstr("mnt"));
  d_->start();
}

}  // namespace
}  // namespace berth::e2e

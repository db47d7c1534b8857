// Containers end to end: containerd's ctr and berth create, list, inspect, label and remove
// container records in berthd; the record holds its snapshot (key = id) and the generated spec
// carries the options; bad input is refused clearly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs.h"

#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class ContainersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    auto err = d_->start();
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d_->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar("example.com/busybox:1"));
    auto imp = d_->berth({"images", "import", "-q", tar});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  }
  json snapshots() {
    auto r = d_->berth({"--format", "json", "snapshots", "ls"});
    EXPECT_EQ(r.exit_code, 0) << diag(r);
    return r.exit_code == 0 ? json::parse(r.out) : json::array();
  }
  bool has_snapshot(const std::string& key) {
    for (const auto& s : snapshots()) {
      if (s["name"] == key || s.value("key", "") == key) return true;
    }
    return false;
  }
  std::unique_ptr<Daemon> d_;
};

TEST_F(ContainersTest, CtrCreateLsInfoLabelRm) {
  // ctr events shows the topics as they happen.
  std::string events_log = d_->dir() + "/events.log";
  auto events = Process::start({"/usr/bin/ctr", "-a", d_->address(), "events"}, events_log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto c = d_->ctr({"containers", "create", "example.com/busybox:1", "c1", "echo", "hi"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto ls = d_->ctr({"containers", "ls"});
  EXPECT_THAT(ls.out, ::testing::ContainsRegex("c1 +example.com/busybox:1 +io.containerd.runc.v2"));
  auto info = d_->ctr({"containers", "info", "c1"});
  ASSERT_EQ(info.exit_code, 0) << diag(info);
  auto j = json::parse(info.out);
  EXPECT_EQ(j["SnapshotKey"], "c1");
  EXPECT_EQ(j["Spec"]["process"]["args"], json({"echo", "hi"}));
  ASSERT_EQ(d_->ctr({"containers", "label", "c1", "team=blue"}).exit_code, 0);
  // berth sees the same record.
  auto bi = d_->berth({"containers", "info", "c1"});
  ASSERT_EQ(bi.exit_code, 0) << diag(bi);
  auto bj = json::parse(bi.out);
  EXPECT_EQ(bj["labels"]["team"], "blue");
  EXPECT_EQ(bj["spec"]["process"]["args"][1], "hi");
  EXPECT_TRUE(has_snapshot("c1"));
  auto rm = d_->ctr({"containers", "rm", "c1"});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  EXPECT_THAT(d_->ctr({"containers", "ls", "-q"}).out, ::testing::Not(HasSubstr("c1")));
  EXPECT_FALSE(has_snapshot("c1"));
  std::string seen;
  for (int i = 0; i < 50 && seen.find("/containers/delete") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = core::read_file(events_log);
    seen = r.ok() ? *r : "";
  }
  auto create = seen.find("/containers/create");
  auto update = seen.find("/containers/update");
  auto del = seen.find("/containers/delete");
  EXPECT_NE(create, std::string::npos) << seen;
  EXPECT_NE(update, std::string::npos) << seen;
  EXPECT_NE(del, std::string::npos) << seen;
  EXPECT_LT(create, update);
  EXPECT_LT(update, del);
}

TEST_F(ContainersTest, BerthCreateGeneratesTheSpecFromImageAndOptions) {
  auto c = d_->berth({"containers", "create", "--env", "A=B", "--memory-limit", "64m", "--cpus", "0.5",
                      "--label", "x=y", "--cap-drop", "NET_RAW", "--user", "1000:1000",
                      "--mount", "type=bind,src=/etc,dst=/host-etc,options=rbind:ro",
                      "example.com/busybox:1", "c2", "sh", "-c", "echo $A"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto info = d_->ctr({"containers", "info", "c2"});
  ASSERT_EQ(info.exit_code, 0) << diag(info);
  auto spec = json::parse(info.out)["Spec"];
  EXPECT_EQ(spec["process"]["args"], json({"sh", "-c", "echo $A"}));
  EXPECT_THAT(spec["process"]["env"].dump(), HasSubstr("A=B"));
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);
  EXPECT_EQ(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
  EXPECT_EQ(spec["linux"]["resources"]["cpu"]["quota"], 50000);
  EXPECT_EQ(spec["linux"]["cgroupsPath"], "/default/c2");
  EXPECT_EQ(spec["hostname"], "c2");
  EXPECT_THAT(spec["process"]["capabilities"]["bounding"].dump(), ::testing::Not(HasSubstr("CAP_NET_RAW")));
  EXPECT_THAT(spec["mounts"].dump(), HasSubstr("/host-etc"));
  auto ls = d_->berth({"--format", "json", "containers", "ls", "labels.x==y"});
  ASSERT_EQ(ls.exit_code, 0) << diag(ls);
  ASSERT_EQ(json::parse(ls.out).size(), 1u);
  ASSERT_EQ(d_->berth({"containers", "label", "c2", "x=", "z=1"}).exit_code, 0);
  auto after = json::parse(d_->berth({"containers", "info", "c2"}).out);
  EXPECT_FALSE(after["labels"].contains("x"));
  EXPECT_EQ(after["labels"]["z"], "1");
  EXPECT_TRUE(has_snapshot("c2"));
  ASSERT_EQ(d_->berth({"containers", "rm", "c2"}).exit_code, 0);
  EXPECT_FALSE(has_snapshot("c2"));
}

TEST_F(ContainersTest, BadInputIsRefusedClearly) {
  auto bad = d_->berth({"containers", "create", "example.com/busybox:1", "bad/id", "sh"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("container id"));
  ASSERT_EQ(d_->berth({"containers", "create", "example.com/busybox:1", "dup", "sh"}).exit_code, 0);
  auto dup = d_->ctr({"containers", "create", "example.com/busybox:1", "dup", "sh"});
  EXPECT_NE(dup.exit_code, 0);
  EXPECT_THAT(dup.err, HasSubstr("already exists"));
  auto noimg = d_->berth({"containers", "create", "example.com/none:1", "x1", "sh"});
  EXPECT_NE(noimg.exit_code, 0);
  EXPECT_THAT(noimg.err, HasSubstr("example.com/none:1"));
  EXPECT_FALSE(has_snapshot("x1"));
  auto badmem = d_->berth({"containers", "create", "--memory-limit", "lots", "example.com/busybox:1", "x2", "sh"});
  EXPECT_THAT(badmem.err, HasSubstr("lots"));
  auto gone = d_->berth({"containers", "rm", "nope"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("container \"nope\""));
  auto upd = d_->ctr({"containers", "info", "nope"});
  EXPECT_NE(upd.exit_code, 0);
}

}  // namespace
}  // namespace berth::e2e

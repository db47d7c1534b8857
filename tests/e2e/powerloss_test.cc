// What berthd acknowledges survives a power loss: berthd runs with a preload that records what it
// writes and what it syncs (tests/e2e/powerloss_preload.cc); after a series of acknowledged
// requests it is killed, and everything a power loss would have taken is taken from the disk
// (tests/e2e/powerloss.h: unsynced data truncated, directory operations whose directory was
// never fsynced undone). A fresh berthd must then find every image, container, lease, label and
// blob it acknowledged, and no image may point at missing content.
#include "tests/e2e/powerloss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;

TEST(PowerLossTest, EverythingAcknowledgedSurvives) {
  if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
  auto d = Daemon::create();
  ASSERT_TRUE(d);
  std::string log = d->dir() + "/powerloss.log";
  std::string stash = d->dir() + "/stash";
  std::filesystem::create_directories(stash);
  std::filesystem::create_directories(d->root());
  DaemonOptions o;
  o.env = {{"LD_PRELOAD", BERTH_POWERLOSS_PRELOAD},
           {"BERTH_POWERLOSS_ROOT", d->root()},
           {"BERTH_POWERLOSS_LOG", log},
           {"BERTH_POWERLOSS_STASH", stash}};
  auto err = d->start(o);
  ASSERT_FALSE(err.has_value()) << *err;
  // The daemon has been up a while: what its start made is on the disk (a journal commit).
  std::ofstream(log, std::ios::app) << "A\n";

  std::string tar = d->dir() + "/busybox.tar";
  test::write_file(tar, test::busybox_image_tar("example.com/busybox:1"));
  auto imp = d->berth({"images", "import", tar});
  ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  auto c = d->berth({"containers", "create", "example.com/busybox:1", "c1", "true"});
  ASSERT_EQ(c.exit_code, 0) << diag(c);
  auto lease = d->berth({"leases", "create", "--id", "kept"});
  ASSERT_EQ(lease.exit_code, 0) << diag(lease);
  std::string blob = "acknowledged bytes\n";
  std::string digest = core::Sha256::digest_of(blob);
  test::write_file(d->dir() + "/blob", blob);
  auto ingest =
      d->berth({"content", "ingest", "--expected-digest", digest, "kept-blob"}, d->dir() + "/blob");
  ASSERT_EQ(ingest.exit_code, 0) << diag(ingest);
  auto label = d->berth({"content", "label", digest, "containerd.io/gc.root=now", "team=a"});
  ASSERT_EQ(label.exit_code, 0) << diag(label);

  d->kill9();
  auto lost = lose_power(log);
  ASSERT_TRUE(lost.ok()) << lost.status().message();
  std::cerr << "power loss: " << lost->truncated << " files cut back, " << lost->undone
            << " operations undone, " << lost->unrecoverable << " unrecoverable\n";
  EXPECT_GT(lost->truncated + lost->undone, 0) << "nothing was unsynced: the test shows nothing";
  EXPECT_EQ(lost->unrecoverable, 0);

  err = d->start();
  ASSERT_FALSE(err.has_value()) << *err;
  auto images = d->berth({"images", "ls", "-q"});
  EXPECT_THAT(images.out, HasSubstr("example.com/busybox:1")) << diag(images);
  auto check = d->berth({"images", "check"});
  EXPECT_EQ(check.exit_code, 0) << diag(check);
  EXPECT_THAT(check.out, ::testing::Not(HasSubstr("incomplete"))) << check.out;
  auto info = d->berth({"containers", "info", "c1"});
  EXPECT_EQ(info.exit_code, 0) << diag(info);
  auto snaps = d->berth({"snapshots", "info", "c1"});
  EXPECT_EQ(snaps.exit_code, 0) << diag(snaps);
  EXPECT_THAT(d->berth({"leases", "ls", "-q"}).out, HasSubstr("kept"));
  auto got = d->berth({"content", "get", digest});
  EXPECT_EQ(got.exit_code, 0) << diag(got);
  EXPECT_EQ(got.out, blob);
  auto ls = d->berth({"content", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("team=a")) << ls.out;
  // And the image still runs off what is there: every blob it names is readable.
  auto inspect = d->berth({"--format", "json", "images", "check"});
  EXPECT_EQ(inspect.exit_code, 0) << diag(inspect);
}

}  // namespace
}  // namespace berth::e2e

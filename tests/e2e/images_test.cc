// Images end to end: an OCI image built offline (umoci, skopeo, the host's busybox-static) is
// imported into berthd by containerd's ctr, unpacked through Diff.Apply into snapshots, mounted,
// exported (and read back by umoci and skopeo), and removed with its content collected.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/harness.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class ImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    auto err = d_->start();
    ASSERT_FALSE(err.has_value()) << *err;
    // A two-layer image: busybox, then a layer that adds a file and deletes another.
    layout_ = d_->dir() + "/layout";
    auto sh = [&](const std::string& cmd) {
      auto r = run({"sh", "-c", cmd}, std::chrono::minutes(2));
      ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << diag(r);
    };
    sh("umoci init --layout " + layout_ + " && umoci new --image " + layout_ + ":latest");
    sh("umoci insert --image " + layout_ + ":latest /bin/busybox /bin/busybox");
    sh("echo doomed > " + d_->dir() + "/doomed && umoci insert --image " + layout_ + ":latest " +
       d_->dir() + "/doomed /etc/doomed");
    sh("echo hello > " + d_->dir() + "/hello && umoci insert --image " + layout_ + ":latest " +
       d_->dir() + "/hello /etc/hello && umoci insert --image " + layout_ +
       ":latest --whiteout /etc/doomed");
    archive_ = d_->dir() + "/image.tar";
    sh("skopeo copy oci:" + layout_ + ":latest oci-archive:" + archive_ +
       ":docker.io/library/test:1");
  }
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
  }
  std::unique_ptr<Daemon> d_;
  std::string layout_, archive_;
  std::vector<std::string> mounts_;
};

TEST_F(ImagesTest, CtrImportMountExportRemove) {
  auto imp = d_->ctr({"images", "import", archive_});
  ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  auto ls = d_->ctr({"images", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << diag(ls);
  EXPECT_THAT(ls.out, HasSubstr("docker.io/library/test:1"));
  EXPECT_THAT(ls.out, HasSubstr("linux/amd64"));
  // Unpacked: one committed snapshot per layer, named by chain ID.
  auto snaps = d_->ctr({"snapshots", "ls"});
  EXPECT_EQ(std::count(snaps.out.begin(), snaps.out.end(), '\n'), 5)
      << snaps.out;  // header + 4 layers

  std::string mnt = d_->dir() + "/mnt";
  fs::create_directories(mnt);
  auto m = d_->ctr({"images", "mount", "docker.io/library/test:1", mnt});
  ASSERT_EQ(m.exit_code, 0) << diag(m);
  mounts_.push_back(mnt);
  EXPECT_TRUE(fs::exists(mnt + "/bin/busybox"));
  std::string hello;
  std::getline(std::ifstream(mnt + "/etc/hello"), hello);
  EXPECT_EQ(hello, "hello");
  EXPECT_FALSE(fs::exists(mnt + "/etc/doomed")) << "the whiteout of a later layer must hide it";
  auto run_bb = run({"chroot", mnt, "/bin/busybox", "echo", "inside"});
  EXPECT_EQ(run_bb.out, "inside\n") << diag(run_bb);
  auto um = d_->ctr({"images", "unmount", mnt});
  ASSERT_EQ(um.exit_code, 0) << diag(um);
  mounts_.clear();

  std::string out = d_->dir() + "/export.tar";
  auto ex = d_->ctr({"images", "export", out, "docker.io/library/test:1"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  auto inspect = run({"skopeo", "inspect", "oci-archive:" + out});
  ASSERT_EQ(inspect.exit_code, 0) << diag(inspect);
  EXPECT_THAT(inspect.out, HasSubstr("\"Layers\""));
  fs::create_directories(d_->dir() + "/re");
  ASSERT_EQ(run({"tar", "xf", out, "-C", d_->dir() + "/re"}).exit_code, 0);
  auto umoci = run({"umoci", "ls", "--layout", d_->dir() + "/re"});
  ASSERT_EQ(umoci.exit_code, 0) << diag(umoci);

  // berth's images commands over the same records.
  auto bls = d_->berth({"images", "ls"});
  ASSERT_EQ(bls.exit_code, 0) << diag(bls);
  EXPECT_THAT(bls.out, ::testing::ContainsRegex("docker.io/library/test:1 +manifest +sha256:"));
  ASSERT_EQ(d_->berth({"images", "tag", "docker.io/library/test:1", "local/test:2"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"images", "label", "local/test:2", "team=blue"}).exit_code, 0);
  auto insp = d_->berth({"images", "inspect", "local/test:2"});
  ASSERT_EQ(insp.exit_code, 0) << diag(insp);
  EXPECT_THAT(insp.out, HasSubstr("\"team\": \"blue\""));
  EXPECT_THAT(insp.out, HasSubstr("application/vnd.oci.image.manifest.v1+json"));
  auto two = d_->berth({"images", "ls", "-q"});
  EXPECT_EQ(two.out, "docker.io/library/test:1\nlocal/test:2\n");
  ASSERT_EQ(d_->berth({"images", "rm", "local/test:2"}).exit_code, 0);
  auto missing = d_->berth({"images", "inspect", "local/test:2"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("image \"local/test:2\" not found"));

  auto rm = d_->ctr({"images", "rm", "--sync", "docker.io/library/test:1"});
  ASSERT_EQ(rm.exit_code, 0) << diag(rm);
  EXPECT_THAT(d_->ctr({"images", "ls", "-q"}).out, Not(HasSubstr("test:1")));
  // Nothing references the blobs or snapshots any more: the sync delete collected them.
  EXPECT_EQ(d_->ctr({"content", "ls", "-q"}).out, "");
  EXPECT_EQ(d_->ctr({"snapshots", "ls", "-q"}).out.find("sha256:"), std::string::npos);
}

TEST_F(ImagesTest, ImportRootfsFromDirectoryAndTarball) {
  std::string rootfs = d_->dir() + "/rootfs";
  fs::create_directories(rootfs + "/bin");
  fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  ASSERT_EQ(run({"chroot", rootfs, "/bin/busybox", "--install", "-s", "/bin"}).exit_code, 0);
  auto dir = d_->berth(
      {"images", "import-rootfs", "--cmd", "/bin/sh", rootfs, "docker.io/library/bb:dir"});
  ASSERT_EQ(dir.exit_code, 0) << diag(dir);
  ASSERT_EQ(run({"tar", "-C", rootfs, "-czf", d_->dir() + "/rootfs.tgz", "."}).exit_code, 0);
  auto tgz = d_->berth({"images", "import-rootfs", d_->dir() + "/rootfs.tgz", "bb:tar"});
  ASSERT_EQ(tgz.exit_code, 0) << diag(tgz);
  auto again = d_->berth({"images", "import-rootfs", rootfs, "docker.io/library/bb:dir"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  for (std::string name : {"docker.io/library/bb:dir", "bb:tar"}) {
    std::string mnt = d_->dir() + "/m-" + std::to_string(mounts_.size());
    fs::create_directories(mnt);
    auto m = d_->ctr({"images", "mount", name, mnt});
    ASSERT_EQ(m.exit_code, 0) << diag(m);
    mounts_.push_back(mnt);
    auto r = run({"chroot", mnt, "/bin/sh", "-c", "echo ok from $0"});
    EXPECT_EQ(r.out, "ok from /bin/sh\n") << name << diag(r);
    ASSERT_EQ(d_->ctr({"images", "unmount", mnt}).exit_code, 0);
    mounts_.pop_back();
  }
  // Nothing is left unreferenced once the import's lease is gone.
  ASSERT_EQ(d_->berth({"leases", "create", "--id", "t"}).exit_code, 0);
  ASSERT_EQ(d_->berth({"leases", "rm", "--sync", "t"}).exit_code, 0);
  EXPECT_THAT(d_->berth({"images", "ls", "-q"}).out, HasSubstr("bb:tar"));
  auto mnt2 = d_->dir() + "/after-gc";
  fs::create_directories(mnt2);
  ASSERT_EQ(d_->ctr({"images", "mount", "bb:tar", mnt2}).exit_code, 0);
  mounts_.push_back(mnt2);
  EXPECT_TRUE(fs::exists(mnt2 + "/bin/busybox"));
}

TEST_F(ImagesTest, BerthExportIsReadableByUmociSkopeoAndCtr) {
  auto imp = d_->ctr({"images", "import", archive_});
  ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  std::string out = d_->dir() + "/berth-export.tar";
  auto ex = d_->berth({"images", "export", out, "docker.io/library/test:1"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  auto oci = run({"skopeo", "inspect", "oci-archive:" + out});
  ASSERT_EQ(oci.exit_code, 0) << diag(oci);
  EXPECT_THAT(oci.out, HasSubstr("\"Layers\""));
  auto docker = run({"skopeo", "inspect", "docker-archive:" + out});
  ASSERT_EQ(docker.exit_code, 0) << "manifest.json must make it a docker-archive too\n"
                                 << diag(docker);
  fs::create_directories(d_->dir() + "/x");
  ASSERT_EQ(run({"tar", "xf", out, "-C", d_->dir() + "/x"}).exit_code, 0);
  auto umoci = run({"umoci", "ls", "--layout", d_->dir() + "/x"});
  ASSERT_EQ(umoci.exit_code, 0) << diag(umoci);
  EXPECT_THAT(umoci.out, HasSubstr("1"));
  // Round trip into another namespace through containerd's ctr.
  auto back = d_->ctr({"-n", "other", "images", "import", out});
  ASSERT_EQ(back.exit_code, 0) << diag(back);
  std::string mnt = d_->dir() + "/rt";
  fs::create_directories(mnt);
  ASSERT_EQ(d_->ctr({"-n", "other", "images", "mount", "docker.io/library/test:1", mnt}).exit_code,
            0);
  mounts_.push_back(mnt);
  EXPECT_TRUE(fs::exists(mnt + "/etc/hello"));
  EXPECT_FALSE(fs::exists(mnt + "/etc/doomed"));
  auto missing = d_->berth({"images", "export", d_->dir() + "/no.tar", "ghost:1"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("image \"ghost:1\" not found"));
}

}  // namespace
}  // namespace berth::e2e

// Client-side pull through the standard API: containerd's ctr pulls an image from a real registry
// (docker-registry on 127.0.0.1) into berthd, writing through Content, Diff, Snapshots and Images;
// the pulled image then runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "tests/e2e/registry.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;

// A registry holding library/busybox:1 and a fresh daemon.
class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking and running need root";
    std::string why;
    registry = Registry::start(&why);
    ASSERT_TRUE(registry) << why;
    d = Daemon::create();
    ASSERT_TRUE(d);
    auto err = d->start();
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar("example.com/busybox:1"));
    auto push = registry->push_oci_archive(tar, "library/busybox:1");
    ASSERT_EQ(push.exit_code, 0) << diag(push);
  }
  std::unique_ptr<Registry> registry;
  std::unique_ptr<Daemon> d;
};

TEST_F(PullTest, CtrPullsFromARegistryIntoBerthdAndTheImageRuns) {
  std::string ref = registry->host() + "/library/busybox:1";
  auto pull = d->ctr({"images", "pull", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << diag(pull) << d->log();
  EXPECT_THAT(d->berth({"images", "ls", "-q"}).out, HasSubstr(ref));
  auto check = d->berth({"images", "check"});
  EXPECT_EQ(check.exit_code, 0) << diag(check);
  EXPECT_THAT(check.out, ::testing::Not(HasSubstr("incomplete")));
  auto ran = d->ctr({"run", "--rm", "--runtime", "io.containerd.berth.v1", ref, "pulled", "echo",
                     "pulled and ran"});
  EXPECT_EQ(ran.exit_code, 0) << diag(ran) << d->log();
  EXPECT_EQ(ran.out, "pulled and ran\n");
  d->stop();
  auto layout = oci::cgroups::probe();
  if (layout.ok()) {
    for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + "/default").c_str());
  }
}

TEST_F(PullTest, BerthContentFetchBlobFromARegistry) {
  auto raw = run({"skopeo", "inspect", "--raw", "--tls-verify=false",
                  "docker://" + registry->host() + "/library/busybox:1"});
  ASSERT_EQ(raw.exit_code, 0) << diag(raw);
  auto manifest = nlohmann::json::parse(raw.out);
  std::string config = manifest["config"]["digest"], layer = manifest["layers"][0]["digest"];

  std::string remote = registry->host() + "/library/busybox";
  auto fetch = d->berth({"content", "fetch-blob", "--plain-http", "--label",
                         "containerd.io/gc.root=now", remote, config, layer});
  ASSERT_EQ(fetch.exit_code, 0) << diag(fetch);
  for (const auto& digest : {config, layer}) {
    auto get = d->berth({"content", "get", digest});
    ASSERT_EQ(get.exit_code, 0) << diag(get);
    EXPECT_EQ(core::Sha256::digest_of(get.out), digest);
  }
  // Clear errors, nothing stored.
  std::string missing = "sha256:" + std::string(64, 'a');
  auto nf = d->berth({"content", "fetch-blob", "--plain-http", remote, missing});
  EXPECT_NE(nf.exit_code, 0);
  EXPECT_THAT(nf.err, HasSubstr("not found"));
  EXPECT_NE(d->berth({"content", "get", missing}).exit_code, 0);
  auto tls = d->berth({"content", "fetch-blob", remote, layer});  // the registry speaks plain HTTP
  EXPECT_NE(tls.exit_code, 0);
  EXPECT_THAT(tls.err, HasSubstr(registry->host().substr(0, registry->host().find(':'))));
  auto bad = d->berth({"content", "fetch-blob", "--plain-http", remote, "sha256:nothex"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("not a sha256 digest"));
}

}  // namespace
}  // namespace berth::e2e

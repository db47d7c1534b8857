// Distribution end to end: `berth images pull|push` through berthd's transfer service against a
// real registry (docker-registry on 127.0.0.1): OCI, Docker schema 2 and multi-arch images, TLS
// with a private CA (flag and certs.d/hosts.toml), basic and bearer-token auth, a registry that
// cuts downloads or dies (retry, resume), corrupted blobs, concurrent pulls of one image, and
// pushes checked by skopeo.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <random>

#include "core/digest.h"
#include "core/fs.h"
#include "core/oci/cgroups.h"
#include "tests/e2e/registry.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

// Fast retries so failure tests take seconds.
constexpr const char* kTransferConfig =
    "[plugins.\"io.containerd.grpc.v1.transfer\"]\n  attempts = 4\n  backoff = \"50ms\"\n";

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    auto v = gen();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

// busybox plus a second, uncompressed layer of `mib` MiB of random data (/data/blob).
std::string two_layer_image_tar(const std::string& name, std::size_t mib, unsigned seed) {
  test::TarBuilder t;
  t.dir("data").file("data/blob", random_bytes(mib << 20, seed));
  test::Layout layout;
  layout.name(
      layout.manifest(test::host_arch(), {test::make_layer(test::busybox_rootfs_tar(), "gzip"),
                                          test::make_layer(t.finish())}),
      name);
  return layout.tar();
}

// The manifest (or index) the registry holds for `ref`, as its bytes.
std::string skopeo_raw_text(const Registry& r, const std::string& ref) {
  std::vector<std::string> argv = {"skopeo", "inspect", "--raw"};
  for (auto f : r.skopeo_flags(false)) argv.push_back("--" + f.substr(6));  // --src-x -> --x
  argv.push_back("docker://" + ref);
  auto out = run(argv);
  EXPECT_EQ(out.exit_code, 0) << diag(out);
  return out.out;
}
nlohmann::json skopeo_raw(const Registry& r, const std::string& ref) {
  return nlohmann::json::parse(skopeo_raw_text(r, ref), nullptr, false);
}

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
  }
  void TearDown() override {
    if (d) d->stop();
    auto layout = oci::cgroups::probe();
    if (layout.ok()) {
      for (const auto& m : layout->mounts) ::rmdir((m.mountpoint + "/default").c_str());
    }
  }
  // A registry with `o`, and a daemon.
  void start(RegistryOptions o = {}) {
    std::string why;
    registry = Registry::start(&why, o);
    ASSERT_TRUE(registry) << why;
    d = Daemon::create();
    ASSERT_TRUE(d);
    auto err = d->start({.config = kTransferConfig});
    ASSERT_FALSE(err.has_value()) << *err;
  }
  void seed(const std::string& tar_data, const std::string& repo_tag,
            const std::string& format = "") {
    std::string tar = d->dir() + "/seed.tar";
    test::write_file(tar, tar_data);
    auto push = registry->push_oci_archive(tar, repo_tag, format);
    ASSERT_EQ(push.exit_code, 0) << diag(push) << registry->log();
  }
  RunResult pull(const std::string& ref, std::vector<std::string> flags = {"--plain-http"}) {
    std::vector<std::string> args = {"images", "pull"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(ref);
    return d->berth(args);
  }
  std::string target_of(const std::string& name) {
    auto ls = d->berth({"--format", "json", "images", "ls"});
    auto j = nlohmann::json::parse(ls.out, nullptr, false);
    if (!j.is_array()) return "";
    for (const auto& i : j)
      if (i.value("name", "") == name) return i["target"]["digest"];
    return "";
  }
  bool has_content(const std::string& digest) {
    return d->berth({"content", "get", digest}).exit_code == 0;
  }

  std::unique_ptr<Registry> registry;
  std::unique_ptr<Daemon> d;
};

// An error the daemon answers with (here: the registry does not answer) is shown as the
// daemon's, never as "cannot connect to berthd".
TEST_F(TransferTest, AnUnreachableRegistryIsTheDaemonsErrorNotAConnectionFailure) {
  d = Daemon::create();
  ASSERT_TRUE(d);
  auto err = d->start({.config = kTransferConfig});
  ASSERT_FALSE(err.has_value()) << *err;
  // A port nothing listens on: bound, then closed.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(s);
  auto r = pull("127.0.0.1:" + std::to_string(port) + "/x/y:1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, Not(HasSubstr("is berthd running")));
  EXPECT_THAT(r.err, HasSubstr("127.0.0.1:" + std::to_string(port)));
}

TEST_F(TransferTest, PullsAnOciImageWithProgressAndItRuns) {
  start();
  seed(test::busybox_image_tar("x:1"), "library/busybox:1");
  std::string ref = registry->host() + "/library/busybox:1";
  auto p = pull(ref);
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  // Not a terminal: one line per change, per blob.
  EXPECT_THAT(
      p.out,
      AllOf(HasSubstr("pull     resolved " + ref), ContainsRegex("manifest +[0-9a-f]{12} +done"),
            ContainsRegex("layer +[0-9a-f]{12} +downloading"),
            ContainsRegex("layer +[0-9a-f]{12} +unpacked"), HasSubstr("pulled " + ref)));
  EXPECT_EQ(target_of(ref), core::Sha256::digest_of(skopeo_raw_text(*registry, ref)));
  auto check = d->berth({"images", "check"});
  EXPECT_EQ(check.exit_code, 0) << diag(check);  // every image complete and unpacked
  EXPECT_THAT(check.out, AllOf(HasSubstr("complete"), Not(HasSubstr("incomplete"))));
  auto ran = d->berth({"run", "--rm", ref, "pulled-oci", "echo", "pulled and ran"});
  EXPECT_EQ(ran.exit_code, 0) << diag(ran) << d->log();
  EXPECT_EQ(ran.out, "pulled and ran\n");
  // Again: everything is there already.
  auto again = pull(ref);
  ASSERT_EQ(again.exit_code, 0) << diag(again);
  EXPECT_THAT(again.out,
              AllOf(ContainsRegex("layer +[0-9a-f]{12} +exists"), Not(HasSubstr("downloading"))));
  // On a terminal: bars redrawn in place.
  ASSERT_EQ(d->berth({"images", "rm", "--sync", ref}).exit_code, 0);
  std::string cmd = bin("berth") + " -a " + d->address() + " images pull --plain-http " + ref;
  auto tty = run({"script", "-qec", cmd, "/dev/null"}, std::chrono::seconds(60));
  ASSERT_EQ(tty.exit_code, 0) << diag(tty);
  EXPECT_THAT(tty.out, AllOf(HasSubstr("\033[K"), ContainsRegex("\\[=*>? *\\]"),
                             HasSubstr("pulled " + ref)));
}

TEST_F(TransferTest, PullsDockerSchema2) {
  start();
  seed(test::busybox_image_tar("x:1"), "library/busybox:v2s2", "v2s2");
  std::string ref = registry->host() + "/library/busybox:v2s2";
  auto p = pull(ref);
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  auto ls = d->berth({"--format", "json", "images", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("application/vnd.docker.distribution.manifest.v2+json"));
  auto ran = d->berth({"run", "--rm", ref, "pulled-v2s2", "echo", "docker image ran"});
  EXPECT_EQ(ran.exit_code, 0) << diag(ran) << d->log();
  EXPECT_EQ(ran.out, "docker image ran\n");
}

TEST_F(TransferTest, MultiArchIndexPullsThePlatformAsked) {
  start();
  test::Layout layout;
  test::TarBuilder arm;
  arm.dir("etc").file("etc/arch", "arm64\n");
  test::TarBuilder amd;
  amd.dir("etc").file("etc/arch", "amd64\n");
  auto arm_layer = test::make_layer(arm.finish(), "gzip");
  auto amd_layer = test::make_layer(amd.finish(), "gzip");
  auto arm_m = layout.manifest("arm64", {arm_layer});
  auto amd_m = layout.manifest("amd64", {amd_layer});
  layout.name(layout.index({amd_m, arm_m}), "x:multi");
  seed(layout.tar(), "library/multi:1");
  std::string ref = registry->host() + "/library/multi:1";

  // The same index converted to a Docker manifest list by skopeo.
  seed(layout.tar(), "library/multi:docker", "v2s2");
  auto docker = pull(registry->host() + "/library/multi:docker",
                     {"--plain-http", "--platform", "linux/arm64"});
  ASSERT_EQ(docker.exit_code, 0) << diag(docker) << d->log();
  EXPECT_THAT(d->berth({"--format", "json", "images", "ls"}).out,
              HasSubstr("application/vnd.docker.distribution.manifest.list.v2+json"));

  auto p = pull(ref, {"--plain-http", "--platform", "linux/arm64"});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  EXPECT_THAT(p.out, HasSubstr("index"));
  std::string arm_digest = arm_m["digest"], amd_digest = amd_m["digest"];
  EXPECT_TRUE(has_content(arm_digest));
  EXPECT_FALSE(has_content(amd_digest)) << "only the arm64 manifest should be fetched";
  // The arm64 layer is unpacked (one layer: its chain ID is its diffID); the amd64 one is not.
  EXPECT_EQ(d->berth({"snapshots", "info", arm_layer.diff_id}).exit_code, 0);
  EXPECT_NE(d->berth({"snapshots", "info", amd_layer.diff_id}).exit_code, 0);
  // Pushing it back: one platform is here, so only --platform linux/arm64 can be pushed.
  std::string copy = registry->host() + "/team/arm:1";
  auto all = d->berth({"images", "push", "--plain-http", copy, ref});
  EXPECT_NE(all.exit_code, 0);
  EXPECT_THAT(all.err, AllOf(HasSubstr("linux/amd64"), HasSubstr("--platform")));
  auto one = d->berth({"images", "push", "--plain-http", "--platform", "linux/arm64", copy, ref});
  ASSERT_EQ(one.exit_code, 0) << diag(one) << registry->log();
  EXPECT_EQ(core::Sha256::digest_of(skopeo_raw_text(*registry, copy)), arm_digest);
  // A platform the index does not have: a clear error naming the ones it has.
  auto none = pull(ref, {"--plain-http", "--platform", "linux/s390x"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err,
              AllOf(HasSubstr("linux/s390x"), HasSubstr("linux/arm64"), HasSubstr("linux/amd64")));
}

TEST_F(TransferTest, TlsWithAPrivateCaByFlagAndByHostsToml) {
  start({.tls = true});
  seed(test::busybox_image_tar("x:1"), "library/busybox:tls");
  std::string ref = registry->host() + "/library/busybox:tls";
  auto untrusted = pull(ref, {});
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_THAT(untrusted.err, HasSubstr("certificate verify failed"));
  auto p = pull(ref, {"--tlscacert", registry->ca_file()});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  ASSERT_EQ(d->berth({"images", "rm", ref}).exit_code, 0);
  auto unverified = pull(ref, {"--skip-verify"});
  EXPECT_EQ(unverified.exit_code, 0) << diag(unverified);

  // certs.d/<host>/hosts.toml naming the CA (relative to the host's directory).
  std::string hosts = d->dir() + "/certs.d";
  std::filesystem::create_directories(hosts + "/" + registry->host());
  std::filesystem::copy_file(registry->ca_file(), hosts + "/" + registry->host() + "/ca.pem");
  test::write_file(hosts + "/" + registry->host() + "/hosts.toml",
                   "server = \"https://" + registry->host() + "\"\n[host.\"https://" +
                       registry->host() +
                       "\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.pem\"\n");
  ASSERT_EQ(d->berth({"images", "rm", ref}).exit_code, 0);
  auto by_hosts = pull(ref, {"--hosts-dir", hosts});
  EXPECT_EQ(by_hosts.exit_code, 0) << diag(by_hosts) << d->log();
  // A broken hosts.toml is named in the error.
  test::write_file(hosts + "/" + registry->host() + "/hosts.toml", "server = [1\n");
  auto broken = pull(ref, {"--hosts-dir", hosts});
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_THAT(broken.err, HasSubstr("hosts.toml"));
}

TEST_F(TransferTest, DockerHubNamesPullThroughAMirrorFromHostsToml) {
  start();
  seed(test::busybox_image_tar("x:1"), "library/busybox:mirrored");
  std::string hosts = d->dir() + "/certs.d";
  std::filesystem::create_directories(hosts + "/docker.io");
  test::write_file(hosts + "/docker.io/hosts.toml",
                   "server = \"https://registry-1.docker.io\"\n[host.\"http://" + registry->host() +
                       "\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
  auto p = pull("busybox:mirrored", {"--hosts-dir", hosts});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  EXPECT_NE(target_of("docker.io/library/busybox:mirrored"), "");
}

TEST_F(TransferTest, MutualTlsWithAClientCertificate) {
  start({.tls = true, .client_certs = true});
  seed(test::busybox_image_tar("x:1"), "library/busybox:mtls");
  std::string ref = registry->host() + "/library/busybox:mtls";
  auto anonymous = pull(ref, {"--tlscacert", registry->ca_file()});
  EXPECT_NE(anonymous.exit_code, 0);
  EXPECT_THAT(anonymous.err, HasSubstr(registry->host().substr(0, 9)));
  auto p = pull(ref, {"--tlscacert", registry->ca_file(), "--tlscert", registry->client_cert(),
                      "--tlskey", registry->client_key()});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  auto missing = pull(ref, {"--tlscacert", registry->ca_file(), "--tlscert", "/nonexistent.pem"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent.pem"));
}

TEST_F(TransferTest, BasicAuth) {
  start({.auth = RegistryOptions::Auth::kBasic});
  seed(test::busybox_image_tar("x:1"), "library/busybox:auth");
  std::string ref = registry->host() + "/library/busybox:auth";
  auto anonymous = pull(ref);
  EXPECT_NE(anonymous.exit_code, 0);
  EXPECT_THAT(anonymous.err, AllOf(HasSubstr("401"), HasSubstr("credentials")));
  auto wrong = pull(ref, {"--plain-http", "-u", std::string(Registry::kUser) + ":wrong"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, AllOf(HasSubstr("401"), HasSubstr(Registry::kUser)));
  EXPECT_EQ(target_of(ref), "");
  // Nothing was fetched: no lease is left behind.
  EXPECT_THAT(d->berth({"leases", "ls"}).out, Not(HasSubstr("berth-pull")));
  auto p = pull(ref, {"--plain-http", "-u", registry->user_flag()});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
}

TEST_F(TransferTest, TokenAuthPullAndPush) {
  start({.auth = RegistryOptions::Auth::kToken});
  seed(test::busybox_image_tar("x:1"), "library/busybox:token");
  std::string ref = registry->host() + "/library/busybox:token";
  auto wrong = pull(ref, {"--plain-http", "-u", std::string(Registry::kUser) + ":wrong"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.err, AllOf(HasSubstr("401"), HasSubstr("token server")));
  auto p = pull(ref, {"--plain-http", "-u", registry->user_flag()});
  ASSERT_EQ(p.exit_code, 0) << diag(p) << registry->log() << d->log();
  // The reader may pull but not push.
  std::string copy = registry->host() + "/team/copy:1";
  auto denied =
      d->berth({"images", "push", "--plain-http", "-u",
                std::string(Registry::kReader) + ":" + Registry::kReaderPassword, copy, ref});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.err, ContainsRegex("401|403|denied"));
  auto pushed =
      d->berth({"images", "push", "--plain-http", "-u", registry->user_flag(), copy, ref});
  ASSERT_EQ(pushed.exit_code, 0) << diag(pushed) << registry->log();
  // Same registry, source repository known from the pull: the blobs are mounted, not uploaded.
  EXPECT_THAT(pushed.out, HasSubstr("mounted"));
  EXPECT_THAT(pushed.out, Not(ContainsRegex("layer +[0-9a-f]{12} +uploading")));
  EXPECT_EQ(skopeo_raw(*registry, copy).dump(), skopeo_raw(*registry, ref).dump());
}

TEST_F(TransferTest, ACutConnectionIsResumedWithRange) {
  start();
  seed(two_layer_image_tar("x:1", 3, 1), "library/big:1");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  proxy->cut_blobs_after(1 << 20);  // every blob answer stops after 1 MiB
  std::string ref = proxy->host() + "/library/big:1";
  std::string big =
      skopeo_raw(*registry, registry->host() + "/library/big:1")["layers"][1]["digest"];
  auto p = pull(ref);
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  EXPECT_THAT(p.out, HasSubstr("retrying"));
  auto reqs = proxy->requests();
  bool ranged = false;
  for (const auto& r : reqs)
    ranged = ranged ||
             (r.find(big) != std::string::npos && r.find("Range: bytes=") != std::string::npos);
  EXPECT_TRUE(ranged) << ::testing::PrintToString(reqs);
  auto ran = d->berth({"run", "--rm", ref, "resumed", "sh", "-c", "ls -l /data/blob"});
  EXPECT_THAT(ran.out, HasSubstr("3145728"));
}

TEST_F(TransferTest, ARegistryThatDiesMidPullFailsClearlyAndTheNextPullResumes) {
  start();
  seed(two_layer_image_tar("x:1", 2, 2), "library/dies:1");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  std::string ref = proxy->host() + "/library/dies:1";
  auto manifest = skopeo_raw(*registry, registry->host() + "/library/dies:1");
  std::string config = manifest["config"]["digest"], big = manifest["layers"][1]["digest"];

  // The registry goes away as soon as the big layer is half sent.
  proxy->cut_blobs_after(1 << 20);
  std::thread killer([&] {
    for (int i = 0; i < 400; ++i) {
      for (const auto& r : proxy->requests())
        if (r.find(big) != std::string::npos) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          proxy->refuse(true);
          return;
        }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  auto failed = pull(ref);
  killer.join();
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_THAT(failed.err, AllOf(HasSubstr("giving up after 4 attempts"), HasSubstr(big)));
  EXPECT_EQ(target_of(ref), "");
  EXPECT_TRUE(has_content(config)) << "verified blobs stay for the next pull";
  EXPECT_THAT(d->berth({"leases", "ls"}).out, HasSubstr("berth-pull"));

  proxy->refuse(false);
  proxy->cut_blobs_after(0);
  proxy->clear_requests();
  auto resumed = pull(ref);
  ASSERT_EQ(resumed.exit_code, 0) << diag(resumed) << d->log();
  EXPECT_THAT(resumed.out, HasSubstr("resuming at byte"));
  bool refetched_config = false, ranged = false;
  for (const auto& r : proxy->requests()) {
    if (r.find("GET") == 0 && r.find(config) != std::string::npos) refetched_config = true;
    if (r.find(big) != std::string::npos && r.find("Range: bytes=") != std::string::npos)
      ranged = true;
  }
  EXPECT_FALSE(refetched_config) << ::testing::PrintToString(proxy->requests());
  EXPECT_TRUE(ranged) << ::testing::PrintToString(proxy->requests());
}

TEST_F(TransferTest, AClientThatDiesMidPullStopsItAndTheDaemonCarriesOn) {
  start();
  seed(two_layer_image_tar("x:1", 4, 5), "library/slow:1");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  proxy->throttle(20);  // ~3 MiB/s: the big layer takes over a second
  std::string ref = proxy->host() + "/library/slow:1";
  auto p = Process::start({bin("berth"), "-a", d->address(), "images", "pull", "--plain-http", ref},
                          d->dir() + "/client.log");
  ASSERT_TRUE(p);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ::kill(p->pid(), SIGKILL);
  p.reset();
  ASSERT_EQ(::kill(d->pid(), 0), 0) << "berthd died with its client";
  EXPECT_EQ(target_of(ref), "");
  proxy->throttle(0);
  auto again = pull(ref);
  ASSERT_EQ(again.exit_code, 0) << diag(again) << d->log();
  EXPECT_THAT(again.out, HasSubstr("resuming at byte"));
}

TEST_F(TransferTest, BlobRedirectsAreFollowed) {
  start();
  seed(test::busybox_image_tar("x:1"), "library/busybox:redirected");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  proxy->redirect_blobs(true);
  auto p = pull(proxy->host() + "/library/busybox:redirected");
  ASSERT_EQ(p.exit_code, 0) << diag(p) << d->log();
  int blob_gets = 0;
  for (const auto& r : proxy->requests())
    if (r.rfind("GET", 0) == 0 && r.find("/blobs/") != std::string::npos) ++blob_gets;
  EXPECT_EQ(blob_gets, 2);  // config and layer, each answered with a redirect
}

TEST_F(TransferTest, ACorruptedBlobIsRejectedAndNothingIsCommitted) {
  start();
  seed(test::busybox_image_tar("x:1"), "library/busybox:bad");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  proxy->corrupt_blobs(true);
  std::string ref = proxy->host() + "/library/busybox:bad";
  auto manifest = skopeo_raw(*registry, registry->host() + "/library/busybox:bad");
  std::string config = manifest["config"]["digest"], layer = manifest["layers"][0]["digest"];
  auto p = pull(ref);
  EXPECT_NE(p.exit_code, 0);
  EXPECT_THAT(p.err,
              AllOf(HasSubstr("does not match its digest"), HasSubstr("nothing was stored")));
  EXPECT_FALSE(has_content(config));
  EXPECT_FALSE(has_content(layer));
  EXPECT_EQ(target_of(ref), "");
  // Served right, the same pull works.
  proxy->corrupt_blobs(false);
  auto good = pull(ref);
  EXPECT_EQ(good.exit_code, 0) << diag(good);
}

TEST_F(TransferTest, TwoPullsOfOneImageFetchEachBlobOnce) {
  start();
  seed(two_layer_image_tar("x:1", 4, 3), "library/shared:1");
  auto proxy = FaultProxy::start(registry->port());
  ASSERT_TRUE(proxy);
  // The 4 MiB layer takes ~1.5 s, so the two pulls overlap also on a loaded machine.
  proxy->throttle(25);
  std::string ref = proxy->host() + "/library/shared:1";
  auto a = std::async(std::launch::async, [&] { return pull(ref); });
  auto b = std::async(std::launch::async, [&] { return pull(ref); });
  auto ra = a.get(), rb = b.get();
  ASSERT_EQ(ra.exit_code, 0) << diag(ra);
  ASSERT_EQ(rb.exit_code, 0) << diag(rb);
  EXPECT_THAT(ra.out + rb.out, HasSubstr("fetched by another pull"));
  std::map<std::string, int> gets;
  for (const auto& r : proxy->requests())
    if (r.rfind("GET", 0) == 0 && r.find("/blobs/") != std::string::npos) ++gets[r];
  for (const auto& [r, n] : gets) EXPECT_EQ(n, 1) << r;
  EXPECT_FALSE(gets.empty());
}

TEST_F(TransferTest, PushMonolithicAndChunkedThenSkopeoVerifiesEveryBlob) {
  start();
  std::string tar = d->dir() + "/local.tar";
  test::write_file(tar, two_layer_image_tar("example.com/app:1", 1, 4));
  auto imported = d->berth({"images", "import", tar});
  ASSERT_EQ(imported.exit_code, 0) << diag(imported);

  for (const auto& [repo, chunk] : {std::pair<std::string, std::string>{"team/app:mono", "0"},
                                    {"team/app-chunked:1", "300000"}}) {
    std::string remote = registry->host() + "/" + repo;
    auto pushed = d->berth(
        {"images", "push", "--plain-http", "--chunk-size", chunk, remote, "example.com/app:1"});
    ASSERT_EQ(pushed.exit_code, 0) << diag(pushed) << registry->log();
    EXPECT_THAT(pushed.out, AllOf(HasSubstr("uploading"), HasSubstr("pushed " + remote)));
    // The registry holds the very manifest the image names.
    auto raw_text = skopeo_raw_text(*registry, remote);
    EXPECT_EQ(core::Sha256::digest_of(raw_text), target_of("example.com/app:1"));
    auto raw = nlohmann::json::parse(raw_text);
    // skopeo copy checks every blob's digest while copying into an OCI layout.
    std::string out = d->dir() + "/copy-" + std::to_string(repo.size());
    auto copy = run(
        {"skopeo", "copy", "--quiet", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
         "--src-tls-verify=false", "docker://" + remote, "oci:" + out + ":x"},
        std::chrono::seconds(120));
    ASSERT_EQ(copy.exit_code, 0) << diag(copy);
    for (const auto& l : raw["layers"]) {
      std::string digest = l["digest"];
      EXPECT_TRUE(std::filesystem::exists(out + "/blobs/sha256/" + digest.substr(7))) << digest;
    }
  }
  // Pushing again finds everything there.
  auto again = d->berth(
      {"images", "push", "--plain-http", registry->host() + "/team/app:mono", "example.com/app:1"});
  ASSERT_EQ(again.exit_code, 0) << diag(again);
  EXPECT_THAT(again.out, AllOf(ContainsRegex("layer +[0-9a-f]{12} +exists"),
                               Not(ContainsRegex("layer +[0-9a-f]{12} +uploading"))));
  // Bad input: an image that does not exist, an invalid reference.
  auto missing =
      d->berth({"images", "push", "--plain-http", registry->host() + "/x/y:1", "nope:1"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("nope"));
  auto invalid = pull("127.0.0.1:1/UPPER/case:1");
  EXPECT_NE(invalid.exit_code, 0);
  EXPECT_THAT(invalid.err, HasSubstr("UPPER"));
}

}  // namespace
}  // namespace berth::e2e

// The Kubernetes CRI end to end: a gRPC client speaking runtime.v1 and runtime.v1alpha2 (as the
// kubelet does) against a private berthd's io.containerd.grpc.v1.cri, with images pulled from a
// real registry on 127.0.0.1 (basic auth, plain HTTP through a certs.d hosts.toml). As root.
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/fs.h"
#include "cri/runtime/v1/api.grpc.pb.h"
#include "cri/runtime/v1alpha2/api.grpc.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/registry.h"
#include "tests/support/oci_layout.h"

namespace berth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
namespace v1 = ::runtime::v1;
namespace v1alpha2 = ::runtime::v1alpha2;

class CriTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the CRI's pulls unpack into overlayfs: root";
    std::string why;
    RegistryOptions ro;
    ro.auth = RegistryOptions::Auth::kBasic;
    registry_ = Registry::start(&why, ro);
    ASSERT_TRUE(registry_) << why;
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    // The registry speaks plain HTTP: said once in certs.d, as an operator would.
    std::string hosts = d_->dir() + "/certs.d/" + registry_->host();
    ASSERT_TRUE(core::make_dirs(hosts).ok());
    test::write_file(hosts + "/hosts.toml", "server = \"http://" + registry_->host() + "\"\n");
    DaemonOptions o;
    o.config = "[plugins.\"io.containerd.grpc.v1.cri\"]\n  hosts_dir = \"" + d_->dir() +
               "/certs.d\"\n";
    auto err = d_->start(o);
    ASSERT_FALSE(err.has_value()) << *err;
    std::string tar = d_->dir() + "/busybox.tar";
    test::write_file(tar, test::busybox_image_tar("example.com/busybox:1"));
    auto push = registry_->push_oci_archive(tar, "library/busybox:1");
    ASSERT_EQ(push.exit_code, 0) << diag(push);
    channel_ = grpc::CreateChannel("unix://" + d_->address(), grpc::InsecureChannelCredentials());
    runtime_ = v1::RuntimeService::NewStub(channel_);
    images_ = v1::ImageService::NewStub(channel_);
  }
  void TearDown() override {
    if (d_) d_->stop();
  }

  std::unique_ptr<grpc::ClientContext> ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return c;
  }

  grpc::Status pull(const std::string& ref, v1::PullImageResponse* out,
                    const std::string& user = Registry::kUser,
                    const std::string& password = Registry::kPassword) {
    v1::PullImageRequest req;
    req.mutable_image()->set_image(ref);
    req.mutable_auth()->set_username(user);
    req.mutable_auth()->set_password(password);
    return images_->PullImage(ctx().get(), req, out);
  }

  std::optional<v1::Image> status(const std::string& spec) {
    v1::ImageStatusRequest req;
    req.mutable_image()->set_image(spec);
    v1::ImageStatusResponse resp;
    auto st = images_->ImageStatus(ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << spec << ": " << st.error_message();
    if (!resp.has_image()) return std::nullopt;
    return resp.image();
  }

  std::string ref() const { return registry_->host() + "/library/busybox:1"; }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Daemon> d_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<v1::ImageService::Stub> images_;
};

TEST_F(CriTest, VersionAndStatusAreWhatTheKubeletChecksFirst) {
  v1::VersionRequest vreq;
  vreq.set_version("v1");
  v1::VersionResponse v;
  ASSERT_TRUE(runtime_->Version(ctx().get(), vreq, &v).ok());
  EXPECT_EQ(v.version(), "0.1.0");
  EXPECT_EQ(v.runtime_name(), "berth");
  EXPECT_EQ(v.runtime_api_version(), "v1");
  EXPECT_FALSE(v.runtime_version().empty());

  // A kubelet <= 1.25 asks the same over runtime.v1alpha2.
  auto old = v1alpha2::RuntimeService::NewStub(channel_);
  v1::VersionResponse v2;
  ASSERT_TRUE(old->Version(ctx().get(), vreq, &v2).ok());
  EXPECT_EQ(v2.runtime_name(), "berth");

  v1::StatusRequest sreq;
  sreq.set_verbose(true);
  v1::StatusResponse s;
  ASSERT_TRUE(runtime_->Status(ctx().get(), sreq, &s).ok());
  std::map<std::string, bool> conditions;
  for (const auto& c : s.status().conditions()) conditions[c.type()] = c.status();
  EXPECT_TRUE(conditions.at("RuntimeReady"));
  // berthd's default network (io.berth.network.v1.cni) loads: the pod network is ready.
  EXPECT_TRUE(conditions.at("NetworkReady")) << s.DebugString();
  std::vector<std::string> handlers;
  for (const auto& h : s.runtime_handlers()) handlers.push_back(h.name());
  EXPECT_THAT(handlers, UnorderedElementsAre("", "berth", "runc"));
  auto cfg = nlohmann::json::parse(s.info().at("config"));
  EXPECT_EQ(cfg.at("namespace"), "k8s.io");

  v1::RuntimeConfigResponse rc;
  ASSERT_TRUE(runtime_->RuntimeConfig(ctx().get(), v1::RuntimeConfigRequest(), &rc).ok());
  EXPECT_EQ(rc.linux().cgroup_driver(), v1::CGROUPFS);

  v1::UpdateRuntimeConfigRequest ureq;
  ureq.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.231.200.0/24");
  v1::UpdateRuntimeConfigResponse uresp;
  ASSERT_TRUE(runtime_->UpdateRuntimeConfig(ctx().get(), ureq, &uresp).ok());
  ASSERT_TRUE(runtime_->Status(ctx().get(), sreq, &s).ok());
  EXPECT_EQ(nlohmann::json::parse(s.info().at("config")).at("podCIDR"), "10.231.200.0/24");
}

TEST_F(CriTest, PullThenStatusByNameIdAndDigestThenRemove) {
  // Not there yet: an empty answer, not an error.
  EXPECT_FALSE(status(ref()).has_value());

  v1::PullImageResponse pulled;
  auto st = pull(ref(), &pulled);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << d_->log();
  const std::string id = pulled.image_ref();
  ASSERT_EQ(id.rfind("sha256:", 0), 0u) << id;

  auto by_name = status(ref());
  ASSERT_TRUE(by_name.has_value());
  EXPECT_EQ(by_name->id(), id);
  EXPECT_THAT(by_name->repo_tags(), UnorderedElementsAre(ref()));
  ASSERT_EQ(by_name->repo_digests_size(), 1);
  const std::string repo_digest = by_name->repo_digests(0);
  EXPECT_EQ(repo_digest.rfind(registry_->host() + "/library/busybox@sha256:", 0), 0u);
  EXPECT_GT(by_name->size(), 0u);
  EXPECT_TRUE(by_name->has_uid());
  EXPECT_EQ(by_name->uid().value(), 0);

  for (const std::string& spec : {id, id.substr(7, 12), repo_digest}) {
    auto img = status(spec);
    ASSERT_TRUE(img.has_value()) << spec;
    EXPECT_EQ(img->id(), id) << spec;
  }

  v1::ListImagesResponse list;
  ASSERT_TRUE(images_->ListImages(ctx().get(), v1::ListImagesRequest(), &list).ok());
  ASSERT_EQ(list.images_size(), 1);
  EXPECT_EQ(list.images(0).id(), id);

  // containerd's records, seen by containerd's own ctr in the k8s.io namespace.
  auto ctr = d_->ctr({"-n", "k8s.io", "images", "ls", "-q"});
  EXPECT_THAT(ctr.out, HasSubstr(ref()));
  EXPECT_THAT(ctr.out, HasSubstr(repo_digest));
  EXPECT_THAT(ctr.out, HasSubstr(id));

  v1::ImageFsInfoResponse fs;
  ASSERT_TRUE(images_->ImageFsInfo(ctx().get(), v1::ImageFsInfoRequest(), &fs).ok());
  ASSERT_EQ(fs.image_filesystems_size(), 1);
  EXPECT_THAT(fs.image_filesystems(0).fs_id().mountpoint(),
              HasSubstr("io.containerd.snapshotter.v1.overlayfs"));
  EXPECT_GT(fs.image_filesystems(0).used_bytes().value(), 0u);
  EXPECT_GT(fs.image_filesystems(0).inodes_used().value(), 0u);
  EXPECT_GT(fs.image_filesystems(0).timestamp(), 0);

  v1::RemoveImageRequest rm;
  rm.mutable_image()->set_image(id);
  v1::RemoveImageResponse rm_resp;
  ASSERT_TRUE(images_->RemoveImage(ctx().get(), rm, &rm_resp).ok());
  EXPECT_FALSE(status(ref()).has_value());
  EXPECT_FALSE(status(repo_digest).has_value());
  // Idempotent.
  EXPECT_TRUE(images_->RemoveImage(ctx().get(), rm, &rm_resp).ok());
  EXPECT_EQ(d_->ctr({"-n", "k8s.io", "images", "ls", "-q"}).out, "");
}

TEST_F(CriTest, PullAuthFromTheRequestIncludingDockersAuthField) {
  v1::PullImageResponse pulled;
  auto denied = pull(ref(), &pulled, Registry::kUser, "wrong");
  EXPECT_FALSE(denied.ok());
  EXPECT_THAT(denied.error_message(), HasSubstr(registry_->host()));

  v1::PullImageRequest req;
  req.mutable_image()->set_image(ref());
  req.mutable_auth()->set_auth(core::base64_encode(std::string(Registry::kUser) + ":" +
                                                   Registry::kPassword));
  req.mutable_auth()->set_server_address(registry_->host());
  auto st = images_->PullImage(ctx().get(), req, &pulled);
  ASSERT_TRUE(st.ok()) << st.error_message();

  // Credentials named for another registry are not sent to this one.
  v1::RemoveImageRequest rm;
  rm.mutable_image()->set_image(pulled.image_ref());
  v1::RemoveImageResponse rm_resp;
  ASSERT_TRUE(images_->RemoveImage(ctx().get(), rm, &rm_resp).ok());
  req.mutable_auth()->set_server_address("https://elsewhere.example.com/v1/");
  EXPECT_FALSE(images_->PullImage(ctx().get(), req, &pulled).ok());

  req.mutable_auth()->set_auth("not base64!");
  req.mutable_auth()->clear_server_address();
  auto bad = images_->PullImage(ctx().get(), req, &pulled);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("auth.auth"));
}

TEST_F(CriTest, BadReferencesAreInvalidArgumentsNamingThem) {
  v1::PullImageResponse pulled;
  auto st = pull("UPPER/Case:bad tag", &pulled);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("UPPER/Case:bad tag"));
  v1::ImageStatusRequest req;
  req.mutable_image()->set_image("UPPER/Case:bad tag");
  v1::ImageStatusResponse resp;
  auto s2 = images_->ImageStatus(ctx().get(), req, &resp);
  EXPECT_EQ(s2.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Over v1alpha2 too, the same answer.
  auto old = v1alpha2::ImageService::NewStub(channel_);
  auto s3 = old->ImageStatus(ctx().get(), req, &resp);
  EXPECT_EQ(s3.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace berth::e2e

#include "core/images/model.h"

#include <gtest/gtest.h>

namespace berth::images::model {
namespace {

const std::string kD1 = "sha256:" + std::string(64, 'a');
const std::string kD2 = "sha256:" + std::string(64, 'b');

TEST(Platform, NormalisesAndParses) {
  EXPECT_EQ(parse_platform("linux/x86_64")->to_string(), "linux/amd64");
  EXPECT_EQ(parse_platform("aarch64")->to_string(), "linux/arm64");
  EXPECT_EQ(parse_platform("linux/arm64/v8")->to_string(), "linux/arm64");
  EXPECT_EQ(parse_platform("linux/arm")->to_string(), "linux/arm/v7");
  EXPECT_EQ(parse_platform("linux/armhf")->to_string(), "linux/arm/v7");
  EXPECT_EQ(parse_platform("i386")->to_string(), "linux/386");
  EXPECT_FALSE(parse_platform("").ok());
  EXPECT_FALSE(parse_platform("linux//amd64").ok());
  EXPECT_FALSE(parse_platform("a/b/c/d").ok());
}

TEST(Platform, FallbacksAreRankedLikeContainerd) {
  Platform amd64{"linux", "amd64", ""};
  EXPECT_EQ(match_rank(amd64, {"linux", "amd64", ""}), 0u);
  EXPECT_EQ(match_rank(amd64, {"linux", "386", ""}), 1u);
  EXPECT_FALSE(match_rank(amd64, {"linux", "arm64", ""}));
  Platform arm64{"linux", "arm64", ""};
  EXPECT_EQ(match_rank(arm64, {"linux", "arm", "v7"}), 2u);
  EXPECT_FALSE(match_rank({"linux", "arm", "v6"}, {"linux", "arm", "v7"}));
}

TEST(Index, SelectsTheBestPlatform) {
  std::string j =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      kD1 + R"(","size":10,"platform":{"os":"linux","architecture":"arm64"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      kD2 + R"(","size":11,"platform":{"os":"linux","architecture":"x86_64"}}]})";
  auto idx = parse_index(j);
  ASSERT_TRUE(idx.ok()) << idx.status().message();
  EXPECT_EQ(select_manifest(*idx, {"linux", "amd64", ""})->descriptor.digest, kD2);
  EXPECT_EQ(select_manifest(*idx, *parse_platform("linux/aarch64"))->descriptor.digest, kD1);
  auto none = select_manifest(*idx, {"linux", "s390x", ""});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("available: linux/arm64, linux/amd64"), std::string::npos)
      << none.status().message();
}

TEST(Manifest, ParsesAndNamesTheBadField) {
  std::string good =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
      kD1 + R"(","size":5},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" +
      kD2 + R"(","size":7}]})";
  auto m = parse_manifest(good);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->layers.size(), 1u);
  struct Case {
    std::string doc, field;
  };
  std::vector<Case> bad = {
      {"[]", "must be a JSON object"},
      {"{", "not valid JSON"},
      {R"({"schemaVersion":1})", "manifest.schemaVersion"},
      {R"({"schemaVersion":2,"layers":[]})", "manifest.config"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]})",
       "manifest.config.digest"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 +
           R"(","size":-1},"layers":[]})",
       "manifest.config.size"},
      {R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 +
           R"(","size":1},"layers":[{"mediaType":"text/plain","digest":")" + kD2 +
           R"(","size":1}]})",
       "manifest.layers[0].mediaType"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{},"layers":[]})",
       "manifest.mediaType"},
  };
  for (const auto& c : bad) {
    auto r = parse_manifest(c.doc);
    ASSERT_FALSE(r.ok()) << c.doc;
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status().message();
  }
}

TEST(Config, DiffIdsAndPlatform) {
  auto c = parse_config(
      R"({"architecture":"x86_64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" + kD1 +
      R"("]}})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->platform.architecture, "amd64");
  EXPECT_EQ(c->diff_ids.size(), 1u);
  auto bad = parse_config(
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["nope"]}})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("config.rootfs.diff_ids[0]"), std::string::npos);
}

TEST(ChainIds, FollowTheOciDefinition) {
  // sha256("<chainID(L0)> <diffID(L1)>"), computed independently (Python hashlib).
  auto ids = chain_ids({kD1, kD2});
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], kD1);
  EXPECT_EQ(ids[1], "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
  EXPECT_EQ(chain_ids({}).size(), 0u);
}

TEST(Reference, DockerHubNormalisation) {
  EXPECT_EQ(*normalize_reference("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(*normalize_reference("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(*normalize_reference("me/app"), "docker.io/me/app:latest");
  EXPECT_EQ(*normalize_reference("127.0.0.1:5000/x/y:t"), "127.0.0.1:5000/x/y:t");
  EXPECT_EQ(*normalize_reference("localhost/app"), "localhost/app:latest");
  EXPECT_EQ(*normalize_reference("busybox@" + kD1), "docker.io/library/busybox@" + kD1);
  EXPECT_FALSE(normalize_reference("").ok());
  EXPECT_FALSE(normalize_reference("Upper/Case").ok());
  EXPECT_FALSE(normalize_reference("x:").ok());
  EXPECT_FALSE(normalize_reference("x@sha256:12").ok());
}

}  // namespace
}  // namespace berth::images::model

#include "plugins/metadata/rocksdb/container_store.h"

#include "plugins/metadata/rocksdb/test_util.h"

namespace berth::plugins::metadata {
namespace {

using ContainerStoreTest = MetadataFixture;
using berth::containers::Container;

TEST_F(ContainerStoreTest, ExtensionsRoundTripThroughCreateGetAndUpdate) {
  auto ctx = ns("k8s.io");
  Container c{.id = "pod1", .runtime_name = "io.containerd.runc.v2"};
  c.extensions["io.cri-containerd.sandbox.metadata"] = {"type.googleapis.com/x", std::string("\0\1ab", 4)};
  c.extensions["other"] = {"t/o", "o"};
  ASSERT_TRUE(store_->containers().create(ctx, c).ok());

  auto got = store_->containers().get(ctx, "pod1");
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->extensions.size(), 2u);
  EXPECT_EQ(got->extensions.at("io.cri-containerd.sandbox.metadata").value, std::string("\0\1ab", 4));

  Container in{.id = "pod1"};
  in.extensions["io.cri-containerd.sandbox.metadata"] = {"type.googleapis.com/x", "new"};
  auto up = store_->containers().update(ctx, in, {"extensions.io.cri-containerd.sandbox.metadata",
                                                  "extensions.other"});
  ASSERT_TRUE(up.ok()) << up.status().message();
  got = store_->containers().get(ctx, "pod1");
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->extensions.size(), 1u);
  EXPECT_EQ(got->extensions.at("io.cri-containerd.sandbox.metadata").value, "new");
  EXPECT_EQ(got->runtime_name, "io.containerd.runc.v2");
}

}  // namespace
}  // namespace berth::plugins::metadata

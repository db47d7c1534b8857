#include <gtest/gtest.h>

#include "core/mount.h"

namespace berth::core {
namespace {

TEST(MountInfo, FieldsEscapesAndPropagation) {
  auto all = parse_mountinfo(
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
      "35 22 0:30 /dir /mnt/with\\040space rw master:4 shared:9 - tmpfs none rw\n"
      "36 22 0:31 / /private rw - proc proc rw\n"
      "garbage line\n"
      "37 22 0:32 / /short rw\n");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, 22u);
  EXPECT_EQ(all[0].parent, 1u);
  EXPECT_EQ(all[0].mount_point, "/");
  EXPECT_EQ(all[0].fstype, "ext4");
  EXPECT_EQ(all[0].source, "/dev/sda1");
  EXPECT_EQ(all[0].super_options, "rw,errors=remount-ro");
  EXPECT_TRUE(all[0].shared());
  EXPECT_EQ(all[1].root, "/dir");
  EXPECT_EQ(all[1].mount_point, "/mnt/with space");
  EXPECT_EQ(all[1].optional, (std::vector<std::string>{"master:4", "shared:9"}));
  EXPECT_TRUE(all[1].shared());
  EXPECT_FALSE(all[2].shared());
  EXPECT_EQ(all[2].fstype, "proc");
}

TEST(MountInfo, ThisProcessHasARoot) {
  auto all = read_mountinfo();
  ASSERT_TRUE(all.ok()) << all.status().message();
  bool root = false;
  for (const auto& m : *all) root = root || m.mount_point == "/";
  EXPECT_TRUE(root);
  EXPECT_FALSE(read_mountinfo("/nonexistent/mountinfo").ok());
}

}  // namespace
}  // namespace berth::core

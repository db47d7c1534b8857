// copy_tree keeps what a snapshot copy must keep. Needs root (owners, device nodes).
#include "core/copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"

namespace berth::core {
namespace {

namespace fs = std::filesystem;

TEST(CopyTree, KeepsOwnersModesLinksDevicesXattrsHolesAndTimes) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto d = TempDir::create("berth-copy-");
  ASSERT_TRUE(d.ok());
  std::string src = d->path() + "/src", dst = d->path() + "/dst";
  fs::create_directories(src + "/dir");
  fs::create_directories(dst);
  std::ofstream(src + "/dir/file") << "content";
  ASSERT_EQ(::chown((src + "/dir/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((src + "/dir/file").c_str(), 04750), 0);
  ASSERT_EQ(::link((src + "/dir/file").c_str(), (src + "/hardlink").c_str()), 0);
  ASSERT_EQ(::symlink("dir/file", (src + "/sym").c_str()), 0);
  ASSERT_EQ(::mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0600), 0);
  ASSERT_EQ(::setxattr((src + "/dir").c_str(), "user.k", "v", 1, 0), 0);
  {
    int fd = ::open((src + "/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "end", 3, 64 << 20), 3);
    ::close(fd);
  }
  timespec times[2] = {{1000, 0}, {1700000000, 123}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src + "/dir").c_str(), times, 0), 0);

  Status st = copy_tree(src, dst);
  ASSERT_TRUE(st.ok()) << st.message();

  struct stat a {
  }, b{};
  ASSERT_EQ(::lstat((dst + "/dir/file").c_str(), &a), 0);
  EXPECT_EQ(a.st_uid, 1234u);
  EXPECT_EQ(a.st_gid, 5678u);
  EXPECT_EQ(a.st_mode & 07777, 04750u);
  EXPECT_EQ(*read_file(dst + "/dir/file"), "content");
  ASSERT_EQ(::lstat((dst + "/hardlink").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hard links stay links";
  EXPECT_EQ(fs::read_symlink(dst + "/sym"), "dir/file");
  ASSERT_EQ(::lstat((dst + "/null").c_str(), &a), 0);
  EXPECT_TRUE(S_ISCHR(a.st_mode));
  EXPECT_EQ(a.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat((dst + "/fifo").c_str(), &a), 0);
  EXPECT_TRUE(S_ISFIFO(a.st_mode));
  char v[4] = {};
  EXPECT_EQ(::getxattr((dst + "/dir").c_str(), "user.k", v, sizeof v), 1);
  ASSERT_EQ(::lstat((dst + "/dir").c_str(), &a), 0);
  EXPECT_EQ(a.st_mtim.tv_sec, 1700000000);
  ASSERT_EQ(::lstat((dst + "/sparse").c_str(), &a), 0);
  EXPECT_EQ(a.st_size, (64 << 20) + 3);
  EXPECT_LT(a.st_blocks * 512, 1 << 20) << "holes must stay holes";

  auto du = disk_usage(dst);
  ASSERT_TRUE(du.ok());
  EXPECT_GE(du->inodes, 7);
  EXPECT_TRUE(remove_tree(dst).ok());
  EXPECT_FALSE(fs::exists(dst));
}

}  // namespace
}  // namespace berth::core

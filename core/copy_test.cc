// copy_tree keeps what a snapshot copy must keep. Needs root (owners, device nodes).
#include "core/copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "core/tree.h"
#include "tests/support/canary.h"

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

// A chain of `depth` nested directories "d" below `top`, made through descriptors (the path is
// far longer than PATH_MAX), with a file and a symlink to the canary at the bottom.
void make_deep(const std::string& top, int depth, const std::string& link_target) {
  Fd cur(::open(top.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_GE(cur.get(), 0);
  for (int i = 0; i < depth; ++i) {
    ASSERT_EQ(::mkdirat(cur.get(), "d", 0755), 0);
    Fd next(::openat(cur.get(), "d", O_RDONLY | O_DIRECTORY));
    ASSERT_GE(next.get(), 0);
    cur = std::move(next);
  }
  Fd f(::openat(cur.get(), "bottom", O_WRONLY | O_CREAT, 0644));
  ASSERT_GE(f.get(), 0);
  ASSERT_EQ(::symlinkat(link_target.c_str(), cur.get(), "out"), 0);
}

// Lowers the descriptor limit for the scope: a walk that kept one descriptor per level would
// run out long before the bottom.
struct FewDescriptors {
  explicit FewDescriptors(rlim_t n) {
    ::getrlimit(RLIMIT_NOFILE, &saved);
    rlimit r = saved;
    r.rlim_cur = n;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
  ~FewDescriptors() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  rlimit saved{};
};

TEST(RemoveTree, NeverFollowsSymlinksAndHandlesAnyDepthWithTwoDescriptors) {
  auto d = TempDir::create("berth-rm-");
  ASSERT_TRUE(d.ok());
  auto canary = test::Canary::create();
  ASSERT_TRUE(canary);
  std::string tree = d->path() + "/tree";
  fs::create_directories(tree + "/ro");
  ASSERT_EQ(::symlink(canary->path().c_str(), (tree + "/to-canary").c_str()), 0);
  ASSERT_EQ(::symlink((canary->path() + "/victim").c_str(), (tree + "/ro/victim").c_str()), 0);
  ::chmod((tree + "/ro").c_str(), 0555);
  make_deep(tree, 5000, canary->path());
  {
    FewDescriptors few(32);
    Status st = remove_tree(tree);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(tree)));
  EXPECT_TRUE(canary->intact()) << canary->report();
}

TEST(RemoveTree, StopsAtMountPointsIncludingBindMountsOfTheSameFilesystem) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto d = TempDir::create("berth-rm-");
  ASSERT_TRUE(d.ok());
  auto canary = test::Canary::create();
  ASSERT_TRUE(canary);
  std::string tree = d->path() + "/tree";
  fs::create_directories(tree + "/a/bound");
  ASSERT_EQ(::mount(canary->path().c_str(), (tree + "/a/bound").c_str(), nullptr, MS_BIND, nullptr),
            0);
  Status st = remove_tree(tree);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.message();
  EXPECT_NE(st.message().find("mounted"), std::string::npos) << st.message();
  ::umount2((tree + "/a/bound").c_str(), MNT_DETACH);
  EXPECT_TRUE(canary->intact()) << canary->report();
  EXPECT_TRUE(remove_tree(tree).ok());
}

TEST(CopyTree, SymlinksToTheHostAreCopiedNotFollowedAtAnyDepth) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto d = TempDir::create("berth-copy-");
  ASSERT_TRUE(d.ok());
  auto canary = test::Canary::create();
  ASSERT_TRUE(canary);
  std::string src = d->path() + "/src", dst = d->path() + "/dst";
  fs::create_directories(src);
  fs::create_directories(dst);
  ASSERT_EQ(::symlink(canary->path().c_str(), (src + "/to-canary").c_str()), 0);
  make_deep(src, 3000, canary->path() + "/victim/precious");
  {
    FewDescriptors few(32);
    Status st = copy_tree(src, dst);
    ASSERT_TRUE(st.ok()) << st.message();
    auto du = disk_usage(dst);
    ASSERT_TRUE(du.ok()) << du.status().message();
    EXPECT_GE(du->inodes, 3000 + 3);
  }
  EXPECT_EQ(fs::read_symlink(dst + "/to-canary"), canary->path());
  EXPECT_TRUE(canary->intact()) << canary->report();
  EXPECT_TRUE(remove_tree(dst).ok());
  EXPECT_TRUE(remove_tree(src).ok());
}

}  // namespace
}  // namespace berth::core

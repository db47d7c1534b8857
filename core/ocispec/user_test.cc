#include "core/ocispec/user.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/fd.h"
#include "core/fs.h"

namespace berth::ocispec {
namespace {

class UserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = core::TempDir::create("berth-user-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(d).value());
    ASSERT_TRUE(core::make_dirs(dir_->path() + "/etc", 0755).ok());
    write("etc/passwd",
          "root:x:0:0:root:/root:/bin/sh\n"
          "# a comment\n"
          "+nis\n"
          "broken line\n"
          "nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n"
          "app:x:1000:1000::/home/app:/bin/sh\n");
    write("etc/group",
          "root:x:0:\n"
          "nginx:x:101:\n"
          "app:x:1000:\n"
          "audio:x:29:app,other\n"
          "video:x:44:other,app\n"
          "staff:x:50:\n");
    root_ = core::Fd(::open(dir_->path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_GE(root_.get(), 0);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_->path() + "/" + name) << text;
  }
  std::optional<core::TempDir> dir_;
  core::Fd root_;
};

TEST_F(UserTest, NamesAndNumbersResolveAsDockerAndContainerdDo) {
  auto u = resolve_user(root_.get(), "nginx");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(*u, (User{101, 101, {}}));
  u = resolve_user(root_.get(), "app");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{1000, 1000, {29, 44}}));
  u = resolve_user(root_.get(), "1000");  // a uid it lists: its primary group and groups
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{1000, 1000, {29, 44}}));
  u = resolve_user(root_.get(), "4242");  // a uid it does not list: gid 0
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{4242, 0, {}}));
  u = resolve_user(root_.get(), "app:staff");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{1000, 50, {29, 44}}));
  u = resolve_user(root_.get(), "nginx:7");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{101, 7, {}}));
  u = resolve_user(-1, "5:6");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, (User{5, 6, {}}));
  EXPECT_FALSE(user_needs_lookup("5:6"));
  EXPECT_TRUE(user_needs_lookup("5:staff"));
  EXPECT_TRUE(user_needs_lookup("nginx"));
}

TEST_F(UserTest, UnknownNamesAndBadSpecsAreNamed) {
  auto u = resolve_user(root_.get(), "nobody");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("\"nobody\""), std::string::npos) << u.status().message();
  u = resolve_user(root_.get(), "app:wheel");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("\"wheel\""), std::string::npos);
  EXPECT_FALSE(resolve_user(root_.get(), "").ok());
  EXPECT_FALSE(resolve_user(root_.get(), "app:").ok());
  EXPECT_FALSE(resolve_user(root_.get(), "4294967295").ok());  // (uid_t)-1 is no uid
  EXPECT_FALSE(resolve_user(-1, "nginx").ok());
}

TEST_F(UserTest, TheImagesFilesNeverLeadToTheHost) {
  // Symlinks that would reach a host file resolve inside the image root, where it is absent.
  std::string host_file = dir_->path() + "-host-passwd";
  std::ofstream(host_file) << "root:x:0:0::/:/bin/sh\n";
  struct Remove {
    std::string p;
    ~Remove() { std::filesystem::remove(p); }
  } remove_host_file{host_file};
  std::filesystem::remove(dir_->path() + "/etc/passwd");
  std::filesystem::create_symlink("../../../../../../.." + host_file, dir_->path() + "/etc/passwd");
  auto u = resolve_user(root_.get(), "root");  // the host file has root; the image has nothing
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("no such user"), std::string::npos) << u.status().message();
  // A FIFO is refused at once instead of blocking the daemon.
  std::filesystem::remove(dir_->path() + "/etc/group");
  ASSERT_EQ(::mkfifo((dir_->path() + "/etc/group").c_str(), 0644), 0);
  write("etc/passwd.real", "app:x:1000:1000::/:/bin/sh\n");
  std::filesystem::remove(dir_->path() + "/etc/passwd");
  std::filesystem::rename(dir_->path() + "/etc/passwd.real", dir_->path() + "/etc/passwd");
  u = resolve_user(root_.get(), "app");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("not a regular file"), std::string::npos) << u.status().message();
}

}  // namespace
}  // namespace berth::ocispec

#include "core/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

namespace berth::core {
namespace {

int openat2_with(int dirfd, const std::string& path, int flags, std::uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = resolve;
  return static_cast<int>(
      ::syscall(SYS_openat2, dirfd, path.empty() ? "." : path.c_str(), &how, sizeof how));
}

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "/" + b;
}

}  // namespace

int open_in_root(int root, const std::string& path, int flags) {
  return openat2_with(root, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

int open_beneath(int dirfd, const std::string& path, int flags) {
  return openat2_with(
      dirfd, path, flags,
      RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
}

Result<std::vector<std::string>> list_dir_at(int dirfd) {
  // A description of its own: the directory offset is not shared with dirfd.
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open directory to list it");
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    return from_errno(err, "fdopendir");
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  int err = errno;
  ::closedir(d);
  if (err) return from_errno(err, "readdir");
  return names;
}

Result<std::uint64_t> mount_id_at(int dirfd, const std::string& name) {
  struct statx stx {};
  int flags = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
  if (::statx(dirfd, name.c_str(), flags, STATX_MNT_ID, &stx) < 0)
    return from_errno(errno, "statx \"{}\"", name);
  if (!(stx.stx_mask & STATX_MNT_ID)) return std::uint64_t{0};  // kernel < 5.8: unknown
  return static_cast<std::uint64_t>(stx.stx_mnt_id);
}

Result<DirCursor> DirCursor::open(int dirfd, const std::string& name, std::string display) {
  DirCursor c;
  c.display_ = std::move(display);
  c.fd_ = Fd(::openat(dirfd, name.empty() ? "." : name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (c.fd_.get() < 0) return from_errno(errno, "open directory \"{}\"", c.display_);
  Level top{name, {}};
  if (::fstat(c.fd_.get(), &top.st) < 0) return from_errno(errno, "stat \"{}\"", c.display_);
  c.levels_.push_back(std::move(top));
  BERTH_TRY(c.mount_id_, mount_id_at(c.fd_.get(), ""));
  return c;
}

Result<DirCursor> DirCursor::open(const std::string& path) { return open(AT_FDCWD, path, path); }

std::string DirCursor::rel(const std::string& child) const {
  std::string out;
  for (std::size_t i = 1; i < levels_.size(); ++i) {
    if (!out.empty()) out += '/';
    out += levels_[i].name;
  }
  if (!child.empty()) {
    if (!out.empty()) out += '/';
    out += child;
  }
  return out;
}

std::string DirCursor::display(const std::string& child) const {
  return join(display_, rel(child));
}

Status DirCursor::descend(const std::string& name) {
  Fd child(::openat(fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (child.get() < 0) return from_errno(errno, "open directory \"{}\"", display(name));
  Level l{name, {}};
  if (::fstat(child.get(), &l.st) < 0) return from_errno(errno, "stat \"{}\"", display(name));
  BERTH_TRY(auto mnt, mount_id_at(child.get(), ""));
  if (mnt != mount_id_ || l.st.st_dev != levels_.front().st.st_dev) {
    return failed_precondition("\"{}\" is a mount point; not crossing it", display(name));
  }
  fd_ = std::move(child);
  levels_.push_back(std::move(l));
  return Status();
}

Status DirCursor::ascend() {
  if (levels_.size() < 2) return failed_precondition("ascend above the top of \"{}\"", display_);
  Fd up(::openat(fd_.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (up.get() < 0) return from_errno(errno, "open the parent of \"{}\"", display());
  struct stat st {};
  if (::fstat(up.get(), &st) < 0) return from_errno(errno, "stat the parent of \"{}\"", display());
  const struct stat& want = levels_[levels_.size() - 2].st;
  if (st.st_dev != want.st_dev || st.st_ino != want.st_ino) {
    return Status(Code::kAborted,
                  fmt::format("\"{}\" was moved while it was walked; stopped", display()));
  }
  levels_.pop_back();
  fd_ = std::move(up);
  return Status();
}

Status remove_at(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return Status();
  if (errno != EISDIR) return from_errno(errno, "unlink \"{}\"", name);
  BERTH_TRY(auto parent_mnt, mount_id_at(dirfd, ""));
  auto child_mnt = mount_id_at(dirfd, name);
  if (!child_mnt.ok())
    return child_mnt.status().code() == Code::kNotFound ? Status() : child_mnt.status();
  if (parent_mnt != *child_mnt)
    return failed_precondition("refusing to remove \"{}\": a filesystem is mounted there", name);
  auto cursor = DirCursor::open(dirfd, name, name);
  if (!cursor.ok()) {
    if (cursor.status().code() == Code::kNotFound) return Status();
    return cursor.status();
  }
  DirCursor& c = *cursor;
  // One list of names still to remove per level; a directory is removed once its list is empty.
  std::vector<std::vector<std::string>> pending;
  auto enter = [&]() -> Status {
    // Directories made read-only (by a layer) must be writable to be emptied (matters without
    // CAP_DAC_OVERRIDE).
    if ((c.stat().st_mode & 0700) != 0700) ::fchmod(c.fd(), (c.stat().st_mode & 07777) | 0700);
    BERTH_TRY(auto names, list_dir_at(c.fd()));
    pending.push_back(std::move(names));
    return Status();
  };
  BERTH_RETURN_IF_ERROR(enter());
  while (!pending.empty()) {
    auto& names = pending.back();
    if (!names.empty()) {
      std::string n = std::move(names.back());
      names.pop_back();
      if (::unlinkat(c.fd(), n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR) return from_errno(errno, "unlink \"{}\"", c.display(n));
      Status st = c.descend(n);
      if (!st.ok()) {
        if (st.code() == Code::kNotFound) continue;
        return st.code() == Code::kFailedPrecondition
                   ? failed_precondition("refusing to remove \"{}\": a filesystem is mounted there",
                                         c.display(n))
                   : st;
      }
      BERTH_RETURN_IF_ERROR(enter());
      continue;
    }
    pending.pop_back();
    if (pending.empty()) break;
    std::string done = c.name();
    BERTH_RETURN_IF_ERROR(c.ascend());
    if (::unlinkat(c.fd(), done.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
      return from_errno(errno, "rmdir \"{}\"", c.display(done));
  }
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
    return from_errno(errno, "rmdir \"{}\"", name);
  return Status();
}

}  // namespace berth::core

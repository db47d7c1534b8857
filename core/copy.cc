#include "core/copy.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <map>
#include <set>
#include <vector>

#include "core/fd.h"
#include "core/tree.h"

namespace berth::core {
namespace {

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const InodeKey& o) const { return std::tie(dev, ino) < std::tie(o.dev, o.ino); }
};

// An inode whose xattrs are read or written: an open descriptor, or a name in a directory
// descriptor (symlinks and device nodes, which are not opened), reached through
// /proc/self/fd/<dir>/<name> with the l*xattr calls so the name itself is never followed.
struct XattrFile {
  int fd = -1;
  std::string path;  // set when fd is not
  static XattrFile of_fd(int fd) { return {fd, {}}; }
  static XattrFile in_dir(int dirfd, const std::string& name) {
    return {-1, "/proc/self/fd/" + std::to_string(dirfd) + "/" + name};
  }
  ssize_t list(char* buf, std::size_t n) const {
    return fd >= 0 ? ::flistxattr(fd, buf, n) : ::llistxattr(path.c_str(), buf, n);
  }
  ssize_t get(const char* name, void* buf, std::size_t n) const {
    return fd >= 0 ? ::fgetxattr(fd, name, buf, n) : ::lgetxattr(path.c_str(), name, buf, n);
  }
  int set(const char* name, const void* v, std::size_t n) const {
    return fd >= 0 ? ::fsetxattr(fd, name, v, n, 0) : ::lsetxattr(path.c_str(), name, v, n, 0);
  }
};

// security.* and trusted.* may be refused to unprivileged callers or by the target filesystem;
// such failures are not fatal.
Status copy_xattrs(const XattrFile& src, const XattrFile& dst, const std::string& display) {
  ssize_t len = src.list(nullptr, 0);
  if (len <= 0) return Status();
  std::string names(static_cast<std::size_t>(len), '\0');
  len = src.list(names.data(), names.size());
  if (len < 0) return Status();
  for (std::size_t i = 0; i < static_cast<std::size_t>(len);) {
    std::string name(names.c_str() + i);
    i += name.size() + 1;
    ssize_t vlen = src.get(name.c_str(), nullptr, 0);
    if (vlen < 0) continue;
    std::string value(static_cast<std::size_t>(vlen), '\0');
    vlen = src.get(name.c_str(), value.data(), value.size());
    if (vlen < 0) continue;
    if (dst.set(name.c_str(), value.data(), static_cast<std::size_t>(vlen)) < 0) {
      bool optional = name.rfind("security.", 0) == 0 || name.rfind("trusted.", 0) == 0;
      if (!(optional && (errno == EPERM || errno == ENOTSUP))) {
        return from_errno(errno, "setxattr {} on \"{}\"", name, display);
      }
    }
  }
  return Status();
}

Status copy_data(int in, int out, const struct stat& st, const std::string& src) {
  if (::ioctl(out, FICLONE, in) == 0) return Status();
  // Copy only the data extents; holes stay holes because the file is sized with ftruncate.
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      data = pos;                 // SEEK_DATA unsupported: copy everything
    }
    off_t hole = ::lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    off_t in_off = data, out_off = data;
    while (in_off < hole) {
      ssize_t n =
          ::copy_file_range(in, &in_off, out, &out_off, static_cast<std::size_t>(hole - in_off), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL) {
          // Fallback: plain read/write for this extent.
          std::vector<char> buf(1 << 20);
          while (in_off < hole) {
            ssize_t r = ::pread(in, buf.data(), std::min<off_t>(buf.size(), hole - in_off), in_off);
            if (r <= 0) return from_errno(r < 0 ? errno : EIO, "read \"{}\"", src);
            if (::pwrite(out, buf.data(), static_cast<std::size_t>(r), out_off) != r) {
              return from_errno(errno, "write copy of \"{}\"", src);
            }
            in_off += r;
            out_off += r;
          }
          break;
        }
        return from_errno(errno, "copy_file_range \"{}\"", src);
      }
      if (n == 0) break;
    }
    pos = hole;
  }
  if (::ftruncate(out, st.st_size) < 0) return from_errno(errno, "truncate copy of \"{}\"", src);
  return Status();
}

// Copies src's tree into dst with two cursors moving in step: every source entry is opened or
// read relative to the directory descriptor it was listed from.
class Copier {
 public:
  Copier(DirCursor src, DirCursor dst, Fd dst_top)
      : src_(std::move(src)), dst_(std::move(dst)), dst_top_(std::move(dst_top)) {}

  Status run() {
    std::vector<std::vector<std::string>> pending;
    BERTH_TRY(auto top, list_dir_at(src_.fd()));
    pending.push_back(std::move(top));
    while (!pending.empty()) {
      auto& names = pending.back();
      if (!names.empty()) {
        std::string n = std::move(names.back());
        names.pop_back();
        BERTH_TRY(bool is_dir, copy_entry(n));
        if (!is_dir) continue;
        BERTH_RETURN_IF_ERROR(src_.descend(n));
        BERTH_RETURN_IF_ERROR(dst_.descend(n));
        BERTH_TRY(auto below, list_dir_at(src_.fd()));
        pending.push_back(std::move(below));
        continue;
      }
      BERTH_RETURN_IF_ERROR(finish_dir());
      pending.pop_back();
      if (pending.empty()) break;
      BERTH_RETURN_IF_ERROR(src_.ascend());
      BERTH_RETURN_IF_ERROR(dst_.ascend());
    }
    return Status();
  }

 private:
  Status finish_dir() {
    const struct stat& st = src_.stat();
    std::string display = dst_.display();
    if (::fchown(dst_.fd(), st.st_uid, st.st_gid) < 0)
      return from_errno(errno, "chown \"{}\"", display);
    if (::fchmod(dst_.fd(), st.st_mode & 07777) < 0)
      return from_errno(errno, "chmod \"{}\"", display);
    BERTH_RETURN_IF_ERROR(
        copy_xattrs(XattrFile::of_fd(src_.fd()), XattrFile::of_fd(dst_.fd()), display));
    timespec times[2] = {st.st_atim, st.st_mtim};
    if (::futimens(dst_.fd(), times) < 0) return from_errno(errno, "utimensat \"{}\"", display);
    return Status();
  }

  // Owner, mode, xattrs and times of an entry that is not opened (symlink, node).
  Status finish_at(const std::string& n, const struct stat& st) {
    std::string display = dst_.display(n);
    if (::fchownat(dst_.fd(), n.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
      return from_errno(errno, "lchown \"{}\"", display);
    if (!S_ISLNK(st.st_mode) &&
        ::fchmodat(dst_.fd(), n.c_str(), st.st_mode & 07777, AT_SYMLINK_NOFOLLOW) < 0) {
      return from_errno(errno, "chmod \"{}\"", display);
    }
    BERTH_RETURN_IF_ERROR(
        copy_xattrs(XattrFile::in_dir(src_.fd(), n), XattrFile::in_dir(dst_.fd(), n), display));
    timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(dst_.fd(), n.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0)
      return from_errno(errno, "utimensat \"{}\"", display);
    return Status();
  }

  // Copies one entry; a directory is only created (the caller descends into it).
  Result<bool> copy_entry(const std::string& n) {
    struct stat st {};
    if (::fstatat(src_.fd(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      return from_errno(errno, "lstat \"{}\"", src_.display(n));
    std::string display = dst_.display(n);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto it = links_.find({st.st_dev, st.st_ino});
      if (it != links_.end()) {
        const std::string& first = it->second;
        auto slash = first.rfind('/');
        std::string dir = slash == std::string::npos ? "" : first.substr(0, slash);
        std::string base = slash == std::string::npos ? first : first.substr(slash + 1);
        Fd parent(open_beneath(dst_top_.get(), dir, O_PATH | O_DIRECTORY));
        if (parent.get() < 0 || ::linkat(parent.get(), base.c_str(), dst_.fd(), n.c_str(), 0) < 0)
          return from_errno(errno, "link \"{}\" to \"{}\"", display, first);
        return false;
      }
      links_[{st.st_dev, st.st_ino}] = dst_.rel(n);
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(dst_.fd(), n.c_str(), 0700) < 0)
        return from_errno(errno, "mkdir \"{}\"", display);
      return true;
    }
    if (S_ISREG(st.st_mode)) {
      Fd in(::openat(src_.fd(), n.c_str(),
                     O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
      if (in.get() < 0) return from_errno(errno, "open \"{}\"", src_.display(n));
      Fd out(::openat(dst_.fd(), n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                      0600));
      if (out.get() < 0) return from_errno(errno, "create \"{}\"", display);
      struct stat ist {};
      if (::fstat(in.get(), &ist) < 0) return from_errno(errno, "stat \"{}\"", src_.display(n));
      if (!S_ISREG(ist.st_mode))
        return Status(Code::kAborted,
                      fmt::format("\"{}\" changed while it was copied", src_.display(n)));
      BERTH_RETURN_IF_ERROR(copy_data(in.get(), out.get(), ist, src_.display(n)));
      if (::fchown(out.get(), st.st_uid, st.st_gid) < 0)
        return from_errno(errno, "chown \"{}\"", display);
      if (::fchmod(out.get(), st.st_mode & 07777) < 0)
        return from_errno(errno, "chmod \"{}\"", display);
      BERTH_RETURN_IF_ERROR(
          copy_xattrs(XattrFile::of_fd(in.get()), XattrFile::of_fd(out.get()), display));
      timespec times[2] = {st.st_atim, st.st_mtim};
      if (::futimens(out.get(), times) < 0) return from_errno(errno, "utimensat \"{}\"", display);
      return false;
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t len = ::readlinkat(src_.fd(), n.c_str(), target.data(), target.size());
      if (len < 0) return from_errno(errno, "readlink \"{}\"", src_.display(n));
      target.resize(static_cast<std::size_t>(len));
      if (::symlinkat(target.c_str(), dst_.fd(), n.c_str()) < 0)
        return from_errno(errno, "symlink \"{}\"", display);
      BERTH_RETURN_IF_ERROR(finish_at(n, st));
      return false;
    }
    // Device nodes, fifos, sockets.
    if (::mknodat(dst_.fd(), n.c_str(), st.st_mode, st.st_rdev) < 0)
      return from_errno(errno, "mknod \"{}\"", display);
    BERTH_RETURN_IF_ERROR(finish_at(n, st));
    return false;
  }

  DirCursor src_, dst_;
  Fd dst_top_;
  std::map<InodeKey, std::string> links_;  // first copy of a multiply-linked inode, below dst
};

}  // namespace

Status copy_tree(const std::string& src, const std::string& dst) {
  BERTH_TRY(auto s, DirCursor::open(src));
  BERTH_TRY(auto d, DirCursor::open(dst));
  Fd top(::open(dst.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (top.get() < 0) return from_errno(errno, "open \"{}\"", dst);
  Copier c(std::move(s), std::move(d), std::move(top));
  return c.run();
}

Result<DiskUsage> disk_usage(const std::string& path) {
  DiskUsage u;
  auto cursor = DirCursor::open(path);
  if (!cursor.ok()) {
    if (cursor.status().code() == Code::kNotFound) return u;
    return cursor.status();
  }
  DirCursor& c = *cursor;
  std::set<InodeKey> seen;
  auto count = [&](const struct stat& st) {
    if (seen.insert({st.st_dev, st.st_ino}).second) {
      u.inodes++;
      u.size += static_cast<std::int64_t>(st.st_blocks) * 512;
    }
  };
  count(c.stat());
  std::vector<std::vector<std::string>> pending;
  BERTH_TRY(auto top, list_dir_at(c.fd()));
  pending.push_back(std::move(top));
  while (!pending.empty()) {
    auto& names = pending.back();
    if (names.empty()) {
      pending.pop_back();
      if (!pending.empty()) BERTH_RETURN_IF_ERROR(c.ascend());
      continue;
    }
    std::string n = std::move(names.back());
    names.pop_back();
    struct stat st {};
    if (::fstatat(c.fd(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) continue;
      return from_errno(errno, "lstat \"{}\"", c.display(n));
    }
    count(st);
    if (!S_ISDIR(st.st_mode)) continue;
    Status d = c.descend(n);
    if (d.code() == Code::kNotFound || d.code() == Code::kFailedPrecondition) continue;
    BERTH_RETURN_IF_ERROR(d);
    BERTH_TRY(auto below, list_dir_at(c.fd()));
    pending.push_back(std::move(below));
  }
  return u;
}

Status remove_tree(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty() || p == "/")
    return invalid_argument("remove_tree: refusing to remove \"{}\"", path);
  auto slash = p.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  if (base == "." || base == "..") return invalid_argument("remove_tree: refusing \"{}\"", path);
  Fd parent(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.get() < 0) {
    if (errno == ENOENT) return Status();
    return from_errno(errno, "open \"{}\"", dir);
  }
  Status st = remove_at(parent.get(), base);
  if (!st.ok()) return st.with_context(fmt::format("remove \"{}\"", path));
  return Status();
}

}  // namespace berth::core

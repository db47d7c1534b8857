#include "core/copy.h"

#include "core/fd.h"
#include <dirent.h>
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

namespace berth::core {
namespace {

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const InodeKey& o) const { return std::tie(dev, ino) < std::tie(o.dev, o.ino); }
};


Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return from_errno(errno, "opendir \"{}\"", path);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  return names;
}

// Copies xattrs by path without following symlinks. security.* and trusted.* may be refused to
// unprivileged callers or by the target filesystem; such failures are not fatal.
Status copy_xattrs(const std::string& src, const std::string& dst) {
  ssize_t len = ::llistxattr(src.c_str(), nullptr, 0);
  if (len <= 0) return Status();
  std::string names(static_cast<std::size_t>(len), '\0');
  len = ::llistxattr(src.c_str(), names.data(), names.size());
  if (len < 0) return Status();
  for (std::size_t i = 0; i < static_cast<std::size_t>(len);) {
    std::string name(names.c_str() + i);
    i += name.size() + 1;
    ssize_t vlen = ::lgetxattr(src.c_str(), name.c_str(), nullptr, 0);
    if (vlen < 0) continue;
    std::string value(static_cast<std::size_t>(vlen), '\0');
    vlen = ::lgetxattr(src.c_str(), name.c_str(), value.data(), value.size());
    if (vlen < 0) continue;
    if (::lsetxattr(dst.c_str(), name.c_str(), value.data(), static_cast<std::size_t>(vlen), 0) <
        0) {
      bool optional = name.rfind("security.", 0) == 0 || name.rfind("trusted.", 0) == 0;
      if (!(optional && (errno == EPERM || errno == ENOTSUP))) {
        return from_errno(errno, "setxattr {} on \"{}\"", name, dst);
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

Status set_times(const std::string& dst, const struct stat& st) {
  timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW) < 0) {
    return from_errno(errno, "utimensat \"{}\"", dst);
  }
  return Status();
}

class Copier {
 public:
  Status copy_dir(const std::string& src, const std::string& dst, const struct stat& st) {
    BERTH_TRY(auto names, list_dir(src));
    for (const auto& n : names) BERTH_RETURN_IF_ERROR(copy_entry(src + "/" + n, dst + "/" + n));
    return finish(dst, st, src);
  }

 private:
  Status finish(const std::string& dst, const struct stat& st, const std::string& src) {
    if (::lchown(dst.c_str(), st.st_uid, st.st_gid) < 0)
      return from_errno(errno, "lchown \"{}\"", dst);
    if (!S_ISLNK(st.st_mode) && ::chmod(dst.c_str(), st.st_mode & 07777) < 0) {
      return from_errno(errno, "chmod \"{}\"", dst);
    }
    BERTH_RETURN_IF_ERROR(copy_xattrs(src, dst));
    return set_times(dst, st);
  }

  Status copy_entry(const std::string& src, const std::string& dst) {
    struct stat st {};
    if (::lstat(src.c_str(), &st) < 0) return from_errno(errno, "lstat \"{}\"", src);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto it = links_.find({st.st_dev, st.st_ino});
      if (it != links_.end()) {
        if (::link(it->second.c_str(), dst.c_str()) < 0)
          return from_errno(errno, "link \"{}\"", dst);
        return Status();
      }
      links_[{st.st_dev, st.st_ino}] = dst;
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(dst.c_str(), 0700) < 0) return from_errno(errno, "mkdir \"{}\"", dst);
      return copy_dir(src, dst, st);
    }
    if (S_ISREG(st.st_mode)) {
      Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (in.get() < 0) return from_errno(errno, "open \"{}\"", src);
      Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (out.get() < 0) return from_errno(errno, "create \"{}\"", dst);
      BERTH_RETURN_IF_ERROR(copy_data(in.get(), out.get(), st, src));
      return finish(dst, st, src);
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(src.c_str(), target.data(), target.size());
      if (n < 0) return from_errno(errno, "readlink \"{}\"", src);
      target.resize(static_cast<std::size_t>(n));
      if (::symlink(target.c_str(), dst.c_str()) < 0)
        return from_errno(errno, "symlink \"{}\"", dst);
      return finish(dst, st, src);
    }
    // Device nodes, fifos, sockets.
    if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) < 0)
      return from_errno(errno, "mknod \"{}\"", dst);
    return finish(dst, st, src);
  }

  std::map<InodeKey, std::string> links_;
};

Status usage_walk(const std::string& path, std::set<InodeKey>& seen, DiskUsage& u) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return Status();
    return from_errno(errno, "lstat \"{}\"", path);
  }
  if (seen.insert({st.st_dev, st.st_ino}).second) {
    u.inodes++;
    u.size += static_cast<std::int64_t>(st.st_blocks) * 512;
  }
  if (S_ISDIR(st.st_mode)) {
    BERTH_TRY(auto names, list_dir(path));
    for (const auto& n : names) BERTH_RETURN_IF_ERROR(usage_walk(path + "/" + n, seen, u));
  }
  return Status();
}

}  // namespace

Status copy_tree(const std::string& src, const std::string& dst) {
  struct stat st {};
  if (::lstat(src.c_str(), &st) < 0) return from_errno(errno, "lstat \"{}\"", src);
  if (!S_ISDIR(st.st_mode)) return invalid_argument("copy_tree: \"{}\" is not a directory", src);
  Copier c;
  return c.copy_dir(src, dst, st);
}

Result<DiskUsage> disk_usage(const std::string& path) {
  DiskUsage u;
  std::set<InodeKey> seen;
  BERTH_RETURN_IF_ERROR(usage_walk(path, seen, u));
  return u;
}

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return Status();
    return from_errno(errno, "lstat \"{}\"", path);
  }
  if (S_ISDIR(st.st_mode)) {
    // Directories created read-only (e.g. by a layer) must be made writable to empty them.
    if ((st.st_mode & 0700) != 0700) ::chmod(path.c_str(), (st.st_mode & 07777) | 0700);
    BERTH_TRY(auto names, list_dir(path));
    for (const auto& n : names) {
      std::string child = path + "/" + n;
      struct stat cst {};
      if (::lstat(child.c_str(), &cst) == 0 && S_ISDIR(cst.st_mode) && cst.st_dev != st.st_dev) {
        return failed_precondition("refusing to remove \"{}\": a filesystem is mounted there",
                                   child);
      }
      BERTH_RETURN_IF_ERROR(remove_tree(child));
    }
    if (::rmdir(path.c_str()) < 0 && errno != ENOENT)
      return from_errno(errno, "rmdir \"{}\"", path);
    return Status();
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return from_errno(errno, "unlink \"{}\"", path);
  return Status();
}

}  // namespace berth::core

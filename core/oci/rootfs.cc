// The container's root filesystem, built by the init before pivot_root: the spec's mounts made
// detached and attached on descriptors resolved inside the root, /dev, the propagation of the
// rootfs's parent, pivot_root, masked and read-only paths, sysctls.
#include "core/oci/rootfs.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "core/fd.h"
#include "core/fs.h"
#include "core/mount.h"
#include "core/tree.h"

namespace berth::oci {
namespace {

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
constexpr DefaultDevice kDefaultDevices[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},
                                             {"/dev/full", 1, 7},    {"/dev/random", 1, 8},
                                             {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};

Status mount_at(const std::string& source, int target_fd, const char* type, unsigned long flags,
                const std::string& data, const std::string& shown) {
  std::string target = fd_path(target_fd);
  if (::mount(source.c_str(), target.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) <
      0)
    return from_errno(errno, "mount {} on {}", source.empty() ? (type ? type : "?") : source,
                      shown);
  return Status();
}

bool is_dir_path(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The new mount API for one spec mount: the mount is made detached (open_tree of the bind
// source, or fsopen/fsconfig/fsmount), given its flags (recursively for rbind: "ro" makes every
// submount read-only too) and propagation, then attached onto the destination's descriptor,
// which was resolved inside the rootfs. Nothing is resolved by path again afterwards, so another
// container sharing the volume cannot swap the destination for a symlink between the mount and
// a remount (CVE-2021-30465). Unimplemented when the kernel lacks the API (the caller falls back).
Status attach_detached(int tree, int target_fd, const core::MountFlags& f, bool recursive,
                       const std::string& shown) {
  mount_attr attr{};
  if (f.flags & MS_RDONLY) attr.attr_set |= MOUNT_ATTR_RDONLY;
  if (f.flags & MS_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
  if (f.flags & MS_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
  if (f.flags & MS_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
  if (f.flags & MS_NODIRATIME) attr.attr_set |= MOUNT_ATTR_NODIRATIME;
  if (f.flags & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME)) {
    attr.attr_clr |= MOUNT_ATTR__ATIME;
    attr.attr_set |= (f.flags & MS_NOATIME)       ? MOUNT_ATTR_NOATIME
                     : (f.flags & MS_STRICTATIME) ? MOUNT_ATTR_STRICTATIME
                                                  : MOUNT_ATTR_RELATIME;
  }
  unsigned at = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
  if ((attr.attr_set || attr.attr_clr) && ::mount_setattr(tree, "", at, &attr, sizeof attr) < 0)
    return from_errno(errno, "set the flags of the mount for {}", shown);
  if (f.propagation) {
    mount_attr prop{};
    prop.propagation = f.propagation & ~static_cast<unsigned long>(MS_REC);
    unsigned pat = AT_EMPTY_PATH | ((f.propagation & MS_REC) ? AT_RECURSIVE : 0);
    if (::mount_setattr(tree, "", pat, &prop, sizeof prop) < 0)
      return from_errno(errno, "set the propagation of the mount for {}", shown);
  }
  if (::move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return from_errno(errno, "attach the mount on {}", shown);
  return Status();
}

Status bind_detached(const std::string& source, int target_fd, const core::MountFlags& f,
                     const std::string& shown) {
  bool recursive = f.flags & MS_REC;
  core::Fd tree(::open_tree(AT_FDCWD, source.c_str(),
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0)));
  if (tree.get() < 0) {
    if (errno == ENOSYS) return Status(Code::kUnimplemented, "no open_tree");
    return from_errno(errno, "bind {} on {}", source, shown);
  }
  return attach_detached(tree.get(), target_fd, f, recursive, shown);
}

// The filesystem's own messages (fsconfig/fsmount errors), for the error text.
std::string fs_log(int fs) {
  std::string out;
  char buf[512];
  for (int i = 0; i < 8; ++i) {
    ssize_t n = ::read(fs, buf, sizeof buf - 1);
    if (n <= 0) break;
    buf[n] = '\0';
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "" : " (" + out + ")";
}

Status fs_detached(const std::string& type, const std::string& source, int target_fd,
                   const core::MountFlags& f, const std::string& shown) {
  core::Fd fs(static_cast<int>(::syscall(SYS_fsopen, type.c_str(), 1U /* FSOPEN_CLOEXEC */)));
  if (fs.get() < 0) {
    if (errno == ENOSYS) return Status(Code::kUnimplemented, "no fsopen");
    return from_errno(errno, "mount {} on {}: fsopen", type, shown);
  }
  auto config = [&](unsigned cmd, const char* key, const char* value) -> Status {
    if (::syscall(SYS_fsconfig, fs.get(), cmd, key, value, 0) < 0) {
      int err = errno;
      return from_errno(err, "mount {} on {}: {}{}", type, shown,
                        key ? std::string(key) + (value ? "=" + std::string(value) : "") : "create",
                        fs_log(fs.get()));
    }
    return Status();
  };
  constexpr unsigned kSetFlag = 0, kSetString = 1, kCreate = 6;
  if (!source.empty() && source != "none")
    BERTH_RETURN_IF_ERROR(config(kSetString, "source", source.c_str()));
  for (const auto& d : f.data) {
    auto eq = d.find('=');
    if (eq == std::string::npos) {
      BERTH_RETURN_IF_ERROR(config(kSetFlag, d.c_str(), nullptr));
    } else {
      std::string key = d.substr(0, eq), value = d.substr(eq + 1);
      BERTH_RETURN_IF_ERROR(config(kSetString, key.c_str(), value.c_str()));
    }
  }
  BERTH_RETURN_IF_ERROR(config(kCreate, nullptr, nullptr));
  core::Fd mnt(static_cast<int>(::syscall(SYS_fsmount, fs.get(), 1U /* FSMOUNT_CLOEXEC */, 0U)));
  if (mnt.get() < 0)
    return from_errno(errno, "mount {} on {}: fsmount{}", type, shown, fs_log(fs.get()));
  return attach_detached(mnt.get(), target_fd, f, false, shown);
}

Status make_device(int root_fd, const std::string& path, mode_t type, unsigned major,
                   unsigned minor, mode_t mode, uid_t uid, gid_t gid, bool in_userns) {
  std::string parent = path.substr(0, path.rfind('/'));
  std::string name = path.substr(path.rfind('/') + 1);
  BERTH_TRY(int dir, open_in_root(root_fd, parent.empty() ? "/" : parent, true, true));
  int real = ::openat(dir, ".", O_DIRECTORY | O_CLOEXEC);
  ::close(dir);
  if (real < 0) return from_errno(errno, "open {}", parent);
  ::unlinkat(real, name.c_str(), 0);
  Status st;
  if (!in_userns &&
      ::mknodat(real, name.c_str(), type | (mode & 07777), makedev(major, minor)) == 0) {
    if (::fchownat(real, name.c_str(), uid, gid, 0) < 0) st = from_errno(errno, "chown {}", path);
    ::fchmodat(real, name.c_str(), mode & 07777, 0);
  } else if (type == S_IFCHR || type == S_IFBLK) {
    // Without CAP_MKNOD (user namespaces): bind the host's device node.
    int file = ::openat(real, name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0000);
    if (file < 0)
      st = from_errno(errno, "create {}", path);
    else {
      ::close(file);
      std::string host = path;
      std::string target = fd_path(real) + "/" + name;
      if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) < 0)
        st = from_errno(errno, "bind device {}", path);
    }
  } else {
    st = from_errno(errno, "mknod {}", path);
  }
  ::close(real);
  return st;
}

bool has_mount_at(const Spec& s, const std::string& dest) {
  for (const auto& m : s.mounts) {
    if (m.destination == dest) return true;
  }
  return false;
}

}  // namespace

// One entry of spec.mounts, inside the rootfs.
Status do_mount(const InitConfig& c, int root_fd, const Mount& m) {
  core::MountFlags f = core::parse_mount_options(m.options);
  bool bind = m.type == "bind" || (f.flags & MS_BIND);
  std::string source = m.source;
  if (bind && !source.empty() && source.front() != '/') source = c.bundle + "/" + source;
  bool as_dir = !bind || is_dir_path(source);
  if (m.type == "cgroup" || m.type == "cgroup2") as_dir = true;
  BERTH_TRY(int target, open_in_root(root_fd, m.destination, true, as_dir));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{target};
  std::string data;
  for (std::size_t i = 0; i < f.data.size(); ++i) data += (i ? "," : "") + f.data[i];
  // Remounts and propagation changes must address the new mount, not the directory under it.
  auto remount = [&](unsigned long flags, const std::string& d) -> Status {
    BERTH_TRY(int top, open_in_root(root_fd, m.destination, false, as_dir));
    Status st = mount_at("", top, nullptr, flags, d, m.destination);
    ::close(top);
    return st;
  };
  if (m.type == "cgroup" && c.cgroup_dirs.size() != 1) {
    // cgroup v1 (or hybrid): a tmpfs with the container's own cgroup of every hierarchy bound in.
    BERTH_RETURN_IF_ERROR(
        mount_at("tmpfs", target, "tmpfs", f.flags & ~MS_RDONLY, "mode=755", m.destination));
    BERTH_TRY(int top, open_in_root(root_fd, m.destination, false, true));
    int real = ::openat(top, ".", O_DIRECTORY | O_CLOEXEC);
    ::close(top);
    if (real < 0) return from_errno(errno, "open {}", m.destination);
    Status st;
    for (std::size_t i = 0; st.ok() && i < c.cgroup_dirs.size(); ++i) {
      const std::string& name = c.cgroup_mounts[i];
      ::mkdirat(real, name.c_str(), 0755);
      std::string where = fd_path(real) + "/" + name;
      if (::mount(c.cgroup_dirs[i].c_str(), where.c_str(), nullptr, MS_BIND | MS_REC, nullptr) <
          0) {
        st = from_errno(errno, "bind cgroup {} on {}/{}", c.cgroup_dirs[i], m.destination, name);
      } else if (f.flags & MS_RDONLY) {
        int sub = ::openat(real, name.c_str(), O_PATH | O_CLOEXEC | O_DIRECTORY);
        if (::mount(nullptr, fd_path(sub).c_str(), nullptr,
                    MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    nullptr) < 0)
          st = from_errno(errno, "remount {}/{} read-only", m.destination, name);
        ::close(sub);
      }
    }
    ::close(real);
    BERTH_RETURN_IF_ERROR(st);
    if (f.flags & MS_RDONLY)
      BERTH_RETURN_IF_ERROR(remount(
          MS_REMOUNT | MS_RDONLY | (f.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), "mode=755"));
    return Status();
  }
  if (m.type == "cgroup" || m.type == "cgroup2") {
    // cgroup v2: its own mount when the container has a cgroup namespace, else a bind.
    bool own_ns = c.spec->linux.find("cgroup") != nullptr;
    if (own_ns) {
      Status st = mount_at("cgroup2", target, "cgroup2", f.flags, data, m.destination);
      if (st.ok()) return st;
    }
    BERTH_RETURN_IF_ERROR(mount_at(c.cgroup_dirs.empty() ? "/sys/fs/cgroup" : c.cgroup_dirs[0],
                                   target, nullptr, MS_BIND | MS_REC, "", m.destination));
    if (f.flags & MS_RDONLY) BERTH_RETURN_IF_ERROR(remount(MS_BIND | MS_REMOUNT | MS_RDONLY, ""));
    return Status();
  }
  if (bind) {
    core::MountFlags bf = f;
    bf.flags |= MS_BIND | (m.type == "rbind" ? MS_REC : 0);
    Status st = bind_detached(source, target, bf, m.destination);
    if (st.code() != Code::kUnimplemented) return st;
    BERTH_RETURN_IF_ERROR(
        mount_at(source, target, nullptr, MS_BIND | (f.flags & MS_REC), "", m.destination));
    unsigned long extra = f.flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (extra) {
      // Flags on a bind take a remount; locked flags (nosuid, nodev from the source) are kept.
      struct statvfs sv {};
      unsigned long keep = 0;
      if (::statvfs(source.c_str(), &sv) == 0) {
        if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
      }
      BERTH_RETURN_IF_ERROR(remount(MS_BIND | MS_REMOUNT | extra | keep, ""));
    }
  } else {
    std::string type = m.type.empty() ? "none" : m.type;
    Status st = fs_detached(type, m.source, target, f, m.destination);
    if (st.code() != Code::kUnimplemented) {
      if (!st.ok() && type == "sysfs" && st.code() == Code::kPermissionDenied) {
        // sysfs cannot be mounted in a user namespace without its own network namespace.
        core::MountFlags sf = f;
        sf.flags |= MS_BIND | MS_REC | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        st = bind_detached("/sys", target, sf, m.destination);
      }
      return st;
    }
    st = mount_at(m.source, target, type.c_str(), f.flags, data, m.destination);
    if (!st.ok() && type == "sysfs" && (errno == EPERM || errno == EBUSY)) {
      // sysfs cannot be mounted in a user namespace without its own network namespace: bind it.
      st = mount_at("/sys", target, nullptr, MS_BIND | MS_REC, "", m.destination);
      if (st.ok() && (f.flags & MS_RDONLY))
        st = remount(MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
    }
    BERTH_RETURN_IF_ERROR(st);
  }
  if (f.propagation) {
    BERTH_TRY(int top, open_in_root(root_fd, m.destination, false, as_dir));
    int rc = ::mount(nullptr, fd_path(top).c_str(), nullptr, f.propagation, nullptr);
    int err = errno;
    ::close(top);
    if (rc < 0) return from_errno(err, "set propagation of {}", m.destination);
  }
  return Status();
}

Status setup_dev(const InitConfig& c, int root_fd) {
  const Spec& s = *c.spec;
  bool in_userns = s.linux.find("user") != nullptr;
  if (has_mount_at(s, "/dev")) {
    for (const auto& d : kDefaultDevices) {
      BERTH_RETURN_IF_ERROR(
          make_device(root_fd, d.path, S_IFCHR, d.major, d.minor, 0666, 0, 0, in_userns));
    }
    struct {
      const char* link;
      const char* target;
    } links[] = {{"/dev/fd", "/proc/self/fd"},
                 {"/dev/stdin", "/proc/self/fd/0"},
                 {"/dev/stdout", "/proc/self/fd/1"},
                 {"/dev/stderr", "/proc/self/fd/2"}};
    BERTH_TRY(int dev, open_in_root(root_fd, "/dev", false, true));
    int real = ::openat(dev, ".", O_DIRECTORY | O_CLOEXEC);
    ::close(dev);
    for (const auto& l : links) ::symlinkat(l.target, real, l.link + 5);
    if (::access("/proc/kcore", F_OK) == 0) ::symlinkat("/proc/kcore", real, "core");
    if (has_mount_at(s, "/dev/pts")) {
      ::unlinkat(real, "ptmx", 0);
      ::symlinkat("pts/ptmx", real, "ptmx");
    }
    ::close(real);
  }
  for (const auto& d : s.linux.devices) {
    mode_t type = d.type == "b" ? S_IFBLK : d.type == "p" ? S_IFIFO : S_IFCHR;
    BERTH_RETURN_IF_ERROR(make_device(root_fd, d.path, type, static_cast<unsigned>(d.major),
                                      static_cast<unsigned>(d.minor), d.file_mode.value_or(0666),
                                      d.uid.value_or(0), d.gid.value_or(0), in_userns));
  }
  return Status();
}

unsigned long propagation_flags(const std::string& p) {
  if (p == "shared") return MS_SHARED;
  if (p == "rshared") return MS_SHARED | MS_REC;
  if (p == "slave") return MS_SLAVE;
  if (p == "private") return MS_PRIVATE;
  if (p == "rprivate") return MS_PRIVATE | MS_REC;
  if (p == "unbindable") return MS_UNBINDABLE;
  if (p == "runbindable") return MS_UNBINDABLE | MS_REC;
  return MS_SLAVE | MS_REC;  // "rslave", and the default (as runc)
}

// pivot_root and MS_MOVE refuse a new root whose parent mount is shared (rootfsPropagation
// "shared" makes "/" shared first): the mount holding the rootfs's directory goes private in
// our mount namespace, as runc does. The requested propagation is applied to the new root after
// the pivot.
Status make_rootfs_parent_private(const std::string& rootfs) {
  auto mnt_id = [](const std::string& path) -> std::optional<std::uint64_t> {
    auto id = core::mount_id_at(AT_FDCWD, path);
    return id.ok() ? std::optional<std::uint64_t>(*id) : std::nullopt;
  };
  std::string dir = rootfs.substr(0, rootfs.rfind('/'));
  if (dir.empty()) dir = "/";
  auto id = mnt_id(dir);
  if (!id) return from_errno(errno, "statx {}", dir);
  // Climb while the parent is on the same mount: the last such directory is the mount point.
  while (dir != "/") {
    std::string up = dir.substr(0, dir.rfind('/'));
    if (up.empty()) up = "/";
    auto up_id = mnt_id(up);
    if (!up_id || *up_id != *id) break;
    dir = up;
  }
  // Only a shared mount needs it (a slave keeps its master, so "slave" still means something).
  BERTH_TRY(auto mounts, core::read_mountinfo());
  bool shared = false;
  for (const auto& m : mounts)
    if (m.id == *id) shared = m.shared();
  if (shared && ::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) < 0)
    return from_errno(errno, "make {} (the mount holding the rootfs) private", dir);
  return Status();
}

Status pivot(const InitConfig& c) {
  if (c.no_pivot) {
    if (::chdir(c.rootfs.c_str()) < 0) return from_errno(errno, "chdir {}", c.rootfs);
    if (::mount(c.rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr) < 0)
      return from_errno(errno, "move rootfs to /");
    if (::chroot(".") < 0) return from_errno(errno, "chroot");
    if (::chdir("/") < 0) return from_errno(errno, "chdir /");
    return Status();
  }
  // pivot_root(".", "."): the old root ends up on top of the new one, then is detached.
  int old_root = ::open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (old_root < 0) return from_errno(errno, "open /");
  if (::chdir(c.rootfs.c_str()) < 0) return from_errno(errno, "chdir {}", c.rootfs);
  if (::syscall(SYS_pivot_root, ".", ".") < 0) {
    ::close(old_root);
    return from_errno(errno, "pivot_root {}", c.rootfs);
  }
  ::fchdir(old_root);
  ::close(old_root);
  if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0)
    return from_errno(errno, "make the old root a slave");
  if (::umount2(".", MNT_DETACH) < 0) return from_errno(errno, "detach the old root");
  if (::chdir("/") < 0) return from_errno(errno, "chdir /");
  return Status();
}

Status mask_paths(const Spec& s) {
  for (const auto& p : s.linux.masked_paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) < 0) continue;  // absent: nothing to hide
    if (S_ISDIR(st.st_mode)) {
      if (::mount("tmpfs", p.c_str(), "tmpfs", MS_RDONLY, nullptr) < 0)
        return from_errno(errno, "mask {}", p);
    } else if (::mount("/dev/null", p.c_str(), nullptr, MS_BIND, nullptr) < 0) {
      return from_errno(errno, "mask {}", p);
    }
  }
  for (const auto& p : s.linux.readonly_paths) {
    if (::access(p.c_str(), F_OK) < 0) continue;
    if (::mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
      return from_errno(errno, "bind {} read-only", p);
    struct statvfs sv {};
    unsigned long keep = 0;
    if (::statvfs(p.c_str(), &sv) == 0) {
      if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
      if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
      if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
    }
    if (::mount(nullptr, p.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep,
                nullptr) < 0)
      return from_errno(errno, "remount {} read-only", p);
  }
  if (s.root_readonly) {
    struct statvfs sv {};
    unsigned long keep = 0;
    if (::statvfs("/", &sv) == 0) {
      if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
      if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
      if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
    }
    if (::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr) < 0)
      return from_errno(errno, "remount the root read-only");
  }
  return Status();
}

Status sysctls(const Spec& s) {
  for (const auto& [key, value] : s.linux.sysctl) {
    std::string path = "/proc/sys/" + key;
    for (std::size_t i = 10; i < path.size(); ++i) {
      if (path[i] == '.') path[i] = '/';
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return from_errno(errno, "sysctl {}", key);
    ssize_t n = ::write(fd, value.data(), value.size());
    int err = errno;
    ::close(fd);
    if (n < 0) return from_errno(err, "sysctl {}={}", key, value);
  }
  return Status();
}

}  // namespace berth::oci

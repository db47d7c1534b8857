#include "core/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "core/fd.h"
#include "core/fs.h"

#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_FLAG 0
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif

namespace berth::core {
namespace {

constexpr std::size_t kPageSize = 4096;

struct FlagSpec {
  bool clear;
  unsigned long flag;
};

const std::map<std::string, FlagSpec, std::less<>>& flag_table() {
  static const std::map<std::string, FlagSpec, std::less<>> t = {
      {"async", {true, MS_SYNCHRONOUS}},
      {"atime", {true, MS_NOATIME}},
      {"bind", {false, MS_BIND}},
      {"defaults", {false, 0}},
      {"dev", {true, MS_NODEV}},
      {"diratime", {true, MS_NODIRATIME}},
      {"dirsync", {false, MS_DIRSYNC}},
      {"exec", {true, MS_NOEXEC}},
      {"mand", {false, MS_MANDLOCK}},
      {"noatime", {false, MS_NOATIME}},
      {"nodev", {false, MS_NODEV}},
      {"nodiratime", {false, MS_NODIRATIME}},
      {"noexec", {false, MS_NOEXEC}},
      {"nomand", {true, MS_MANDLOCK}},
      {"norelatime", {true, MS_RELATIME}},
      {"nostrictatime", {true, MS_STRICTATIME}},
      {"nosuid", {false, MS_NOSUID}},
      {"rbind", {false, MS_BIND | MS_REC}},
      {"relatime", {false, MS_RELATIME}},
      {"remount", {false, MS_REMOUNT}},
      {"ro", {false, MS_RDONLY}},
      {"rw", {true, MS_RDONLY}},
      {"strictatime", {false, MS_STRICTATIME}},
      {"suid", {true, MS_NOSUID}},
      {"sync", {false, MS_SYNCHRONOUS}},
  };
  return t;
}

const std::map<std::string, unsigned long, std::less<>>& propagation_table() {
  static const std::map<std::string, unsigned long, std::less<>> t = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  return t;
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out.push_back(sep);
    out += s;
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

long sys_fsopen(const char* fs, unsigned flags) { return ::syscall(SYS_fsopen, fs, flags); }
long sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return ::syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
long sys_fsmount(int fd, unsigned flags, unsigned attr) {
  return ::syscall(SYS_fsmount, fd, flags, attr);
}
long sys_move_mount(int from_dfd, const char* from, int to_dfd, const char* to, unsigned flags) {
  return ::syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

// Overlay through fsopen/fsconfig with one lowerdir+ per layer: no size limit but the kernel's
// 500-layer stack limit. Returns Unimplemented when the kernel lacks lowerdir+.
Status overlay_new_api(const MountFlags& f, const std::string& target) {
  Fd fs(static_cast<int>(sys_fsopen("overlay", FSOPEN_CLOEXEC)));
  if (fs.get() < 0) return from_errno(errno, "fsopen overlay");
  for (const auto& opt : f.data) {
    auto eq = opt.find('=');
    std::string key = opt.substr(0, eq);
    if (key == "lowerdir") {
      for (const auto& layer : split(opt.substr(eq + 1), ':')) {
        if (sys_fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", layer.c_str(), 0) < 0) {
          if (errno == EINVAL)
            return Status(Code::kUnimplemented,
                          "overlay lowerdir+ is not supported by this kernel");
          return from_errno(errno, "fsconfig overlay lowerdir+ \"{}\"", layer);
        }
      }
    } else if (eq == std::string::npos) {
      if (sys_fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0) < 0) {
        return from_errno(errno, "fsconfig overlay {}", key);
      }
    } else {
      std::string value = opt.substr(eq + 1);
      if (sys_fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) < 0) {
        return from_errno(errno, "fsconfig overlay {}=\"{}\"", key, value);
      }
    }
  }
  if (sys_fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return from_errno(errno, "create overlay for \"{}\"", target);
  }
  unsigned attr = (f.flags & MS_RDONLY) ? MOUNT_ATTR_RDONLY : 0;
  Fd mnt(static_cast<int>(sys_fsmount(fs.get(), FSMOUNT_CLOEXEC, attr)));
  if (mnt.get() < 0) return from_errno(errno, "fsmount overlay for \"{}\"", target);
  if (sys_move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    return from_errno(errno, "move_mount overlay to \"{}\"", target);
  }
  return Status();
}

// Older kernels: lowerdirs relative to their common parent, mounted by a child that chdir'ed
// there (the chdir must not affect this process's other threads).
Status overlay_relative(const MountFlags& f, const std::string& target) {
  std::vector<std::string> data = f.data;
  std::string common;
  for (auto& opt : data) {
    if (opt.rfind("lowerdir=", 0) != 0) continue;
    auto layers = split(opt.substr(9), ':');
    common = std::filesystem::path(layers[0]).parent_path().parent_path().string();
    for (const auto& l : layers) {
      while (!common.empty() && l.rfind(common + "/", 0) != 0) {
        common = std::filesystem::path(common).parent_path().string();
      }
    }
    for (auto& l : layers) l = l.substr(common.size() + 1);
    opt = "lowerdir=" + join(layers, ':');
  }
  std::string joined = join(data, ',');
  if (joined.size() >= kPageSize) {
    return invalid_argument(
        "overlay options for \"{}\" are {} bytes even with relative paths (limit {})", target,
        joined.size(), kPageSize - 1);
  }
  std::string abs_target = std::filesystem::absolute(target).string();
  pid_t pid = ::fork();
  if (pid < 0) return from_errno(errno, "fork");
  if (pid == 0) {
    if (::chdir(common.c_str()) < 0) ::_exit(100 + errno);
    if (::mount("overlay", abs_target.c_str(), "overlay", f.flags, joined.c_str()) < 0)
      ::_exit(errno);
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
  if (code == 0) return Status();
  if (code > 100) return from_errno(code - 100, "chdir \"{}\"", common);
  return from_errno(code, "mount overlay on \"{}\" (relative lowerdirs in \"{}\")", target, common);
}

}  // namespace

MountFlags parse_mount_options(const std::vector<std::string>& options) {
  MountFlags f;
  for (const auto& o : options) {
    if (auto it = flag_table().find(o); it != flag_table().end()) {
      if (it->second.clear) {
        f.flags &= ~it->second.flag;
      } else {
        f.flags |= it->second.flag;
      }
    } else if (auto p = propagation_table().find(o); p != propagation_table().end()) {
      f.propagation = p->second;
    } else {
      f.data.push_back(o);
    }
  }
  if ((f.flags & MS_BIND) && (f.flags & MS_RDONLY)) {
    f.remount_ro = true;
  }
  return f;
}

Status mount(const Mount& m, const std::string& target_dir) {
  std::string target = m.target.empty() ? target_dir : target_dir + "/" + m.target;
  MountFlags f = parse_mount_options(m.options);
  std::string type = m.type;
  if (type == "bind" || type == "rbind") {
    f.flags |= MS_BIND;
    if (type == "rbind") f.flags |= MS_REC;
    if (f.flags & MS_RDONLY) f.remount_ro = true;
  }
  std::string data = join(f.data, ',');
  if (type == "overlay" && data.size() >= kPageSize) {
    Status st = overlay_new_api(f, target);
    if (st.code() == Code::kUnimplemented) st = overlay_relative(f, target);
    BERTH_RETURN_IF_ERROR(st);
  } else {
    unsigned long flags = f.flags;
    if (f.remount_ro) flags &= ~MS_RDONLY;
    const char* fstype = (f.flags & MS_BIND) ? nullptr : type.c_str();
    if (::mount(m.source.c_str(), target.c_str(), fstype, flags,
                data.empty() ? nullptr : data.c_str()) < 0) {
      return from_errno(errno, "mount \"{}\" on \"{}\" ({})", m.source, target, type);
    }
    if (f.remount_ro) {
      unsigned long ro =
          MS_REMOUNT | MS_BIND | MS_RDONLY | (f.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC));
      if (::mount(nullptr, target.c_str(), nullptr, ro, nullptr) < 0) {
        int err = errno;
        ::umount2(target.c_str(), MNT_DETACH);
        return from_errno(err, "remount \"{}\" read-only", target);
      }
    }
  }
  if (f.propagation) {
    if (::mount(nullptr, target.c_str(), nullptr, f.propagation, nullptr) < 0) {
      return from_errno(errno, "set propagation of \"{}\"", target);
    }
  }
  return Status();
}

Status mount_all(const std::vector<Mount>& mounts, const std::string& target) {
  for (std::size_t i = 0; i < mounts.size(); ++i) {
    Status st = mount(mounts[i], target);
    if (!st.ok()) {
      if (i > 0) unmount_all(target).ignore();
      return st;
    }
  }
  return Status();
}

bool is_mount_point(const std::string& path) {
  struct stat self {
  }, parent{};
  if (::lstat(path.c_str(), &self) < 0) return false;
  std::string up = path + "/..";
  if (::lstat(up.c_str(), &parent) < 0) return false;
  if (self.st_dev != parent.st_dev) return true;
  // Same device (bind of a dir on the same fs): consult mountinfo.
  auto mounts = read_mountinfo();
  if (!mounts.ok()) return false;
  std::string abs = std::filesystem::weakly_canonical(path).string();
  for (const auto& m : *mounts)
    if (m.mount_point == abs) return true;
  return false;
}

bool MountInfo::shared() const {
  for (const auto& o : optional)
    if (o.rfind("shared:", 0) == 0) return true;
  return false;
}

namespace {

std::string unescape(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size() && in[i + 1] >= '0' && in[i + 1] <= '3' &&
        in[i + 2] >= '0' && in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
      out += static_cast<char>((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 + (in[i + 3] - '0'));
      i += 3;
    } else {
      out += in[i];
    }
  }
  return out;
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < line.size();) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

std::vector<MountInfo> parse_mountinfo(std::string_view text) {
  std::vector<MountInfo> out;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    auto f = fields_of(text.substr(at, end - at));
    at = end + 1;
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    if (f.size() < 10) continue;
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;  // no fstype and source after the separator
    MountInfo m;
    try {
      m.id = std::stoull(std::string(f[0]));
      m.parent = std::stoull(std::string(f[1]));
    } catch (...) {
      continue;
    }
    m.root = unescape(f[3]);
    m.mount_point = unescape(f[4]);
    m.options = std::string(f[5]);
    for (std::size_t k = 6; k < dash; ++k) m.optional.emplace_back(f[k]);
    m.fstype = std::string(f[dash + 1]);
    m.source = unescape(f[dash + 2]);
    if (dash + 3 < f.size()) m.super_options = std::string(f[dash + 3]);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<MountInfo>> read_mountinfo(const std::string& path) {
  BERTH_TRY(auto text, read_file(path));
  return parse_mountinfo(text);
}

Status unmount_all(const std::string& target, bool detach) {
  for (int i = 0; i < 1000; ++i) {
    int flags = detach ? MNT_DETACH : 0;
    if (::umount2(target.c_str(), flags | UMOUNT_NOFOLLOW) < 0) {
      if (errno == EINVAL || errno == ENOENT) return Status();  // not (or no longer) mounted
      if (errno == EBUSY && !detach && i < 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      return from_errno(errno, "umount \"{}\"", target);
    }
  }
  return internal_error("umount \"{}\": still mounted after 1000 unmounts", target);
}

Result<ScopedMount> ScopedMount::create(const std::vector<Mount>& mounts,
                                        const std::string& target) {
  BERTH_RETURN_IF_ERROR(mount_all(mounts, target));
  return ScopedMount(target);
}

ScopedMount::~ScopedMount() {
  if (!target_.empty()) unmount_all(target_).ignore();
}

}  // namespace berth::core

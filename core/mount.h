// Performing the mounts snapshotters describe. Errors name the call and quote the paths.
//
// Overlay mounts whose option string would not fit in one page (the kernel's limit, which caps
// containerd near 60-120 layers) are made with the new mount API, one `lowerdir+` per layer
// (Linux >= 6.8); on older kernels the layers are passed relative to their common parent from a
// child process that chdir'ed there.
#pragma once

#include <berth/mount.h>
#include <berth/result.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::core {

struct MountFlags {
  unsigned long flags = 0;        // MS_* for mount(2)
  unsigned long propagation = 0;  // MS_SHARED/MS_PRIVATE/... (| MS_REC), applied afterwards
  bool remount_ro = false;        // bind mounts need a second call to become read-only
  std::vector<std::string> data;  // filesystem-specific options, in order
};
MountFlags parse_mount_options(const std::vector<std::string>& options);

// Mounts `m` on target (target + "/" + m.target when set).
Status mount(const Mount& m, const std::string& target);
// Mounts all in order on target; on failure unmounts what it mounted.
Status mount_all(const std::vector<Mount>& mounts, const std::string& target);
// Unmounts everything stacked on target. NotFound-like states (not mounted) are OK.
Status unmount_all(const std::string& target, bool detach = false);
bool is_mount_point(const std::string& path);

// One line of /proc/<pid>/mountinfo, octal escapes (\040 for a space) decoded.
struct MountInfo {
  std::uint64_t id = 0, parent = 0;
  std::string root, mount_point, options;
  std::vector<std::string> optional;  // "shared:7", "master:3", ...
  std::string fstype, source, super_options;
  bool shared() const;
};
// Lines that do not parse are skipped.
std::vector<MountInfo> parse_mountinfo(std::string_view text);
Result<std::vector<MountInfo>> read_mountinfo(const std::string& path = "/proc/self/mountinfo");

// Mounts on construction (via mount_all), unmounts on destruction.
class ScopedMount {
 public:
  static Result<ScopedMount> create(const std::vector<Mount>& mounts, const std::string& target);
  ScopedMount(ScopedMount&& o) noexcept : target_(std::move(o.target_)) { o.target_.clear(); }
  ScopedMount& operator=(ScopedMount&&) = delete;
  ~ScopedMount();
  const std::string& target() const { return target_; }

 private:
  explicit ScopedMount(std::string target) : target_(std::move(target)) {}
  std::string target_;
};

}  // namespace berth::core

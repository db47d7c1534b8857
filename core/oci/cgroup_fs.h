// The seam between cgroup planning and the kernel: every cgroupfs read, write, mkdir and rmdir
// of libberth-oci's cgroup code goes through a CgroupFs. The host's implementation touches
// /sys/fs/cgroup; tests pass a recording fake, so what a Resources block turns into on v1, v2
// and a hybrid host is unit-tested without root.
#pragma once

#include <berth/result.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::oci::cgroups {

class CgroupFs {
 public:
  virtual ~CgroupFs() = default;
  // Writes `value` to <dir>/<file> (one write, truncating). A missing file is Unimplemented
  // (the controller or feature is missing on this host).
  virtual Status write(const std::string& dir, const std::string& file,
                       const std::string& value) = 0;
  // The file's content without trailing whitespace; nullopt (errno set) when unreadable.
  virtual std::optional<std::string> read(const std::string& path) const = 0;
  virtual bool exists(const std::string& path) const = 0;
  // One level; an existing directory is fine.
  virtual Status mkdir(const std::string& dir) = 0;
  virtual Status mkdir_all(const std::string& dir) = 0;
  // 0 on success, else the errno (ENOENT included).
  virtual int rmdir(const std::string& dir) = 0;

  // The real cgroupfs.
  static CgroupFs& host();
};

// Helpers over any CgroupFs.
std::uint64_t read_u64(const CgroupFs& fs, const std::string& path);  // "max"/missing -> 0
std::map<std::string, std::uint64_t> read_keyed(const CgroupFs& fs, const std::string& path);
Result<std::vector<pid_t>> read_procs(const CgroupFs& fs, const std::string& dir);
// Waits only for tasks on their way out: a cgroup that still lists processes is refused at once.
Status remove_dir(CgroupFs& fs, const std::string& dir);

}  // namespace berth::oci::cgroups

// Control groups for containers: cgroup v1 and v2 behind one interface (`Hierarchy`), composed by
// probing the host. A pure v1 host gets one V1 hierarchy per controller mount, a pure v2 host one
// V2 hierarchy, and a hybrid host (v1 controllers plus a cgroup2 mount at
// /sys/fs/cgroup/unified, as here) gets both: every controller is driven where it is attached
// (here hugetlb lives only in the v2 tree), and processes join every hierarchy, as runc does.
#pragma once

#include <berth/result.h>
#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/oci/spec.h"

namespace berth::oci::cgroups {

struct Mount {
  std::string mountpoint;
  bool v2 = false;
  std::set<std::string> controllers;  // v1: from the mount options (incl. "name=systemd")
};

// Where the hierarchies are mounted, from /proc/self/mountinfo.
struct Layout {
  std::vector<Mount> mounts;
  bool pure_v2() const;
  std::string describe() const;  // "v1", "v2", "hybrid"
};
class CgroupFs;  // cgroup_fs.h: the seam to the kernel (CgroupFs::host() by default)

Result<Layout> probe(const std::string& mountinfo = "/proc/self/mountinfo");
Result<Layout> probe(const std::string& mountinfo, const CgroupFs& fs);
// A layout of one cgroup2 hierarchy at `mountpoint` (tests point it at a private mount).
Layout v2_layout(const std::string& mountpoint);
Layout v2_layout(const std::string& mountpoint, const CgroupFs& fs);

struct Stats {
  std::uint64_t cpu_usage_ns = 0, cpu_user_ns = 0, cpu_system_ns = 0;
  std::uint64_t cpu_periods = 0, cpu_throttled_periods = 0, cpu_throttled_ns = 0;
  std::uint64_t memory_usage = 0, memory_max_usage = 0, memory_limit = 0, memory_cache = 0,
                memory_rss = 0, memory_swap = 0, memory_failcnt = 0;
  // Page cache the kernel may reclaim first (working set = usage - this), and page faults.
  std::uint64_t memory_inactive_file = 0, memory_pgfault = 0, memory_pgmajfault = 0;
  std::uint64_t oom_kills = 0;
  std::uint64_t pids_current = 0, pids_limit = 0;
};

// One hierarchy's view of a container's cgroup.
class Hierarchy {
 public:
  virtual ~Hierarchy() = default;
  virtual const std::string& dir() const = 0;
  virtual bool v2() const = 0;
  virtual const std::set<std::string>& controllers() const = 0;
  virtual Status create() = 0;
  virtual Status add(pid_t pid) = 0;
  // Writes the parts of `r` that belong to this hierarchy's controllers.
  virtual Status apply(const Resources& r) = 0;
  virtual Result<std::vector<pid_t>> pids() const = 0;
  virtual bool can_freeze() const = 0;
  virtual Status freeze(bool frozen) = 0;
  virtual Result<bool> frozen() const = 0;
  virtual void stats(Stats& out) const = 0;
  // A file descriptor that becomes readable on OOM kills (v1: eventfd; v2: inotify on
  // memory.events); -1 when this hierarchy has no memory controller.
  virtual Result<int> oom_fd() const = 0;
  virtual Status destroy() = 0;
};

class Cgroup {
 public:
  // `path` is the spec's cgroupsPath (absolute from each hierarchy's root; relative paths are
  // taken from the root too). Nothing is created yet.
  static Result<Cgroup> open(const Layout& layout, const std::string& path);
  static Result<Cgroup> open(const Layout& layout, const std::string& path, CgroupFs& fs);

  const std::string& path() const { return path_; }
  std::vector<std::string> dirs() const;
  Status create();
  Status add(pid_t pid);
  Status apply(const Resources& r);
  // Processes, from the first hierarchy that lists them.
  Result<std::vector<pid_t>> pids() const;
  Status freeze(bool frozen);
  Result<bool> frozen() const;
  Status kill_all(int signal);
  Result<Stats> stats() const;
  Result<int> oom_fd() const;
  // Removes the directories; waits briefly for exiting tasks.
  Status destroy();

 private:
  std::string path_;
  std::vector<std::shared_ptr<Hierarchy>> hierarchies_;
};

// v2 cpu.weight from v1 cpu.shares (the conversion runc and crun use).
std::uint64_t shares_to_weight(std::uint64_t shares);

}  // namespace berth::oci::cgroups

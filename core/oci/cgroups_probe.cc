// Where the cgroup hierarchies are mounted (v1, v2 or hybrid), from /proc/self/mountinfo.
#include <fstream>
#include <sstream>

#include "core/mount.h"
#include "core/oci/cgroup_fs.h"
#include "core/oci/cgroups.h"

namespace berth::oci::cgroups {
namespace {

const std::set<std::string>& v1_known() {
  static const std::set<std::string> s = {"cpu",      "cpuacct",    "cpuset",  "memory",  "pids",
                                          "blkio",    "devices",    "freezer", "hugetlb", "net_cls",
                                          "net_prio", "perf_event", "rdma",    "misc"};
  return s;
}

}  // namespace

bool Layout::pure_v2() const {
  for (const auto& m : mounts) {
    if (!m.v2) return false;
  }
  return !mounts.empty();
}

std::string Layout::describe() const {
  bool v1 = false, v2 = false;
  for (const auto& m : mounts) (m.v2 ? v2 : v1) = true;
  return v1 && v2 ? "hybrid" : v2 ? "v2" : v1 ? "v1" : "none";
}

Result<Layout> probe(const std::string& mountinfo, const CgroupFs& fs) {
  auto mounts = core::read_mountinfo(mountinfo);
  if (!mounts.ok()) return mounts.status();
  Layout layout;
  std::set<std::string> seen;
  for (const auto& mi : *mounts) {
    if (mi.fstype != "cgroup" && mi.fstype != "cgroup2") continue;
    if (!seen.insert(mi.mount_point).second) continue;
    Mount m;
    m.mountpoint = mi.mount_point;
    m.v2 = mi.fstype == "cgroup2";
    if (!m.v2) {
      std::stringstream opts(mi.super_options);
      std::string o;
      while (std::getline(opts, o, ',')) {
        if (v1_known().count(o) || o.rfind("name=", 0) == 0) m.controllers.insert(o);
      }
      // The same hierarchy mounted twice (cpu and cpuacct links) counts once.
      bool dup = false;
      for (const auto& other : layout.mounts)
        dup = dup || (!other.v2 && other.controllers == m.controllers);
      if (dup) continue;
    } else {
      auto c = fs.read(m.mountpoint + "/cgroup.controllers");
      std::stringstream cs(c.value_or(""));
      std::string name;
      while (cs >> name) m.controllers.insert(name);
    }
    layout.mounts.push_back(std::move(m));
  }
  if (layout.mounts.empty()) return not_found("no cgroup hierarchy is mounted ({})", mountinfo);
  return layout;
}

Result<Layout> probe(const std::string& mountinfo) { return probe(mountinfo, CgroupFs::host()); }

Layout v2_layout(const std::string& mountpoint) { return v2_layout(mountpoint, CgroupFs::host()); }

Layout v2_layout(const std::string& mountpoint, const CgroupFs& fs) {
  Layout l;
  Mount m;
  m.mountpoint = mountpoint;
  m.v2 = true;
  auto c = fs.read(mountpoint + "/cgroup.controllers");
  std::stringstream cs(c.value_or(""));
  std::string name;
  while (cs >> name) m.controllers.insert(name);
  l.mounts.push_back(m);
  return l;
}

}  // namespace berth::oci::cgroups

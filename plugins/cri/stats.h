// The CRI's stats from what Berth measures: a task's cgroup metrics (the shim's Stats answer,
// containerd's io.containerd.cgroups.v1/v2.Metrics) become CpuUsage and MemoryUsage as the
// kubelet reads them (working set = usage - inactive file pages, as containerd and cAdvisor
// compute it), and a pod's network usage comes from /proc/<pause pid>/net/dev, which shows the
// interfaces of the pause's network namespace without entering it.
#pragma once

#include <berth/containers.h>
#include <berth/status.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cri/runtime/v1/api.pb.h"

namespace berth::cri {

namespace v1 = ::runtime::v1;

// One reading of a cgroup, whichever hierarchy it came from.
struct CgroupSample {
  std::uint64_t cpu_ns = 0;
  std::uint64_t memory_usage = 0, memory_limit = 0, inactive_file = 0, rss = 0;
  std::uint64_t page_faults = 0, major_page_faults = 0;
  std::uint64_t swap_usage = 0, swap_limit = 0;
  std::uint64_t pids = 0;
  CgroupSample& operator+=(const CgroupSample& o);
};

// Decodes the metrics a task's stats() returns; InvalidArgument names an unknown type.
Result<CgroupSample> decode_metrics(const containers::Any& metrics);

// The kubelet's CPU view at `now_ns`; usage_nano_cores needs the previous reading of the same
// cgroup (`prev_cpu_ns` at `prev_ns`; left out when there is none).
void fill_cpu(v1::CpuUsage* out, const CgroupSample& s, std::int64_t now_ns, std::uint64_t prev_cpu_ns,
              std::int64_t prev_ns);
void fill_memory(v1::MemoryUsage* out, const CgroupSample& s, std::int64_t now_ns);
void fill_swap(v1::SwapUsage* out, const CgroupSample& s, std::int64_t now_ns);

// The interfaces of a /proc/<pid>/net/dev text, loopback left out; `default_name` (eth0)
// becomes the default interface when present.
void fill_network(v1::NetworkUsage* out, std::string_view net_dev, const std::string& default_name,
                  std::int64_t now_ns);

}  // namespace berth::cri

#include "plugins/cri/stats.h"

#include <sstream>

#include "github.com/containerd/cgroups/stats/v1/metrics.pb.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"

namespace berth::cri {

CgroupSample& CgroupSample::operator+=(const CgroupSample& o) {
  cpu_ns += o.cpu_ns;
  memory_usage += o.memory_usage;
  inactive_file += o.inactive_file;
  rss += o.rss;
  page_faults += o.page_faults;
  major_page_faults += o.major_page_faults;
  swap_usage += o.swap_usage;
  pids += o.pids;
  return *this;
}

Result<CgroupSample> decode_metrics(const containers::Any& metrics) {
  CgroupSample s;
  if (metrics.type_url.ends_with("io.containerd.cgroups.v1.Metrics")) {
    ::io::containerd::cgroups::v1::Metrics m;
    if (!m.ParseFromString(metrics.value)) return invalid_argument("cgroup v1 metrics do not parse");
    s.cpu_ns = m.cpu().usage().total();
    const auto& mem = m.memory();
    s.memory_usage = mem.usage().usage();
    s.memory_limit = mem.usage().limit();
    s.inactive_file = mem.total_inactive_file();
    s.rss = mem.total_rss() ? mem.total_rss() : mem.rss();
    s.page_faults = mem.total_pg_fault();
    s.major_page_faults = mem.total_pg_maj_fault();
    s.swap_usage = mem.swap().usage();
    s.swap_limit = mem.swap().limit();
    s.pids = m.pids().current();
    return s;
  }
  if (metrics.type_url.ends_with("io.containerd.cgroups.v2.Metrics")) {
    ::io::containerd::cgroups::v2::Metrics m;
    if (!m.ParseFromString(metrics.value)) return invalid_argument("cgroup v2 metrics do not parse");
    s.cpu_ns = m.cpu().usage_usec() * 1000;
    const auto& mem = m.memory();
    s.memory_usage = mem.usage();
    s.memory_limit = mem.usage_limit();
    s.inactive_file = mem.inactive_file();
    s.rss = mem.anon();
    s.page_faults = mem.pgfault();
    s.major_page_faults = mem.pgmajfault();
    s.swap_usage = mem.swap_usage();
    s.swap_limit = mem.swap_limit();
    s.pids = m.pids().current();
    return s;
  }
  return invalid_argument("metrics of type \"{}\" are not cgroup metrics", metrics.type_url);
}

void fill_cpu(v1::CpuUsage* out, const CgroupSample& s, std::int64_t now_ns, std::uint64_t prev_cpu_ns,
              std::int64_t prev_ns) {
  out->set_timestamp(now_ns);
  out->mutable_usage_core_nano_seconds()->set_value(s.cpu_ns);
  if (prev_ns > 0 && now_ns > prev_ns && s.cpu_ns >= prev_cpu_ns) {
    // Nanoseconds of CPU per second of wall time, in billionths of a core.
    long double cores = static_cast<long double>(s.cpu_ns - prev_cpu_ns) / static_cast<long double>(now_ns - prev_ns);
    out->mutable_usage_nano_cores()->set_value(static_cast<std::uint64_t>(cores * 1e9L));
  }
}

void fill_memory(v1::MemoryUsage* out, const CgroupSample& s, std::int64_t now_ns) {
  out->set_timestamp(now_ns);
  std::uint64_t working_set = s.inactive_file < s.memory_usage ? s.memory_usage - s.inactive_file : 0;
  out->mutable_working_set_bytes()->set_value(working_set);
  // A limit the kernel reports as "none" is a huge number (v1) or 0 (v2 "max"): no available_bytes.
  constexpr std::uint64_t kNoLimit = std::uint64_t{1} << 62;
  if (s.memory_limit > 0 && s.memory_limit < kNoLimit)
    out->mutable_available_bytes()->set_value(s.memory_limit > working_set ? s.memory_limit - working_set : 0);
  out->mutable_usage_bytes()->set_value(s.memory_usage);
  out->mutable_rss_bytes()->set_value(s.rss);
  out->mutable_page_faults()->set_value(s.page_faults);
  out->mutable_major_page_faults()->set_value(s.major_page_faults);
}

void fill_swap(v1::SwapUsage* out, const CgroupSample& s, std::int64_t now_ns) {
  out->set_timestamp(now_ns);
  out->mutable_swap_usage_bytes()->set_value(s.swap_usage);
  constexpr std::uint64_t kNoLimit = std::uint64_t{1} << 62;
  if (s.swap_limit > 0 && s.swap_limit < kNoLimit)
    out->mutable_swap_available_bytes()->set_value(s.swap_limit > s.swap_usage ? s.swap_limit - s.swap_usage : 0);
}

void fill_network(v1::NetworkUsage* out, std::string_view net_dev, const std::string& default_name,
                  std::int64_t now_ns) {
  out->set_timestamp(now_ns);
  // "  eth0: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast tx_bytes
  //  tx_packets tx_errs ...": two header lines, then one line per interface.
  std::istringstream in{std::string(net_dev)};
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name.empty() || name == "lo" || name.find('|') != std::string::npos) continue;
    std::istringstream fields(line.substr(colon + 1));
    std::vector<std::uint64_t> v;
    std::uint64_t x;
    while (fields >> x) v.push_back(x);
    if (v.size() < 11) continue;
    v1::NetworkInterfaceUsage u;
    u.set_name(name);
    u.mutable_rx_bytes()->set_value(v[0]);
    u.mutable_rx_errors()->set_value(v[2]);
    u.mutable_tx_bytes()->set_value(v[8]);
    u.mutable_tx_errors()->set_value(v[10]);
    if (name == default_name) *out->mutable_default_interface() = u;
    *out->add_interfaces() = std::move(u);
  }
}

}  // namespace berth::cri

// cgroup v1: one hierarchy per controller mount; each controller's files as runc writes them.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "core/oci/cgroup_fs.h"
#include "core/oci/cgroups_impl.h"

namespace berth::oci::cgroups {
namespace {

class V1 : public Hierarchy {
 public:
  V1(CgroupFs& fs, std::string mountpoint, std::set<std::string> controllers,
     const std::string& path)
      : fs_(fs), root_(std::move(mountpoint)), dir_(root_ + path), controllers_(std::move(controllers)) {}
  const std::string& dir() const override { return dir_; }
  bool v2() const override { return false; }
  const std::set<std::string>& controllers() const override { return controllers_; }
  bool has(const char* c) const { return controllers_.count(c) > 0; }

  Status create() override {
    if (!has("cpuset")) return fs_.mkdir_all(dir_);
    // A new cpuset cgroup starts with empty cpus/mems: copy them down level by level.
    std::string rel = dir_.substr(root_.size());
    std::string cur = root_;
    std::size_t pos = 0;
    while (pos < rel.size()) {
      std::size_t next = rel.find('/', pos + 1);
      if (next == std::string::npos) next = rel.size();
      std::string parent = cur;
      cur = root_ + rel.substr(0, next);
      pos = next;
      if (cur == parent) continue;
      BERTH_RETURN_IF_ERROR(fs_.mkdir(cur));
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        auto mine = fs_.read(cur + "/" + f);
        if (mine && mine->empty()) {
          auto up = fs_.read(parent + "/" + f);
          if (up) BERTH_RETURN_IF_ERROR(fs_.write(cur, f, *up));
        }
      }
    }
    return Status();
  }
  Status add(pid_t pid) override { return fs_.write(dir_, "cgroup.procs", std::to_string(pid)); }

  Status apply(const Resources& r) override {
    if (has("cpu") && r.cpu) {
      const Cpu& c = *r.cpu;
      if (c.shares && *c.shares) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.shares", std::to_string(*c.shares)));
      if (c.period && *c.period) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.cfs_period_us", std::to_string(*c.period)));
      if (c.quota && *c.quota) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.cfs_quota_us", std::to_string(*c.quota)));
      if (c.realtime_period && *c.realtime_period)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.rt_period_us", std::to_string(*c.realtime_period)));
      if (c.realtime_runtime && *c.realtime_runtime)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.rt_runtime_us", std::to_string(*c.realtime_runtime)));
      if (c.idle) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.idle", std::to_string(*c.idle)));
    }
    if (has("cpuset") && r.cpu) {
      if (!r.cpu->cpus.empty()) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpuset.cpus", r.cpu->cpus));
      if (!r.cpu->mems.empty()) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpuset.mems", r.cpu->mems));
    }
    if (has("memory") && r.memory) BERTH_RETURN_IF_ERROR(memory(*r.memory));
    if (has("pids") && r.pids_limit) {
      BERTH_RETURN_IF_ERROR(fs_.write(
          dir_, "pids.max", *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : "max"));
    }
    if (has("blkio") && r.block_io) BERTH_RETURN_IF_ERROR(blkio(*r.block_io));
    if (has("hugetlb")) {
      for (const auto& h : r.hugepage_limits) {
        BERTH_RETURN_IF_ERROR(check_page_size(h.page_size));
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "hugetlb." + h.page_size + ".limit_in_bytes",
                                          std::to_string(h.limit)));
      }
    }
    if (has("devices") && !r.devices.empty()) {
      for (const auto& d : r.devices) {
        BERTH_RETURN_IF_ERROR(
            fs_.write(dir_, d.allow ? "devices.allow" : "devices.deny", device_rule(d)));
      }
    }
    if (has("net_cls") && r.net_class_id)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "net_cls.classid", std::to_string(*r.net_class_id)));
    if (has("net_prio")) {
      for (const auto& [ifname, prio] : r.net_priorities)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "net_prio.ifpriomap", ifname + " " + std::to_string(prio)));
    }
    return Status();
  }

  Result<std::vector<pid_t>> pids() const override { return read_procs(fs_, dir_); }
  bool can_freeze() const override { return has("freezer"); }
  Status freeze(bool frozen) override {
    const char* want = frozen ? "FROZEN" : "THAWED";
    for (int i = 0; i < 1000; ++i) {
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "freezer.state", want));
      auto state = fs_.read(dir_ + "/freezer.state");
      if (state && *state == want) return Status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status(Code::kDeadlineExceeded, fmt::format("cgroup {} did not become {}", dir_, want));
  }
  Result<bool> frozen() const override {
    auto s = fs_.read(dir_ + "/freezer.state");
    if (!s) return from_errno(errno, "read {}/freezer.state", dir_);
    return *s == "FROZEN" || *s == "FREEZING";
  }
  void stats(Stats& out) const override {
    if (has("cpuacct")) {
      out.cpu_usage_ns = read_u64(fs_, dir_ + "/cpuacct.usage");
      auto st = read_keyed(fs_, dir_ + "/cpuacct.stat");
      long hz = ::sysconf(_SC_CLK_TCK);
      out.cpu_user_ns = st["user"] * (1000000000ull / static_cast<std::uint64_t>(hz));
      out.cpu_system_ns = st["system"] * (1000000000ull / static_cast<std::uint64_t>(hz));
    }
    if (has("cpu")) {
      auto st = read_keyed(fs_, dir_ + "/cpu.stat");
      out.cpu_periods = st["nr_periods"];
      out.cpu_throttled_periods = st["nr_throttled"];
      out.cpu_throttled_ns = st["throttled_time"];
    }
    if (has("memory")) {
      out.memory_usage = read_u64(fs_, dir_ + "/memory.usage_in_bytes");
      out.memory_max_usage = read_u64(fs_, dir_ + "/memory.max_usage_in_bytes");
      out.memory_limit = read_u64(fs_, dir_ + "/memory.limit_in_bytes");
      out.memory_failcnt = read_u64(fs_, dir_ + "/memory.failcnt");
      auto st = read_keyed(fs_, dir_ + "/memory.stat");
      out.memory_cache = st["cache"];
      out.memory_rss = st["rss"];
      out.memory_swap = st["swap"];
      out.memory_inactive_file = st["total_inactive_file"];
      out.memory_pgfault = st["total_pgfault"];
      out.memory_pgmajfault = st["total_pgmajfault"];
      out.oom_kills = read_keyed(fs_, dir_ + "/memory.oom_control")["oom_kill"];
    }
    if (has("pids")) {
      out.pids_current = read_u64(fs_, dir_ + "/pids.current");
      out.pids_limit = read_u64(fs_, dir_ + "/pids.max");
    }
  }
  Result<int> oom_fd() const override {
    if (!has("memory")) return -1;
    int efd = ::eventfd(0, EFD_CLOEXEC);
    if (efd < 0) return from_errno(errno, "eventfd");
    int ofd = ::open((dir_ + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC);
    if (ofd < 0) {
      ::close(efd);
      return from_errno(errno, "open {}/memory.oom_control", dir_);
    }
    Status st = fs_.write(dir_, "cgroup.event_control",
                            std::to_string(efd) + " " + std::to_string(ofd));
    ::close(ofd);
    if (!st.ok()) {
      ::close(efd);
      return st;
    }
    return efd;
  }
  Status destroy() override { return remove_dir(fs_, dir_); }

 private:
  Status memory(const Memory& m) {
    bool has_swap_file = fs_.exists(dir_ + "/memory.memsw.limit_in_bytes");
    if (m.limit) {
      std::string limit = std::to_string(*m.limit);
      // memsw must stay >= limit: when raising, write memsw first; when lowering, limit first.
      if (m.swap && has_swap_file) {
        std::string swap = std::to_string(*m.swap);
        std::uint64_t current = read_u64(fs_, dir_ + "/memory.limit_in_bytes");
        bool raising = *m.limit < 0 || static_cast<std::uint64_t>(*m.limit) > current;
        if (raising) {
          BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.memsw.limit_in_bytes", swap));
          BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.limit_in_bytes", limit));
        } else {
          BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.limit_in_bytes", limit));
          BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.memsw.limit_in_bytes", swap));
        }
      } else {
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.limit_in_bytes", limit));
      }
    } else if (m.swap && has_swap_file) {
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.memsw.limit_in_bytes", std::to_string(*m.swap)));
    }
    if (m.reservation)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.soft_limit_in_bytes", std::to_string(*m.reservation)));
    if (m.kernel_tcp)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.kmem.tcp.limit_in_bytes", std::to_string(*m.kernel_tcp)));
    if (m.swappiness)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.swappiness", std::to_string(*m.swappiness)));
    if (m.disable_oom_killer && *m.disable_oom_killer)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.oom_control", "1"));
    return Status();
  }
  Status blkio(const BlockIo& b) {
    auto weight_file = [&](const char* plain, const char* bfq) {
      return fs_.exists(dir_ + "/" + plain) ? std::string(plain)
                                                               : std::string(bfq);
    };
    if (b.weight && *b.weight)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, weight_file("blkio.weight", "blkio.bfq.weight"), std::to_string(*b.weight)));
    if (b.leaf_weight && *b.leaf_weight)
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "blkio.leaf_weight", std::to_string(*b.leaf_weight)));
    for (const auto& w : b.weight_device) {
      if (w.weight)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, weight_file("blkio.weight_device", "blkio.bfq.weight_device"),
                                          fmt::format("{}:{} {}", w.major, w.minor, *w.weight)));
    }
    struct {
      const std::vector<ThrottleDevice>& list;
      const char* file;
    } throttles[] = {{b.throttle_read_bps, "blkio.throttle.read_bps_device"},
                     {b.throttle_write_bps, "blkio.throttle.write_bps_device"},
                     {b.throttle_read_iops, "blkio.throttle.read_iops_device"},
                     {b.throttle_write_iops, "blkio.throttle.write_iops_device"}};
    for (const auto& t : throttles) {
      for (const auto& d : t.list)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, t.file, fmt::format("{}:{} {}", d.major, d.minor, d.rate)));
    }
    return Status();
  }

  CgroupFs& fs_;
  std::string root_, dir_;
  std::set<std::string> controllers_;
};

}  // namespace

std::shared_ptr<Hierarchy> make_v1(CgroupFs& fs, const std::string& mountpoint,
                                   const std::set<std::string>& controllers,
                                   const std::string& path) {
  return std::make_shared<V1>(fs, mountpoint, controllers, path);
}

}  // namespace berth::oci::cgroups

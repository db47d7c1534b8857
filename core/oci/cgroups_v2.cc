// cgroup v2: the unified tree, controllers delegated down through cgroup.subtree_control. On a
// hybrid host it drives only the controllers v1 does not have (and, when v1 has no freezer,
// cgroup.freeze, the unified keys and the device program).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "core/oci/cgroup_fs.h"
#include "core/oci/cgroups_impl.h"
#include "core/oci/devices_bpf.h"

namespace berth::oci::cgroups {
namespace {

class V2 : public Hierarchy {
 public:
  V2(CgroupFs& fs, std::string mountpoint, std::set<std::string> controllers,
     const std::string& path, bool owns_freezer)
      : fs_(fs),
        root_(std::move(mountpoint)),
        dir_(root_ + path),
        controllers_(std::move(controllers)),
        owns_freezer_(owns_freezer) {}
  const std::string& dir() const override { return dir_; }
  bool v2() const override { return true; }
  const std::set<std::string>& controllers() const override { return controllers_; }
  bool has(const char* c) const { return controllers_.count(c) > 0; }

  Status create() override {
    BERTH_RETURN_IF_ERROR(fs_.mkdir_all(dir_));
    // Delegate our controllers down every level from the root to the parent of dir_.
    if (controllers_.empty()) return Status();
    std::string rel = dir_.substr(root_.size());
    std::string cur = root_;
    for (std::size_t pos = 0; pos < rel.size();) {
      std::size_t next = rel.find('/', pos + 1);
      if (next == std::string::npos) break;  // the leaf itself delegates nothing
      std::string subtree;
      for (const auto& c : controllers_) subtree += (subtree.empty() ? "+" : " +") + c;
      Status st = fs_.write(cur, "cgroup.subtree_control", subtree);
      if (!st.ok()) {
        // One by one, so a controller that cannot be delegated does not block the others.
        for (const auto& c : controllers_) fs_.write(cur, "cgroup.subtree_control", "+" + c).ignore();
      }
      cur = root_ + rel.substr(0, next);
      pos = next;
    }
    if (!rel.empty()) {
      std::string subtree;
      for (const auto& c : controllers_) subtree += (subtree.empty() ? "+" : " +") + c;
      std::string parent = dir_.substr(0, dir_.rfind('/'));
      if (parent.size() >= root_.size() && !fs_.write(parent, "cgroup.subtree_control", subtree).ok()) {
        for (const auto& c : controllers_) fs_.write(parent, "cgroup.subtree_control", "+" + c).ignore();
      }
    }
    return Status();
  }
  Status add(pid_t pid) override { return fs_.write(dir_, "cgroup.procs", std::to_string(pid)); }

  Status apply(const Resources& r) override {
    if (has("cpu") && r.cpu) {
      const Cpu& c = *r.cpu;
      if (c.shares && *c.shares)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.weight", std::to_string(shares_to_weight(*c.shares))));
      if ((c.quota && *c.quota) || (c.period && *c.period)) {
        std::string quota = c.quota && *c.quota > 0 ? std::to_string(*c.quota) : "max";
        std::string period = c.period && *c.period ? std::to_string(*c.period) : "100000";
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.max", quota + " " + period));
      }
      if (c.idle) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpu.idle", std::to_string(*c.idle)));
      if ((c.realtime_runtime && *c.realtime_runtime) || (c.realtime_period && *c.realtime_period))
        return Status(Code::kUnimplemented, "cgroup v2 has no realtime CPU limits (cpu.realtimeRuntime)");
    }
    if (has("cpuset") && r.cpu) {
      if (!r.cpu->cpus.empty()) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpuset.cpus", r.cpu->cpus));
      if (!r.cpu->mems.empty()) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cpuset.mems", r.cpu->mems));
    }
    if (has("memory") && r.memory) {
      const Memory& m = *r.memory;
      if (m.limit)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.max", *m.limit > 0 ? std::to_string(*m.limit) : "max"));
      if (m.reservation)
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.low", std::to_string(*m.reservation)));
      if (m.swap) {
        // v1's swap is memory+swap; v2's memory.swap.max is swap alone.
        std::string v = "max";
        if (*m.swap > 0 && m.limit && *m.limit > 0) v = std::to_string(*m.swap - *m.limit);
        else if (*m.swap == 0) v = "0";
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "memory.swap.max", v));
      }
      if (m.disable_oom_killer && *m.disable_oom_killer)
        return Status(Code::kUnimplemented, "cgroup v2 cannot disable the OOM killer (memory.disableOOMKiller)");
    }
    if (has("pids") && r.pids_limit) {
      BERTH_RETURN_IF_ERROR(fs_.write(dir_, "pids.max", *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : "max"));
    }
    if (has("io") && r.block_io) {
      const BlockIo& b = *r.block_io;
      if (b.weight && *b.weight)  // v1 range 10..1000 -> v2 1..10000
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "io.weight", "default " + std::to_string(1 + (*b.weight - 10) * 9999 / 990)));
      std::map<std::string, std::string> max;
      auto add = [&](const std::vector<ThrottleDevice>& l, const char* key) {
        for (const auto& d : l) max[fmt::format("{}:{}", d.major, d.minor)] += fmt::format(" {}={}", key, d.rate);
      };
      add(b.throttle_read_bps, "rbps");
      add(b.throttle_write_bps, "wbps");
      add(b.throttle_read_iops, "riops");
      add(b.throttle_write_iops, "wiops");
      for (const auto& [dev, limits] : max) BERTH_RETURN_IF_ERROR(fs_.write(dir_, "io.max", dev + limits));
    }
    if (has("hugetlb")) {
      for (const auto& h : r.hugepage_limits) {
        BERTH_RETURN_IF_ERROR(check_page_size(h.page_size));
        BERTH_RETURN_IF_ERROR(fs_.write(dir_, "hugetlb." + h.page_size + ".max", std::to_string(h.limit)));
      }
    }
    if (owns_freezer_) {  // the v2 tree owns everything not on v1: unified and device rules
      for (const auto& [file, value] : r.unified) BERTH_RETURN_IF_ERROR(fs_.write(dir_, file, value));
      // No devices controller on v2: an eBPF program attached to the cgroup decides.
      if (!r.devices.empty())
        BERTH_RETURN_IF_ERROR(devices::apply(dir_, r.devices).with_context("linux.resources.devices"));
    }
    return Status();
  }

  Result<std::vector<pid_t>> pids() const override { return read_procs(fs_, dir_); }
  bool can_freeze() const override { return owns_freezer_ && fs_.exists(dir_ + "/cgroup.freeze"); }
  Status freeze(bool frozen) override {
    BERTH_RETURN_IF_ERROR(fs_.write(dir_, "cgroup.freeze", frozen ? "1" : "0"));
    for (int i = 0; i < 1000; ++i) {
      auto ev = read_keyed(fs_, dir_ + "/cgroup.events");
      if ((ev["frozen"] == 1) == frozen) return Status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status(Code::kDeadlineExceeded, fmt::format("cgroup {} did not {}", dir_, frozen ? "freeze" : "thaw"));
  }
  Result<bool> frozen() const override {
    auto v = fs_.read(dir_ + "/cgroup.freeze");
    if (!v) return from_errno(errno, "read {}/cgroup.freeze", dir_);
    return *v == "1";
  }
  void stats(Stats& out) const override {
    if (has("cpu") || fs_.exists(dir_ + "/cpu.stat")) {
      auto st = read_keyed(fs_, dir_ + "/cpu.stat");
      if (!out.cpu_usage_ns) {
        out.cpu_usage_ns = st["usage_usec"] * 1000;
        out.cpu_user_ns = st["user_usec"] * 1000;
        out.cpu_system_ns = st["system_usec"] * 1000;
      }
      if (st.count("nr_periods")) {
        out.cpu_periods = st["nr_periods"];
        out.cpu_throttled_periods = st["nr_throttled"];
        out.cpu_throttled_ns = st["throttled_usec"] * 1000;
      }
    }
    if (has("memory")) {
      out.memory_usage = read_u64(fs_, dir_ + "/memory.current");
      out.memory_max_usage = read_u64(fs_, dir_ + "/memory.peak");
      out.memory_limit = read_u64(fs_, dir_ + "/memory.max");
      auto st = read_keyed(fs_, dir_ + "/memory.stat");
      out.memory_cache = st["file"];
      out.memory_rss = st["anon"];
      out.memory_inactive_file = st["inactive_file"];
      out.memory_pgfault = st["pgfault"];
      out.memory_pgmajfault = st["pgmajfault"];
      out.memory_swap = read_u64(fs_, dir_ + "/memory.swap.current");
      auto ev = read_keyed(fs_, dir_ + "/memory.events");
      out.oom_kills = ev["oom_kill"];
      out.memory_failcnt = ev["max"];
    }
    if (has("pids")) {
      out.pids_current = read_u64(fs_, dir_ + "/pids.current");
      out.pids_limit = read_u64(fs_, dir_ + "/pids.max");
    }
  }
  Result<int> oom_fd() const override {
    if (!has("memory")) return -1;
    int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return from_errno(errno, "inotify_init1");
    if (::inotify_add_watch(fd, (dir_ + "/memory.events").c_str(), IN_MODIFY) < 0) {
      int err = errno;
      ::close(fd);
      return from_errno(err, "watch {}/memory.events", dir_);
    }
    return fd;
  }
  Status destroy() override { return remove_dir(fs_, dir_); }

 private:
  CgroupFs& fs_;
  std::string root_, dir_;
  std::set<std::string> controllers_;
  bool owns_freezer_;
};

}  // namespace

std::shared_ptr<Hierarchy> make_v2(CgroupFs& fs, const std::string& mountpoint,
                                   const std::set<std::string>& controllers,
                                   const std::string& path, bool owns_rest) {
  return std::make_shared<V2>(fs, mountpoint, controllers, path, owns_rest);
}

}  // namespace berth::oci::cgroups

#include "core/oci/cgroups.h"

#include "core/oci/devices_bpf.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/fs.h"

namespace berth::oci::cgroups {
namespace {

const std::set<std::string>& v1_known() {
  static const std::set<std::string> s = {"cpu",    "cpuacct", "cpuset",  "memory",  "pids",
                                          "blkio",  "devices", "freezer", "hugetlb", "net_cls",
                                          "net_prio", "perf_event", "rdma", "misc"};
  return s;
}

Status write_value(const std::string& dir, const std::string& file, const std::string& value) {
  std::string path = dir + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_TRUNC);
  if (fd < 0) {
    if (errno == ENOENT)
      return Status(Code::kUnimplemented,
                    fmt::format("cgroup file {} does not exist (controller or feature missing on "
                                "this host)",
                                path));
    return from_errno(errno, "open cgroup file {}", path);
  }
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return from_errno(err, "write \"{}\" to {}", value, path);
  return Status();
}

std::optional<std::string> read_value(const std::string& path) {
  auto r = core::read_file(path);
  if (!r.ok()) return std::nullopt;
  std::string s = *r;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::uint64_t read_u64(const std::string& path) {
  auto v = read_value(path);
  if (!v || v->empty() || *v == "max") return 0;
  return std::strtoull(v->c_str(), nullptr, 10);
}

// "key value" lines.
std::map<std::string, std::uint64_t> read_keyed(const std::string& path) {
  std::map<std::string, std::uint64_t> out;
  std::ifstream in(path);
  std::string k;
  std::uint64_t v;
  while (in >> k >> v) out[k] = v;
  return out;
}

Result<std::vector<pid_t>> read_procs(const std::string& dir) {
  std::ifstream in(dir + "/cgroup.procs");
  if (!in) return from_errno(errno, "read {}/cgroup.procs", dir);
  std::vector<pid_t> out;
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

Status mkdir_p(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return invalid_argument("create cgroup {}: {}", dir, ec.message());
  return Status();
}

// Waits only for tasks that are on their way out: a cgroup that still lists processes (another
// container sharing it) is refused at once.
Status rmdir_retry(const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return Status();
    if (errno != EBUSY) return from_errno(errno, "remove cgroup {}", dir);
    auto procs = read_value(dir + "/cgroup.procs");
    if (procs && !procs->empty())
      return from_errno(EBUSY, "remove cgroup {} (processes {} are still in it)", dir, *procs);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return from_errno(EBUSY, "remove cgroup {} (tasks still in it)", dir);
}

std::string device_rule(const DeviceRule& d) {
  std::string type = d.type.empty() ? "a" : d.type;
  if (type == "a") return "a";
  auto num = [](const std::optional<std::int64_t>& n) {
    return n && *n >= 0 ? std::to_string(*n) : std::string("*");
  };
  return type + " " + num(d.major) + ":" + num(d.minor) + " " +
         (d.access.empty() ? "rwm" : d.access);
}

// "2MB" -> "2MB" (v1/v2 file names use the same spelling).
Status check_page_size(const std::string& s) {
  if (s.empty() || s.find('/') != std::string::npos)
    return invalid_argument("hugepage size \"{}\" is not valid", s);
  return Status();
}

class V1 : public Hierarchy {
 public:
  V1(std::string mountpoint, std::set<std::string> controllers, const std::string& path)
      : root_(std::move(mountpoint)), dir_(root_ + path), controllers_(std::move(controllers)) {}
  const std::string& dir() const override { return dir_; }
  bool v2() const override { return false; }
  const std::set<std::string>& controllers() const override { return controllers_; }
  bool has(const char* c) const { return controllers_.count(c) > 0; }

  Status create() override {
    if (!has("cpuset")) return mkdir_p(dir_);
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
      if (::mkdir(cur.c_str(), 0755) < 0 && errno != EEXIST)
        return from_errno(errno, "create cgroup {}", cur);
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        auto mine = read_value(cur + "/" + f);
        if (mine && mine->empty()) {
          auto up = read_value(parent + "/" + f);
          if (up) BERTH_RETURN_IF_ERROR(write_value(cur, f, *up));
        }
      }
    }
    return Status();
  }
  Status add(pid_t pid) override { return write_value(dir_, "cgroup.procs", std::to_string(pid)); }

  Status apply(const Resources& r) override {
    if (has("cpu") && r.cpu) {
      const Cpu& c = *r.cpu;
      if (c.shares && *c.shares) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.shares", std::to_string(*c.shares)));
      if (c.period && *c.period) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.cfs_period_us", std::to_string(*c.period)));
      if (c.quota && *c.quota) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.cfs_quota_us", std::to_string(*c.quota)));
      if (c.realtime_period && *c.realtime_period)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.rt_period_us", std::to_string(*c.realtime_period)));
      if (c.realtime_runtime && *c.realtime_runtime)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.rt_runtime_us", std::to_string(*c.realtime_runtime)));
      if (c.idle) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.idle", std::to_string(*c.idle)));
    }
    if (has("cpuset") && r.cpu) {
      if (!r.cpu->cpus.empty()) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpuset.cpus", r.cpu->cpus));
      if (!r.cpu->mems.empty()) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpuset.mems", r.cpu->mems));
    }
    if (has("memory") && r.memory) BERTH_RETURN_IF_ERROR(memory(*r.memory));
    if (has("pids") && r.pids_limit) {
      BERTH_RETURN_IF_ERROR(write_value(
          dir_, "pids.max", *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : "max"));
    }
    if (has("blkio") && r.block_io) BERTH_RETURN_IF_ERROR(blkio(*r.block_io));
    if (has("hugetlb")) {
      for (const auto& h : r.hugepage_limits) {
        BERTH_RETURN_IF_ERROR(check_page_size(h.page_size));
        BERTH_RETURN_IF_ERROR(write_value(dir_, "hugetlb." + h.page_size + ".limit_in_bytes",
                                          std::to_string(h.limit)));
      }
    }
    if (has("devices") && !r.devices.empty()) {
      for (const auto& d : r.devices) {
        BERTH_RETURN_IF_ERROR(
            write_value(dir_, d.allow ? "devices.allow" : "devices.deny", device_rule(d)));
      }
    }
    if (has("net_cls") && r.net_class_id)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "net_cls.classid", std::to_string(*r.net_class_id)));
    if (has("net_prio")) {
      for (const auto& [ifname, prio] : r.net_priorities)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "net_prio.ifpriomap", ifname + " " + std::to_string(prio)));
    }
    return Status();
  }

  Result<std::vector<pid_t>> pids() const override { return read_procs(dir_); }
  bool can_freeze() const override { return has("freezer"); }
  Status freeze(bool frozen) override {
    const char* want = frozen ? "FROZEN" : "THAWED";
    for (int i = 0; i < 1000; ++i) {
      BERTH_RETURN_IF_ERROR(write_value(dir_, "freezer.state", want));
      auto state = read_value(dir_ + "/freezer.state");
      if (state && *state == want) return Status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status(Code::kDeadlineExceeded, fmt::format("cgroup {} did not become {}", dir_, want));
  }
  Result<bool> frozen() const override {
    auto s = read_value(dir_ + "/freezer.state");
    if (!s) return from_errno(errno, "read {}/freezer.state", dir_);
    return *s == "FROZEN" || *s == "FREEZING";
  }
  void stats(Stats& out) const override {
    if (has("cpuacct")) {
      out.cpu_usage_ns = read_u64(dir_ + "/cpuacct.usage");
      auto st = read_keyed(dir_ + "/cpuacct.stat");
      long hz = ::sysconf(_SC_CLK_TCK);
      out.cpu_user_ns = st["user"] * (1000000000ull / static_cast<std::uint64_t>(hz));
      out.cpu_system_ns = st["system"] * (1000000000ull / static_cast<std::uint64_t>(hz));
    }
    if (has("cpu")) {
      auto st = read_keyed(dir_ + "/cpu.stat");
      out.cpu_periods = st["nr_periods"];
      out.cpu_throttled_periods = st["nr_throttled"];
      out.cpu_throttled_ns = st["throttled_time"];
    }
    if (has("memory")) {
      out.memory_usage = read_u64(dir_ + "/memory.usage_in_bytes");
      out.memory_max_usage = read_u64(dir_ + "/memory.max_usage_in_bytes");
      out.memory_limit = read_u64(dir_ + "/memory.limit_in_bytes");
      out.memory_failcnt = read_u64(dir_ + "/memory.failcnt");
      auto st = read_keyed(dir_ + "/memory.stat");
      out.memory_cache = st["cache"];
      out.memory_rss = st["rss"];
      out.memory_swap = st["swap"];
      out.oom_kills = read_keyed(dir_ + "/memory.oom_control")["oom_kill"];
    }
    if (has("pids")) {
      out.pids_current = read_u64(dir_ + "/pids.current");
      out.pids_limit = read_u64(dir_ + "/pids.max");
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
    Status st = write_value(dir_, "cgroup.event_control",
                            std::to_string(efd) + " " + std::to_string(ofd));
    ::close(ofd);
    if (!st.ok()) {
      ::close(efd);
      return st;
    }
    return efd;
  }
  Status destroy() override { return rmdir_retry(dir_); }

 private:
  Status memory(const Memory& m) {
    bool has_swap_file = ::access((dir_ + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0;
    if (m.limit) {
      std::string limit = std::to_string(*m.limit);
      // memsw must stay >= limit: when raising, write memsw first; when lowering, limit first.
      if (m.swap && has_swap_file) {
        std::string swap = std::to_string(*m.swap);
        std::uint64_t current = read_u64(dir_ + "/memory.limit_in_bytes");
        bool raising = *m.limit < 0 || static_cast<std::uint64_t>(*m.limit) > current;
        if (raising) {
          BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.memsw.limit_in_bytes", swap));
          BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.limit_in_bytes", limit));
        } else {
          BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.limit_in_bytes", limit));
          BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.memsw.limit_in_bytes", swap));
        }
      } else {
        BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.limit_in_bytes", limit));
      }
    } else if (m.swap && has_swap_file) {
      BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.memsw.limit_in_bytes", std::to_string(*m.swap)));
    }
    if (m.reservation)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.soft_limit_in_bytes", std::to_string(*m.reservation)));
    if (m.kernel_tcp)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.kmem.tcp.limit_in_bytes", std::to_string(*m.kernel_tcp)));
    if (m.swappiness)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.swappiness", std::to_string(*m.swappiness)));
    if (m.disable_oom_killer && *m.disable_oom_killer)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.oom_control", "1"));
    return Status();
  }
  Status blkio(const BlockIo& b) {
    auto weight_file = [&](const char* plain, const char* bfq) {
      return ::access((dir_ + "/" + plain).c_str(), F_OK) == 0 ? std::string(plain)
                                                               : std::string(bfq);
    };
    if (b.weight && *b.weight)
      BERTH_RETURN_IF_ERROR(write_value(dir_, weight_file("blkio.weight", "blkio.bfq.weight"), std::to_string(*b.weight)));
    if (b.leaf_weight && *b.leaf_weight)
      BERTH_RETURN_IF_ERROR(write_value(dir_, "blkio.leaf_weight", std::to_string(*b.leaf_weight)));
    for (const auto& w : b.weight_device) {
      if (w.weight)
        BERTH_RETURN_IF_ERROR(write_value(dir_, weight_file("blkio.weight_device", "blkio.bfq.weight_device"),
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
        BERTH_RETURN_IF_ERROR(write_value(dir_, t.file, fmt::format("{}:{} {}", d.major, d.minor, d.rate)));
    }
    return Status();
  }

  std::string root_, dir_;
  std::set<std::string> controllers_;
};

class V2 : public Hierarchy {
 public:
  V2(std::string mountpoint, std::set<std::string> controllers, const std::string& path,
     bool owns_freezer)
      : root_(std::move(mountpoint)),
        dir_(root_ + path),
        controllers_(std::move(controllers)),
        owns_freezer_(owns_freezer) {}
  const std::string& dir() const override { return dir_; }
  bool v2() const override { return true; }
  const std::set<std::string>& controllers() const override { return controllers_; }
  bool has(const char* c) const { return controllers_.count(c) > 0; }

  Status create() override {
    BERTH_RETURN_IF_ERROR(mkdir_p(dir_));
    // Delegate our controllers down every level from the root to the parent of dir_.
    if (controllers_.empty()) return Status();
    std::string rel = dir_.substr(root_.size());
    std::string cur = root_;
    for (std::size_t pos = 0; pos < rel.size();) {
      std::size_t next = rel.find('/', pos + 1);
      if (next == std::string::npos) break;  // the leaf itself delegates nothing
      std::string subtree;
      for (const auto& c : controllers_) subtree += (subtree.empty() ? "+" : " +") + c;
      Status st = write_value(cur, "cgroup.subtree_control", subtree);
      if (!st.ok()) {
        // One by one, so a controller that cannot be delegated does not block the others.
        for (const auto& c : controllers_) write_value(cur, "cgroup.subtree_control", "+" + c).ignore();
      }
      cur = root_ + rel.substr(0, next);
      pos = next;
    }
    if (!rel.empty()) {
      std::string subtree;
      for (const auto& c : controllers_) subtree += (subtree.empty() ? "+" : " +") + c;
      std::string parent = dir_.substr(0, dir_.rfind('/'));
      if (parent.size() >= root_.size() && !write_value(parent, "cgroup.subtree_control", subtree).ok()) {
        for (const auto& c : controllers_) write_value(parent, "cgroup.subtree_control", "+" + c).ignore();
      }
    }
    return Status();
  }
  Status add(pid_t pid) override { return write_value(dir_, "cgroup.procs", std::to_string(pid)); }

  Status apply(const Resources& r) override {
    if (has("cpu") && r.cpu) {
      const Cpu& c = *r.cpu;
      if (c.shares && *c.shares)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.weight", std::to_string(shares_to_weight(*c.shares))));
      if ((c.quota && *c.quota) || (c.period && *c.period)) {
        std::string quota = c.quota && *c.quota > 0 ? std::to_string(*c.quota) : "max";
        std::string period = c.period && *c.period ? std::to_string(*c.period) : "100000";
        BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.max", quota + " " + period));
      }
      if (c.idle) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpu.idle", std::to_string(*c.idle)));
      if ((c.realtime_runtime && *c.realtime_runtime) || (c.realtime_period && *c.realtime_period))
        return Status(Code::kUnimplemented, "cgroup v2 has no realtime CPU limits (cpu.realtimeRuntime)");
    }
    if (has("cpuset") && r.cpu) {
      if (!r.cpu->cpus.empty()) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpuset.cpus", r.cpu->cpus));
      if (!r.cpu->mems.empty()) BERTH_RETURN_IF_ERROR(write_value(dir_, "cpuset.mems", r.cpu->mems));
    }
    if (has("memory") && r.memory) {
      const Memory& m = *r.memory;
      if (m.limit)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.max", *m.limit > 0 ? std::to_string(*m.limit) : "max"));
      if (m.reservation)
        BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.low", std::to_string(*m.reservation)));
      if (m.swap) {
        // v1's swap is memory+swap; v2's memory.swap.max is swap alone.
        std::string v = "max";
        if (*m.swap > 0 && m.limit && *m.limit > 0) v = std::to_string(*m.swap - *m.limit);
        else if (*m.swap == 0) v = "0";
        BERTH_RETURN_IF_ERROR(write_value(dir_, "memory.swap.max", v));
      }
      if (m.disable_oom_killer && *m.disable_oom_killer)
        return Status(Code::kUnimplemented, "cgroup v2 cannot disable the OOM killer (memory.disableOOMKiller)");
    }
    if (has("pids") && r.pids_limit) {
      BERTH_RETURN_IF_ERROR(write_value(dir_, "pids.max", *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : "max"));
    }
    if (has("io") && r.block_io) {
      const BlockIo& b = *r.block_io;
      if (b.weight && *b.weight)  // v1 range 10..1000 -> v2 1..10000
        BERTH_RETURN_IF_ERROR(write_value(dir_, "io.weight", "default " + std::to_string(1 + (*b.weight - 10) * 9999 / 990)));
      std::map<std::string, std::string> max;
      auto add = [&](const std::vector<ThrottleDevice>& l, const char* key) {
        for (const auto& d : l) max[fmt::format("{}:{}", d.major, d.minor)] += fmt::format(" {}={}", key, d.rate);
      };
      add(b.throttle_read_bps, "rbps");
      add(b.throttle_write_bps, "wbps");
      add(b.throttle_read_iops, "riops");
      add(b.throttle_write_iops, "wiops");
      for (const auto& [dev, limits] : max) BERTH_RETURN_IF_ERROR(write_value(dir_, "io.max", dev + limits));
    }
    if (has("hugetlb")) {
      for (const auto& h : r.hugepage_limits) {
        BERTH_RETURN_IF_ERROR(check_page_size(h.page_size));
        BERTH_RETURN_IF_ERROR(write_value(dir_, "hugetlb." + h.page_size + ".max", std::to_string(h.limit)));
      }
    }
    if (owns_freezer_) {  // the v2 tree owns everything not on v1: unified and device rules
      for (const auto& [file, value] : r.unified) BERTH_RETURN_IF_ERROR(write_value(dir_, file, value));
      // No devices controller on v2: an eBPF program attached to the cgroup decides.
      if (!r.devices.empty())
        BERTH_RETURN_IF_ERROR(devices::apply(dir_, r.devices).with_context("linux.resources.devices"));
    }
    return Status();
  }

  Result<std::vector<pid_t>> pids() const override { return read_procs(dir_); }
  bool can_freeze() const override { return owns_freezer_ && ::access((dir_ + "/cgroup.freeze").c_str(), F_OK) == 0; }
  Status freeze(bool frozen) override {
    BERTH_RETURN_IF_ERROR(write_value(dir_, "cgroup.freeze", frozen ? "1" : "0"));
    for (int i = 0; i < 1000; ++i) {
      auto ev = read_keyed(dir_ + "/cgroup.events");
      if ((ev["frozen"] == 1) == frozen) return Status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status(Code::kDeadlineExceeded, fmt::format("cgroup {} did not {}", dir_, frozen ? "freeze" : "thaw"));
  }
  Result<bool> frozen() const override {
    auto v = read_value(dir_ + "/cgroup.freeze");
    if (!v) return from_errno(errno, "read {}/cgroup.freeze", dir_);
    return *v == "1";
  }
  void stats(Stats& out) const override {
    if (has("cpu") || ::access((dir_ + "/cpu.stat").c_str(), F_OK) == 0) {
      auto st = read_keyed(dir_ + "/cpu.stat");
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
      out.memory_usage = read_u64(dir_ + "/memory.current");
      out.memory_max_usage = read_u64(dir_ + "/memory.peak");
      out.memory_limit = read_u64(dir_ + "/memory.max");
      auto st = read_keyed(dir_ + "/memory.stat");
      out.memory_cache = st["file"];
      out.memory_rss = st["anon"];
      out.memory_swap = read_u64(dir_ + "/memory.swap.current");
      auto ev = read_keyed(dir_ + "/memory.events");
      out.oom_kills = ev["oom_kill"];
      out.memory_failcnt = ev["max"];
    }
    if (has("pids")) {
      out.pids_current = read_u64(dir_ + "/pids.current");
      out.pids_limit = read_u64(dir_ + "/pids.max");
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
  Status destroy() override { return rmdir_retry(dir_); }

 private:
  std::string root_, dir_;
  std::set<std::string> controllers_;
  bool owns_freezer_;
};

std::string normalize_path(const std::string& path) {
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") out += "/" + part;
    i = j + 1;
  }
  return out;
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

Result<Layout> probe(const std::string& mountinfo) {
  std::ifstream in(mountinfo);
  if (!in) return from_errno(errno, "read {}", mountinfo);
  Layout layout;
  std::set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    std::istringstream ls(line);
    std::string id, parent, dev, root, mountpoint, options, field;
    ls >> id >> parent >> dev >> root >> mountpoint >> options;
    while (ls >> field && field != "-") {
    }
    std::string fstype, source, super;
    ls >> fstype >> source >> super;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    if (!seen.insert(mountpoint).second) continue;
    Mount m;
    m.mountpoint = mountpoint;
    m.v2 = fstype == "cgroup2";
    if (!m.v2) {
      std::stringstream opts(super);
      std::string o;
      while (std::getline(opts, o, ',')) {
        if (v1_known().count(o) || o.rfind("name=", 0) == 0) m.controllers.insert(o);
      }
      // The same hierarchy mounted twice (cpu and cpuacct links) counts once.
      bool dup = false;
      for (const auto& other : layout.mounts) dup = dup || (!other.v2 && other.controllers == m.controllers);
      if (dup) continue;
    } else {
      auto c = read_value(mountpoint + "/cgroup.controllers");
      std::stringstream cs(c.value_or(""));
      std::string name;
      while (cs >> name) m.controllers.insert(name);
    }
    layout.mounts.push_back(std::move(m));
  }
  if (layout.mounts.empty()) return not_found("no cgroup hierarchy is mounted ({})", mountinfo);
  return layout;
}

Layout v2_layout(const std::string& mountpoint) {
  Layout l;
  Mount m;
  m.mountpoint = mountpoint;
  m.v2 = true;
  auto c = read_value(mountpoint + "/cgroup.controllers");
  std::stringstream cs(c.value_or(""));
  std::string name;
  while (cs >> name) m.controllers.insert(name);
  l.mounts.push_back(m);
  return l;
}

Result<Cgroup> Cgroup::open(const Layout& layout, const std::string& path_in) {
  std::string path = normalize_path(path_in);
  if (path.empty()) return invalid_argument("cgroup path \"{}\" names the root cgroup", path_in);
  Cgroup c;
  c.path_ = path;
  std::set<std::string> on_v1;
  bool v1_freezer = false;
  for (const auto& m : layout.mounts) {
    if (m.v2) continue;
    on_v1.insert(m.controllers.begin(), m.controllers.end());
    v1_freezer = v1_freezer || m.controllers.count("freezer");
    c.hierarchies_.push_back(std::make_shared<V1>(m.mountpoint, m.controllers, path));
  }
  for (const auto& m : layout.mounts) {
    if (!m.v2) continue;
    std::set<std::string> mine;
    for (const auto& ctl : m.controllers) {
      // On a hybrid host the v2 tree drives only what v1 does not have.
      if (!on_v1.count(ctl) && !(ctl == "io" && on_v1.count("blkio"))) mine.insert(ctl);
    }
    c.hierarchies_.push_back(std::make_shared<V2>(m.mountpoint, mine, path, !v1_freezer));
  }
  return c;
}

std::vector<std::string> Cgroup::dirs() const {
  std::vector<std::string> out;
  for (const auto& h : hierarchies_) out.push_back(h->dir());
  return out;
}

Status Cgroup::create() {
  for (const auto& h : hierarchies_) BERTH_RETURN_IF_ERROR(h->create());
  return Status();
}

Status Cgroup::add(pid_t pid) {
  for (const auto& h : hierarchies_) BERTH_RETURN_IF_ERROR(h->add(pid));
  return Status();
}

Status Cgroup::apply(const Resources& r) {
  // Every requested limit must land somewhere: name what this host cannot do.
  std::set<std::string> have;
  for (const auto& h : hierarchies_) have.insert(h->controllers().begin(), h->controllers().end());
  auto need = [&](bool wanted, std::initializer_list<const char*> any, const char* what) -> Status {
    if (!wanted) return Status();
    for (const char* c : any) {
      if (have.count(c)) return Status();
    }
    return Status(Code::kUnimplemented,
                  fmt::format("{} needs the {} cgroup controller, which this host does not have",
                              what, *any.begin()));
  };
  BERTH_RETURN_IF_ERROR(need(r.memory && (r.memory->limit || r.memory->reservation), {"memory"},
                             "linux.resources.memory"));
  BERTH_RETURN_IF_ERROR(need(r.pids_limit.has_value(), {"pids"}, "linux.resources.pids"));
  BERTH_RETURN_IF_ERROR(need(r.cpu && (r.cpu->shares || r.cpu->quota), {"cpu"}, "linux.resources.cpu"));
  BERTH_RETURN_IF_ERROR(need(!r.hugepage_limits.empty(), {"hugetlb"}, "linux.resources.hugepageLimits"));
  for (const auto& h : hierarchies_) BERTH_RETURN_IF_ERROR(h->apply(r));
  if (!r.unified.empty()) {
    bool any_v2 = false;
    for (const auto& h : hierarchies_) any_v2 = any_v2 || h->v2();
    if (!any_v2)
      return Status(Code::kUnimplemented, "linux.resources.unified needs cgroup v2, and this host has v1 only");
  }
  return Status();
}

Result<std::vector<pid_t>> Cgroup::pids() const {
  Status last = not_found("cgroup {} has no hierarchy", path_);
  for (const auto& h : hierarchies_) {
    auto p = h->pids();
    if (p.ok()) return p;
    last = p.status();
  }
  return last;
}

Status Cgroup::freeze(bool frozen) {
  for (const auto& h : hierarchies_) {
    if (h->can_freeze()) return h->freeze(frozen);
  }
  return Status(Code::kUnimplemented, "no freezer on this host (v1 freezer controller or cgroup.freeze)");
}

Result<bool> Cgroup::frozen() const {
  for (const auto& h : hierarchies_) {
    if (h->can_freeze()) return h->frozen();
  }
  return false;
}

Status Cgroup::kill_all(int signal) {
  BERTH_TRY(auto pids, this->pids());
  for (pid_t p : pids) ::kill(p, signal);
  return Status();
}

Result<Stats> Cgroup::stats() const {
  Stats s;
  for (const auto& h : hierarchies_) h->stats(s);
  return s;
}

Result<int> Cgroup::oom_fd() const {
  for (const auto& h : hierarchies_) {
    BERTH_TRY(int fd, h->oom_fd());
    if (fd >= 0) return fd;
  }
  return -1;
}

Status Cgroup::destroy() {
  Status first;
  for (const auto& h : hierarchies_) {
    Status st = h->destroy();
    if (first.ok() && !st.ok()) first = st;
  }
  return first;
}

std::uint64_t shares_to_weight(std::uint64_t shares) {
  if (shares == 0) return 0;
  if (shares < 2) shares = 2;
  if (shares > 262144) shares = 262144;
  return 1 + ((shares - 2) * 9999) / 262142;
}

}  // namespace berth::oci::cgroups

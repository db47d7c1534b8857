// A container's cgroup across every hierarchy of the host (see cgroups.h): the composition, and
// the checks that every requested limit lands somewhere.
#include "core/oci/cgroups.h"

#include <signal.h>

#include "core/oci/cgroup_fs.h"
#include "core/oci/cgroups_impl.h"

namespace berth::oci::cgroups {
namespace {

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

Result<Cgroup> Cgroup::open(const Layout& layout, const std::string& path) {
  return open(layout, path, CgroupFs::host());
}

Result<Cgroup> Cgroup::open(const Layout& layout, const std::string& path_in, CgroupFs& fs) {
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
    c.hierarchies_.push_back(make_v1(fs, m.mountpoint, m.controllers, path));
  }
  for (const auto& m : layout.mounts) {
    if (!m.v2) continue;
    std::set<std::string> mine;
    for (const auto& ctl : m.controllers) {
      // On a hybrid host the v2 tree drives only what v1 does not have.
      if (!on_v1.count(ctl) && !(ctl == "io" && on_v1.count("blkio"))) mine.insert(ctl);
    }
    c.hierarchies_.push_back(make_v2(fs, m.mountpoint, mine, path, !v1_freezer));
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

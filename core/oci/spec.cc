#include "core/oci/spec.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

namespace berth::oci {
namespace {

using nlohmann::json;

// A JSON value and its path, with typed accessors that name the path in errors.
class Field {
 public:
  Field(const json& j, std::string path) : j_(j), path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  const json& value() const { return j_; }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  Field at(const char* key) const { return Field(j_[key], path_ + "." + key); }

  Status error(std::string_view why) const { return invalid_argument("{}: {}", path_, why); }
  Status expect_object() const { return j_.is_object() ? Status() : error("must be an object"); }

  Result<std::string> str() const {
    if (!j_.is_string()) return error("must be a string");
    return j_.get<std::string>();
  }
  Result<bool> boolean() const {
    if (!j_.is_boolean()) return error("must be true or false");
    return j_.get<bool>();
  }
  template <typename T>
  Result<T> integer() const {
    if (!j_.is_number_integer()) return error("must be an integer");
    if (j_.is_number_unsigned()) {
      auto v = j_.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        return error("is too large");
      return static_cast<T>(v);
    }
    auto v = j_.get<std::int64_t>();
    if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 &&
         static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
      return error("is out of range");
    return static_cast<T>(v);
  }
  Result<std::vector<std::string>> strings() const {
    if (!j_.is_array()) return error("must be an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < j_.size(); ++i) {
      if (!j_[i].is_string()) return Field(j_[i], item(i)).error("must be a string");
      out.push_back(j_[i].get<std::string>());
    }
    return out;
  }
  Result<std::map<std::string, std::string>> string_map() const {
    if (!j_.is_object()) return error("must be an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : j_.items()) {
      if (!v.is_string()) return Field(v, path_ + "." + k).error("must be a string");
      out[k] = v.get<std::string>();
    }
    return out;
  }
  // Calls fn(Field) for each element of an array.
  template <typename Fn>
  Status each(Fn fn) const {
    if (!j_.is_array()) return error("must be an array");
    for (std::size_t i = 0; i < j_.size(); ++i) BERTH_RETURN_IF_ERROR(fn(Field(j_[i], item(i))));
    return Status();
  }

  // Optional members: leave `out` alone when absent.
  Status opt(const char* key, std::string& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).str());
    }
    return Status();
  }
  Status opt(const char* key, bool& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).boolean());
    }
    return Status();
  }
  Status opt(const char* key, std::vector<std::string>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).strings());
    }
    return Status();
  }
  Status opt(const char* key, std::map<std::string, std::string>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).string_map());
    }
    return Status();
  }
  template <typename T>
  Status opt(const char* key, std::optional<T>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).integer<T>());
    }
    return Status();
  }
  template <typename T>
  Status opt_int(const char* key, T& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).integer<T>());
    }
    return Status();
  }

 private:
  std::string item(std::size_t i) const { return path_ + "[" + std::to_string(i) + "]"; }
  const json& j_;
  std::string path_;
};

Result<User> parse_user(const Field& f) {
  BERTH_RETURN_IF_ERROR(f.expect_object());
  User u;
  BERTH_RETURN_IF_ERROR(f.opt_int("uid", u.uid));
  BERTH_RETURN_IF_ERROR(f.opt_int("gid", u.gid));
  BERTH_RETURN_IF_ERROR(f.opt("umask", u.umask));
  if (f.has("additionalGids")) {
    BERTH_RETURN_IF_ERROR(f.at("additionalGids").each([&](const Field& g) -> Status {
      BERTH_TRY(auto v, g.integer<std::uint32_t>());
      u.additional_gids.push_back(v);
      return Status();
    }));
  }
  return u;
}

Status check_caps(const Field& f, const std::vector<std::string>& caps) {
  for (std::size_t i = 0; i < caps.size(); ++i) {
    if (!capability_number(caps[i]))
      return invalid_argument("{}[{}]: unknown capability \"{}\"", f.path(), i, caps[i]);
  }
  return Status();
}

Result<Process> parse_process_field(const Field& f) {
  BERTH_RETURN_IF_ERROR(f.expect_object());
  Process p;
  BERTH_RETURN_IF_ERROR(f.opt("terminal", p.terminal));
  if (f.has("consoleSize")) {
    Field cs = f.at("consoleSize");
    BERTH_RETURN_IF_ERROR(cs.expect_object());
    unsigned h = 0, w = 0;
    BERTH_RETURN_IF_ERROR(cs.opt_int("height", h));
    BERTH_RETURN_IF_ERROR(cs.opt_int("width", w));
    p.console_size = {h, w};
  }
  if (f.has("user")) {
    BERTH_TRY(p.user, parse_user(f.at("user")));
  }
  if (!f.has("args")) return f.at("args").error("is required");
  BERTH_TRY(p.args, f.at("args").strings());
  if (p.args.empty()) return f.at("args").error("must name the program to run");
  BERTH_RETURN_IF_ERROR(f.opt("env", p.env));
  for (std::size_t i = 0; i < p.env.size(); ++i) {
    if (p.env[i].find('=') == std::string::npos || p.env[i].front() == '=')
      return invalid_argument("{}.env[{}]: \"{}\" is not NAME=VALUE", f.path(), i, p.env[i]);
  }
  if (!f.has("cwd")) return f.at("cwd").error("is required");
  BERTH_TRY(p.cwd, f.at("cwd").str());
  if (p.cwd.empty() || p.cwd.front() != '/') return f.at("cwd").error("must be an absolute path");
  if (f.has("capabilities")) {
    Field c = f.at("capabilities");
    BERTH_RETURN_IF_ERROR(c.expect_object());
    Capabilities caps;
    struct {
      const char* key;
      std::vector<std::string>* out;
    } sets[] = {{"bounding", &caps.bounding},
                {"effective", &caps.effective},
                {"inheritable", &caps.inheritable},
                {"permitted", &caps.permitted},
                {"ambient", &caps.ambient}};
    for (auto& s : sets) {
      BERTH_RETURN_IF_ERROR(c.opt(s.key, *s.out));
      if (c.has(s.key)) BERTH_RETURN_IF_ERROR(check_caps(c.at(s.key), *s.out));
    }
    p.capabilities = std::move(caps);
  }
  if (f.has("rlimits")) {
    std::map<int, bool> seen;
    BERTH_RETURN_IF_ERROR(f.at("rlimits").each([&](const Field& r) -> Status {
      BERTH_RETURN_IF_ERROR(r.expect_object());
      Rlimit l;
      if (!r.has("type")) return r.at("type").error("is required");
      BERTH_TRY(l.type, r.at("type").str());
      auto n = rlimit_number(l.type);
      if (!n) return r.at("type").error("unknown rlimit \"" + l.type + "\"");
      if (seen[*n]) return r.at("type").error("\"" + l.type + "\" is set twice");
      seen[*n] = true;
      l.resource = *n;
      BERTH_RETURN_IF_ERROR(r.opt_int("hard", l.hard));
      BERTH_RETURN_IF_ERROR(r.opt_int("soft", l.soft));
      if (l.soft > l.hard) return r.error("soft limit is above the hard limit");
      p.rlimits.push_back(l);
      return Status();
    }));
  }
  BERTH_RETURN_IF_ERROR(f.opt("noNewPrivileges", p.no_new_privileges));
  BERTH_RETURN_IF_ERROR(f.opt("apparmorProfile", p.apparmor_profile));
  BERTH_RETURN_IF_ERROR(f.opt("oomScoreAdj", p.oom_score_adj));
  if (p.oom_score_adj && (*p.oom_score_adj < -1000 || *p.oom_score_adj > 1000))
    return f.at("oomScoreAdj").error("must be between -1000 and 1000");
  BERTH_RETURN_IF_ERROR(f.opt("selinuxLabel", p.selinux_label));
  return p;
}

Result<std::vector<Hook>> parse_hooks(const Field& f) {
  std::vector<Hook> out;
  BERTH_RETURN_IF_ERROR(f.each([&](const Field& h) -> Status {
    BERTH_RETURN_IF_ERROR(h.expect_object());
    Hook hook;
    if (!h.has("path")) return h.at("path").error("is required");
    BERTH_TRY(hook.path, h.at("path").str());
    if (hook.path.empty() || hook.path.front() != '/')
      return h.at("path").error("must be an absolute path");
    BERTH_RETURN_IF_ERROR(h.opt("args", hook.args));
    BERTH_RETURN_IF_ERROR(h.opt("env", hook.env));
    BERTH_RETURN_IF_ERROR(h.opt("timeout", hook.timeout));
    if (hook.timeout && *hook.timeout <= 0) return h.at("timeout").error("must be positive");
    out.push_back(std::move(hook));
    return Status();
  }));
  return out;
}

Result<std::vector<IdMapping>> parse_mappings(const Field& f) {
  std::vector<IdMapping> out;
  BERTH_RETURN_IF_ERROR(f.each([&](const Field& m) -> Status {
    BERTH_RETURN_IF_ERROR(m.expect_object());
    IdMapping map;
    BERTH_RETURN_IF_ERROR(m.opt_int("containerID", map.container_id));
    BERTH_RETURN_IF_ERROR(m.opt_int("hostID", map.host_id));
    BERTH_RETURN_IF_ERROR(m.opt_int("size", map.size));
    if (map.size == 0) return m.at("size").error("must be positive");
    out.push_back(map);
    return Status();
  }));
  return out;
}

Result<DeviceRule> parse_device_rule(const Field& d) {
  BERTH_RETURN_IF_ERROR(d.expect_object());
  DeviceRule rule;
  if (!d.has("allow")) return d.at("allow").error("is required");
  BERTH_TRY(rule.allow, d.at("allow").boolean());
  BERTH_RETURN_IF_ERROR(d.opt("type", rule.type));
  if (!rule.type.empty() && rule.type != "a" && rule.type != "c" && rule.type != "b")
    return d.at("type").error("must be a, b or c");
  BERTH_RETURN_IF_ERROR(d.opt("major", rule.major));
  BERTH_RETURN_IF_ERROR(d.opt("minor", rule.minor));
  BERTH_RETURN_IF_ERROR(d.opt("access", rule.access));
  if (rule.access.find_first_not_of("rwm") != std::string::npos)
    return d.at("access").error("must be made of r, w and m");
  return rule;
}

Result<Memory> parse_memory(const Field& m) {
  BERTH_RETURN_IF_ERROR(m.expect_object());
  Memory mem;
  BERTH_RETURN_IF_ERROR(m.opt("limit", mem.limit));
  BERTH_RETURN_IF_ERROR(m.opt("reservation", mem.reservation));
  BERTH_RETURN_IF_ERROR(m.opt("swap", mem.swap));
  BERTH_RETURN_IF_ERROR(m.opt("kernel", mem.kernel));
  BERTH_RETURN_IF_ERROR(m.opt("kernelTCP", mem.kernel_tcp));
  BERTH_RETURN_IF_ERROR(m.opt("swappiness", mem.swappiness));
  if (mem.swappiness && *mem.swappiness > 100)
    return m.at("swappiness").error("must be between 0 and 100");
  if (m.has("disableOOMKiller")) {
    BERTH_TRY(mem.disable_oom_killer, m.at("disableOOMKiller").boolean());
  }
  if (m.has("useHierarchy")) {
    BERTH_TRY(mem.use_hierarchy, m.at("useHierarchy").boolean());
  }
  if (mem.limit && mem.swap && *mem.swap > 0 && *mem.limit > 0 && *mem.swap < *mem.limit)
    return m.at("swap").error("memory+swap limit must not be below the memory limit");
  return mem;
}

Result<Cpu> parse_cpu(const Field& c) {
  BERTH_RETURN_IF_ERROR(c.expect_object());
  Cpu cpu;
  BERTH_RETURN_IF_ERROR(c.opt("shares", cpu.shares));
  BERTH_RETURN_IF_ERROR(c.opt("quota", cpu.quota));
  BERTH_RETURN_IF_ERROR(c.opt("period", cpu.period));
  BERTH_RETURN_IF_ERROR(c.opt("realtimeRuntime", cpu.realtime_runtime));
  BERTH_RETURN_IF_ERROR(c.opt("realtimePeriod", cpu.realtime_period));
  BERTH_RETURN_IF_ERROR(c.opt("cpus", cpu.cpus));
  BERTH_RETURN_IF_ERROR(c.opt("mems", cpu.mems));
  BERTH_RETURN_IF_ERROR(c.opt("idle", cpu.idle));
  return cpu;
}

Result<BlockIo> parse_block_io(const Field& b) {
  BERTH_RETURN_IF_ERROR(b.expect_object());
  BlockIo io;
  BERTH_RETURN_IF_ERROR(b.opt("weight", io.weight));
  BERTH_RETURN_IF_ERROR(b.opt("leafWeight", io.leaf_weight));
  if (b.has("weightDevice")) {
    BERTH_RETURN_IF_ERROR(b.at("weightDevice").each([&](const Field& d) -> Status {
      WeightDevice w;
      BERTH_RETURN_IF_ERROR(d.expect_object());
      BERTH_RETURN_IF_ERROR(d.opt_int("major", w.major));
      BERTH_RETURN_IF_ERROR(d.opt_int("minor", w.minor));
      BERTH_RETURN_IF_ERROR(d.opt("weight", w.weight));
      BERTH_RETURN_IF_ERROR(d.opt("leafWeight", w.leaf_weight));
      io.weight_device.push_back(w);
      return Status();
    }));
  }
  struct {
    const char* key;
    std::vector<ThrottleDevice>* out;
  } throttles[] = {{"throttleReadBpsDevice", &io.throttle_read_bps},
                   {"throttleWriteBpsDevice", &io.throttle_write_bps},
                   {"throttleReadIOPSDevice", &io.throttle_read_iops},
                   {"throttleWriteIOPSDevice", &io.throttle_write_iops}};
  for (auto& t : throttles) {
    if (!b.has(t.key)) continue;
    BERTH_RETURN_IF_ERROR(b.at(t.key).each([&](const Field& d) -> Status {
      ThrottleDevice td;
      BERTH_RETURN_IF_ERROR(d.expect_object());
      BERTH_RETURN_IF_ERROR(d.opt_int("major", td.major));
      BERTH_RETURN_IF_ERROR(d.opt_int("minor", td.minor));
      BERTH_RETURN_IF_ERROR(d.opt_int("rate", td.rate));
      t.out->push_back(td);
      return Status();
    }));
  }
  return io;
}

Status parse_network(const Field& n, Resources& r) {
  BERTH_RETURN_IF_ERROR(n.expect_object());
  BERTH_RETURN_IF_ERROR(n.opt("classID", r.net_class_id));
  if (n.has("priorities")) {
    BERTH_RETURN_IF_ERROR(n.at("priorities").each([&](const Field& p) -> Status {
      std::string name;
      std::uint32_t prio = 0;
      BERTH_RETURN_IF_ERROR(p.expect_object());
      BERTH_RETURN_IF_ERROR(p.opt("name", name));
      BERTH_RETURN_IF_ERROR(p.opt_int("priority", prio));
      r.net_priorities[name] = prio;
      return Status();
    }));
  }
  return Status();
}

Result<Resources> parse_resources(const Field& f) {
  BERTH_RETURN_IF_ERROR(f.expect_object());
  Resources r;
  if (f.has("devices")) {
    BERTH_RETURN_IF_ERROR(f.at("devices").each([&](const Field& d) -> Status {
      BERTH_TRY(auto rule, parse_device_rule(d));
      r.devices.push_back(rule);
      return Status();
    }));
  }
  if (f.has("memory")) {
    BERTH_TRY(r.memory, parse_memory(f.at("memory")));
  }
  if (f.has("cpu")) {
    BERTH_TRY(r.cpu, parse_cpu(f.at("cpu")));
  }
  if (f.has("pids")) {
    Field p = f.at("pids");
    BERTH_RETURN_IF_ERROR(p.expect_object());
    BERTH_RETURN_IF_ERROR(p.opt("limit", r.pids_limit));
  }
  if (f.has("blockIO")) {
    BERTH_TRY(r.block_io, parse_block_io(f.at("blockIO")));
  }
  if (f.has("hugepageLimits")) {
    BERTH_RETURN_IF_ERROR(f.at("hugepageLimits").each([&](const Field& h) -> Status {
      BERTH_RETURN_IF_ERROR(h.expect_object());
      HugepageLimit l;
      if (!h.has("pageSize")) return h.at("pageSize").error("is required");
      BERTH_TRY(l.page_size, h.at("pageSize").str());
      BERTH_RETURN_IF_ERROR(h.opt_int("limit", l.limit));
      r.hugepage_limits.push_back(l);
      return Status();
    }));
  }
  if (f.has("network")) BERTH_RETURN_IF_ERROR(parse_network(f.at("network"), r));
  BERTH_RETURN_IF_ERROR(f.opt("unified", r.unified));
  for (const auto& [k, v] : r.unified) {
    if (k.find('/') != std::string::npos || k.find('.') == std::string::npos)
      return invalid_argument("{}.unified: \"{}\" is not a cgroup file name", f.path(), k);
  }
  return r;
}

const std::map<std::string, std::string>& known_seccomp_actions() {
  static const std::map<std::string, std::string> m = {
      {"SCMP_ACT_KILL", ""},  {"SCMP_ACT_KILL_PROCESS", ""}, {"SCMP_ACT_KILL_THREAD", ""},
      {"SCMP_ACT_TRAP", ""},  {"SCMP_ACT_ERRNO", ""},        {"SCMP_ACT_TRACE", ""},
      {"SCMP_ACT_ALLOW", ""}, {"SCMP_ACT_LOG", ""},          {"SCMP_ACT_NOTIFY", ""}};
  return m;
}

Result<Seccomp> parse_seccomp(const Field& f) {
  BERTH_RETURN_IF_ERROR(f.expect_object());
  Seccomp s;
  if (!f.has("defaultAction")) return f.at("defaultAction").error("is required");
  BERTH_TRY(s.default_action, f.at("defaultAction").str());
  if (!known_seccomp_actions().count(s.default_action))
    return f.at("defaultAction").error("unknown action \"" + s.default_action + "\"");
  BERTH_RETURN_IF_ERROR(f.opt("defaultErrnoRet", s.default_errno_ret));
  BERTH_RETURN_IF_ERROR(f.opt("architectures", s.architectures));
  BERTH_RETURN_IF_ERROR(f.opt("flags", s.flags));
  BERTH_RETURN_IF_ERROR(f.opt("listenerPath", s.listener_path));
  if (f.has("syscalls")) {
    BERTH_RETURN_IF_ERROR(f.at("syscalls").each([&](const Field& sc) -> Status {
      BERTH_RETURN_IF_ERROR(sc.expect_object());
      SeccompRule rule;
      if (!sc.has("names")) return sc.at("names").error("is required");
      BERTH_TRY(rule.names, sc.at("names").strings());
      if (!sc.has("action")) return sc.at("action").error("is required");
      BERTH_TRY(rule.action, sc.at("action").str());
      if (!known_seccomp_actions().count(rule.action))
        return sc.at("action").error("unknown action \"" + rule.action + "\"");
      BERTH_RETURN_IF_ERROR(sc.opt("errnoRet", rule.errno_ret));
      if (sc.has("args")) {
        BERTH_RETURN_IF_ERROR(sc.at("args").each([&](const Field& a) -> Status {
          BERTH_RETURN_IF_ERROR(a.expect_object());
          SeccompArg arg;
          BERTH_RETURN_IF_ERROR(a.opt_int("index", arg.index));
          if (arg.index > 5) return a.at("index").error("must be between 0 and 5");
          BERTH_RETURN_IF_ERROR(a.opt_int("value", arg.value));
          BERTH_RETURN_IF_ERROR(a.opt_int("valueTwo", arg.value_two));
          if (!a.has("op")) return a.at("op").error("is required");
          BERTH_TRY(arg.op, a.at("op").str());
          static const char* ops[] = {"SCMP_CMP_NE",       "SCMP_CMP_LT", "SCMP_CMP_LE",
                                      "SCMP_CMP_EQ",       "SCMP_CMP_GE", "SCMP_CMP_GT",
                                      "SCMP_CMP_MASKED_EQ"};
          if (std::find(std::begin(ops), std::end(ops), arg.op) == std::end(ops))
            return a.at("op").error("unknown operator \"" + arg.op + "\"");
          rule.args.push_back(arg);
          return Status();
        }));
      }
      s.syscalls.push_back(std::move(rule));
      return Status();
    }));
  }
  return s;
}

const std::map<std::string, int>& namespace_flags() {
  static const std::map<std::string, int> m = {
      {"pid", CLONE_NEWPID},       {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
      {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
      {"cgroup", CLONE_NEWCGROUP},
#ifdef CLONE_NEWTIME
      {"time", CLONE_NEWTIME},
#endif
  };
  return m;
}

Result<Linux> parse_linux(const Field& f) {
  BERTH_RETURN_IF_ERROR(f.expect_object());
  Linux l;
  if (f.has("namespaces")) {
    BERTH_RETURN_IF_ERROR(f.at("namespaces").each([&](const Field& n) -> Status {
      BERTH_RETURN_IF_ERROR(n.expect_object());
      Namespace ns;
      if (!n.has("type")) return n.at("type").error("is required");
      BERTH_TRY(ns.type, n.at("type").str());
      auto it = namespace_flags().find(ns.type);
      if (it == namespace_flags().end())
        return n.at("type").error("unknown namespace type \"" + ns.type + "\"");
      ns.clone_flag = it->second;
      if (l.find(ns.type))
        return n.at("type").error("namespace \"" + ns.type + "\" is listed twice");
      BERTH_RETURN_IF_ERROR(n.opt("path", ns.path));
      if (!ns.path.empty() && ns.path.front() != '/')
        return n.at("path").error("must be an absolute path");
      l.namespaces.push_back(ns);
      return Status();
    }));
  }
  if (f.has("uidMappings")) {
    BERTH_TRY(l.uid_mappings, parse_mappings(f.at("uidMappings")));
  }
  if (f.has("gidMappings")) {
    BERTH_TRY(l.gid_mappings, parse_mappings(f.at("gidMappings")));
  }
  const Namespace* user = l.find("user");
  if ((!l.uid_mappings.empty() || !l.gid_mappings.empty()) && !user)
    return f.at("uidMappings").error("mappings need a user namespace");
  if (user && user->path.empty() && (l.uid_mappings.empty() || l.gid_mappings.empty()))
    return f.at("uidMappings").error("a new user namespace needs uidMappings and gidMappings");
  if (f.has("devices")) {
    BERTH_RETURN_IF_ERROR(f.at("devices").each([&](const Field& d) -> Status {
      BERTH_RETURN_IF_ERROR(d.expect_object());
      Device dev;
      if (!d.has("type")) return d.at("type").error("is required");
      BERTH_TRY(dev.type, d.at("type").str());
      if (dev.type != "c" && dev.type != "b" && dev.type != "u" && dev.type != "p")
        return d.at("type").error("must be c, b, u or p");
      if (!d.has("path")) return d.at("path").error("is required");
      BERTH_TRY(dev.path, d.at("path").str());
      if (dev.path.empty() || dev.path.front() != '/')
        return d.at("path").error("must be an absolute path");
      BERTH_RETURN_IF_ERROR(d.opt_int("major", dev.major));
      BERTH_RETURN_IF_ERROR(d.opt_int("minor", dev.minor));
      BERTH_RETURN_IF_ERROR(d.opt("fileMode", dev.file_mode));
      BERTH_RETURN_IF_ERROR(d.opt("uid", dev.uid));
      BERTH_RETURN_IF_ERROR(d.opt("gid", dev.gid));
      l.devices.push_back(dev);
      return Status();
    }));
  }
  BERTH_RETURN_IF_ERROR(f.opt("cgroupsPath", l.cgroups_path));
  if (l.cgroups_path.find("..") != std::string::npos)
    return f.at("cgroupsPath").error("must not contain \"..\"");
  if (f.has("resources")) {
    BERTH_TRY(l.resources, parse_resources(f.at("resources")));
  }
  BERTH_RETURN_IF_ERROR(f.opt("sysctl", l.sysctl));
  if (f.has("seccomp")) {
    BERTH_TRY(l.seccomp, parse_seccomp(f.at("seccomp")));
  }
  BERTH_RETURN_IF_ERROR(f.opt("rootfsPropagation", l.rootfs_propagation));
  static const char* props[] = {"",       "shared",   "slave",      "private",    "rshared",
                                "rslave", "rprivate", "unbindable", "runbindable"};
  if (std::find(std::begin(props), std::end(props), l.rootfs_propagation) == std::end(props))
    return f.at("rootfsPropagation").error("unknown propagation \"" + l.rootfs_propagation + "\"");
  BERTH_RETURN_IF_ERROR(f.opt("maskedPaths", l.masked_paths));
  BERTH_RETURN_IF_ERROR(f.opt("readonlyPaths", l.readonly_paths));
  BERTH_RETURN_IF_ERROR(f.opt("mountLabel", l.mount_label));
  return l;
}

}  // namespace

const Namespace* Linux::find(std::string_view type) const {
  for (const auto& n : namespaces) {
    if (n.type == type) return &n;
  }
  return nullptr;
}

Result<Spec> parse_spec(std::string_view text, std::string_view where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", where);
  Field f(j, std::string(where));
  BERTH_RETURN_IF_ERROR(f.expect_object());
  Spec s;
  s.raw = std::string(text);
  if (!f.has("ociVersion")) return f.at("ociVersion").error("is required");
  BERTH_TRY(s.oci_version, f.at("ociVersion").str());
  if (s.oci_version.rfind("1.", 0) != 0)
    return f.at("ociVersion").error("version \"" + s.oci_version + "\" is not 1.x");
  if (f.has("process")) {
    BERTH_TRY(s.process, parse_process_field(f.at("process")));
  }
  if (!f.has("root")) return f.at("root").error("is required");
  Field root = f.at("root");
  BERTH_RETURN_IF_ERROR(root.expect_object());
  if (!root.has("path")) return root.at("path").error("is required");
  BERTH_TRY(s.root_path, root.at("path").str());
  if (s.root_path.empty()) return root.at("path").error("must not be empty");
  BERTH_RETURN_IF_ERROR(root.opt("readonly", s.root_readonly));
  BERTH_RETURN_IF_ERROR(f.opt("hostname", s.hostname));
  BERTH_RETURN_IF_ERROR(f.opt("domainname", s.domainname));
  if (f.has("mounts")) {
    BERTH_RETURN_IF_ERROR(f.at("mounts").each([&](const Field& m) -> Status {
      BERTH_RETURN_IF_ERROR(m.expect_object());
      Mount mount;
      if (!m.has("destination")) return m.at("destination").error("is required");
      BERTH_TRY(mount.destination, m.at("destination").str());
      if (mount.destination.empty() || mount.destination.front() != '/')
        return m.at("destination").error("must be an absolute path");
      BERTH_RETURN_IF_ERROR(m.opt("type", mount.type));
      BERTH_RETURN_IF_ERROR(m.opt("source", mount.source));
      BERTH_RETURN_IF_ERROR(m.opt("options", mount.options));
      s.mounts.push_back(std::move(mount));
      return Status();
    }));
  }
  if (f.has("hooks")) {
    Field h = f.at("hooks");
    BERTH_RETURN_IF_ERROR(h.expect_object());
    struct {
      const char* key;
      std::vector<Hook>* out;
    } kinds[] = {{"prestart", &s.hooks.prestart},
                 {"createRuntime", &s.hooks.create_runtime},
                 {"createContainer", &s.hooks.create_container},
                 {"startContainer", &s.hooks.start_container},
                 {"poststart", &s.hooks.poststart},
                 {"poststop", &s.hooks.poststop}};
    for (auto& k : kinds) {
      if (h.has(k.key)) {
        BERTH_TRY(*k.out, parse_hooks(h.at(k.key)));
      }
    }
  }
  BERTH_RETURN_IF_ERROR(f.opt("annotations", s.annotations));
  if (f.has("linux")) {
    BERTH_TRY(s.linux, parse_linux(f.at("linux")));
  }
  if ((!s.hostname.empty() || !s.domainname.empty()) && !s.linux.find("uts"))
    return f.at("hostname").error("setting it needs a uts namespace");
  return s;
}

Result<Process> parse_process(std::string_view text, std::string_view where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", where);
  return parse_process_field(Field(j, std::string(where)));
}

Result<Resources> parse_resources(std::string_view text, std::string_view where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("{}: not valid JSON", where);
  return parse_resources(Field(j, std::string(where)));
}

std::optional<int> capability_number(std::string_view name) {
  static const std::map<std::string_view, int> caps = {
      {"CAP_CHOWN", CAP_CHOWN},
      {"CAP_DAC_OVERRIDE", CAP_DAC_OVERRIDE},
      {"CAP_DAC_READ_SEARCH", CAP_DAC_READ_SEARCH},
      {"CAP_FOWNER", CAP_FOWNER},
      {"CAP_FSETID", CAP_FSETID},
      {"CAP_KILL", CAP_KILL},
      {"CAP_SETGID", CAP_SETGID},
      {"CAP_SETUID", CAP_SETUID},
      {"CAP_SETPCAP", CAP_SETPCAP},
      {"CAP_LINUX_IMMUTABLE", CAP_LINUX_IMMUTABLE},
      {"CAP_NET_BIND_SERVICE", CAP_NET_BIND_SERVICE},
      {"CAP_NET_BROADCAST", CAP_NET_BROADCAST},
      {"CAP_NET_ADMIN", CAP_NET_ADMIN},
      {"CAP_NET_RAW", CAP_NET_RAW},
      {"CAP_IPC_LOCK", CAP_IPC_LOCK},
      {"CAP_IPC_OWNER", CAP_IPC_OWNER},
      {"CAP_SYS_MODULE", CAP_SYS_MODULE},
      {"CAP_SYS_RAWIO", CAP_SYS_RAWIO},
      {"CAP_SYS_CHROOT", CAP_SYS_CHROOT},
      {"CAP_SYS_PTRACE", CAP_SYS_PTRACE},
      {"CAP_SYS_PACCT", CAP_SYS_PACCT},
      {"CAP_SYS_ADMIN", CAP_SYS_ADMIN},
      {"CAP_SYS_BOOT", CAP_SYS_BOOT},
      {"CAP_SYS_NICE", CAP_SYS_NICE},
      {"CAP_SYS_RESOURCE", CAP_SYS_RESOURCE},
      {"CAP_SYS_TIME", CAP_SYS_TIME},
      {"CAP_SYS_TTY_CONFIG", CAP_SYS_TTY_CONFIG},
      {"CAP_MKNOD", CAP_MKNOD},
      {"CAP_LEASE", CAP_LEASE},
      {"CAP_AUDIT_WRITE", CAP_AUDIT_WRITE},
      {"CAP_AUDIT_CONTROL", CAP_AUDIT_CONTROL},
      {"CAP_SETFCAP", CAP_SETFCAP},
      {"CAP_MAC_OVERRIDE", CAP_MAC_OVERRIDE},
      {"CAP_MAC_ADMIN", CAP_MAC_ADMIN},
      {"CAP_SYSLOG", CAP_SYSLOG},
      {"CAP_WAKE_ALARM", CAP_WAKE_ALARM},
      {"CAP_BLOCK_SUSPEND", CAP_BLOCK_SUSPEND},
      {"CAP_AUDIT_READ", CAP_AUDIT_READ},
      {"CAP_PERFMON", 38},
      {"CAP_BPF", 39},
      {"CAP_CHECKPOINT_RESTORE", 40},
  };
  auto it = caps.find(name);
  if (it == caps.end()) return std::nullopt;
  return it->second;
}

std::optional<int> rlimit_number(std::string_view name) {
  static const std::map<std::string_view, int> limits = {
      {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_CORE", RLIMIT_CORE},
      {"RLIMIT_CPU", RLIMIT_CPU},
      {"RLIMIT_DATA", RLIMIT_DATA},
      {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
      {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_NPROC", RLIMIT_NPROC},
      {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
      {"RLIMIT_RTTIME", RLIMIT_RTTIME},
      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_STACK", RLIMIT_STACK},
  };
  auto it = limits.find(name);
  if (it == limits.end()) return std::nullopt;
  return it->second;
}

std::string default_spec_json(bool rootless) {
  json caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  json spec = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", true},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"sh"}},
        {"env",
         {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "berth"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"},
         {"type", "devpts"},
         {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
        {{"destination", "/dev/shm"},
         {"type", "tmpfs"},
         {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"},
         {"type", "mqueue"},
         {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"},
         {"type", "sysfs"},
         {"source", "sysfs"},
         {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"},
         {"type", "cgroup"},
         {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces",
         {{{"type", "pid"}},
          {{"type", "network"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}},
          {{"type", "cgroup"}}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
  if (rootless) {
    spec["linux"]["namespaces"].push_back({{"type", "user"}});
    spec["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", ::getuid()}, {"size", 1}}};
    spec["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", ::getgid()}, {"size", 1}}};
    spec["linux"].erase("resources");
  }
  return spec.dump(1, '\t');
}

}  // namespace berth::oci

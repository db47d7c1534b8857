// config.json's linux section: namespaces, id mappings, resources per controller, seccomp,
// devices, masked/read-only paths, sysctls.
#include <sched.h>

#include <map>
#include <set>

#include "core/oci/spec_field.h"

namespace berth::oci::detail {

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

}  // namespace berth::oci::detail

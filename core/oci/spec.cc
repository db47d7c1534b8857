#include "core/oci/spec.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "core/oci/spec_field.h"

namespace berth::oci {
using namespace detail;
namespace {

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

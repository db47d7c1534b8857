#include "core/ocispec/generate.h"

#include <sys/prctl.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace berth::ocispec {
namespace {

using nlohmann::json;

const std::vector<std::string>& all_cap_names();

// containerd's default capability set for unprivileged containers.
const std::vector<std::string>& default_caps() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",       "CAP_DAC_OVERRIDE", "CAP_FSETID",       "CAP_FOWNER",
      "CAP_MKNOD",       "CAP_NET_RAW",      "CAP_SETGID",       "CAP_SETUID",
      "CAP_SETFCAP",     "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",        "CAP_AUDIT_WRITE"};
  return caps;
}

// Every capability this host can grant, as containerd's WithAllCurrentCapabilities: the names
// below are in kernel order (CAP_CHOWN is 0), filtered by this process's bounding set, so
// --privileged never asks the runtime for a capability the host lacks.
const std::vector<std::string>& all_caps() {
  static const std::vector<std::string> caps = [] {
    std::vector<std::string> out;
    const auto& names = all_cap_names();
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (::prctl(PR_CAPBSET_READ, static_cast<unsigned long>(i), 0, 0, 0) == 1)
        out.push_back(names[i]);
    }
    return out;
  }();
  return caps;
}

const std::vector<std::string>& all_cap_names() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
      "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
      "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
      "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
      "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
  return caps;
}

std::string cap_name(std::string c) {
  for (auto& ch : c) ch = static_cast<char>(std::toupper(ch));
  return c.rfind("CAP_", 0) == 0 ? c : "CAP_" + c;
}

Result<json> parse_mount(const std::string& spec) {
  json m = {{"type", "bind"}, {"options", json::array()}};
  std::string src, dst;
  std::size_t i = 0;
  while (i <= spec.size()) {
    std::size_t j = spec.find(',', i);
    if (j == std::string::npos) j = spec.size();
    std::string kv = spec.substr(i, j - i);
    i = j + 1;
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    if (eq == std::string::npos) return invalid_argument("--mount \"{}\": \"{}\" is not key=value", spec, kv);
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "type") {
      m["type"] = v;
    } else if (k == "src" || k == "source") {
      src = v;
    } else if (k == "dst" || k == "destination" || k == "target") {
      dst = v;
    } else if (k == "options") {
      std::size_t a = 0;
      while (a <= v.size()) {
        std::size_t b = v.find(':', a);
        if (b == std::string::npos) b = v.size();
        if (b > a) m["options"].push_back(v.substr(a, b - a));
        a = b + 1;
      }
    } else {
      return invalid_argument("--mount \"{}\": unknown key \"{}\"", spec, k);
    }
  }
  if (dst.empty() || dst.front() != '/')
    return invalid_argument("--mount \"{}\": dst must be an absolute path", spec);
  m["source"] = src;
  m["destination"] = dst;
  if (m["type"] == "bind" && m["options"].empty()) m["options"] = {"rbind"};
  return m;
}

}  // namespace

Result<json> generate(const std::string& config_json, const SpecOptions& o) {
  json image = json::object();
  if (!config_json.empty()) {
    json doc = json::parse(config_json, nullptr, false);
    if (doc.is_discarded()) return invalid_argument("image config is not valid JSON");
    if (doc.contains("config") && doc["config"].is_object()) image = doc["config"];
  }
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    if (image.contains(key) && image[key].is_array()) {
      for (const auto& v : image[key]) {
        if (v.is_string()) out.push_back(v.get<std::string>());
      }
    }
    return out;
  };
  std::vector<std::string> args = o.entrypoint ? *o.entrypoint : strings("Entrypoint");
  std::vector<std::string> cmd = !o.args.empty() ? o.args
                                 : o.entrypoint  ? std::vector<std::string>()
                                                 : strings("Cmd");
  args.insert(args.end(), cmd.begin(), cmd.end());
  if (args.empty()) return invalid_argument("no command: the image has no Entrypoint or Cmd and none was given");
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  for (const auto& e : strings("Env")) {
    if (e.rfind("PATH=", 0) == 0) env[0] = e;
    else env.push_back(e);
  }
  if (o.tty) env.push_back("TERM=xterm");
  for (const auto& e : o.env) {
    if (e.find('=') == std::string::npos) return invalid_argument("--env \"{}\" is not NAME=VALUE", e);
    env.push_back(e);
  }
  std::string cwd = o.cwd.empty() ? image.value("WorkingDir", std::string()) : o.cwd;
  if (cwd.empty()) cwd = "/";
  std::uint32_t uid = 0, gid = 0;
  std::string user = o.user.empty() ? image.value("User", std::string()) : o.user;
  std::vector<std::uint32_t> additional_gids;
  if (o.resolved_user) {
    uid = o.resolved_user->uid;
    gid = o.resolved_user->gid;
    additional_gids = o.resolved_user->additional_gids;
  } else if (!user.empty()) {
    auto colon = user.find(':');
    try {
      std::size_t used = 0;
      uid = static_cast<std::uint32_t>(std::stoul(user.substr(0, colon), &used));
      if (used != user.substr(0, colon).size()) throw std::invalid_argument("name");
      gid = colon == std::string::npos ? uid : static_cast<std::uint32_t>(std::stoul(user.substr(colon + 1)));
    } catch (...) {
      return invalid_argument("user \"{}\": names need the image's /etc/passwd; without it only UID[:GID]", user);
    }
  }
  std::vector<std::string> caps = o.privileged ? all_caps() : default_caps();
  for (const auto& c : o.cap_add) {
    std::string n = cap_name(c);
    if (n == "CAP_ALL") caps = all_caps();
    else if (std::find(caps.begin(), caps.end(), n) == caps.end()) caps.push_back(n);
  }
  for (const auto& c : o.cap_drop) {
    std::string n = cap_name(c);
    if (n == "CAP_ALL") caps.clear();
    else caps.erase(std::remove(caps.begin(), caps.end(), n), caps.end());
  }
  json spec = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", o.tty},
        {"user", {{"uid", uid}, {"gid", gid}}},
        {"args", args},
        {"env", env},
        {"cwd", cwd},
        {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", !o.privileged}}},
      {"root", {{"path", "rootfs"}, {"readonly", o.read_only}}},
      {"hostname", o.hostname.empty() ? o.id : o.hostname},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}, {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
        {{"destination", "/dev/shm"}, {"type", "tmpfs"}, {"source", "shm"}, {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"}, {"type", "mqueue"}, {"source", "mqueue"}, {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"}, {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"}, {"type", "cgroup"}, {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"cgroupsPath", o.cgroups_path.empty() ? "/" + o.ns + "/" + o.id : o.cgroups_path},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces", {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
        {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
  for (auto g : o.additional_gids)
    if (std::find(additional_gids.begin(), additional_gids.end(), g) == additional_gids.end())
      additional_gids.push_back(g);
  if (!additional_gids.empty()) spec["process"]["user"]["additionalGids"] = additional_gids;
  if (o.net_host) {
    for (const char* f : {"/etc/hosts", "/etc/resolv.conf"})
      spec["mounts"].push_back({{"destination", f}, {"type", "bind"}, {"source", f}, {"options", {"rbind", "ro"}}});
  } else {
    spec["linux"]["namespaces"].push_back({{"type", "network"}});
  }
  if (o.privileged) {
    spec["linux"].erase("maskedPaths");
    spec["linux"].erase("readonlyPaths");
    spec["linux"]["resources"]["devices"] = {{{"allow", true}, {"access", "rwm"}}};
    spec["mounts"][5]["options"] = {"nosuid", "noexec", "nodev"};  // sysfs read-write
  }
  for (const auto& m : o.mounts) {
    BERTH_TRY(auto mount, parse_mount(m));
    spec["mounts"].push_back(mount);
  }
  for (const auto& kv : o.annotations) {
    auto eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos) return invalid_argument("--annotation \"{}\": expected KEY=VALUE", kv);
    spec["annotations"][kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (o.memory_limit > 0) spec["linux"]["resources"]["memory"] = {{"limit", o.memory_limit}};
  if (o.cpus > 0) {
    std::int64_t period = 100000;
    spec["linux"]["resources"]["cpu"] = {{"quota", static_cast<std::int64_t>(o.cpus * period)}, {"period", period}};
  }
  return spec;
}

Status join_network(json& spec, const NetworkJoin& j) {
  if (!spec.is_object()) return invalid_argument("join network: the spec is not an object");
  if (j.netns_path.empty() || j.netns_path.front() != '/')
    return invalid_argument("join network: the namespace path \"{}\" is not absolute", j.netns_path);
  json& linux = spec["linux"];
  if (!linux.is_object()) linux = json::object();
  json& nss = linux["namespaces"];
  if (!nss.is_array()) nss = json::array();
  bool found = false;
  for (auto& n : nss) {
    if (n.is_object() && n.value("type", std::string()) == "network") {
      n["path"] = j.netns_path;
      found = true;
    }
  }
  if (!found) nss.push_back({{"type", "network"}, {"path", j.netns_path}});
  json& mounts = spec["mounts"];
  if (!mounts.is_array()) mounts = json::array();
  const std::pair<const char*, const std::string*> files[] = {
      {"/etc/hosts", &j.hosts_path},
      {"/etc/resolv.conf", &j.resolv_conf_path},
      {"/etc/hostname", &j.hostname_path}};
  for (const auto& [dst, src] : files) {
    if (src->empty()) continue;
    json kept = json::array();
    for (auto& m : mounts)
      if (!(m.is_object() && m.value("destination", std::string()) == dst)) kept.push_back(m);
    mounts = kept;
    mounts.push_back({{"destination", dst},
                      {"type", "bind"},
                      {"source", *src},
                      {"options", {"rbind", "rprivate", "rw"}}});
  }
  if (!j.hostname.empty()) spec["hostname"] = j.hostname;
  return Status();
}

void set_namespace(json& spec, const std::string& type, const std::string& path, bool host) {
  json& nss = spec["linux"]["namespaces"];
  if (!nss.is_array()) nss = json::array();
  json kept = json::array();
  for (auto& n : nss)
    if (!(n.is_object() && n.value("type", std::string()) == type)) kept.push_back(n);
  if (!host) {
    json n = {{"type", type}};
    if (!path.empty()) n["path"] = path;
    kept.push_back(n);
  }
  nss = kept;
}

}  // namespace berth::ocispec

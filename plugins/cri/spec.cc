#include "plugins/cri/spec.h"

#include <sys/stat.h>

#include <filesystem>

#include "core/fs.h"
#include "core/ocispec/generate.h"

namespace berth::cri {
namespace {

using nlohmann::json;

bool host(v1::NamespaceMode m) { return m == v1::NODE; }

const v1::NamespaceOption& pod_namespaces(const v1::PodSandboxConfig& pod) {
  return pod.linux().security_context().namespace_options();
}

// Drops every mount at `destination`.
void drop_mount(json& spec, const std::string& destination) {
  json kept = json::array();
  for (auto& m : spec["mounts"])
    if (m.value("destination", std::string()) != destination) kept.push_back(m);
  spec["mounts"] = kept;
}

void bind(json& spec, const std::string& destination, const std::string& source,
          std::vector<std::string> options) {
  drop_mount(spec, destination);
  spec["mounts"].push_back(
      {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", options}});
}

// The pod's /dev/shm: the sandbox's tmpfs, or the host's with host IPC.
void shm(json& spec, const SandboxJoin& j) {
  bind(spec, "/dev/shm", j.shm_path.empty() ? "/dev/shm" : j.shm_path, {"rbind", "rprivate", "rw"});
}

// A UTS namespace shared with the host must not be renamed.
void drop_hostname_if_host_uts(json& spec) {
  for (const auto& n : spec["linux"]["namespaces"])
    if (n.value("type", std::string()) == "uts") return;
  spec.erase("hostname");
}

Status check_sysctls(const v1::PodSandboxConfig& pod) {
  const auto& ns = pod_namespaces(pod);
  for (const auto& [name, value] : pod.linux().sysctls()) {
    std::string key = name;  // net/ipv4/ip_forward is net.ipv4.ip_forward
    for (auto& ch : key)
      if (ch == '/') ch = '.';
    if (key.empty() || key.size() > 256 || key.front() == '.' || key.find("..") != std::string::npos)
      return invalid_argument("sysctl \"{}\": not a sysctl name", name);
    bool net = key.rfind("net.", 0) == 0;
    bool ipc = key.rfind("kernel.shm", 0) == 0 || key.rfind("kernel.msg", 0) == 0 ||
               key == "kernel.sem" || key.rfind("fs.mqueue.", 0) == 0;
    bool uts = key == "kernel.hostname" || key == "kernel.domainname";
    if (net && host(ns.network()))
      return invalid_argument("sysctl \"{}\" would change the host: the pod uses the host network", key);
    if (ipc && host(ns.ipc()))
      return invalid_argument("sysctl \"{}\" would change the host: the pod uses the host IPC", key);
    if (uts && host(ns.network()))
      return invalid_argument("sysctl \"{}\" would change the host: the pod uses the host UTS", key);
    if (!net && !ipc && !uts)
      return invalid_argument("sysctl \"{}\" is not namespaced: it would change the host", key);
    if (value.size() > 4096) return invalid_argument("sysctl \"{}\": value too long", key);
  }
  return Status();
}

std::string user_of(const v1::Int64Value* uid, const v1::Int64Value* gid) {
  if (!uid) return "";
  std::string u = std::to_string(uid->value());
  if (gid) u += ":" + std::to_string(gid->value());
  return u;
}

Status check_id(std::int64_t v, const char* what) {
  if (v < 0 || v > 0xfffffffeLL) return invalid_argument("{} {} is not a valid id", what, v);
  return Status();
}

void annotate(json& spec, const std::string& type, const std::string& sandbox_id,
              const v1::PodSandboxConfig& pod) {
  auto& a = spec["annotations"];
  a["io.kubernetes.cri.container-type"] = type;
  a["io.kubernetes.cri.sandbox-id"] = sandbox_id;
  a["io.kubernetes.cri.sandbox-name"] = pod.metadata().name();
  a["io.kubernetes.cri.sandbox-namespace"] = pod.metadata().namespace_();
  a["io.kubernetes.cri.sandbox-uid"] = pod.metadata().uid();
}

Status resources(json& spec, const v1::LinuxContainerResources& r) {
  json& res = spec["linux"]["resources"];
  if (r.memory_limit_in_bytes() < 0) return invalid_argument("memory_limit_in_bytes is negative");
  if (r.memory_limit_in_bytes() > 0) res["memory"]["limit"] = r.memory_limit_in_bytes();
  if (r.memory_swap_limit_in_bytes() > 0) res["memory"]["swap"] = r.memory_swap_limit_in_bytes();
  if (r.cpu_shares() > 0) res["cpu"]["shares"] = r.cpu_shares();
  if (r.cpu_quota() > 0) res["cpu"]["quota"] = r.cpu_quota();
  if (r.cpu_period() > 0) res["cpu"]["period"] = r.cpu_period();
  if (!r.cpuset_cpus().empty()) res["cpu"]["cpus"] = r.cpuset_cpus();
  if (!r.cpuset_mems().empty()) res["cpu"]["mems"] = r.cpuset_mems();
  for (const auto& [k, v] : r.unified()) res["unified"][k] = v;
  if (r.oom_score_adj() < -1000 || r.oom_score_adj() > 1000)
    return invalid_argument("oom_score_adj {} is not between -1000 and 1000", r.oom_score_adj());
  if (r.oom_score_adj() != 0) spec["process"]["oomScoreAdj"] = r.oom_score_adj();
  return Status();
}

// A CRI mount as an OCI bind: the host path resolved (symlinks followed, as the kubelet's
// hostPath volumes expect), created as a directory when absent (containerd does the same).
Result<json> cri_mount(const v1::Mount& m) {
  const auto& dst = m.container_path();
  if (dst.empty() || dst.front() != '/')
    return invalid_argument("mount \"{}\": container_path must be absolute", dst);
  if (m.host_path().empty() || m.host_path().front() != '/')
    return invalid_argument("mount {}: host_path \"{}\" must be absolute", dst, m.host_path());
  std::error_code ec;
  if (!std::filesystem::exists(m.host_path(), ec))
    BERTH_RETURN_IF_ERROR(core::make_dirs(m.host_path(), 0755));
  auto src = std::filesystem::canonical(m.host_path(), ec);
  if (ec) return invalid_argument("mount {}: host_path {}: {}", dst, m.host_path(), ec.message());
  std::vector<std::string> options = {"rbind", m.readonly() ? "ro" : "rw"};
  switch (m.propagation()) {
    case v1::PROPAGATION_HOST_TO_CONTAINER: options.push_back("rslave"); break;
    case v1::PROPAGATION_BIDIRECTIONAL: options.push_back("rshared"); break;
    default: options.push_back("rprivate"); break;
  }
  return json{{"destination", dst}, {"type", "bind"}, {"source", src.string()}, {"options", options}};
}

}  // namespace

Result<std::string> user_spec(const v1::ContainerConfig& c, const std::string& image_config) {
  const auto& sc = c.linux().security_context();
  std::string user;
  if (!sc.run_as_username().empty()) {
    if (sc.run_as_username().find(':') != std::string::npos || sc.run_as_username().size() > 256)
      return invalid_argument("run_as_username \"{}\" is not a user name", sc.run_as_username());
    user = sc.run_as_username();
  } else if (sc.has_run_as_user()) {
    BERTH_RETURN_IF_ERROR(check_id(sc.run_as_user().value(), "run_as_user"));
    user = std::to_string(sc.run_as_user().value());
  } else if (auto doc = json::parse(image_config, nullptr, false); doc.is_object()) {
    const auto& cfg = doc.contains("config") && doc["config"].is_object() ? doc["config"] : json::object();
    if (cfg.contains("User") && cfg["User"].is_string()) user = cfg["User"].get<std::string>();
  }
  if (user.empty()) return user;
  if (sc.has_run_as_group()) {
    BERTH_RETURN_IF_ERROR(check_id(sc.run_as_group().value(), "run_as_group"));
    user = user.substr(0, user.find(':')) + ":" + std::to_string(sc.run_as_group().value());
  }
  return user;
}

Result<json> linux_resources(const v1::LinuxContainerResources& r) {
  json spec = json::object();
  BERTH_RETURN_IF_ERROR(resources(spec, r));
  return spec["linux"]["resources"];
}

Result<std::string> cgroups_path(const v1::PodSandboxConfig& pod, const std::string& ns,
                                 const std::string& id) {
  const auto& parent = pod.linux().cgroup_parent();
  if (parent.empty()) return "/" + ns + "/" + id;
  if (parent.front() != '/' || parent.size() > 1024)
    return invalid_argument("cgroup_parent \"{}\" must be an absolute cgroupfs path", parent);
  for (const auto& part : std::filesystem::path(parent))
    if (part == "..") return invalid_argument("cgroup_parent \"{}\" climbs with \"..\"", parent);
  std::string p = parent;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return (p == "/" ? "" : p) + "/" + id;
}

Result<json> sandbox_spec(const std::string& ns, const std::string& id,
                          const v1::PodSandboxConfig& pod, const SandboxJoin& join) {
  BERTH_RETURN_IF_ERROR(check_sysctls(pod));
  const auto& sc = pod.linux().security_context();
  const auto& nso = sc.namespace_options();
  ocispec::SpecOptions o;
  o.ns = ns;
  o.id = id;
  o.entrypoint = std::vector<std::string>{"/pause"};
  if (sc.has_run_as_user()) BERTH_RETURN_IF_ERROR(check_id(sc.run_as_user().value(), "run_as_user"));
  if (sc.has_run_as_group()) BERTH_RETURN_IF_ERROR(check_id(sc.run_as_group().value(), "run_as_group"));
  o.user = sc.has_run_as_user()
               ? user_of(&sc.run_as_user(), sc.has_run_as_group() ? &sc.run_as_group() : nullptr)
               : "65535:65535";  // the pause image's user
  o.hostname = pod.hostname().empty() ? id.substr(0, 12) : pod.hostname();
  o.net_host = host(nso.network());
  o.read_only = true;
  o.cap_drop = {"ALL"};
  BERTH_TRY(o.cgroups_path, cgroups_path(pod, ns, id));
  BERTH_TRY(auto spec, ocispec::generate("", o));
  if (!host(nso.network())) {
    BERTH_RETURN_IF_ERROR(ocispec::join_network(
        spec, {join.netns_path, join.hosts_path, join.resolv_conf_path, join.hostname_path, ""}));
  }
  ocispec::set_namespace(spec, "ipc", "", host(nso.ipc()));
  ocispec::set_namespace(spec, "uts", "", host(nso.network()));
  ocispec::set_namespace(spec, "pid", "", host(nso.pid()));
  drop_hostname_if_host_uts(spec);
  shm(spec, join);
  for (const auto& [k, v] : pod.linux().sysctls()) spec["linux"]["sysctl"][k] = v;
  // As containerd: the pause process needs almost no CPU. (containerd also gives it
  // oomScoreAdj -998; berth-runtime cannot yet lower it for a non-root process: EACCES.)
  spec["linux"]["resources"]["cpu"]["shares"] = 2;
  annotate(spec, "sandbox", id, pod);
  spec["annotations"]["io.kubernetes.cri.sandbox-log-directory"] = pod.log_directory();
  return spec;
}

Result<json> container_spec(const std::string& ns, const std::string& id,
                            const v1::ContainerConfig& c, const v1::PodSandboxConfig& pod,
                            const SandboxJoin& join, const std::string& image_config,
                            const std::string& image_name, const std::optional<ocispec::User>& user,
                            std::uint32_t target_pid) {
  const auto& sc = c.linux().security_context();
  const auto& pod_ns = pod_namespaces(pod);
  ocispec::SpecOptions o;
  o.ns = ns;
  o.id = id;
  o.args = {c.args().begin(), c.args().end()};
  if (!c.command().empty()) o.entrypoint = std::vector<std::string>(c.command().begin(), c.command().end());
  for (const auto& kv : c.envs()) {
    if (kv.key().empty() || kv.key().find('=') != std::string::npos)
      return invalid_argument("env \"{}\": not a variable name", kv.key());
    o.env.push_back(kv.key() + "=" + kv.value());
  }
  o.cwd = c.working_dir();
  if (!o.cwd.empty() && o.cwd.front() != '/')
    return invalid_argument("working_dir \"{}\" must be absolute", o.cwd);
  if (sc.has_run_as_user()) BERTH_RETURN_IF_ERROR(check_id(sc.run_as_user().value(), "run_as_user"));
  if (sc.has_run_as_group()) BERTH_RETURN_IF_ERROR(check_id(sc.run_as_group().value(), "run_as_group"));
  o.user = user_of(sc.has_run_as_user() ? &sc.run_as_user() : nullptr,
                   sc.has_run_as_group() ? &sc.run_as_group() : nullptr);
  o.resolved_user = user;
  for (auto g : sc.supplemental_groups()) {
    BERTH_RETURN_IF_ERROR(check_id(g, "supplemental group"));
    o.additional_gids.push_back(static_cast<std::uint32_t>(g));
  }
  o.hostname = pod.hostname();
  o.tty = c.tty();
  o.net_host = host(pod_ns.network());
  o.privileged = sc.privileged();
  o.read_only = sc.readonly_rootfs();
  o.cap_add = {sc.capabilities().add_capabilities().begin(), sc.capabilities().add_capabilities().end()};
  o.cap_drop = {sc.capabilities().drop_capabilities().begin(), sc.capabilities().drop_capabilities().end()};
  BERTH_TRY(o.cgroups_path, cgroups_path(pod, ns, id));
  BERTH_TRY(auto spec, ocispec::generate(image_config, o));

  // Namespaces: the sandbox's network, IPC and UTS; the pid namespace per the pid mode.
  std::string ns_dir = "/proc/" + std::to_string(join.pid) + "/ns/";
  if (host(pod_ns.network())) {
    ocispec::set_namespace(spec, "network", "", true);
  } else {
    BERTH_RETURN_IF_ERROR(ocispec::join_network(
        spec, {join.netns_path, join.hosts_path, join.resolv_conf_path, join.hostname_path, ""}));
  }
  ocispec::set_namespace(spec, "ipc", host(pod_ns.ipc()) ? "" : ns_dir + "ipc", host(pod_ns.ipc()));
  ocispec::set_namespace(spec, "uts", host(pod_ns.network()) ? "" : ns_dir + "uts",
                         host(pod_ns.network()));
  switch (sc.namespace_options().pid()) {
    case v1::POD: ocispec::set_namespace(spec, "pid", ns_dir + "pid"); break;
    case v1::CONTAINER: ocispec::set_namespace(spec, "pid", ""); break;
    case v1::NODE: ocispec::set_namespace(spec, "pid", "", true); break;
    case v1::TARGET:
      if (target_pid == 0)
        return invalid_argument("pid namespace TARGET: target_id \"{}\" is not running",
                                sc.namespace_options().target_id());
      ocispec::set_namespace(spec, "pid", "/proc/" + std::to_string(target_pid) + "/ns/pid");
      break;
    default: return invalid_argument("pid namespace mode {} is unknown", sc.namespace_options().pid());
  }
  drop_hostname_if_host_uts(spec);
  shm(spec, join);

  spec["process"]["noNewPrivileges"] = sc.no_new_privs();
  if (!sc.privileged()) {
    // Empty lists keep the defaults: a client that sends none does not unmask /proc.
    if (!sc.masked_paths().empty())
      spec["linux"]["maskedPaths"] = std::vector<std::string>(sc.masked_paths().begin(), sc.masked_paths().end());
    if (!sc.readonly_paths().empty())
      spec["linux"]["readonlyPaths"] = std::vector<std::string>(sc.readonly_paths().begin(), sc.readonly_paths().end());
  }
  BERTH_RETURN_IF_ERROR(resources(spec, c.linux().resources()));
  for (const auto& m : c.mounts()) {
    BERTH_TRY(auto mount, cri_mount(m));
    drop_mount(spec, m.container_path());
    spec["mounts"].push_back(mount);
  }
  annotate(spec, "container", join.id, pod);
  spec["annotations"]["io.kubernetes.cri.container-name"] = c.metadata().name();
  spec["annotations"]["io.kubernetes.cri.image-name"] = image_name;
  return spec;
}

}  // namespace berth::cri

#include "core/cni/invoke.h"

#include <sys/stat.h>

#include "core/fs.h"
#include "core/process.h"

namespace berth::cni {
namespace {

using nlohmann::json;

// A plugin's answer is a small JSON document; more than this is a broken plugin.
constexpr std::size_t kMaxOutput = 1 << 20;

std::string join_path(const std::vector<std::string>& dirs) {
  std::string out;
  for (const auto& d : dirs) out += (out.empty() ? "" : ":") + d;
  return out;
}

std::string cni_args(const std::vector<std::pair<std::string, std::string>>& args) {
  std::string out;
  for (const auto& [k, v] : args) out += (out.empty() ? "" : ";") + k + "=" + v;
  return out;
}

// The plugin's error document as it wrote it: "msg: details (CNI error code N)".
std::string plugin_error(const core::SpawnResult& r) {
  json e = json::parse(r.out, nullptr, false);
  if (e.is_object() && e.contains("msg")) {
    std::string text = e.value("msg", std::string());
    if (e.contains("details") && e["details"].is_string() &&
        !e["details"].get<std::string>().empty())
      text += ": " + e["details"].get<std::string>();
    if (e.contains("code") && e["code"].is_number_integer())
      text += fmt::format(" (CNI error code {})", e["code"].get<int>());
    return text;
  }
  std::string text = r.err.empty() ? r.out : r.err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() > 2000) text = text.substr(0, 2000) + "...";
  return fmt::format("exit status {}{}{}", r.exit_code, text.empty() ? "" : ": ", text);
}

}  // namespace

Result<std::string> Invoker::find_plugin(const std::string& type) const {
  BERTH_RETURN_IF_ERROR(validate_name("plugin type", type));
  for (const auto& d : bin_dirs_) {
    std::string p = d + "/" + type;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return not_found("CNI plugin \"{}\" is not in {} (install containernetworking-plugins, or set "
                   "bin_dirs of io.berth.network.v1.cni)",
                   type, join_path(bin_dirs_));
}

Status Invoker::negotiate(const std::string& path, const std::string& type,
                          const std::string& version) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) return from_errno(errno, "stat {}", path);
  std::string key = fmt::format("{}@{}.{}", path, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  std::vector<std::string> supported;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = versions_.find(key);
    if (it != versions_.end()) supported = it->second;
  }
  if (supported.empty()) {
    core::SpawnOptions so;
    so.env = {{"CNI_COMMAND", "VERSION"}, {"CNI_PATH", join_path(bin_dirs_)}};
    so.stdin_data = json{{"cniVersion", version}}.dump();
    so.timeout = timeout_;
    so.max_output = kMaxOutput;
    BERTH_TRY(auto r, core::run_program({path}, so));
    if (r.exit_code != 0)
      return failed_precondition("CNI plugin {} (VERSION): {}", type, plugin_error(r));
    json v = json::parse(r.out, nullptr, false);
    if (!v.is_object() || !v.contains("supportedVersions") || !v["supportedVersions"].is_array())
      return failed_precondition("CNI plugin {} (VERSION): no supportedVersions in its answer",
                                 type);
    for (const auto& s : v["supportedVersions"])
      if (s.is_string()) supported.push_back(s.get<std::string>());
    std::lock_guard<std::mutex> lock(mu_);
    versions_[key] = supported;
  }
  if (std::find(supported.begin(), supported.end(), version) == supported.end()) {
    std::string list;
    for (const auto& s : supported) list += (list.empty() ? "" : ", ") + s;
    return failed_precondition("CNI plugin {} does not speak cniVersion {} (it speaks {})", type,
                               version, list);
  }
  return Status();
}

Result<json> Invoker::exec(const std::string& command, const NetworkList& net, std::size_t index,
                           const RuntimeConf& rt, const json& prev) {
  json conf = net.plugins[index];
  std::string type = conf.value("type", std::string());
  auto fail = [&](const std::string& why) {
    return Status(Code::kFailedPrecondition,
                  fmt::format("network \"{}\": plugin {} ({}): {}", net.name, type, command, why));
  };
  auto path = find_plugin(type);
  if (!path.ok()) return fail(path.status().message());
  if (Status st = negotiate(*path, type, net.cni_version); !st.ok()) return fail(st.message());
  conf["name"] = net.name;
  conf["cniVersion"] = net.cni_version;
  if (conf.contains("capabilities") && conf["capabilities"].is_object()) {
    json runtime = json::object();
    for (const auto& [cap, on] : conf["capabilities"].items()) {
      if (on.is_boolean() && on.get<bool>() && rt.capability_args.contains(cap))
        runtime[cap] = rt.capability_args[cap];
    }
    if (!runtime.empty()) conf["runtimeConfig"] = runtime;
  }
  if (!prev.is_null()) conf["prevResult"] = prev;
  core::SpawnOptions so;
  so.env = {{"CNI_COMMAND", command},          {"CNI_CONTAINERID", rt.container_id},
            {"CNI_NETNS", rt.netns},           {"CNI_IFNAME", rt.ifname},
            {"CNI_ARGS", cni_args(rt.args)},   {"CNI_PATH", join_path(bin_dirs_)}};
  so.stdin_data = conf.dump();
  so.timeout = timeout_;
  so.max_output = kMaxOutput;
  auto r = core::run_program({*path}, so);
  if (!r.ok()) return fail(r.status().message());
  if (r->exit_code != 0) return fail(plugin_error(*r));
  if (command != "ADD") return json();
  json result = json::parse(r->out, nullptr, false);
  if (!result.is_object()) return fail("its result is not a JSON object");
  return result;
}

Result<json> Invoker::add(const NetworkList& net, const RuntimeConf& rt) {
  json prev;
  for (std::size_t i = 0; i < net.plugins.size(); ++i) {
    BERTH_TRY(prev, exec("ADD", net, i, rt, prev));
  }
  return prev;
}

Status Invoker::del(const NetworkList& net, const RuntimeConf& rt, const json& cached) {
  Status first;
  for (std::size_t i = net.plugins.size(); i-- > 0;) {
    auto r = exec("DEL", net, i, rt, cached);
    if (!r.ok() && first.ok()) first = r.status();
  }
  return first;
}

Status Invoker::check(const NetworkList& net, const RuntimeConf& rt, const json& cached) {
  if (net.disable_check || net.cni_version.rfind("0.3.", 0) == 0) return Status();
  if (cached.is_null())
    return failed_precondition("network \"{}\": no cached ADD result to CHECK against", net.name);
  for (std::size_t i = 0; i < net.plugins.size(); ++i) {
    BERTH_RETURN_IF_ERROR(exec("CHECK", net, i, rt, cached).status());
  }
  return Status();
}

ParsedResult parse_result(const json& result, const std::string& network,
                          const std::string& ifname) {
  ParsedResult out;
  std::vector<network::Interface> all;
  std::vector<bool> inside;
  if (result.contains("interfaces") && result["interfaces"].is_array()) {
    for (const auto& i : result["interfaces"]) {
      network::Interface n;
      n.network = network;
      n.name = i.value("name", std::string());
      n.mac = i.value("mac", std::string());
      all.push_back(n);
      inside.push_back(i.contains("sandbox") && i["sandbox"].is_string() &&
                       !i["sandbox"].get<std::string>().empty());
    }
  }
  // An address without an interface index belongs to the container's interface.
  auto container_if = [&]() -> network::Interface& {
    for (std::size_t k = 0; k < all.size(); ++k)
      if (inside[k] && all[k].name == ifname) return all[k];
    all.push_back({network, ifname, "", {}, {}});
    inside.push_back(true);
    return all.back();
  };
  if (result.contains("ips") && result["ips"].is_array()) {
    for (const auto& ip : result["ips"]) {
      if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) continue;
      network::Interface* target = nullptr;
      if (ip.contains("interface") && ip["interface"].is_number_unsigned()) {
        auto k = ip["interface"].get<std::size_t>();
        if (k < all.size()) target = &all[k];
      }
      if (!target) target = &container_if();
      target->addresses.push_back(ip["address"].get<std::string>());
      if (ip.contains("gateway") && ip["gateway"].is_string())
        target->gateways.push_back(ip["gateway"].get<std::string>());
    }
  }
  for (std::size_t k = 0; k < all.size(); ++k)
    if (inside[k]) out.interfaces.push_back(all[k]);
  if (result.contains("dns") && result["dns"].is_object()) {
    const json& d = result["dns"];
    auto strings = [&](const char* key, std::vector<std::string>& v) {
      if (d.contains(key) && d[key].is_array())
        for (const auto& s : d[key])
          if (s.is_string()) v.push_back(s.get<std::string>());
    };
    strings("nameservers", out.dns.servers);
    strings("search", out.dns.searches);
    strings("options", out.dns.options);
    if (d.contains("domain") && d["domain"].is_string() && out.dns.searches.empty())
      out.dns.searches.push_back(d["domain"].get<std::string>());
  }
  return out;
}

}  // namespace berth::cni

#include "core/cni/manager.h"

#include <berth/identifiers.h>
#include <openssl/evp.h>

#include <filesystem>
#include <set>

#include "core/cni/etc_files.h"
#include "core/cni/netns.h"
#include "core/digest.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/time.h"

namespace berth::cni {

using nlohmann::json;

namespace {

json port_json(const network::PortMapping& p) {
  json j = {{"hostPort", p.host_port}, {"containerPort", p.container_port},
            {"protocol", p.protocol}};
  if (!p.host_ip.empty()) j["hostIP"] = p.host_ip;
  return j;
}

network::PortMapping port_from(const json& j) {
  network::PortMapping p;
  p.host_port = j.value("hostPort", std::uint16_t{0});
  p.container_port = j.value("containerPort", std::uint16_t{0});
  p.protocol = j.value("protocol", std::string("tcp"));
  p.host_ip = j.value("hostIP", std::string());
  return p;
}

json interface_json(const network::Interface& i) {
  return {{"network", i.network}, {"name", i.name},           {"mac", i.mac},
          {"addresses", i.addresses}, {"gateways", i.gateways}};
}

network::Interface interface_from(const json& j) {
  network::Interface i;
  i.network = j.value("network", std::string());
  i.name = j.value("name", std::string());
  i.mac = j.value("mac", std::string());
  i.addresses = j.value("addresses", std::vector<std::string>{});
  i.gateways = j.value("gateways", std::vector<std::string>{});
  return i;
}

bool wants_ports(const NetworkList& n) {
  for (const auto& p : n.plugins) {
    if (p.contains("capabilities") && p["capabilities"].is_object() &&
        p["capabilities"].value("portMappings", false))
      return true;
  }
  return false;
}

Status validate_ids(const std::string& ns, const std::string& id) {
  BERTH_RETURN_IF_ERROR(validate_identifier(ns).with_context("namespace"));
  return validate_identifier(id).with_context("id");
}

Status validate_ports(const std::vector<network::PortMapping>& ports) {
  std::set<std::tuple<std::string, std::uint16_t, std::string>> seen;
  for (const auto& p : ports) {
    if (p.host_port == 0 || p.container_port == 0)
      return invalid_argument("port mapping {}:{}: ports must be 1-65535", p.host_port,
                              p.container_port);
    if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp")
      return invalid_argument("port mapping {}:{}/{}: the protocol must be tcp, udp or sctp",
                              p.host_port, p.container_port, p.protocol);
    if (!seen.insert({p.host_ip, p.host_port, p.protocol}).second)
      return invalid_argument("host port {}/{} is mapped twice", p.host_port, p.protocol);
  }
  return Status();
}

}  // namespace

// What is on disk for one attachment.
struct Manager::Record {
  network::Attachment a;
  std::string cni_id;
  struct Net {
    NetworkList list;
    std::string ifname;
    json result;  // the cached ADD result (null until it succeeded)
    bool ports = false;
  };
  std::vector<Net> nets;
  std::vector<std::pair<std::string, std::string>> args;
  bool complete = false;  // false while attaching (a crash leaves it for collect())

  json to_json() const {
    json nets_j = json::array();
    for (const auto& n : nets)
      nets_j.push_back({{"name", n.list.name},
                        {"ifname", n.ifname},
                        {"file", n.list.file},
                        {"config", n.list.document()},
                        {"ports", n.ports},
                        {"result", n.result}});
    json ports = json::array();
    for (const auto& p : a.ports) ports.push_back(port_json(p));
    json ifs = json::array();
    for (const auto& i : a.interfaces) ifs.push_back(interface_json(i));
    return {{"namespace", a.ns},
            {"id", a.id},
            {"cni_id", cni_id},
            {"netns", a.netns_path},
            {"hostname", a.hostname},
            {"files", {{"hosts", a.hosts_path},
                       {"resolv_conf", a.resolv_conf_path},
                       {"hostname", a.hostname_path}}},
            {"owned_by_container", a.owned_by_container},
            {"created_at", core::to_unix_nanos(a.created_at)},
            {"networks", nets_j},
            {"ports", ports},
            {"args", args},
            {"interfaces", ifs},
            {"complete", complete}};
  }

  static Result<Record> from_json(const json& j, const std::string& path) {
    Record r;
    try {
      r.a.ns = j.at("namespace").get<std::string>();
      r.a.id = j.at("id").get<std::string>();
      r.cni_id = j.at("cni_id").get<std::string>();
      r.a.netns_path = j.at("netns").get<std::string>();
      r.a.hostname = j.value("hostname", std::string());
      const json& f = j.at("files");
      r.a.hosts_path = f.value("hosts", std::string());
      r.a.resolv_conf_path = f.value("resolv_conf", std::string());
      r.a.hostname_path = f.value("hostname", std::string());
      r.a.owned_by_container = j.value("owned_by_container", true);
      r.a.created_at = core::from_unix_nanos(j.value("created_at", std::int64_t{0}));
      for (const auto& n : j.at("networks")) {
        auto list = parse_network(n.at("config").dump(), n.value("file", std::string()));
        if (!list.ok()) return list.status();
        Net net{std::move(*list), n.at("ifname").get<std::string>(), n.value("result", json()),
                n.value("ports", false)};
        r.a.networks.push_back(net.list.name);
        r.nets.push_back(std::move(net));
      }
      for (const auto& p : j.at("ports")) r.a.ports.push_back(port_from(p));
      r.args = j.value("args", decltype(r.args){});
      for (const auto& i : j.at("interfaces")) r.a.interfaces.push_back(interface_from(i));
      r.complete = j.value("complete", false);
    } catch (const std::exception& e) {
      return invalid_argument("attachment record {}: {}", path, e.what());
    }
    // Paths in the record are only ever our own; a record naming others is not trusted.
    if (validate_identifier(r.a.ns).ok() == false || validate_identifier(r.a.id).ok() == false ||
        r.cni_id != cni_id_of(r.a.ns, r.a.id))
      return invalid_argument("attachment record {}: ids do not match its name", path);
    return r;
  }
  static std::string cni_id_of(const std::string& ns, const std::string& id) {
    return Manager::cni_id(ns, id);
  }
};

Manager::Manager(ManagerOptions o)
    : o_(std::move(o)), invoker_(o_.bin_dirs, o_.plugin_timeout) {}

Result<std::unique_ptr<Manager>> Manager::open(ManagerOptions o) {
  if (o.root.empty() || o.state.empty()) return invalid_argument("cni: root and state are needed");
  for (const auto& d : {o.root + "/attachments", o.root + "/results", o.state + "/netns",
                        o.state + "/etc"})
    BERTH_RETURN_IF_ERROR(core::make_dirs(d, 0711));
  return std::unique_ptr<Manager>(new Manager(std::move(o)));
}

std::string Manager::cni_id(const std::string& ns, const std::string& id) {
  // "<ns>-<id>" alone could be equal for ("a-b", "c") and ("a", "b-c").
  return fmt::format("{}-{}-{}", ns, id,
                     core::Sha256::digest_of(ns + '/' + id).substr(7, 8));
}

std::shared_ptr<std::mutex> Manager::lock_for(const std::string& ns, const std::string& id) {
  std::lock_guard<std::mutex> g(mu_);
  std::string key = ns + '/' + id;
  for (auto it = locks_.begin(); it != locks_.end();) {
    if (it->second.expired()) it = locks_.erase(it);
    else ++it;
  }
  auto& w = locks_[key];
  auto m = w.lock();
  if (!m) {
    m = std::make_shared<std::mutex>();
    w = m;
  }
  return m;
}

std::string Manager::etc_dir(const std::string& ns, const std::string& id) const {
  return o_.state + "/etc/" + ns + "/" + id;
}

std::string Manager::record_path(const std::string& ns, const std::string& id) const {
  return o_.root + "/attachments/" + ns + "/" + id + ".json";
}

Result<std::optional<Manager::Record>> Manager::read_record(const std::string& ns,
                                                            const std::string& id) {
  std::string path = record_path(ns, id);
  if (::access(path.c_str(), F_OK) < 0) return std::optional<Record>();
  BERTH_TRY(auto text, core::read_file(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument("attachment record {} is not valid JSON", path);
  BERTH_TRY(auto r, Record::from_json(j, path));
  // The paths this manager unmounts and removes are derived from the ids, never taken from the
  // file: a record is data, not a list of places to delete.
  r.a.netns_path = o_.state + "/netns/" + r.cni_id;
  if (!r.a.hosts_path.empty()) {
    std::string dir = etc_dir(ns, id);
    r.a.hosts_path = dir + "/hosts";
    r.a.resolv_conf_path = dir + "/resolv.conf";
    r.a.hostname_path = dir + "/hostname";
  }
  return std::optional<Record>(std::move(r));
}

Status Manager::write_record(const Record& r, bool durable) {
  auto d = durable ? core::Durability::kDurable : core::Durability::kVolatile;
  BERTH_RETURN_IF_ERROR(core::make_dirs(o_.root + "/attachments/" + r.a.ns, 0711));
  BERTH_RETURN_IF_ERROR(
      core::write_file_atomic(record_path(r.a.ns, r.a.id), r.to_json().dump(), 0600, d));
  // libcni's cache, one file per network: what `cnitool`-style tools and a DEL after a restart read.
  for (const auto& n : r.nets) {
    if (n.result.is_null()) continue;
    json cache = {{"kind", "cniCacheV1"},
                  {"containerId", r.cni_id},
                  {"config", core::base64_encode(n.list.document().dump())},
                  {"ifName", n.ifname},
                  {"networkName", n.list.name},
                  {"netns", r.a.netns_path},
                  {"cniArgs", r.args},
                  {"result", n.result}};
    if (n.ports) {
      json ports = json::array();
      for (const auto& p : r.a.ports) ports.push_back(port_json(p));
      cache["capabilityArgs"] = {{"portMappings", ports}};
    }
    BERTH_RETURN_IF_ERROR(core::write_file_atomic(
        o_.root + "/results/" + n.list.name + "-" + r.cni_id + "-" + n.ifname, cache.dump(),
        0600, d));
  }
  return Status();
}

Result<NetworkList> Manager::resolve(const std::string& name) {
  auto found = find_network(o_.conf_dir, name);
  if (found.ok() || found.status().code() != Code::kNotFound || !o_.write_default ||
      name != o_.default_network.name)
    return found;
  // The default network, written on first use so that operators see and can edit it.
  BERTH_RETURN_IF_ERROR(core::make_dirs(o_.conf_dir, 0755));
  std::string file = o_.conf_dir + "/10-" + name + ".conflist";
  BERTH_RETURN_IF_ERROR(
      core::write_file_atomic(file, default_network_conflist(o_.default_network), 0644));
  log::info("wrote the default CNI network", {{"file", file}});
  return find_network(o_.conf_dir, name);
}

Result<std::vector<network::NetworkInfo>> Manager::list_networks() {
  std::vector<network::NetworkInfo> out;
  std::set<std::string> names;
  for (auto& cf : load_dir(o_.conf_dir)) {
    network::NetworkInfo n;
    n.file = cf.file;
    if (!cf.network.ok()) {
      n.name = std::filesystem::path(cf.file).stem().string();
      n.error = cf.network.status().message();
      out.push_back(std::move(n));
      continue;
    }
    if (!names.insert(cf.network->name).second) continue;  // the first file wins, as in libcni
    n.name = cf.network->name;
    n.cni_version = cf.network->cni_version;
    n.plugins = cf.network->types();
    n.config = cf.network->document().dump(2);
    out.push_back(std::move(n));
  }
  if (o_.write_default && !names.count(o_.default_network.name)) {
    auto d = parse_network(default_network_conflist(o_.default_network), "");
    if (d.ok()) {
      network::NetworkInfo n;
      n.name = d->name;
      n.cni_version = d->cni_version;
      n.plugins = d->types();
      n.config = d->document().dump(2);
      n.file = "(default: written to " + o_.conf_dir + " on first use)";
      out.push_back(std::move(n));
    }
  }
  return out;
}

Result<network::Attachment> Manager::attach(const std::string& ns, const std::string& id,
                                            const network::AttachOptions& opts) {
  BERTH_RETURN_IF_ERROR(validate_ids(ns, id));
  if (opts.networks.empty()) return invalid_argument("attach {}: no network named", id);
  std::set<std::string> unique(opts.networks.begin(), opts.networks.end());
  if (unique.size() != opts.networks.size())
    return invalid_argument("attach {}: a network is named twice", id);
  BERTH_RETURN_IF_ERROR(validate_ports(opts.ports));
  for (const auto& [k, v] : opts.args) {
    if (k.empty() || k.find_first_of("=;") != std::string::npos ||
        v.find(';') != std::string::npos)
      return invalid_argument("CNI_ARGS entry \"{}={}\": no '=' or ';' in keys, no ';' in values",
                              k, v);
  }

  auto mu = lock_for(ns, id);
  std::lock_guard<std::mutex> hold(*mu);
  BERTH_TRY(auto existing, read_record(ns, id));
  if (existing) {
    // Left by a crash mid-attach, or the attachment of a deleted container of the same id.
    bool stale = !existing->complete ||
                 (existing->a.owned_by_container && opts.owned_by_container &&
                  existing->a.created_at < opts.owner_created);
    if (!stale)
      return already_exists("{} already has networks ({}); detach them first", id,
                            fmt::join(existing->a.networks, ", "));
    BERTH_RETURN_IF_ERROR(teardown(*existing).with_context("tear down the stale attachment"));
  }

  Record r;
  r.a.ns = ns;
  r.a.id = id;
  r.cni_id = cni_id(ns, id);
  r.a.netns_path = o_.state + "/netns/" + r.cni_id;
  r.a.hostname = opts.hostname.empty() ? id : opts.hostname;
  r.a.owned_by_container = opts.owned_by_container;
  r.a.created_at = std::chrono::system_clock::now();
  if (opts.owned_by_container && opts.owner_created > r.a.created_at)
    r.a.created_at = opts.owner_created;
  r.args = opts.args;
  bool ports_given = false;
  for (std::size_t i = 0; i < opts.networks.size(); ++i) {
    BERTH_TRY(auto list, resolve(opts.networks[i]));
    bool ports = !ports_given && !opts.ports.empty() && wants_ports(list);
    ports_given = ports_given || ports;
    r.nets.push_back({std::move(list), fmt::format("eth{}", i), json(), ports});
    r.a.networks.push_back(opts.networks[i]);
  }
  if (!opts.ports.empty() && !ports_given)
    return invalid_argument(
        "ports are published through the portmap plugin, and none of {} has it (a plugin with "
        "\"capabilities\": {{\"portMappings\": true}})",
        fmt::join(opts.networks, ", "));
  r.a.ports = opts.ports;

  // The record first: from here on a crash leaves something collect() finds.
  BERTH_RETURN_IF_ERROR(write_record(r));
  if (Status st = create_netns(r.a.netns_path, o_.loopback); !st.ok()) {
    ::unlink(record_path(ns, id).c_str());
    return st;
  }
  json ports = json::array();
  for (const auto& p : opts.ports) ports.push_back(port_json(p));
  network::DnsConfig cni_dns;  // the first network's that names servers
  for (auto& n : r.nets) {
    RuntimeConf rt{r.cni_id, r.a.netns_path, n.ifname, r.args, json::object()};
    if (n.ports) rt.capability_args["portMappings"] = ports;
    auto res = invoker_.add(n.list, rt);
    if (!res.ok()) {
      Status cleanup = teardown(r, false);
      if (!cleanup.ok())
        log::warn("cleaning up after a failed CNI ADD", {{"id", id}, {"error", cleanup.message()}});
      return res.status();
    }
    n.result = *res;
    auto parsed = parse_result(n.result, n.list.name, n.ifname);
    for (auto& i : parsed.interfaces) r.a.interfaces.push_back(std::move(i));
    if (cni_dns.servers.empty()) cni_dns = parsed.dns;
    // Kept through a daemon crash (page cache); made durable with the final record below.
    if (Status st = write_record(r, false); !st.ok()) {
      teardown(r, false).ignore();
      return st;
    }
  }

  // The files the container bind-mounts.
  std::string dir = etc_dir(ns, id);
  r.a.hosts_path = dir + "/hosts";
  r.a.resolv_conf_path = dir + "/resolv.conf";
  r.a.hostname_path = dir + "/hostname";
  auto host_resolv = core::read_file(o_.host_resolv_conf);
  Status files = core::make_dirs(dir, 0711);
  if (files.ok())
    files = core::write_file_atomic(r.a.hosts_path,
                                    hosts_file(r.a.hostname, r.a.ips(), opts.extra_hosts), 0644,
                                    core::Durability::kVolatile);
  if (files.ok())
    files = core::write_file_atomic(
        r.a.resolv_conf_path,
        resolv_conf(opts.dns, cni_dns, host_resolv.ok() ? *host_resolv : std::string()), 0644,
        core::Durability::kVolatile);
  if (files.ok())
    files = core::write_file_atomic(r.a.hostname_path, r.a.hostname + "\n", 0644,
                                    core::Durability::kVolatile);
  r.complete = true;
  if (files.ok()) files = write_record(r);
  if (!files.ok()) {
    teardown(r, false).ignore();
    return files;
  }
  return r.a;
}

Status Manager::teardown(Record& r, bool keep_on_error) {
  std::string netns = is_netns(r.a.netns_path) ? r.a.netns_path : "";
  Status first;
  json ports = json::array();
  for (const auto& p : r.a.ports) ports.push_back(port_json(p));
  for (std::size_t i = r.nets.size(); i-- > 0;) {
    auto& n = r.nets[i];
    RuntimeConf rt{r.cni_id, netns, n.ifname, r.args, json::object()};
    if (n.ports) rt.capability_args["portMappings"] = ports;
    Status st = invoker_.del(n.list, rt, n.result);
    if (!st.ok() && first.ok()) first = st;
  }
  if (Status st = remove_netns(r.a.netns_path); !st.ok() && first.ok()) first = st;
  std::error_code ec;
  // Our own directory of regular files (ns and id are validated identifiers: no '/', no "..");
  // remove_all does not follow symlinks.
  std::filesystem::remove_all(etc_dir(r.a.ns, r.a.id), ec);
  if (!first.ok() && keep_on_error) {
    // Kept for the next collect(): DEL is idempotent, and a retry may release what this one
    // could not (a lease, a rule).
    r.complete = true;
    write_record(r).ignore();
    return first;
  }
  for (const auto& n : r.nets)
    std::filesystem::remove(o_.root + "/results/" + n.list.name + "-" + r.cni_id + "-" + n.ifname,
                            ec);
  ::unlink(record_path(r.a.ns, r.a.id).c_str());
  return first;
}

Status Manager::detach(const std::string& ns, const std::string& id) {
  BERTH_RETURN_IF_ERROR(validate_ids(ns, id));
  auto mu = lock_for(ns, id);
  std::lock_guard<std::mutex> hold(*mu);
  BERTH_TRY(auto r, read_record(ns, id));
  if (!r) return Status();
  return teardown(*r);
}

Status Manager::check(const std::string& ns, const std::string& id) {
  BERTH_RETURN_IF_ERROR(validate_ids(ns, id));
  auto mu = lock_for(ns, id);
  std::lock_guard<std::mutex> hold(*mu);
  BERTH_TRY(auto r, read_record(ns, id));
  if (!r) return not_found("{} has no networks attached", id);
  if (!is_netns(r->a.netns_path))
    return failed_precondition("{}: its network namespace {} is gone", id, r->a.netns_path);
  json ports = json::array();
  for (const auto& p : r->a.ports) ports.push_back(port_json(p));
  for (const auto& n : r->nets) {
    RuntimeConf rt{r->cni_id, r->a.netns_path, n.ifname, r->args, json::object()};
    if (n.ports) rt.capability_args["portMappings"] = ports;
    BERTH_RETURN_IF_ERROR(invoker_.check(n.list, rt, n.result));
  }
  return Status();
}

Result<network::Attachment> Manager::get(const std::string& ns, const std::string& id) {
  BERTH_RETURN_IF_ERROR(validate_ids(ns, id));
  BERTH_TRY(auto r, read_record(ns, id));
  if (!r || !r->complete) return not_found("{} has no networks attached", id);
  return r->a;
}

Result<std::vector<network::Attachment>> Manager::list(const std::string& ns) {
  std::vector<network::Attachment> out;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(o_.root + "/attachments", ec)) {
    std::string n = d.path().filename().string();
    if (!ns.empty() && n != ns) continue;
    if (!validate_identifier(n).ok()) continue;
    std::error_code ec2;
    for (const auto& f : std::filesystem::directory_iterator(d.path(), ec2)) {
      if (f.path().extension() != ".json") continue;
      std::string id = f.path().stem().string();
      if (!validate_identifier(id).ok()) continue;
      auto r = read_record(n, id);
      if (!r.ok()) {
        log::warn("unreadable network attachment", {{"file", f.path().string()},
                                                     {"error", r.status().message()}});
        continue;
      }
      if (*r) out.push_back((*r)->a);
    }
  }
  return out;
}

std::vector<Manager::Collected> Manager::collect(
    const std::function<bool(const network::Attachment&)>& stale) {
  std::vector<Collected> out;
  auto all = list("");
  if (!all.ok()) return out;
  for (const auto& a : *all) {
    bool gone = !is_netns(a.netns_path);  // a reboot took the namespace (and what was in it)
    if (!gone && !stale(a)) continue;
    auto mu = lock_for(a.ns, a.id);
    std::lock_guard<std::mutex> hold(*mu);
    auto r = read_record(a.ns, a.id);
    if (!r.ok() || !*r) continue;
    // Re-checked under the lock: an attach may have replaced it meanwhile.
    if ((*r)->a.created_at != a.created_at) continue;
    if (is_netns((*r)->a.netns_path) && !stale((*r)->a)) continue;
    Status st = teardown(**r);
    out.push_back({a, st});
  }
  return out;
}

}  // namespace berth::cni

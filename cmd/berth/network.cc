// berth network ls|inspect|attachments|check, and the network flags of `run`.
#include <berth/proto_time.h>

#include <algorithm>
#include <iostream>

#include "berth/network/v1/network.grpc.pb.h"
#include "cmd/berth/commands.h"
#include "cmd/berth/network_client.h"
#include "cmd/berth/output.h"
#include "core/time.h"

namespace berth::cli {
namespace npb = ::berth::services::network::v1;
using nlohmann::json;

namespace {

std::unique_ptr<npb::Networks::Stub> networks(Client& c) {
  return npb::Networks::NewStub(c.channel());
}

json attachment_json(const npb::Attachment& a) {
  json ifs = json::array();
  for (const auto& i : a.interfaces())
    ifs.push_back({{"network", i.network()},
                   {"name", i.name()},
                   {"mac", i.mac()},
                   {"addresses", std::vector<std::string>(i.addresses().begin(), i.addresses().end())},
                   {"gateways", std::vector<std::string>(i.gateways().begin(), i.gateways().end())}});
  json ports = json::array();
  for (const auto& p : a.ports())
    ports.push_back({{"host_ip", p.host_ip()},
                     {"host_port", p.host_port()},
                     {"container_port", p.container_port()},
                     {"protocol", p.protocol()}});
  return {{"container_id", a.container_id()},
          {"namespace", a.namespace_()},
          {"networks", std::vector<std::string>(a.networks().begin(), a.networks().end())},
          {"ips", attachment_ips(a)},
          {"interfaces", ifs},
          {"ports", ports},
          {"hostname", a.hostname()},
          {"netns", a.netns_path()},
          {"hosts", a.hosts_path()},
          {"resolv_conf", a.resolv_conf_path()},
          {"created_at", core::format_rfc3339(from_proto(a.created_at()))}};
}

}  // namespace

bool NetOptions::cni() const {
  return !networks.empty() && networks[0] != "host" && networks[0] != "none";
}

void add_network_options(CLI::App* cmd, NetOptions& n) {
  cmd->add_option("--net", n.networks,
                  "network: a CNI network name (repeatable; berth is the default bridge), host, "
                  "or none (the default: an empty network namespace)")
      ->allow_extra_args(false);
  cmd->add_option("--publish,-p", n.publish,
                  "publish a port: [IP:]HOST:CONTAINER[/tcp|udp] (needs --net NAME)")
      ->allow_extra_args(false);
  cmd->add_option("--dns", n.dns, "DNS server for /etc/resolv.conf")->allow_extra_args(false);
  cmd->add_option("--dns-search", n.dns_search, "DNS search domain")->allow_extra_args(false);
  cmd->add_option("--dns-option", n.dns_option, "resolv.conf option")->allow_extra_args(false);
  cmd->add_option("--add-host", n.add_host, "NAME:ADDRESS line in /etc/hosts")
      ->allow_extra_args(false);
  cmd->add_option("--hostname", n.hostname, "the container's hostname (default: its id)");
}

Result<bool> check_network_options(const NetOptions& n, bool net_host_flag) {
  bool host = net_host_flag;
  for (const auto& name : n.networks) {
    if ((name == "host" || name == "none") && n.networks.size() > 1)
      return invalid_argument("--net {} cannot be combined with other networks", name);
    if (name == "host") host = true;
  }
  if (net_host_flag && !n.networks.empty() && n.networks[0] != "host")
    return invalid_argument("--net-host and --net {} contradict each other", n.networks[0]);
  if (!n.cni()) {
    const char* what = !n.publish.empty()      ? "-p"
                       : !n.add_host.empty()   ? "--add-host"
                       : !n.dns.empty()        ? "--dns"
                       : !n.dns_search.empty() ? "--dns-search"
                       : !n.dns_option.empty() ? "--dns-option"
                                               : nullptr;
    if (what)
      return invalid_argument("{} needs a CNI network: add --net NAME (berth is the default "
                              "bridge network)",
                              what);
  }
  for (const auto& p : n.publish) BERTH_RETURN_IF_ERROR(parse_publish(p).status());
  return host;
}

Result<npb::PortMapping> parse_publish(const std::string& spec) {
  npb::PortMapping m;
  std::string rest = spec;
  auto slash = rest.rfind('/');
  m.set_protocol("tcp");
  if (slash != std::string::npos) {
    m.set_protocol(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    if (m.protocol() != "tcp" && m.protocol() != "udp" && m.protocol() != "sctp")
      return invalid_argument("-p {}: the protocol must be tcp, udp or sctp", spec);
  }
  std::string ip;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find("]:");
    if (close == std::string::npos) return invalid_argument("-p {}: expected [IPv6]:HOST:CONTAINER", spec);
    ip = rest.substr(1, close - 1);
    rest = rest.substr(close + 2);
  }
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (true) {
    auto j = rest.find(':', i);
    parts.push_back(rest.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  if (parts.size() == 3 && ip.empty()) {
    ip = parts[0];
    parts.erase(parts.begin());
  }
  if (parts.size() != 2)
    return invalid_argument("-p {}: expected [IP:]HOST:CONTAINER[/PROTO]", spec);
  auto port = [&](const std::string& s, const char* what) -> Result<std::uint32_t> {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
      return invalid_argument("-p {}: the {} port \"{}\" is not a number", spec, what, s);
    unsigned long v = std::stoul(s);
    if (v == 0 || v > 65535) return invalid_argument("-p {}: the {} port must be 1-65535", spec, what);
    return static_cast<std::uint32_t>(v);
  };
  BERTH_TRY(auto host, port(parts[0], "host"));
  BERTH_TRY(auto ctr, port(parts[1], "container"));
  m.set_host_port(host);
  m.set_container_port(ctr);
  m.set_host_ip(ip);
  return m;
}

std::vector<std::string> attachment_ips(const npb::Attachment& a) {
  std::vector<std::string> out;
  for (const auto& i : a.interfaces())
    for (const auto& addr : i.addresses()) out.push_back(addr.substr(0, addr.find('/')));
  return out;
}

Result<npb::Attachment> attach_networks(Client& c, const std::string& id, const NetOptions& n) {
  npb::AttachRequest req;
  req.set_container_id(id);
  for (const auto& name : n.networks) req.add_networks(name);
  for (const auto& p : n.publish) {
    BERTH_TRY(auto m, parse_publish(p));
    *req.add_ports() = m;
  }
  for (const auto& s : n.dns) req.add_dns_servers(s);
  for (const auto& s : n.dns_search) req.add_dns_searches(s);
  for (const auto& s : n.dns_option) req.add_dns_options(s);
  for (const auto& s : n.add_host) req.add_extra_hosts(s);
  req.set_hostname(n.hostname);
  npb::AttachResponse resp;
  // No deadline of the CLI's: CNI plugins have the daemon's plugin_timeout.
  auto ctx = c.long_context();
  BERTH_RETURN_IF_ERROR(
      c.check(networks(c)->Attach(ctx.get(), req, &resp), "attach networks to " + id));
  return resp.attachment();
}

Status detach_networks(Client& c, const std::string& id) {
  npb::DetachRequest req;
  req.set_container_id(id);
  google::protobuf::Empty e;
  auto ctx = c.long_context();
  grpc::Status s = networks(c)->Detach(ctx.get(), req, &e);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) return Status();
  return c.check(s, "detach the networks of " + id);
}

std::map<std::string, std::vector<std::string>> attachment_ips(Client& c) {
  std::map<std::string, std::vector<std::string>> out;
  npb::ListAttachmentsRequest req;
  npb::ListAttachmentsResponse resp;
  auto ctx = c.context();
  if (!networks(c)->ListAttachments(ctx.get(), req, &resp).ok()) return out;
  for (const auto& a : resp.attachments()) out[a.container_id()] = attachment_ips(a);
  return out;
}

void add_network_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    bool quiet = false;
    std::vector<std::string> names;
    std::string id;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("network", "CNI networks of berthd (io.berth.network.v1.cni)");
  cmd->alias("net");
  cmd->require_subcommand(1);

  auto list = [](Client& c) -> Result<std::vector<npb::Network>> {
    npb::ListNetworksRequest req;
    npb::ListNetworksResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(networks(c)->List(ctx.get(), req, &resp), "list networks"));
    return std::vector<npb::Network>(resp.networks().begin(), resp.networks().end());
  };

  auto* ls = cmd->add_subcommand("ls", "list the configured networks")->alias("list");
  ls->add_flag("--quiet,-q", o->quiet, "names only");
  set_action(ls, global, [&global, o, list](Client& c) -> Status {
    BERTH_TRY(auto all, list(c));
    if (global.format == "json") {
      json out = json::array();
      for (const auto& n : all)
        out.push_back({{"name", n.name()},
                       {"cni_version", n.cni_version()},
                       {"plugins", std::vector<std::string>(n.plugins().begin(), n.plugins().end())},
                       {"file", n.file()},
                       {"error", n.error()}});
      print_json(std::cout, out);
      return Status();
    }
    if (o->quiet) {
      for (const auto& n : all) std::cout << n.name() << "\n";
      return Status();
    }
    Table t({"NAME", "CNI", "PLUGINS", "FILE"});
    for (const auto& n : all) {
      std::string plugins;
      for (const auto& p : n.plugins()) plugins += (plugins.empty() ? "" : ",") + p;
      t.add({n.name(), n.error().empty() ? n.cni_version() : "error",
             n.error().empty() ? plugins : n.error(), n.file()});
    }
    t.print(std::cout);
    return Status();
  });

  auto* inspect = cmd->add_subcommand("inspect", "show networks' configs as JSON: NAME...");
  inspect->add_option("names", o->names, "network names")->required();
  set_action(inspect, global, [o, list](Client& c) -> Status {
    BERTH_TRY(auto all, list(c));
    json out = json::array();
    for (const auto& name : o->names) {
      auto it = std::find_if(all.begin(), all.end(), [&](const npb::Network& n) { return n.name() == name; });
      if (it == all.end()) return not_found("network \"{}\" is not configured (berth network ls)", name);
      if (!it->error().empty()) return invalid_argument("{}", it->error());
      json config = json::parse(it->config(), nullptr, false);
      out.push_back({{"name", it->name()}, {"file", it->file()}, {"config", config}});
    }
    print_json(std::cout, out);
    return Status();
  });

  auto* atts = cmd->add_subcommand("attachments", "containers with networks, and their addresses");
  set_action(atts, global, [&global](Client& c) -> Status {
    npb::ListAttachmentsRequest req;
    npb::ListAttachmentsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(networks(c)->ListAttachments(ctx.get(), req, &resp), "list attachments"));
    if (global.format == "json") {
      json out = json::array();
      for (const auto& a : resp.attachments()) out.push_back(attachment_json(a));
      print_json(std::cout, out);
      return Status();
    }
    Table t({"CONTAINER", "NETWORKS", "IP", "PORTS"});
    for (const auto& a : resp.attachments()) {
      std::string nets, ips, ports;
      for (const auto& n : a.networks()) nets += (nets.empty() ? "" : ",") + n;
      for (const auto& ip : attachment_ips(a)) ips += (ips.empty() ? "" : ",") + ip;
      for (const auto& p : a.ports())
        ports += fmt::format("{}{}{}->{}/{}", ports.empty() ? "" : ",",
                             p.host_ip().empty() ? "" : p.host_ip() + ":", p.host_port(),
                             p.container_port(), p.protocol());
      t.add({a.container_id(), nets, ips.empty() ? "-" : ips, ports.empty() ? "-" : ports});
    }
    t.print(std::cout);
    return Status();
  });

  auto* check = cmd->add_subcommand("check", "CNI CHECK of a container's networks: ID");
  check->add_option("id", o->id, "container id")->required();
  set_action(check, global, [o](Client& c) -> Status {
    npb::CheckRequest req;
    req.set_container_id(o->id);
    google::protobuf::Empty e;
    auto ctx = c.long_context();
    BERTH_RETURN_IF_ERROR(c.check(networks(c)->Check(ctx.get(), req, &e), "check " + o->id));
    std::cout << o->id << ": ok\n";
    return Status();
  });
}

}  // namespace berth::cli

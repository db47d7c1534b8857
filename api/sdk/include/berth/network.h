// Networks for containers and pods (io.berth.network.v1): a network namespace owned by berthd,
// joined to CNI networks, with its /etc/hosts, /etc/resolv.conf and /etc/hostname. The CNI plugin
// (io.berth.network.v1.cni) implements it; the gRPC Networks service and the CRI call it.
#pragma once

#include <berth/context.h>
#include <berth/plugin.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::network {

inline constexpr std::string_view kPluginType = "io.berth.network.v1";

// A configured network, as loaded from the config directory.
struct NetworkInfo {
  std::string name;
  std::string cni_version;
  std::string file;                  // the file it came from ("" for built-in ones)
  std::vector<std::string> plugins;  // plugin types, in chain order
  std::string config;                // the network list as JSON
  std::string error;                 // set when the file does not load (then only name/file)
};

struct PortMapping {
  std::uint16_t host_port = 0;
  std::uint16_t container_port = 0;
  std::string protocol = "tcp";  // tcp | udp | sctp
  std::string host_ip;           // "" for every address
  bool operator==(const PortMapping&) const = default;
};

struct DnsConfig {
  std::vector<std::string> servers, searches, options;
};

struct AttachOptions {
  std::vector<std::string> networks;  // in order: eth0, eth1, ...
  std::vector<PortMapping> ports;     // to the first network whose plugins map ports
  DnsConfig dns;                      // empty: from the CNI result or the host
  std::string hostname;               // empty: the owner id
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // name, address
  // CNI_ARGS (K8S_POD_NAME=..., IgnoreUnknown=1) for every network.
  std::vector<std::pair<std::string, std::string>> args;
  // Whether the attachment lives as long as the container record of the same id (containers),
  // or until detach (pods, whose owner keeps them).
  bool owned_by_container = true;
  // The container record's creation time, so the attachment of a deleted container is never
  // taken for that of a new container with the same id.
  Timestamp owner_created{};
};

struct Interface {
  std::string network;
  std::string name;  // eth0
  std::string mac;
  std::vector<std::string> addresses;  // CIDR: 10.4.0.2/24
  std::vector<std::string> gateways;
};

struct Attachment {
  std::string ns, id;
  std::string netns_path;
  std::string hosts_path, resolv_conf_path, hostname_path;
  std::string hostname;
  std::vector<std::string> networks;
  std::vector<PortMapping> ports;
  std::vector<Interface> interfaces;
  Timestamp created_at{};
  bool owned_by_container = true;
  // The IPv4 (else first) addresses without prefix, eth0 first.
  std::vector<std::string> ips() const {
    std::vector<std::string> out;
    for (const auto& i : interfaces) {
      for (const auto& a : i.addresses) {
        if (i.name == "lo") continue;
        out.push_back(a.substr(0, a.find('/')));
      }
    }
    return out;
  }
};

class BERTH_API Networks : public virtual Plugin {
 public:
  // Every network in the config directory (broken files too, with their error).
  virtual Result<std::vector<NetworkInfo>> list_networks() = 0;
  // Creates the network namespace and attaches it to the networks; on failure nothing is left.
  // AlreadyExists when the id already has an attachment of the same owner.
  virtual Result<Attachment> attach(const RequestContext& ctx, std::string_view id,
                                    const AttachOptions& opts) = 0;
  // Detaches from every network (CNI DEL, in reverse) and removes the namespace and files.
  // Idempotent: an id with no attachment is fine.
  virtual Status detach(const RequestContext& ctx, std::string_view id) = 0;
  // CNI CHECK of every network of the attachment.
  virtual Status check(const RequestContext& ctx, std::string_view id) = 0;
  virtual Result<Attachment> get(const RequestContext& ctx, std::string_view id) = 0;
  // Attachments in ctx.ns ("" for every namespace).
  virtual Result<std::vector<Attachment>> list(const RequestContext& ctx) = 0;
};

}  // namespace berth::network

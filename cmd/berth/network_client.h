// Container networks from the CLI, through the daemon's Networks service
// (berth.services.network.v1): the flags of `run`/`containers create`, attaching a new container
// and detaching one that goes.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "berth/network/v1/network.pb.h"
#include "cmd/berth/client.h"

namespace berth::cli {

struct NetOptions {
  std::vector<std::string> networks;  // --net: NAME..., or host, or none
  std::vector<std::string> publish;   // -p [IP:]HOST:CONTAINER[/PROTO]
  std::vector<std::string> dns, dns_search, dns_option, add_host;
  std::string hostname;
  // Whether the container gets CNI networks (any --net other than host and none).
  bool cni() const;
};

void add_network_options(CLI::App* cmd, NetOptions& n);
// Checks the combination and tells whether the container shares the host's network.
Result<bool> check_network_options(const NetOptions& n, bool net_host_flag);
// -p [IP:]HOST:CONTAINER[/tcp|udp|sctp] ([::1]:8080:80 for IPv6).
Result<::berth::services::network::v1::PortMapping> parse_publish(const std::string& spec);

Result<::berth::services::network::v1::Attachment> attach_networks(Client& c,
                                                                   const std::string& id,
                                                                   const NetOptions& n);
// Detaches the container's networks, if it has any (fine against a daemon without the service).
Status detach_networks(Client& c, const std::string& id);
// Container id -> its addresses, for listings (empty when the daemon has no network service).
std::map<std::string, std::vector<std::string>> attachment_ips(Client& c);
std::vector<std::string> attachment_ips(const ::berth::services::network::v1::Attachment& a);

}  // namespace berth::cli

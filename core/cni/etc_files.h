// The files a container on its own network needs: /etc/hosts, /etc/resolv.conf, /etc/hostname.
#pragma once

#include <berth/network.h>

#include <string>
#include <vector>

namespace berth::cni {

// resolv.conf: the requested servers, else the CNI result's, else the host's without loopback
// servers (unreachable from another network namespace), else Docker's fallback 8.8.8.8/8.8.4.4.
// Searches and options follow the same order.
std::string resolv_conf(const network::DnsConfig& requested, const network::DnsConfig& from_cni,
                        std::string_view host_resolv_conf);
// hosts: localhost lines, the container's addresses with its hostname, then the extra hosts.
std::string hosts_file(const std::string& hostname, const std::vector<std::string>& ips,
                       const std::vector<std::pair<std::string, std::string>>& extra_hosts);

// "name:address" (as docker --add-host); errors name the entry.
Result<std::pair<std::string, std::string>> parse_extra_host(std::string_view entry);

}  // namespace berth::cni

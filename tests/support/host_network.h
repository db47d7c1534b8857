// What CNI plugins change on the host beyond a container's own veth and lease, put back when a
// test ends: the bridges it names, the iptables chains the plugins made (firewall's CNI-FORWARD,
// portmap's CNI-HOSTPORT-*, with the rules that jump to them) when they were not there before,
// and net.ipv4.ip_forward (the bridge plugin turns it on for a gateway).
#pragma once

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/process.h"

namespace berth::test {

inline std::string host_sh(const std::string& cmd) {
  auto r = core::run_program({"/bin/sh", "-c", cmd});
  return r.ok() ? r->out + r->err : r.status().message();
}

class HostNetworkGuard {
 public:
  explicit HostNetworkGuard(std::vector<std::string> bridges) : bridges_(std::move(bridges)) {
    chains_ = chains();
    ip_forward_ = host_sh("cat /proc/sys/net/ipv4/ip_forward");
  }
  HostNetworkGuard(const HostNetworkGuard&) = delete;
  HostNetworkGuard& operator=(const HostNetworkGuard&) = delete;
  ~HostNetworkGuard() {
    for (const auto& b : bridges_) host_sh("ip link del " + b + " 2>/dev/null");
    for (const auto& [table, now] : chains()) {
      std::vector<std::string> made;
      for (const auto& c : now)
        if (!chains_[table].count(c)) made.push_back(c);
      if (made.empty()) continue;
      std::istringstream in(host_sh("iptables-save -t " + table));
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind("-A ", 0) != 0) continue;
        for (const auto& c : made)
          if (line.find("-j " + c) != std::string::npos)
            host_sh("iptables -w -t " + table + " -D " + line.substr(3));
      }
      for (const auto& c : made) host_sh("iptables -w -t " + table + " -F " + c);
      for (const auto& c : made) host_sh("iptables -w -t " + table + " -X " + c);
    }
    if (ip_forward_ == "0\n" || ip_forward_ == "1\n")
      host_sh("echo " + ip_forward_.substr(0, 1) + " > /proc/sys/net/ipv4/ip_forward");
  }

 private:
  static std::map<std::string, std::set<std::string>> chains() {
    std::map<std::string, std::set<std::string>> out;
    for (const char* table : {"filter", "nat", "mangle"}) {
      std::istringstream in(host_sh(std::string("iptables-save -t ") + table));
      std::string line;
      while (std::getline(in, line))
        if (line.size() > 1 && line[0] == ':') out[table].insert(line.substr(1, line.find(' ') - 1));
    }
    return out;
  }
  std::vector<std::string> bridges_;
  std::map<std::string, std::set<std::string>> chains_;
  std::string ip_forward_;
};

}  // namespace berth::test

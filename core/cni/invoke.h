// Running CNI plugins (CNI spec, "Execution protocol"): the CNI_* environment, the network
// configuration on stdin with name, cniVersion, runtimeConfig and prevResult inserted, results
// chained through a list, errors as the plugin wrote them, and VERSION negotiation.
#pragma once

#include <berth/network.h>
#include <berth/result.h>

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/cni/config.h"

namespace berth::cni {

struct RuntimeConf {
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS ("" on DEL when the namespace is gone)
  std::string ifname;        // CNI_IFNAME
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS
  // runtimeConfig values by capability name ("portMappings": [...]), given to the plugins that
  // declare the capability.
  nlohmann::json capability_args = nlohmann::json::object();
};

class Invoker {
 public:
  Invoker(std::vector<std::string> bin_dirs, std::chrono::milliseconds timeout)
      : bin_dirs_(std::move(bin_dirs)), timeout_(timeout) {}

  // ADD through the list; the last plugin's result. On a failure the error names the network and
  // the plugin; the caller runs del() (a DEL always follows an ADD, also a failed one).
  Result<nlohmann::json> add(const NetworkList& net, const RuntimeConf& rt);
  // DEL in reverse order with the cached ADD result as prevResult (null when there is none).
  // Every plugin is asked even when one fails; the first failure is returned.
  Status del(const NetworkList& net, const RuntimeConf& rt, const nlohmann::json& cached);
  // CHECK in order (0.4.0 and later; a list with disableCheck passes).
  Status check(const NetworkList& net, const RuntimeConf& rt, const nlohmann::json& cached);

  // The plugin binary for `type`, from the bin dirs.
  Result<std::string> find_plugin(const std::string& type) const;
  const std::vector<std::string>& bin_dirs() const { return bin_dirs_; }

 private:
  Result<nlohmann::json> exec(const std::string& command, const NetworkList& net,
                              std::size_t index, const RuntimeConf& rt,
                              const nlohmann::json& prev);
  // VERSION, once per binary (path and mtime): fails when the plugin does not speak `version`.
  Status negotiate(const std::string& path, const std::string& type, const std::string& version);

  std::vector<std::string> bin_dirs_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> versions_;  // "path@mtime" -> supported
};

// The interfaces (with addresses and gateways) and DNS of a result of any supported version.
struct ParsedResult {
  std::vector<network::Interface> interfaces;  // only those inside the container (sandbox set)
  network::DnsConfig dns;
};
ParsedResult parse_result(const nlohmann::json& result, const std::string& network,
                          const std::string& ifname);

}  // namespace berth::cni

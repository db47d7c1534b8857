// CNI network configurations (CNI spec, "Configuration format"): network lists (.conflist) and
// single-plugin files (.conf, .json) from a config directory, and Berth's default network.
#pragma once

#include <berth/result.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::cni {

// The CNI versions this library speaks (results of 0.3.0 and later share one shape).
bool supported_version(std::string_view v);
std::string supported_versions_text();

struct NetworkList {
  std::string name;
  std::string cni_version;
  std::string file;               // where it came from ("" when built in)
  bool disable_check = false;
  nlohmann::json plugins = nlohmann::json::array();  // plugin objects, in chain order
  nlohmann::json document() const;                   // the list as a .conflist document
  std::vector<std::string> types() const;
};

// Network and plugin names: CNI's `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
Status validate_name(std::string_view what, std::string_view name);

// Parses a .conflist (with "plugins") or a single plugin's .conf/.json; errors name the file and
// the field.
Result<NetworkList> parse_network(std::string_view text, const std::string& file);

struct ConfigFile {
  std::string file;
  Result<NetworkList> network;
};
// Every .conflist/.conf/.json in `dir`, in file name order (the order libcni picks a name by);
// a missing directory is empty.
std::vector<ConfigFile> load_dir(const std::string& dir);
// The first network called `name` in `dir`.
Result<NetworkList> find_network(const std::string& dir, std::string_view name);

// Berth's default network, like nerdctl's: a bridge with host-local addresses on a private subnet,
// ports published through portmap, the firewall plugin keeping other hosts out, outbound NAT.
struct DefaultNetwork {
  std::string name = "berth";
  std::string bridge = "berth0";
  std::string subnet = "10.89.0.0/24";
  bool masquerade = true;
  std::string ipam_dir;  // host-local's dataDir ("" for its default, /var/lib/cni/networks)
};
std::string default_network_conflist(const DefaultNetwork& d);

}  // namespace berth::cni

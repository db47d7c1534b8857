// berthd's configuration file: TOML shaped like containerd's config version 2.
//
//   version = 2
//   root = "/var/lib/berth"          state = "/run/berth"       plugin_dir = "..."
//   disabled_plugins = ["io.containerd.snapshotter.v1.native"]
//   required_plugins = ["io.containerd.metadata.v1.rocksdb"]
//   [grpc]    address = "/run/berth/berth.sock"   uid = 0   gid = 0
//   [ttrpc]   address = "/run/berth/berth.sock.ttrpc"
//   [debug]   level = "info"   format = "text"|"json"
//   [plugins."io.containerd.gc.v1.scheduler"]   ...decoded by the plugin over its defaults
//   [proxy_plugins.NAME]   type = "snapshot"|"content"   address = "/run/x.sock"
//
// Unknown keys and bad values are errors naming the file, the key and the reason.
#pragma once

#include <berth/plugin.h>
#include <berth/result.h>
#include <toml++/toml.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace berth::core {

inline constexpr const char* kDefaultConfigPath = "/etc/berth/config.toml";

struct ProxyPluginConfig {
  std::string type;     // plugin type, e.g. io.containerd.snapshotter.v1
  std::string address;  // unix socket path
  std::string platform;
  std::vector<std::string> capabilities;
};

struct Config {
  std::string source = "<default>";  // the file it came from
  std::int64_t version = 2;
  std::string root = "/var/lib/berth";
  std::string state = "/run/berth";
  std::string plugin_dir;  // empty: next to the berthd binary (../lib/berth/plugins)
  std::string grpc_address = "/run/berth/berth.sock";
  std::int64_t grpc_uid = 0;
  std::int64_t grpc_gid = 0;
  std::int64_t grpc_max_recv_message_size = 16 << 20;
  std::int64_t grpc_max_send_message_size = 16 << 20;
  std::string ttrpc_address;  // empty: <grpc_address>.ttrpc
  std::string log_level = "info";
  std::string log_format = "text";
  std::string metrics_address;
  std::vector<std::string> disabled_plugins;
  std::vector<std::string> required_plugins;
  std::map<std::string, toml::table> plugins;  // by URI
  std::map<std::string, ProxyPluginConfig> proxy_plugins;

  std::string effective_ttrpc_address() const {
    return ttrpc_address.empty() ? grpc_address + ".ttrpc" : ttrpc_address;
  }
};

// Parses TOML text; `source` names the file in errors.
Result<Config> parse_config(std::string_view text, const std::string& source);
// Reads and parses a file. A missing file is NotFound (berthd treats a missing default file as
// "use the embedded defaults", and a missing explicit --config as an error).
Result<Config> load_config(const std::string& path);

// The default configuration as TOML (berthd config default).
std::string default_config_toml();

// ConfigReader over one [plugins."<uri>"] table. Records which keys were read, so unknown ones
// can be reported afterwards.
class TomlConfigReader final : public ConfigReader {
 public:
  TomlConfigReader(const toml::table* table, std::string uri, std::string source);

  Status read(std::string_view key, std::string& out) override;
  Status read(std::string_view key, bool& out) override;
  Status read(std::string_view key, std::int64_t& out) override;
  Status read(std::string_view key, double& out) override;
  Status read(std::string_view key, std::vector<std::string>& out) override;
  Status read(std::string_view key, std::map<std::string, std::string>& out) override;
  Status read_duration(std::string_view key, std::chrono::milliseconds& out) override;
  Status invalid(std::string_view key, std::string_view reason) override;

  // Error naming the first key present in the table but never read; OK when there is none.
  Status check_unknown_keys() const;

 private:
  const toml::node* find(std::string_view key);
  Status type_error(std::string_view key, std::string_view want) const;

  const toml::table* table_;
  std::string uri_;
  std::string source_;
  std::set<std::string, std::less<>> read_;
};

}  // namespace berth::core

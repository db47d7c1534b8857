// The plugin registry: registrations from every loaded module, their configs, the dependency
// graph, init in topological order, and close in reverse.
//
// Outcomes per plugin: ok, skip (init returned berth::skip), error (init failed or threw).
// Only a plugin named in required_plugins makes startup fail.
#pragma once

#include <berth/plugin.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"

namespace berth::core {

class PluginRegistry final : public PluginSet {
 public:
  struct Options {
    std::string root;
    std::string state;
    std::string grpc_address;
    std::string ttrpc_address;
    std::set<std::string> disabled;              // URIs
    std::vector<std::string> required;           // URIs
    std::map<std::string, toml::table> configs;  // [plugins."<uri>"]
    std::string config_source = "<default>";
  };

  explicit PluginRegistry(Options options);
  ~PluginRegistry() override;

  // Adds one registration; `source` names the module it came from. A duplicate URI is refused
  // (AlreadyExists, naming both modules) and the first one stays.
  Status add(Registration reg, std::string source);

  // Decodes the config of every enabled registration over its defaults. Fatal on any error.
  Status decode_configs();

  // The enabled registrations' URIs in init order. InvalidArgument names the cycle, e.g.
  // "a.x -> b.y -> a.x".
  Result<std::vector<std::string>> init_order() const;

  // Runs init for every enabled plugin in order. Returns an error only for a required plugin that
  // is missing, was skipped or failed; other failures are logged and recorded.
  Status init_all();

  // Calls close() in reverse init order, then drops the instances.
  void close_all();

  // PluginSet
  std::vector<PluginInfo> list() const override;

  // Initialised instances of a type, in init order.
  std::vector<std::pair<std::string, std::shared_ptr<Plugin>>> instances(
      std::string_view type) const;

 private:
  struct Entry;
  class Context;

  Entry* find(std::string_view type, std::string_view id) const;

  Options options_;
  std::vector<std::unique_ptr<Entry>> entries_;  // registration order
  std::vector<Entry*> initialised_;              // init order
  mutable std::mutex mu_;                        // guards status fields read by list()
};

}  // namespace berth::core

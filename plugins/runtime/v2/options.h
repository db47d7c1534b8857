// The runtime plugin's configuration and the daemon paths it hands to shims.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace berth::plugins::runtime_v2 {

struct Config {
  // runtime name -> shim binary (name or path)
  std::map<std::string, std::string> shims = {{"io.containerd.berth.v1", "berth-shim"}};
  std::chrono::milliseconds start_timeout{std::chrono::seconds(20)};
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(3)};
};

struct Paths {
  std::string root, state;  // the plugin's directories
  std::string grpc_address, ttrpc_address;
  std::string daemon_binary;  // berthd itself: -publish-binary, and where shims are looked for
};

}  // namespace berth::plugins::runtime_v2

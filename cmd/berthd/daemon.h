// The daemon: loads plugins, initialises them in dependency order, serves gRPC, and stops in
// reverse order.
#pragma once

#include "core/asio.h"
#include <thread>

#include "core/ttrpc/ttrpc.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>

#include "cmd/berthd/socket.h"
#include "core/config.h"
#include "core/plugin_loader.h"
#include "core/plugin_registry.h"

namespace berth::daemon {

class Daemon {
 public:
  explicit Daemon(core::Config config);
  ~Daemon();

  // Everything up to "serving": lock, plugins, gRPC listener. An error leaves nothing running.
  Status start();
  // Blocks until SIGTERM or SIGINT (which must be blocked in every thread before start()).
  void wait_for_signal();
  void stop();

 private:
  void register_proxy_plugins();
  Status serve_ttrpc();

  core::Config config_;
  std::optional<LockFile> lock_;
  core::PluginLoader loader_;  // declared before the registry: code outlives instances
  std::unique_ptr<core::PluginRegistry> registry_;
  std::unique_ptr<grpc::Server> server_;
  // The ttrpc socket shims publish events to: one io thread.
  boost::asio::io_context ttrpc_io_;
  std::unique_ptr<ttrpc::Server> ttrpc_;
  std::thread ttrpc_thread_;
  bool ttrpc_socket_created_ = false;
  bool socket_created_ = false;
};

}  // namespace berth::daemon

// berthd: read config, load plugins, serve, stop on SIGTERM/SIGINT.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "cmd/berthd/daemon.h"
#include "core/log.h"
#include "core/plugin_loader.h"

using namespace berth;

int main(int argc, char** argv) {
  CLI::App app{"berthd - the Berth container daemon (containerd-compatible API)"};
  app.set_version_flag("--version,-v", std::string("berthd ") + BERTH_VERSION);
  std::string config_path;
  std::string address, root, state, log_level, log_format;
  app.add_option("--config,-c", config_path, "path to the configuration file")
      ->default_str(core::kDefaultConfigPath);
  app.add_option("--address,-a", address, "gRPC unix socket path (overrides [grpc] address)");
  app.add_option("--root", root, "persistent state directory (overrides root)");
  app.add_option("--state", state, "runtime state directory (overrides state)");
  app.add_option("--log-level,-l", log_level, "trace, debug, info, warn or error");
  app.add_option("--log-format", log_format, "text or json");
  auto* config_cmd = app.add_subcommand("config", "configuration helpers");
  config_cmd->add_subcommand("default", "print the default configuration")->callback([] {
    std::cout << core::default_config_toml();
    std::exit(0);
  });
  config_cmd->require_subcommand(1);
  CLI11_PARSE(app, argc, argv);

  Result<core::Config> cfg = Status(Code::kInternal, "unset");
  if (!config_path.empty()) {
    cfg = core::load_config(config_path);
  } else {
    cfg = core::load_config(core::kDefaultConfigPath);
    if (!cfg.ok() && cfg.status().code() == Code::kNotFound) cfg = core::Config{};
  }
  if (!cfg.ok()) {
    std::cerr << "berthd: " << cfg.status().message() << "\n";
    return 1;
  }
  core::Config config = std::move(cfg).value();
  if (!address.empty()) config.grpc_address = address;
  if (!root.empty()) config.root = root;
  if (!state.empty()) config.state = state;
  if (!log_level.empty()) config.log_level = log_level;
  if (!log_format.empty()) config.log_format = log_format;

  auto level = log::parse_level(config.log_level);
  auto format = log::parse_format(config.log_format);
  if (!level.ok() || !format.ok()) {
    std::cerr << "berthd: " << (!level.ok() ? level.status() : format.status()).message() << "\n";
    return 1;
  }
  log::init(*level, *format);

  // Signals are handled by sigwait in the main thread; block them before any thread starts so
  // gRPC's threads inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  log::info("starting berthd", {{"version", BERTH_VERSION},
                                {"config", config.source},
                                {"abi", core::PluginLoader::abi_key()},
                                {"pid", ::getpid()}});
  daemon::Daemon d(std::move(config));
  if (Status st = d.start(); !st.ok()) {
    log::error("berthd failed to start", {{"error", st}});
    std::cerr << "berthd: " << st.message() << "\n";
    d.stop();
    return 1;
  }
  d.wait_for_signal();
  d.stop();
  log::info("berthd stopped");
  return 0;
}

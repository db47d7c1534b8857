// One file per command group; each adds its subcommands to the app.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "cmd/berth/client.h"

namespace berth::cli {

// Commands run through this, so every error is printed the same way and sets the exit code.
using Action = std::function<Status(Client&)>;
void set_action(CLI::App* cmd, const GlobalOptions& global, Action action);

void add_version_command(CLI::App& app, const GlobalOptions& global);
void add_plugins_command(CLI::App& app, const GlobalOptions& global);
void add_namespaces_command(CLI::App& app, const GlobalOptions& global);
void add_content_command(CLI::App& app, const GlobalOptions& global);
void add_leases_command(CLI::App& app, const GlobalOptions& global);
void add_snapshots_command(CLI::App& app, const GlobalOptions& global);

}  // namespace berth::cli

// One file per command group; each adds its subcommands to the app.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>

#include "cmd/berth/client.h"

namespace berth::cli {

// Commands run through this, so every error is printed the same way and sets the exit code.
using Action = std::function<Status(Client&)>;
void set_action(CLI::App* cmd, const GlobalOptions& global, Action action);
// For the host tools: the action runs also when berthd is not there (then with nullptr).
void set_local_action(CLI::App* cmd, const GlobalOptions& global,
                      std::function<Status(Client*)> action);

// Runs fn for every item; prints each item that succeeded (when print_ok) and each error, and
// returns an error "N of M <noun> not removed" when any failed.
Status for_each_item(const std::vector<std::string>& items, std::string_view noun, bool print_ok,
                     const std::function<Status(const std::string&)>& fn);

// Writes the bytes read from fd into the content store through the Write stream, resuming an
// interrupted ingest of the same ref. Returns the digest (the expected one when the daemon already
// has it).
struct ContentWrite {
  std::string ref;
  std::int64_t size = 0;
  std::string expected;
  std::map<std::string, std::string> labels;
  std::string lease;
};
// Reads up to n bytes into buf; short (or 0) only at the end of the input.
using ContentReader = std::function<Result<std::size_t>(char* buf, std::size_t n)>;
Result<std::string> write_content(Client& c, const ContentReader& read, const ContentWrite& w);
Result<std::string> write_content(Client& c, int fd, const ContentWrite& w);

void add_version_command(CLI::App& app, const GlobalOptions& global);
void add_plugins_command(CLI::App& app, const GlobalOptions& global);
void add_namespaces_command(CLI::App& app, const GlobalOptions& global);
void add_content_command(CLI::App& app, const GlobalOptions& global);
void add_leases_command(CLI::App& app, const GlobalOptions& global);
void add_snapshots_command(CLI::App& app, const GlobalOptions& global);
void add_images_command(CLI::App& app, const GlobalOptions& global);
void add_containers_command(CLI::App& app, const GlobalOptions& global);
void add_run_command(CLI::App& app, const GlobalOptions& global);
void add_tasks_command(CLI::App& app, const GlobalOptions& global);
void add_events_command(CLI::App& app, const GlobalOptions& global);
void add_network_command(CLI::App& app, const GlobalOptions& global);
void add_lsns_command(CLI::App& app, const GlobalOptions& global);
void add_import_rootfs_command(CLI::App& images, const GlobalOptions& global);
void add_export_command(CLI::App& images, const GlobalOptions& global);
void add_import_command(CLI::App& images, const GlobalOptions& global);
void add_unpack_commands(CLI::App& images, const GlobalOptions& global);
void add_transfer_commands(CLI::App& images, const GlobalOptions& global);

}  // namespace berth::cli

// berth: the admin CLI, shaped like containerd's ctr.
#include <cstdlib>
#include <iostream>

#include "cmd/berth/commands.h"

namespace berth::cli {
namespace {
int g_exit_code = 0;
}

void set_action(CLI::App* cmd, const GlobalOptions& global, Action action) {
  cmd->callback([&global, action = std::move(action)] {
    if (global.format != "table" && global.format != "json") {
      std::cerr << "berth: --format must be table or json, not \"" << global.format << "\"\n";
      g_exit_code = 2;
      return;
    }
    Client client(global);
    Status st = client.connect();
    if (st.ok()) st = action(client);
    if (!st.ok()) {
      std::cerr << "berth: " << st.message() << "\n";
      g_exit_code = 1;
    }
  });
}

void set_local_action(CLI::App* cmd, const GlobalOptions& global,
                      std::function<Status(Client*)> action) {
  cmd->callback([&global, action = std::move(action)] {
    if (global.format != "table" && global.format != "json") {
      std::cerr << "berth: --format must be table or json, not \"" << global.format << "\"\n";
      g_exit_code = 2;
      return;
    }
    Client client(global);
    Status st = action(client.connect().ok() ? &client : nullptr);
    if (!st.ok()) {
      std::cerr << "berth: " << st.message() << "\n";
      g_exit_code = 1;
    }
  });
}

Status for_each_item(const std::vector<std::string>& items, std::string_view noun, bool print_ok,
                     const std::function<Status(const std::string&)>& fn) {
  std::size_t failed = 0;
  Code code = Code::kOk;
  for (const auto& item : items) {
    Status st = fn(item);
    if (st.ok()) {
      if (print_ok) std::cout << item << "\n";
    } else {
      std::cerr << "berth: " << st.message() << "\n";
      if (failed++ == 0) code = st.code();
    }
  }
  if (failed == 0) return Status();
  return Status(code, fmt::format("{} of {} {} not removed", failed, items.size(), noun));
}

}  // namespace berth::cli

int main(int argc, char** argv) {
  using namespace berth::cli;
  GlobalOptions global;
  if (const char* a = std::getenv("BERTH_ADDRESS"); a && *a) global.address = a;
  if (const char* n = std::getenv("BERTH_NAMESPACE"); n && *n) global.ns = n;

  CLI::App app{"berth - admin CLI for berthd"};
  app.set_version_flag("--version,-v", std::string("berth ") + BERTH_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--address,-a", global.address, "berthd socket ($BERTH_ADDRESS)")
      ->capture_default_str();
  app.add_option("--namespace,-n", global.ns, "namespace ($BERTH_NAMESPACE)")
      ->capture_default_str();
  app.add_option("--timeout", global.timeout, "per-call timeout, e.g. 10s (0 = none)")
      ->capture_default_str();
  app.add_option("--format", global.format, "output format: table or json")->capture_default_str();

  add_version_command(app, global);
  add_plugins_command(app, global);
  add_namespaces_command(app, global);
  add_content_command(app, global);
  add_leases_command(app, global);
  add_snapshots_command(app, global);
  add_images_command(app, global);
  add_containers_command(app, global);
  add_run_command(app, global);
  add_tasks_command(app, global);
  add_events_command(app, global);
  add_network_command(app, global);
  add_lsns_command(app, global);

  CLI11_PARSE(app, argc, argv);
  return g_exit_code;
}

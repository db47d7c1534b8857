// berth lsns: every kernel namespace on the host, as util-linux lsns lists them (walking
// /proc/*/ns), with the Berth container that owns each (asked of berthd when it runs).
#include <pwd.h>

#include <algorithm>
#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/kernel_ns.h"
#include "cmd/berth/output.h"

namespace berth::cli {
using nlohmann::json;

namespace {

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* res = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) return pw.pw_name;
  return std::to_string(uid);
}

const std::vector<std::string>& all_columns() {
  static const std::vector<std::string> c = {"NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND",
                                             "CONTAINER"};
  return c;
}

}  // namespace

void add_lsns_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    std::string type, container, columns;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "lsns", "list kernel namespaces (as util-linux lsns), with the Berth container of each");
  cmd->add_option("--type,-t", o->type, "only this type: mnt, uts, ipc, pid, net, user, cgroup, time");
  cmd->add_option("--container", o->container, "only the namespaces of this container ([NS/]ID)");
  cmd->add_option("--output,-o", o->columns,
                  "columns, comma-separated: NS,TYPE,NPROCS,PID,USER,COMMAND,CONTAINER");
  cmd->footer(
      "Examples:\n  berth lsns\n  berth lsns -t net\n  berth lsns --container web -o NS,TYPE,PID\n"
      "  berth --format json lsns   # as `lsns -J --list` (flat), plus \"container\"");
  set_local_action(cmd, global, [&global, o](Client* c) -> Status {
    const auto& types = kernel_ns_types();
    if (!o->type.empty() && std::find(types.begin(), types.end(), o->type) == types.end())
      return invalid_argument("--type {}: one of mnt, uts, ipc, pid, net, user, cgroup, time",
                              o->type);
    std::vector<std::string> columns = all_columns();
    if (!o->columns.empty()) {
      columns.clear();
      std::size_t i = 0;
      while (i <= o->columns.size()) {
        auto j = o->columns.find(',', i);
        if (j == std::string::npos) j = o->columns.size();
        std::string col = o->columns.substr(i, j - i);
        for (auto& ch : col) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (std::find(all_columns().begin(), all_columns().end(), col) == all_columns().end())
          return invalid_argument("-o: unknown column \"{}\" (NS, TYPE, NPROCS, PID, USER, "
                                  "COMMAND, CONTAINER)",
                                  col);
        columns.push_back(col);
        i = j + 1;
      }
    }
    auto owners = container_namespaces(c);
    auto all = read_kernel_namespaces();
    std::vector<KernelNamespace> shown;
    for (auto& ns : all) {
      if (auto it = owners.find({ns.type, ns.inode}); it != owners.end()) ns.container = it->second;
      if (!o->type.empty() && ns.type != o->type) continue;
      if (!o->container.empty()) {
        bool match = ns.container == o->container ||
                     (!ns.container.empty() &&
                      ns.container.substr(ns.container.find('/') + 1) == o->container);
        if (!match) continue;
      }
      shown.push_back(std::move(ns));
    }
    if (!o->container.empty() && shown.empty())
      return not_found("no namespaces of a running container \"{}\"{}", o->container,
                       c ? "" : " (berthd is not reachable to tell)");
    auto cell = [&](const KernelNamespace& ns, const std::string& col) -> std::string {
      if (col == "NS") return std::to_string(ns.inode);
      if (col == "TYPE") return ns.type;
      if (col == "NPROCS") return std::to_string(ns.pids.size());
      if (col == "PID") return std::to_string(ns.pids.front());
      if (col == "USER") return user_name(ns.uid);
      if (col == "COMMAND") return ns.command;
      return ns.container.empty() ? "-" : ns.container;
    };
    if (global.format == "json") {
      json list = json::array();
      for (const auto& ns : shown) {
        json j = json::object();
        for (const auto& col : columns) {
          std::string key = col;
          for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          if (col == "NS") j[key] = ns.inode;
          else if (col == "NPROCS") j[key] = ns.pids.size();
          else if (col == "PID") j[key] = ns.pids.front();
          else if (col == "CONTAINER") j[key] = ns.container.empty() ? json(nullptr) : json(ns.container);
          else j[key] = cell(ns, col);
        }
        list.push_back(j);
      }
      print_json(std::cout, json{{"namespaces", list}});
      return Status();
    }
    Table t(columns);
    for (const auto& ns : shown) {
      std::vector<std::string> row;
      for (const auto& col : columns) row.push_back(cell(ns, col));
      t.add(row);
    }
    t.print(std::cout);
    return Status();
  });
}

}  // namespace berth::cli

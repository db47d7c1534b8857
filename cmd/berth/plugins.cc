// berth plugins ls [-d] [-q] [filters...]
#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::introspection::v1;

std::string status_of(const pb::Plugin& p) {
  if (!p.has_init_err() || p.init_err().code() == 0) return "ok";
  if (p.init_err().message().find("skip plugin") != std::string::npos) return "skip";
  return "error";
}

std::vector<std::string> platforms_of(const pb::Plugin& p) {
  std::vector<std::string> out;
  for (const auto& pl : p.platforms()) {
    std::string s = pl.os() + "/" + pl.architecture();
    if (!pl.variant().empty()) s += "/" + pl.variant();
    out.push_back(s);
  }
  return out;
}

}  // namespace

void add_plugins_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    bool detailed = false;
    bool quiet = false;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* plugins = app.add_subcommand("plugins", "inspect the daemon's plugins");
  plugins->alias("plugin");
  plugins->require_subcommand(1);
  auto* ls = plugins->add_subcommand("ls", "list plugins with their status")->alias("list");
  ls->add_flag("--detailed,-d", o->detailed, "show requirements, exports and errors");
  ls->add_flag("--quiet,-q", o->quiet, "print only the plugin URIs");
  ls->add_option("filters", o->filters, "filters, e.g. type==io.containerd.grpc.v1 or id==version");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::PluginsRequest req;
    for (const auto& f : o->filters) req.add_filters(f);
    pb::PluginsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(
        pb::Introspection::NewStub(c.channel())->Plugins(ctx.get(), req, &resp), "plugins"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& p : resp.plugins()) {
        nlohmann::json j = {
            {"type", p.type()},
            {"id", p.id()},
            {"requires",
             std::vector<std::string>(p.requires_types().begin(), p.requires_types().end())},
            {"platforms", platforms_of(p)},
            {"exports", std::map<std::string, std::string>(p.exports().begin(), p.exports().end())},
            {"capabilities",
             std::vector<std::string>(p.capabilities().begin(), p.capabilities().end())},
            {"status", status_of(p)}};
        if (status_of(p) != "ok") j["error"] = p.init_err().message();
        arr.push_back(std::move(j));
      }
      print_json(std::cout, arr);
      return Status();
    }
    if (o->quiet) {
      for (const auto& p : resp.plugins()) std::cout << p.type() << "." << p.id() << "\n";
      return Status();
    }
    if (o->detailed) {
      bool first = true;
      for (const auto& p : resp.plugins()) {
        if (!first) std::cout << "\n";
        first = false;
        std::cout << "Type:          " << p.type() << "\n"
                  << "ID:            " << p.id() << "\n"
                  << "Status:        " << status_of(p) << "\n";
        if (!p.requires_types().empty()) {
          std::cout << "Requires:\n";
          for (const auto& r : p.requires_types()) std::cout << "               " << r << "\n";
        }
        if (!p.platforms().empty())
          std::cout << "Platforms:     " << join(platforms_of(p), ", ") << "\n";
        if (!p.exports().empty()) {
          std::cout << "Exports:\n";
          std::map<std::string, std::string> sorted(p.exports().begin(), p.exports().end());
          for (const auto& [k, v] : sorted)
            std::cout << "               " << k << "    " << v << "\n";
        }
        if (status_of(p) != "ok") std::cout << "Error:         " << p.init_err().message() << "\n";
      }
      return Status();
    }
    Table t({"TYPE", "ID", "PLATFORMS", "STATUS"});
    for (const auto& p : resp.plugins())
      t.add({p.type(), p.id(), join(platforms_of(p), ","), status_of(p)});
    t.print(std::cout);
    return Status();
  });
}

}  // namespace berth::cli

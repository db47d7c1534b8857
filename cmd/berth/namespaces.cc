// berth namespaces create|ls|rm|label
#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.grpc.pb.h"

namespace berth::cli {
namespace {
namespace pb = ::containerd::services::namespaces::v1;
}

void add_namespaces_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    std::string name;
    std::vector<std::string> labels;
    bool quiet = false;
    std::vector<std::string> names;
    std::string label_name;
    std::vector<std::string> label_args;
  };
  auto o = std::make_shared<Options>();
  auto* ns = app.add_subcommand("namespaces", "manage namespaces");
  ns->alias("namespace")->alias("ns");
  ns->require_subcommand(1);

  auto* create = ns->add_subcommand("create", "create a namespace: NAME [KEY=VALUE...]");
  create->add_option("name", o->name, "namespace name")->required();
  create->add_option("labels", o->labels, "labels KEY=VALUE");
  set_action(create, global, [o](Client& c) -> Status {
    pb::CreateNamespaceRequest req;
    req.mutable_namespace_()->set_name(o->name);
    for (const auto& [k, v] : parse_labels(o->labels))
      (*req.mutable_namespace_()->mutable_labels())[k] = v;
    pb::CreateNamespaceResponse resp;
    auto ctx = c.context();
    return c.check(pb::Namespaces::NewStub(c.channel())->Create(ctx.get(), req, &resp),
                   "create namespace");
  });

  auto* ls = ns->add_subcommand("ls", "list namespaces")->alias("list");
  ls->add_flag("--quiet,-q", o->quiet, "print only the names");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::ListNamespacesResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(pb::Namespaces::NewStub(c.channel())->List(ctx.get(), {}, &resp),
                                  "list namespaces"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& n : resp.namespaces()) {
        arr.push_back(
            {{"name", n.name()},
             {"labels", std::map<std::string, std::string>(n.labels().begin(), n.labels().end())}});
      }
      print_json(std::cout, arr);
    } else if (o->quiet) {
      for (const auto& n : resp.namespaces()) std::cout << n.name() << "\n";
    } else {
      Table t({"NAME", "LABELS"});
      for (const auto& n : resp.namespaces()) {
        t.add({n.name(), join_labels({n.labels().begin(), n.labels().end()})});
      }
      t.print(std::cout);
    }
    return Status();
  });

  auto* rm = ns->add_subcommand("rm", "remove empty namespaces: NAME...")
                 ->alias("remove")
                 ->alias("delete");
  rm->add_option("names", o->names, "namespace names")->required();
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->names, "namespaces", true, [&](const std::string& n) {
      pb::DeleteNamespaceRequest req;
      req.set_name(n);
      google::protobuf::Empty empty;
      auto ctx = c.context();
      return c.check(pb::Namespaces::NewStub(c.channel())->Delete(ctx.get(), req, &empty),
                     "delete namespace");
    });
  });

  auto* label = ns->add_subcommand("label", "set or clear labels: NAME KEY=VALUE... (KEY= clears)");
  label->add_option("name", o->label_name, "namespace name")->required();
  label->add_option("labels", o->label_args, "labels KEY=VALUE");
  set_action(label, global, [o](Client& c) -> Status {
    pb::UpdateNamespaceRequest req;
    if (o->label_args.empty())
      return invalid_argument("no labels given (use KEY=VALUE, or KEY= to clear)");
    req.mutable_namespace_()->set_name(o->label_name);
    for (const auto& [k, v] : parse_labels(o->label_args)) {
      if (!v.empty()) (*req.mutable_namespace_()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    pb::UpdateNamespaceResponse resp;
    auto ctx = c.context();
    return c.check(pb::Namespaces::NewStub(c.channel())->Update(ctx.get(), req, &resp),
                   "label namespace");
  });
}

}  // namespace berth::cli

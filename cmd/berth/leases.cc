// berth leases create|ls|rm
#include <berth/grpc.h>

#include <iostream>
#include <random>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "core/duration.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"

namespace berth::cli {
namespace {
namespace pb = ::containerd::services::leases::v1;

std::string random_id() {
  std::random_device rd;
  return fmt::format("{}-{:06x}",
                     std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count(),
                     rd() & 0xffffff);
}
}  // namespace

void add_leases_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    std::string id;
    std::string expires = "24h";
    std::vector<std::string> labels;
    bool quiet = false;
    std::vector<std::string> filters;
    std::vector<std::string> ids;
    bool sync = false;
  };
  auto o = std::make_shared<Options>();
  auto* leases = app.add_subcommand("leases", "manage leases (holds against garbage collection)");
  leases->alias("lease");
  leases->require_subcommand(1);

  auto* create = leases->add_subcommand("create", "create a lease [KEY=VALUE...]; prints its id");
  create->add_option("--id", o->id, "lease id (default: generated)");
  create->add_option("--expires,-x", o->expires, "expire after this long (0 = never)")
      ->capture_default_str();
  create->add_option("labels", o->labels, "labels KEY=VALUE");
  set_action(create, global, [o](Client& c) -> Status {
    pb::CreateRequest req;
    req.set_id(o->id.empty() ? random_id() : o->id);
    for (const auto& [k, v] : parse_labels(o->labels)) (*req.mutable_labels())[k] = v;
    BERTH_TRY(auto d, core::parse_duration(o->expires));
    if (d.count() > 0) {
      (*req.mutable_labels())["containerd.io/gc.expire"] =
          core::format_rfc3339(std::chrono::system_clock::now() + d);
    }
    pb::CreateResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Leases::NewStub(c.channel())->Create(ctx.get(), req, &resp), "create lease"));
    std::cout << resp.lease().id() << "\n";
    return Status();
  });

  auto* ls = leases->add_subcommand("ls", "list leases [FILTER...]")->alias("list");
  ls->add_flag("--quiet,-q", o->quiet, "print only ids");
  ls->add_option("filters", o->filters, "filters, e.g. id==x");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::ListRequest req;
    for (const auto& f : o->filters) req.add_filters(f);
    pb::ListResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Leases::NewStub(c.channel())->List(ctx.get(), req, &resp), "list leases"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& l : resp.leases()) {
        arr.push_back(
            {{"id", l.id()},
             {"created_at", core::format_rfc3339(from_proto(l.created_at()))},
             {"labels", std::map<std::string, std::string>(l.labels().begin(), l.labels().end())}});
      }
      print_json(std::cout, arr);
    } else if (o->quiet) {
      for (const auto& l : resp.leases()) std::cout << l.id() << "\n";
    } else {
      Table t({"ID", "CREATED", "LABELS"});
      for (const auto& l : resp.leases()) {
        t.add({l.id(), core::format_rfc3339(from_proto(l.created_at())),
               join_labels({l.labels().begin(), l.labels().end()})});
      }
      t.print(std::cout);
    }
    return Status();
  });

  auto* rm = leases->add_subcommand("rm", "delete leases: ID...")->alias("delete");
  rm->add_option("ids", o->ids, "lease ids")->required();
  rm->add_flag("--sync", o->sync, "wait for the garbage collection that reclaims what they held");
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->ids, "leases", true, [&](const std::string& l) {
      pb::DeleteRequest req;
      req.set_id(l);
      req.set_sync(o->sync);
      google::protobuf::Empty e;
      auto ctx = c.context();
      return c.check(pb::Leases::NewStub(c.channel())->Delete(ctx.get(), req, &e), "delete lease");
    });
  });
}

}  // namespace berth::cli

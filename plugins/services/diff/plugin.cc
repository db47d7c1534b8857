// io.containerd.grpc.v1.diff: containerd.services.diff.v1.Diff over the configured differs
// (default ["walking"], the first one that is loaded is used).
//
//   [plugins."io.containerd.grpc.v1.diff"]
//     default = ["walking"]
#include <berth/convert/descriptor.h>
#include <berth/convert/snapshots.h>
#include <berth/diff.h>
#include <berth/grpc.h>

#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::diff::v1;

struct Config {
  std::vector<std::string> order = {"walking"};
};

class DiffService final : public Plugin, public GrpcService, public pb::Diff::Service {
 public:
  explicit DiffService(std::shared_ptr<diff::DifferPlugin> differ) : differ_(std::move(differ)) {}
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Apply(grpc::ServerContext* ctx, const pb::ApplyRequest* req,
                     pb::ApplyResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto applied = differ_->applier().apply(rc, convert::from_proto(req->diff()),
                                              convert::mounts_from_proto(req->mounts()));
      if (!applied.ok()) return applied.status();
      convert::to_proto(*applied, out->mutable_applied());
      return Status();
    });
  }

  grpc::Status Diff(grpc::ServerContext* ctx, const pb::DiffRequest* req,
                    pb::DiffResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto d = differ_->comparer().compare(
          rc, convert::mounts_from_proto(req->left()), convert::mounts_from_proto(req->right()),
          req->media_type(), req->ref(), {req->labels().begin(), req->labels().end()});
      if (!d.ok()) return d.status();
      convert::to_proto(*d, out->mutable_diff());
      return Status();
    });
  }

 private:
  std::shared_ptr<diff::DifferPlugin> differ_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "diff";
  r.requires_types = {std::string(plugin_type::kDiffer)};
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    Config c;
    BERTH_RETURN_IF_ERROR(in.read("default", c.order));
    if (c.order.empty()) return in.invalid("default", "must name at least one differ");
    return config_value(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    Status last;
    for (const auto& id : ic.config<Config>().order) {
      auto p = ic.get_by_id(plugin_type::kDiffer, id);
      if (!p.ok()) {
        last = p.status();
        continue;
      }
      if (auto d = std::dynamic_pointer_cast<diff::DifferPlugin>(*p)) {
        return std::shared_ptr<Plugin>(std::make_shared<DiffService>(d));
      }
    }
    return failed_precondition("none of the configured differs is loaded ({})", last.message());
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

// io.containerd.grpc.v1.leases: containerd.services.leases.v1.Leases over the metadata store.
// Delete with sync=true waits for a garbage collection that starts after the delete.
#include <berth/gc.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::leases::v1;

void to_proto(const leases::Lease& in, pb::Lease* out) {
  out->set_id(in.id);
  berth::to_proto(in.created_at, out->mutable_created_at());
  for (const auto& [k, v] : in.labels) (*out->mutable_labels())[k] = v;
}

class LeasesService final : public Plugin, public GrpcService, public pb::Leases::Service {
 public:
  LeasesService(std::shared_ptr<metadata::MetadataStore> store, std::shared_ptr<gc::Scheduler> gc)
      : store_(std::move(store)), gc_(std::move(gc)) {}

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Create(grpc::ServerContext* ctx, const pb::CreateRequest* req,
                      pb::CreateResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      leases::Lease l;
      l.id = req->id();
      l.labels = {req->labels().begin(), req->labels().end()};
      auto created = store_->leases().create(rc, l);
      if (!created.ok()) return created.status();
      to_proto(*created, out->mutable_lease());
      return Status();
    });
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteRequest* req,
                      google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      if (Status st = store_->leases().remove(rc, req->id()); !st.ok()) return st;
      if (req->sync()) {
        auto stats = gc_ ? gc_->schedule_and_wait() : store_->collector().collect();
        if (!stats.ok())
          return stats.status().with_context("garbage collection after lease delete");
      }
      return Status();
    });
  }

  grpc::Status List(grpc::ServerContext* ctx, const pb::ListRequest* req,
                    pb::ListResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto all = store_->leases().list(rc, {req->filters().begin(), req->filters().end()});
      if (!all.ok()) return all.status();
      for (const auto& l : *all) to_proto(l, out->add_leases());
      return Status();
    });
  }

  grpc::Status AddResource(grpc::ServerContext* ctx, const pb::AddResourceRequest* req,
                           google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      return store_->leases().add_resource(rc, req->id(),
                                           {req->resource().id(), req->resource().type()});
    });
  }

  grpc::Status DeleteResource(grpc::ServerContext* ctx, const pb::DeleteResourceRequest* req,
                              google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      return store_->leases().delete_resource(rc, req->id(),
                                              {req->resource().id(), req->resource().type()});
    });
  }

  grpc::Status ListResources(grpc::ServerContext* ctx, const pb::ListResourcesRequest* req,
                             pb::ListResourcesResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto all = store_->leases().list_resources(rc, req->id());
      if (!all.ok()) return all.status();
      for (const auto& r : *all) {
        auto* res = out->add_resources();
        res->set_id(r.id);
        res->set_type(r.type);
      }
      return Status();
    });
  }

 private:
  std::shared_ptr<metadata::MetadataStore> store_;
  std::shared_ptr<gc::Scheduler> gc_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "leases";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kGc)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    auto gc = ic.get_as<gc::Scheduler>(plugin_type::kGc);
    return std::shared_ptr<Plugin>(
        std::make_shared<LeasesService>(std::move(store), gc.ok() ? *gc : nullptr));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

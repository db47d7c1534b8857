// io.containerd.grpc.v1.containers: containerd.services.containers.v1.Containers over the
// metadata store (Get, List, ListStream, Create, Update with field masks, Delete). Publishes
// /containers/create|update|delete with containerd's payloads.
#include <berth/convert/any.h>
#include <berth/events.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/events/container.pb.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::containers::v1;
using containers::Any;
using containers::Container;

void to_proto(const Container& c, pb::Container* out) {
  out->set_id(c.id);
  for (const auto& [k, v] : c.labels) (*out->mutable_labels())[k] = v;
  out->set_image(c.image);
  out->mutable_runtime()->set_name(c.runtime_name);
  if (c.runtime_options) convert::to_proto(*c.runtime_options, out->mutable_runtime()->mutable_options());
  if (c.spec) convert::to_proto(*c.spec, out->mutable_spec());
  out->set_snapshotter(c.snapshotter);
  out->set_snapshot_key(c.snapshot_key);
  for (const auto& [k, v] : c.extensions) convert::to_proto(v, &(*out->mutable_extensions())[k]);
  berth::to_proto(c.created_at, out->mutable_created_at());
  berth::to_proto(c.updated_at, out->mutable_updated_at());
}

Container from_proto(const pb::Container& in) {
  Container c;
  c.id = in.id();
  c.labels = {in.labels().begin(), in.labels().end()};
  c.image = in.image();
  if (in.has_runtime()) {
    c.runtime_name = in.runtime().name();
    if (in.runtime().has_options()) c.runtime_options = convert::from_proto(in.runtime().options());
  }
  if (in.has_spec()) c.spec = convert::from_proto(in.spec());
  c.snapshotter = in.snapshotter();
  c.snapshot_key = in.snapshot_key();
  for (const auto& [k, v] : in.extensions()) c.extensions[k] = convert::from_proto(v);
  return c;
}

class ContainersService final : public Plugin, public GrpcService, public pb::Containers::Service {
 public:
  ContainersService(std::shared_ptr<metadata::MetadataStore> store,
                    std::shared_ptr<events::Exchange> exchange)
      : store_(std::move(store)), exchange_(std::move(exchange)) {}
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Get(grpc::ServerContext* ctx, const pb::GetContainerRequest* req,
                   pb::GetContainerResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto c = store_->containers().get(rc, req->id());
      if (!c.ok()) return c.status();
      to_proto(*c, out->mutable_container());
      return Status();
    });
  }

  grpc::Status List(grpc::ServerContext* ctx, const pb::ListContainersRequest* req,
                    pb::ListContainersResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto all = store_->containers().list(rc, {req->filters().begin(), req->filters().end()});
      if (!all.ok()) return all.status();
      for (const auto& c : *all) to_proto(c, out->add_containers());
      return Status();
    });
  }

  // One message per container, so a client with a small message limit can list thousands.
  grpc::Status ListStream(grpc::ServerContext* ctx, const pb::ListContainersRequest* req,
                          grpc::ServerWriter<pb::ListContainerMessage>* writer) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto all = store_->containers().list(rc, {req->filters().begin(), req->filters().end()});
      if (!all.ok()) return all.status();
      for (const auto& c : *all) {
        pb::ListContainerMessage m;
        to_proto(c, m.mutable_container());
        if (!writer->Write(m)) return Status(Code::kCancelled, "client went away");
      }
      return Status();
    });
  }

  grpc::Status Create(grpc::ServerContext* ctx, const pb::CreateContainerRequest* req,
                      pb::CreateContainerResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto c = store_->containers().create(rc, from_proto(req->container()));
      if (!c.ok()) return c.status();
      to_proto(*c, out->mutable_container());
      ::containerd::events::ContainerCreate e;
      e.set_id(c->id);
      e.set_image(c->image);
      e.mutable_runtime()->set_name(c->runtime_name);
      if (c->runtime_options) convert::to_proto(*c->runtime_options, e.mutable_runtime()->mutable_options());
      publish(rc, "/containers/create", "containerd.events.ContainerCreate", e);
      return Status();
    });
  }

  grpc::Status Update(grpc::ServerContext* ctx, const pb::UpdateContainerRequest* req,
                      pb::UpdateContainerResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      std::vector<std::string> paths(req->update_mask().paths().begin(),
                                     req->update_mask().paths().end());
      auto c = store_->containers().update(rc, from_proto(req->container()), paths);
      if (!c.ok()) return c.status();
      to_proto(*c, out->mutable_container());
      ::containerd::events::ContainerUpdate e;
      e.set_id(c->id);
      e.set_image(c->image);
      for (const auto& [k, v] : c->labels) (*e.mutable_labels())[k] = v;
      e.set_snapshot_key(c->snapshot_key);
      publish(rc, "/containers/update", "containerd.events.ContainerUpdate", e);
      return Status();
    });
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteContainerRequest* req,
                      google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      if (Status st = store_->containers().remove(rc, req->id()); !st.ok()) return st;
      ::containerd::events::ContainerDelete e;
      e.set_id(req->id());
      publish(rc, "/containers/delete", "containerd.events.ContainerDelete", e);
      return Status();
    });
  }

 private:
  void publish(const RequestContext& rc, const char* topic, const char* type,
               const google::protobuf::Message& m) {
    if (exchange_) exchange_->publish(rc.ns, topic, type, m.SerializeAsString()).ignore();
  }
  std::shared_ptr<metadata::MetadataStore> store_;
  std::shared_ptr<events::Exchange> exchange_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "containers";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kEvent)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    return std::shared_ptr<Plugin>(
        std::make_shared<ContainersService>(std::move(store), exchange.ok() ? *exchange : nullptr));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

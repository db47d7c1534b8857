// io.containerd.grpc.v1.images: containerd.services.images.v1.Images over the metadata store.
// Publishes /images/create|update|delete; Delete with sync waits for a garbage collection.
#include <berth/convert/descriptor.h>
#include <berth/events.h>
#include <berth/gc.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/events/image.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::images::v1;

void to_proto(const images::Image& i, pb::Image* out) {
  out->set_name(i.name);
  for (const auto& [k, v] : i.labels) (*out->mutable_labels())[k] = v;
  convert::to_proto(i.target, out->mutable_target());
  berth::to_proto(i.created_at, out->mutable_created_at());
  berth::to_proto(i.updated_at, out->mutable_updated_at());
}

images::Image from_proto(const pb::Image& in) {
  images::Image i;
  i.name = in.name();
  i.labels = {in.labels().begin(), in.labels().end()};
  i.target = convert::from_proto(in.target());
  return i;
}

class ImagesService final : public Plugin, public GrpcService, public pb::Images::Service {
 public:
  ImagesService(std::shared_ptr<metadata::MetadataStore> store,
                std::shared_ptr<events::Exchange> exchange, std::shared_ptr<gc::Scheduler> gc)
      : store_(std::move(store)), exchange_(std::move(exchange)), gc_(std::move(gc)) {}
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Get(grpc::ServerContext* ctx, const pb::GetImageRequest* req,
                   pb::GetImageResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto i = store_->images().get(rc, req->name());
      if (!i.ok()) return i.status();
      to_proto(*i, out->mutable_image());
      return Status();
    });
  }

  grpc::Status List(grpc::ServerContext* ctx, const pb::ListImagesRequest* req,
                    pb::ListImagesResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto all = store_->images().list(rc, {req->filters().begin(), req->filters().end()});
      if (!all.ok()) return all.status();
      for (const auto& i : *all) to_proto(i, out->add_images());
      return Status();
    });
  }

  grpc::Status Create(grpc::ServerContext* ctx, const pb::CreateImageRequest* req,
                      pb::CreateImageResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      auto i = store_->images().create(rc, from_proto(req->image()));
      if (!i.ok()) return i.status();
      to_proto(*i, out->mutable_image());
      pb::ImageCreate e;
      e.set_name(i->name);
      for (const auto& [k, v] : i->labels) (*e.mutable_labels())[k] = v;
      publish(rc, "/images/create", "containerd.services.images.v1.ImageCreate", e);
      return Status();
    });
  }

  grpc::Status Update(grpc::ServerContext* ctx, const pb::UpdateImageRequest* req,
                      pb::UpdateImageResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      std::vector<std::string> paths(req->update_mask().paths().begin(),
                                     req->update_mask().paths().end());
      auto i = store_->images().update(rc, from_proto(req->image()), paths);
      if (!i.ok()) return i.status();
      to_proto(*i, out->mutable_image());
      pb::ImageUpdate e;
      e.set_name(i->name);
      for (const auto& [k, v] : i->labels) (*e.mutable_labels())[k] = v;
      publish(rc, "/images/update", "containerd.services.images.v1.ImageUpdate", e);
      return Status();
    });
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteImageRequest* req,
                      google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      if (Status st = store_->images().remove(rc, req->name()); !st.ok()) return st;
      pb::ImageDelete e;
      e.set_name(req->name());
      publish(rc, "/images/delete", "containerd.services.images.v1.ImageDelete", e);
      if (req->sync()) {
        auto stats = gc_ ? gc_->schedule_and_wait() : store_->collector().collect();
        if (!stats.ok())
          return stats.status().with_context("garbage collection after image delete");
      }
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
  std::shared_ptr<gc::Scheduler> gc_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "images";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kEvent),
                      std::string(plugin_type::kGc)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    auto gc = ic.get_as<gc::Scheduler>(plugin_type::kGc);
    return std::shared_ptr<Plugin>(std::make_shared<ImagesService>(
        std::move(store), exchange.ok() ? *exchange : nullptr, gc.ok() ? *gc : nullptr));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

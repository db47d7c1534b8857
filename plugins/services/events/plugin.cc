// io.containerd.grpc.v1.events: containerd.services.events.v1.Events over the exchange.
#include <berth/convert/events.h>
#include <berth/events.h>
#include <berth/grpc.h>
#include <berth/ttrpc.h>

#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::events::v1;

class EventsService final : public Plugin,
                            public GrpcService,
                            public TtrpcService,
                            public pb::Events::Service {
 public:
  explicit EventsService(std::shared_ptr<events::Exchange> exchange)
      : exchange_(std::move(exchange)) {}

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  // Shims forward their events over ttrpc (containerd.services.events.ttrpc.v1.Events/Forward).
  std::vector<Method> ttrpc_methods() override {
    return {{"containerd.services.events.ttrpc.v1.Events", "Forward",
             [this](const std::string& payload) -> Result<std::string> {
               ::containerd::services::events::ttrpc::v1::ForwardRequest req;
               if (!req.ParseFromString(payload))
                 return invalid_argument("Forward: malformed request");
               BERTH_RETURN_IF_ERROR(exchange_->forward(convert::envelope_from(req.envelope())));
               return google::protobuf::Empty().SerializeAsString();
             }}};
  }

  grpc::Status Publish(grpc::ServerContext* ctx, const pb::PublishRequest* req,
                       google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) {
      return exchange_->publish(rc.ns, req->topic(), req->event().type_url(), req->event().value());
    });
  }

  grpc::Status Forward(grpc::ServerContext* ctx, const pb::ForwardRequest* req,
                       google::protobuf::Empty*) override {
    return serve_unscoped(ctx, [&] { return exchange_->forward(convert::envelope_from(req->envelope())); });
  }

  grpc::Status Subscribe(grpc::ServerContext* ctx, const pb::SubscribeRequest* req,
                         grpc::ServerWriter<pb::Envelope>* writer) override {
    return serve_unscoped(ctx, [&]() -> Status {
      BERTH_TRY(auto sub, exchange_->subscribe({req->filters().begin(), req->filters().end()}));
      // Poll for the client going away between events, so a dead client frees its queue promptly.
      while (!ctx->IsCancelled()) {
        auto e = sub->next(std::chrono::milliseconds(200));
        if (!e) continue;
        pb::Envelope out;
        to_proto(e->timestamp, out.mutable_timestamp());
        out.set_namespace_(e->ns);
        out.set_topic(e->topic);
        out.mutable_event()->set_type_url(e->type_url);
        out.mutable_event()->set_value(std::move(e->payload));
        if (!writer->Write(out)) break;
      }
      sub->close();
      return Status();
    });
  }

 private:
  std::shared_ptr<events::Exchange> exchange_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "events";
  r.requires_types = {std::string(plugin_type::kEvent)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto exchange, ic.get_as<events::Exchange>(plugin_type::kEvent));
    return std::shared_ptr<Plugin>(std::make_shared<EventsService>(std::move(exchange)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

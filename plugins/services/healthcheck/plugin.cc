// io.containerd.grpc.v1.healthcheck: grpc.health.v1.Health. The daemon is SERVING once the gRPC
// server accepts calls, so Check answers SERVING for the server ("") and for every service name.
#include <berth/grpc.h>

#include <chrono>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::grpc::health::v1;

class HealthService final : public Plugin, public GrpcService, public pb::Health::Service {
 public:
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Check(grpc::ServerContext*, const pb::HealthCheckRequest*,
                     pb::HealthCheckResponse* out) override {
    out->set_status(pb::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* ctx, const pb::HealthCheckRequest*,
                     grpc::ServerWriter<pb::HealthCheckResponse>* writer) override {
    pb::HealthCheckResponse r;
    r.set_status(pb::HealthCheckResponse::SERVING);
    if (!writer->Write(r)) return grpc::Status::OK;
    // The status never changes while the server runs; hold the stream until the client leaves.
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return grpc::Status::OK;
  }
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "healthcheck";
  r.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return std::shared_ptr<Plugin>(std::make_shared<HealthService>());
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

// io.containerd.grpc.v1.version: containerd.services.version.v1.Version.
#include <berth/grpc.h>

#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::version::v1;

class VersionService final : public Plugin, public GrpcService, public pb::Version::Service {
 public:
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Version(grpc::ServerContext*, const google::protobuf::Empty*,
                       pb::VersionResponse* out) override {
    out->set_version(BERTH_VERSION);
    out->set_revision(BERTH_REVISION);
    return grpc::Status::OK;
  }
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "version";
  r.init = [](InitContext&) -> Result<std::shared_ptr<Plugin>> {
    return std::shared_ptr<Plugin>(std::make_shared<VersionService>());
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

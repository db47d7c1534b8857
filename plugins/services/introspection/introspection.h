// containerd.services.introspection.v1.Introspection: every plugin the daemon knows with its
// status, and the server's persistent UUID.
#pragma once

#include <berth/grpc.h>

#include <mutex>

#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.grpc.pb.h"

namespace berth::plugins::services {

class IntrospectionService final
    : public Plugin,
      public GrpcService,
      public ::containerd::services::introspection::v1::Introspection::Service {
 public:
  // `plugins` is the daemon's live plugin set; `uuid_path` is where the server UUID is kept.
  IntrospectionService(const PluginSet& plugins, std::string uuid_path);

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Plugins(grpc::ServerContext*,
                       const ::containerd::services::introspection::v1::PluginsRequest*,
                       ::containerd::services::introspection::v1::PluginsResponse*) override;
  grpc::Status Server(grpc::ServerContext*, const google::protobuf::Empty*,
                      ::containerd::services::introspection::v1::ServerResponse*) override;

  // Reads the UUID, creating and persisting it on first use.
  Result<std::string> uuid();

 private:
  const PluginSet& plugins_;
  std::string uuid_path_;
  std::mutex mu_;
  std::string uuid_;
};

}  // namespace berth::plugins::services

// containerd.services.namespaces.v1.Namespaces over the metadata store.
#pragma once

#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.grpc.pb.h"

namespace berth::plugins::services {

class NamespacesService final : public Plugin,
                                public GrpcService,
                                public ::containerd::services::namespaces::v1::Namespaces::Service {
 public:
  explicit NamespacesService(std::shared_ptr<metadata::MetadataStore> store);

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  using Pb = ::containerd::services::namespaces::v1::Namespace;
  grpc::Status Get(grpc::ServerContext*,
                   const ::containerd::services::namespaces::v1::GetNamespaceRequest*,
                   ::containerd::services::namespaces::v1::GetNamespaceResponse*) override;
  grpc::Status List(grpc::ServerContext*,
                    const ::containerd::services::namespaces::v1::ListNamespacesRequest*,
                    ::containerd::services::namespaces::v1::ListNamespacesResponse*) override;
  grpc::Status Create(grpc::ServerContext*,
                      const ::containerd::services::namespaces::v1::CreateNamespaceRequest*,
                      ::containerd::services::namespaces::v1::CreateNamespaceResponse*) override;
  grpc::Status Update(grpc::ServerContext*,
                      const ::containerd::services::namespaces::v1::UpdateNamespaceRequest*,
                      ::containerd::services::namespaces::v1::UpdateNamespaceResponse*) override;
  grpc::Status Delete(grpc::ServerContext*,
                      const ::containerd::services::namespaces::v1::DeleteNamespaceRequest*,
                      google::protobuf::Empty*) override;

 private:
  std::shared_ptr<metadata::MetadataStore> store_;
};

}  // namespace berth::plugins::services

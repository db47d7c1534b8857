// containerd.services.content.v1.Content over the metadata store's namespaced content view.
#pragma once

#include <berth/events.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"

namespace berth::plugins::services {

class ContentService final : public Plugin,
                             public GrpcService,
                             public ::containerd::services::content::v1::Content::Service {
 public:
  using Svc = ::containerd::services::content::v1::Content::Service;
  // `exchange` may be null (no events published).
  ContentService(std::shared_ptr<metadata::MetadataStore> store,
                 std::shared_ptr<events::Exchange> exchange);

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Info(grpc::ServerContext*, const ::containerd::services::content::v1::InfoRequest*,
                    ::containerd::services::content::v1::InfoResponse*) override;
  grpc::Status Update(grpc::ServerContext*,
                      const ::containerd::services::content::v1::UpdateRequest*,
                      ::containerd::services::content::v1::UpdateResponse*) override;
  grpc::Status List(
      grpc::ServerContext*, const ::containerd::services::content::v1::ListContentRequest*,
      grpc::ServerWriter<::containerd::services::content::v1::ListContentResponse>*) override;
  grpc::Status Delete(grpc::ServerContext*,
                      const ::containerd::services::content::v1::DeleteContentRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Read(
      grpc::ServerContext*, const ::containerd::services::content::v1::ReadContentRequest*,
      grpc::ServerWriter<::containerd::services::content::v1::ReadContentResponse>*) override;
  grpc::Status Status(grpc::ServerContext*,
                      const ::containerd::services::content::v1::StatusRequest*,
                      ::containerd::services::content::v1::StatusResponse*) override;
  grpc::Status ListStatuses(grpc::ServerContext*,
                            const ::containerd::services::content::v1::ListStatusesRequest*,
                            ::containerd::services::content::v1::ListStatusesResponse*) override;
  grpc::Status Write(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<::containerd::services::content::v1::WriteContentResponse,
                               ::containerd::services::content::v1::WriteContentRequest>*) override;
  grpc::Status Abort(grpc::ServerContext*, const ::containerd::services::content::v1::AbortRequest*,
                     google::protobuf::Empty*) override;

 private:
  std::shared_ptr<metadata::MetadataStore> store_;
  std::shared_ptr<events::Exchange> exchange_;
};

}  // namespace berth::plugins::services

// containerd.services.snapshots.v1.Snapshots over the metadata store's namespaced snapshotters;
// the request's `snapshotter` field picks one ("" means overlayfs, containerd's default).
#pragma once

#include <berth/events.h>
#include <berth/grpc.h>
#include <berth/metadata.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::plugins::services {

class SnapshotsService final : public Plugin,
                               public GrpcService,
                               public ::containerd::services::snapshots::v1::Snapshots::Service {
 public:
  SnapshotsService(std::shared_ptr<metadata::MetadataStore> store,
                   std::shared_ptr<events::Exchange> exchange)
      : store_(std::move(store)), exchange_(std::move(exchange)) {}

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

#define BERTH_SNAPSHOTS_RPC(name, req, resp)                                                 \
  grpc::Status name(grpc::ServerContext*, const ::containerd::services::snapshots::v1::req*, \
                    resp*) override;
  BERTH_SNAPSHOTS_RPC(Prepare, PrepareSnapshotRequest,
                      ::containerd::services::snapshots::v1::PrepareSnapshotResponse)
  BERTH_SNAPSHOTS_RPC(View, ViewSnapshotRequest,
                      ::containerd::services::snapshots::v1::ViewSnapshotResponse)
  BERTH_SNAPSHOTS_RPC(Mounts, MountsRequest, ::containerd::services::snapshots::v1::MountsResponse)
  BERTH_SNAPSHOTS_RPC(Commit, CommitSnapshotRequest, google::protobuf::Empty)
  BERTH_SNAPSHOTS_RPC(Remove, RemoveSnapshotRequest, google::protobuf::Empty)
  BERTH_SNAPSHOTS_RPC(Stat, StatSnapshotRequest,
                      ::containerd::services::snapshots::v1::StatSnapshotResponse)
  BERTH_SNAPSHOTS_RPC(Update, UpdateSnapshotRequest,
                      ::containerd::services::snapshots::v1::UpdateSnapshotResponse)
  BERTH_SNAPSHOTS_RPC(Usage, UsageRequest, ::containerd::services::snapshots::v1::UsageResponse)
  BERTH_SNAPSHOTS_RPC(Cleanup, CleanupRequest, google::protobuf::Empty)
#undef BERTH_SNAPSHOTS_RPC
  grpc::Status List(
      grpc::ServerContext*, const ::containerd::services::snapshots::v1::ListSnapshotsRequest*,
      grpc::ServerWriter<::containerd::services::snapshots::v1::ListSnapshotsResponse>*) override;

 private:
  using Snapshotter = snapshots::Snapshotter;
  Result<std::shared_ptr<Snapshotter>> pick(const std::string& name);
  // serve() for a call on one snapshotter ("" = the default).
  template <typename Fn>
  grpc::Status with_snapshotter(grpc::ServerContext* ctx, const std::string& name, Fn fn) {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto sn, pick(name));
      return fn(rc, *sn);
    });
  }
  void publish(const RequestContext& ctx, const char* topic, const char* type,
               const google::protobuf::Message& msg);

  std::shared_ptr<metadata::MetadataStore> store_;
  std::shared_ptr<events::Exchange> exchange_;
};

}  // namespace berth::plugins::services

// Serves a snapshotter over containerd's Snapshots gRPC API: what an out-of-process snapshotter
// implements. The request's `snapshotter` field is ignored (one backend per server).
#pragma once

#include <berth/snapshots.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::snapshotters {

class SnapshotsServer final : public ::containerd::services::snapshots::v1::Snapshots::Service {
 public:
  explicit SnapshotsServer(std::shared_ptr<snapshots::Snapshotter> backend)
      : backend_(std::move(backend)) {}

#define BERTH_RPC(name, req, resp)                                                           \
  grpc::Status name(grpc::ServerContext*, const ::containerd::services::snapshots::v1::req*, \
                    resp*) override;
  BERTH_RPC(Prepare, PrepareSnapshotRequest,
            ::containerd::services::snapshots::v1::PrepareSnapshotResponse)
  BERTH_RPC(View, ViewSnapshotRequest, ::containerd::services::snapshots::v1::ViewSnapshotResponse)
  BERTH_RPC(Mounts, MountsRequest, ::containerd::services::snapshots::v1::MountsResponse)
  BERTH_RPC(Commit, CommitSnapshotRequest, google::protobuf::Empty)
  BERTH_RPC(Remove, RemoveSnapshotRequest, google::protobuf::Empty)
  BERTH_RPC(Stat, StatSnapshotRequest, ::containerd::services::snapshots::v1::StatSnapshotResponse)
  BERTH_RPC(Update, UpdateSnapshotRequest,
            ::containerd::services::snapshots::v1::UpdateSnapshotResponse)
  BERTH_RPC(Usage, UsageRequest, ::containerd::services::snapshots::v1::UsageResponse)
  BERTH_RPC(Cleanup, CleanupRequest, google::protobuf::Empty)
#undef BERTH_RPC
  grpc::Status List(
      grpc::ServerContext*, const ::containerd::services::snapshots::v1::ListSnapshotsRequest*,
      grpc::ServerWriter<::containerd::services::snapshots::v1::ListSnapshotsResponse>*) override;

 private:
  std::shared_ptr<snapshots::Snapshotter> backend_;
};

}  // namespace berth::snapshotters

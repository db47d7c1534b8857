#include "plugins/services/snapshots/snapshots_service.h"

#include <berth/convert/snapshots.h>

#include "github.com/containerd/containerd/api/events/snapshot.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::snapshots::v1;

constexpr const char* kDefaultSnapshotter = "overlayfs";

}  // namespace

Result<std::shared_ptr<snapshots::Snapshotter>> SnapshotsService::pick(const std::string& name) {
  return store_->snapshotter(name.empty() ? kDefaultSnapshotter : name);
}

void SnapshotsService::publish(const RequestContext& ctx, const char* topic, const char* type,
                               const google::protobuf::Message& msg) {
  if (exchange_) exchange_->publish(ctx.ns, topic, type, msg.SerializeAsString()).ignore();
}

grpc::Status SnapshotsService::Prepare(grpc::ServerContext* ctx,
                                       const pb::PrepareSnapshotRequest* req,
                                       pb::PrepareSnapshotResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    auto mounts =
        sn.prepare(rc, req->key(), req->parent(), {req->labels().begin(), req->labels().end()});
    if (!mounts.ok()) return mounts.status();
    for (const auto& m : *mounts) convert::to_proto(m, out->add_mounts());
    ::containerd::events::SnapshotPrepare e;
    e.set_key(req->key());
    e.set_parent(req->parent());
    publish(rc, "/snapshot/prepare", "containerd.events.SnapshotPrepare", e);
    return Status();
  });
}

grpc::Status SnapshotsService::View(grpc::ServerContext* ctx, const pb::ViewSnapshotRequest* req,
                                    pb::ViewSnapshotResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    auto mounts =
        sn.view(rc, req->key(), req->parent(), {req->labels().begin(), req->labels().end()});
    if (!mounts.ok()) return mounts.status();
    for (const auto& m : *mounts) convert::to_proto(m, out->add_mounts());
    return Status();
  });
}

grpc::Status SnapshotsService::Mounts(grpc::ServerContext* ctx, const pb::MountsRequest* req,
                                      pb::MountsResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    auto mounts = sn.mounts(rc, req->key());
    if (!mounts.ok()) return mounts.status();
    for (const auto& m : *mounts) convert::to_proto(m, out->add_mounts());
    return Status();
  });
}

grpc::Status SnapshotsService::Commit(grpc::ServerContext* ctx,
                                      const pb::CommitSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    if (Status st =
            sn.commit(rc, req->name(), req->key(), {req->labels().begin(), req->labels().end()});
        !st.ok()) {
      return st;
    }
    ::containerd::events::SnapshotCommit e;
    e.set_key(req->key());
    e.set_name(req->name());
    publish(rc, "/snapshot/commit", "containerd.events.SnapshotCommit", e);
    return Status();
  });
}

grpc::Status SnapshotsService::Remove(grpc::ServerContext* ctx,
                                      const pb::RemoveSnapshotRequest* req,
                                      google::protobuf::Empty*) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    if (Status st = sn.remove(rc, req->key()); !st.ok()) return st;
    ::containerd::events::SnapshotRemove e;
    e.set_key(req->key());
    publish(rc, "/snapshot/remove", "containerd.events.SnapshotRemove", e);
    return Status();
  });
}

grpc::Status SnapshotsService::Stat(grpc::ServerContext* ctx, const pb::StatSnapshotRequest* req,
                                    pb::StatSnapshotResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    auto info = sn.stat(rc, req->key());
    if (!info.ok()) return info.status();
    convert::to_proto(*info, out->mutable_info());
    return Status();
  });
}

grpc::Status SnapshotsService::Update(grpc::ServerContext* ctx,
                                      const pb::UpdateSnapshotRequest* req,
                                      pb::UpdateSnapshotResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    auto info = sn.update(rc, convert::from_proto(req->info()), paths);
    if (!info.ok()) return info.status();
    convert::to_proto(*info, out->mutable_info());
    return Status();
  });
}

grpc::Status SnapshotsService::Usage(grpc::ServerContext* ctx, const pb::UsageRequest* req,
                                     pb::UsageResponse* out) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    auto u = sn.usage(rc, req->key());
    if (!u.ok()) return u.status();
    out->set_size(u->size);
    out->set_inodes(u->inodes);
    return Status();
  });
}

grpc::Status SnapshotsService::Cleanup(grpc::ServerContext* ctx, const pb::CleanupRequest* req,
                                       google::protobuf::Empty*) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    return sn.cleanup(rc);
  });
}

grpc::Status SnapshotsService::List(grpc::ServerContext* ctx, const pb::ListSnapshotsRequest* req,
                                    grpc::ServerWriter<pb::ListSnapshotsResponse>* writer) {
  return with_snapshotter(ctx, req->snapshotter(), [&](const RequestContext& rc, Snapshotter& sn) -> Status {
    pb::ListSnapshotsResponse batch;
    bool gone = false;
    Status st = sn.walk(rc, {req->filters().begin(), req->filters().end()},
                        [&](const snapshots::Info& i) -> Status {
                          convert::to_proto(i, batch.add_info());
                          if (batch.info_size() >= 100) {
                            if (!writer->Write(batch)) {
                              gone = true;
                              return Status(Code::kCancelled, "client went away");
                            }
                            batch.Clear();
                          }
                          return Status();
                        });
    if (gone) return Status(Code::kCancelled, "client went away");
    if (!st.ok()) return st;
    if (batch.info_size() > 0) writer->Write(batch);
    return Status();
  });
}

}  // namespace berth::plugins::services

#include "snapshotters/proxy/server.h"

#include <berth/convert/snapshots.h>

namespace berth::snapshotters {
namespace {
namespace pb = ::containerd::services::snapshots::v1;
const RequestContext kNoNamespace{};
}  // namespace

grpc::Status SnapshotsServer::Prepare(grpc::ServerContext*, const pb::PrepareSnapshotRequest* req,
                                      pb::PrepareSnapshotResponse* out) {
  auto m = backend_->prepare(kNoNamespace, req->key(), req->parent(),
                             {req->labels().begin(), req->labels().end()});
  if (!m.ok()) return to_grpc(m.status());
  for (const auto& x : *m) convert::to_proto(x, out->add_mounts());
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::View(grpc::ServerContext*, const pb::ViewSnapshotRequest* req,
                                   pb::ViewSnapshotResponse* out) {
  auto m = backend_->view(kNoNamespace, req->key(), req->parent(),
                          {req->labels().begin(), req->labels().end()});
  if (!m.ok()) return to_grpc(m.status());
  for (const auto& x : *m) convert::to_proto(x, out->add_mounts());
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::Mounts(grpc::ServerContext*, const pb::MountsRequest* req,
                                     pb::MountsResponse* out) {
  auto m = backend_->mounts(kNoNamespace, req->key());
  if (!m.ok()) return to_grpc(m.status());
  for (const auto& x : *m) convert::to_proto(x, out->add_mounts());
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::Commit(grpc::ServerContext*, const pb::CommitSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return to_grpc(backend_->commit(kNoNamespace, req->name(), req->key(),
                                  {req->labels().begin(), req->labels().end()}));
}

grpc::Status SnapshotsServer::Remove(grpc::ServerContext*, const pb::RemoveSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return to_grpc(backend_->remove(kNoNamespace, req->key()));
}

grpc::Status SnapshotsServer::Stat(grpc::ServerContext*, const pb::StatSnapshotRequest* req,
                                   pb::StatSnapshotResponse* out) {
  auto i = backend_->stat(kNoNamespace, req->key());
  if (!i.ok()) return to_grpc(i.status());
  convert::to_proto(*i, out->mutable_info());
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::Update(grpc::ServerContext*, const pb::UpdateSnapshotRequest* req,
                                     pb::UpdateSnapshotResponse* out) {
  auto i = backend_->update(kNoNamespace, convert::from_proto(req->info()),
                            {req->update_mask().paths().begin(), req->update_mask().paths().end()});
  if (!i.ok()) return to_grpc(i.status());
  convert::to_proto(*i, out->mutable_info());
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::Usage(grpc::ServerContext*, const pb::UsageRequest* req,
                                    pb::UsageResponse* out) {
  auto u = backend_->usage(kNoNamespace, req->key());
  if (!u.ok()) return to_grpc(u.status());
  out->set_size(u->size);
  out->set_inodes(u->inodes);
  return grpc::Status::OK;
}

grpc::Status SnapshotsServer::Cleanup(grpc::ServerContext*, const pb::CleanupRequest*,
                                      google::protobuf::Empty*) {
  return to_grpc(backend_->cleanup(kNoNamespace));
}

grpc::Status SnapshotsServer::List(grpc::ServerContext*, const pb::ListSnapshotsRequest* req,
                                   grpc::ServerWriter<pb::ListSnapshotsResponse>* writer) {
  pb::ListSnapshotsResponse batch;
  Status st = backend_->walk(kNoNamespace, {req->filters().begin(), req->filters().end()},
                             [&](const snapshots::Info& i) -> Status {
                               convert::to_proto(i, batch.add_info());
                               if (batch.info_size() >= 100) {
                                 if (!writer->Write(batch))
                                   return Status(Code::kCancelled, "client went away");
                                 batch.Clear();
                               }
                               return Status();
                             });
  if (!st.ok()) return to_grpc(st);
  if (batch.info_size() > 0) writer->Write(batch);
  return grpc::Status::OK;
}

}  // namespace berth::snapshotters

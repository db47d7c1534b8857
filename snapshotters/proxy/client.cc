#include "snapshotters/proxy/client.h"

#include <berth/convert/snapshots.h>

namespace berth::snapshotters {
namespace {
namespace pb = ::containerd::services::snapshots::v1;
}

ProxySnapshotter::ProxySnapshotter(std::string name, const std::string& address)
    : name_(std::move(name)), address_(address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 3000);
  stub_ = pb::Snapshots::NewStub(
      grpc::CreateCustomChannel("unix:" + address, grpc::InsecureChannelCredentials(), args));
}

std::unique_ptr<grpc::ClientContext> ProxySnapshotter::context(const RequestContext& ctx) const {
  auto c = std::make_unique<grpc::ClientContext>();
  if (!ctx.ns.empty()) c->AddMetadata(kNamespaceHeader, ctx.ns);
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  c->set_wait_for_ready(false);
  return c;
}

Status ProxySnapshotter::check(const grpc::Status& s, std::string_view what) const {
  if (s.ok()) return Status();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return unavailable("proxy snapshotter {} at \"{}\": {}: {}", name_, address_, what,
                       s.error_message());
  }
  return from_grpc(s);
}

Result<snapshots::Info> ProxySnapshotter::stat(const RequestContext& ctx, std::string_view key) {
  pb::StatSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  pb::StatSnapshotResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->Stat(c.get(), req, &resp), "stat"));
  return convert::from_proto(resp.info());
}

Result<snapshots::Info> ProxySnapshotter::update(const RequestContext& ctx,
                                                 const snapshots::Info& info,
                                                 const std::vector<std::string>& paths) {
  pb::UpdateSnapshotRequest req;
  req.set_snapshotter(name_);
  convert::to_proto(info, req.mutable_info());
  for (const auto& p : paths) req.mutable_update_mask()->add_paths(p);
  pb::UpdateSnapshotResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->Update(c.get(), req, &resp), "update"));
  return convert::from_proto(resp.info());
}

Result<snapshots::Usage> ProxySnapshotter::usage(const RequestContext& ctx, std::string_view key) {
  pb::UsageRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  pb::UsageResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->Usage(c.get(), req, &resp), "usage"));
  return snapshots::Usage{resp.size(), resp.inodes()};
}

Result<std::vector<Mount>> ProxySnapshotter::mounts(const RequestContext& ctx,
                                                    std::string_view key) {
  pb::MountsRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  pb::MountsResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->Mounts(c.get(), req, &resp), "mounts"));
  return convert::mounts_from_proto(resp.mounts());
}

Result<std::vector<Mount>> ProxySnapshotter::prepare(
    const RequestContext& ctx, std::string_view key, std::string_view parent,
    const std::map<std::string, std::string>& labels) {
  pb::PrepareSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  req.set_parent(std::string(parent));
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  pb::PrepareSnapshotResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->Prepare(c.get(), req, &resp), "prepare"));
  return convert::mounts_from_proto(resp.mounts());
}

Result<std::vector<Mount>> ProxySnapshotter::view(
    const RequestContext& ctx, std::string_view key, std::string_view parent,
    const std::map<std::string, std::string>& labels) {
  pb::ViewSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  req.set_parent(std::string(parent));
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  pb::ViewSnapshotResponse resp;
  auto c = context(ctx);
  BERTH_RETURN_IF_ERROR(check(stub_->View(c.get(), req, &resp), "view"));
  return convert::mounts_from_proto(resp.mounts());
}

Status ProxySnapshotter::commit(const RequestContext& ctx, std::string_view name,
                                std::string_view key,
                                const std::map<std::string, std::string>& labels) {
  pb::CommitSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_name(std::string(name));
  req.set_key(std::string(key));
  for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
  google::protobuf::Empty e;
  auto c = context(ctx);
  return check(stub_->Commit(c.get(), req, &e), "commit");
}

Status ProxySnapshotter::remove(const RequestContext& ctx, std::string_view key) {
  pb::RemoveSnapshotRequest req;
  req.set_snapshotter(name_);
  req.set_key(std::string(key));
  google::protobuf::Empty e;
  auto c = context(ctx);
  return check(stub_->Remove(c.get(), req, &e), "remove");
}

Status ProxySnapshotter::walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                              const snapshots::WalkFn& fn) {
  pb::ListSnapshotsRequest req;
  req.set_snapshotter(name_);
  for (const auto& f : filters) req.add_filters(f);
  auto c = context(ctx);
  auto reader = stub_->List(c.get(), req);
  pb::ListSnapshotsResponse resp;
  std::vector<snapshots::Info> all;
  while (reader->Read(&resp)) {
    for (const auto& i : resp.info()) all.push_back(convert::from_proto(i));
  }
  BERTH_RETURN_IF_ERROR(check(reader->Finish(), "list"));
  for (const auto& i : all) BERTH_RETURN_IF_ERROR(fn(i));
  return Status();
}

Status ProxySnapshotter::cleanup(const RequestContext& ctx) {
  pb::CleanupRequest req;
  req.set_snapshotter(name_);
  google::protobuf::Empty e;
  auto c = context(ctx);
  grpc::Status s = stub_->Cleanup(c.get(), req, &e);
  // Cleanup is optional for a proxy (containerd treats Unimplemented as fine).
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) return Status();
  return check(s, "cleanup");
}

}  // namespace berth::snapshotters

#include "cmd/berth/unpack_stores.h"

#include <berth/convert/descriptor.h>
#include <berth/convert/snapshots.h>

#include "cmd/berth/image_client.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::cli {

namespace dpb = ::containerd::services::diff::v1;
namespace lpb = ::containerd::services::leases::v1;
namespace spb = ::containerd::services::snapshots::v1;

Status UnpackStores::stat(const std::string& name) {
  spb::StatSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(name);
  spb::StatSnapshotResponse resp;
  auto ctx = c_.context(lease_);
  return c_.check(spb::Snapshots::NewStub(c_.channel())->Stat(ctx.get(), req, &resp),
                  "stat snapshot " + name);
}

Result<std::vector<Mount>> UnpackStores::prepare(const std::string& key,
                                                 const std::string& parent) {
  spb::PrepareSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_key(key);
  req.set_parent(parent);
  spb::PrepareSnapshotResponse resp;
  auto ctx = c_.context(lease_);
  BERTH_RETURN_IF_ERROR(
      c_.check(spb::Snapshots::NewStub(c_.channel())->Prepare(ctx.get(), req, &resp),
               "prepare snapshot " + key));
  return convert::mounts_from_proto(resp.mounts());
}

Result<std::string> UnpackStores::apply(const diff::Descriptor& layer,
                                        const std::vector<Mount>& mounts) {
  dpb::ApplyRequest req;
  convert::to_proto(layer, req.mutable_diff());
  for (const auto& m : mounts) convert::to_proto(m, req.add_mounts());
  dpb::ApplyResponse resp;
  auto ctx = c_.context(lease_);
  ctx->set_deadline(std::chrono::system_clock::time_point::max());  // as long as the layer takes
  BERTH_RETURN_IF_ERROR(c_.check(dpb::Diff::NewStub(c_.channel())->Apply(ctx.get(), req, &resp),
                                 "apply layer " + layer.digest));
  return resp.applied().digest();
}

Status UnpackStores::commit(const std::string& name, const std::string& key) {
  spb::CommitSnapshotRequest req;
  req.set_snapshotter(snapshotter_);
  req.set_name(name);
  req.set_key(key);
  google::protobuf::Empty e;
  auto ctx = c_.context(lease_);
  return c_.check(spb::Snapshots::NewStub(c_.channel())->Commit(ctx.get(), req, &e),
                  "commit snapshot " + name);
}

Status UnpackStores::remove(const std::string& key) {
  return remove_snapshot(c_, snapshotter_, key);
}

Status UnpackStores::lease(const std::string& name) {
  if (lease_.empty()) return Status();
  lpb::AddResourceRequest req;
  req.set_id(lease_);
  req.mutable_resource()->set_id(name);
  req.mutable_resource()->set_type("snapshots/" + snapshotter_);
  google::protobuf::Empty e;
  auto ctx = c_.context();
  return c_.check(lpb::Leases::NewStub(c_.channel())->AddResource(ctx.get(), req, &e),
                  "add snapshot " + name + " to lease " + lease_);
}

Status UnpackStores::label(const std::string& digest,
                           const std::map<std::string, std::string>& labels) {
  return label_content(c_, digest, labels, lease_);
}

}  // namespace berth::cli

// Conversions between the SDK's snapshot types and containerd's protos, shared by the Snapshots
// service, the proxy snapshotter client and test servers.
#pragma once

#include <berth/grpc.h>
#include <berth/convert/mount.h>
#include <berth/snapshots.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb.h"

namespace berth::convert {

inline void to_proto(const snapshots::Info& i, ::containerd::services::snapshots::v1::Info* out) {
  out->set_name(i.name);
  out->set_parent(i.parent);
  out->set_kind(static_cast<::containerd::services::snapshots::v1::Kind>(i.kind));
  berth::to_proto(i.created, out->mutable_created_at());
  berth::to_proto(i.updated, out->mutable_updated_at());
  for (const auto& [k, v] : i.labels) (*out->mutable_labels())[k] = v;
}

inline snapshots::Info from_proto(const ::containerd::services::snapshots::v1::Info& i) {
  snapshots::Info out;
  out.name = i.name();
  out.parent = i.parent();
  out.kind = static_cast<snapshots::Kind>(i.kind());
  out.created = berth::from_proto(i.created_at());
  out.updated = berth::from_proto(i.updated_at());
  out.labels = {i.labels().begin(), i.labels().end()};
  return out;
}

}  // namespace berth::convert

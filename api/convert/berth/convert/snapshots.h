// Conversions between the SDK's snapshot types and containerd's protos, shared by the Snapshots
// service, the proxy snapshotter client and test servers.
#pragma once

#include <berth/grpc.h>
#include <berth/snapshots.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb.h"
#include "github.com/containerd/containerd/api/types/mount.pb.h"

namespace berth::convert {

inline void to_proto(const Mount& m, ::containerd::types::Mount* out) {
  out->set_type(m.type);
  out->set_source(m.source);
  out->set_target(m.target);
  for (const auto& o : m.options) out->add_options(o);
}

inline Mount from_proto(const ::containerd::types::Mount& m) {
  return Mount{m.type(), m.source(), m.target(), {m.options().begin(), m.options().end()}};
}

template <typename Repeated>
std::vector<Mount> mounts_from_proto(const Repeated& in) {
  std::vector<Mount> out;
  for (const auto& m : in) out.push_back(from_proto(m));
  return out;
}

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

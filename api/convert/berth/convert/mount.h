// Mount <-> containerd.types.Mount, at every hop of a run: the Snapshots and Tasks services, the
// runtime plugin's shim requests, the shim. Needs protobuf only (the static shim includes it).
#pragma once

#include <berth/mount.h>

#include <vector>

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

template <typename Repeated>
void mounts_to_proto(const std::vector<Mount>& in, Repeated* out) {
  for (const auto& m : in) to_proto(m, out->Add());
}

}  // namespace berth::convert

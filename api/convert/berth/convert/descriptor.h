// Descriptor conversions (containerd.types.Descriptor <-> berth::diff::Descriptor).
#pragma once

#include <berth/diff.h>

#include "github.com/containerd/containerd/api/types/descriptor.pb.h"

namespace berth::convert {

inline void to_proto(const diff::Descriptor& d, ::containerd::types::Descriptor* out) {
  out->set_media_type(d.media_type);
  out->set_digest(d.digest);
  out->set_size(d.size);
  for (const auto& [k, v] : d.annotations) (*out->mutable_annotations())[k] = v;
}

inline diff::Descriptor from_proto(const ::containerd::types::Descriptor& d) {
  diff::Descriptor out;
  out.media_type = d.media_type();
  out.digest = d.digest();
  out.size = d.size();
  out.annotations = {d.annotations().begin(), d.annotations().end()};
  return out;
}

}  // namespace berth::convert

// Any (specs, options, resources, stats as the SDK carries them) <-> google.protobuf.Any.
#pragma once

#include <berth/containers.h>
#include <google/protobuf/any.pb.h>

namespace berth::convert {

inline void to_proto(const containers::Any& a, google::protobuf::Any* out) {
  out->set_type_url(a.type_url);
  out->set_value(a.value);
}

inline containers::Any from_proto(const google::protobuf::Any& a) {
  return {a.type_url(), a.value()};
}

}  // namespace berth::convert

// Timestamp <-> google.protobuf.Timestamp, the one conversion every service, the runtime plugin
// and the shim use. Needs protobuf only (no gRPC), so the static shim can include it.
#pragma once

#include <berth/context.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>

namespace berth {

inline void to_proto(Timestamp t, google::protobuf::Timestamp* out) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  out->set_seconds(ns / 1'000'000'000);
  out->set_nanos(static_cast<int>(ns % 1'000'000'000));
}

inline Timestamp from_proto(const google::protobuf::Timestamp& t) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

}  // namespace berth

// An event envelope from its proto (containerd.services.events.v1.Envelope, or the identical
// ttrpc one shims send), for the events service and the runtime's dead-shim cleanup.
#pragma once

#include <berth/events.h>
#include <berth/grpc.h>

namespace berth::convert {

template <typename ProtoEnvelope>
events::Envelope envelope_from(const ProtoEnvelope& in) {
  events::Envelope e;
  e.timestamp = berth::from_proto(in.timestamp());
  e.ns = in.namespace_();
  e.topic = in.topic();
  e.type_url = in.event().type_url();
  e.payload = in.event().value();
  return e;
}

}  // namespace berth::convert

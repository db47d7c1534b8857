// How each kind of object is stored: one JSON document per key. Times are Unix nanoseconds.
// Unknown fields are kept out of the way (ignored on read), so newer versions can add fields.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <map>
#include <string>

namespace berth::plugins::metadata {

using Labels = std::map<std::string, std::string>;

// CF "content", key <ns>\0<digest>
struct ContentRecord {
  std::int64_t size = 0;
  std::int64_t created = 0;
  std::int64_t updated = 0;
  Labels labels;
};

// CF "ingests", key <ns>\0<ref>
struct IngestRecord {
  std::string backend_ref;   // the ref in the backend store, unique across namespaces
  std::int64_t expires = 0;  // 0: held by a lease instead
  std::string expected;
};

// CF "leases", key <ns>\0<id>; resources in CF "lease_resources", key
// <ns>\0<lease>\0<type>\0<id>, empty value.
struct LeaseRecord {
  std::int64_t created = 0;
  Labels labels;
};

// CF "images", key <ns>\0<name> (written by the images store; GC reads the target and labels).
struct ImageRecord {
  std::string target_digest;
  Labels labels;
};

// CF "containers", key <ns>\0<id> (written by the containers store; GC reads these fields).
struct ContainerRecord {
  std::string snapshotter;
  std::string snapshot_key;
  Labels labels;
};

std::string encode(const ContentRecord& r);
std::string encode(const IngestRecord& r);
std::string encode(const LeaseRecord& r);
Result<ContentRecord> decode_content(std::string_view v);
Result<IngestRecord> decode_ingest(std::string_view v);
Result<LeaseRecord> decode_lease(std::string_view v);
Result<ImageRecord> decode_image(std::string_view v);
Result<ContainerRecord> decode_container(std::string_view v);

}  // namespace berth::plugins::metadata

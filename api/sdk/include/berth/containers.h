// Container records: the metadata of a container (image, runtime, spec, snapshot, labels,
// extensions) in a namespace. A record is not a running task; tasks come from the runtime.
#pragma once

#include <berth/context.h>
#include <berth/plugin.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::containers {

// A google.protobuf.Any kept as is (type URL and serialized bytes).
struct Any {
  std::string type_url;
  std::string value;
  bool operator==(const Any&) const = default;
};

struct Container {
  std::string id;
  std::map<std::string, std::string> labels;
  std::string image;
  std::string runtime_name;
  std::optional<Any> runtime_options;
  std::optional<Any> spec;
  std::string snapshotter;
  std::string snapshot_key;
  std::map<std::string, Any> extensions;
  Timestamp created_at;
  Timestamp updated_at;
};

class BERTH_API Store {
 public:
  virtual ~Store() = default;
  virtual Result<Container> get(const RequestContext& ctx, std::string_view id) = 0;
  // Filters over id, image, runtime.name, snapshotter, labels.<key>.
  virtual Result<std::vector<Container>> list(const RequestContext& ctx,
                                              const std::vector<std::string>& filters) = 0;
  // AlreadyExists when the id is taken; InvalidArgument for a bad id or a missing runtime name.
  virtual Result<Container> create(const RequestContext& ctx, const Container& c) = 0;
  // Paths: labels, labels.<key>, image, spec, snapshotkey, extensions, extensions.<key>
  // (none: labels, image, spec, snapshotkey and extensions). runtime and snapshotter are fixed.
  virtual Result<Container> update(const RequestContext& ctx, const Container& c,
                                   const std::vector<std::string>& paths) = 0;
  virtual Status remove(const RequestContext& ctx, std::string_view id) = 0;
};

}  // namespace berth::containers

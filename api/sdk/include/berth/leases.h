// Leases: named holds on content, ingests and snapshots that keep them from garbage collection.
// Labels containerd.io/gc.expire (RFC 3339 time) and containerd.io/gc.flat are honoured by GC.
#pragma once

#include <berth/context.h>
#include <berth/plugin.h>

#include <map>
#include <string>
#include <vector>

namespace berth::leases {

inline constexpr std::string_view kExpireLabel = "containerd.io/gc.expire";
inline constexpr std::string_view kFlatLabel = "containerd.io/gc.flat";

struct Lease {
  std::string id;
  Timestamp created_at;
  std::map<std::string, std::string> labels;
};

// type is "content", "ingests" or "snapshots/<snapshotter>".
struct Resource {
  std::string id;
  std::string type;
  bool operator<(const Resource& o) const { return std::tie(type, id) < std::tie(o.type, o.id); }
};

class BERTH_API Manager {
 public:
  virtual ~Manager() = default;
  // InvalidArgument for a bad id or label, AlreadyExists when taken.
  virtual Result<Lease> create(const RequestContext& ctx, const Lease& lease) = 0;
  // NotFound when absent. Resources are released (collected by the next GC).
  virtual Status remove(const RequestContext& ctx, std::string_view id) = 0;
  // Filters over id and labels.<key>.
  virtual Result<std::vector<Lease>> list(const RequestContext& ctx,
                                          const std::vector<std::string>& filters) = 0;
  virtual Status add_resource(const RequestContext& ctx, std::string_view lease,
                              const Resource& r) = 0;
  virtual Status delete_resource(const RequestContext& ctx, std::string_view lease,
                                 const Resource& r) = 0;
  virtual Result<std::vector<Resource>> list_resources(const RequestContext& ctx,
                                                       std::string_view lease) = 0;
};

}  // namespace berth::leases

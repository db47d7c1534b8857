// Leases in the metadata store: CF "leases" holds the lease, CF "lease_resources" one key per
// resource (<ns>\0<lease>\0<type>\0<id>), so adding a resource is one Put with no
// read-modify-write.
#pragma once

#include <berth/leases.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

class LeaseStore final : public berth::leases::Manager {
 public:
  explicit LeaseStore(RocksStore& db) : db_(db) {}

  Result<berth::leases::Lease> create(const RequestContext& ctx,
                                      const berth::leases::Lease& lease) override;
  Status remove(const RequestContext& ctx, std::string_view id) override;
  Result<std::vector<berth::leases::Lease>> list(const RequestContext& ctx,
                                                 const std::vector<std::string>& filters) override;
  Status add_resource(const RequestContext& ctx, std::string_view lease,
                      const berth::leases::Resource& r) override;
  Status delete_resource(const RequestContext& ctx, std::string_view lease,
                         const berth::leases::Resource& r) override;
  Result<std::vector<berth::leases::Resource>> list_resources(const RequestContext& ctx,
                                                              std::string_view lease) override;

 private:
  Status check(const RequestContext& ctx) const;
  Status require_lease(const RequestContext& ctx, std::string_view id);
  Status change_resource(const RequestContext& ctx, std::string_view lease,
                         const berth::leases::Resource& r, bool add);

  RocksStore& db_;
};

Status validate_resource(const berth::leases::Resource& r);

}  // namespace berth::plugins::metadata

// Container records in the "containers" family, key <ns>\0<id>. The value is JSON; the fields the
// garbage collector reads (snapshotter, snapshot_key, labels) are top-level, protobuf Anys (spec,
// runtime options, extensions) are kept as type URL + hex bytes.
#pragma once

#include <berth/containers.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

class ContainerStore final : public berth::containers::Store {
 public:
  explicit ContainerStore(RocksStore& db) : db_(db) {}
  Result<berth::containers::Container> get(const RequestContext& ctx, std::string_view id) override;
  Result<std::vector<berth::containers::Container>> list(
      const RequestContext& ctx, const std::vector<std::string>& filters) override;
  Result<berth::containers::Container> create(const RequestContext& ctx,
                                              const berth::containers::Container& c) override;
  Result<berth::containers::Container> update(const RequestContext& ctx,
                                              const berth::containers::Container& c,
                                              const std::vector<std::string>& paths) override;
  Status remove(const RequestContext& ctx, std::string_view id) override;

 private:
  Status check(const RequestContext& ctx, std::string_view id) const;
  RocksStore& db_;
};

}  // namespace berth::plugins::metadata

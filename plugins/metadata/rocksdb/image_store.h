// Image records in the "images" family, key <ns>\0<name>; the value carries the target
// descriptor and labels the garbage collector marks from.
#pragma once

#include <berth/images.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

class ImageStore final : public berth::images::Store {
 public:
  explicit ImageStore(RocksStore& db) : db_(db) {}
  Result<berth::images::Image> get(const RequestContext& ctx, std::string_view name) override;
  Result<std::vector<berth::images::Image>> list(const RequestContext& ctx,
                                                 const std::vector<std::string>& filters) override;
  Result<berth::images::Image> create(const RequestContext& ctx,
                                      const berth::images::Image& image) override;
  Result<berth::images::Image> update(const RequestContext& ctx, const berth::images::Image& image,
                                      const std::vector<std::string>& paths) override;
  Status remove(const RequestContext& ctx, std::string_view name) override;

 private:
  Status check(const RequestContext& ctx, std::string_view name) const;
  RocksStore& db_;
};

}  // namespace berth::plugins::metadata

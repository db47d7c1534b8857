// The namespaced view of the backend content store: a blob is visible in a namespace only when
// that namespace has a record for it; labels live here, bytes in the backend. Ingest refs are
// per namespace and map to unique backend refs.
#pragma once

#include <berth/content.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {

class ContentView final : public content::Store {
 public:
  explicit ContentView(RocksStore& db) : db_(db) {}

  Result<content::Info> info(const RequestContext& ctx, std::string_view digest) override;
  Result<content::Info> update(const RequestContext& ctx, const content::Info& info,
                               const std::vector<std::string>& paths) override;
  Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
              const content::WalkFn& fn) override;
  Status remove(const RequestContext& ctx, std::string_view digest) override;
  Result<std::unique_ptr<content::ReaderAt>> reader(const RequestContext& ctx,
                                                    std::string_view digest) override;
  Result<content::IngestStatus> status(const RequestContext& ctx, std::string_view ref) override;
  Result<std::vector<content::IngestStatus>> list_statuses(
      const RequestContext& ctx, const std::vector<std::string>& filters) override;
  Status abort(const RequestContext& ctx, std::string_view ref) override;
  Result<std::unique_ptr<content::Writer>> writer(const RequestContext& ctx,
                                                  const content::WriterOptions& options) override;

 private:
  class NsWriter;
  Status check(const RequestContext& ctx) const;
  Result<content::Store*> backend() const;
  // Records `digest` (present in the backend) in ctx.ns; AlreadyExists when it already was.
  Status link(const RequestContext& ctx, std::string_view digest, std::int64_t size,
              const Labels& labels, std::string_view ingest_ref_to_drop);

  RocksStore& db_;
};

}  // namespace berth::plugins::metadata

// `unpack::Stores` inside the daemon: the metadata store's view of a snapshotter and of content,
// its lease manager, and the differ plugin, all under one request context (namespace, lease,
// cancellation).
#pragma once

#include <berth/diff.h>
#include <berth/metadata.h>

#include <memory>

#include "core/unpack/unpack.h"

namespace berth::unpack {

// Merges `labels` into a blob's labels (the others stay).
Status add_content_labels(content::Store& store, const RequestContext& ctx,
                          const std::string& digest,
                          const std::map<std::string, std::string>& labels);

// A document blob (index, manifest, config) read whole from the content store; larger than
// `limit` is ResourceExhausted naming the blob.
inline constexpr std::size_t kMaxDocument = 4 << 20;
Result<std::string> read_document(content::Store& store, const RequestContext& ctx,
                                  const std::string& digest, std::size_t limit = kMaxDocument);

class DaemonStores final : public Stores {
 public:
  // NotFound names the snapshotter if the metadata store has no such one.
  static Result<DaemonStores> open(metadata::MetadataStore& md, diff::DifferPlugin& differ,
                                   const RequestContext& ctx, const std::string& snapshotter);

  const std::string& snapshotter() const override { return name_; }
  Status stat(const std::string& name) override;
  Result<std::vector<Mount>> prepare(const std::string& key, const std::string& parent) override;
  Result<std::string> apply(const diff::Descriptor& layer,
                            const std::vector<Mount>& mounts) override;
  Status commit(const std::string& name, const std::string& key) override;
  Status remove(const std::string& key) override;
  Status lease(const std::string& name) override;
  Status label(const std::string& digest,
               const std::map<std::string, std::string>& labels) override;

 private:
  DaemonStores(metadata::MetadataStore& md, diff::DifferPlugin& differ, const RequestContext& ctx,
               std::string name, std::shared_ptr<snapshots::Snapshotter> sn)
      : md_(md), differ_(differ), ctx_(ctx), name_(std::move(name)), sn_(std::move(sn)) {}

  metadata::MetadataStore& md_;
  diff::DifferPlugin& differ_;
  const RequestContext& ctx_;
  std::string name_;
  std::shared_ptr<snapshots::Snapshotter> sn_;
};

}  // namespace berth::unpack

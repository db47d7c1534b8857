#include "core/unpack/daemon_stores.h"

namespace berth::unpack {

Result<DaemonStores> DaemonStores::open(metadata::MetadataStore& md, diff::DifferPlugin& differ,
                                        const RequestContext& ctx, const std::string& snapshotter) {
  BERTH_TRY(auto sn, md.snapshotter(snapshotter));
  return DaemonStores(md, differ, ctx, snapshotter, std::move(sn));
}

Status DaemonStores::stat(const std::string& name) { return sn_->stat(ctx_, name).status(); }

Result<std::vector<Mount>> DaemonStores::prepare(const std::string& key,
                                                 const std::string& parent) {
  return sn_->prepare(ctx_, key, parent, {});
}

Result<std::string> DaemonStores::apply(const diff::Descriptor& layer,
                                        const std::vector<Mount>& mounts) {
  BERTH_TRY(auto applied, differ_.applier().apply(ctx_, layer, mounts, {}));
  return applied.digest;
}

Status DaemonStores::commit(const std::string& name, const std::string& key) {
  return sn_->commit(ctx_, name, key, {});
}

Status DaemonStores::remove(const std::string& key) { return sn_->remove(ctx_, key); }

Status DaemonStores::lease(const std::string& name) {
  if (ctx_.lease.empty()) return Status();
  return md_.leases().add_resource(ctx_, ctx_.lease, {name, "snapshots/" + name_});
}

Status DaemonStores::label(const std::string& digest,
                           const std::map<std::string, std::string>& labels) {
  return add_content_labels(*md_.content(), ctx_, digest, labels);
}

Result<std::string> read_document(content::Store& store, const RequestContext& ctx,
                                  const std::string& digest, std::size_t limit) {
  BERTH_TRY(auto reader, store.reader(ctx, digest));
  if (reader->size() > static_cast<std::int64_t>(limit))
    return Status(Code::kResourceExhausted,
                  fmt::format("{} is {} bytes, more than a manifest may be", digest, reader->size()));
  std::string out(static_cast<std::size_t>(reader->size()), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    BERTH_TRY(auto n,
              reader->read_at(out.data() + got, out.size() - got, static_cast<std::int64_t>(got)));
    if (n == 0) break;
    got += n;
  }
  if (got != out.size()) return Status(Code::kDataLoss, fmt::format("{}: short read", digest));
  return out;
}

Status add_content_labels(content::Store& store, const RequestContext& ctx,
                          const std::string& digest,
                          const std::map<std::string, std::string>& labels) {
  content::Info info;
  info.digest = digest;
  info.labels = labels;
  std::vector<std::string> paths;
  for (const auto& [k, v] : labels) paths.push_back("labels." + k);
  return store.update(ctx, info, paths).status();
}

}  // namespace berth::unpack

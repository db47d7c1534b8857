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

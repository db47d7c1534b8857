// io.containerd.metadata.v1.rocksdb: registration and config only; the store is in store.cc.
//
//   [plugins."io.containerd.metadata.v1.rocksdb"]
//     content_sharing_policy = "shared"   # or "isolated"
//     ingest_expiry = "24h"               # ingests not held by a lease
#include <berth/content.h>
#include <berth/plugin.h>
#include <berth/snapshots.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {
namespace {

struct Config {
  std::string content_sharing_policy = "shared";
  std::chrono::milliseconds ingest_expiry = std::chrono::hours(24);
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kMetadata);
  r.id = "rocksdb";
  r.requires_types = {std::string(plugin_type::kContent), std::string(plugin_type::kSnapshotter)};
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    Config c;
    BERTH_RETURN_IF_ERROR(in.read("content_sharing_policy", c.content_sharing_policy));
    BERTH_RETURN_IF_ERROR(in.read_duration("ingest_expiry", c.ingest_expiry));
    if (c.content_sharing_policy != "shared" && c.content_sharing_policy != "isolated") {
      return in.invalid("content_sharing_policy", "must be \"shared\" or \"isolated\"");
    }
    if (c.ingest_expiry.count() <= 0) return in.invalid("ingest_expiry", "must be positive");
    return config_value(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    const auto& cfg = ic.config<Config>();
    StoreOptions opts;
    opts.path = ic.root() + "/db";
    opts.content_sharing = cfg.content_sharing_policy == "isolated" ? SharingPolicy::kIsolated
                                                                    : SharingPolicy::kShared;
    opts.ingest_expiry = cfg.ingest_expiry;
    BERTH_TRY(auto content, ic.get_as<content::ContentPlugin>(plugin_type::kContent));
    opts.backend = content->store();
    // Every snapshotter that initialised (skipped or failed ones are left out, as in containerd).
    for (const auto& [id, p] : ic.get_all(plugin_type::kSnapshotter)) {
      if (auto sp = std::dynamic_pointer_cast<snapshots::SnapshotterPlugin>(p)) {
        opts.snapshotters[id] = sp->snapshotter();
      }
    }
    BERTH_TRY(auto store, RocksStore::open(opts));
    ic.exports()["path"] = opts.path;
    ic.exports()["policy"] = cfg.content_sharing_policy;
    return std::shared_ptr<Plugin>(store);
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::metadata

BERTH_PLUGIN_MODULE(berth::plugins::metadata::registrations)

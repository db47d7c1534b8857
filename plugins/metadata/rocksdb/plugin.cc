// io.containerd.metadata.v1.rocksdb: registration and config only; the store is in store.cc.
#include <berth/plugin.h>

#include "plugins/metadata/rocksdb/store.h"

namespace berth::plugins::metadata {
namespace {

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kMetadata);
  r.id = "rocksdb";
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    StoreOptions opts{.path = ic.root() + "/db"};
    BERTH_TRY(auto store, RocksStore::open(opts));
    ic.exports()["path"] = opts.path;
    return std::shared_ptr<Plugin>(store);
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::metadata

BERTH_PLUGIN_MODULE(berth::plugins::metadata::registrations)

// io.containerd.content.v1.content: registration only; the store is in local_store.cc.
#include <berth/content.h>

#include "plugins/content/local/local_store.h"

namespace berth::plugins::content {
namespace {

class ContentPluginImpl final : public berth::content::ContentPlugin {
 public:
  explicit ContentPluginImpl(std::shared_ptr<LocalStore> store) : store_(std::move(store)) {}
  std::shared_ptr<berth::content::Store> store() override { return store_; }

 private:
  std::shared_ptr<LocalStore> store_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kContent);
  r.id = "content";
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, LocalStore::open(ic.root()));
    ic.exports()["root"] = ic.root();
    return std::shared_ptr<Plugin>(std::make_shared<ContentPluginImpl>(std::move(store)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::content

BERTH_PLUGIN_MODULE(berth::plugins::content::registrations)

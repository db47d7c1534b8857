// io.containerd.gc.v1.scheduler: registration and config; the logic is in scheduler.cc.
//
//   [plugins."io.containerd.gc.v1.scheduler"]
//     pause_threshold = 0.02     deletion_threshold = 0     mutation_threshold = 100
//     schedule_delay = "0s"      startup_delay = "100ms"    interval = "10m"
#include <berth/metadata.h>

#include "plugins/gc/scheduler/scheduler.h"

namespace berth::plugins::gc {
namespace {

// Keeps the metadata store alive as long as the scheduler that drives it.
class SchedulerPlugin final : public berth::gc::Scheduler {
 public:
  SchedulerPlugin(std::shared_ptr<metadata::MetadataStore> store, SchedulerConfig cfg)
      : store_(std::move(store)), impl_(store_->collector(), cfg) {}
  Result<berth::gc::Stats> schedule_and_wait() override { return impl_.schedule_and_wait(); }
  Status close() override { return impl_.close(); }

 private:
  std::shared_ptr<metadata::MetadataStore> store_;
  plugins::gc::Scheduler impl_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGc);
  r.id = "scheduler";
  r.requires_types = {std::string(plugin_type::kMetadata)};
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    SchedulerConfig c;
    BERTH_RETURN_IF_ERROR(in.read("pause_threshold", c.pause_threshold));
    BERTH_RETURN_IF_ERROR(in.read("deletion_threshold", c.deletion_threshold));
    BERTH_RETURN_IF_ERROR(in.read("mutation_threshold", c.mutation_threshold));
    BERTH_RETURN_IF_ERROR(in.read_duration("schedule_delay", c.schedule_delay));
    BERTH_RETURN_IF_ERROR(in.read_duration("startup_delay", c.startup_delay));
    BERTH_RETURN_IF_ERROR(in.read_duration("interval", c.interval));
    if (c.pause_threshold < 0 || c.pause_threshold > 0.5) {
      return in.invalid("pause_threshold", "must be between 0 and 0.5");
    }
    if (c.deletion_threshold < 0) return in.invalid("deletion_threshold", "must not be negative");
    if (c.mutation_threshold < 0) return in.invalid("mutation_threshold", "must not be negative");
    if (c.interval.count() <= 0) return in.invalid("interval", "must be positive");
    return config_value(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    return std::shared_ptr<Plugin>(
        std::make_shared<SchedulerPlugin>(std::move(store), ic.config<SchedulerConfig>()));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::gc

BERTH_PLUGIN_MODULE(berth::plugins::gc::registrations)

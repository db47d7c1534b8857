// Garbage collection: the metadata store knows how to collect; the scheduler plugin
// (io.containerd.gc.v1.scheduler) decides when.
#pragma once

#include <berth/context.h>
#include <berth/plugin.h>

#include <chrono>
#include <functional>
#include <optional>

namespace berth::gc {

struct Stats {
  std::size_t content_removed = 0;  // metadata records
  std::size_t blobs_removed = 0;    // backend blobs
  std::size_t ingests_removed = 0;
  std::size_t leases_removed = 0;
  std::size_t snapshots_removed = 0;
  std::chrono::microseconds duration{0};
  // The earliest future lease or ingest expiry still in the store, if any: when GC should run next
  // so that it is reclaimed without any other activity.
  std::optional<Timestamp> next_expiry;
};

// What a successful write changed, as far as scheduling a collection is concerned.
struct Mutation {
  bool deletion = false;             // something was removed or released
  std::optional<Timestamp> expires;  // the write created something that expires then
};

class BERTH_API Collector {
 public:
  virtual ~Collector() = default;
  // Mark from roots, sweep metadata, then remove unreferenced backend objects.
  virtual Result<Stats> collect() = 0;
  // Called after every successful mutation; must be cheap and must not call back into the store.
  virtual void set_mutation_listener(std::function<void(const Mutation&)> listener) = 0;
};

class BERTH_API Scheduler : public virtual Plugin {
 public:
  // Runs a collection that starts after this call and waits for its result.
  virtual Result<Stats> schedule_and_wait() = 0;
};

}  // namespace berth::gc

// When to collect garbage. A dedicated thread runs a collection when
//   - deletions reach deletion_threshold (0, the default as in containerd: deletions alone do
//     not trigger), after schedule_delay;
//   - mutations reach mutation_threshold;
//   - a lease or ingest expires (the collector reports the next expiry; writes report new ones),
//     so an idle daemon still reclaims what an expired lease held (containerd does not: #6294);
//   - `interval` passed since the last run (a safety net);
//   - schedule_and_wait() asks (sync deletes).
// Automatic runs keep the collector's pause below pause_threshold of wall time.
#pragma once

#include <berth/gc.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace berth::plugins::gc {

struct SchedulerConfig {
  double pause_threshold = 0.02;
  std::int64_t deletion_threshold = 0;
  std::int64_t mutation_threshold = 100;
  std::chrono::milliseconds schedule_delay{0};
  std::chrono::milliseconds startup_delay{100};
  std::chrono::milliseconds interval = std::chrono::minutes(10);
};

class Scheduler final : public berth::gc::Scheduler {
 public:
  Scheduler(berth::gc::Collector& collector, SchedulerConfig config);
  ~Scheduler() override;

  Result<berth::gc::Stats> schedule_and_wait() override;
  Status close() override;

  void on_mutation(const berth::gc::Mutation& m);
  std::uint64_t runs() const;

 private:
  using Clock = std::chrono::steady_clock;
  void loop();
  // Steady-clock deadline of the next automatic run, given the state; nullopt: none.
  std::optional<Clock::time_point> next_run_locked() const;

  berth::gc::Collector& collector_;
  SchedulerConfig config_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::int64_t mutations_ = 0;
  std::int64_t deletions_ = 0;
  Clock::time_point first_deletion_{};
  std::optional<Timestamp> next_expiry_;
  Clock::time_point last_run_end_;
  Clock::time_point startup_at_;
  bool startup_pending_ = true;
  std::chrono::microseconds last_duration_{0};
  std::uint64_t requested_ = 0;  // sync requests issued
  std::uint64_t served_ = 0;     // sync requests covered by a finished run
  std::uint64_t runs_ = 0;
  Result<berth::gc::Stats> last_result_ = berth::gc::Stats{};
  std::thread thread_;
};

}  // namespace berth::plugins::gc

#include "plugins/gc/scheduler/scheduler.h"

#include "core/log.h"

namespace berth::plugins::gc {

Scheduler::Scheduler(berth::gc::Collector& collector, SchedulerConfig config)
    : collector_(collector), config_(config) {
  last_run_end_ = Clock::now();
  // The first run happens startup_delay after start: it also learns the next expiry.
  startup_at_ = last_run_end_ + config_.startup_delay;
  collector_.set_mutation_listener([this](const berth::gc::Mutation& m) { on_mutation(m); });
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { close().ignore(); }

Status Scheduler::close() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status();
    stopping_ = true;
  }
  collector_.set_mutation_listener(nullptr);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  return Status();
}

void Scheduler::on_mutation(const berth::gc::Mutation& m) {
  std::lock_guard lock(mu_);
  ++mutations_;
  if (m.deletion) {
    if (deletions_++ == 0) first_deletion_ = Clock::now();
  }
  if (m.expires && (!next_expiry_ || *m.expires < *next_expiry_)) next_expiry_ = m.expires;
  cv_.notify_all();
}

std::uint64_t Scheduler::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

std::optional<Scheduler::Clock::time_point> Scheduler::next_run_locked() const {
  std::optional<Clock::time_point> at;
  auto consider = [&](Clock::time_point t) {
    if (!at || t < *at) at = t;
  };
  consider(startup_pending_ ? startup_at_ : last_run_end_ + config_.interval);
  if (config_.deletion_threshold > 0 && deletions_ >= config_.deletion_threshold) {
    consider(first_deletion_ + config_.schedule_delay);
  }
  if (config_.mutation_threshold > 0 && mutations_ >= config_.mutation_threshold) {
    consider(Clock::now() + config_.schedule_delay);
  }
  if (next_expiry_) {
    auto wall_left = *next_expiry_ - std::chrono::system_clock::now();
    consider(Clock::now() + std::chrono::duration_cast<Clock::duration>(wall_left) +
             std::chrono::milliseconds(1));
  }
  // Keep automatic pauses under pause_threshold of the time between runs.
  if (at && config_.pause_threshold > 0) {
    auto spacing =
        std::chrono::duration_cast<Clock::duration>(last_duration_ / config_.pause_threshold);
    if (*at < last_run_end_ + spacing) at = last_run_end_ + spacing;
  }
  return at;
}

void Scheduler::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    bool sync = requested_ > served_;
    auto at = next_run_locked();
    if (!sync && at && Clock::now() < *at) {
      cv_.wait_until(lock, *at);
      continue;
    }
    if (!sync && !at) {
      cv_.wait(lock);
      continue;
    }
    std::uint64_t covers = requested_;
    startup_pending_ = false;
    mutations_ = 0;
    deletions_ = 0;
    next_expiry_.reset();
    lock.unlock();
    auto result = collector_.collect();
    lock.lock();
    ++runs_;
    last_run_end_ = Clock::now();
    if (result.ok()) {
      last_duration_ = result->duration;
      if (result->next_expiry && (!next_expiry_ || *result->next_expiry < *next_expiry_)) {
        next_expiry_ = result->next_expiry;
      }
      if (result->content_removed || result->blobs_removed || result->leases_removed ||
          result->ingests_removed) {
        log::debug("garbage collected", {{"content", result->content_removed},
                                         {"blobs", result->blobs_removed},
                                         {"leases", result->leases_removed},
                                         {"ingests", result->ingests_removed},
                                         {"us", result->duration.count()}});
      }
    } else {
      log::warn("garbage collection failed", {{"error", result.status()}});
    }
    last_result_ = result;
    served_ = covers;
    cv_.notify_all();
  }
}

Result<berth::gc::Stats> Scheduler::schedule_and_wait() {
  std::unique_lock lock(mu_);
  if (stopping_) return unavailable("garbage collector is stopping");
  std::uint64_t mine = ++requested_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return served_ >= mine || stopping_; });
  if (served_ < mine) return unavailable("garbage collector stopped");
  return last_result_;
}

}  // namespace berth::plugins::gc

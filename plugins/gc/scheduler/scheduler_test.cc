#include "plugins/gc/scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace berth::plugins::gc {
namespace {

using namespace std::chrono_literals;

// Counts collections and reports a scripted next expiry.
class FakeCollector : public berth::gc::Collector {
 public:
  Result<berth::gc::Stats> collect() override {
    ++runs;
    berth::gc::Stats s;
    s.duration = 100us;
    std::lock_guard lock(mu);
    s.next_expiry = next_expiry;
    next_expiry.reset();
    return s;
  }
  void set_mutation_listener(std::function<void(const berth::gc::Mutation&)> l) override {
    std::lock_guard lock(mu);
    listener = std::move(l);
  }
  void mutate(berth::gc::Mutation m) {
    std::function<void(const berth::gc::Mutation&)> l;
    {
      std::lock_guard lock(mu);
      l = listener;
    }
    if (l) l(m);
  }
  std::atomic<int> runs{0};
  std::mutex mu;
  std::optional<Timestamp> next_expiry;
  std::function<void(const berth::gc::Mutation&)> listener;
};

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds within = 3s) {
  auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

SchedulerConfig fast() {
  SchedulerConfig c;
  c.startup_delay = 0ms;
  c.pause_threshold = 0;
  return c;
}

TEST(Scheduler, RunsAtStartupThenIdles) {
  FakeCollector c;
  Scheduler s(c, fast());
  EXPECT_TRUE(eventually([&] { return c.runs >= 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(c.runs, 1);
}

TEST(Scheduler, DeletionThresholdTriggersACollection) {
  FakeCollector c;
  auto cfg = fast();
  cfg.deletion_threshold = 2;
  Scheduler s(c, cfg);
  ASSERT_TRUE(eventually([&] { return c.runs >= 1; }));
  c.mutate({.deletion = true});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.runs, 1);
  c.mutate({.deletion = true});
  EXPECT_TRUE(eventually([&] { return c.runs >= 2; }));
}

TEST(Scheduler, DeletionsAloneDoNotTriggerByDefault) {
  FakeCollector c;
  Scheduler s(c, fast());
  ASSERT_TRUE(eventually([&] { return c.runs >= 1; }));
  for (int i = 0; i < 5; ++i) c.mutate({.deletion = true});
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(c.runs, 1);
}

TEST(Scheduler, MutationThreshold) {
  FakeCollector c;
  auto cfg = fast();
  cfg.mutation_threshold = 3;
  Scheduler s(c, cfg);
  ASSERT_TRUE(eventually([&] { return c.runs >= 1; }));
  c.mutate({});
  c.mutate({});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(c.runs, 1);
  c.mutate({});
  EXPECT_TRUE(eventually([&] { return c.runs >= 2; }));
}

TEST(Scheduler, WakesAtTheNextExpiryWithNoOtherActivity) {
  FakeCollector c;
  Scheduler s(c, fast());
  ASSERT_TRUE(eventually([&] { return c.runs >= 1; }));
  c.mutate({.expires = std::chrono::system_clock::now() + 200ms});
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(c.runs, 1);
  EXPECT_TRUE(eventually([&] { return c.runs >= 2; }, 2s));
}

TEST(Scheduler, ScheduleAndWaitRunsAFreshCollection) {
  FakeCollector c;
  Scheduler s(c, fast());
  ASSERT_TRUE(eventually([&] { return c.runs >= 1; }));
  int before = c.runs;
  auto r = s.schedule_and_wait();
  ASSERT_TRUE(r.ok());
  EXPECT_GT(c.runs, before);
}

TEST(Scheduler, CloseStopsPromptly) {
  FakeCollector c;
  auto s = std::make_unique<Scheduler>(c, fast());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s->close().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(s->schedule_and_wait().status().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace berth::plugins::gc

namespace berth::plugins::gc {
namespace {

TEST(Scheduler, ExpiryFiresEvenBeforeALateStartupRun) {
  FakeCollector c;
  auto cfg = fast();
  cfg.startup_delay = std::chrono::hours(1);
  Scheduler s(c, cfg);
  c.mutate({.expires = std::chrono::system_clock::now() + 100ms});
  EXPECT_TRUE(eventually([&] { return c.runs >= 1; }, 2s));
}

}  // namespace
}  // namespace berth::plugins::gc

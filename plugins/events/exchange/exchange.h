// The in-process event exchange: every subscriber has its own queue, so a slow subscriber costs
// memory (bounded: the oldest events are dropped past kMaxQueued, with a warning) instead of
// blocking publishers or other subscribers.
#pragma once

#include <berth/events.h>

#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>

#include "core/filters.h"

namespace berth::plugins::events {

class Exchange final : public berth::events::Exchange {
 public:
  static constexpr std::size_t kMaxQueued = 100000;

  Status publish(std::string_view ns, std::string_view topic, std::string_view type_url,
                 std::string payload) override;
  Status forward(berth::events::Envelope envelope) override;
  Result<std::shared_ptr<berth::events::Subscription>> subscribe(
      const std::vector<std::string>& filters) override;
  Status close() override;

  class Sub;

 private:
  void broadcast(const berth::events::Envelope& e);

  std::mutex mu_;
  std::list<std::weak_ptr<Sub>> subs_;
};

// Field lookup for filters: topic, namespace, and event.<field> decoded from the payload through
// the protobuf descriptor of type_url.
std::optional<std::string> envelope_field(const berth::events::Envelope& e,
                                          const std::vector<std::string>& path);

}  // namespace berth::plugins::events

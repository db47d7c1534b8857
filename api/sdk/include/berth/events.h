// The event exchange (io.containerd.event.v1.exchange): in-memory fan-out of envelopes to
// subscribers. Payloads are serialized protobuf messages named by type_url (for example
// "containerd.events.ContentDelete"), so this header needs no protobuf.
#pragma once

#include <berth/context.h>
#include <berth/plugin.h>

#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::events {

struct Envelope {
  Timestamp timestamp;
  std::string ns;
  std::string topic;     // "/content/delete"
  std::string type_url;  // "containerd.events.ContentDelete"
  std::string payload;   // serialized message
};

class BERTH_API Subscription {
 public:
  virtual ~Subscription() = default;
  // The next matching envelope, or nullopt after `timeout` or once closed.
  virtual std::optional<Envelope> next(std::chrono::milliseconds timeout) = 0;
  virtual void close() = 0;
};

class BERTH_API Exchange : public virtual Plugin {
 public:
  // Stamps the time; InvalidArgument for a bad topic or namespace.
  virtual Status publish(std::string_view ns, std::string_view topic, std::string_view type_url,
                         std::string payload) = 0;
  // Re-publishes an envelope as is (from shims); requires namespace and timestamp.
  virtual Status forward(Envelope envelope) = 0;
  // Filters over topic, namespace and event.<field> (containerd's filter language).
  virtual Result<std::shared_ptr<Subscription>> subscribe(
      const std::vector<std::string>& filters) = 0;
};

// Topics are "/" followed by identifier components: "/tasks/exit".
inline Status validate_topic(std::string_view topic) {
  if (topic.empty() || topic[0] != '/')
    return invalid_argument("topic \"{}\" must start with /", topic);
  std::size_t start = 1;
  while (start <= topic.size()) {
    std::size_t end = topic.find('/', start);
    if (end == std::string_view::npos) end = topic.size();
    std::string_view part = topic.substr(start, end - start);
    if (part.empty()) return invalid_argument("topic \"{}\" has an empty component", topic);
    for (char c : part) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
        return invalid_argument("topic \"{}\" has an invalid character '{}'", topic, c);
      }
    }
    start = end + 1;
  }
  return Status();
}

}  // namespace berth::events

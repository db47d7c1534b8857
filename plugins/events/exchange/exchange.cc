#include "plugins/events/exchange/exchange.h"

#include <berth/identifiers.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include "core/log.h"

namespace berth::plugins::events {

using berth::events::Envelope;

class Exchange::Sub final : public berth::events::Subscription {
 public:
  explicit Sub(core::Filter filter) : filter_(std::move(filter)) {}

  void offer(const Envelope& e) {
    if (!filter_.match([&](const auto& path) { return envelope_field(e, path); })) return;
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (queue_.size() >= kMaxQueued) {
      queue_.pop_front();
      if (!warned_) {
        log::warn("event subscriber is not keeping up; dropping its oldest events");
        warned_ = true;
      }
    }
    queue_.push_back(e);
    cv_.notify_one();
  }

  std::optional<Envelope> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return std::nullopt;
    Envelope e = std::move(queue_.front());
    queue_.pop_front();
    return e;
  }

  void close() override {
    std::lock_guard lock(mu_);
    closed_ = true;
    queue_.clear();
    cv_.notify_all();
  }

  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  core::Filter filter_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Envelope> queue_;
  bool closed_ = false;
  bool warned_ = false;
};

std::optional<std::string> envelope_field(const Envelope& e, const std::vector<std::string>& path) {
  if (path.empty()) return std::nullopt;
  if (path.size() == 1 && path[0] == "topic") return e.topic;
  if (path.size() == 1 && path[0] == "namespace") return e.ns;
  if (path[0] != "event" || path.size() < 2) return std::nullopt;
  namespace pb = google::protobuf;
  std::string type = e.type_url;
  if (auto slash = type.rfind('/'); slash != std::string::npos) type = type.substr(slash + 1);
  const pb::Descriptor* desc = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  if (!desc) return std::nullopt;
  const pb::Message* proto = pb::MessageFactory::generated_factory()->GetPrototype(desc);
  if (!proto) return std::nullopt;
  std::unique_ptr<pb::Message> msg(proto->New());
  if (!msg->ParseFromString(e.payload)) return std::nullopt;
  const pb::Message* cur = msg.get();
  for (std::size_t i = 1; i < path.size(); ++i) {
    const pb::FieldDescriptor* f = cur->GetDescriptor()->FindFieldByName(path[i]);
    if (!f || f->is_repeated()) return std::nullopt;
    const pb::Reflection* r = cur->GetReflection();
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      cur = &r->GetMessage(*cur, f);
      continue;
    }
    if (i + 1 != path.size()) return std::nullopt;
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: return r->GetString(*cur, f);
      case pb::FieldDescriptor::CPPTYPE_INT32: return std::to_string(r->GetInt32(*cur, f));
      case pb::FieldDescriptor::CPPTYPE_INT64: return std::to_string(r->GetInt64(*cur, f));
      case pb::FieldDescriptor::CPPTYPE_UINT32: return std::to_string(r->GetUInt32(*cur, f));
      case pb::FieldDescriptor::CPPTYPE_UINT64: return std::to_string(r->GetUInt64(*cur, f));
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        return std::string(r->GetBool(*cur, f) ? "true" : "false");
      case pb::FieldDescriptor::CPPTYPE_ENUM: return r->GetEnum(*cur, f)->name();
      default: return std::nullopt;
    }
  }
  return std::nullopt;
}

Status Exchange::publish(std::string_view ns, std::string_view topic, std::string_view type_url,
                         std::string payload) {
  Envelope e;
  e.timestamp = std::chrono::system_clock::now();
  e.ns = std::string(ns);
  e.topic = std::string(topic);
  e.type_url = std::string(type_url);
  e.payload = std::move(payload);
  return forward(std::move(e));
}

Status Exchange::forward(Envelope e) {
  if (e.ns.empty()) return failed_precondition("event namespace is required");
  if (Status st = validate_identifier(e.ns); !st.ok())
    return invalid_argument("event namespace: {}", st.message());
  BERTH_RETURN_IF_ERROR(berth::events::validate_topic(e.topic));
  if (e.timestamp.time_since_epoch().count() == 0)
    return invalid_argument("event timestamp is required");
  broadcast(e);
  return Status();
}

void Exchange::broadcast(const Envelope& e) {
  std::vector<std::shared_ptr<Sub>> live;
  {
    std::lock_guard lock(mu_);
    for (auto it = subs_.begin(); it != subs_.end();) {
      auto s = it->lock();
      if (!s || s->closed()) {
        it = subs_.erase(it);
      } else {
        live.push_back(std::move(s));
        ++it;
      }
    }
  }
  for (auto& s : live) s->offer(e);
}

Result<std::shared_ptr<berth::events::Subscription>> Exchange::subscribe(
    const std::vector<std::string>& filters) {
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  auto sub = std::make_shared<Sub>(std::move(filter));
  std::lock_guard lock(mu_);
  subs_.push_back(sub);
  return std::shared_ptr<berth::events::Subscription>(sub);
}

Status Exchange::close() {
  std::lock_guard lock(mu_);
  for (auto& w : subs_) {
    if (auto s = w.lock()) s->close();
  }
  subs_.clear();
  return Status();
}

}  // namespace berth::plugins::events

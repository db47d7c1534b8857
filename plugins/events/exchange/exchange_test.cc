#include "plugins/events/exchange/exchange.h"

#include <gtest/gtest.h>

#include <thread>

#include "github.com/containerd/containerd/api/events/content.pb.h"

namespace berth::plugins::events {
namespace {

using namespace std::chrono_literals;

std::string content_delete(const std::string& digest) {
  ::containerd::events::ContentDelete e;
  e.set_digest(digest);
  return e.SerializeAsString();
}

TEST(Exchange, FansOutToMatchingSubscribers) {
  Exchange x;
  auto all = x.subscribe({});
  auto only_ns_b = x.subscribe({"namespace==b"});
  auto by_field = x.subscribe({"event.digest==sha256:2"});
  ASSERT_TRUE(all.ok() && only_ns_b.ok() && by_field.ok());
  ASSERT_TRUE(x.publish("a", "/content/delete", "containerd.events.ContentDelete",
                        content_delete("sha256:1"))
                  .ok());
  ASSERT_TRUE(x.publish("b", "/content/delete", "containerd.events.ContentDelete",
                        content_delete("sha256:2"))
                  .ok());
  auto e1 = (*all)->next(1s);
  auto e2 = (*all)->next(1s);
  ASSERT_TRUE(e1 && e2);
  EXPECT_EQ(e1->ns, "a");
  EXPECT_EQ(e2->ns, "b");
  auto b = (*only_ns_b)->next(1s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->ns, "b");
  EXPECT_FALSE((*only_ns_b)->next(10ms));
  auto f = (*by_field)->next(1s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ns, "b");
  EXPECT_FALSE((*by_field)->next(10ms));
}

TEST(Exchange, RejectsBadTopicsAndNamespaces) {
  Exchange x;
  EXPECT_EQ(x.publish("a", "no-slash", "t", "").code(), Code::kInvalidArgument);
  EXPECT_EQ(x.publish("a", "/a//b", "t", "").code(), Code::kInvalidArgument);
  EXPECT_EQ(x.publish("", "/a", "t", "").code(), Code::kFailedPrecondition);
  EXPECT_EQ(x.publish("bad ns", "/a", "t", "").code(), Code::kInvalidArgument);
  berth::events::Envelope e;
  e.ns = "a";
  e.topic = "/x";
  EXPECT_EQ(x.forward(e).code(), Code::kInvalidArgument);  // no timestamp
}

TEST(Exchange, ClosedSubscriptionWakesAndStops) {
  Exchange x;
  auto s = x.subscribe({});
  ASSERT_TRUE(s.ok());
  std::thread t([&] { (*s)->close(); });
  EXPECT_FALSE((*s)->next(5s));
  t.join();
  ASSERT_TRUE(x.publish("a", "/x", "t", "").ok());
  EXPECT_FALSE((*s)->next(10ms));
}

}  // namespace
}  // namespace berth::plugins::events

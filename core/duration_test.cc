#include "core/duration.h"

#include <gtest/gtest.h>

namespace berth::core {
namespace {

using std::chrono::milliseconds;

TEST(Duration, ParsesGoStyle) {
  EXPECT_EQ(*parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(*parse_duration("100ms"), milliseconds(100));
  EXPECT_EQ(*parse_duration("10s"), milliseconds(10000));
  EXPECT_EQ(*parse_duration("1h30m"), milliseconds(5400000));
  EXPECT_EQ(*parse_duration("1.5s"), milliseconds(1500));
}

TEST(Duration, RejectsGarbage) {
  EXPECT_FALSE(parse_duration("").ok());
  EXPECT_FALSE(parse_duration("10").ok());
  EXPECT_FALSE(parse_duration("s").ok());
  EXPECT_FALSE(parse_duration("10 parsecs").ok());
  EXPECT_NE(parse_duration("5d").status().message().find("unknown unit \"d\""), std::string::npos);
}

TEST(Duration, FormatsRoundTrip) {
  for (const char* s : {"0s", "100ms", "10s", "5m", "24h"}) {
    EXPECT_EQ(format_duration(*parse_duration(s)), s);
  }
}

}  // namespace
}  // namespace berth::core

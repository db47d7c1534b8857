#include "core/time.h"

#include <gtest/gtest.h>

namespace berth::core {
namespace {

TEST(Rfc3339, ParsesUtcOffsetsAndFractions) {
  auto a = parse_rfc3339("2026-11-30T08:00:00Z");
  auto b = parse_rfc3339("2026-11-30T09:00:00+01:00");
  auto c = parse_rfc3339("2026-11-30T08:00:00.5Z");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(to_unix_nanos(*c) - to_unix_nanos(*a), 500'000'000);
  EXPECT_EQ(format_rfc3339(*a), "2026-11-30T08:00:00Z");
  EXPECT_EQ(format_rfc3339(*c), "2026-11-30T08:00:00.5Z");
}

TEST(Rfc3339, RejectsGarbage) {
  for (const char* bad : {"", "tomorrow", "2026-11-30", "2026-11-30T08:00:00",
                          "2026-13-01T00:00:00Z", "2026-11-30T08:00:00Zjunk"}) {
    EXPECT_FALSE(parse_rfc3339(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace berth::core

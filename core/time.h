// Timestamps: RFC 3339 (what containerd's gc.expire label holds) and nanosecond integers (what
// Berth stores).
#pragma once

#include <berth/context.h>
#include <berth/result.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::core {

// "2026-11-30T08:00:00Z", "2026-11-30T08:00:00.123456789+01:00".
Result<Timestamp> parse_rfc3339(std::string_view text);
std::string format_rfc3339(Timestamp t);  // UTC, "Z", nanoseconds when non-zero

inline std::int64_t to_unix_nanos(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline Timestamp from_unix_nanos(std::int64_t n) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(n)));
}

}  // namespace berth::core

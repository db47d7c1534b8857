// Go-style durations ("100ms", "10s", "1h30m", "0s"), the format containerd's config uses.
#pragma once

#include <berth/result.h>

#include <chrono>
#include <string>
#include <string_view>

namespace berth::core {

Result<std::chrono::milliseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::milliseconds d);

}  // namespace berth::core

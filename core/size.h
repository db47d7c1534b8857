// Byte sizes as people write them in configs and flags: "512", "64k", "256m", "32GiB", "1.5g"
// (binary units: k = KiB = 1024).
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::core {

Result<std::int64_t> parse_size(std::string_view text);
// "32 GiB", "1.5 MiB", "17 bytes": for messages.
std::string format_size(std::int64_t bytes);

}  // namespace berth::core

#include "core/duration.h"

#include <cctype>
#include <cmath>

namespace berth::core {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return invalid_argument("empty duration");
  if (text == "0") return std::chrono::milliseconds(0);
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i)
      return invalid_argument("duration \"{}\": expected a number at offset {}", text, i);
    double number = 0;
    try {
      number = std::stod(std::string(text.substr(start, i - start)));
    } catch (...) {
      return invalid_argument("duration \"{}\": bad number", text);
    }
    std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double scale = 0;
    if (unit == "ns")
      scale = 1e-6;
    else if (unit == "us" || unit == "µs")
      scale = 1e-3;
    else if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m")
      scale = 60'000;
    else if (unit == "h")
      scale = 3'600'000;
    else
      return invalid_argument("duration \"{}\": unknown unit \"{}\" (use ns, us, ms, s, m, h)",
                              text, unit);
    total_ms += number * scale;
  }
  return std::chrono::milliseconds(static_cast<long long>(std::llround(total_ms)));
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace berth::core

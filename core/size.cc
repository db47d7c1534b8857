#include "core/size.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace berth::core {

Result<std::int64_t> parse_size(std::string_view text) {
  if (text.empty()) return invalid_argument("empty size");
  std::string s(text);
  std::size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    return invalid_argument("size \"{}\" is not a number", s);
  }
  std::string unit = s.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  for (auto [prefix, m] : {std::pair{'k', 1024.0},
                           {'m', 1024.0 * 1024},
                           {'g', 1024.0 * 1024 * 1024},
                           {'t', 1024.0 * 1024 * 1024 * 1024}}) {
    if (!unit.empty() && unit[0] == prefix &&
        (unit.size() == 1 || unit.substr(1) == "b" || unit.substr(1) == "i" ||
         unit.substr(1) == "ib"))
      mult = m;
  }
  if (mult == 0) return invalid_argument("size \"{}\": unknown unit \"{}\"", s, unit);
  if (!(v > 0) || !std::isfinite(v)) return invalid_argument("size \"{}\" must be positive", s);
  double bytes = v * mult;
  if (bytes >= 9.2e18) return invalid_argument("size \"{}\" is too large", s);
  return static_cast<std::int64_t>(bytes);
}

std::string format_size(std::int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return fmt::format("{} bytes", bytes);
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  if (v == std::floor(v)) return fmt::format("{} {}", static_cast<std::int64_t>(v), kUnits[u]);
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

}  // namespace berth::core

#include "cmd/berth/output.h"

#include <algorithm>
#include <cstdio>

namespace berth::cli {

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(headers_);
  for (const auto& r : rows_) measure(r);
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 3, ' ');
    }
    out << line << "\n";
  };
  emit(headers_);
  for (const auto& r : rows_) emit(r);
}

std::string join_labels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ",";
    out += k + "=" + v;
  }
  return out.empty() ? "-" : out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep,
                 const std::string& empty) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out.empty() ? empty : out;
}

void print_json(std::ostream& out, const nlohmann::json& j) { out << j.dump(2) << "\n"; }

std::string human_size(std::int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string human_age(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - t)
                  .count();
  if (secs < 0) secs = 0;
  auto plural = [](long long n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
  };
  if (secs < 60) return plural(secs, "second");
  if (secs < 3600) return plural(secs / 60, "minute");
  if (secs < 86400) return plural(secs / 3600, "hour");
  return plural(secs / 86400, "day");
}

}  // namespace berth::cli

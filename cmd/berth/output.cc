#include "cmd/berth/output.h"

#include <algorithm>

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

}  // namespace berth::cli

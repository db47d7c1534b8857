// Output helpers: aligned tables for people, JSON for programs (--format json).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace berth::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "k=v,k2=v2", or "-" when empty.
std::string join_labels(const std::map<std::string, std::string>& labels);
std::string join(const std::vector<std::string>& items, const std::string& sep,
                 const std::string& empty = "-");
void print_json(std::ostream& out, const nlohmann::json& j);
// "3.0 MiB", "512 B".
std::string human_size(std::int64_t bytes);
// "5 seconds", "2 hours" since t.
std::string human_age(std::chrono::system_clock::time_point t);

}  // namespace berth::cli

// Logging: spdlog behind one small API. Messages are constant strings; variable data goes in
// key-value fields, rendered as `msg key=value ...` (text) or one JSON object per line (json).
//
//   log::info("plugin loaded", {{"uri", uri}, {"path", path}});
#pragma once

#include <berth/result.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError };
enum class Format { kText, kJson };

struct Field {
  std::string key;
  std::string value;
  Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  Field(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
  Field(std::string k, const char* v) : key(std::move(k)), value(v) {}
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  Field(std::string k, T v) : key(std::move(k)), value(std::to_string(v)) {}
  Field(std::string k, const Status& s) : key(std::move(k)), value(s.to_string()) {}
};
using Fields = std::vector<Field>;

Result<Level> parse_level(std::string_view name);
Result<Format> parse_format(std::string_view name);

// Configures the process-wide logger (stderr). Safe to call again to change level or format.
void init(Level level, Format format);
bool enabled(Level level);

void write(Level level, std::string_view msg, const Fields& fields);
inline void trace(std::string_view msg, const Fields& f = {}) { write(Level::kTrace, msg, f); }
inline void debug(std::string_view msg, const Fields& f = {}) { write(Level::kDebug, msg, f); }
inline void info(std::string_view msg, const Fields& f = {}) { write(Level::kInfo, msg, f); }
inline void warn(std::string_view msg, const Fields& f = {}) { write(Level::kWarn, msg, f); }
inline void error(std::string_view msg, const Fields& f = {}) { write(Level::kError, msg, f); }

// Renders one record without emitting it (used by tests and by the JSON formatter).
std::string render(Format format, Level level, std::string_view msg, const Fields& fields);

}  // namespace berth::log

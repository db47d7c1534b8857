#include "core/log.h"

#include <fmt/chrono.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

namespace berth::log {
namespace {

std::atomic<Format> g_format{Format::kText};

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::kTrace: return "trace";
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') return true;
  }
  return false;
}

std::shared_ptr<spdlog::logger> make_logger() {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("berth", sink);
  return logger;
}

}  // namespace

Result<Level> parse_level(std::string_view name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  return invalid_argument("log level \"{}\" is not one of trace, debug, info, warn, error", name);
}

Result<Format> parse_format(std::string_view name) {
  if (name == "text" || name.empty()) return Format::kText;
  if (name == "json") return Format::kJson;
  return invalid_argument("log format \"{}\" is not one of text, json", name);
}

void init(Level level, Format format) {
  auto logger = spdlog::get("berth");
  if (!logger) {
    logger = make_logger();
    spdlog::register_logger(logger);
    spdlog::set_default_logger(logger);
  }
  g_format = format;
  // In JSON mode the whole record (time, level, message, fields) is rendered by render().
  logger->set_pattern(format == Format::kJson ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %l %v");
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);
}

bool enabled(Level level) { return spdlog::default_logger_raw()->should_log(to_spdlog(level)); }

std::string render(Format format, Level level, std::string_view msg, const Fields& fields) {
  std::string out;
  if (format == Format::kJson) {
    auto now = std::chrono::system_clock::now();
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    out += "{\"time\":";
    append_json_string(out,
                       fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z",
                                   fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms));
    out += ",\"level\":";
    append_json_string(out, level_name(level));
    out += ",\"msg\":";
    append_json_string(out, msg);
    for (const auto& f : fields) {
      out.push_back(',');
      append_json_string(out, f.key);
      out.push_back(':');
      append_json_string(out, f.value);
    }
    out.push_back('}');
    return out;
  }
  out.append(msg);
  for (const auto& f : fields) {
    out.push_back(' ');
    out += f.key;
    out.push_back('=');
    if (needs_quotes(f.value)) {
      append_json_string(out, f.value);
    } else {
      out += f.value;
    }
  }
  return out;
}

void write(Level level, std::string_view msg, const Fields& fields) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(to_spdlog(level))) return;
  logger->log(to_spdlog(level), "{}", render(g_format.load(), level, msg, fields));
}

}  // namespace berth::log

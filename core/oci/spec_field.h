// Inside libberth-oci's config.json parser: the path-naming field accessor both halves use
// (spec.cc: the document, process, hooks; spec_linux.cc: the linux section).
#pragma once

#include <berth/result.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/oci/spec.h"

namespace berth::oci::detail {

using nlohmann::json;

// A JSON value and its path, with typed accessors that name the path in errors.
class Field {
 public:
  Field(const json& j, std::string path) : j_(j), path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  const json& value() const { return j_; }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  Field at(const char* key) const { return Field(j_[key], path_ + "." + key); }

  Status error(std::string_view why) const { return invalid_argument("{}: {}", path_, why); }
  Status expect_object() const { return j_.is_object() ? Status() : error("must be an object"); }

  Result<std::string> str() const {
    if (!j_.is_string()) return error("must be a string");
    return j_.get<std::string>();
  }
  Result<bool> boolean() const {
    if (!j_.is_boolean()) return error("must be true or false");
    return j_.get<bool>();
  }
  template <typename T>
  Result<T> integer() const {
    if (!j_.is_number_integer()) return error("must be an integer");
    if (j_.is_number_unsigned()) {
      auto v = j_.get<std::uint64_t>();
      if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        return error("is too large");
      return static_cast<T>(v);
    }
    auto v = j_.get<std::int64_t>();
    if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 &&
         static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
      return error("is out of range");
    return static_cast<T>(v);
  }
  Result<std::vector<std::string>> strings() const {
    if (!j_.is_array()) return error("must be an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < j_.size(); ++i) {
      if (!j_[i].is_string()) return Field(j_[i], item(i)).error("must be a string");
      out.push_back(j_[i].get<std::string>());
    }
    return out;
  }
  Result<std::map<std::string, std::string>> string_map() const {
    if (!j_.is_object()) return error("must be an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [k, v] : j_.items()) {
      if (!v.is_string()) return Field(v, path_ + "." + k).error("must be a string");
      out[k] = v.get<std::string>();
    }
    return out;
  }
  // Calls fn(Field) for each element of an array.
  template <typename Fn>
  Status each(Fn fn) const {
    if (!j_.is_array()) return error("must be an array");
    for (std::size_t i = 0; i < j_.size(); ++i) BERTH_RETURN_IF_ERROR(fn(Field(j_[i], item(i))));
    return Status();
  }

  // Optional members: leave `out` alone when absent.
  Status opt(const char* key, std::string& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).str());
    }
    return Status();
  }
  Status opt(const char* key, bool& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).boolean());
    }
    return Status();
  }
  Status opt(const char* key, std::vector<std::string>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).strings());
    }
    return Status();
  }
  Status opt(const char* key, std::map<std::string, std::string>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).string_map());
    }
    return Status();
  }
  template <typename T>
  Status opt(const char* key, std::optional<T>& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).integer<T>());
    }
    return Status();
  }
  template <typename T>
  Status opt_int(const char* key, T& out) const {
    if (has(key)) {
      BERTH_TRY(out, at(key).integer<T>());
    }
    return Status();
  }

 private:
  std::string item(std::size_t i) const { return path_ + "[" + std::to_string(i) + "]"; }
  const json& j_;
  std::string path_;
};

Result<Linux> parse_linux(const Field& f);
Result<Resources> parse_resources(const Field& f);

}  // namespace berth::oci::detail

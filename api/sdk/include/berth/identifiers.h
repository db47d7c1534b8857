// Identifier and label rules shared by namespaces, containers, tasks, leases and snapshots;
// the same rules containerd applies, so names valid here are valid there.
#pragma once

#include <berth/status.h>

#include <map>
#include <string>
#include <string_view>

namespace berth {

inline constexpr std::size_t kMaxIdentifierLength = 76;
inline constexpr std::size_t kMaxLabelSize = 4096;  // key + value

inline bool is_alnum_ascii(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$, at most 76 characters.
inline Status validate_identifier(std::string_view id) {
  if (id.empty()) return invalid_argument("identifier must not be empty");
  if (id.size() > kMaxIdentifierLength) {
    return invalid_argument("identifier \"{}\" is {} characters long, the limit is {}", id,
                            id.size(), kMaxIdentifierLength);
  }
  bool need_alnum = true;  // at the start and after each separator
  for (char c : id) {
    if (is_alnum_ascii(c)) {
      need_alnum = false;
    } else if ((c == '.' || c == '_' || c == '-') && !need_alnum) {
      need_alnum = true;
    } else {
      return invalid_argument("identifier \"{}\" must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$",
                              id);
    }
  }
  if (need_alnum) {
    return invalid_argument("identifier \"{}\" must match ^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$", id);
  }
  return Status();
}

inline Status validate_label(std::string_view key, std::string_view value) {
  if (key.empty()) return invalid_argument("label key must not be empty");
  if (key.size() + value.size() > kMaxLabelSize) {
    return invalid_argument("label \"{}\": key and value are {} bytes, the limit is {}", key,
                            key.size() + value.size(), kMaxLabelSize);
  }
  return Status();
}

inline Status validate_labels(const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : labels) BERTH_RETURN_IF_ERROR(validate_label(k, v));
  return Status();
}

}  // namespace berth

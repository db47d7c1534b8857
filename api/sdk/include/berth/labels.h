// Label updates by field mask, the same for every object kind: no paths or "labels" replace all
// labels; "labels.<key>" sets that key (or removes it when absent or empty in `incoming`).
#pragma once

#include <berth/status.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth {

using Labels = std::map<std::string, std::string>;

// Applies one path; returns false when the path is not a label path (the caller decides).
inline bool apply_label_path(Labels& current, const Labels& incoming, const std::string& path) {
  if (path == "labels") {
    current = incoming;
    return true;
  }
  if (path.rfind("labels.", 0) != 0) return false;
  std::string key = path.substr(7);
  auto it = incoming.find(key);
  if (it == incoming.end() || it->second.empty()) {
    current.erase(key);
  } else {
    current[key] = it->second;
  }
  return true;
}

// For objects whose only mutable field is labels. `object` names it in errors.
inline Status update_labels(Labels& current, const Labels& incoming,
                            const std::vector<std::string>& paths, std::string_view object) {
  if (paths.empty()) {
    current = incoming;
    return Status();
  }
  for (const auto& p : paths) {
    if (!apply_label_path(current, incoming, p)) {
      return invalid_argument("{}: cannot update field \"{}\" (only labels)", object, p);
    }
  }
  return Status();
}

// Filter field lookup for "labels.<key>" paths.
inline std::optional<std::string> label_field(const Labels& labels,
                                              const std::vector<std::string>& path) {
  if (path.size() != 2 || path[0] != "labels") return std::nullopt;
  auto it = labels.find(path[1]);
  if (it == labels.end()) return std::nullopt;
  return it->second;
}

}  // namespace berth

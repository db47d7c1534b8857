// libarchive returns NULL where it has no string (an error without a message, an entry without
// a name); std::string and fmt must never see that.
#pragma once

#include <archive.h>

#include <string>

namespace berth::core {

inline std::string archive_error(archive* a) {
  const char* e = ::archive_error_string(a);
  return e ? e : "unreadable archive (no detail from libarchive)";
}

// The string, or "" for NULL.
inline const char* archive_text(const char* s) { return s ? s : ""; }

}  // namespace berth::core

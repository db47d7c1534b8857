#include "core/signal.h"

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstring>

namespace berth::core {

Result<int> parse_signal(const std::string& s) {
  if (!s.empty() && s.size() < 4 && std::all_of(s.begin(), s.end(), ::isdigit)) {
    int n = std::stoi(s);
    if (n <= 0 || n >= NSIG) return invalid_argument("signal {} is out of range", s);
    return n;
  }
  std::string name = s;
  for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (int n = 1; n < NSIG; ++n) {
    const char* abbrev = ::sigabbrev_np(n);
    if (abbrev && name == abbrev) return n;
  }
  return invalid_argument("unknown signal \"{}\"", s);
}

}  // namespace berth::core

// Per-request context passed to every store call: which namespace, which lease, and whether the
// caller is still there.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

namespace berth {

using Timestamp = std::chrono::system_clock::time_point;

struct RequestContext {
  std::string ns;     // "" only for backend (un-namespaced) stores
  std::string lease;  // "" when the call is not under a lease
  // Returns true once the client has gone away; long operations poll it and stop early.
  std::function<bool()> cancelled = [] { return false; };
};

}  // namespace berth

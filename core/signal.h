// Signal names as users type them ("KILL", "SIGKILL", "kill", "9"), for every program that takes
// one (berth tasks kill, berth-runtime kill, the shim).
#pragma once

#include <berth/result.h>

#include <string>

namespace berth::core {

// Any signal the C library names (sigabbrev_np), with or without "SIG", any case, or a number
// in [1, NSIG). InvalidArgument names what was given.
Result<int> parse_signal(const std::string& s);

}  // namespace berth::core

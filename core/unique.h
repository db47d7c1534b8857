// Names that must not collide between callers: snapshot keys, ingest refs, lease ids.
#pragma once

#include <string>

namespace berth::core {

// "<nanoseconds since the epoch>-<pid>-<counter>": unique on a host, also across processes.
std::string unique_part();

}  // namespace berth::core

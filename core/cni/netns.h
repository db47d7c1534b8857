// Network namespaces pinned by a bind mount (as `ip netns add` does), so they outlive every
// process in them and can be joined by path.
#pragma once

#include <berth/result.h>

#include <string>

namespace berth::cni {

// A new network namespace at `path` (the file is created; its directory must exist), with its
// loopback interface up when `loopback_up` (what the CNI loopback plugin does, without a process).
Status create_netns(const std::string& path, bool loopback_up = false);
// Unmounts and removes it; a missing file is fine.
Status remove_netns(const std::string& path);
// Whether `path` is a pinned network namespace.
bool is_netns(const std::string& path);

}  // namespace berth::cni

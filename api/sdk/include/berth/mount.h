// A mount as snapshotters describe it and callers perform it (containerd.types.Mount).
#pragma once

#include <string>
#include <vector>

namespace berth {

struct Mount {
  std::string type;                  // "bind", "overlay", "tmpfs", ...
  std::string source;                // path, or "overlay"/"tmpfs"
  std::string target;                // sub-path under the mount point; usually empty
  std::vector<std::string> options;  // "ro", "rbind", "lowerdir=a:b", ...
  bool operator==(const Mount&) const = default;
};

}  // namespace berth

// Users of an image by name: an image config's `User` (and the CRI's run_as_username) may be
// "name", "uid", "name:group", "uid:gid", "uid:group" or "name:gid"; the names are the image's,
// looked up in its /etc/passwd and /etc/group, which are untrusted input: opened inside the image
// root only (openat2 RESOLVE_IN_ROOT, so a symlink to the host's /etc/shadow resolves inside the
// image), regular files only, read up to 4 MiB each.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::ocispec {

struct User {
  std::uint32_t uid = 0, gid = 0;
  std::vector<std::uint32_t> additional_gids;  // the groups of /etc/group that list the user
  bool operator==(const User&) const = default;
};

// Resolves `spec` against the image root `root_fd` (an O_PATH or O_DIRECTORY descriptor). Without
// a group, the gid is the user's primary group in /etc/passwd (0 for a uid it does not list, as
// runc and containerd do). A name that is not there is InvalidArgument naming it. `root_fd` < 0:
// numbers only.
Result<User> resolve_user(int root_fd, std::string_view spec);

// True when `spec` names a user or group rather than numbering both (it needs the image's files).
bool user_needs_lookup(std::string_view spec);

}  // namespace berth::ocispec

// Walking directory trees whose content is hostile (layer content, a container's rootfs) through
// descriptors only.
//
// A DirCursor is a position in a tree held by one descriptor. descend() opens a child with
// O_NOFOLLOW|O_DIRECTORY relative to the current directory and refuses a child on another mount;
// ascend() goes back through ".." and checks that it arrived at the directory it came from (a
// concurrent rename fails the walk instead of leading it elsewhere). So a walk never follows a
// symlink, never leaves the tree, and holds one descriptor however deep the tree is.
#pragma once

#include <berth/result.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/fd.h"

namespace berth::core {

// openat2(root, path, flags) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: absolute names, ".."
// and symlinks met on the way stay inside `root`. "" is the root itself. Returns -1 and errno.
int open_in_root(int root, const std::string& path, int flags);
// openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV: fails
// with ELOOP when any component is a symlink (an O_PATH|O_NOFOLLOW open of a final symlink
// returns the link itself), EXDEV when the path crosses a mount.
int open_beneath(int dirfd, const std::string& path, int flags);

// The names in the directory `dirfd` (which may be an O_PATH descriptor), without "." and "..".
Result<std::vector<std::string>> list_dir_at(int dirfd);

// Mount id of the file `dirfd`/`name` ("" = dirfd itself), without following a final symlink.
Result<std::uint64_t> mount_id_at(int dirfd, const std::string& name);

class DirCursor {
 public:
  // Opens `name` in `dirfd` ("" = dirfd itself) as the top of the walk.
  static Result<DirCursor> open(int dirfd, const std::string& name, std::string display);
  static Result<DirCursor> open(const std::string& path);

  int fd() const { return fd_.get(); }
  const struct stat& stat() const { return levels_.back().st; }
  std::size_t depth() const { return levels_.size() - 1; }
  // The name the current directory was entered by ("" at the top).
  const std::string& name() const { return levels_.back().name; }
  // The path below the top (for messages and relative records), optionally with a child name.
  std::string rel(const std::string& child = {}) const;
  // `display` of the top joined with rel(child): what error messages quote.
  std::string display(const std::string& child = {}) const;

  Status descend(const std::string& name);
  Status ascend();

 private:
  struct Level {
    std::string name;
    struct stat st;
  };
  DirCursor() = default;
  Fd fd_;
  std::vector<Level> levels_;
  std::uint64_t mount_id_ = 0;
  std::string display_;
};

// Removes `name` in `dirfd`: a file, or a whole tree, by unlinkat() on descriptors of its
// directories (opened O_NOFOLLOW). Symlinks are removed, never followed; a mount point anywhere
// in the tree stops the removal with FailedPrecondition. ENOENT is success. Unbounded depth.
Status remove_at(int dirfd, const std::string& name);

}  // namespace berth::core

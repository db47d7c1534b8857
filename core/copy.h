// Copies a directory tree the way a snapshot copy must: owners, modes (incl. setuid), xattrs,
// hard links (kept as links), device nodes, fifos, symlinks, sparse files (holes stay holes),
// timestamps (directories fixed after their contents). Regular files are reflinked when the
// filesystem can, else copied in the kernel with copy_file_range. The trees may hold hostile
// content (layers): both are walked through directory descriptors (core/tree.h), never by
// re-joined path strings, so a symlink in `src` is copied as a symlink and never followed.
#pragma once

#include <berth/result.h>

#include <string>

namespace berth::core {

// `dst` must exist (an empty directory); it takes `src`'s owner, mode, xattrs and times.
Status copy_tree(const std::string& src, const std::string& dst);

// Disk usage of a tree: bytes allocated and inodes, each inode counted once (hard links).
struct DiskUsage {
  std::int64_t size = 0;
  std::int64_t inodes = 0;
};
Result<DiskUsage> disk_usage(const std::string& path);

// rm -rf of `path` (whose own components are trusted) through descriptors: nothing below it is
// followed, and a mount point anywhere in it stops the removal (core/tree.h: remove_at).
Status remove_tree(const std::string& path);

}  // namespace berth::core

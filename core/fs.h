// Small filesystem helpers with errors that name the call and quote the path.
#pragma once

#include <berth/result.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace berth::core {

// mkdir -p with `mode` for every directory it creates.
Status make_dirs(const std::string& path, mode_t mode = 0711);
// make_dirs, then the last directory is made 0700 (also when it existed with a wider mode).
Status make_private_dir(const std::string& path);
Result<std::string> read_file(const std::string& path);
// Writes to a uniquely named temp file beside `path` and renames it over `path`: readers see the
// old or the new content. The file gets exactly `mode` (no umask). kDurable also fsyncs the file
// and the directory, so it holds after a power loss too; kVolatile is for runtime state that a
// reboot ends anyway (tmpfs under /run: bundles, shim and runtime state).
enum class Durability { kDurable, kVolatile };
Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode = 0644,
                         Durability durability = Durability::kDurable);
// The first executable `name` in `first_dirs`, then in $PATH (the usual default when unset); a
// name with a slash is taken as it is. nullopt when there is none.
std::optional<std::string> find_executable(const std::string& name,
                                           const std::vector<std::string>& first_dirs = {});
// Directory of the running executable (/proc/self/exe).
std::string executable_dir();
// Whether something accepts connections on the unix socket at `path` (a file alone is not enough:
// a server binds before it listens).
bool socket_accepts(const std::string& path);

// Removes a directory tree on destruction (tests and scratch space).
class TempDir {
 public:
  static Result<TempDir> create(const std::string& prefix = "berth-");
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace berth::core

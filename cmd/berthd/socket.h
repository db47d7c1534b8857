// Unix socket and lock helpers for the daemon's listening address.
#pragma once

#include <berth/result.h>

#include <string>

namespace berth::daemon {

// Prepares `path` for listening: creates its directory, refuses when another process serves it
// (a connect succeeds), removes a stale socket left by a crash, refuses a non-socket file.
Status prepare_socket_path(const std::string& path);

// An exclusive flock held for the daemon's life; a second daemon on the same root fails fast.
class LockFile {
 public:
  static Result<LockFile> acquire(const std::string& path);
  LockFile(LockFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  LockFile& operator=(LockFile&&) = delete;
  ~LockFile();

 private:
  LockFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace berth::daemon

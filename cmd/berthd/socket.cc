#include "cmd/berthd/socket.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include "core/fs.h"

namespace berth::daemon {

Status prepare_socket_path(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return invalid_argument("socket path \"{}\" is longer than {} bytes", path,
                            sizeof(addr.sun_path) - 1);
  }
  BERTH_RETURN_IF_ERROR(core::make_dirs(std::filesystem::path(path).parent_path().string(), 0711));
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return Status();
    return from_errno(errno, "stat \"{}\"", path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return failed_precondition("\"{}\" exists and is not a socket; refusing to replace it", path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return from_errno(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    return failed_precondition("another daemon is already serving \"{}\"", path);
  }
  if (err != ECONNREFUSED && err != ENOENT) return from_errno(err, "connect \"{}\"", path);
  // Nobody listens: a stale socket from a daemon that died. Safe to remove.
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return from_errno(errno, "unlink stale socket \"{}\"", path);
  return Status();
}

Result<LockFile> LockFile::acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return from_errno(errno, "open lock file \"{}\"", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
      while (!holder.empty() && holder.back() == '\n') holder.pop_back();
      return failed_precondition("another berthd (pid {}) is using this root; lock \"{}\" is held",
                                 holder, path);
    }
    return from_errno(err, "flock \"{}\"", path);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return LockFile(fd, path);
}

LockFile::~LockFile() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace berth::daemon

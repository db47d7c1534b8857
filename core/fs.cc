#include "core/fs.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace berth::core {

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) return invalid_argument("make_dirs: empty path");
  std::string partial;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) < 0 && errno != EEXIST) {
      return from_errno(errno, "mkdir \"{}\"", partial);
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) return from_errno(errno, "stat \"{}\"", path);
  if (!S_ISDIR(st.st_mode))
    return failed_precondition("\"{}\" exists and is not a directory", path);
  return Status();
}

Status make_private_dir(const std::string& path) {
  BERTH_RETURN_IF_ERROR(make_dirs(path, 0700));
  if (::chmod(path.c_str(), 0700) < 0) return from_errno(errno, "chmod 0700 \"{}\"", path);
  return Status();
}

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open \"{}\"", path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return from_errno(err, "read \"{}\"", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode,
                         Durability durability) {
  // A name of its own (two writers of one file, in one process or two, never share a temp file).
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "create a temporary file for \"{}\"", path);
  auto fail = [&](int err, const std::string& what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return from_errno(err, "{} \"{}\"", what, tmp);
  };
  // The mode as given (mkostemp made it 0600). Reading the umask means setting it, which would
  // give every other thread of the process a zero umask for that moment.
  if (::fchmod(fd, mode) < 0) return fail(errno, "chmod");
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, "write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (durability == Durability::kDurable && ::fsync(fd) < 0) return fail(errno, "fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return from_errno(err, "rename \"{}\" to \"{}\"", tmp, path);
  }
  if (durability == Durability::kVolatile) return Status();
  // And the rename itself, through the directory.
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return from_errno(errno, "open \"{}\"", dir);
  int rc = ::fsync(d);
  int err = errno;
  ::close(d);
  if (rc < 0) return from_errno(err, "fsync \"{}\"", dir);
  return Status();
}

std::optional<std::string> find_executable(const std::string& name,
                                           const std::vector<std::string>& first_dirs) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  std::vector<std::string> dirs = first_dirs;
  const char* env = std::getenv("PATH");
  std::string all = env ? env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (std::size_t start = 0; start <= all.size();) {
    auto end = all.find(':', start);
    if (end == std::string::npos) end = all.size();
    if (end > start) dirs.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  for (const auto& d : dirs) {
    std::string candidate = d + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

std::string executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

Result<TempDir> TempDir::create(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return from_errno(errno, "mkdtemp \"{}\"", tmpl);
  return TempDir(std::string(buf.data()));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool socket_accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return false;
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace berth::core

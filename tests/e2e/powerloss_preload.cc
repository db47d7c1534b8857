// An LD_PRELOAD library for power-loss tests: it records, for every file under
// $BERTH_POWERLOSS_ROOT, what berthd writes and what it syncs, so tests/e2e/powerloss.cc can
// afterwards drop from the disk exactly what a power loss would have taken (see there).
//
// Events, one line each, appended to $BERTH_POWERLOSS_LOG (paths absolute):
//   W <path> <end>         data written up to byte <end>     T <path> <size>   truncated
//   S <path>               fsync/fdatasync of a file          D <dir>           fsync of a
//   directory A                      syncfs/sync (everything synced) C <path>               a file
//   created                     M <path>          a directory made R <from> <to> <stash>  renamed
//   (<stash>: a hard link of the replaced target, or -) U <path> <stash>       unlinked (<stash>: a
//   hard link of it)   X <path>      rmdir K <path>               an existing file truncated by
//   open (content not recoverable)
// Before a rename replaces a file or an unlink removes one, the file is hard-linked into
// $BERTH_POWERLOSS_STASH, so an undone operation can bring it back.
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>

namespace {

template <typename F>
F real(const char* name) {
  static_assert(sizeof(F) == sizeof(void*));
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

std::string& root() {
  static std::string r = [] {
    const char* e = std::getenv("BERTH_POWERLOSS_ROOT");
    return std::string(e ? e : "");
  }();
  return r;
}

std::mutex& mu() {
  static std::mutex m;
  return m;
}

int log_fd() {
  static int fd = [] {
    const char* e = std::getenv("BERTH_POWERLOSS_LOG");
    if (!e) return -1;
    using Open = int (*)(const char*, int, ...);
    return real<Open>("open")(e, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }();
  return fd;
}

std::atomic<int> stash_seq{0};

std::string clean(std::string p) {
  for (std::size_t at; (at = p.find("//")) != std::string::npos;) p.erase(at, 1);
  for (std::size_t at; (at = p.find("/./")) != std::string::npos;) p.erase(at, 2);
  if (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string fd_path(int fd) {
  char link[64], buf[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string at_path(int dirfd, const char* p) {
  if (!p) return "";
  if (p[0] == '/') return clean(p);
  std::string base;
  if (dirfd == AT_FDCWD) {
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) return "";
    base = cwd;
  } else {
    base = fd_path(dirfd);
  }
  return clean(base + "/" + p);
}

bool tracked(const std::string& p) {
  return !root().empty() && p.size() > root().size() && p.compare(0, root().size(), root()) == 0 &&
         p[root().size()] == '/';
}

void emit(const std::string& line) {
  int fd = log_fd();
  if (fd < 0) return;
  std::string l = line + "\n";
  using Write = ssize_t (*)(int, const void*, size_t);
  static auto w = real<Write>("write");
  w(fd, l.data(), l.size());
}

std::string stash(const std::string& path) {
  const char* dir = std::getenv("BERTH_POWERLOSS_STASH");
  struct stat st {};
  if (!dir || ::lstat(path.c_str(), &st) < 0 || S_ISDIR(st.st_mode)) return "-";
  std::string to = std::string(dir) + "/" + std::to_string(++stash_seq);
  using Link = int (*)(const char*, const char*);
  return real<Link>("link")(path.c_str(), to.c_str()) == 0 ? to : "-";
}

void wrote(int fd, off_t end) {
  std::string p = fd_path(fd);
  if (!tracked(p)) return;
  std::lock_guard lock(mu());
  emit("W " + p + " " + std::to_string(end));
}

// After a write at the fd's offset: its new offset is where the data ended.
void wrote_here(int fd, ssize_t n) {
  if (n <= 0) return;
  off_t end = ::lseek(fd, 0, SEEK_CUR);
  if (end >= 0) wrote(fd, end);
}

void synced(int fd) {
  std::string p = fd_path(fd);
  if (!tracked(p) && p != root()) return;
  struct stat st {};
  if (::fstat(fd, &st) < 0) return;
  std::lock_guard lock(mu());
  emit(std::string(S_ISDIR(st.st_mode) ? "D " : "S ") + p);
}

void opened(const std::string& p, int flags, bool existed, int fd) {
  if (fd < 0 || !tracked(p)) return;
  std::lock_guard lock(mu());
  if (!existed && (flags & O_CREAT)) emit("C " + p);
  if (existed && (flags & O_TRUNC)) emit("K " + p);
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

// The mode argument of an open that creates (absent otherwise).
#define BERTH_MODE_ARG(flags)            \
  mode_t mode = 0;                       \
  if ((flags) & (O_CREAT | O_TMPFILE)) { \
    va_list ap;                          \
    va_start(ap, flags);                 \
    mode = va_arg(ap, mode_t);           \
    va_end(ap);                          \
  }

extern "C" {

int open(const char* path, int flags, ...) {
  BERTH_MODE_ARG(flags);
  std::string p = at_path(AT_FDCWD, path);
  bool existed = tracked(p) && exists(p);
  using F = int (*)(const char*, int, ...);
  static auto f = real<F>("open");
  int fd = f(path, flags, mode);
  opened(p, flags, existed, fd);
  return fd;
}
int open64(const char* path, int flags, ...) {
  BERTH_MODE_ARG(flags);
  return open(path, flags, mode);
}
int openat(int dirfd, const char* path, int flags, ...) {
  BERTH_MODE_ARG(flags);
  std::string p = at_path(dirfd, path);
  bool existed = tracked(p) && exists(p);
  using F = int (*)(int, const char*, int, ...);
  static auto f = real<F>("openat");
  int fd = f(dirfd, path, flags, mode);
  opened(p, flags, existed, fd);
  return fd;
}
int openat64(int dirfd, const char* path, int flags, ...) {
  BERTH_MODE_ARG(flags);
  return openat(dirfd, path, flags, mode);
}
int mkostemp(char* tmpl, int flags) {
  using F = int (*)(char*, int);
  static auto f = real<F>("mkostemp");
  int fd = f(tmpl, flags);
  if (fd >= 0 && tracked(at_path(AT_FDCWD, tmpl))) {
    std::lock_guard lock(mu());
    emit("C " + at_path(AT_FDCWD, tmpl));
  }
  return fd;
}

ssize_t write(int fd, const void* b, size_t n) {
  using F = ssize_t (*)(int, const void*, size_t);
  static auto f = real<F>("write");
  ssize_t r = f(fd, b, n);
  if (fd != log_fd()) wrote_here(fd, r);
  return r;
}
ssize_t writev(int fd, const struct iovec* v, int n) {
  using F = ssize_t (*)(int, const struct iovec*, int);
  static auto f = real<F>("writev");
  ssize_t r = f(fd, v, n);
  wrote_here(fd, r);
  return r;
}
ssize_t pwrite(int fd, const void* b, size_t n, off_t off) {
  using F = ssize_t (*)(int, const void*, size_t, off_t);
  static auto f = real<F>("pwrite");
  ssize_t r = f(fd, b, n, off);
  if (r > 0) wrote(fd, off + r);
  return r;
}
ssize_t pwrite64(int fd, const void* b, size_t n, off_t off) { return pwrite(fd, b, n, off); }
ssize_t pwritev(int fd, const struct iovec* v, int n, off_t off) {
  using F = ssize_t (*)(int, const struct iovec*, int, off_t);
  static auto f = real<F>("pwritev");
  ssize_t r = f(fd, v, n, off);
  if (r > 0) wrote(fd, off + r);
  return r;
}
ssize_t pwritev64(int fd, const struct iovec* v, int n, off_t off) {
  return pwritev(fd, v, n, off);
}
int ftruncate(int fd, off_t size) {
  using F = int (*)(int, off_t);
  static auto f = real<F>("ftruncate");
  int r = f(fd, size);
  std::string p = fd_path(fd);
  if (r == 0 && tracked(p)) {
    std::lock_guard lock(mu());
    emit("T " + p + " " + std::to_string(size));
  }
  return r;
}
int ftruncate64(int fd, off_t size) { return ftruncate(fd, size); }
int fallocate(int fd, int mode, off_t off, off_t len) {
  using F = int (*)(int, int, off_t, off_t);
  static auto f = real<F>("fallocate");
  int r = f(fd, mode, off, len);
  if (r == 0 && !(mode & FALLOC_FL_KEEP_SIZE)) wrote(fd, off + len);
  return r;
}
int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }

int fsync(int fd) {
  using F = int (*)(int);
  static auto f = real<F>("fsync");
  int r = f(fd);
  if (r == 0) synced(fd);
  return r;
}
int fdatasync(int fd) {
  using F = int (*)(int);
  static auto f = real<F>("fdatasync");
  int r = f(fd);
  if (r == 0) synced(fd);
  return r;
}
int syncfs(int fd) {
  using F = int (*)(int);
  static auto f = real<F>("syncfs");
  int r = f(fd);
  if (r == 0) {
    std::lock_guard lock(mu());
    emit("A");
  }
  return r;
}
void sync() {
  using F = void (*)();
  static auto f = real<F>("sync");
  f();
  std::lock_guard lock(mu());
  emit("A");
}

static int renamed(const std::string& from, const std::string& to, int r, const std::string& s) {
  if (r == 0 && (tracked(from) || tracked(to))) {
    std::lock_guard lock(mu());
    emit("R " + from + " " + to + " " + s);
  }
  return r;
}
int rename(const char* a, const char* b) {
  using F = int (*)(const char*, const char*);
  static auto f = real<F>("rename");
  std::string from = at_path(AT_FDCWD, a), to = at_path(AT_FDCWD, b);
  std::string s = tracked(to) ? stash(to) : "-";
  return renamed(from, to, f(a, b), s);
}
int renameat(int da, const char* a, int db, const char* b) {
  using F = int (*)(int, const char*, int, const char*);
  static auto f = real<F>("renameat");
  std::string from = at_path(da, a), to = at_path(db, b);
  std::string s = tracked(to) ? stash(to) : "-";
  return renamed(from, to, f(da, a, db, b), s);
}
int renameat2(int da, const char* a, int db, const char* b, unsigned flags) {
  using F = int (*)(int, const char*, int, const char*, unsigned);
  static auto f = real<F>("renameat2");
  std::string from = at_path(da, a), to = at_path(db, b);
  std::string s = tracked(to) ? stash(to) : "-";
  return renamed(from, to, f(da, a, db, b, flags), s);
}

static int unlinked(const std::string& p, bool dir, const std::function<int()>& call) {
  if (!tracked(p)) return call();
  std::string s = dir ? "-" : stash(p);
  int r = call();
  if (r == 0) {
    std::lock_guard lock(mu());
    emit(dir ? "X " + p : "U " + p + " " + s);
  }
  return r;
}
int unlink(const char* path) {
  using F = int (*)(const char*);
  static auto f = real<F>("unlink");
  return unlinked(at_path(AT_FDCWD, path), false, [&] { return f(path); });
}
int rmdir(const char* path) {
  using F = int (*)(const char*);
  static auto f = real<F>("rmdir");
  return unlinked(at_path(AT_FDCWD, path), true, [&] { return f(path); });
}
int unlinkat(int dirfd, const char* path, int flags) {
  using F = int (*)(int, const char*, int);
  static auto f = real<F>("unlinkat");
  return unlinked(at_path(dirfd, path), flags & AT_REMOVEDIR,
                  [&] { return f(dirfd, path, flags); });
}
int mkdir(const char* path, mode_t mode) {
  using F = int (*)(const char*, mode_t);
  static auto f = real<F>("mkdir");
  int r = f(path, mode);
  std::string p = at_path(AT_FDCWD, path);
  if (r == 0 && tracked(p)) {
    std::lock_guard lock(mu());
    emit("M " + p);
  }
  return r;
}
int mkdirat(int dirfd, const char* path, mode_t mode) {
  using F = int (*)(int, const char*, mode_t);
  static auto f = real<F>("mkdirat");
  int r = f(dirfd, path, mode);
  std::string p = at_path(dirfd, path);
  if (r == 0 && tracked(p)) {
    std::lock_guard lock(mu());
    emit("M " + p);
  }
  return r;
}

}  // extern "C"

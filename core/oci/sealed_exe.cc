#include "core/oci/sealed_exe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/fd.h"

namespace berth::oci {
namespace {

// Set across the re-exec: a second attempt means sealing did not take, never loop.
constexpr const char* kMarker = "_BERTH_SEALED_EXE";

constexpr unsigned kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

int execveat_(int fd, char* const argv[], char* const envp[]) {
  return static_cast<int>(::syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH));
}

// A read-only bind mount of the binary, attached nowhere.
Result<core::Fd> read_only_mount() {
  core::Fd tree(::open_tree(AT_FDCWD, "/proc/self/exe", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree.get() < 0) return from_errno(errno, "open_tree /proc/self/exe");
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    return from_errno(errno, "make the runtime's binary mount read-only");
  return tree;
}

// A sealed copy in memory.
Result<core::Fd> sealed_memfd() {
  core::Fd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (self.get() < 0) return from_errno(errno, "open /proc/self/exe");
  struct stat st {};
  if (::fstat(self.get(), &st) < 0) return from_errno(errno, "stat /proc/self/exe");
  core::Fd mem(::memfd_create("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (mem.get() < 0) return from_errno(errno, "memfd_create");
  off_t done = 0;
  while (done < st.st_size) {
    ssize_t n =
        ::sendfile(mem.get(), self.get(), &done, static_cast<std::size_t>(st.st_size - done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return from_errno(errno, "copy the runtime's binary into a memfd");
    }
    if (n == 0) return internal_error("copy the runtime's binary: it shrank");
  }
  if (::fcntl(mem.get(), F_ADD_SEALS, kSeals) < 0) return from_errno(errno, "seal the memfd");
  return mem;
}

}  // namespace

bool exe_is_sealed() {
  core::Fd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (self.get() < 0) return false;
  struct statvfs sv {};
  if (::fstatvfs(self.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY)) return true;
  int seals = ::fcntl(self.get(), F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_SEAL);
}

Status reexec_sealed(char* const argv[], char* const envp[]) {
  if (exe_is_sealed()) {
    if (std::getenv(kMarker)) {
      ::unsetenv(kMarker);
      // An exec through a descriptor names the process after the descriptor's number: give it
      // its own name back (ps, top, pgrep).
      if (argv && argv[0]) {
        const char* base = std::strrchr(argv[0], '/');
        ::prctl(PR_SET_NAME, base ? base + 1 : argv[0], 0, 0, 0);
      }
    }
    return Status();
  }
  if (std::getenv(kMarker))
    return internal_error("re-executed through a sealed binary, yet /proc/self/exe is writable");
  std::vector<char*> env;
  std::string marker = std::string(kMarker) + "=1";
  for (char* const* e = envp; e && *e; ++e) env.push_back(*e);
  env.push_back(marker.data());
  env.push_back(nullptr);
  Status first;
  if (auto fd = read_only_mount(); fd.ok()) {
    execveat_(fd->get(), argv, env.data());
    first = from_errno(errno, "exec the runtime through its read-only mount");
  } else {
    first = fd.status();
  }
  auto mem = sealed_memfd();
  if (!mem.ok()) {
    return Status(mem.status().code(),
                  fmt::format("cannot protect the runtime's binary from containers ({}; {})",
                              first.message(), mem.status().message()));
  }
  execveat_(mem->get(), argv, env.data());
  return from_errno(errno, "exec the runtime from a sealed memfd");
}

}  // namespace berth::oci

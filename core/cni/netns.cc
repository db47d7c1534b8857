#include "core/cni/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace berth::cni {

Status create_netns(const std::string& path, bool loopback_up) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
  if (fd < 0) return from_errno(errno, "create {}", path);
  ::close(fd);
  // A thread of its own: unshare changes only the calling thread's namespace, and the thread ends
  // with it, so no other work of the daemon ever runs inside the new namespace.
  Status st;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) < 0) {
      st = from_errno(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) < 0) {
      st = from_errno(errno, "bind-mount the new network namespace on {}", path);
      return;
    }
    if (loopback_up) {
      // Up, the kernel gives lo 127.0.0.1/8 and ::1 itself.
      int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
      if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
          (ifr.ifr_flags |= IFF_UP, ::ioctl(s, SIOCSIFFLAGS, &ifr) < 0))
        st = from_errno(errno, "bring lo up in {}", path);
      if (s >= 0) ::close(s);
    }
  });
  t.join();
  if (!st.ok()) remove_netns(path).ignore();
  return st;
}

bool is_netns(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) < 0) return false;
  return fs.f_type == NSFS_MAGIC;
}

Status remove_netns(const std::string& path) {
  if (::access(path.c_str(), F_OK) < 0 && errno == ENOENT) return Status();
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL &&
      errno != ENOENT)
    return from_errno(errno, "unmount network namespace {}", path);
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return from_errno(errno, "remove {}", path);
  return Status();
}

}  // namespace berth::cni

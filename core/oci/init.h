// What a container process does between clone and exec. The container's first process (init)
// builds the whole environment; a process exec'd into a running container only finishes its own
// credentials. Both run in a freshly forked child and never return: they exec or exit, reporting
// errors to the parent over the sync socket ("error <message>").
//
// Sync protocol (SOCK_SEQPACKET, one message per step):
//   parent -> child  "go"       uid/gid maps written, cgroup joined
//   child -> parent  "hooks"    namespaces and mounts ready: run prestart/createRuntime now
//   parent -> child  "ok"
//   child -> parent  "ready"    init: waiting on exec.fifo; exec: about to exec
//   child -> parent  "error <message>" at any point
#pragma once

#include <optional>
#include <string>

#include "core/oci/seccomp.h"
#include "core/oci/spec.h"

namespace berth::oci {

struct InitConfig {
  const Spec* spec = nullptr;
  const Process* process = nullptr;
  std::string rootfs;  // absolute host path (init only)
  std::string bundle;
  int sync_fd = -1;
  int fifo_fd = -1;             // O_PATH exec.fifo (init only)
  int console_fd = -1;          // where to send the pty master (terminal only)
  int stdio[3] = {-1, -1, -1};  // fds to become 0, 1, 2 (-1: inherit the caller's)
  bool exec_mode = false;       // joining a running container
  bool no_pivot = false;
  int unshare_flags = 0;                   // namespaces to create after joining those given by path
  std::vector<std::pair<int, int>> join;   // (fd, CLONE_NEW*) to setns, user first
  std::vector<std::string> cgroup_dirs;    // for a "cgroup" mount: the container's cgroup dirs
  std::vector<std::string> cgroup_mounts;  // ... and their hierarchy names ("cpu", "unified")
  std::string state_json;                  // for startContainer hooks and the seccomp listener
  std::optional<SeccompFilter>* seccomp = nullptr;
  int preserve_fds = 0;  // fds 3 .. 3+N-1 of the caller reach the process (runc's --preserve-fds)
};

[[noreturn]] void container_main(InitConfig& c);

// Messages on the sync socket.
bool sync_send(int fd, std::string_view msg);
// Empty on EOF.
std::string sync_recv(int fd);

// Resolves `path` inside `root` (following symlinks as if root were /), creating missing
// directories, and the last component as a directory or an empty file. Returns an O_PATH fd.
Result<int> open_in_root(int root_fd, const std::string& path, bool create, bool as_dir);
// The /proc/self/fd path of a descriptor (to hand an O_PATH descriptor to calls taking names).
inline std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace berth::oci

// Inside libberth-oci's lifecycle code: what create (create.cc) and the other verbs
// (container.cc) share.
#pragma once

#include <berth/result.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/fd.h"
#include "core/oci/container.h"
#include "core/oci/spec.h"

namespace berth::oci::detail {

using nlohmann::json;

// /proc/<pid>/stat: field 3 (state) and 22 (start time). nullopt when the pid does not exist.
struct ProcStat {
  char state = '?';
  std::uint64_t start = 0;
};
std::optional<ProcStat> proc_stat(pid_t pid);

bool alive(pid_t pid, std::uint64_t start);

// Whether a signal is pending for the process (a `kill` just sent that it has not acted on yet).
bool signal_pending(pid_t pid);

// Capabilities the runtime itself cannot grant: those missing from its bounding set (without a
// user namespace, a container's set is a subset of it). Refused at create with the set named,
// rather than failing silently after start.
Status check_capabilities(const Process& p, bool new_userns);

// A raw clone that returns twice like fork (flags may include CLONE_NEW* and CLONE_PARENT).
pid_t clone_process(unsigned long flags);

Status write_id_map(pid_t pid, const char* file, const std::vector<IdMapping>& maps);

// Where a terminal's pty master goes: the caller's console socket, or (no socket: `run -t`,
// `exec -t`) back to us over a socketpair. `child` is handed to the container process.
struct ConsoleEnds {
  core::Fd child, parent;
};
Result<ConsoleEnds> console_ends(bool terminal, const std::string& socket);

const char* ns_proc_name(const std::string& type);

struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

json state_to_json(const ContainerState& s);

Result<ContainerState> state_from_json(const std::string& text, const std::string& where);

// The device rules every container gets after its own (runc's list): mknod of anything, and the
// standard nodes and ptys read/write.
Resources with_default_devices(Resources r);

}  // namespace berth::oci::detail

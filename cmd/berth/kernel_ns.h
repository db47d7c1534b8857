// Kernel namespaces as /proc shows them (what util-linux lsns reads), and which of them belong to
// Berth containers. Shared by `berth lsns` and the other operator tools.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cmd/berth/client.h"

namespace berth::cli {

// The types in /proc/PID/ns, with lsns's names.
const std::vector<std::string>& kernel_ns_types();

struct KernelNamespace {
  std::uint64_t inode = 0;
  std::string type;
  std::vector<pid_t> pids;  // processes in it, ascending
  uid_t uid = 0;            // of the lowest pid
  std::string command;      // of the lowest pid (its comm when the cmdline is empty)
  std::string container;    // "<berthd namespace>/<id>" when a Berth container owns it
};

// Every namespace of every process, sorted by inode (lsns's order).
std::vector<KernelNamespace> read_kernel_namespaces();
// The namespace inode of `pid` of `type` (0 when unreadable).
std::uint64_t ns_inode(pid_t pid, const std::string& type);
// "(type, inode)" -> "<ns>/<id>" for the namespaces the init of each running task has apart from
// the host's (the daemon's answer; empty when it cannot be asked).
std::map<std::pair<std::string, std::uint64_t>, std::string> container_namespaces(Client* c);

}  // namespace berth::cli

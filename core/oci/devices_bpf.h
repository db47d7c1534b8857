// Device rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, as runc and
// crun load. cgroup v2 has no devices controller; the kernel asks the programs attached to a
// cgroup (and its ancestors) about every open and mknod of a device node.
//
// The rules keep cgroup v1's semantics: the list starts allowing everything; a rule for every
// device ("a", any major and minor, rwm) switches the default and drops what came before; any
// other rule is an exception checked after the later ones (the last matching rule decides). An
// allow rule matches when it grants every access asked for, a deny rule when it covers any.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <vector>

#include "core/fd.h"
#include "core/oci/spec.h"

namespace berth::oci::devices {

// The program's instructions (struct bpf_insn, 8 bytes each), for tests and for loading.
std::vector<std::uint64_t> program(const std::vector<DeviceRule>& rules);

// Loads the program for `rules` and attaches it to the cgroup v2 directory `dir`
// (BPF_F_ALLOW_MULTI), then detaches the programs attached there before, so an update replaces
// the rules. Errors name the bpf() call and, for a refused program, the verifier's log.
Status apply(const std::string& dir, const std::vector<DeviceRule>& rules);

}  // namespace berth::oci::devices

// The runtime's own binary, out of a container's reach (CVE-2019-5736).
//
// libberth-oci clones container processes from the running program (berth-shim, berth-runtime)
// without exec'ing anything in between, so until a container process execs its own program its
// /proc/self/exe is the runtime's binary on the host, and a container whose entrypoint is
// `#!/proc/self/exe` execs that binary inside the container. Writing to it there (through
// /proc/self/exe, /proc/<pid>/exe or a descriptor re-opened from them) would overwrite the host's
// runtime. So the programs that create containers first re-exec themselves through a descriptor
// that cannot be opened for writing:
//
//  1. a detached, read-only bind mount of the binary (open_tree(OPEN_TREE_CLONE) +
//     mount_setattr(MOUNT_ATTR_RDONLY)): /proc/self/exe then names the file on that mount, so any
//     open for writing fails with EROFS. The mount is in no mount namespace (nothing can be
//     mounted over it or make it writable without CAP_SYS_ADMIN in the initial user namespace),
//     costs no copy and shares the page cache with the installed file;
//  2. where the new mount API is not allowed (old kernels, unprivileged user namespaces), a
//     sealed memfd copy (F_SEAL_WRITE|SHRINK|GROW|SEAL), as runc and crun do.
//
// Container processes are also made non-dumpable until they exec (see init.cc), so a container
// cannot ptrace them or open their /proc files while they still run the runtime's code.
#pragma once

#include <berth/result.h>

namespace berth::oci {

// Whether /proc/self/exe is already write-protected (a read-only mount or a sealed memfd).
bool exe_is_sealed();

// Re-executes the running program with argv/envp through a write-protected descriptor of its
// own binary, unless exe_is_sealed(). Returns OK only when already sealed; otherwise it does not
// return, or returns the error that prevented it (callers must then refuse to run containers).
Status reexec_sealed(char* const argv[], char* const envp[]);

}  // namespace berth::oci

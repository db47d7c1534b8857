// Inside libberth-oci: the init's root filesystem steps (rootfs.cc), in the order container_main
// runs them.
#pragma once

#include <berth/result.h>

#include <string>

#include "core/oci/init.h"
#include "core/oci/spec.h"

namespace berth::oci {

// MS_SHARED/MS_PRIVATE/MS_SLAVE (| MS_REC) for a propagation name; 0 for "".
unsigned long propagation_flags(const std::string& p);
// A shared mount holding the rootfs would propagate the container's mounts to the host: made
// private (a slave keeps its master).
Status make_rootfs_parent_private(const std::string& rootfs);
// One spec mount: its destination resolved inside `root_fd`, the mount made detached, given its
// flags and propagation, and attached onto that descriptor.
Status do_mount(const InitConfig& c, int root_fd, const Mount& m);
// /dev nodes (or binds of the host's in a user namespace), links, ptmx.
Status setup_dev(const InitConfig& c, int root_fd);
// pivot_root(".", ".") and detach the old root, or MS_MOVE + chroot with --no-pivot.
Status pivot(const InitConfig& c);
Status mask_paths(const Spec& s);
Status sysctls(const Spec& s);

}  // namespace berth::oci

// The OCI specs of the CRI's pod sandboxes and containers: core/ocispec::generate (the one spec
// builder) plus what only the CRI has: namespaces joined from the sandbox's pause process,
// the pod's cgroup parent, its /dev/shm, sysctls, Kubernetes' command/args rules, resources and
// the security context, and the annotations containerd's CRI sets (io.kubernetes.cri.*).
#pragma once

#include <berth/result.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/ocispec/user.h"
#include "cri/runtime/v1/api.pb.h"

namespace berth::cri {

namespace v1 = ::runtime::v1;

// What a container takes from its sandbox.
struct SandboxJoin {
  std::string id;
  std::uint32_t pid = 0;    // the pause process (its /proc/<pid>/ns/* are joined)
  std::string netns_path;   // "" with host network
  std::string hosts_path, resolv_conf_path, hostname_path;
  std::string shm_path;     // the pod's /dev/shm ("" with host IPC)
};

// <cgroup_parent>/<id>, or /<ns>/<id> without a parent; InvalidArgument for a parent that is
// not absolute or climbs out with "..".
Result<std::string> cgroups_path(const v1::PodSandboxConfig& pod, const std::string& ns,
                                 const std::string& id);

Result<nlohmann::json> sandbox_spec(const std::string& ns, const std::string& id,
                                    const v1::PodSandboxConfig& pod, const SandboxJoin& join);

// The user a container runs as, as containerd's CRI picks it: run_as_username, else run_as_user,
// else the image's User; run_as_group replaces the group. "" when none is set (root). It is
// resolved against the image's /etc/passwd and /etc/group (ocispec::resolve_user).
Result<std::string> user_spec(const v1::ContainerConfig& c, const std::string& image_config);

// `image_config`: the image's config document. `user`: user_spec resolved in the image (nullopt
// when user_spec is ""). `target_pid`: the process whose pid namespace a TARGET pid mode joins.
Result<nlohmann::json> container_spec(const std::string& ns, const std::string& id,
                                      const v1::ContainerConfig& c,
                                      const v1::PodSandboxConfig& pod, const SandboxJoin& join,
                                      const std::string& image_config,
                                      const std::string& image_name,
                                      const std::optional<ocispec::User>& user,
                                      std::uint32_t target_pid);

// The OCI linux.resources of a CRI resources message (what UpdateContainerResources sends the
// task, and what container_spec puts in the spec).
Result<nlohmann::json> linux_resources(const v1::LinuxContainerResources& r);

}  // namespace berth::cri

// The one spec builder: the OCI runtime spec (config.json) for a container made from an image,
// as containerd's defaults plus the image config (entrypoint/cmd, env, working dir, user) plus
// the caller's options. Used by the CLI (`berth run`, `containers create`) and by the daemon
// (the CRI builds its containers here too). Pure: no daemon, no files; errors name the option.
#pragma once

#include <berth/result.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/images/model.h"
#include "core/ocispec/user.h"

namespace berth::ocispec {

struct SpecOptions {
  std::string ns, id;
  std::vector<std::string> args;  // replaces the image's cmd (entrypoint kept)
  // Replaces the image's entrypoint, and then its cmd too (`args` still follow): Kubernetes'
  // `command`.
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<std::string> env;   // NAME=VALUE, added after the image's
  std::string cwd, user;          // user: UID[:GID] (names: see resolved_user)
  // The user resolved against the image's files (user.h): replaces `user` and the image's User.
  std::optional<User> resolved_user;
  std::vector<std::uint32_t> additional_gids;
  std::string cgroups_path;       // "": /<ns>/<id>
  std::string hostname;           // "": the id
  bool tty = false;
  bool net_host = false;
  bool privileged = false;
  bool read_only = false;
  std::vector<std::string> cap_add, cap_drop;
  std::vector<std::string> mounts;  // ctr's --mount: type=bind,src=/a,dst=/b,options=rbind:ro
  std::vector<std::string> annotations;  // KEY=VALUE
  std::int64_t memory_limit = 0;    // bytes
  double cpus = 0;                  // CFS quota = cpus * period
};

// `config_json` is the image config document (may be empty: no image defaults).
Result<nlohmann::json> generate(const std::string& config_json, const SpecOptions& o);

// A network namespace made by the daemon (io.berth.network.v1), joined by path, and the files it
// wrote for it bind-mounted over the image's: what `berth run --net` and the CRI's pods use.
struct NetworkJoin {
  std::string netns_path;
  std::string hosts_path, resolv_conf_path, hostname_path;
  std::string hostname;  // "" keeps the spec's
};
Status join_network(nlohmann::json& spec, const NetworkJoin& j);

// Sets the namespace `type` (network, ipc, uts, pid, mount, ...) of the spec: a new one (`path`
// ""), the one at `path` (/proc/<pid>/ns/ipc), or, with `host`, none (the host's).
void set_namespace(nlohmann::json& spec, const std::string& type, const std::string& path,
                   bool host = false);

}  // namespace berth::ocispec

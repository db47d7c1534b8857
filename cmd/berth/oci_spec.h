// The OCI runtime spec for a container made from an image, as containerd's defaults plus the
// image config (entrypoint/cmd, env, working dir, user) plus command-line options.
#pragma once

#include <berth/result.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/images/model.h"

namespace berth::cli {

struct SpecOptions {
  std::string ns, id;
  std::vector<std::string> args;  // replaces the image's cmd (entrypoint kept)
  std::vector<std::string> env;   // NAME=VALUE, added after the image's
  std::string cwd, user;          // user: UID[:GID]
  bool tty = false;
  bool net_host = false;
  bool privileged = false;
  bool read_only = false;
  std::vector<std::string> cap_add, cap_drop;
  std::vector<std::string> mounts;  // type=bind,src=/a,dst=/b,options=rbind:ro
  std::vector<std::string> annotations;  // KEY=VALUE
  std::int64_t memory_limit = 0;    // bytes
  double cpus = 0;                  // CFS quota = cpus * period
};

// `config_json` is the image config document (may be empty: no image defaults).
Result<nlohmann::json> generate_spec(const std::string& config_json, const SpecOptions& o);

// "512m", "1g", "1048576" -> bytes.
Result<std::int64_t> parse_size(const std::string& s);

}  // namespace berth::cli

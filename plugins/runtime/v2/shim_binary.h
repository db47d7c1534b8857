// The shim program as a command: which binary serves a runtime name, `<shim> start` (prints the
// address of the serving shim it detached) and `<shim> delete` (cleans up after a shim that is
// gone and reports its task's exit), with containerd's flags and environment.
#pragma once

#include <berth/runtime.h>

#include <chrono>
#include <map>
#include <string>

#include "plugins/runtime/v2/options.h"

namespace berth::plugins::runtime_v2 {

// The request's runtime_path, else the configured binary for `runtime`, else an absolute runtime
// name, else containerd's rule (io.containerd.runc.v2 -> containerd-shim-runc-v2); a bare name is
// looked for next to berthd, then in PATH. NotFound says where it looked.
Result<std::string> resolve_shim(const std::map<std::string, std::string>& shims,
                                 const std::string& daemon_binary, const std::string& runtime,
                                 const std::string& runtime_path);

struct ShimCommand {
  const Paths& paths;
  std::string binary, ns, id, bundle;
};

// Runs `<shim> start` in the bundle with the runtime options (a serialised Any, may be empty)
// on stdin; returns the address it printed.
Result<std::string> start_shim(const ShimCommand& c, const std::string& options,
                               std::chrono::milliseconds timeout);
// Runs `<shim> delete`; the exit it reports, or `fallback` where it reports none.
runtime::Exit delete_shim(const ShimCommand& c, runtime::Exit fallback);

}  // namespace berth::plugins::runtime_v2

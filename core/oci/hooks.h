// OCI hooks: each runs with the container state as JSON on stdin, its own args and env, and is
// killed when its timeout passes. A failing hook's error names the hook kind, path, exit status
// and the end of what it printed.
#pragma once

#include <berth/result.h>

#include <string_view>

#include "core/oci/spec.h"

namespace berth::oci {

Status run_hook(const Hook& hook, const std::string& state_json, std::string_view kind);
// Runs them in order; stops at the first failure.
Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                 std::string_view kind);

}  // namespace berth::oci

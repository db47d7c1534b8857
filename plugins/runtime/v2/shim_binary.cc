#include "plugins/runtime/v2/shim_binary.h"

#include <berth/proto_time.h>

#include <filesystem>

#include "core/fs.h"
#include "core/log.h"
#include "core/process.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"

namespace berth::plugins::runtime_v2 {
namespace {

// Output of a helper program without its trailing newline.
std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> argv_of(const ShimCommand& c, const char* action) {
  return {c.binary,          "-namespace",          c.ns,  "-address", c.paths.grpc_address,
          "-publish-binary", c.paths.daemon_binary, "-id", c.id,       action};
}

}  // namespace

Result<std::string> resolve_shim(const std::map<std::string, std::string>& shims,
                                 const std::string& daemon_binary, const std::string& runtime,
                                 const std::string& runtime_path) {
  std::string name;
  if (!runtime_path.empty()) {
    name = runtime_path;
  } else if (auto it = shims.find(runtime); it != shims.end()) {
    name = it->second;
  } else if (!runtime.empty() && runtime[0] == '/') {
    name = runtime;
  } else {
    // containerd's rule: the last two dot-separated parts of the name.
    auto last = runtime.rfind('.');
    auto prev =
        last == std::string::npos || last == 0 ? std::string::npos : runtime.rfind('.', last - 1);
    if (last == std::string::npos || prev == std::string::npos || last + 1 >= runtime.size())
      return invalid_argument(
          "runtime \"{}\" is not of the form <domain>.<name>.<version> (io.containerd.runc.v2)",
          runtime);
    name = fmt::format("containerd-shim-{}-{}", runtime.substr(prev + 1, last - prev - 1),
                       runtime.substr(last + 1));
  }
  std::vector<std::string> first;
  if (!daemon_binary.empty())
    first.push_back(std::filesystem::path(daemon_binary).parent_path().string());
  if (auto found = core::find_executable(name, first)) return *found;
  if (name.find('/') != std::string::npos)
    return not_found("runtime \"{}\": shim {} is not an executable file", runtime, name);
  return not_found("runtime \"{}\": shim binary {} not found next to berthd or in PATH", runtime,
                   name);
}

Result<std::string> start_shim(const ShimCommand& c, const std::string& options,
                               std::chrono::milliseconds timeout) {
  core::SpawnOptions so;
  so.cwd = c.bundle;
  so.stdin_data = options;
  so.env = {{"TTRPC_ADDRESS", c.paths.ttrpc_address}, {"GOMAXPROCS", "2"}};
  so.timeout = timeout;
  auto started = core::run_program(argv_of(c, "start"), so);
  if (!started.ok()) return started.status().with_context("start shim");
  if (started->exit_code != 0) {
    return internal_error("start shim {}: exit status {}: {}", c.binary, started->exit_code,
                          trimmed(started->err));
  }
  std::string address = trimmed(started->out);
  if (address.empty()) return internal_error("start shim {}: it printed no address", c.binary);
  return address;
}

runtime::Exit delete_shim(const ShimCommand& c, runtime::Exit fallback) {
  core::SpawnOptions so;
  so.cwd = c.bundle;
  so.env = {{"TTRPC_ADDRESS", c.paths.ttrpc_address}};
  so.timeout = std::chrono::seconds(10);
  auto r = core::run_program(argv_of(c, "delete"), so);
  ::containerd::task::v2::DeleteResponse resp;
  runtime::Exit exit = fallback;
  if (r.ok() && r->exit_code == 0 && resp.ParseFromString(r->out)) {
    if (resp.pid()) exit.pid = resp.pid();
    exit.status = resp.exit_status();
    if (resp.exited_at().seconds()) exit.at = from_proto(resp.exited_at());
  } else {
    log::warn("shim delete failed",
              {{"id", c.id}, {"error", r.ok() ? r->err : r.status().message()}});
  }
  return exit;
}

}  // namespace berth::plugins::runtime_v2

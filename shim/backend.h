// How berth-shim creates and drives a container: libberth-oci in the shim's own process (the
// default: nothing exec'd on the hot path), or an external runc-compatible binary named by the
// runc options' BinaryName (runc, crun, berth-runtime). Either way the container's processes end
// up children of the shim (its own clone, or re-parented to the subreaper).
#pragma once

#include <berth/result.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/oci/spec.h"

namespace berth::shim {

struct CreateRequest {
  std::string id, bundle;
  bool no_pivot = false, no_new_keyring = false;
  bool terminal = false;
  int stdio[3] = {-1, -1, -1};
};

struct ExecRequest {
  std::string id, exec_id;
  oci::Process process;
  std::string process_json;  // the same, as the client sent it
  int stdio[3] = {-1, -1, -1};
};

struct Started {
  pid_t pid = 0;
  std::string cgroup_path;  // create only
  int console = -1;         // the pty master when a terminal was asked for (owned by the caller)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Result<Started> create(const CreateRequest& r) = 0;
  virtual Status start(const std::string& id) = 0;
  virtual Result<Started> exec(const ExecRequest& r) = 0;
  virtual Status kill(const std::string& id, int signal, bool all) = 0;
  // Removes the container's state and cgroup (force: kills what is left).
  virtual Status remove(const std::string& id) = 0;
  virtual Status pause(const std::string& id) = 0;
  virtual Status resume(const std::string& id) = 0;
  virtual Result<std::vector<pid_t>> pids(const std::string& id) = 0;
  // `resources` is linux.resources JSON.
  virtual Status update(const std::string& id, const std::string& resources) = 0;
};

// libberth-oci, its state in <bundle>/.runtime.
std::unique_ptr<Backend> in_process_backend(const std::string& bundle);
// A runc-compatible binary; state under `root` (default <bundle>/.runtime), errors from its
// --log file.
std::unique_ptr<Backend> binary_backend(const std::string& binary, const std::string& root,
                                        const std::string& bundle);

}  // namespace berth::shim

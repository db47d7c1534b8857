// libberth-oci: the OCI container lifecycle (create, start, state, kill, delete, exec, pause,
// resume, ps) over a state directory per container, the way runc keeps it:
//   <root>/<id>/state.json   id, bundle, init pid + start time, cgroup path, created, config
//   <root>/<id>/exec.fifo    exists between create and start; the init blocks on it
// `create` forks the container init (clone3 into the new namespaces, no re-exec of any binary),
// which sets everything up and waits on exec.fifo; `start` opens the fifo, releasing it to exec
// the process.
#pragma once

#include <berth/result.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/oci/spec.h"

namespace berth::oci {

enum class RunState { kCreating, kCreated, kRunning, kPaused, kStopped };
std::string status_name(RunState s);

struct ContainerState {
  std::string id, bundle, rootfs;
  pid_t pid = 0;
  std::uint64_t pid_start = 0;  // /proc/<pid>/stat starttime: detects a recycled pid
  RunState status = RunState::kStopped;
  std::string cgroup_path;
  std::chrono::system_clock::time_point created;
  std::map<std::string, std::string> annotations;
  std::string owner;
  // The OCI state document (ociVersion, id, status, pid, bundle, annotations).
  std::string oci_json() const;
  // runc's `state` output (also rootfs, created, owner).
  std::string runc_json() const;
};

struct RuntimeOptions {
  std::string root = "/run/berth-runtime";  // state directories
  bool systemd_cgroup = false;              // refused: cgroupsPath is a path here
};

struct CreateOptions {
  std::string bundle = ".";
  std::string pid_file;
  std::string console_socket;
  bool no_pivot = false;
  bool no_new_keyring = false;
  // Stay the parent of the init (run, the shim): the caller reaps it.
  bool keep_parent = false;
  // When the spec asks for a terminal and there is no console socket, the pty master comes back
  // here (run -t relays it).
  int* console_master = nullptr;
  // The init's stdin, stdout, stderr (-1: the caller's own).
  int stdio[3] = {-1, -1, -1};
  // The caller's fds 3 .. 3+N-1 are passed on to the container's process; nothing else is.
  int preserve_fds = 0;
};

struct ExecOptions {
  Process process;
  std::string pid_file;
  std::string console_socket;
  bool detach = false;
  int* console_master = nullptr;
  int stdio[3] = {-1, -1, -1};
  int preserve_fds = 0;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions o) : o_(std::move(o)) {}

  Result<ContainerState> create(const std::string& id, const CreateOptions& c);
  Status start(const std::string& id);
  Result<ContainerState> state(const std::string& id) const;
  Result<std::vector<ContainerState>> list() const;
  // signal by name ("KILL", "SIGTERM") or number; all = every process in the cgroup.
  Status kill(const std::string& id, int signal, bool all);
  Status remove(const std::string& id, bool force);
  // Starts a process in a running container; returns its pid (host view).
  Result<pid_t> exec(const std::string& id, const ExecOptions& e);
  Status pause(const std::string& id);
  Status resume(const std::string& id);
  Result<std::vector<pid_t>> pids(const std::string& id) const;
  Status update(const std::string& id, const Resources& r);
  // The cgroup statistics as JSON (runc events --stats shape, data part).
  Result<std::string> stats(const std::string& id) const;

  const RuntimeOptions& options() const { return o_; }

 private:
  std::string dir(const std::string& id) const { return o_.root + "/" + id; }
  Result<ContainerState> load(const std::string& id) const;
  Result<Spec> load_spec(const std::string& id) const;
  RuntimeOptions o_;
};

// runc's id rule: letters, digits, and _+-. (not "." or ".."), at most 1024 bytes.
Status validate_id(const std::string& id);

// How create gives the init its namespaces, a pure function of the spec (unit-tested without
// root): user and pid are created by the clone; the others are unshared by the init after it
// joined the ones given by path, so they belong to the container's user namespace; joins go user
// first; a pid namespace given by path is entered by the parent for the clone (it applies to
// children only).
struct NamespacePlan {
  unsigned long clone_flags = 0;
  int unshare_flags = 0;
  std::vector<std::pair<std::string, int>> join;  // path, CLONE_NEW* flag
  std::string pid_path;
};
NamespacePlan plan_namespaces(const Spec& spec);

}  // namespace berth::oci

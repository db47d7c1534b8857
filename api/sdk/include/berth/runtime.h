// The task runtime (io.containerd.runtime.v2): running containers ("tasks") and the processes
// exec'd into them. berthd's implementation starts one shim per container (or per group) that
// speaks containerd's runtime v2 protocol; the Tasks service is a thin adaptor over this.
//
// Exec ids are "" for a task's init process. Specs and resources travel as the Any values
// containerd uses (JSON in the value), so this header needs no protobuf.
#pragma once

#include <berth/containers.h>
#include <berth/context.h>
#include <berth/mount.h>
#include <berth/plugin.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace berth::runtime {

using containers::Any;

// containerd.v1.types.Status numbers.
enum class TaskStatus {
  kUnknown = 0,
  kCreated = 1,
  kRunning = 2,
  kStopped = 3,
  kPaused = 4,
  kPausing = 5
};

struct IO {
  std::string stdin, stdout, stderr;
  bool terminal = false;
};

struct Exit {
  std::uint32_t pid = 0;
  std::uint32_t status = 0;
  Timestamp at{};
};

struct ProcessState {
  std::string id;  // the container id for the init, else the exec id
  std::string exec_id;
  std::string bundle;
  std::uint32_t pid = 0;
  TaskStatus status = TaskStatus::kUnknown;
  IO io;
  std::uint32_t exit_status = 0;
  Timestamp exited_at{};
};

struct ProcessInfo {
  std::uint32_t pid = 0;
  std::optional<Any> info;
};

struct CreateRequest {
  std::string ns, id;
  std::string runtime;                 // "io.containerd.berth.v1", "io.containerd.runc.v2", a path
  std::optional<Any> runtime_options;  // the container record's
  std::optional<Any> task_options;     // the Create request's (runc Options)
  std::string runtime_path;            // a shim binary named by the client
  std::string spec;                    // config.json bytes
  std::vector<Mount> rootfs;
  IO io;
};

class BERTH_API Task {
 public:
  virtual ~Task() = default;
  virtual const std::string& id() const = 0;
  virtual const std::string& ns() const = 0;
  virtual const std::string& runtime() const = 0;
  virtual std::uint32_t pid() const = 0;

  virtual Result<ProcessState> state(const std::string& exec_id) = 0;
  virtual Result<std::uint32_t> start(const std::string& exec_id) = 0;
  virtual Status kill(const std::string& exec_id, std::uint32_t signal, bool all) = 0;
  virtual Status exec(const std::string& exec_id, const IO& io, const Any& spec) = 0;
  // Removes a stopped exec'd process.
  virtual Result<Exit> delete_process(const std::string& exec_id) = 0;
  // Blocks until the process exits, `cancelled` returns true (Cancelled), or the shim dies.
  virtual Result<Exit> wait(const std::string& exec_id, const std::function<bool()>& cancelled) = 0;
  virtual Status resize_pty(const std::string& exec_id, std::uint32_t width,
                            std::uint32_t height) = 0;
  virtual Status close_io(const std::string& exec_id, bool stdin) = 0;
  virtual Status pause() = 0;
  virtual Status resume() = 0;
  virtual Result<std::vector<ProcessInfo>> pids() = 0;
  virtual Status update(const std::optional<Any>& resources,
                        const std::map<std::string, std::string>& annotations) = 0;
  // Cgroup metrics (io.containerd.cgroups.v1/v2.Metrics).
  virtual Result<Any> stats() = 0;
};

class BERTH_API TaskManager : public virtual Plugin {
 public:
  // AlreadyExists when the namespace has a task of that id.
  virtual Result<std::shared_ptr<Task>> create(const CreateRequest& r) = 0;
  virtual Result<std::shared_ptr<Task>> get(const std::string& ns, const std::string& id) = 0;
  virtual std::vector<std::shared_ptr<Task>> list(const std::string& ns) = 0;
  // Deletes the task (it must have stopped, or never started), shuts its shim down and removes
  // its bundle.
  virtual Result<Exit> remove(const std::string& ns, const std::string& id) = 0;
};

}  // namespace berth::runtime

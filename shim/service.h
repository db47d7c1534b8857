// berth-shim's task service: containerd.task.v2.Task over ttrpc, driving libberth-oci in
// process. Everything runs on one io_context thread, so the containers the shim forks never see
// another thread's locks; calls that wait (Wait, Delete flushing its events) answer later.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.h"
#include "shim/backend.h"
#include "core/oci/cgroups.h"
#include "core/oci/container.h"
#include "shim/process_io.h"
#include "shim/publisher.h"
#include "core/ttrpc/ttrpc.h"

namespace berth::shim {

inline constexpr const char* kTaskService = "containerd.task.v2.Task";

// libberth-oci keeps a container's state in its bundle (<bundle>/.runtime/<id>): per bundle, so
// two daemons (or test runs) with the same namespace and id never share it, and it goes with the
// bundle. A container run by an external binary has it named in <bundle>/.backend.
inline constexpr const char* kBackendFile = ".backend";
std::unique_ptr<Backend> backend_for_bundle(const std::string& bundle);
// A program name looked up in PATH (or a path that must be executable).
Result<std::string> find_program(const std::string& name);

struct ServiceOptions {
  std::string ns;
};

class Service {
 public:
  Service(boost::asio::io_context& io, ServiceOptions o, Publisher& publisher);
  ~Service();
  void register_on(ttrpc::Server& server);
  // Reaps exited children (SIGCHLD).
  void reap();
  // Runs once a Shutdown was accepted and the events are flushed.
  std::function<void()> on_shutdown;
  bool empty() const { return containers_.empty(); }

 private:
  enum class ProcState { kCreated, kRunning, kStopped };
  struct Proc {
    std::string exec_id;  // empty for the init
    pid_t pid = 0;
    ProcState state = ProcState::kCreated;
    bool reaped = false;
    std::uint32_t exit_status = 0;
    std::chrono::system_clock::time_point exited_at{};
    std::unique_ptr<ProcessIO> io;
    IoConfig io_config;
    std::optional<oci::Process> spec;  // exec: what Start runs
    std::string spec_json;
    std::vector<ttrpc::Reply> waiters;
  };
  struct Container {
    std::string id, bundle;
    std::unique_ptr<Backend> backend;
    bool own_pid_ns = true;
    bool rootfs_mounted = false;
    bool paused = false;
    Proc init;
    std::map<std::string, std::unique_ptr<Proc>> execs;
    std::optional<oci::cgroups::Cgroup> cgroup;
    bool pure_v2 = false;  // which Metrics Stats returns
    std::unique_ptr<boost::asio::posix::stream_descriptor> oom;
    std::uint64_t oom_kills = 0;
  };

  Result<std::string> create(const std::string& payload);
  Result<std::string> start(const std::string& payload);
  void remove(const std::string& payload, ttrpc::Reply reply);
  Result<std::string> state(const std::string& payload);
  Result<std::string> kill(const std::string& payload);
  Result<std::string> exec(const std::string& payload);
  Result<std::string> pids(const std::string& payload);
  Result<std::string> pause(const std::string& payload, bool pause);
  Result<std::string> close_io(const std::string& payload);
  Result<std::string> resize_pty(const std::string& payload);
  Result<std::string> update(const std::string& payload);
  void wait(const std::string& payload, ttrpc::Reply reply);
  Result<std::string> stats(const std::string& payload);
  Result<std::string> connect(const std::string& payload);
  void shutdown(const std::string& payload, ttrpc::Reply reply);

  Result<Container*> find(const std::string& id);
  Result<Proc*> find(const std::string& id, const std::string& exec_id);
  void exited(pid_t pid, int status);
  void finish_exit(const std::string& id, const std::string& exec_id);
  void watch_oom(Container& c);
  void publish(const Container& c, std::string_view topic, const google::protobuf::Message& event);

  boost::asio::io_context& io_;
  ServiceOptions o_;
  Publisher& publisher_;
  std::map<std::string, std::unique_ptr<Container>> containers_;
  bool shutting_down_ = false;
};

}  // namespace berth::shim

// The CRI's pods and containers. A pod sandbox is a berth-pause task holding the pod's ipc, uts
// and (with PodPID) pid namespaces, in a network namespace of io.berth.network.v1; the pod's
// containers are tasks that join those namespaces. Both are container records in the CRI's
// namespace (k8s.io) labelled io.cri-containerd.kind=sandbox|container, whose extension holds
// the CRI's own state (the request's config, times, exit code, IPs) so that all of it survives a
// restart of berthd: at start the records are read back, the tasks looked up again, the logs
// reopened, and exits during the downtime recorded.
//
// Exits come from /tasks/exit (and OOM kills from /tasks/oom) on the event exchange: the
// container's record gets its exit code, reason (Completed, Error, OOMKilled) and finish time,
// and its task is deleted, so an exited container holds no shim.
#pragma once

#include <berth/events.h>
#include <berth/metadata.h>
#include <berth/network.h>
#include <berth/runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "cri/runtime/v1/api.pb.h"
#include "core/ocispec/user.h"
#include "plugins/cri/images.h"
#include "plugins/cri/logs.h"
#include "plugins/cri/stats.h"

namespace berth::cri {

namespace v1 = ::runtime::v1;

struct PodsConfig {
  std::string ns = "k8s.io";
  std::string snapshotter = "overlayfs";
  std::string default_runtime = "berth";
  std::map<std::string, std::string> runtimes;
  std::string network;       // "": the first network that loads
  std::string pause_binary;  // resolved path of berth-pause
  std::string root, state;   // the plugin's directories
  std::string snapshotter_root;  // the mountpoint stats name for writable layers
};

// GetContainerEvents' subscribers. Each has its own queue; one that falls kMaxQueued events
// behind is dropped (its stream ends with ResourceExhausted; the kubelet then relists and
// subscribes again) so a stalled client never holds the daemon's memory.
class EventHub {
 public:
  static constexpr std::size_t kMaxQueued = 1024;
  struct Subscriber {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::ContainerEventResponse> queue;
    bool dropped = false;
    // The next event, or nullopt after `wait` with nothing queued (or once dropped).
    std::optional<v1::ContainerEventResponse> next(std::chrono::milliseconds wait);
  };
  std::shared_ptr<Subscriber> subscribe();
  void unsubscribe(const std::shared_ptr<Subscriber>& s);
  void publish(const v1::ContainerEventResponse& e);

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Subscriber>> subs_;
};

class Pods {
 public:
  Pods(PodsConfig c, std::shared_ptr<metadata::MetadataStore> md,
       std::shared_ptr<runtime::TaskManager> tasks, std::shared_ptr<network::Networks> networks,
       std::shared_ptr<events::Exchange> exchange, ImageStore& images);
  ~Pods();

  // Reads the records back, reconciles them with the running tasks and starts the exit monitor.
  Status start();
  void stop();

  Result<std::string> run_sandbox(const v1::RunPodSandboxRequest& r);
  Status stop_sandbox(const std::string& id);
  Status remove_sandbox(const std::string& id);
  Status sandbox_status(const v1::PodSandboxStatusRequest& r, v1::PodSandboxStatusResponse* out);
  Status list_sandboxes(const v1::PodSandboxFilter& f, v1::ListPodSandboxResponse* out);

  Result<std::string> create_container(const v1::CreateContainerRequest& r);
  Status start_container(const std::string& id);
  Status stop_container(const std::string& id, std::int64_t timeout_s);
  Status remove_container(const std::string& id);
  Status container_status(const v1::ContainerStatusRequest& r, v1::ContainerStatusResponse* out);
  Status list_containers(const v1::ContainerFilter& f, v1::ListContainersResponse* out);
  Status reopen_log(const std::string& id);
  Status exec_sync(const v1::ExecSyncRequest& r, v1::ExecSyncResponse* out,
                   const std::function<bool()>& cancelled);
  // The new resources go to the running task's cgroup and into the container's spec.
  Status update_resources(const v1::UpdateContainerResourcesRequest& r);

  Status container_stats(const std::string& id, v1::ContainerStats* out);
  Status list_container_stats(const v1::ContainerStatsFilter& f, v1::ListContainerStatsResponse* out);
  Status sandbox_stats(const std::string& id, v1::PodSandboxStats* out);
  Status list_sandbox_stats(const v1::PodSandboxStatsFilter& f, v1::ListPodSandboxStatsResponse* out);

  EventHub& events() { return events_; }
  bool stopping() const { return stopping_; }

  struct Sandbox;
  struct Container;

 private:
  Result<std::shared_ptr<Sandbox>> find_sandbox(const std::string& id);
  Result<std::shared_ptr<Container>> find_container(const std::string& id);
  Status persist(const Sandbox& s);
  Status persist(const Container& c);
  Status stop_sandbox_locked(Sandbox& s);
  Status stop_container_locked(Container& c, std::int64_t timeout_s);
  void record_exit(const std::string& id, std::uint32_t status, Timestamp at);
  void reap(const std::string& id);
  // Publishes a GetContainerEvents event about `id` (a container or a sandbox) with the status of
  // its pod and of the pod's containers, as they are now. Called without mu_ held.
  void emit(v1::ContainerEventType type, const std::string& id);
  // A container's stats: its writable layer always, CPU and memory while its task runs
  // (`sample` gets the cgroup reading, for the pod's sums).
  Status fill_container_stats(Container& c, v1::ContainerStats* out, CgroupSample* sample);
  // A usage_nano_cores needs the previous reading: kept per cgroup key.
  std::pair<std::uint64_t, std::int64_t> swap_cpu_sample(const std::string& key, std::uint64_t cpu_ns,
                                                        std::int64_t at);
  void monitor();
  Status recover();
  Result<std::string> pick_network();
  Status prepare_pause_rootfs();
  Result<std::string> runtime_of(const std::string& handler);
  std::string fifo_dir(const std::string& id) const;
  RequestContext ctx() const;
  // Deletes a task, OK when it is gone already. The exit monitor and the Stop/Remove RPCs both
  // delete stopped tasks; the shim manager refuses a second delete while one runs, so they take
  // turns here.
  Status remove_task(const std::string& id);
  // `user` (user_spec) resolved in the image whose top layer is the snapshot `top`.
  Result<ocispec::User> resolve_user_in_image(const std::string& id, const std::string& top,
                                              const std::string& user);

  PodsConfig c_;
  std::shared_ptr<metadata::MetadataStore> md_;
  std::shared_ptr<runtime::TaskManager> tasks_;
  std::shared_ptr<network::Networks> networks_;
  std::shared_ptr<events::Exchange> exchange_;
  ImageStore& images_;
  LogWriter logs_;

  std::mutex mu_;  // the maps and every record's mutable fields
  std::mutex remove_task_mu_;
  std::map<std::string, std::shared_ptr<Sandbox>> sandboxes_;
  std::map<std::string, std::shared_ptr<Container>> containers_;
  std::set<std::string> names_;  // reserved pod and container names
  std::map<std::string, std::pair<std::uint64_t, std::int64_t>> cpu_samples_;  // key -> (ns, at)
  EventHub events_;

  std::shared_ptr<events::Subscription> sub_;
  std::thread monitor_;
  std::atomic<bool> stopping_{false};
};

}  // namespace berth::cri

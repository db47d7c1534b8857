// io.containerd.runtime.v2.task: tasks run by shims speaking containerd's runtime v2 protocol.
//
//   bundle   <state>/<ns>/<id>/  config.json, rootfs/ (the shim mounts it), address,
//            shim-binary-path, runtime-name, log (a FIFO the daemon relays into its log), work ->
//            the work dir, events/ (events the shim has not had acknowledged yet)
//   work dir <root>/<ns>/<id>/   persistent scratch for the shim
//
// The shim for a runtime name: a configured binary, a path, or containerd's rule
// (io.containerd.runc.v2 -> containerd-shim-runc-v2), looked for next to berthd, then in PATH.
// After a restart every bundle is reconnected in parallel; a dead shim is cleaned up with
// `<shim> delete`, and its task reported exited and deleted.
//
// The pieces: bundle.h (the files), shim_binary.h (resolve, `start`, `delete`), shim_task.h (a
// Task over the shim's ttrpc service), log_relay.h (shim logs into the daemon's); this class
// keeps the table of tasks and their lifecycle (create, remove, dead shims, reconnect).
#pragma once

#include <berth/events.h>
#include <berth/identifiers.h>
#include <berth/runtime.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "plugins/runtime/v2/bundle.h"
#include "plugins/runtime/v2/options.h"

namespace berth::plugins::runtime_v2 {

class ShimTask;
class LogRelay;

class ShimManager final : public runtime::TaskManager {
 public:
  using CreateRequest = runtime::CreateRequest;
  using Exit = runtime::Exit;
  using Task = runtime::Task;

  static Result<std::shared_ptr<ShimManager>> create(Config c, Paths p,
                                                     std::shared_ptr<events::Exchange> exchange);
  ~ShimManager() override;

  Result<std::shared_ptr<Task>> create(const CreateRequest& r) override;
  Result<std::shared_ptr<Task>> get(const std::string& ns, const std::string& id) override;
  std::vector<std::shared_ptr<Task>> list(const std::string& ns) override;
  Result<Exit> remove(const std::string& ns, const std::string& id) override;
  Status close() override;

  // Where the shim for a runtime name is (NotFound naming where it looked).
  Result<std::string> resolve_shim(const std::string& runtime,
                                   const std::string& runtime_path) const;

 private:
  ShimManager(Config c, Paths p, std::shared_ptr<events::Exchange> exchange);
  void load_existing();
  Result<std::shared_ptr<ShimTask>> connect(const std::string& ns, const std::string& id,
                                            const std::string& bundle, const std::string& binary,
                                            std::uint32_t pid_hint);
  // The shim's connection closed without us closing it.
  void shim_died(const std::string& ns, const std::string& id);
  void cleanup_dead(const std::string& ns, const std::string& id, const std::string& bundle,
                    const std::string& binary, const std::shared_ptr<ShimTask>& task);
  void publish_leftover_events(const std::string& bundle);
  // Tells a shim whose Create failed to delete and shut down, and drops the connection.
  void abandon(const std::shared_ptr<ShimTask>& t);
  void reconnect(const Bundles::Entry& b);
  void worker();

  Config c_;
  Paths p_;
  Bundles bundles_;
  std::shared_ptr<events::Exchange> exchange_;
  std::unique_ptr<LogRelay> logs_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<ShimTask>> tasks_;
  // Dead-shim cleanups run here, off the connection's reader thread.
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace berth::plugins::runtime_v2

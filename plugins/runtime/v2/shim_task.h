// A task whose process a runtime v2 shim owns: every Task call is one ttrpc call to the shim's
// containerd.task.v2.Task service. Waits are shared: one Wait per process goes to the shim and
// every caller here gets its answer; a task whose shim died reports the exit the cleanup found.
#pragma once

#include <berth/runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/ttrpc/ttrpc.h"

namespace google::protobuf {
class MessageLite;
}

namespace berth::plugins::runtime_v2 {

inline constexpr auto kCallTimeout = std::chrono::seconds(30);

class ShimTask final : public runtime::Task {
 public:
  using Any = runtime::Any;
  using Exit = runtime::Exit;
  using IO = runtime::IO;
  using ProcessInfo = runtime::ProcessInfo;
  using ProcessState = runtime::ProcessState;

  ShimTask(std::string ns, std::string id, std::string runtime, std::string bundle,
           std::string binary)
      : ns_(std::move(ns)),
        id_(std::move(id)),
        runtime_(std::move(runtime)),
        bundle_(std::move(bundle)),
        binary_(std::move(binary)) {}
  ~ShimTask() override { disconnect(); }

  void attach(std::unique_ptr<ttrpc::Client> c, std::uint32_t pid) {
    client_ = std::move(c);
    pid_ = pid;
  }
  const std::string& id() const override { return id_; }
  const std::string& ns() const override { return ns_; }
  const std::string& runtime() const override { return runtime_; }
  std::uint32_t pid() const override { return pid_; }
  const std::string& bundle() const { return bundle_; }
  const std::string& binary() const { return binary_; }
  void set_pid(std::uint32_t p) { pid_ = p; }

  Status call(const std::string& method, const google::protobuf::MessageLite& req,
              google::protobuf::MessageLite* resp,
              std::chrono::milliseconds timeout = kCallTimeout);

  Result<ProcessState> state(const std::string& exec_id) override;
  Result<std::uint32_t> start(const std::string& exec_id) override;
  Status kill(const std::string& exec_id, std::uint32_t signal, bool all) override;
  Status exec(const std::string& exec_id, const IO& io, const Any& spec) override;
  Result<Exit> delete_process(const std::string& exec_id) override;
  Result<Exit> wait(const std::string& exec_id, const std::function<bool()>& cancelled) override;
  Status resize_pty(const std::string& exec_id, std::uint32_t width, std::uint32_t height) override;
  Status close_io(const std::string& exec_id, bool stdin) override;
  Status pause() override;
  Status resume() override;
  Result<std::vector<ProcessInfo>> pids() override;
  Status update(const std::optional<Any>& resources,
                const std::map<std::string, std::string>& annotations) override;
  Result<Any> stats() override;

  // The task is gone (deleted, or its shim died): waiters get this exit.
  void mark_dead(Exit e);
  // Closes the connection and joins the wait threads (their calls fail at once).
  void disconnect();
  std::atomic<bool> removing{false};

 private:
  struct WaitState {
    bool done = false;
    Result<Exit> result = Status(Code::kUnavailable, "pending");
  };
  std::uint32_t pid_for(const std::string& exec_id) const {
    return exec_id.empty() ? pid_.load() : 0u;
  }

  std::string ns_, id_, runtime_, bundle_, binary_;
  std::atomic<std::uint32_t> pid_{0};
  std::unique_ptr<ttrpc::Client> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<WaitState>> waits_;
  std::vector<std::pair<std::shared_ptr<WaitState>, std::thread>> threads_;  // with their Waits
  std::optional<Exit> dead_;
};

}  // namespace berth::plugins::runtime_v2

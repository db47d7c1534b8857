#include "plugins/runtime/v2/shim_task.h"

#include <berth/convert/any.h>
#include <berth/proto_time.h>

#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"

namespace berth::plugins::runtime_v2 {

namespace task = ::containerd::task::v2;
using runtime::Any;
using runtime::Exit;
using runtime::IO;
using runtime::ProcessInfo;
using runtime::ProcessState;
using runtime::TaskStatus;

namespace {
constexpr const char* kTaskService = "containerd.task.v2.Task";
}  // namespace

Status ShimTask::call(const std::string& method, const google::protobuf::MessageLite& req,
                      google::protobuf::MessageLite* resp, std::chrono::milliseconds timeout) {
  if (!client_)
    return Status(Code::kUnavailable, fmt::format("task \"{}\": shim is not connected", id_));
  ttrpc::Metadata md{{ttrpc::kNamespaceKey, ns_}};
  google::protobuf::Empty empty;
  Status st = client_->call(kTaskService, method, req, resp ? resp : &empty, md, timeout);
  if (st.code() == Code::kUnavailable)
    return Status(Code::kUnavailable,
                  fmt::format("task \"{}\": shim is gone ({})", id_, st.message()));
  return st;
}

Result<ProcessState> ShimTask::state(const std::string& exec_id) {
  task::StateRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  task::StateResponse resp;
  BERTH_RETURN_IF_ERROR(call("State", req, &resp));
  ProcessState s;
  s.id = exec_id.empty() ? id_ : exec_id;
  s.exec_id = exec_id;
  s.bundle = resp.bundle();
  s.pid = resp.pid();
  s.status = static_cast<TaskStatus>(resp.status());
  s.io = IO{resp.stdin(), resp.stdout(), resp.stderr(), resp.terminal()};
  s.exit_status = resp.exit_status();
  s.exited_at = from_proto(resp.exited_at());
  return s;
}

Result<std::uint32_t> ShimTask::start(const std::string& exec_id) {
  task::StartRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  task::StartResponse resp;
  BERTH_RETURN_IF_ERROR(call("Start", req, &resp));
  return resp.pid();
}

Status ShimTask::kill(const std::string& exec_id, std::uint32_t signal, bool all) {
  task::KillRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  req.set_signal(signal);
  req.set_all(all);
  return call("Kill", req, nullptr);
}

Status ShimTask::exec(const std::string& exec_id, const IO& io, const Any& spec) {
  task::ExecProcessRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  req.set_terminal(io.terminal);
  req.set_stdin(io.stdin);
  req.set_stdout(io.stdout);
  req.set_stderr(io.stderr);
  convert::to_proto(spec, req.mutable_spec());
  return call("Exec", req, nullptr);
}

Result<Exit> ShimTask::delete_process(const std::string& exec_id) {
  task::DeleteRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  task::DeleteResponse resp;
  BERTH_RETURN_IF_ERROR(call("Delete", req, &resp));
  return Exit{resp.pid(), resp.exit_status(), from_proto(resp.exited_at())};
}

Result<Exit> ShimTask::wait(const std::string& exec_id, const std::function<bool()>& cancelled) {
  // One Wait per process goes to the shim; every caller here shares its answer, and can give up
  // (a client that went away) without leaving anything behind in the shim.
  std::shared_ptr<WaitState> w;
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(mu_);
    if (dead_) return *dead_;
    // Threads whose Wait has answered are joined here, not kept until the task goes: a long-lived
    // task with many execs would pile them up.
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->first->done) {
        finished.push_back(std::move(it->second));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    auto& slot = waits_[exec_id];
    if (!slot || (slot->done && !slot->result.ok())) {
      slot = std::make_shared<WaitState>();
      threads_.emplace_back(slot, std::thread([this, w = slot, exec_id] {
                              task::WaitRequest req;
                              req.set_id(id_);
                              req.set_exec_id(exec_id);
                              task::WaitResponse resp;
                              Status st = call("Wait", req, &resp, std::chrono::milliseconds(0));
                              std::lock_guard lock(mu_);
                              w->result =
                                  st.ok() ? Result<Exit>(Exit{pid_for(exec_id), resp.exit_status(),
                                                              from_proto(resp.exited_at())})
                                          : Result<Exit>(st);
                              w->done = true;
                              cv_.notify_all();
                            }));
    }
    w = slot;
  }
  for (auto& t : finished) t.join();
  std::unique_lock lock(mu_);
  std::optional<std::chrono::steady_clock::time_point> grace;
  for (;;) {
    if (dead_) return *dead_;
    if (w->done) {
      if (w->result.ok() || w->result.status().code() != Code::kUnavailable) return w->result;
      // The shim is gone: its exit comes from the dead-shim cleanup, shortly.
      auto now = std::chrono::steady_clock::now();
      if (!grace) grace = now + std::chrono::seconds(15);
      if (now > *grace) return w->result;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (cancelled && cancelled()) return Status(Code::kCancelled, "wait cancelled");
  }
}

Status ShimTask::resize_pty(const std::string& exec_id, std::uint32_t width, std::uint32_t height) {
  task::ResizePtyRequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  req.set_width(width);
  req.set_height(height);
  return call("ResizePty", req, nullptr);
}

Status ShimTask::close_io(const std::string& exec_id, bool stdin) {
  task::CloseIORequest req;
  req.set_id(id_);
  req.set_exec_id(exec_id);
  req.set_stdin(stdin);
  return call("CloseIO", req, nullptr);
}

Status ShimTask::pause() {
  task::PauseRequest req;
  req.set_id(id_);
  return call("Pause", req, nullptr);
}

Status ShimTask::resume() {
  task::ResumeRequest req;
  req.set_id(id_);
  return call("Resume", req, nullptr);
}

Result<std::vector<ProcessInfo>> ShimTask::pids() {
  task::PidsRequest req;
  req.set_id(id_);
  task::PidsResponse resp;
  BERTH_RETURN_IF_ERROR(call("Pids", req, &resp));
  std::vector<ProcessInfo> out;
  for (const auto& p : resp.processes()) {
    ProcessInfo pi;
    pi.pid = p.pid();
    if (p.has_info()) pi.info = convert::from_proto(p.info());
    out.push_back(std::move(pi));
  }
  return out;
}

Status ShimTask::update(const std::optional<Any>& resources,
                        const std::map<std::string, std::string>& annotations) {
  task::UpdateTaskRequest req;
  req.set_id(id_);
  if (resources) convert::to_proto(*resources, req.mutable_resources());
  for (const auto& [k, v] : annotations) (*req.mutable_annotations())[k] = v;
  return call("Update", req, nullptr);
}

Result<Any> ShimTask::stats() {
  task::StatsRequest req;
  req.set_id(id_);
  task::StatsResponse resp;
  BERTH_RETURN_IF_ERROR(call("Stats", req, &resp));
  return convert::from_proto(resp.stats());
}

void ShimTask::mark_dead(Exit e) {
  std::lock_guard lock(mu_);
  dead_ = e;
  cv_.notify_all();
}

void ShimTask::disconnect() {
  if (client_) client_->close();
  std::vector<std::pair<std::shared_ptr<WaitState>, std::thread>> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
    cv_.notify_all();
  }
  for (auto& [state, t] : threads) t.join();
  client_.reset();
}

}  // namespace berth::plugins::runtime_v2

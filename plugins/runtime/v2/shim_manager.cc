#include "plugins/runtime/v2/shim_manager.h"

#include <berth/convert/any.h>
#include <berth/convert/mount.h>
#include <berth/proto_time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "core/fs.h"
#include "core/log.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "plugins/runtime/v2/log_relay.h"
#include "plugins/runtime/v2/shim_binary.h"
#include "plugins/runtime/v2/shim_task.h"

namespace berth::plugins::runtime_v2 {

namespace task = ::containerd::task::v2;
namespace ev = ::containerd::events;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(5);

Timestamp now() {
  return std::chrono::time_point_cast<Timestamp::duration>(std::chrono::system_clock::now());
}

// The log FIFO is opened for reading before the shim starts, so its write-open does not block.
void relay_log(LogRelay& logs, const std::string& bundle, const std::string& ns,
               const std::string& id, bool create) {
  std::string fifo = bundle + "/log";
  if (create && ::mkfifo(fifo.c_str(), 0600) != 0) return;
  int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) logs.add(fd, ns, id);
}

task::CreateTaskRequest create_request(const runtime::CreateRequest& r, const std::string& bundle) {
  task::CreateTaskRequest req;
  req.set_id(r.id);
  req.set_bundle(bundle);
  convert::mounts_to_proto(r.rootfs, req.mutable_rootfs());
  req.set_terminal(r.io.terminal);
  req.set_stdin(r.io.stdin);
  req.set_stdout(r.io.stdout);
  req.set_stderr(r.io.stderr);
  // As containerd: without task options the shim gets the container's runtime options (where
  // `ctr run --runc-binary` and `berth run --runc-binary` put BinaryName).
  if (r.task_options && !r.task_options->value.empty()) {
    convert::to_proto(*r.task_options, req.mutable_options());
  } else if (r.runtime_options) {
    convert::to_proto(*r.runtime_options, req.mutable_options());
  }
  return req;
}

}  // namespace

ShimManager::ShimManager(Config c, Paths p, std::shared_ptr<events::Exchange> exchange)
    : c_(std::move(c)),
      p_(std::move(p)),
      bundles_(p_.root, p_.state),
      exchange_(std::move(exchange)),
      logs_(std::make_unique<LogRelay>()) {
  worker_ = std::thread([this] { worker(); });
}

ShimManager::~ShimManager() { close().ignore(); }

Result<std::shared_ptr<ShimManager>> ShimManager::create(
    Config c, Paths p, std::shared_ptr<events::Exchange> exchange) {
  std::shared_ptr<ShimManager> m(new ShimManager(std::move(c), std::move(p), std::move(exchange)));
  m->load_existing();
  return m;
}

Status ShimManager::close() {
  {
    std::lock_guard lock(work_mu_);
    if (stopping_) return Status();
    stopping_ = true;
    work_cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
  // Shims outlive the daemon: only our connections end.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<ShimTask>> tasks;
  {
    std::lock_guard lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& [k, t] : tasks) t->disconnect();
  logs_.reset();
  return Status();
}

void ShimManager::worker() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(work_mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !work_.empty(); });
      if (work_.empty()) return;
      fn = std::move(work_.front());
      work_.pop_front();
    }
    fn();
  }
}

Result<std::string> ShimManager::resolve_shim(const std::string& runtime,
                                              const std::string& runtime_path) const {
  return runtime_v2::resolve_shim(c_.shims, p_.daemon_binary, runtime, runtime_path);
}

Result<std::shared_ptr<runtime::Task>> ShimManager::create(const CreateRequest& r) {
  BERTH_RETURN_IF_ERROR(validate_identifier(r.ns).with_context("namespace"));
  if (r.id.empty() || r.id.find('/') != std::string::npos || r.id == "." || r.id == "..")
    return invalid_argument("task id \"{}\" is not valid", r.id);
  BERTH_TRY(std::string binary, resolve_shim(r.runtime, r.runtime_path));
  auto key = std::make_pair(r.ns, r.id);
  {
    std::lock_guard lock(mu_);
    if (tasks_.count(key))
      return already_exists("task \"{}\" already exists in namespace \"{}\"", r.id, r.ns);
    tasks_[key] = nullptr;  // reserves the id while the shim starts
  }
  auto fail = [&](Status st) -> Status {
    bundles_.remove(r.ns, r.id);
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(key); it != tasks_.end() && !it->second) tasks_.erase(it);
    return st;
  };

  std::string bundle = bundles_.dir(r.ns, r.id);
  if (Status st = bundles_.create(r.ns, r.id, r.spec); !st.ok()) return fail(st);
  relay_log(*logs_, bundle, r.ns, r.id, /*create=*/true);
  std::string options;
  if (r.runtime_options) {
    google::protobuf::Any a;
    convert::to_proto(*r.runtime_options, &a);
    options = a.SerializeAsString();
  }
  auto address = start_shim({p_, binary, r.ns, r.id, bundle}, options, c_.start_timeout);
  if (!address.ok()) return fail(address.status());
  Bundles::record_shim(bundle, *address, binary, r.runtime);
  auto t = connect(r.ns, r.id, bundle, binary, 0);
  if (!t.ok()) return fail(t.status());

  task::CreateTaskResponse resp;
  if (Status cs = (*t)->call("Create", create_request(r, bundle), &resp); !cs.ok()) {
    abandon(*t);
    publish_leftover_events(bundle);
    return fail(cs);
  }
  (*t)->set_pid(resp.pid());
  std::lock_guard lock(mu_);
  tasks_[key] = *t;
  return std::shared_ptr<Task>(*t);
}

void ShimManager::abandon(const std::shared_ptr<ShimTask>& t) {
  t->removing = true;
  task::DeleteRequest dr;
  dr.set_id(t->id());
  t->call("Delete", dr, nullptr, c_.shutdown_timeout).ignore();
  task::ShutdownRequest sr;
  sr.set_id(t->id());
  t->call("Shutdown", sr, nullptr, c_.shutdown_timeout).ignore();
  t->disconnect();
}

Result<std::shared_ptr<ShimTask>> ShimManager::connect(const std::string& ns, const std::string& id,
                                                       const std::string& bundle,
                                                       const std::string& binary,
                                                       std::uint32_t pid_hint) {
  auto address = core::read_file(bundle + "/address");
  if (!address.ok()) return address.status().with_context("shim address");
  auto runtime = core::read_file(bundle + "/runtime-name");
  auto t = std::make_shared<ShimTask>(ns, id, runtime.ok() ? *runtime : "", bundle, binary);
  std::weak_ptr<ShimTask> weak = t;
  auto client = ttrpc::Client::connect(ttrpc::socket_path(*address), [this, ns, id, weak] {
    auto t = weak.lock();
    if (!t || t->removing) return;
    std::lock_guard lock(work_mu_);
    if (stopping_) return;
    work_.push_back([this, ns, id] { shim_died(ns, id); });
    work_cv_.notify_all();
  });
  if (!client.ok())
    return client.status().with_context(fmt::format("connect to shim of \"{}\"", id));
  t->attach(std::move(*client), pid_hint);
  return t;
}

std::vector<std::shared_ptr<runtime::Task>> ShimManager::list(const std::string& ns) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Task>> out;
  for (const auto& [k, t] : tasks_) {
    if (k.first == ns && t) out.push_back(t);
  }
  return out;
}

Result<std::shared_ptr<runtime::Task>> ShimManager::get(const std::string& ns,
                                                        const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find({ns, id});
  if (it == tasks_.end() || !it->second) return not_found("task \"{}\" does not exist", id);
  return std::shared_ptr<Task>(it->second);
}

Result<runtime::Exit> ShimManager::remove(const std::string& ns, const std::string& id) {
  std::shared_ptr<ShimTask> t;
  {
    std::lock_guard lock(mu_);
    auto it = tasks_.find({ns, id});
    if (it == tasks_.end() || !it->second) return not_found("task \"{}\" does not exist", id);
    t = it->second;
    if (t->removing.exchange(true)) return failed_precondition("task \"{}\" is being deleted", id);
  }
  task::DeleteRequest dr;
  dr.set_id(id);
  task::DeleteResponse resp;
  Status ds = t->call("Delete", dr, &resp);
  if (!ds.ok() && ds.code() != Code::kUnavailable) {
    t->removing = false;
    return ds;
  }
  if (!ds.ok()) {
    // The shim died under us: clean up as for a dead shim.
    cleanup_dead(ns, id, t->bundle(), t->binary(), t);
    return Exit{t->pid(), 255, now()};
  }
  Exit exit{resp.pid(), resp.exit_status(), from_proto(resp.exited_at())};
  task::ShutdownRequest sr;
  sr.set_id(id);
  t->call("Shutdown", sr, nullptr, c_.shutdown_timeout).ignore();
  t->mark_dead(exit);
  t->disconnect();
  publish_leftover_events(t->bundle());
  bundles_.remove(ns, id);
  std::lock_guard lock(mu_);
  tasks_.erase({ns, id});
  return exit;
}

void ShimManager::publish_leftover_events(const std::string& bundle) {
  auto envelopes = Bundles::take_leftover_events(bundle);
  if (!exchange_) return;
  for (auto& e : envelopes) exchange_->forward(std::move(e)).ignore();
}

void ShimManager::shim_died(const std::string& ns, const std::string& id) {
  std::shared_ptr<ShimTask> t;
  {
    std::lock_guard lock(mu_);
    auto it = tasks_.find({ns, id});
    if (it == tasks_.end() || !it->second) return;
    t = it->second;
    if (t->removing.exchange(true)) return;
  }
  log::warn("shim died; cleaning up its task", {{"namespace", ns}, {"id", id}});
  cleanup_dead(ns, id, t->bundle(), t->binary(), t);
}

void ShimManager::cleanup_dead(const std::string& ns, const std::string& id,
                               const std::string& bundle, const std::string& binary,
                               const std::shared_ptr<ShimTask>& t) {
  Exit exit = delete_shim({p_, binary, ns, id, bundle}, Exit{t ? t->pid() : 0, 255, now()});
  publish_leftover_events(bundle);
  if (exchange_) {
    // The shim cannot say it any more: the daemon publishes the exit and the delete.
    auto publish = [&](auto msg, const char* topic) {
      msg.set_container_id(id);
      msg.set_id(id);
      msg.set_pid(exit.pid);
      msg.set_exit_status(exit.status);
      to_proto(exit.at, msg.mutable_exited_at());
      exchange_->publish(ns, topic, msg.GetDescriptor()->full_name(), msg.SerializeAsString())
          .ignore();
    };
    publish(ev::TaskExit(), "/tasks/exit");
    publish(ev::TaskDelete(), "/tasks/delete");
  }
  if (t) {
    t->mark_dead(exit);
    t->disconnect();
  }
  bundles_.remove(ns, id);
  std::lock_guard lock(mu_);
  tasks_.erase({ns, id});
}

void ShimManager::reconnect(const Bundles::Entry& b) {
  auto binary = core::read_file(b.dir + "/shim-binary-path");
  if (!binary.ok() || !std::filesystem::exists(b.dir + "/address")) {
    log::info("removing a bundle without a shim", {{"bundle", b.dir}});
    publish_leftover_events(b.dir);
    bundles_.remove(b.ns, b.id);
    return;
  }
  relay_log(*logs_, b.dir, b.ns, b.id, /*create=*/false);
  if (auto t = connect(b.ns, b.id, b.dir, *binary, 0); t.ok()) {
    task::ConnectRequest req;
    req.set_id(b.id);
    task::ConnectResponse resp;
    Status cs = (*t)->call("Connect", req, &resp, kConnectTimeout);
    if (cs.ok() && resp.task_pid() != 0) {
      (*t)->set_pid(resp.task_pid());
      std::lock_guard lock(mu_);
      tasks_[{b.ns, b.id}] = *t;
      log::info("reconnected to shim",
                {{"namespace", b.ns}, {"id", b.id}, {"pid", std::to_string(resp.task_pid())}});
      return;
    }
    (*t)->removing = true;
    (*t)->disconnect();
  }
  log::warn("shim is gone; cleaning up its task", {{"namespace", b.ns}, {"id", b.id}});
  cleanup_dead(b.ns, b.id, b.dir, *binary, nullptr);
}

void ShimManager::load_existing() {
  // Every shim in parallel: a slow or hung one does not hold up the others.
  std::vector<std::future<void>> jobs;
  for (const auto& b : bundles_.list())
    jobs.push_back(std::async(std::launch::async, [this, b] { reconnect(b); }));
  for (auto& j : jobs) j.wait();
  bundles_.remove_orphan_work_dirs();
}

}  // namespace berth::plugins::runtime_v2

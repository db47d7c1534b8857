#include "plugins/runtime/v2/shim_manager.h"

#include <berth/convert/any.h>
#include <berth/convert/events.h>
#include <berth/convert/mount.h>
#include <berth/grpc.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "core/asio.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/mount.h"
#include "core/process.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "core/ttrpc/ttrpc.h"

namespace berth::plugins::runtime_v2 {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace task = ::containerd::task::v2;
namespace ev = ::containerd::events;

namespace {

constexpr const char* kTaskService = "containerd.task.v2.Task";
constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kCallTimeout = std::chrono::seconds(30);

// Output of a helper program without its trailing newline.
std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

// Relays every shim's `log` FIFO into the daemon's log, line by line, on one thread.
class LogRelay {
 public:
  LogRelay() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  ~LogRelay() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  // Takes the read end (opened before the shim starts, so its write-open does not block).
  void add(int fd, std::string ns, std::string id) {
    asio::post(io_, [this, fd, ns = std::move(ns), id = std::move(id)] {
      auto s = std::make_shared<Stream>(io_, fd, ns, id);
      s->sd.non_blocking(true);
      // Until the shim opens its end a read says EOF; epoll says readable only once it did.
      s->sd.async_wait(asio::posix::descriptor_base::wait_read,
                       [s](const boost::system::error_code& ec) {
                         if (!ec) read(s);
                       });
    });
  }

 private:
  struct Stream {
    Stream(asio::io_context& io, int fd, std::string n, std::string i)
        : sd(io, fd), ns(std::move(n)), id(std::move(i)) {}
    asio::posix::stream_descriptor sd;
    std::string ns, id;
    asio::streambuf buf;
  };
  static void read(const std::shared_ptr<Stream>& s) {
    asio::async_read_until(
        s->sd, s->buf, '\n', [s](const boost::system::error_code& ec, std::size_t n) {
          if (n > 0) {
            std::string line(asio::buffers_begin(s->buf.data()),
                             asio::buffers_begin(s->buf.data()) + static_cast<std::ptrdiff_t>(n));
            s->buf.consume(n);
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
            if (!line.empty())
              log::info("shim", {{"namespace", s->ns}, {"id", s->id}, {"msg", line}});
          }
          if (!ec) read(s);
        });
  }
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

class ShimTask final : public Task {
 public:
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
              std::chrono::milliseconds timeout = kCallTimeout) {
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

  Result<ProcessState> state(const std::string& exec_id) override {
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
  Result<std::uint32_t> start(const std::string& exec_id) override {
    task::StartRequest req;
    req.set_id(id_);
    req.set_exec_id(exec_id);
    task::StartResponse resp;
    BERTH_RETURN_IF_ERROR(call("Start", req, &resp));
    return resp.pid();
  }
  Status kill(const std::string& exec_id, std::uint32_t signal, bool all) override {
    task::KillRequest req;
    req.set_id(id_);
    req.set_exec_id(exec_id);
    req.set_signal(signal);
    req.set_all(all);
    return call("Kill", req, nullptr);
  }
  Status exec(const std::string& exec_id, const IO& io, const Any& spec) override {
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
  Result<Exit> delete_process(const std::string& exec_id) override {
    task::DeleteRequest req;
    req.set_id(id_);
    req.set_exec_id(exec_id);
    task::DeleteResponse resp;
    BERTH_RETURN_IF_ERROR(call("Delete", req, &resp));
    return Exit{resp.pid(), resp.exit_status(), from_proto(resp.exited_at())};
  }
  Result<Exit> wait(const std::string& exec_id, const std::function<bool()>& cancelled) override {
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
        threads_.emplace_back(
            slot, std::thread([this, w = slot, exec_id] {
              task::WaitRequest req;
              req.set_id(id_);
              req.set_exec_id(exec_id);
              task::WaitResponse resp;
              Status st = call("Wait", req, &resp, std::chrono::milliseconds(0));
              std::lock_guard lock(mu_);
              w->result = st.ok() ? Result<Exit>(Exit{pid_for(exec_id), resp.exit_status(),
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
  Status resize_pty(const std::string& exec_id, std::uint32_t width,
                    std::uint32_t height) override {
    task::ResizePtyRequest req;
    req.set_id(id_);
    req.set_exec_id(exec_id);
    req.set_width(width);
    req.set_height(height);
    return call("ResizePty", req, nullptr);
  }
  Status close_io(const std::string& exec_id, bool stdin) override {
    task::CloseIORequest req;
    req.set_id(id_);
    req.set_exec_id(exec_id);
    req.set_stdin(stdin);
    return call("CloseIO", req, nullptr);
  }
  Status pause() override {
    task::PauseRequest req;
    req.set_id(id_);
    return call("Pause", req, nullptr);
  }
  Status resume() override {
    task::ResumeRequest req;
    req.set_id(id_);
    return call("Resume", req, nullptr);
  }
  Result<std::vector<ProcessInfo>> pids() override {
    task::PidsRequest req;
    req.set_id(id_);
    task::PidsResponse resp;
    BERTH_RETURN_IF_ERROR(call("Pids", req, &resp));
    std::vector<ProcessInfo> out;
    for (const auto& p : resp.processes()) {
      ProcessInfo pi;
      pi.pid = p.pid();
      if (p.has_info()) pi.info = Any{p.info().type_url(), p.info().value()};
      out.push_back(std::move(pi));
    }
    return out;
  }
  Status update(const std::optional<Any>& resources,
                const std::map<std::string, std::string>& annotations) override {
    task::UpdateTaskRequest req;
    req.set_id(id_);
    if (resources) convert::to_proto(*resources, req.mutable_resources());
    for (const auto& [k, v] : annotations) (*req.mutable_annotations())[k] = v;
    return call("Update", req, nullptr);
  }
  Result<Any> stats() override {
    task::StatsRequest req;
    req.set_id(id_);
    task::StatsResponse resp;
    BERTH_RETURN_IF_ERROR(call("Stats", req, &resp));
    return Any{resp.stats().type_url(), resp.stats().value()};
  }

  // The task is gone (deleted, or its shim died): waiters get this exit.
  void mark_dead(Exit e) {
    std::lock_guard lock(mu_);
    dead_ = e;
    cv_.notify_all();
  }
  // Closes the connection and joins the wait threads (their calls fail at once).
  void disconnect() {
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

ShimManager::ShimManager(Config c, Paths p, std::shared_ptr<events::Exchange> exchange)
    : c_(std::move(c)),
      p_(std::move(p)),
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

std::string ShimManager::bundle_dir(const std::string& ns, const std::string& id) const {
  return p_.state + "/" + ns + "/" + id;
}
std::string ShimManager::work_dir(const std::string& ns, const std::string& id) const {
  return p_.root + "/" + ns + "/" + id;
}

Result<std::string> ShimManager::resolve_shim(const std::string& runtime,
                                              const std::string& runtime_path) const {
  std::string name;
  if (!runtime_path.empty()) {
    name = runtime_path;
  } else if (auto it = c_.shims.find(runtime); it != c_.shims.end()) {
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
  if (!p_.daemon_binary.empty()) first.push_back(fs::path(p_.daemon_binary).parent_path().string());
  if (auto found = core::find_executable(name, first)) return *found;
  if (name.find('/') != std::string::npos)
    return not_found("runtime \"{}\": shim {} is not an executable file", runtime, name);
  return not_found("runtime \"{}\": shim binary {} not found next to berthd or in PATH", runtime,
                   name);
}

Result<std::shared_ptr<Task>> ShimManager::create(const CreateRequest& r) {
  BERTH_RETURN_IF_ERROR(validate_identifier(r.ns).with_context("namespace"));
  if (r.id.empty() || r.id.find('/') != std::string::npos || r.id == "." || r.id == "..")
    return invalid_argument("task id \"{}\" is not valid", r.id);
  BERTH_TRY(std::string binary, resolve_shim(r.runtime, r.runtime_path));
  auto key = std::make_pair(r.ns, r.id);
  std::string bundle = bundle_dir(r.ns, r.id);
  {
    std::lock_guard lock(mu_);
    if (tasks_.count(key))
      return already_exists("task \"{}\" already exists in namespace \"{}\"", r.id, r.ns);
    // Reserve the id while the shim starts.
    tasks_[key] = nullptr;
  }
  auto unreserve = [&] {
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(key); it != tasks_.end() && !it->second) tasks_.erase(it);
  };
  // A bundle left by a task that is gone (a crash between create steps) is replaced.
  if (fs::exists(bundle)) remove_bundle(r.ns, r.id);
  std::error_code ec;
  fs::create_directories(bundle + "/rootfs", ec);
  if (ec) {
    unreserve();
    return internal_error("create bundle {}: {}", bundle, ec.message());
  }
  fs::create_directories(work_dir(r.ns, r.id), ec);
  fs::create_symlink(work_dir(r.ns, r.id), bundle + "/work", ec);
  auto fail = [&](Status st) -> Status {
    remove_bundle(r.ns, r.id);
    unreserve();
    return st;
  };
  if (Status st = core::write_file_atomic(bundle + "/config.json", r.spec, 0600, core::Durability::kVolatile); !st.ok())
    return fail(st);
  std::string logfifo = bundle + "/log";
  if (::mkfifo(logfifo.c_str(), 0600) == 0) {
    int lfd = ::open(logfifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (lfd >= 0) logs_->add(lfd, r.ns, r.id);
  }
  std::string options;
  if (r.runtime_options) {
    google::protobuf::Any a;
    convert::to_proto(*r.runtime_options, &a);
    options = a.SerializeAsString();
  }
  core::SpawnOptions so;
  so.cwd = bundle;
  so.stdin_data = options;
  so.env = {{"TTRPC_ADDRESS", p_.ttrpc_address}, {"GOMAXPROCS", "2"}};
  so.timeout = c_.start_timeout;
  auto started = core::run_program({binary, "-namespace", r.ns, "-address", p_.grpc_address,
                                    "-publish-binary", p_.daemon_binary, "-id", r.id, "start"},
                                   so);
  if (!started.ok()) return fail(started.status().with_context("start shim"));
  if (started->exit_code != 0) {
    std::string err = trimmed(started->err);
    return fail(Status(Code::kInternal, fmt::format("start shim {}: exit status {}: {}", binary,
                                                    started->exit_code, err)));
  }
  std::string address = trimmed(started->out);
  if (address.empty()) return fail(internal_error("start shim {}: it printed no address", binary));
  core::write_file_atomic(bundle + "/address", address, 0600, core::Durability::kVolatile).ignore();
  core::write_file_atomic(bundle + "/shim-binary-path", binary, 0600, core::Durability::kVolatile).ignore();
  core::write_file_atomic(bundle + "/runtime-name", r.runtime, 0600, core::Durability::kVolatile).ignore();
  auto t = connect(r.ns, r.id, bundle, binary, 0);
  if (!t.ok()) return fail(t.status());
  std::shared_ptr<ShimTask> st = *t;

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
  task::CreateTaskResponse resp;
  Status cs = st->call("Create", req, &resp);
  if (!cs.ok()) {
    st->removing = true;
    task::DeleteRequest dr;
    dr.set_id(r.id);
    st->call("Delete", dr, nullptr, c_.shutdown_timeout).ignore();
    task::ShutdownRequest sr;
    sr.set_id(r.id);
    st->call("Shutdown", sr, nullptr, c_.shutdown_timeout).ignore();
    st->disconnect();
    publish_leftover_events(bundle);
    return fail(cs);
  }
  st->set_pid(resp.pid());
  {
    std::lock_guard lock(mu_);
    tasks_[key] = st;
  }
  return std::shared_ptr<Task>(st);
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

std::vector<std::shared_ptr<Task>> ShimManager::list(const std::string& ns) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Task>> out;
  for (const auto& [k, t] : tasks_) {
    if (k.first == ns && t) out.push_back(t);
  }
  return out;
}

Result<std::shared_ptr<Task>> ShimManager::get(const std::string& ns, const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find({ns, id});
  if (it == tasks_.end() || !it->second) return not_found("task \"{}\" does not exist", id);
  return std::shared_ptr<Task>(it->second);
}

Result<Exit> ShimManager::remove(const std::string& ns, const std::string& id) {
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
  Exit exit{resp.pid(), resp.exit_status(), from_proto(resp.exited_at())};
  if (!ds.ok()) {
    // The shim died under us: clean up as for a dead shim.
    cleanup_dead(ns, id, t->bundle(), t->binary(), t);
    return Exit{
        t->pid(), 255,
        std::chrono::time_point_cast<Timestamp::duration>(std::chrono::system_clock::now())};
  }
  task::ShutdownRequest sr;
  sr.set_id(id);
  t->call("Shutdown", sr, nullptr, c_.shutdown_timeout).ignore();
  t->mark_dead(exit);
  t->disconnect();
  publish_leftover_events(t->bundle());
  remove_bundle(ns, id);
  std::lock_guard lock(mu_);
  tasks_.erase({ns, id});
  return exit;
}

void ShimManager::publish_leftover_events(const std::string& bundle) {
  if (!exchange_) return;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(bundle + "/events", ec))
    files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto data = core::read_file(f);
    ::containerd::services::events::ttrpc::v1::ForwardRequest req;
    if (data.ok() && req.ParseFromString(*data))
      exchange_->forward(convert::envelope_from(req.envelope())).ignore();
    ::unlink(f.c_str());
  }
}

void ShimManager::remove_bundle(const std::string& ns, const std::string& id) {
  std::string bundle = bundle_dir(ns, id);
  core::unmount_all(bundle + "/rootfs", true).ignore();
  std::error_code ec;
  fs::remove_all(work_dir(ns, id), ec);
  // Never follow a mount left in the bundle: only remove when nothing is mounted below it.
  if (core::is_mount_point(bundle + "/rootfs")) {
    log::warn("bundle rootfs still mounted; leaving the bundle", {{"bundle", bundle}});
    return;
  }
  fs::remove_all(bundle, ec);
  if (ec) log::warn("remove bundle", {{"bundle", bundle}, {"error", ec.message()}});
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
  core::SpawnOptions so;
  so.cwd = bundle;
  so.env = {{"TTRPC_ADDRESS", p_.ttrpc_address}};
  so.timeout = std::chrono::seconds(10);
  Exit exit{t ? t->pid() : 0, 255,
            std::chrono::time_point_cast<Timestamp::duration>(std::chrono::system_clock::now())};
  auto r = core::run_program({binary, "-namespace", ns, "-address", p_.grpc_address,
                              "-publish-binary", p_.daemon_binary, "-id", id, "delete"},
                             so);
  task::DeleteResponse resp;
  if (r.ok() && r->exit_code == 0 && resp.ParseFromString(r->out)) {
    if (resp.pid()) exit.pid = resp.pid();
    exit.status = resp.exit_status();
    if (resp.exited_at().seconds()) exit.at = from_proto(resp.exited_at());
  } else {
    log::warn("shim delete failed",
              {{"id", id}, {"error", r.ok() ? r->err : r.status().message()}});
  }
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
  remove_bundle(ns, id);
  std::lock_guard lock(mu_);
  tasks_.erase({ns, id});
}

void ShimManager::load_existing() {
  std::error_code ec;
  std::vector<std::tuple<std::string, std::string, std::string>> bundles;  // ns, id, bundle
  for (const auto& nsd : fs::directory_iterator(p_.state, ec)) {
    if (!nsd.is_directory()) continue;
    for (const auto& b : fs::directory_iterator(nsd.path(), ec)) {
      if (b.is_directory())
        bundles.emplace_back(nsd.path().filename().string(), b.path().filename().string(),
                             b.path().string());
    }
  }
  // Every shim in parallel: a slow or hung one does not hold up the others.
  std::vector<std::future<void>> jobs;
  for (const auto& [ns, id, bundle] : bundles) {
    jobs.push_back(std::async(std::launch::async, [this, ns = ns, id = id, bundle = bundle] {
      auto binary = core::read_file(bundle + "/shim-binary-path");
      if (!binary.ok() || !fs::exists(bundle + "/address")) {
        log::info("removing a bundle without a shim", {{"bundle", bundle}});
        publish_leftover_events(bundle);
        remove_bundle(ns, id);
        return;
      }
      std::string logfifo = bundle + "/log";
      int lfd = ::open(logfifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (lfd >= 0) logs_->add(lfd, ns, id);
      auto t = connect(ns, id, bundle, *binary, 0);
      if (t.ok()) {
        task::ConnectRequest req;
        req.set_id(id);
        task::ConnectResponse resp;
        Status cs = (*t)->call("Connect", req, &resp, kConnectTimeout);
        if (cs.ok() && resp.task_pid() != 0) {
          (*t)->set_pid(resp.task_pid());
          std::lock_guard lock(mu_);
          tasks_[{ns, id}] = *t;
          log::info("reconnected to shim",
                    {{"namespace", ns}, {"id", id}, {"pid", std::to_string(resp.task_pid())}});
          return;
        }
        (*t)->removing = true;
        (*t)->disconnect();
      }
      log::warn("shim is gone; cleaning up its task", {{"namespace", ns}, {"id", id}});
      cleanup_dead(ns, id, bundle, *binary, nullptr);
    }));
  }
  for (auto& j : jobs) j.wait();
  // Work dirs without a bundle (the state directory is a tmpfs: a reboot).
  for (const auto& nsd : fs::directory_iterator(p_.root, ec)) {
    if (!nsd.is_directory()) continue;
    for (const auto& w : fs::directory_iterator(nsd.path(), ec)) {
      if (!fs::exists(bundle_dir(nsd.path().filename().string(), w.path().filename().string())))
        fs::remove_all(w.path(), ec);
    }
  }
}

}  // namespace berth::plugins::runtime_v2

// berth run | tasks ls|start|kill|ps|exec|pause|resume|rm|metrics|attach | events
//
// IO is containerd's: the CLI makes FIFOs under /run/berth/fifo/<random>/ and the shim copies the
// process's streams into them. In the foreground the CLI relays its own stdio (and, with -t, a raw
// terminal and window-size changes), forwards SIGINT/SIGTERM to the task, and exits with the
// process's exit status. Detached tasks get no stdio unless --log-uri names one.
#include <berth/grpc.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "cmd/berth/commands.h"
#include "cmd/berth/container_client.h"
#include "cmd/berth/output.h"
#include "core/signal.h"
#include "core/time.h"
#include "github.com/containerd/cgroups/stats/v1/metrics.pb.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"
#include "github.com/containerd/containerd/runtime/v2/runc/options/oci.pb.h"

namespace berth::cli {
namespace {

namespace tpb = ::containerd::services::tasks::v1;
namespace spb = ::containerd::services::snapshots::v1;
namespace epb = ::containerd::services::events::v1;
namespace types = ::containerd::v1::types;
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kFifoRoot = "/run/berth/fifo";
constexpr const char* kProcessType = "types.containerd.io/opencontainers/runtime-spec/1/Process";

std::string random_hex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) out += fmt::format("{:02x}", rd() & 0xff);
  return out;
}

std::unique_ptr<tpb::Tasks::Stub> tasks(Client& c) { return tpb::Tasks::NewStub(c.channel()); }

// Relays our stdio to and from a process's FIFOs.
class Attachment {
 public:
  Status open(const std::string& in, const std::string& out, const std::string& err) {
    // Read ends first (non-blocking open needs no writer); our stdin side read-write, so opening
    // does not wait for the shim, and closing it is the process's EOF.
    if (!out.empty()) {
      BERTH_TRY(out_, open_fifo(out, O_RDONLY));
    }
    if (!err.empty()) {
      BERTH_TRY(err_, open_fifo(err, O_RDONLY));
    }
    if (!in.empty()) {
      BERTH_TRY(in_, open_fifo(in, O_RDWR));
    }
    return Status();
  }
  void start() {
    // Counted here, not in the threads: finish() must not see 0 before a slow thread has begun.
    for (int fd : {out_, err_}) {
      if (fd < 0) continue;
      ++open_outputs_;
      copiers_.emplace_back([this, fd] { copy_out(fd, fd == out_ ? 1 : 2); });
    }
    if (in_ >= 0) {
      // Never joined: a read of our stdin may block until we exit.
      std::thread([fd = in_] {
        char buf[32 * 1024];
        for (;;) {
          ssize_t n = ::read(0, buf, sizeof buf);
          if (n <= 0) break;
          if (!write_all(fd, buf, static_cast<std::size_t>(n))) break;
        }
        ::close(fd);
      }).detach();
    }
  }
  // Waits (bounded) for the output to reach EOF: everything the process wrote is shown.
  void finish(std::chrono::milliseconds grace) {
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (open_outputs_ > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop_ = true;
    for (auto& t : copiers_) t.join();
    copiers_.clear();
  }
  ~Attachment() {
    stop_ = true;
    for (auto& t : copiers_) t.join();
  }

 private:
  static Result<int> open_fifo(const std::string& path, int mode) {
    int fd = ::open(path.c_str(), mode | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return from_errno(errno, "open {}", path);
    return fd;
  }
  static bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
        pollfd pf{fd, POLLOUT, 0};
        ::poll(&pf, 1, 100);
        continue;
      }
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }
  void copy_out(int fd, int to) {
    char buf[32 * 1024];
    // Until the shim opens its end a read says EOF; poll reports readable only once data is
    // there or a writer came and left.
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        if (!write_all(to, buf, static_cast<std::size_t>(n))) break;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    ::close(fd);
    --open_outputs_;
  }
  int in_ = -1, out_ = -1, err_ = -1;
  std::vector<std::thread> copiers_;
  std::atomic<int> open_outputs_{0};
  std::atomic<bool> stop_{false};
};

// The FIFOs of one process (in /run/berth/fifo/<random>/), attached to our stdio; the directory
// goes with the object.
class Fifos {
 public:
  static Result<std::unique_ptr<Fifos>> attach(const std::string& id, bool tty, Attachment& io) {
    std::unique_ptr<Fifos> f(new Fifos);
    f->dir = fmt::format("{}/{}", kFifoRoot, random_hex(16));
    std::error_code ec;
    fs::create_directories(f->dir, ec);
    if (ec) return internal_error("create {}: {}", f->dir, ec.message());
    ::chmod(f->dir.c_str(), 0700);
    f->in = f->dir + "/" + id + "-stdin";
    f->out = f->dir + "/" + id + "-stdout";
    if (!tty) f->err = f->dir + "/" + id + "-stderr";  // a terminal has no separate stderr
    for (const auto& p : {f->in, f->out, f->err}) {
      if (!p.empty() && ::mkfifo(p.c_str(), 0700) < 0) return from_errno(errno, "mkfifo {}", p);
    }
    BERTH_RETURN_IF_ERROR(io.open(f->in, f->out, f->err));
    return f;
  }
  ~Fifos() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string dir, in, out, err;

 private:
  Fifos() = default;
};

// Raw mode on our terminal for the life of the object.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(0) || ::tcgetattr(0, &saved_) < 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    raw.c_oflag |= OPOST;  // keep \n -> \r\n for our own messages
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

Status resize(Client& c, const std::string& id, const std::string& exec_id) {
  winsize ws{};
  if (::ioctl(0, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) return Status();
  tpb::ResizePtyRequest req;
  req.set_container_id(id);
  req.set_exec_id(exec_id);
  req.set_width(ws.ws_col);
  req.set_height(ws.ws_row);
  google::protobuf::Empty e;
  auto ctx = c.context();
  return c.check(tasks(c)->ResizePty(ctx.get(), req, &e), "resize terminal");
}

// The foreground's signals arrive on a pipe: the handler is process-wide, so whichever thread takes
// a signal (gRPC's own threads included, which a blocked mask would not cover) passes it on.
int g_relay_fd = -1;
extern "C" void relay_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_relay_fd, &b, 1);
  errno = saved;
}

class SignalRelay {
 public:
  SignalRelay() {
    if (::pipe2(fds_, O_CLOEXEC) < 0) return;
    g_relay_fd = fds_[1];
    struct sigaction sa {};
    sa.sa_handler = relay_signal;
    sa.sa_flags = SA_RESTART;
    ::sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~SignalRelay() {
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
    g_relay_fd = -1;
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  // The next signal; 0 once stop() was called.
  int next() {
    unsigned char b = 0;
    for (;;) {
      ssize_t n = ::read(fds_[0], &b, 1);
      if (n == 1) return b;
      if (n < 0 && errno == EINTR) continue;
      return 0;
    }
  }
  void stop() {
    unsigned char zero = 0;
    (void)!::write(fds_[1], &zero, 1);
  }

 private:
  static constexpr std::array<int, 4> kSignals = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
  int fds_[2] = {-1, -1};
  struct sigaction old_[4]{};
};

struct Exited {
  std::uint32_t status = 0;
};

// Runs a created process in the foreground: relays IO, forwards signals (resizes with -t), waits.
Result<Exited> foreground(Client& c, const std::string& id, const std::string& exec_id, bool tty,
                          Attachment& io, const std::function<Result<std::uint32_t>()>& start) {
  SignalRelay relay;
  std::optional<RawTerminal> raw;
  if (tty) raw.emplace();
  io.start();
  // A task's pty exists from Create: sized before the process runs (an exec's comes with Start).
  if (tty && exec_id.empty()) resize(c, id, exec_id).ignore();
  BERTH_RETURN_IF_ERROR(start().status());
  if (tty && !exec_id.empty()) resize(c, id, exec_id).ignore();
  std::thread signals([&] {
    for (int sig; (sig = relay.next()) > 0;) {
      if (sig == SIGWINCH) {
        if (tty) resize(c, id, exec_id).ignore();
        continue;
      }
      if (tty) continue;  // the terminal delivers ^C itself
      tpb::KillRequest req;
      req.set_container_id(id);
      req.set_exec_id(exec_id);
      req.set_signal(static_cast<std::uint32_t>(sig));
      google::protobuf::Empty e;
      auto ctx = c.context();
      tasks(c)->Kill(ctx.get(), req, &e);
    }
  });
  tpb::WaitRequest wr;
  wr.set_container_id(id);
  wr.set_exec_id(exec_id);
  tpb::WaitResponse wresp;
  auto wctx = c.long_context();
  Status ws = c.check(tasks(c)->Wait(wctx.get(), wr, &wresp), "wait for " + id);
  relay.stop();
  signals.join();
  io.finish(std::chrono::seconds(2));
  raw.reset();
  BERTH_RETURN_IF_ERROR(ws);
  return Exited{wresp.exit_status()};
}

Result<std::vector<::containerd::types::Mount>> snapshot_mounts(Client& c,
                                                                const std::string& snapshotter,
                                                                const std::string& key) {
  spb::MountsRequest req;
  req.set_snapshotter(snapshotter);
  req.set_key(key);
  spb::MountsResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(c.check(spb::Snapshots::NewStub(c.channel())->Mounts(ctx.get(), req, &resp),
                                "snapshot mounts of " + key));
  return std::vector<::containerd::types::Mount>(resp.mounts().begin(), resp.mounts().end());
}

Status delete_task(Client& c, const std::string& id) {
  tpb::DeleteTaskRequest req;
  req.set_container_id(id);
  tpb::DeleteResponse resp;
  auto ctx = c.context();
  return c.check(tasks(c)->Delete(ctx.get(), req, &resp), "delete task " + id);
}

struct StartOptions {
  bool detach = false;
  bool tty = false;
  std::string log_uri;
  bool rm = false;  // foreground only: delete the task and the container afterwards
};

// Creates and starts the task of an existing container; in the foreground, returns its exit status.
Result<Exited> start_task(Client& c, const ::containerd::services::containers::v1::Container& ct,
                          const StartOptions& o) {
  tpb::CreateTaskRequest req;
  req.set_container_id(ct.id());
  if (!ct.snapshot_key().empty()) {
    BERTH_TRY(auto mounts, snapshot_mounts(c, ct.snapshotter(), ct.snapshot_key()));
    for (auto& m : mounts) *req.add_rootfs() = std::move(m);
  }
  req.set_terminal(o.tty);
  Attachment io;
  std::unique_ptr<Fifos> fifos;
  if (o.detach) {
    if (!o.log_uri.empty()) {
      std::string uri = o.log_uri.find("://") == std::string::npos
                            ? "file://" + fs::absolute(o.log_uri).string()
                            : o.log_uri;
      req.set_stdout(uri);
      req.set_stderr(uri);
    }
  } else {
    BERTH_TRY(fifos, Fifos::attach(ct.id(), o.tty, io));
    req.set_stdin(fifos->in);
    req.set_stdout(fifos->out);
    req.set_stderr(fifos->err);
  }
  tpb::CreateTaskResponse created;
  auto cctx = c.long_context();
  BERTH_RETURN_IF_ERROR(
      c.check(tasks(c)->Create(cctx.get(), req, &created), "create task " + ct.id()));
  auto start = [&]() -> Result<std::uint32_t> {
    tpb::StartRequest sr;
    sr.set_container_id(ct.id());
    tpb::StartResponse resp;
    auto ctx = c.context();
    Status st = c.check(tasks(c)->Start(ctx.get(), sr, &resp), "start task " + ct.id());
    if (!st.ok()) {
      delete_task(c, ct.id()).ignore();
      return st;
    }
    return resp.pid();
  };
  if (o.detach) {
    BERTH_RETURN_IF_ERROR(start().status());
    return Exited{};
  }
  BERTH_TRY(auto exited, foreground(c, ct.id(), "", o.tty, io, start));
  if (o.rm) {
    BERTH_RETURN_IF_ERROR(delete_task(c, ct.id()));
    BERTH_RETURN_IF_ERROR(remove_container(c, ct.id(), false));
  }
  return exited;
}

const char* status_name(types::Status s) {
  switch (s) {
    case types::CREATED: return "CREATED";
    case types::RUNNING: return "RUNNING";
    case types::STOPPED: return "STOPPED";
    case types::PAUSED: return "PAUSED";
    case types::PAUSING: return "PAUSING";
    default: return "UNKNOWN";
  }
}

// An exit status becomes ours, so scripts see the container's.
[[noreturn]] void exit_with(std::uint32_t status) {
  std::cout.flush();
  std::exit(static_cast<int>(status > 255 ? 255 : status));
}

json metrics_json(const google::protobuf::Any& data) {
  std::string text;
  google::protobuf::util::JsonPrintOptions po;
  po.preserve_proto_field_names = true;
  if (data.type_url().ends_with("io.containerd.cgroups.v1.Metrics")) {
    ::io::containerd::cgroups::v1::Metrics m;
    m.ParseFromString(data.value());
    (void)google::protobuf::util::MessageToJsonString(m, &text, po);
  } else if (data.type_url().ends_with("io.containerd.cgroups.v2.Metrics")) {
    ::io::containerd::cgroups::v2::Metrics m;
    m.ParseFromString(data.value());
    (void)google::protobuf::util::MessageToJsonString(m, &text, po);
  }
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

// An event payload as JSON, through the generated message types linked into this binary.
std::string event_json(const google::protobuf::Any& any) {
  const auto* desc =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(any.type_url());
  if (!desc) return "{}";
  std::unique_ptr<google::protobuf::Message> m(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc)->New());
  if (!m->ParseFromString(any.value())) return "{}";
  std::string text;
  google::protobuf::util::JsonPrintOptions po;
  if (!google::protobuf::util::MessageToJsonString(*m, &text, po).ok()) return "{}";
  return text;
}

}  // namespace

void add_run_command(CLI::App& app, const GlobalOptions& global) {
  static CreateOptions co;
  static StartOptions so;
  auto* run = app.add_subcommand("run", "create and start a container: IMAGE ID [CMD ARGS...]");
  run->add_option("image", co.image, "image name (with --rootfs: a root filesystem directory)")
      ->required();
  run->prefix_command();
  run->allow_extras();
  run->fallthrough(false);
  add_create_options(run, co);
  run->add_flag("--rm", so.rm, "delete the container when it exits");
  run->add_flag("--detach,-d", so.detach, "start it and return");
  run->add_option("--log-uri", so.log_uri,
                  "detached: file path, file:// or binary:// URI for its output");
  set_action(run, global, [run](Client& c) -> Status {
    auto rest = run->remaining();
    if (rest.empty()) return invalid_argument("run: IMAGE ID [CMD ARGS...] (the id is missing)");
    co.id = rest[0];
    co.spec.args.assign(rest.begin() + 1, rest.end());
    if (so.rm && so.detach) return invalid_argument("--rm and --detach cannot be used together");
    so.tty = co.spec.tty;
    BERTH_TRY(auto ct, create_container(c, co));
    auto exited = start_task(c, ct, so);
    if (!exited.ok()) {
      if (so.rm) {
        delete_task(c, co.id).ignore();
        remove_container(c, co.id, false).ignore();
      }
      return exited.status();
    }
    if (!so.detach) exit_with(exited->status);
    return Status();
  });
}

void add_tasks_command(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("tasks", "manage tasks (running containers)");
  cmd->alias("task")->alias("t");
  cmd->require_subcommand(1);

  auto* ls = cmd->add_subcommand("ls", "list tasks")->alias("list");
  set_action(ls, global, [&global](Client& c) -> Status {
    tpb::ListTasksRequest req;
    tpb::ListTasksResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->List(ctx.get(), req, &resp), "list tasks"));
    if (global.format == "json") {
      json out = json::array();
      for (const auto& t : resp.tasks())
        out.push_back({{"id", t.id()},
                       {"pid", t.pid()},
                       {"status", status_name(t.status())},
                       {"exit_status", t.exit_status()}});
      print_json(std::cout, out);
      return Status();
    }
    Table t({"TASK", "PID", "STATUS"});
    for (const auto& task : resp.tasks())
      t.add({task.id(), std::to_string(task.pid()), status_name(task.status())});
    t.print(std::cout);
    return Status();
  });

  static std::string id;
  static StartOptions so;
  auto* start = cmd->add_subcommand("start", "start a container's task: ID");
  start->add_option("id", id, "container id")->required();
  start->add_flag("--detach,-d", so.detach, "start it and return");
  start->add_option("--log-uri", so.log_uri, "detached: where its output goes");
  set_action(start, global, [](Client& c) -> Status {
    BERTH_TRY(auto ct, get_container(c, id));
    json spec = json::parse(ct.spec().value(), nullptr, false);
    so.tty = !spec.is_discarded() && spec.contains("process") &&
             spec["process"].value("terminal", false);
    BERTH_TRY(auto exited, start_task(c, ct, so));
    if (!so.detach) exit_with(exited.status);
    return Status();
  });

  static std::string signal = "SIGTERM", exec_id;
  static bool all = false;
  auto* kill = cmd->add_subcommand("kill", "signal a task: ID");
  kill->add_option("id", id, "container id")->required();
  kill->add_option("--signal,-s", signal, "signal name or number")->capture_default_str();
  kill->add_flag("--all,-a", all, "every process in the container");
  kill->add_option("--exec-id", exec_id, "an exec'd process instead of the init");
  set_action(kill, global, [](Client& c) -> Status {
    BERTH_TRY(int sig, core::parse_signal(signal));
    tpb::KillRequest req;
    req.set_container_id(id);
    req.set_exec_id(exec_id);
    req.set_signal(static_cast<std::uint32_t>(sig));
    req.set_all(all);
    google::protobuf::Empty e;
    auto ctx = c.context();
    return c.check(tasks(c)->Kill(ctx.get(), req, &e), "kill " + id);
  });

  auto* ps = cmd->add_subcommand("ps", "processes of a task: ID");
  ps->add_option("id", id, "container id")->required();
  set_action(ps, global, [&global](Client& c) -> Status {
    tpb::ListPidsRequest req;
    req.set_container_id(id);
    tpb::ListPidsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(tasks(c)->ListPids(ctx.get(), req, &resp), "list processes of " + id));
    json out = json::array();
    Table t({"PID", "INFO"});
    for (const auto& p : resp.processes()) {
      std::string info = "-";
      if (p.has_info() && p.info().type_url().ends_with("containerd.runc.v1.ProcessDetails")) {
        ::containerd::runc::v1::ProcessDetails d;
        if (d.ParseFromString(p.info().value())) info = "exec_id=" + d.exec_id();
      }
      t.add({std::to_string(p.pid()), info});
      out.push_back({{"pid", p.pid()}, {"info", info}});
    }
    if (global.format == "json")
      print_json(std::cout, out);
    else
      t.print(std::cout);
    return Status();
  });

  for (bool pausing : {true, false}) {
    auto* sub = cmd->add_subcommand(pausing ? "pause" : "resume",
                                    pausing ? "freeze a task: ID" : "thaw a task: ID");
    sub->add_option("id", id, "container id")->required();
    set_action(sub, global, [pausing](Client& c) -> Status {
      google::protobuf::Empty e;
      auto ctx = c.context();
      if (pausing) {
        tpb::PauseTaskRequest req;
        req.set_container_id(id);
        return c.check(tasks(c)->Pause(ctx.get(), req, &e), "pause " + id);
      }
      tpb::ResumeTaskRequest req;
      req.set_container_id(id);
      return c.check(tasks(c)->Resume(ctx.get(), req, &e), "resume " + id);
    });
  }

  static std::vector<std::string> ids;
  static bool force = false;
  auto* rm = cmd->add_subcommand("rm", "delete stopped tasks: ID...")->alias("delete");
  rm->add_option("ids", ids, "container ids")->required();
  rm->add_flag("--force,-f", force, "kill a running task first");
  set_action(rm, global, [](Client& c) -> Status {
    return for_each_item(ids, "tasks", false, [&](const std::string& i) -> Status {
      if (force) {
        tpb::KillRequest kr;
        kr.set_container_id(i);
        kr.set_signal(SIGKILL);
        kr.set_all(true);
        google::protobuf::Empty e;
        auto kctx = c.context();
        if (tasks(c)->Kill(kctx.get(), kr, &e).ok()) {
          tpb::WaitRequest wr;
          wr.set_container_id(i);
          tpb::WaitResponse wresp;
          auto wctx = c.context();
          tasks(c)->Wait(wctx.get(), wr, &wresp);
        }
      }
      return delete_task(c, i);
    });
  });

  auto* metrics = cmd->add_subcommand("metrics", "cgroup metrics of a task: ID")->alias("metric");
  metrics->add_option("id", id, "container id")->required();
  set_action(metrics, global, [&global](Client& c) -> Status {
    tpb::MetricsRequest req;
    req.add_filters("id==" + id);
    tpb::MetricsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Metrics(ctx.get(), req, &resp), "metrics of " + id));
    if (resp.metrics_size() == 0) return not_found("task \"{}\" does not exist", id);
    json m = metrics_json(resp.metrics(0).data());
    if (global.format == "json") {
      print_json(std::cout, m);
      return Status();
    }
    Table t({"METRIC", "VALUE"});
    auto flat = m.flatten();
    for (const auto& [k, v] : flat.items()) t.add({k.substr(1), v.dump()});
    t.print(std::cout);
    return Status();
  });

  static std::vector<std::string> exec_args;
  static bool exec_tty = false, exec_detach = false;
  static std::string exec_cwd;
  static std::vector<std::string> exec_env;
  auto* ex = cmd->add_subcommand("exec", "run a process in a task: ID CMD [ARGS...]");
  ex->add_option("--exec-id", exec_id, "the process's id (default: a random one)");
  ex->add_flag("--tty,-t", exec_tty, "allocate a terminal");
  ex->add_flag("--detach,-d", exec_detach, "start it and return");
  ex->add_option("--cwd", exec_cwd, "working directory");
  ex->add_option("--env,-e", exec_env, "NAME=VALUE")->allow_extra_args(false);
  ex->add_option("id", id, "container id")->required();
  ex->prefix_command();
  ex->allow_extras();
  ex->fallthrough(false);
  set_action(ex, global, [ex](Client& c) -> Status {
    // The FIFOs go before the exit status becomes ours (exit runs no destructors).
    auto exited = [&]() -> Result<Exited> {
      auto args = ex->remaining();
      if (args.empty()) return invalid_argument("exec: ID CMD [ARGS...] (the command is missing)");
      if (exec_id.empty()) exec_id = "exec-" + random_hex(6);
      BERTH_TRY(auto ct, get_container(c, id));
      json spec = json::parse(ct.spec().value(), nullptr, false);
      if (spec.is_discarded() || !spec.contains("process"))
        return failed_precondition("container \"{}\" has no process spec", id);
      json process = spec["process"];
      process["args"] = args;
      process["terminal"] = exec_tty;
      if (!exec_cwd.empty()) process["cwd"] = exec_cwd;
      for (const auto& e : exec_env) process["env"].push_back(e);
      tpb::ExecProcessRequest req;
      req.set_container_id(id);
      req.set_exec_id(exec_id);
      req.set_terminal(exec_tty);
      req.mutable_spec()->set_type_url(kProcessType);
      req.mutable_spec()->set_value(process.dump());
      Attachment io;
      std::unique_ptr<Fifos> fifos;
      if (!exec_detach) {
        BERTH_TRY(fifos, Fifos::attach(exec_id, exec_tty, io));
        req.set_stdin(fifos->in);
        req.set_stdout(fifos->out);
        req.set_stderr(fifos->err);
      }
      google::protobuf::Empty e;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Exec(ctx.get(), req, &e), "exec in " + id));
      auto start = [&]() -> Result<std::uint32_t> {
        tpb::StartRequest sr;
        sr.set_container_id(id);
        sr.set_exec_id(exec_id);
        tpb::StartResponse resp;
        auto sctx = c.context();
        BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Start(sctx.get(), sr, &resp), "start " + exec_id));
        return resp.pid();
      };
      if (exec_detach) {
        BERTH_RETURN_IF_ERROR(start().status());
        return Exited{};
      }
      auto exited = foreground(c, id, exec_id, exec_tty, io, start);
      tpb::DeleteProcessRequest dr;
      dr.set_container_id(id);
      dr.set_exec_id(exec_id);
      tpb::DeleteResponse dresp;
      auto dctx = c.context();
      tasks(c)->DeleteProcess(dctx.get(), dr, &dresp);
      return exited;
    }();
    if (!exited.ok()) return exited.status();
    if (!exec_detach) exit_with(exited->status);
    return Status();
  });

  auto* attach = cmd->add_subcommand(
      "attach", "attach to a task's stdio (when it was started with FIFOs): ID");
  attach->add_option("id", id, "container id")->required();
  set_action(attach, global, [](Client& c) -> Status {
    tpb::GetRequest req;
    req.set_container_id(id);
    tpb::GetResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Get(ctx.get(), req, &resp), "get task " + id));
    const auto& p = resp.process();
    if (p.stdout().empty() && p.stdin().empty())
      return failed_precondition("task \"{}\" has no stdio to attach to (started detached)", id);
    for (const auto& path : {p.stdin(), p.stdout(), p.stderr()}) {
      if (!path.empty() && path.find("://") == std::string::npos && !fs::exists(path))
        return failed_precondition("task \"{}\": its FIFO {} is gone", id, path);
    }
    Attachment io;
    BERTH_RETURN_IF_ERROR(io.open(p.stdin(), p.stdout(), p.stderr()));
    BERTH_TRY(auto exited, foreground(c, id, "", p.terminal(), io,
                                      [&]() -> Result<std::uint32_t> { return p.pid(); }));
    exit_with(exited.status);
  });
}

void add_events_command(CLI::App& app, const GlobalOptions& global) {
  static std::vector<std::string> filters;
  auto* events =
      app.add_subcommand("events", "print events as they happen [FILTER...] (topic==/tasks/exit)");
  events->add_option("filters", filters, "filters (containerd's syntax)");
  set_action(events, global, [&global](Client& c) -> Status {
    epb::SubscribeRequest req;
    for (const auto& f : filters) req.add_filters(f);
    auto ctx = c.long_context();
    auto reader = epb::Events::NewStub(c.channel())->Subscribe(ctx.get(), req);
    epb::Envelope e;
    while (reader->Read(&e)) {
      std::string payload = event_json(e.event());
      if (global.format == "json") {
        json j = {{"timestamp", core::format_rfc3339(from_proto(e.timestamp()))},
                  {"namespace", e.namespace_()},
                  {"topic", e.topic()},
                  {"event", json::parse(payload, nullptr, false)}};
        std::cout << j.dump() << std::endl;
      } else {
        std::cout << core::format_rfc3339(from_proto(e.timestamp())) << " " << e.namespace_() << " "
                  << e.topic() << " " << payload << std::endl;
      }
    }
    return c.check(reader->Finish(), "subscribe to events");
  });
}

}  // namespace berth::cli

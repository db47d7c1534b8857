// The shim's containerd.task.v2.Task methods (service.h says what each does). One file on
// purpose (~680 lines): every method runs on the shim's single io thread against the same
// container/process table and exit bookkeeping, and reading them together is how that
// invariant is checked; the IO, publishing and backend pieces are in their own files.
#include "shim/service.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <berth/convert/mount.h>
#include <berth/proto_time.h>

#include "core/fs.h"
#include "core/mount.h"
#include "github.com/containerd/cgroups/stats/v1/metrics.pb.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/runc/options/oci.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

namespace berth::shim {

namespace asio = boost::asio;
namespace task = ::containerd::task::v2;
namespace types = ::containerd::v1::types;
namespace ev = ::containerd::events;

namespace {

// How long an exit waits for the process's output to reach the client before it is reported
// anyway (a daemonised grandchild may hold the pipe open forever).
constexpr auto kOutputGrace = std::chrono::seconds(5);
// How long Delete and Shutdown wait for their events to be acknowledged.
constexpr auto kFlushWait = std::chrono::seconds(3);

template <typename Req>
Result<Req> parse(const std::string& payload, const char* what) {
  Req r;
  if (!r.ParseFromString(payload)) return invalid_argument("{}: malformed request", what);
  return r;
}

std::string reply_of(const google::protobuf::Message& m) { return m.SerializeAsString(); }
const std::string kEmpty;  // google.protobuf.Empty

bool same_pid_ns(pid_t pid) {
  struct stat a {
  }, b{};
  if (::stat("/proc/self/ns/pid", &a) < 0) return false;
  if (::stat(fmt::format("/proc/{}/ns/pid", pid).c_str(), &b) < 0) return false;
  return a.st_ino == b.st_ino;
}

}  // namespace

Service::Service(asio::io_context& io, ServiceOptions o, Publisher& publisher)
    : io_(io), o_(std::move(o)), publisher_(publisher) {}

std::unique_ptr<Backend> backend_for_bundle(const std::string& bundle) {
  auto saved = core::read_file(bundle + "/" + kBackendFile);
  if (!saved.ok()) return in_process_backend(bundle);
  auto nl = saved->find('\n');
  return binary_backend(saved->substr(0, nl), nl == std::string::npos ? "" : saved->substr(nl + 1),
                        bundle);
}

Result<std::string> find_program(const std::string& name) {
  if (auto found = core::find_executable(name)) return *found;
  if (name.find('/') != std::string::npos)
    return not_found("runtime binary {} is not executable", name);
  return not_found("runtime binary \"{}\" not found in PATH", name);
}

Service::~Service() = default;

void Service::register_on(ttrpc::Server& server) {
  auto sync = [&](const char* method, Result<std::string> (Service::*fn)(const std::string&)) {
    server.handle(kTaskService, method, [this, fn](ttrpc::Call call, ttrpc::Reply reply) {
      reply((this->*fn)(call.payload));
    });
  };
  sync("Create", &Service::create);
  sync("Start", &Service::start);
  sync("State", &Service::state);
  sync("Kill", &Service::kill);
  sync("Exec", &Service::exec);
  sync("Pids", &Service::pids);
  sync("CloseIO", &Service::close_io);
  sync("ResizePty", &Service::resize_pty);
  sync("Update", &Service::update);
  sync("Stats", &Service::stats);
  sync("Connect", &Service::connect);
  server.handle(kTaskService, "Pause",
                [this](ttrpc::Call call, ttrpc::Reply reply) { reply(pause(call.payload, true)); });
  server.handle(kTaskService, "Resume", [this](ttrpc::Call call, ttrpc::Reply reply) {
    reply(pause(call.payload, false));
  });
  server.handle(kTaskService, "Delete", [this](ttrpc::Call call, ttrpc::Reply reply) {
    remove(call.payload, std::move(reply));
  });
  server.handle(kTaskService, "Wait", [this](ttrpc::Call call, ttrpc::Reply reply) {
    wait(call.payload, std::move(reply));
  });
  server.handle(kTaskService, "Shutdown", [this](ttrpc::Call call, ttrpc::Reply reply) {
    shutdown(call.payload, std::move(reply));
  });
  server.handle(kTaskService, "Checkpoint", [](ttrpc::Call, ttrpc::Reply reply) {
    reply(Status(Code::kUnimplemented, "berth-shim: checkpoint is not implemented"));
  });
}

Result<Service::Container*> Service::find(const std::string& id) {
  auto it = containers_.find(id);
  if (it == containers_.end()) return not_found("container \"{}\": no such task in this shim", id);
  return it->second.get();
}

Result<Service::Proc*> Service::find(const std::string& id, const std::string& exec_id) {
  BERTH_TRY(Container * c, find(id));
  if (exec_id.empty()) return &c->init;
  auto it = c->execs.find(exec_id);
  if (it == c->execs.end())
    return not_found("process \"{}\" of container \"{}\" does not exist", exec_id, id);
  return it->second.get();
}

void Service::publish(const Container& c, std::string_view topic,
                      const google::protobuf::Message& event) {
  publisher_.publish(c.bundle, c.id, o_.ns, topic, event);
}

Result<std::string> Service::create(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::CreateTaskRequest>(payload, "Create"));
  BERTH_RETURN_IF_ERROR(oci::validate_id(r.id()));
  if (containers_.count(r.id()))
    return already_exists("container \"{}\" already has a task", r.id());
  if (!r.checkpoint().empty())
    return Status(Code::kUnimplemented, "berth-shim: restoring a checkpoint is not implemented");
  CreateRequest cr;
  std::string binary, binary_root;
  if (r.has_options() && r.options().type_url().ends_with("containerd.runc.v1.Options")) {
    ::containerd::runc::v1::Options opts;
    if (!opts.ParseFromString(r.options().value()))
      return invalid_argument("Create: malformed runc options");
    if (opts.systemd_cgroup())
      return Status(Code::kUnimplemented,
                    "berth-shim: SystemdCgroup is not supported (cgroupsPath is a path)");
    cr.no_pivot = opts.no_pivot_root();
    cr.no_new_keyring = opts.no_new_keyring();
    binary = opts.binary_name();
    binary_root = opts.root();
  }
  if (r.bundle().empty() || r.bundle()[0] != '/')
    return invalid_argument("Create: bundle \"{}\" must be an absolute path", r.bundle());

  auto c = std::make_unique<Container>();
  c->id = r.id();
  c->bundle = r.bundle();
  if (binary.empty()) {
    c->backend = in_process_backend(c->bundle);
  } else {
    // BinaryName: an external runc-compatible runtime instead of libberth-oci; `delete` after a
    // crash finds it in the bundle.
    BERTH_TRY(binary, find_program(binary));
    c->backend = binary_backend(binary, binary_root, c->bundle);
    BERTH_RETURN_IF_ERROR(
        core::write_file_atomic(c->bundle + "/" + kBackendFile, binary + "\n" + binary_root, 0600, core::Durability::kVolatile));
  }
  std::string rootfs = c->bundle + "/rootfs";
  if (r.rootfs_size() > 0) {
    ::mkdir(rootfs.c_str(), 0711);
    BERTH_RETURN_IF_ERROR(core::mount_all(convert::mounts_from_proto(r.rootfs()), rootfs)
                              .with_context("mount the rootfs"));
    c->rootfs_mounted = true;
  }
  auto undo_mounts = [&] {
    if (c->rootfs_mounted) core::unmount_all(rootfs, true).ignore();
  };
  IoConfig ioc{r.stdin(), r.stdout(), r.stderr(), r.terminal(), r.id(), o_.ns};
  auto pio = ProcessIO::open(io_, ioc);
  if (!pio.ok()) {
    undo_mounts();
    return pio.status();
  }
  cr.id = c->id;
  cr.bundle = c->bundle;
  cr.terminal = r.terminal();
  std::copy((*pio)->child_fds(), (*pio)->child_fds() + 3, cr.stdio);
  auto st = c->backend->create(cr);
  if (!st.ok()) {
    undo_mounts();
    return st.status();
  }
  (*pio)->start(st->console);
  c->init.pid = st->pid;
  c->init.io = std::move(*pio);
  c->init.io_config = ioc;
  c->own_pid_ns = !same_pid_ns(st->pid);
  auto layout = oci::cgroups::probe();
  if (layout.ok()) {
    c->pure_v2 = layout->pure_v2();
    auto cg = oci::cgroups::Cgroup::open(*layout, st->cgroup_path);
    if (cg.ok()) c->cgroup = std::move(*cg);
  }
  watch_oom(*c);

  ev::TaskCreate e;
  e.set_container_id(c->id);
  e.set_bundle(c->bundle);
  *e.mutable_rootfs() = r.rootfs();
  e.mutable_io()->set_stdin(r.stdin());
  e.mutable_io()->set_stdout(r.stdout());
  e.mutable_io()->set_stderr(r.stderr());
  e.mutable_io()->set_terminal(r.terminal());
  e.set_pid(static_cast<std::uint32_t>(st->pid));
  publish(*c, "/tasks/create", e);
  task::CreateTaskResponse resp;
  resp.set_pid(static_cast<std::uint32_t>(st->pid));
  containers_[c->id] = std::move(c);
  return reply_of(resp);
}

void Service::watch_oom(Container& c) {
  if (!c.cgroup) return;
  auto fd = c.cgroup->oom_fd();
  if (!fd.ok() || *fd < 0) return;
  if (auto s = c.cgroup->stats(); s.ok()) c.oom_kills = s->oom_kills;
  c.oom = std::make_unique<asio::posix::stream_descriptor>(io_, *fd);
  c.oom->non_blocking(true);
  std::string id = c.id;
  // v1 memory.oom_control eventfd: each wake-up is an OOM. v2 inotify on memory.events: an OOM
  // is an increase of the oom_kill counter.
  auto again = std::make_shared<std::function<void(const boost::system::error_code&)>>();
  *again = [this, id, again](const boost::system::error_code& ec) {
    if (ec) return;
    auto it = containers_.find(id);
    if (it == containers_.end() || !it->second->oom) return;
    Container& c = *it->second;
    char buf[4096];
    ssize_t n = ::read(c.oom->native_handle(), buf, sizeof buf);
    bool eventfd = n == 8;
    bool oom = eventfd;
    if (auto s = c.cgroup->stats(); s.ok()) {
      if (s->oom_kills > c.oom_kills) oom = true;
      c.oom_kills = s->oom_kills;
    }
    if (oom) {
      ev::TaskOOM e;
      e.set_container_id(id);
      publish(c, "/tasks/oom", e);
    }
    c.oom->async_wait(asio::posix::descriptor_base::wait_read, *again);
  };
  c.oom->async_wait(asio::posix::descriptor_base::wait_read, *again);
}

Result<std::string> Service::start(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::StartRequest>(payload, "Start"));
  BERTH_TRY(Container * c, find(r.id()));
  task::StartResponse resp;
  if (r.exec_id().empty()) {
    if (c->init.state != ProcState::kCreated)
      return failed_precondition("container \"{}\" is already started", r.id());
    BERTH_RETURN_IF_ERROR(c->backend->start(r.id()));
    c->init.state = ProcState::kRunning;
    ev::TaskStart e;
    e.set_container_id(r.id());
    e.set_pid(static_cast<std::uint32_t>(c->init.pid));
    publish(*c, "/tasks/start", e);
    resp.set_pid(static_cast<std::uint32_t>(c->init.pid));
    return reply_of(resp);
  }
  BERTH_TRY(Proc * p, find(r.id(), r.exec_id()));
  if (p->state != ProcState::kCreated)
    return failed_precondition("process \"{}\" is already started", r.exec_id());
  if (c->init.state != ProcState::kRunning)
    return failed_precondition("container \"{}\" is not running", r.id());
  auto pio = ProcessIO::open(io_, p->io_config);
  if (!pio.ok()) return pio.status();
  ExecRequest er;
  er.id = r.id();
  er.exec_id = r.exec_id();
  er.process = *p->spec;
  er.process_json = p->spec_json;
  std::copy((*pio)->child_fds(), (*pio)->child_fds() + 3, er.stdio);
  BERTH_TRY(auto started, c->backend->exec(er));
  pid_t pid = started.pid;
  (*pio)->start(started.console);
  p->io = std::move(*pio);
  p->pid = pid;
  p->state = ProcState::kRunning;
  ev::TaskExecStarted e;
  e.set_container_id(r.id());
  e.set_exec_id(r.exec_id());
  e.set_pid(static_cast<std::uint32_t>(pid));
  publish(*c, "/tasks/exec-started", e);
  resp.set_pid(static_cast<std::uint32_t>(pid));
  return reply_of(resp);
}

Result<std::string> Service::exec(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::ExecProcessRequest>(payload, "Exec"));
  BERTH_TRY(Container * c, find(r.id()));
  if (r.exec_id().empty()) return invalid_argument("Exec: exec_id is required");
  BERTH_RETURN_IF_ERROR(oci::validate_id(r.exec_id()).with_context("exec id"));
  if (c->execs.count(r.exec_id()))
    return already_exists("process \"{}\" already exists in container \"{}\"", r.exec_id(), r.id());
  if (c->init.state != ProcState::kRunning)
    return failed_precondition("container \"{}\" is not running", r.id());
  BERTH_TRY(auto spec, oci::parse_process(r.spec().value(), "exec process spec"));
  auto p = std::make_unique<Proc>();
  p->exec_id = r.exec_id();
  p->spec = std::move(spec);
  p->spec->terminal = r.terminal();
  {
    // The external runtimes get the process as JSON, with the terminal the request asks for.
    auto j = nlohmann::json::parse(r.spec().value(), nullptr, false);
    if (j.is_object()) j["terminal"] = r.terminal();
    p->spec_json = j.is_object() ? j.dump() : r.spec().value();
  }
  p->io_config = IoConfig{r.stdin(), r.stdout(), r.stderr(), r.terminal(), r.id(), o_.ns};
  c->execs[r.exec_id()] = std::move(p);
  ev::TaskExecAdded e;
  e.set_container_id(r.id());
  e.set_exec_id(r.exec_id());
  publish(*c, "/tasks/exec-added", e);
  return kEmpty;
}

void Service::remove(const std::string& payload, ttrpc::Reply reply) {
  auto r = parse<task::DeleteRequest>(payload, "Delete");
  if (!r.ok()) return reply(r.status());
  auto cr = find(r->id());
  if (!cr.ok()) return reply(cr.status());
  Container* c = *cr;
  task::DeleteResponse resp;
  if (!r->exec_id().empty()) {
    auto it = c->execs.find(r->exec_id());
    if (it == c->execs.end())
      return reply(not_found("process \"{}\" does not exist", r->exec_id()));
    Proc& p = *it->second;
    if (p.state == ProcState::kRunning)
      return reply(failed_precondition("process \"{}\" is running; kill it first", r->exec_id()));
    resp.set_pid(static_cast<std::uint32_t>(p.pid));
    resp.set_exit_status(p.exit_status);
    berth::to_proto(p.exited_at, resp.mutable_exited_at());
    c->execs.erase(it);
    return reply(reply_of(resp));
  }
  Proc& init = c->init;
  if (init.state == ProcState::kRunning)
    return reply(
        failed_precondition("task \"{}\" is running; kill it before deleting it", r->id()));
  if (init.state == ProcState::kCreated) {
    // Never started: the init waits on its exec.fifo. It is our child: kill and reap it here.
    ::kill(init.pid, SIGKILL);
    int status = 0;
    ::waitpid(init.pid, &status, 0);
    init.state = ProcState::kStopped;
    init.exit_status = 128 + SIGKILL;
    init.exited_at = std::chrono::system_clock::now();
    for (auto& w : init.waiters) {
      task::WaitResponse wr;
      wr.set_exit_status(init.exit_status);
      berth::to_proto(init.exited_at, wr.mutable_exited_at());
      w(reply_of(wr));
    }
    init.waiters.clear();
  }
  for (auto& [id, p] : c->execs) {
    if (p->state == ProcState::kRunning && p->pid > 0) ::kill(p->pid, SIGKILL);
  }
  Status st = c->backend->remove(c->id);
  if (!st.ok() && st.code() != Code::kNotFound)
    std::fprintf(stderr, "berth-shim: delete %s: %s\n", c->id.c_str(), st.message().c_str());
  if (c->rootfs_mounted) {
    Status us = core::unmount_all(c->bundle + "/rootfs", true);
    if (!us.ok())
      std::fprintf(stderr, "berth-shim: unmount rootfs of %s: %s\n", c->id.c_str(),
                   us.message().c_str());
  }
  resp.set_pid(static_cast<std::uint32_t>(init.pid));
  resp.set_exit_status(init.exit_status);
  berth::to_proto(init.exited_at, resp.mutable_exited_at());
  ev::TaskDelete e;
  e.set_container_id(c->id);
  e.set_pid(resp.pid());
  e.set_exit_status(resp.exit_status());
  *e.mutable_exited_at() = resp.exited_at();
  e.set_id(c->id);
  publish(*c, "/tasks/delete", e);
  std::string id = c->id;
  if (c->oom) {
    boost::system::error_code ignored;
    c->oom->close(ignored);
  }
  containers_.erase(id);
  // The daemon removes the bundle (and the unsent events in it) after this returns: send first.
  publisher_.when_flushed(id, kFlushWait, [reply, out = reply_of(resp)] { reply(out); });
}

Result<std::string> Service::state(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::StateRequest>(payload, "State"));
  BERTH_TRY(Container * c, find(r.id()));
  BERTH_TRY(Proc * p, find(r.id(), r.exec_id()));
  task::StateResponse resp;
  resp.set_id(r.exec_id().empty() ? r.id() : r.exec_id());
  resp.set_bundle(c->bundle);
  resp.set_pid(static_cast<std::uint32_t>(p->pid));
  types::Status status = types::UNKNOWN;
  switch (p->state) {
    case ProcState::kCreated: status = types::CREATED; break;
    case ProcState::kRunning: status = c->paused ? types::PAUSED : types::RUNNING; break;
    case ProcState::kStopped: status = types::STOPPED; break;
  }
  resp.set_status(status);
  resp.set_stdin(p->io_config.stdin);
  resp.set_stdout(p->io_config.stdout);
  resp.set_stderr(p->io_config.stderr);
  resp.set_terminal(p->io_config.terminal);
  resp.set_exit_status(p->exit_status);
  if (p->state == ProcState::kStopped) berth::to_proto(p->exited_at, resp.mutable_exited_at());
  resp.set_exec_id(r.exec_id());
  return reply_of(resp);
}

Result<std::string> Service::kill(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::KillRequest>(payload, "Kill"));
  BERTH_TRY(Container * c, find(r.id()));
  BERTH_TRY(Proc * p, find(r.id(), r.exec_id()));
  int sig = static_cast<int>(r.signal());
  if (sig <= 0 || sig >= 65) return invalid_argument("Kill: invalid signal {}", r.signal());
  if (p->state == ProcState::kStopped || p->reaped) return not_found("process already finished");
  if (r.exec_id().empty()) {
    BERTH_RETURN_IF_ERROR(c->backend->kill(c->id, sig, r.all()));
    // A frozen process cannot act on SIGKILL until it is thawed.
    if (c->paused && sig == SIGKILL && c->cgroup) {
      c->cgroup->freeze(false).ignore();
      c->paused = false;
    }
    return kEmpty;
  }
  if (p->state != ProcState::kRunning)
    return failed_precondition("process \"{}\" is not started", r.exec_id());
  if (::kill(p->pid, sig) < 0) return from_errno(errno, "signal process \"{}\"", r.exec_id());
  return kEmpty;
}

Result<std::string> Service::pids(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::PidsRequest>(payload, "Pids"));
  BERTH_TRY(Container * c, find(r.id()));
  BERTH_TRY(auto list, c->backend->pids(r.id()));
  task::PidsResponse resp;
  for (pid_t pid : list) {
    auto* info = resp.add_processes();
    info->set_pid(static_cast<std::uint32_t>(pid));
    for (const auto& [exec_id, p] : c->execs) {
      if (p->pid != pid) continue;
      ::containerd::runc::v1::ProcessDetails d;
      d.set_exec_id(exec_id);
      info->mutable_info()->set_type_url("containerd.runc.v1.ProcessDetails");
      d.SerializeToString(info->mutable_info()->mutable_value());
    }
  }
  return reply_of(resp);
}

Result<std::string> Service::pause(const std::string& payload, bool pause) {
  std::string id;
  if (pause) {
    BERTH_TRY(auto r, parse<task::PauseRequest>(payload, "Pause"));
    id = r.id();
  } else {
    BERTH_TRY(auto r, parse<task::ResumeRequest>(payload, "Resume"));
    id = r.id();
  }
  BERTH_TRY(Container * c, find(id));
  if (c->init.state != ProcState::kRunning)
    return failed_precondition("task \"{}\" is not running", id);
  BERTH_RETURN_IF_ERROR(pause ? c->backend->pause(id) : c->backend->resume(id));
  c->paused = pause;
  if (pause) {
    ev::TaskPaused e;
    e.set_container_id(id);
    publish(*c, "/tasks/paused", e);
  } else {
    ev::TaskResumed e;
    e.set_container_id(id);
    publish(*c, "/tasks/resumed", e);
  }
  return kEmpty;
}

Result<std::string> Service::close_io(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::CloseIORequest>(payload, "CloseIO"));
  BERTH_TRY(Proc * p, find(r.id(), r.exec_id()));
  if (r.stdin() && p->io) p->io->close_stdin();
  return kEmpty;
}

Result<std::string> Service::resize_pty(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::ResizePtyRequest>(payload, "ResizePty"));
  BERTH_TRY(Proc * p, find(r.id(), r.exec_id()));
  if (!p->io) return failed_precondition("process is not started");
  BERTH_RETURN_IF_ERROR(p->io->resize(r.width(), r.height()));
  return kEmpty;
}

Result<std::string> Service::update(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::UpdateTaskRequest>(payload, "Update"));
  BERTH_TRY(Container * c, find(r.id()));
  if (!r.has_resources()) return kEmpty;
  // containerd sends specs.LinuxResources as JSON in the Any.
  BERTH_RETURN_IF_ERROR(c->backend->update(r.id(), r.resources().value()));
  return kEmpty;
}

void Service::wait(const std::string& payload, ttrpc::Reply reply) {
  auto r = parse<task::WaitRequest>(payload, "Wait");
  if (!r.ok()) return reply(r.status());
  auto p = find(r->id(), r->exec_id());
  if (!p.ok()) return reply(p.status());
  if ((*p)->state == ProcState::kStopped) {
    task::WaitResponse resp;
    resp.set_exit_status((*p)->exit_status);
    berth::to_proto((*p)->exited_at, resp.mutable_exited_at());
    return reply(reply_of(resp));
  }
  (*p)->waiters.push_back(std::move(reply));
}

Result<std::string> Service::stats(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::StatsRequest>(payload, "Stats"));
  BERTH_TRY(Container * c, find(r.id()));
  if (!c->cgroup) return failed_precondition("container \"{}\" has no cgroup", r.id());
  BERTH_TRY(auto s, c->cgroup->stats());
  task::StatsResponse resp;
  auto* any = resp.mutable_stats();
  if (c->pure_v2) {
    ::io::containerd::cgroups::v2::Metrics m;
    m.mutable_pids()->set_current(s.pids_current);
    m.mutable_pids()->set_limit(s.pids_limit);
    m.mutable_cpu()->set_usage_usec(s.cpu_usage_ns / 1000);
    m.mutable_cpu()->set_user_usec(s.cpu_user_ns / 1000);
    m.mutable_cpu()->set_system_usec(s.cpu_system_ns / 1000);
    m.mutable_cpu()->set_nr_periods(s.cpu_periods);
    m.mutable_cpu()->set_nr_throttled(s.cpu_throttled_periods);
    m.mutable_cpu()->set_throttled_usec(s.cpu_throttled_ns / 1000);
    m.mutable_memory()->set_usage(s.memory_usage);
    m.mutable_memory()->set_usage_limit(s.memory_limit);
    m.mutable_memory()->set_swap_usage(s.memory_swap);
    m.mutable_memory()->set_file(s.memory_cache);
    m.mutable_memory()->set_anon(s.memory_rss);
    m.mutable_memory()->set_inactive_file(s.memory_inactive_file);
    m.mutable_memory()->set_pgfault(s.memory_pgfault);
    m.mutable_memory()->set_pgmajfault(s.memory_pgmajfault);
    m.mutable_memory_events()->set_oom_kill(s.oom_kills);
    any->set_type_url("io.containerd.cgroups.v2.Metrics");
    m.SerializeToString(any->mutable_value());
  } else {
    ::io::containerd::cgroups::v1::Metrics m;
    m.mutable_pids()->set_current(s.pids_current);
    m.mutable_pids()->set_limit(s.pids_limit);
    auto* cpu = m.mutable_cpu();
    cpu->mutable_usage()->set_total(s.cpu_usage_ns);
    cpu->mutable_usage()->set_user(s.cpu_user_ns);
    cpu->mutable_usage()->set_kernel(s.cpu_system_ns);
    cpu->mutable_throttling()->set_periods(s.cpu_periods);
    cpu->mutable_throttling()->set_throttled_periods(s.cpu_throttled_periods);
    cpu->mutable_throttling()->set_throttled_time(s.cpu_throttled_ns);
    auto* mem = m.mutable_memory();
    mem->set_cache(s.memory_cache);
    mem->set_rss(s.memory_rss);
    mem->set_total_inactive_file(s.memory_inactive_file);
    mem->set_total_pg_fault(s.memory_pgfault);
    mem->set_total_pg_maj_fault(s.memory_pgmajfault);
    mem->mutable_usage()->set_usage(s.memory_usage);
    mem->mutable_usage()->set_max(s.memory_max_usage);
    mem->mutable_usage()->set_limit(s.memory_limit);
    mem->mutable_usage()->set_failcnt(s.memory_failcnt);
    mem->mutable_swap()->set_usage(s.memory_swap);
    m.mutable_memory_oom_control()->set_oom_kill(s.oom_kills);
    any->set_type_url("io.containerd.cgroups.v1.Metrics");
    m.SerializeToString(any->mutable_value());
  }
  return reply_of(resp);
}

Result<std::string> Service::connect(const std::string& payload) {
  BERTH_TRY(auto r, parse<task::ConnectRequest>(payload, "Connect"));
  task::ConnectResponse resp;
  resp.set_shim_pid(static_cast<std::uint32_t>(::getpid()));
  if (auto it = containers_.find(r.id()); it != containers_.end())
    resp.set_task_pid(static_cast<std::uint32_t>(it->second->init.pid));
  resp.set_version(std::string("berth-shim ") + BERTH_VERSION);
  return reply_of(resp);
}

void Service::shutdown(const std::string& payload, ttrpc::Reply reply) {
  auto r = parse<task::ShutdownRequest>(payload, "Shutdown");
  if (!r.ok()) return reply(r.status());
  // A shim serving other containers of its group stays.
  if (!r->now() && !containers_.empty()) return reply(kEmpty);
  reply(kEmpty);
  if (shutting_down_) return;
  shutting_down_ = true;
  // Let the reply go out, then flush what is left and stop.
  publisher_.when_flushed_all(kFlushWait, [this] {
    if (on_shutdown) on_shutdown();
  });
}

void Service::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    exited(pid, status);
  }
}

void Service::exited(pid_t pid, int status) {
  for (auto& [id, c] : containers_) {
    Proc* p = nullptr;
    if (c->init.pid == pid) {
      p = &c->init;
    } else {
      for (auto& [eid, e] : c->execs) {
        if (e->pid == pid && e->state == ProcState::kRunning) p = e.get();
      }
    }
    if (!p || p->reaped) continue;
    p->reaped = true;
    p->exit_status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    p->exited_at = std::chrono::system_clock::now();
    // Without a pid namespace of its own, the container's other processes outlive the init.
    if (p == &c->init && !c->own_pid_ns && c->cgroup) c->cgroup->kill_all(SIGKILL).ignore();
    std::string cid = id, eid = p->exec_id;
    // The exit is reported once the output reached the client, or after a grace period.
    auto timer = std::make_shared<asio::steady_timer>(io_, kOutputGrace);
    auto fire = std::make_shared<bool>(false);
    auto report = [this, cid, eid, timer, fire] {
      if (*fire) return;
      *fire = true;
      timer->cancel();
      finish_exit(cid, eid);
    };
    timer->async_wait([report](const boost::system::error_code& ec) {
      if (!ec) report();
    });
    if (p->io) {
      p->io->on_output_done(report);
    } else {
      report();
    }
    return;
  }
  // Not ours to report: a reparented orphan, a log binary, a hook.
}

void Service::finish_exit(const std::string& id, const std::string& exec_id) {
  auto pr = find(id, exec_id);
  if (!pr.ok()) return;
  Proc* p = *pr;
  if (p->state == ProcState::kStopped) return;
  p->state = ProcState::kStopped;
  Container& c = *containers_[id];
  ev::TaskExit e;
  e.set_container_id(id);
  e.set_id(exec_id.empty() ? id : exec_id);
  e.set_pid(static_cast<std::uint32_t>(p->pid));
  e.set_exit_status(p->exit_status);
  berth::to_proto(p->exited_at, e.mutable_exited_at());
  publish(c, "/tasks/exit", e);
  task::WaitResponse resp;
  resp.set_exit_status(p->exit_status);
  berth::to_proto(p->exited_at, resp.mutable_exited_at());
  std::string out = reply_of(resp);
  for (auto& w : p->waiters) w(out);
  p->waiters.clear();
}

}  // namespace berth::shim

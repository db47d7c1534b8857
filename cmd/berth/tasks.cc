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

#include "cmd/berth/attach.h"
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

constexpr const char* kProcessType = "types.containerd.io/opencontainers/runtime-spec/1/Process";

std::unique_ptr<tpb::Tasks::Stub> tasks(Client& c) { return tpb::Tasks::NewStub(c.channel()); }

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
  struct Options {
    CreateOptions create;
    StartOptions start;
  };
  auto o = std::make_shared<Options>();
  CreateOptions& co = o->create;
  StartOptions& so = o->start;
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
  set_action(run, global, [run, o, &co, &so](Client& c) -> Status {
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

namespace {

void add_tasks_ls(CLI::App* cmd, const GlobalOptions& global) {
  auto* ls = cmd->add_subcommand("ls", "list tasks")->alias("list");
  set_action(ls, global, [&global](Client& c) -> Status {
    tpb::ListTasksRequest req;
    tpb::ListTasksResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->List(ctx.get(), req, &resp), "list tasks"));
    auto ips = attachment_ips(c);
    auto ips_of = [&](const std::string& id) {
      auto it = ips.find(id);
      return it == ips.end() ? std::vector<std::string>{} : it->second;
    };
    if (global.format == "json") {
      json out = json::array();
      for (const auto& t : resp.tasks())
        out.push_back({{"id", t.id()},
                       {"pid", t.pid()},
                       {"status", status_name(t.status())},
                       {"exit_status", t.exit_status()},
                       {"ips", ips_of(t.id())}});
      print_json(std::cout, out);
      return Status();
    }
    Table t({"TASK", "PID", "STATUS", "IP"});
    for (const auto& task : resp.tasks()) {
      std::string addrs;
      for (const auto& ip : ips_of(task.id())) addrs += (addrs.empty() ? "" : ",") + ip;
      t.add({task.id(), std::to_string(task.pid()), status_name(task.status()),
             addrs.empty() ? "-" : addrs});
    }
    t.print(std::cout);
    return Status();
  });
}

void add_tasks_start(CLI::App* cmd, const GlobalOptions& global) {
  struct Options {
    std::string id;
    StartOptions start;
  };
  auto o = std::make_shared<Options>();
  auto* start = cmd->add_subcommand("start", "start a container's task: ID");
  start->add_option("id", o->id, "container id")->required();
  start->add_flag("--detach,-d", o->start.detach, "start it and return");
  start->add_option("--log-uri", o->start.log_uri, "detached: where its output goes");
  set_action(start, global, [o](Client& c) -> Status {
    BERTH_TRY(auto ct, get_container(c, o->id));
    json spec = json::parse(ct.spec().value(), nullptr, false);
    o->start.tty = !spec.is_discarded() && spec.contains("process") &&
                   spec["process"].value("terminal", false);
    BERTH_TRY(auto exited, start_task(c, ct, o->start));
    if (!o->start.detach) exit_with(exited.status);
    return Status();
  });
}

void add_tasks_kill(CLI::App* cmd, const GlobalOptions& global) {
  struct Options {
    std::string id, signal = "SIGTERM", exec_id;
    bool all = false;
  };
  auto o = std::make_shared<Options>();
  auto* kill = cmd->add_subcommand("kill", "signal a task: ID");
  kill->add_option("id", o->id, "container id")->required();
  kill->add_option("--signal,-s", o->signal, "signal name or number")->capture_default_str();
  kill->add_flag("--all,-a", o->all, "every process in the container");
  kill->add_option("--exec-id", o->exec_id, "an exec'd process instead of the init");
  set_action(kill, global, [o](Client& c) -> Status {
    BERTH_TRY(int sig, core::parse_signal(o->signal));
    tpb::KillRequest req;
    req.set_container_id(o->id);
    req.set_exec_id(o->exec_id);
    req.set_signal(static_cast<std::uint32_t>(sig));
    req.set_all(o->all);
    google::protobuf::Empty e;
    auto ctx = c.context();
    return c.check(tasks(c)->Kill(ctx.get(), req, &e), "kill " + o->id);
  });
}

void add_tasks_ps(CLI::App* cmd, const GlobalOptions& global) {
  auto id = std::make_shared<std::string>();
  auto* ps = cmd->add_subcommand("ps", "processes of a task: ID");
  ps->add_option("id", *id, "container id")->required();
  set_action(ps, global, [&global, id](Client& c) -> Status {
    tpb::ListPidsRequest req;
    req.set_container_id(*id);
    tpb::ListPidsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(tasks(c)->ListPids(ctx.get(), req, &resp), "list processes of " + *id));
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
}

void add_tasks_pause_resume(CLI::App* cmd, const GlobalOptions& global) {
  for (bool pausing : {true, false}) {
    auto* sub = cmd->add_subcommand(pausing ? "pause" : "resume",
                                    pausing ? "freeze a task: ID" : "thaw a task: ID");
    auto id = std::make_shared<std::string>();
    sub->add_option("id", *id, "container id")->required();
    set_action(sub, global, [pausing, id](Client& c) -> Status {
      google::protobuf::Empty e;
      auto ctx = c.context();
      if (pausing) {
        tpb::PauseTaskRequest req;
        req.set_container_id(*id);
        return c.check(tasks(c)->Pause(ctx.get(), req, &e), "pause " + *id);
      }
      tpb::ResumeTaskRequest req;
      req.set_container_id(*id);
      return c.check(tasks(c)->Resume(ctx.get(), req, &e), "resume " + *id);
    });
  }
}

void add_tasks_rm(CLI::App* cmd, const GlobalOptions& global) {
  struct Options {
    std::vector<std::string> ids;
    bool force = false;
  };
  auto o = std::make_shared<Options>();
  auto* rm = cmd->add_subcommand("rm", "delete stopped tasks: ID...")->alias("delete");
  rm->add_option("ids", o->ids, "container ids")->required();
  rm->add_flag("--force,-f", o->force, "kill a running task first");
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->ids, "tasks", false, [&](const std::string& i) -> Status {
      if (o->force) {
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
}

void add_tasks_metrics(CLI::App* cmd, const GlobalOptions& global) {
  auto id = std::make_shared<std::string>();
  auto* metrics = cmd->add_subcommand("metrics", "cgroup metrics of a task: ID")->alias("metric");
  metrics->add_option("id", *id, "container id")->required();
  set_action(metrics, global, [&global, id](Client& c) -> Status {
    tpb::MetricsRequest req;
    req.add_filters("id==" + *id);
    tpb::MetricsResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Metrics(ctx.get(), req, &resp), "metrics of " + *id));
    if (resp.metrics_size() == 0) return not_found("task \"{}\" does not exist", *id);
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
}

void add_tasks_exec(CLI::App* cmd, const GlobalOptions& global) {
  struct Options {
    std::string id, exec_id, cwd;
    bool tty = false, detach = false;
    std::vector<std::string> env;
  };
  auto o = std::make_shared<Options>();
  auto* ex = cmd->add_subcommand("exec", "run a process in a task: ID CMD [ARGS...]");
  ex->add_option("--exec-id", o->exec_id, "the process's id (default: a random one)");
  ex->add_flag("--tty,-t", o->tty, "allocate a terminal");
  ex->add_flag("--detach,-d", o->detach, "start it and return");
  ex->add_option("--cwd", o->cwd, "working directory");
  ex->add_option("--env,-e", o->env, "NAME=VALUE")->allow_extra_args(false);
  ex->add_option("id", o->id, "container id")->required();
  ex->prefix_command();
  ex->allow_extras();
  ex->fallthrough(false);
  set_action(ex, global, [ex, o](Client& c) -> Status {
    // The FIFOs go before the exit status becomes ours (exit runs no destructors).
    auto exited = [&]() -> Result<Exited> {
      auto args = ex->remaining();
      if (args.empty()) return invalid_argument("exec: ID CMD [ARGS...] (the command is missing)");
      if (o->exec_id.empty()) o->exec_id = "exec-" + random_hex(6);
      BERTH_TRY(auto ct, get_container(c, o->id));
      json spec = json::parse(ct.spec().value(), nullptr, false);
      if (spec.is_discarded() || !spec.contains("process"))
        return failed_precondition("container \"{}\" has no process spec", o->id);
      json process = spec["process"];
      process["args"] = args;
      process["terminal"] = o->tty;
      if (!o->cwd.empty()) process["cwd"] = o->cwd;
      for (const auto& e : o->env) process["env"].push_back(e);
      tpb::ExecProcessRequest req;
      req.set_container_id(o->id);
      req.set_exec_id(o->exec_id);
      req.set_terminal(o->tty);
      req.mutable_spec()->set_type_url(kProcessType);
      req.mutable_spec()->set_value(process.dump());
      Attachment io;
      std::unique_ptr<Fifos> fifos;
      if (!o->detach) {
        BERTH_TRY(fifos, Fifos::attach(o->exec_id, o->tty, io));
        req.set_stdin(fifos->in);
        req.set_stdout(fifos->out);
        req.set_stderr(fifos->err);
      }
      google::protobuf::Empty e;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Exec(ctx.get(), req, &e), "exec in " + o->id));
      auto start = [&]() -> Result<std::uint32_t> {
        tpb::StartRequest sr;
        sr.set_container_id(o->id);
        sr.set_exec_id(o->exec_id);
        tpb::StartResponse resp;
        auto sctx = c.context();
        BERTH_RETURN_IF_ERROR(
            c.check(tasks(c)->Start(sctx.get(), sr, &resp), "start " + o->exec_id));
        return resp.pid();
      };
      if (o->detach) {
        BERTH_RETURN_IF_ERROR(start().status());
        return Exited{};
      }
      auto exited = foreground(c, o->id, o->exec_id, o->tty, io, start);
      tpb::DeleteProcessRequest dr;
      dr.set_container_id(o->id);
      dr.set_exec_id(o->exec_id);
      tpb::DeleteResponse dresp;
      auto dctx = c.context();
      tasks(c)->DeleteProcess(dctx.get(), dr, &dresp);
      return exited;
    }();
    if (!exited.ok()) return exited.status();
    if (!o->detach) exit_with(exited->status);
    return Status();
  });
}

void add_tasks_attach(CLI::App* cmd, const GlobalOptions& global) {
  auto id = std::make_shared<std::string>();
  auto* attach = cmd->add_subcommand(
      "attach", "attach to a task's stdio (when it was started with FIFOs): ID");
  attach->add_option("id", *id, "container id")->required();
  set_action(attach, global, [id](Client& c) -> Status {
    tpb::GetRequest req;
    req.set_container_id(*id);
    tpb::GetResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(tasks(c)->Get(ctx.get(), req, &resp), "get task " + *id));
    const auto& p = resp.process();
    if (p.stdout().empty() && p.stdin().empty())
      return failed_precondition("task \"{}\" has no stdio to attach to (started detached)", *id);
    for (const auto& path : {p.stdin(), p.stdout(), p.stderr()}) {
      if (!path.empty() && path.find("://") == std::string::npos && !fs::exists(path))
        return failed_precondition("task \"{}\": its FIFO {} is gone", *id, path);
    }
    Attachment io;
    BERTH_RETURN_IF_ERROR(io.open(p.stdin(), p.stdout(), p.stderr()));
    BERTH_TRY(auto exited, foreground(c, *id, "", p.terminal(), io,
                                      [&]() -> Result<std::uint32_t> { return p.pid(); }));
    exit_with(exited.status);
  });
}

}  // namespace

void add_tasks_command(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("tasks", "manage tasks (running containers)");
  cmd->alias("task")->alias("t");
  cmd->require_subcommand(1);
  for (auto* add :
       {add_tasks_ls, add_tasks_start, add_tasks_kill, add_tasks_ps, add_tasks_pause_resume,
        add_tasks_rm, add_tasks_metrics, add_tasks_exec, add_tasks_attach})
    add(cmd, global);
}

void add_events_command(CLI::App& app, const GlobalOptions& global) {
  auto filters = std::make_shared<std::vector<std::string>>();
  auto* events =
      app.add_subcommand("events", "print events as they happen [FILTER...] (topic==/tasks/exit)");
  events->add_option("filters", *filters, "filters (containerd's syntax)");
  set_action(events, global, [&global, filters](Client& c) -> Status {
    epb::SubscribeRequest req;
    for (const auto& f : *filters) req.add_filters(f);
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

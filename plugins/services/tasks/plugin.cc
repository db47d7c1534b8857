// io.containerd.grpc.v1.tasks: containerd.services.tasks.v1.Tasks over the runtime. Create takes
// the spec and runtime from the container record and the rootfs mounts from the client; every
// other call goes to the task's shim. Events come from the shims (forwarded through the daemon's
// ttrpc socket), not from here. Checkpoint is Unimplemented.
#include <berth/convert/any.h>
#include <berth/convert/mount.h>
#include <berth/grpc.h>
#include <berth/metadata.h>
#include <berth/runtime.h>

#include "core/filters.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::tasks::v1;
namespace types = ::containerd::v1::types;
using runtime::Any;

void to_proto(const std::string& container_id, const runtime::ProcessState& s,
              types::Process* out) {
  out->set_container_id(container_id);
  out->set_id(s.id);
  out->set_pid(s.pid);
  out->set_status(static_cast<types::Status>(s.status));
  out->set_stdin(s.io.stdin);
  out->set_stdout(s.io.stdout);
  out->set_stderr(s.io.stderr);
  out->set_terminal(s.io.terminal);
  out->set_exit_status(s.exit_status);
  if (s.status == runtime::TaskStatus::kStopped)
    berth::to_proto(s.exited_at, out->mutable_exited_at());
}

class TasksService final : public Plugin, public GrpcService, public pb::Tasks::Service {
 public:
  TasksService(std::shared_ptr<metadata::MetadataStore> store,
               std::shared_ptr<runtime::TaskManager> tasks)
      : store_(std::move(store)), tasks_(std::move(tasks)) {}
  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status Create(grpc::ServerContext* ctx, const pb::CreateTaskRequest* req,
                      pb::CreateTaskResponse* resp) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      if (req->has_checkpoint() && !req->checkpoint().digest().empty())
        return Status(Code::kUnimplemented, "restoring a task from a checkpoint is not implemented");
      auto c = store_->containers().get(rc, req->container_id());
      if (!c.ok()) return c.status();
      if (!c->spec) return failed_precondition("container \"{}\" has no spec", c->id);
      runtime::CreateRequest r;
      r.ns = rc.ns;
      r.id = c->id;
      r.runtime = c->runtime_name;
      r.runtime_options = c->runtime_options;
      if (req->has_options()) r.task_options = convert::from_proto(req->options());
      r.runtime_path = req->runtime_path();
      r.spec = c->spec->value;
      r.rootfs = convert::mounts_from_proto(req->rootfs());
      r.io = runtime::IO{req->stdin(), req->stdout(), req->stderr(), req->terminal()};
      auto t = tasks_->create(r);
      if (!t.ok()) return t.status();
      resp->set_container_id(c->id);
      resp->set_pid((*t)->pid());
      return Status();
    });
  }

  grpc::Status Start(grpc::ServerContext* ctx, const pb::StartRequest* req,
                     pb::StartResponse* resp) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) -> Status {
      BERTH_TRY(auto pid, t.start(req->exec_id()));
      resp->set_pid(pid);
      return Status();
    });
  }

  grpc::Status Delete(grpc::ServerContext* ctx, const pb::DeleteTaskRequest* req,
                      pb::DeleteResponse* resp) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto exit, tasks_->remove(rc.ns, req->container_id()));
      resp->set_id(req->container_id());
      resp->set_pid(exit.pid);
      resp->set_exit_status(exit.status);
      berth::to_proto(exit.at, resp->mutable_exited_at());
      return Status();
    });
  }

  grpc::Status DeleteProcess(grpc::ServerContext* ctx, const pb::DeleteProcessRequest* req,
                             pb::DeleteResponse* resp) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) -> Status {
      if (req->exec_id().empty())
        return invalid_argument("exec_id is required (Delete removes the task itself)");
      BERTH_TRY(auto exit, t.delete_process(req->exec_id()));
      resp->set_id(req->exec_id());
      resp->set_pid(exit.pid);
      resp->set_exit_status(exit.status);
      berth::to_proto(exit.at, resp->mutable_exited_at());
      return Status();
    });
  }

  grpc::Status Get(grpc::ServerContext* ctx, const pb::GetRequest* req,
                   pb::GetResponse* resp) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) -> Status {
      BERTH_TRY(auto s, t.state(req->exec_id()));
      to_proto(req->container_id(), s, resp->mutable_process());
      return Status();
    });
  }

  grpc::Status List(grpc::ServerContext* ctx, const pb::ListTasksRequest* req,
                    pb::ListTasksResponse* resp) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      for (const auto& t : tasks_->list(rc.ns)) {
        auto s = t->state("");
        if (!s.ok()) {
          // A shim that stopped answering: listed, with what is known.
          runtime::ProcessState unknown;
          unknown.id = t->id();
          unknown.pid = t->pid();
          to_proto(t->id(), unknown, resp->add_tasks());
          continue;
        }
        to_proto(t->id(), *s, resp->add_tasks());
      }
      return Status();
    });
  }

  grpc::Status Kill(grpc::ServerContext* ctx, const pb::KillRequest* req,
                    google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) {
      return t.kill(req->exec_id(), req->signal(), req->all());
    });
  }

  grpc::Status Exec(grpc::ServerContext* ctx, const pb::ExecProcessRequest* req,
                    google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) {
      if (req->exec_id().empty()) return invalid_argument("exec_id is required");
      if (!req->has_spec()) return invalid_argument("exec process spec is required");
      return t.exec(req->exec_id(),
                    runtime::IO{req->stdin(), req->stdout(), req->stderr(), req->terminal()},
                    convert::from_proto(req->spec()));
    });
  }

  grpc::Status ResizePty(grpc::ServerContext* ctx, const pb::ResizePtyRequest* req,
                         google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) {
      return t.resize_pty(req->exec_id(), req->width(), req->height());
    });
  }

  grpc::Status CloseIO(grpc::ServerContext* ctx, const pb::CloseIORequest* req,
                       google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(),
                     [&](runtime::Task& t) { return t.close_io(req->exec_id(), req->stdin()); });
  }

  grpc::Status Pause(grpc::ServerContext* ctx, const pb::PauseTaskRequest* req,
                     google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) { return t.pause(); });
  }

  grpc::Status Resume(grpc::ServerContext* ctx, const pb::ResumeTaskRequest* req,
                      google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) { return t.resume(); });
  }

  grpc::Status ListPids(grpc::ServerContext* ctx, const pb::ListPidsRequest* req,
                        pb::ListPidsResponse* resp) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) -> Status {
      BERTH_TRY(auto pids, t.pids());
      for (const auto& p : pids) {
        auto* out = resp->add_processes();
        out->set_pid(p.pid);
        if (p.info) convert::to_proto(*p.info, out->mutable_info());
      }
      return Status();
    });
  }

  grpc::Status Checkpoint(grpc::ServerContext* ctx, const pb::CheckpointTaskRequest*,
                          pb::CheckpointTaskResponse*) override {
    return serve_unscoped(ctx, [] {
      return Status(Code::kUnimplemented, "checkpointing a task is not implemented");
    });
  }

  grpc::Status Update(grpc::ServerContext* ctx, const pb::UpdateTaskRequest* req,
                      google::protobuf::Empty*) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) {
      std::optional<Any> res;
      if (req->has_resources()) res = convert::from_proto(req->resources());
      return t.update(res, {req->annotations().begin(), req->annotations().end()});
    });
  }

  grpc::Status Metrics(grpc::ServerContext* ctx, const pb::MetricsRequest* req,
                       pb::MetricsResponse* resp) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto filter, core::Filter::parse(std::vector<std::string>(req->filters().begin(),
                                                                           req->filters().end())));
      for (const auto& t : tasks_->list(rc.ns)) {
        bool match =
            filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
              if (path.size() == 1 && path[0] == "id") return t->id();
              if (path.size() == 1 && path[0] == "runtime") return t->runtime();
              return std::nullopt;
            });
        if (!match) continue;
        auto stats = t->stats();
        if (!stats.ok()) continue;  // a task that stopped meanwhile
        auto* m = resp->add_metrics();
        berth::to_proto(
            std::chrono::time_point_cast<Timestamp::duration>(std::chrono::system_clock::now()),
            m->mutable_timestamp());
        m->set_id(t->id());
        convert::to_proto(*stats, m->mutable_data());
      }
      return Status();
    });
  }

  grpc::Status Wait(grpc::ServerContext* ctx, const pb::WaitRequest* req,
                    pb::WaitResponse* resp) override {
    return with_task(ctx, req->container_id(), [&](runtime::Task& t) -> Status {
      BERTH_TRY(auto exit, t.wait(req->exec_id(), [ctx] { return ctx->IsCancelled(); }));
      resp->set_exit_status(exit.status);
      berth::to_proto(exit.at, resp->mutable_exited_at());
      return Status();
    });
  }

 private:
  // serve() for a call about one task: NotFound when the namespace has no task `id`.
  template <typename Fn>
  grpc::Status with_task(grpc::ServerContext* ctx, const std::string& id, Fn fn) {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto t, tasks_->get(rc.ns, id));
      return fn(*t);
    });
  }

  std::shared_ptr<metadata::MetadataStore> store_;
  std::shared_ptr<runtime::TaskManager> tasks_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "tasks";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kRuntimeV2)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    BERTH_TRY(auto store, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    BERTH_TRY(auto tasks, ic.get_as<runtime::TaskManager>(plugin_type::kRuntimeV2));
    return std::shared_ptr<Plugin>(
        std::make_shared<TasksService>(std::move(store), std::move(tasks)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

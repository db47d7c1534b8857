// berth containers create|ls|info|rm|label: container records (metadata only; tasks run them).
// create generates the OCI spec from the image config and options (cmd/berth/oci_spec.cc),
// unpacks the image if needed, and prepares the container's read-write snapshot (key = id), all
// under one lease until the record exists, as containerd's client does.
#include <berth/grpc.h>
#include <berth/identifiers.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "cmd/berth/commands.h"
#include "cmd/berth/container_client.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "core/fs.h"
#include "core/ocispec/generate.h"
#include "core/size.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"
#include "github.com/containerd/containerd/runtime/v2/runc/options/oci.pb.h"

namespace berth::cli {
namespace pb = ::containerd::services::containers::v1;
namespace spb = ::containerd::services::snapshots::v1;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSpecType = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

json container_json(const pb::Container& c) {
  json j = {{"id", c.id()},
            {"image", c.image()},
            {"runtime", {{"name", c.runtime().name()}}},
            {"snapshotter", c.snapshotter()},
            {"snapshot_key", c.snapshot_key()},
            {"labels", std::map<std::string, std::string>(c.labels().begin(), c.labels().end())},
            {"created_at", core::format_rfc3339(from_proto(c.created_at()))},
            {"updated_at", core::format_rfc3339(from_proto(c.updated_at()))}};
  if (c.runtime().has_options()) j["runtime"]["options_type"] = c.runtime().options().type_url();
  if (c.has_spec()) {
    json spec = json::parse(c.spec().value(), nullptr, false);
    j["spec"] = spec.is_discarded() ? json(c.spec().type_url()) : spec;
  }
  json ext = json::object();
  for (const auto& [k, v] : c.extensions()) ext[k] = v.type_url();
  j["extensions"] = ext;
  return j;
}

}  // namespace

Result<pb::Container> create_container(Client& c, CreateOptions o) {
  BERTH_RETURN_IF_ERROR(validate_identifier(o.id).with_context("container id"));
  std::optional<CommandLease> lease;
  std::string chain, config_raw;
  std::string rootfs;
  if (o.rootfs_dir) {
    std::error_code ec;
    rootfs = fs::absolute(o.image, ec).string();
    if (!fs::is_directory(rootfs))
      return invalid_argument("--rootfs: {} is not a directory", o.image);
    o.image.clear();
  } else {
    BERTH_TRY(auto platform, platform_option(o.platform));
    BERTH_TRY(auto target, image_target(c, o.image));
    BERTH_TRY(auto image, resolve_image(c, target, platform));
    BERTH_TRY(auto l, CommandLease::create(c, "container-create"));
    lease.emplace(std::move(l));
    BERTH_TRY(chain, unpack(c, image, o.snapshotter, lease->id()));
    config_raw = image.config.raw;
  }
  std::string lease_id = lease ? lease->id() : "";

  std::string spec_text;
  if (!o.spec_file.empty()) {
    BERTH_RETURN_IF_ERROR(check_network_options(o.net, false).status());
    auto text = core::read_file(o.spec_file);
    if (!text.ok()) return text.status();
    spec_text = *text;
  } else {
    o.spec.ns = c.options().ns;
    o.spec.id = o.id;
    if (!o.memory.empty()) {
      BERTH_TRY(o.spec.memory_limit, core::parse_size(o.memory));
    }
    if (!o.cpus.empty()) {
      try {
        o.spec.cpus = std::stod(o.cpus);
      } catch (...) {
        return invalid_argument("--cpus \"{}\" is not a number", o.cpus);
      }
    }
    BERTH_TRY(bool host, check_network_options(o.net, o.spec.net_host));
    o.spec.net_host = host;
    o.spec.hostname = o.net.hostname;
    BERTH_TRY(auto spec, ocispec::generate(config_raw, o.spec));
    if (!rootfs.empty()) spec["root"]["path"] = rootfs;
    spec_text = spec.dump();
  }

  if (rootfs.empty()) {
    auto snaps = spb::Snapshots::NewStub(c.channel());
    spb::PrepareSnapshotRequest prep;
    prep.set_snapshotter(o.snapshotter);
    prep.set_key(o.id);
    prep.set_parent(chain);
    spb::PrepareSnapshotResponse prepared;
    auto pctx = c.context(lease_id);
    BERTH_RETURN_IF_ERROR(
        c.check(snaps->Prepare(pctx.get(), prep, &prepared), "prepare snapshot " + o.id));
  }

  pb::CreateContainerRequest req;
  auto* ct = req.mutable_container();
  ct->set_id(o.id);
  ct->set_image(o.image);
  ct->mutable_runtime()->set_name(o.runtime);
  if (!o.runtime_binary.empty()) {
    ::containerd::runc::v1::Options opts;
    opts.set_binary_name(o.runtime_binary);
    ct->mutable_runtime()->mutable_options()->set_type_url("containerd.runc.v1.Options");
    opts.SerializeToString(ct->mutable_runtime()->mutable_options()->mutable_value());
  }
  if (rootfs.empty()) {
    ct->set_snapshotter(o.snapshotter);
    ct->set_snapshot_key(o.id);
  }
  ct->mutable_spec()->set_type_url(kSpecType);
  ct->mutable_spec()->set_value(spec_text);
  json config = json::parse(config_raw, nullptr, false);
  std::string stop = "SIGTERM";
  if (!config.is_discarded() && config.contains("config") && config["config"].is_object())
    stop = config["config"].value("StopSignal", stop);
  (*ct->mutable_labels())["io.containerd.image.config.stop-signal"] = stop;
  for (const auto& [k, v] : parse_labels(o.labels)) (*ct->mutable_labels())[k] = v;
  pb::CreateContainerResponse resp;
  auto ctx = c.context(lease_id);
  Status st = c.check(pb::Containers::NewStub(c.channel())->Create(ctx.get(), req, &resp),
                      "create container");
  if (!st.ok()) {
    if (rootfs.empty()) remove_snapshot(c, o.snapshotter, o.id).ignore();
    return st;
  }
  if (!o.net.cni()) return resp.container();
  // The record exists, so the attachment has an owner: if this client dies now, deleting the
  // container (or the daemon's collection at start) tears the network down.
  auto joined = join_networks(c, resp.container(), o.net);
  if (!joined.ok()) {
    remove_container(c, o.id, false).ignore();
    return joined.status();
  }
  return *joined;
}

Result<pb::Container> join_networks(Client& c, const pb::Container& ct, const NetOptions& n) {
  BERTH_TRY(auto a, attach_networks(c, ct.id(), n));
  json spec = json::parse(ct.spec().value(), nullptr, false);
  if (spec.is_discarded()) return invalid_argument("container {}: its spec is not JSON", ct.id());
  BERTH_RETURN_IF_ERROR(ocispec::join_network(
      spec, {a.netns_path(), a.hosts_path(), a.resolv_conf_path(), a.hostname_path(), a.hostname()}));
  pb::UpdateContainerRequest req;
  *req.mutable_container() = ct;
  req.mutable_container()->mutable_spec()->set_value(spec.dump());
  req.mutable_update_mask()->add_paths("spec");
  pb::UpdateContainerResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(c.check(pb::Containers::NewStub(c.channel())->Update(ctx.get(), req, &resp),
                                "update the spec of " + ct.id()));
  return resp.container();
}

Result<pb::Container> get_container(Client& c, const std::string& id) {
  pb::GetContainerRequest req;
  req.set_id(id);
  pb::GetContainerResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(
      c.check(pb::Containers::NewStub(c.channel())->Get(ctx.get(), req, &resp), "get container"));
  return resp.container();
}

Status remove_container(Client& c, const std::string& id, bool keep_snapshot) {
  BERTH_TRY(auto ct, get_container(c, id));
  {
    // As containerd's client: a container with a task keeps its record (the task needs it).
    ::containerd::services::tasks::v1::GetRequest req;
    req.set_container_id(id);
    ::containerd::services::tasks::v1::GetResponse resp;
    auto ctx = c.context();
    if (::containerd::services::tasks::v1::Tasks::NewStub(c.channel())
            ->Get(ctx.get(), req, &resp)
            .ok())
      return failed_precondition(
          "container \"{}\" has a task ({}); delete it first: berth tasks rm -f {}", id,
          resp.process().status() == ::containerd::v1::types::STOPPED ? "stopped" : "running", id);
  }
  // Networks first, while the record still says whose they are; should that fail, the daemon
  // tears them down when the record goes (and retries at its next start).
  // Only a container whose spec joins a namespace by path can have the daemon's networks (no
  // extra call on the run --rm path of the others).
  json spec = json::parse(ct.spec().value(), nullptr, false);
  bool joins_netns = false;
  if (spec.is_object() && spec.contains("linux") && spec["linux"].contains("namespaces") &&
      spec["linux"]["namespaces"].is_array())
    for (const auto& n : spec["linux"]["namespaces"])
      joins_netns = joins_netns || (n.is_object() && n.value("type", "") == "network" &&
                                    !n.value("path", std::string()).empty());
  if (Status st = joins_netns ? detach_networks(c, id) : Status(); !st.ok())
    std::cerr << "berth: " << st.message() << " (the daemon retries when the container goes)\n";
  pb::DeleteContainerRequest req;
  req.set_id(id);
  google::protobuf::Empty e;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(c.check(pb::Containers::NewStub(c.channel())->Delete(ctx.get(), req, &e),
                                "delete container " + id));
  if (!keep_snapshot && !ct.snapshot_key().empty()) {
    BERTH_RETURN_IF_ERROR(remove_snapshot(c, ct.snapshotter(), ct.snapshot_key()));
  }
  return Status();
}

void add_create_options(CLI::App* cmd, CreateOptions& co) {
  cmd->add_option("--snapshotter", co.snapshotter, "snapshotter")->capture_default_str();
  cmd->add_option("--runtime", co.runtime,
                  "runtime name (io.containerd.runc.v2: containerd's runc shim)")
      ->capture_default_str();
  cmd->add_option(
      "--runc-binary", co.runtime_binary,
      "a runc-compatible runtime binary for the shim to run (runc, crun, berth-runtime)");
  cmd->add_option("--platform", co.platform, "image platform (default: this host's)");
  cmd->add_option("--label", co.labels, "KEY=VALUE labels")->allow_extra_args(false);
  cmd->add_option("--config", co.spec_file, "use this OCI spec file instead of generating one");
  cmd->add_flag("--rootfs", co.rootfs_dir, "IMAGE is a root filesystem directory, not an image");
  cmd->add_option("--env,-e", co.spec.env, "NAME=VALUE")->allow_extra_args(false);
  cmd->add_option("--cwd", co.spec.cwd, "working directory");
  cmd->add_option("--user,-u", co.spec.user, "UID[:GID]");
  cmd->add_flag("--tty,-t", co.spec.tty, "allocate a terminal");
  cmd->add_flag("--net-host", co.spec.net_host, "share the host's network namespace");
  cmd->add_flag("--privileged", co.spec.privileged, "all capabilities and devices");
  cmd->add_flag("--read-only", co.spec.read_only, "read-only root filesystem");
  cmd->add_option("--cap-add", co.spec.cap_add, "add a capability (or ALL)")
      ->allow_extra_args(false);
  cmd->add_option("--cap-drop", co.spec.cap_drop, "drop a capability (or ALL)")
      ->allow_extra_args(false);
  cmd->add_option("--mount", co.spec.mounts, "type=bind,src=/a,dst=/b,options=rbind:ro")
      ->allow_extra_args(false);
  cmd->add_option("--annotation", co.spec.annotations,
                  "KEY=VALUE in the spec (io.containerd.runc.v2.group=G: containers of a group "
                  "share a shim)")
      ->allow_extra_args(false);
  cmd->add_option("--memory-limit", co.memory, "memory limit, e.g. 256m");
  cmd->add_option("--cpus", co.cpus, "CPU limit, e.g. 0.5");
  add_network_options(cmd, co.net);
}

void add_containers_command(CLI::App& app, const GlobalOptions& global) {
  struct Options {
    CreateOptions co;
    std::vector<std::string> filters;
    bool quiet = false;
    std::string id;
    std::vector<std::string> ids;
    bool keep_snapshot = false;
    std::vector<std::string> kv;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("containers", "manage containers (records; tasks run them)");
  cmd->alias("container")->alias("c");
  cmd->require_subcommand(1);

  auto* create =
      cmd->add_subcommand("create", "create a container from an image: IMAGE ID [CMD ARGS...]");
  create->add_option("image", o->co.image, "image name")->required();
  // After IMAGE: ID, then the command with its own options (`ID sh -c "..."`), taken verbatim.
  create->prefix_command();
  create->allow_extras();
  create->fallthrough(false);  // the command line belongs to the container, not to berth
  add_create_options(create, o->co);
  set_action(create, global, [&global, create, o](Client& c) -> Status {
    auto rest = create->remaining();
    if (rest.empty())
      return invalid_argument("containers create: IMAGE ID [CMD ARGS...] (the id is missing)");
    o->co.id = rest[0];
    o->co.spec.args.assign(rest.begin() + 1, rest.end());
    BERTH_TRY(auto ct, create_container(c, o->co));
    if (global.format == "json")
      print_json(std::cout, container_json(ct));
    else
      std::cout << o->co.id << "\n";
    return Status();
  });

  auto* ls = cmd->add_subcommand("ls", "list containers [FILTER...]")->alias("list");
  ls->add_option("filters", o->filters, "filters (containerd's syntax)");
  ls->add_flag("--quiet,-q", o->quiet, "ids only");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::ListContainersRequest req;
    for (const auto& f : o->filters) req.add_filters(f);
    auto ctx = c.context();
    auto reader = pb::Containers::NewStub(c.channel())->ListStream(ctx.get(), req);
    std::vector<pb::Container> all;
    pb::ListContainerMessage m;
    while (reader->Read(&m)) all.push_back(m.container());
    BERTH_RETURN_IF_ERROR(c.check(reader->Finish(), "list containers"));
    if (global.format == "json") {
      json out = json::array();
      for (const auto& ct : all) out.push_back(container_json(ct));
      print_json(std::cout, out);
    } else if (o->quiet) {
      for (const auto& ct : all) std::cout << ct.id() << "\n";
    } else {
      Table t({"CONTAINER", "IMAGE", "RUNTIME", "AGE", "LABELS"});
      for (const auto& ct : all)
        t.add({ct.id(), ct.image().empty() ? "-" : ct.image(), ct.runtime().name(),
               human_age(from_proto(ct.created_at())),
               join_labels({ct.labels().begin(), ct.labels().end()})});
      t.print(std::cout);
    }
    return Status();
  });

  auto* info = cmd->add_subcommand("info", "show a container as JSON (spec decoded): ID");
  info->add_option("id", o->id, "container id")->required();
  set_action(info, global, [o](Client& c) -> Status {
    BERTH_TRY(auto ct, get_container(c, o->id));
    json j = container_json(ct);
    auto ips = attachment_ips(c);
    if (auto it = ips.find(ct.id()); it != ips.end()) j["ips"] = it->second;
    print_json(std::cout, j);
    return Status();
  });

  auto* rm =
      cmd->add_subcommand("rm", "delete containers and their snapshots: ID...")->alias("delete");
  rm->add_option("ids", o->ids, "container ids")->required();
  rm->add_flag("--keep-snapshot", o->keep_snapshot, "leave the container's snapshot");
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->ids, "containers", false, [&](const std::string& i) {
      return remove_container(c, i, o->keep_snapshot);
    });
  });

  auto* label = cmd->add_subcommand("label", "set or clear labels: ID KEY=VALUE... (KEY= clears)");
  label->add_option("id", o->id, "container id")->required();
  label->add_option("labels", o->kv, "KEY=VALUE")->required();
  set_action(label, global, [o](Client& c) -> Status {
    pb::UpdateContainerRequest req;
    req.mutable_container()->set_id(o->id);
    for (const auto& [k, v] : parse_labels(o->kv)) {
      if (!v.empty()) (*req.mutable_container()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    pb::UpdateContainerResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(
        pb::Containers::NewStub(c.channel())->Update(ctx.get(), req, &resp), "label container"));
    std::cout << join_labels({resp.container().labels().begin(), resp.container().labels().end()})
              << "\n";
    return Status();
  });
}

}  // namespace berth::cli

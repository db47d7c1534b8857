// berth snapshots ls|prepare|view|commit|mounts|mount|rm|info|usage|tree|label
#include <berth/convert/snapshots.h>

#include <iostream>
#include <map>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "core/mount.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::snapshots::v1;

std::string snapshotter_name = "overlayfs";

const char* kind_name(pb::Kind k) { return snapshots::kind_name(static_cast<snapshots::Kind>(k)); }

std::string mount_command(const Mount& m, const std::string& target) {
  std::string cmd = "mount -t " + m.type + " " + m.source + " " + target;
  if (!m.options.empty()) {
    cmd += " -o ";
    for (std::size_t i = 0; i < m.options.size(); ++i) cmd += (i ? "," : "") + m.options[i];
  }
  return cmd;
}

Result<std::vector<pb::Info>> list_all(Client& c, const std::vector<std::string>& filters) {
  pb::ListSnapshotsRequest req;
  req.set_snapshotter(snapshotter_name);
  for (const auto& f : filters) req.add_filters(f);
  auto ctx = c.context();
  auto reader = pb::Snapshots::NewStub(c.channel())->List(ctx.get(), req);
  pb::ListSnapshotsResponse resp;
  std::vector<pb::Info> out;
  while (reader->Read(&resp)) {
    for (const auto& i : resp.info()) out.push_back(i);
  }
  BERTH_RETURN_IF_ERROR(c.check(reader->Finish(), "list snapshots"));
  return out;
}

void print_mounts(const std::vector<Mount>& mounts, const std::string& target,
                  const GlobalOptions& g) {
  if (g.format == "json") {
    auto arr = nlohmann::json::array();
    for (const auto& m : mounts) {
      arr.push_back({{"type", m.type}, {"source", m.source}, {"options", m.options}});
    }
    print_json(std::cout, arr);
    return;
  }
  for (const auto& m : mounts) std::cout << mount_command(m, target) << "\n";
}

// The mounts of an active or view snapshot.
Result<std::vector<Mount>> fetch_mounts(Client& c, const std::string& key) {
  pb::MountsRequest req;
  req.set_snapshotter(snapshotter_name);
  req.set_key(key);
  pb::MountsResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(c.check(pb::Snapshots::NewStub(c.channel())->Mounts(ctx.get(), req, &resp),
                                "snapshot mounts"));
  return convert::mounts_from_proto(resp.mounts());
}

}  // namespace

void add_snapshots_command(CLI::App& app, const GlobalOptions& global) {
  auto* snap = app.add_subcommand("snapshots", "manage snapshots");
  snap->alias("snapshot");
  snap->require_subcommand(1);
  if (const char* env = std::getenv("BERTH_SNAPSHOTTER"); env && *env) snapshotter_name = env;
  snap->add_option("--snapshotter", snapshotter_name, "snapshotter ($BERTH_SNAPSHOTTER)")
      ->capture_default_str();

  static std::vector<std::string> filters;
  auto* ls = snap->add_subcommand("ls", "list snapshots [FILTER...]")->alias("list");
  ls->add_option("filters", filters, "filters, e.g. kind==Committed");
  set_action(ls, global, [&global](Client& c) -> Status {
    BERTH_TRY(auto all, list_all(c, filters));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& i : all) {
        arr.push_back(
            {{"key", i.name()},
             {"parent", i.parent()},
             {"kind", kind_name(i.kind())},
             {"labels", std::map<std::string, std::string>(i.labels().begin(), i.labels().end())}});
      }
      print_json(std::cout, arr);
      return Status();
    }
    Table t({"KEY", "PARENT", "KIND"});
    for (const auto& i : all)
      t.add({i.name(), i.parent().empty() ? "-" : i.parent(), kind_name(i.kind())});
    t.print(std::cout);
    return Status();
  });

  static std::string key, parent, target;
  static bool show_mounts = false;
  static std::vector<std::string> labels;
  for (const char* verb : {"prepare", "view"}) {
    bool is_view = std::string(verb) == "view";
    auto* cmd = snap->add_subcommand(verb, is_view ? "create a read-only view: KEY [PARENT]"
                                                   : "create an active snapshot: KEY [PARENT]");
    cmd->add_option("key", key, "key")->required();
    cmd->add_option("parent", parent, "committed parent");
    cmd->add_option("--target,-t", target, "mount target to print mount commands for");
    cmd->add_flag("--mounts", show_mounts, "print the mounts");
    cmd->add_option("--label", labels, "labels KEY=VALUE");
    set_action(cmd, global, [is_view, &global](Client& c) -> Status {
      auto lbl = parse_labels(labels);
      // Like ctr: a snapshot prepared by hand is a GC root until removed (views are not).
      if (!is_view && !lbl.count("containerd.io/gc.root")) {
        lbl["containerd.io/gc.root"] = core::format_rfc3339(std::chrono::system_clock::now());
      }
      // View and Prepare take the same request fields.
      auto fill = [&](auto& req) {
        req.set_snapshotter(snapshotter_name);
        req.set_key(key);
        req.set_parent(parent);
        for (const auto& [k, v] : lbl) (*req.mutable_labels())[k] = v;
      };
      auto stub = pb::Snapshots::NewStub(c.channel());
      auto ctx = c.context();
      ::google::protobuf::RepeatedPtrField<::containerd::types::Mount> mounts;
      if (is_view) {
        pb::ViewSnapshotRequest req;
        fill(req);
        pb::ViewSnapshotResponse resp;
        BERTH_RETURN_IF_ERROR(c.check(stub->View(ctx.get(), req, &resp), "view snapshot"));
        mounts = resp.mounts();
      } else {
        pb::PrepareSnapshotRequest req;
        fill(req);
        pb::PrepareSnapshotResponse resp;
        BERTH_RETURN_IF_ERROR(c.check(stub->Prepare(ctx.get(), req, &resp), "prepare snapshot"));
        mounts = resp.mounts();
      }
      if (show_mounts || global.format == "json") {
        print_mounts(convert::mounts_from_proto(mounts), target.empty() ? "TARGET" : target,
                     global);
      }
      return Status();
    });
  }

  static std::string commit_name, commit_key;
  auto* commit = snap->add_subcommand("commit", "commit an active snapshot: NAME KEY");
  commit->add_option("name", commit_name, "name of the committed snapshot")->required();
  commit->add_option("key", commit_key, "active snapshot key")->required();
  set_action(commit, global, [](Client& c) -> Status {
    pb::CommitSnapshotRequest req;
    req.set_snapshotter(snapshotter_name);
    req.set_name(commit_name);
    req.set_key(commit_key);
    (*req.mutable_labels())["containerd.io/gc.root"] =
        core::format_rfc3339(std::chrono::system_clock::now());
    google::protobuf::Empty e;
    auto ctx = c.context();
    return c.check(pb::Snapshots::NewStub(c.channel())->Commit(ctx.get(), req, &e),
                   "commit snapshot");
  });

  static std::string mt_target, mt_key;
  auto* mounts =
      snap->add_subcommand("mounts", "print the mount commands for a snapshot: TARGET KEY")
          ->alias("m");
  mounts->add_option("target", mt_target, "mount point")->required();
  mounts->add_option("key", mt_key, "snapshot key")->required();
  set_action(mounts, global, [&global](Client& c) -> Status {
    BERTH_TRY(auto m, fetch_mounts(c, mt_key));
    print_mounts(m, mt_target, global);
    return Status();
  });

  auto* mount = snap->add_subcommand("mount", "mount a snapshot (any depth of layers): TARGET KEY");
  mount->add_option("target", mt_target, "mount point")->required();
  mount->add_option("key", mt_key, "snapshot key")->required();
  set_action(mount, global, [](Client& c) -> Status {
    BERTH_TRY(auto m, fetch_mounts(c, mt_key));
    return core::mount_all(m, mt_target);
  });

  static std::vector<std::string> rm_keys;
  auto* rm = snap->add_subcommand("rm", "remove snapshots: KEY...")->alias("delete");
  rm->add_option("keys", rm_keys, "keys")->required();
  set_action(rm, global, [](Client& c) -> Status {
    return for_each_item(rm_keys, "snapshots", false, [&](const std::string& k) {
      pb::RemoveSnapshotRequest req;
      req.set_snapshotter(snapshotter_name);
      req.set_key(k);
      google::protobuf::Empty e;
      auto ctx = c.context();
      return c.check(pb::Snapshots::NewStub(c.channel())->Remove(ctx.get(), req, &e),
                     "remove snapshot");
    });
  });

  static std::string info_key;
  auto* info = snap->add_subcommand("info", "show a snapshot: KEY");
  info->add_option("key", info_key, "key")->required();
  set_action(info, global, [](Client& c) -> Status {
    pb::StatSnapshotRequest req;
    req.set_snapshotter(snapshotter_name);
    req.set_key(info_key);
    pb::StatSnapshotResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Snapshots::NewStub(c.channel())->Stat(ctx.get(), req, &resp), "stat snapshot"));
    const auto& i = resp.info();
    print_json(
        std::cout,
        {{"name", i.name()},
         {"parent", i.parent()},
         {"kind", kind_name(i.kind())},
         {"labels", std::map<std::string, std::string>(i.labels().begin(), i.labels().end())},
         {"created", core::format_rfc3339(from_proto(i.created_at()))},
         {"updated", core::format_rfc3339(from_proto(i.updated_at()))}});
    return Status();
  });

  static std::vector<std::string> usage_keys;
  auto* usage = snap->add_subcommand("usage", "disk usage of snapshots [KEY...]");
  usage->add_option("keys", usage_keys, "keys (default: all)");
  set_action(usage, global, [&global](Client& c) -> Status {
    std::vector<std::string> keys = usage_keys;
    if (keys.empty()) {
      BERTH_TRY(auto all, list_all(c, {}));
      for (const auto& i : all) keys.push_back(i.name());
    }
    Table t({"KEY", "SIZE", "INODES"});
    auto arr = nlohmann::json::array();
    for (const auto& k : keys) {
      pb::UsageRequest req;
      req.set_snapshotter(snapshotter_name);
      req.set_key(k);
      pb::UsageResponse resp;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(c.check(
          pb::Snapshots::NewStub(c.channel())->Usage(ctx.get(), req, &resp), "snapshot usage"));
      t.add({k, human_size(resp.size()), std::to_string(resp.inodes())});
      arr.push_back({{"key", k}, {"size", resp.size()}, {"inodes", resp.inodes()}});
    }
    if (global.format == "json") {
      print_json(std::cout, arr);
    } else {
      t.print(std::cout);
    }
    return Status();
  });

  auto* tree = snap->add_subcommand("tree", "show the snapshot tree");
  set_action(tree, global, [](Client& c) -> Status {
    BERTH_TRY(auto all, list_all(c, {}));
    std::map<std::string, std::vector<std::string>> children;
    std::vector<std::string> roots;
    for (const auto& i : all) {
      if (i.parent().empty()) {
        roots.push_back(i.name());
      } else {
        children[i.parent()].push_back(i.name());
      }
    }
    std::function<void(const std::string&, int)> print = [&](const std::string& n, int depth) {
      std::cout << std::string(depth * 2, ' ') << (depth ? "\\_ " : "") << n << "\n";
      for (const auto& ch : children[n]) print(ch, depth + 1);
    };
    for (const auto& r : roots) print(r, 0);
    return Status();
  });

  // diff: the layer that turns A's parent (or B) into A, stored as content.
  static std::string diff_a, diff_b, diff_media_type, diff_ref;
  auto* diffc = snap->add_subcommand(
      "diff", "write the changes of a snapshot as a layer: KEY [BASE] (default base: its parent)");
  diffc->add_option("key", diff_a, "snapshot with the changes")->required();
  diffc->add_option("base", diff_b, "snapshot to compare against");
  diffc->add_option("--media-type", diff_media_type, "layer media type (default: tar+gzip)");
  diffc->add_option("--ref", diff_ref, "content ingest ref");
  set_action(diffc, global, [&global](Client& c) -> Status {
    auto sstub = pb::Snapshots::NewStub(c.channel());
    namespace lpb = ::containerd::services::leases::v1;
    namespace dpb = ::containerd::services::diff::v1;
    // A short lease keeps the temporary views (and the new blob) until the command ends.
    std::string lease =
        fmt::format("berth-diff-{}", std::chrono::system_clock::now().time_since_epoch().count());
    {
      lpb::CreateRequest lreq;
      lreq.set_id(lease);
      (*lreq.mutable_labels())["containerd.io/gc.expire"] =
          core::format_rfc3339(std::chrono::system_clock::now() + std::chrono::hours(1));
      lpb::CreateResponse lresp;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(c.check(
          lpb::Leases::NewStub(c.channel())->Create(ctx.get(), lreq, &lresp), "create lease"));
    }
    auto leased = [&] {
      auto ctx = c.context();
      ctx->AddMetadata("containerd-lease", lease);
      return ctx;
    };
    // Mounts of a snapshot: its own for active/view ones, a temporary view for committed ones.
    auto mounts_of = [&](const std::string& key, std::vector<Mount>& out,
                         std::string* parent) -> Status {
      pb::StatSnapshotRequest st;
      st.set_snapshotter(snapshotter_name);
      st.set_key(key);
      pb::StatSnapshotResponse info;
      auto ctx = leased();
      BERTH_RETURN_IF_ERROR(c.check(sstub->Stat(ctx.get(), st, &info), "stat snapshot"));
      if (parent) *parent = info.info().parent();
      if (info.info().kind() == pb::COMMITTED) {
        pb::ViewSnapshotRequest v;
        v.set_snapshotter(snapshotter_name);
        v.set_key(lease + "-" + key);
        v.set_parent(key);
        pb::ViewSnapshotResponse vr;
        auto vctx = leased();
        BERTH_RETURN_IF_ERROR(c.check(sstub->View(vctx.get(), v, &vr), "view snapshot"));
        out = convert::mounts_from_proto(vr.mounts());
        return Status();
      }
      BERTH_TRY(out, fetch_mounts(c, key));
      return Status();
    };
    std::vector<Mount> upper, lower;
    std::string parent;
    Status st = mounts_of(diff_a, upper, &parent);
    std::string base = diff_b.empty() ? parent : diff_b;
    if (st.ok() && !base.empty()) st = mounts_of(base, lower, nullptr);
    dpb::DiffResponse dresp;
    if (st.ok()) {
      dpb::DiffRequest dreq;
      for (const auto& m : lower) convert::to_proto(m, dreq.add_left());
      for (const auto& m : upper) convert::to_proto(m, dreq.add_right());
      dreq.set_media_type(diff_media_type);
      dreq.set_ref(diff_ref);
      (*dreq.mutable_labels())["containerd.io/gc.root"] =
          core::format_rfc3339(std::chrono::system_clock::now());
      auto ctx = leased();
      ctx->set_deadline(std::chrono::system_clock::time_point::max());
      st = c.check(dpb::Diff::NewStub(c.channel())->Diff(ctx.get(), dreq, &dresp), "diff");
    }
    {
      lpb::DeleteRequest d;
      d.set_id(lease);
      google::protobuf::Empty e;
      auto ctx = c.context();
      c.check(lpb::Leases::NewStub(c.channel())->Delete(ctx.get(), d, &e), "delete lease").ignore();
    }
    BERTH_RETURN_IF_ERROR(st);
    if (global.format == "json") {
      print_json(std::cout, {{"digest", dresp.diff().digest()},
                             {"size", dresp.diff().size()},
                             {"media_type", dresp.diff().media_type()}});
    } else {
      std::cout << dresp.diff().digest() << "\n";
    }
    return Status();
  });

  static std::string label_key;
  static std::vector<std::string> label_args;
  auto* label =
      snap->add_subcommand("label", "set or clear labels: KEY KEY=VALUE... (KEY= clears)");
  label->add_option("key", label_key, "snapshot key")->required();
  label->add_option("labels", label_args, "KEY=VALUE")->required();
  set_action(label, global, [](Client& c) -> Status {
    pb::UpdateSnapshotRequest req;
    req.set_snapshotter(snapshotter_name);
    req.mutable_info()->set_name(label_key);
    for (const auto& [k, v] : parse_labels(label_args)) {
      if (!v.empty()) (*req.mutable_info()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    pb::UpdateSnapshotResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(c.check(
        pb::Snapshots::NewStub(c.channel())->Update(ctx.get(), req, &resp), "label snapshot"));
    std::cout << join_labels({resp.info().labels().begin(), resp.info().labels().end()}) << "\n";
    return Status();
  });
}

}  // namespace berth::cli

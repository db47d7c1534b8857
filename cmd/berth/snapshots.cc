// berth snapshots ls|prepare|view|commit|mounts|mount|rm|info|usage|tree|diff|label
#include <berth/convert/snapshots.h>

#include <iostream>
#include <map>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "core/mount.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::snapshots::v1;

// What the group's verbs share: --snapshotter (or $BERTH_SNAPSHOTTER), read when a verb runs.
struct Group {
  std::string snapshotter = "overlayfs";
  const GlobalOptions& global;
};
using GroupRef = std::shared_ptr<Group>;

const char* kind_name(pb::Kind k) { return snapshots::kind_name(static_cast<snapshots::Kind>(k)); }

std::string mount_command(const Mount& m, const std::string& target) {
  std::string cmd = "mount -t " + m.type + " " + m.source + " " + target;
  if (!m.options.empty()) {
    cmd += " -o ";
    for (std::size_t i = 0; i < m.options.size(); ++i) cmd += (i ? "," : "") + m.options[i];
  }
  return cmd;
}

Result<std::vector<pb::Info>> list_all(Client& c, const std::string& sn,
                                       const std::vector<std::string>& filters) {
  pb::ListSnapshotsRequest req;
  req.set_snapshotter(sn);
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
Result<std::vector<Mount>> fetch_mounts(Client& c, const std::string& sn, const std::string& key) {
  pb::MountsRequest req;
  req.set_snapshotter(sn);
  req.set_key(key);
  pb::MountsResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(c.check(pb::Snapshots::NewStub(c.channel())->Mounts(ctx.get(), req, &resp),
                                "snapshot mounts"));
  return convert::mounts_from_proto(resp.mounts());
}

void add_snapshots_ls(CLI::App* snap, const GroupRef& g) {
  auto filters = std::make_shared<std::vector<std::string>>();
  auto* ls = snap->add_subcommand("ls", "list snapshots [FILTER...]")->alias("list");
  ls->add_option("filters", *filters, "filters, e.g. kind==Committed");
  set_action(ls, g->global, [g, filters](Client& c) -> Status {
    BERTH_TRY(auto all, list_all(c, g->snapshotter, *filters));
    if (g->global.format == "json") {
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
}

void add_snapshots_prepare_view(CLI::App* snap, const GroupRef& g) {
  struct Options {
    std::string key, parent, target;
    bool show_mounts = false;
    std::vector<std::string> labels;
  };
  for (const char* verb : {"prepare", "view"}) {
    bool is_view = std::string(verb) == "view";
    auto o = std::make_shared<Options>();
    auto* cmd = snap->add_subcommand(verb, is_view ? "create a read-only view: KEY [PARENT]"
                                                   : "create an active snapshot: KEY [PARENT]");
    cmd->add_option("key", o->key, "key")->required();
    cmd->add_option("parent", o->parent, "committed parent");
    cmd->add_option("--target,-t", o->target, "mount target to print mount commands for");
    cmd->add_flag("--mounts", o->show_mounts, "print the mounts");
    cmd->add_option("--label", o->labels, "labels KEY=VALUE");
    set_action(cmd, g->global, [is_view, g, o](Client& c) -> Status {
      auto lbl = parse_labels(o->labels);
      // Like ctr: a snapshot prepared by hand is a GC root until removed (views are not).
      if (!is_view && !lbl.count("containerd.io/gc.root")) {
        lbl["containerd.io/gc.root"] = core::format_rfc3339(std::chrono::system_clock::now());
      }
      // View and Prepare take the same request fields.
      auto fill = [&](auto& req) {
        req.set_snapshotter(g->snapshotter);
        req.set_key(o->key);
        req.set_parent(o->parent);
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
      if (o->show_mounts || g->global.format == "json") {
        print_mounts(convert::mounts_from_proto(mounts), o->target.empty() ? "TARGET" : o->target,
                     g->global);
      }
      return Status();
    });
  }
}

void add_snapshots_commit(CLI::App* snap, const GroupRef& g) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // name, key
  auto* commit = snap->add_subcommand("commit", "commit an active snapshot: NAME KEY");
  commit->add_option("name", o->first, "name of the committed snapshot")->required();
  commit->add_option("key", o->second, "active snapshot key")->required();
  set_action(commit, g->global, [g, o](Client& c) -> Status {
    pb::CommitSnapshotRequest req;
    req.set_snapshotter(g->snapshotter);
    req.set_name(o->first);
    req.set_key(o->second);
    (*req.mutable_labels())["containerd.io/gc.root"] =
        core::format_rfc3339(std::chrono::system_clock::now());
    google::protobuf::Empty e;
    auto ctx = c.context();
    return c.check(pb::Snapshots::NewStub(c.channel())->Commit(ctx.get(), req, &e),
                   "commit snapshot");
  });
}

void add_snapshots_mounts(CLI::App* snap, const GroupRef& g) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // target, key
  auto* mounts =
      snap->add_subcommand("mounts", "print the mount commands for a snapshot: TARGET KEY")
          ->alias("m");
  mounts->add_option("target", o->first, "mount point")->required();
  mounts->add_option("key", o->second, "snapshot key")->required();
  set_action(mounts, g->global, [g, o](Client& c) -> Status {
    BERTH_TRY(auto m, fetch_mounts(c, g->snapshotter, o->second));
    print_mounts(m, o->first, g->global);
    return Status();
  });
}

void add_snapshots_mount(CLI::App* snap, const GroupRef& g) {
  auto o = std::make_shared<std::pair<std::string, std::string>>();  // target, key
  auto* mount = snap->add_subcommand("mount", "mount a snapshot (any depth of layers): TARGET KEY");
  mount->add_option("target", o->first, "mount point")->required();
  mount->add_option("key", o->second, "snapshot key")->required();
  set_action(mount, g->global, [g, o](Client& c) -> Status {
    BERTH_TRY(auto m, fetch_mounts(c, g->snapshotter, o->second));
    return core::mount_all(m, o->first);
  });
}

void add_snapshots_rm(CLI::App* snap, const GroupRef& g) {
  auto keys = std::make_shared<std::vector<std::string>>();
  auto* rm = snap->add_subcommand("rm", "remove snapshots: KEY...")->alias("delete");
  rm->add_option("keys", *keys, "keys")->required();
  set_action(rm, g->global, [g, keys](Client& c) -> Status {
    return for_each_item(*keys, "snapshots", false, [&](const std::string& k) {
      pb::RemoveSnapshotRequest req;
      req.set_snapshotter(g->snapshotter);
      req.set_key(k);
      google::protobuf::Empty e;
      auto ctx = c.context();
      return c.check(pb::Snapshots::NewStub(c.channel())->Remove(ctx.get(), req, &e),
                     "remove snapshot");
    });
  });
}

void add_snapshots_info(CLI::App* snap, const GroupRef& g) {
  auto key = std::make_shared<std::string>();
  auto* info = snap->add_subcommand("info", "show a snapshot: KEY");
  info->add_option("key", *key, "key")->required();
  set_action(info, g->global, [g, key](Client& c) -> Status {
    pb::StatSnapshotRequest req;
    req.set_snapshotter(g->snapshotter);
    req.set_key(*key);
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
}

void add_snapshots_usage(CLI::App* snap, const GroupRef& g) {
  auto keys = std::make_shared<std::vector<std::string>>();
  auto* usage = snap->add_subcommand("usage", "disk usage of snapshots [KEY...]");
  usage->add_option("keys", *keys, "keys (default: all)");
  set_action(usage, g->global, [g, keys](Client& c) -> Status {
    std::vector<std::string> todo = *keys;
    if (todo.empty()) {
      BERTH_TRY(auto all, list_all(c, g->snapshotter, {}));
      for (const auto& i : all) todo.push_back(i.name());
    }
    Table t({"KEY", "SIZE", "INODES"});
    auto arr = nlohmann::json::array();
    for (const auto& k : todo) {
      pb::UsageRequest req;
      req.set_snapshotter(g->snapshotter);
      req.set_key(k);
      pb::UsageResponse resp;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(c.check(
          pb::Snapshots::NewStub(c.channel())->Usage(ctx.get(), req, &resp), "snapshot usage"));
      t.add({k, human_size(resp.size()), std::to_string(resp.inodes())});
      arr.push_back({{"key", k}, {"size", resp.size()}, {"inodes", resp.inodes()}});
    }
    if (g->global.format == "json") {
      print_json(std::cout, arr);
    } else {
      t.print(std::cout);
    }
    return Status();
  });
}

void add_snapshots_tree(CLI::App* snap, const GroupRef& g) {
  auto* tree = snap->add_subcommand("tree", "show the snapshot tree");
  set_action(tree, g->global, [g](Client& c) -> Status {
    BERTH_TRY(auto all, list_all(c, g->snapshotter, {}));
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
}

void add_snapshots_diff(CLI::App* snap, const GroupRef& g) {
  // diff: the layer that turns A's parent (or B) into A, stored as content.
  struct Options {
    std::string a, b, media_type, ref;
  };
  auto o = std::make_shared<Options>();
  auto* diffc = snap->add_subcommand(
      "diff", "write the changes of a snapshot as a layer: KEY [BASE] (default base: its parent)");
  diffc->add_option("key", o->a, "snapshot with the changes")->required();
  diffc->add_option("base", o->b, "snapshot to compare against");
  diffc->add_option("--media-type", o->media_type, "layer media type (default: tar+gzip)");
  diffc->add_option("--ref", o->ref, "content ingest ref");
  set_action(diffc, g->global, [g, o](Client& c) -> Status {
    auto sstub = pb::Snapshots::NewStub(c.channel());
    namespace dpb = ::containerd::services::diff::v1;
    // A short lease keeps the temporary views (and the new blob) until the command ends.
    BERTH_TRY(auto held, CommandLease::create(c, "berth-diff"));
    const std::string& lease = held.id();
    auto leased = [&] { return c.context(lease); };
    // Mounts of a snapshot: its own for active/view ones, a temporary view for committed ones.
    auto mounts_of = [&](const std::string& key, std::vector<Mount>& out,
                         std::string* parent) -> Status {
      pb::StatSnapshotRequest st;
      st.set_snapshotter(g->snapshotter);
      st.set_key(key);
      pb::StatSnapshotResponse info;
      auto ctx = leased();
      BERTH_RETURN_IF_ERROR(c.check(sstub->Stat(ctx.get(), st, &info), "stat snapshot"));
      if (parent) *parent = info.info().parent();
      if (info.info().kind() == pb::COMMITTED) {
        pb::ViewSnapshotRequest v;
        v.set_snapshotter(g->snapshotter);
        v.set_key(lease + "-" + key);
        v.set_parent(key);
        pb::ViewSnapshotResponse vr;
        auto vctx = leased();
        BERTH_RETURN_IF_ERROR(c.check(sstub->View(vctx.get(), v, &vr), "view snapshot"));
        out = convert::mounts_from_proto(vr.mounts());
        return Status();
      }
      BERTH_TRY(out, fetch_mounts(c, g->snapshotter, key));
      return Status();
    };
    std::vector<Mount> upper, lower;
    std::string parent;
    Status st = mounts_of(o->a, upper, &parent);
    std::string base = o->b.empty() ? parent : o->b;
    if (st.ok() && !base.empty()) st = mounts_of(base, lower, nullptr);
    dpb::DiffResponse dresp;
    if (st.ok()) {
      dpb::DiffRequest dreq;
      for (const auto& m : lower) convert::to_proto(m, dreq.add_left());
      for (const auto& m : upper) convert::to_proto(m, dreq.add_right());
      dreq.set_media_type(o->media_type);
      dreq.set_ref(o->ref);
      (*dreq.mutable_labels())["containerd.io/gc.root"] =
          core::format_rfc3339(std::chrono::system_clock::now());
      auto ctx = leased();
      ctx->set_deadline(std::chrono::system_clock::time_point::max());
      st = c.check(dpb::Diff::NewStub(c.channel())->Diff(ctx.get(), dreq, &dresp), "diff");
    }
    BERTH_RETURN_IF_ERROR(st);
    if (g->global.format == "json") {
      print_json(std::cout, {{"digest", dresp.diff().digest()},
                             {"size", dresp.diff().size()},
                             {"media_type", dresp.diff().media_type()}});
    } else {
      std::cout << dresp.diff().digest() << "\n";
    }
    return Status();
  });
}

void add_snapshots_label(CLI::App* snap, const GroupRef& g) {
  auto o = std::make_shared<std::pair<std::string, std::vector<std::string>>>();  // key, labels
  auto* label =
      snap->add_subcommand("label", "set or clear labels: KEY KEY=VALUE... (KEY= clears)");
  label->add_option("key", o->first, "snapshot key")->required();
  label->add_option("labels", o->second, "KEY=VALUE")->required();
  set_action(label, g->global, [g, o](Client& c) -> Status {
    pb::UpdateSnapshotRequest req;
    req.set_snapshotter(g->snapshotter);
    req.mutable_info()->set_name(o->first);
    for (const auto& [k, v] : parse_labels(o->second)) {
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

}  // namespace

void add_snapshots_command(CLI::App& app, const GlobalOptions& global) {
  auto* snap = app.add_subcommand("snapshots", "manage snapshots");
  snap->alias("snapshot");
  snap->require_subcommand(1);
  auto g = std::make_shared<Group>(Group{"overlayfs", global});
  if (const char* env = std::getenv("BERTH_SNAPSHOTTER"); env && *env) g->snapshotter = env;
  snap->add_option("--snapshotter", g->snapshotter, "snapshotter ($BERTH_SNAPSHOTTER)")
      ->capture_default_str();
  for (auto* add :
       {add_snapshots_ls, add_snapshots_prepare_view, add_snapshots_commit, add_snapshots_mounts,
        add_snapshots_mount, add_snapshots_rm, add_snapshots_info, add_snapshots_usage,
        add_snapshots_tree, add_snapshots_diff, add_snapshots_label})
    add(snap, g);
}

}  // namespace berth::cli

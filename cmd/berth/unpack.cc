// berth images unpack|check|mount|unmount: an image's layers in a snapshotter, whether all of an
// image's content is present, and an image's root filesystem mounted on a directory. mount and
// unmount use ctr's conventions (the lease and the snapshot key are the target path), so an image
// mounted by one can be unmounted by the other.
#include <berth/convert/descriptor.h>
#include <berth/convert/snapshots.h>
#include <berth/grpc.h>

#include <filesystem>
#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "core/mount.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::cli {
namespace {

namespace cpb = ::containerd::services::content::v1;
namespace ipb = ::containerd::services::images::v1;
namespace lpb = ::containerd::services::leases::v1;
namespace spb = ::containerd::services::snapshots::v1;
using nlohmann::json;

struct Options {
  std::vector<std::string> names;
  std::string platform, snapshotter = "overlayfs", target;
  bool rw = false, keep = false, rm = false;
};

Result<ResolvedImage> resolve(Client& c, const std::string& name, const model::Platform& p) {
  BERTH_TRY(auto target, image_target(c, name));
  auto r = resolve_image(c, target, p);
  if (!r.ok()) return Status(r.status().code(), fmt::format("{}: {}", name, r.status().message()));
  return r;
}

Status unpack_images(Client& c, const Options& o, bool json_output) {
  BERTH_TRY(auto platform, platform_option(o.platform));
  BERTH_TRY(auto lease, CommandLease::create(c, "unpack"));
  json out = json::array();
  for (const auto& name : o.names) {
    BERTH_TRY(auto image, resolve(c, name, platform));
    std::size_t applied = 0;
    BERTH_TRY(auto chain,
              unpack(c, image, o.snapshotter, lease.id(),
                     [&](std::size_t i, const model::Descriptor& l, std::string_view w) {
                       if (w == "applied") ++applied;
                       if (!json_output)
                         std::cerr << "layer " << i << " " << l.digest.substr(0, 19) << " " << w
                                   << "\n";
                     }));
    if (json_output) {
      out.push_back({{"name", name}, {"chain_id", chain}, {"applied", applied}});
    } else {
      std::cout << name << " " << chain << " (" << applied << " of " << image.manifest.layers.size()
                << " layers applied)\n";
    }
  }
  if (json_output) print_json(std::cout, out);
  return Status();
}

// Whether a blob is in this namespace, and its size.
Result<std::optional<std::int64_t>> blob_size(Client& c, const std::string& digest) {
  cpb::InfoRequest req;
  req.set_digest(digest);
  cpb::InfoResponse resp;
  auto ctx = c.context();
  Status s = c.check(cpb::Content::NewStub(c.channel())->Info(ctx.get(), req, &resp), "info");
  if (s.code() == Code::kNotFound) return std::optional<std::int64_t>();
  BERTH_RETURN_IF_ERROR(s);
  return std::optional<std::int64_t>(resp.info().size());
}

Status check_images(Client& c, const Options& o, bool json_output) {
  BERTH_TRY(auto platform, platform_option(o.platform));
  ipb::ListImagesRequest req;
  for (const auto& f : o.names) req.add_filters(f);
  ipb::ListImagesResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(
      c.check(ipb::Images::NewStub(c.channel())->List(ctx.get(), req, &resp), "list images"));
  Table table({"NAME", "PLATFORM", "STATUS", "SIZE", "UNPACKED"});
  json out = json::array();
  bool all_complete = true;
  for (const auto& img : resp.images()) {
    auto image = resolve_image(c, convert::from_proto(img.target()), platform);
    std::string status, size = "-", plat = "-";
    bool unpacked = false;
    std::size_t present = 0, wanted = 0;
    std::int64_t have = 0, total = 0;
    if (!image.ok()) {
      status = image.status().code() == Code::kNotFound ? "incomplete" : "invalid";
      all_complete = false;
      if (json_output)
        out.push_back(
            {{"name", img.name()}, {"status", status}, {"error", image.status().message()}});
      else
        table.add({img.name(), "-", status, "-", "false"});
      continue;
    }
    plat = image->config.platform.to_string();
    std::vector<model::Descriptor> blobs = {image->manifest_descriptor, image->manifest.config};
    blobs.insert(blobs.end(), image->manifest.layers.begin(), image->manifest.layers.end());
    for (const auto& b : blobs) {
      ++wanted;
      total += b.size;
      BERTH_TRY(auto sz, blob_size(c, b.digest));
      if (sz) {
        ++present;
        have += *sz;
      }
    }
    BERTH_TRY(unpacked, is_unpacked(c, *image, o.snapshotter));
    bool complete = present == wanted;
    all_complete = all_complete && complete;
    status = fmt::format("{} ({}/{})", complete ? "complete" : "incomplete", present, wanted);
    size = human_size(have) + "/" + human_size(total);
    if (json_output) {
      out.push_back({{"name", img.name()},
                     {"platform", plat},
                     {"complete", complete},
                     {"blobs", wanted},
                     {"present", present},
                     {"size", total},
                     {"present_size", have},
                     {"unpacked", unpacked}});
    } else {
      table.add({img.name(), plat, status, size, unpacked ? "true" : "false"});
    }
  }
  if (json_output)
    print_json(std::cout, out);
  else
    table.print(std::cout);
  if (!all_complete) return Status(Code::kNotFound, "some images are incomplete");
  return Status();
}

Status mount_image(Client& c, const Options& o) {
  BERTH_TRY(auto platform, platform_option(o.platform));
  std::error_code ec;
  std::string target = std::filesystem::absolute(o.target, ec).lexically_normal().string();
  if (target.size() > 1 && target.back() == '/') target.pop_back();
  if (!std::filesystem::is_directory(target))
    return invalid_argument("mount target \"{}\" is not a directory", target);
  // The lease holds the snapshot while mounted and expires on its own after a day.
  {
    lpb::CreateRequest req;
    req.set_id(target);
    (*req.mutable_labels())["containerd.io/gc.expire"] =
        core::format_rfc3339(std::chrono::system_clock::now() + std::chrono::hours(24));
    (*req.mutable_labels())["containerd.io/gc.ref.snapshot." + o.snapshotter] = target;
    lpb::CreateResponse resp;
    auto ctx = c.context();
    Status s =
        c.check(lpb::Leases::NewStub(c.channel())->Create(ctx.get(), req, &resp), "create lease");
    if (!s.ok() && s.code() != Code::kAlreadyExists) return s;
  }
  auto drop_lease = [&] { delete_lease(c, target).ignore(); };
  auto image = resolve(c, o.names[0], platform);
  if (!image.ok()) {
    drop_lease();
    return image.status();
  }
  auto chain = unpack(c, *image, o.snapshotter, target);
  if (!chain.ok()) {
    drop_lease();
    return chain.status();
  }
  auto snaps = spb::Snapshots::NewStub(c.channel());
  ::google::protobuf::RepeatedPtrField<::containerd::types::Mount> mounts;
  Status s;
  if (o.rw) {
    spb::PrepareSnapshotRequest req;
    req.set_snapshotter(o.snapshotter);
    req.set_key(target);
    req.set_parent(*chain);
    spb::PrepareSnapshotResponse resp;
    auto ctx = c.context(target);
    s = c.check(snaps->Prepare(ctx.get(), req, &resp), "prepare snapshot");
    mounts = resp.mounts();
  } else {
    spb::ViewSnapshotRequest req;
    req.set_snapshotter(o.snapshotter);
    req.set_key(target);
    req.set_parent(*chain);
    spb::ViewSnapshotResponse resp;
    auto ctx = c.context(target);
    s = c.check(snaps->View(ctx.get(), req, &resp), "view snapshot");
    mounts = resp.mounts();
  }
  if (s.code() == Code::kAlreadyExists) {  // mounted before (and unmounted without removal)
    spb::MountsRequest req;
    req.set_snapshotter(o.snapshotter);
    req.set_key(target);
    spb::MountsResponse resp;
    auto ctx = c.context(target);
    s = c.check(snaps->Mounts(ctx.get(), req, &resp), "snapshot mounts");
    mounts = resp.mounts();
  }
  if (!s.ok()) {
    drop_lease();
    return s;
  }
  if (Status m = core::mount_all(convert::mounts_from_proto(mounts), target); !m.ok()) {
    remove_snapshot(c, o.snapshotter, target).ignore();
    drop_lease();
    return m;
  }
  std::cout << target << "\n";
  return Status();
}

Status unmount_image(Client& c, const Options& o) {
  std::error_code ec;
  std::string target = std::filesystem::absolute(o.target, ec).lexically_normal().string();
  if (target.size() > 1 && target.back() == '/') target.pop_back();
  BERTH_RETURN_IF_ERROR(core::unmount_all(target));
  if (!o.keep) {
    BERTH_RETURN_IF_ERROR(delete_lease(c, target));
    BERTH_RETURN_IF_ERROR(remove_snapshot(c, o.snapshotter, target));
  }
  std::cout << target << "\n";
  return Status();
}

}  // namespace

void add_unpack_commands(CLI::App& images, const GlobalOptions& global) {
  // One options object for the group (each invocation runs one verb), held by the callbacks.
  auto o = std::make_shared<Options>();
  auto mount_name = std::make_shared<std::string>();
  auto platform_flag = [o](CLI::App* cmd) {
    cmd->add_option("--platform", o->platform,
                    "platform (os/arch[/variant]; default: this host's)");
    cmd->add_option("--snapshotter", o->snapshotter, "snapshotter")->capture_default_str();
  };
  auto* unpack_cmd = images.add_subcommand("unpack", "unpack images into a snapshotter: NAME...");
  unpack_cmd->add_option("names", o->names, "image names")->required();
  platform_flag(unpack_cmd);
  set_action(unpack_cmd, global,
             [&global, o](Client& c) { return unpack_images(c, *o, global.format == "json"); });

  auto* check = images.add_subcommand(
      "check", "check that images have all their content and are unpacked: [FILTER...]");
  check->add_option("filters", o->names, "image filters (containerd's syntax)");
  platform_flag(check);
  set_action(check, global,
             [&global, o](Client& c) { return check_images(c, *o, global.format == "json"); });

  auto* mount = images.add_subcommand(
      "mount", "mount an image's root filesystem (unpacking it if needed): NAME TARGET");
  mount->add_option("name", *mount_name, "image name")->required();
  mount->add_option("target", o->target, "directory to mount on")->required();
  mount->add_flag("--rw", o->rw, "writable (a new active snapshot) instead of a read-only view");
  platform_flag(mount);
  set_action(mount, global, [o, mount_name](Client& c) {
    o->names = {*mount_name};
    return mount_image(c, *o);
  });

  auto* unmount = images.add_subcommand("unmount", "unmount an image mounted with mount: TARGET")
                      ->alias("umount");
  unmount->add_option("target", o->target, "mount target")->required();
  unmount->add_flag("--keep", o->keep, "keep the snapshot (and its changes) for a later mount");
  unmount->add_flag("--rm", o->rm,
                    "remove the snapshot and its lease (the default; for ctr's "
                    "users)");
  unmount->add_option("--snapshotter", o->snapshotter, "snapshotter")->capture_default_str();
  set_action(unmount, global, [o](Client& c) { return unmount_image(c, *o); });
}

}  // namespace berth::cli

// berth images import-rootfs DIR|TAR NAME: a one-layer image from a directory or a tarball (what
// `docker import` does), unpacked into the snapshotter, built entirely through the public API:
//   layer   a directory: Diff.Diff of nothing against a read-only bind of it (the daemon writes
//           the layer); a tarball: written as is
//   unpack  the one unpack (core/unpack) over the Snapshots and Diff services: the diffID comes
//           back from the apply, the layer is committed under it
//   config, manifest (OCI) with containerd's GC labels, then Images.Create
// Everything is held by a short lease until the image record exists.
#include <berth/convert/descriptor.h>
#include <berth/convert/snapshots.h>
#include <berth/grpc.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "cmd/berth/unpack_stores.h"
#include "core/digest.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"

namespace berth::cli {
namespace {

namespace ipb = ::containerd::services::images::v1;
namespace dpb = ::containerd::services::diff::v1;
namespace cpb = ::containerd::services::content::v1;
using nlohmann::json;

struct Options {
  std::string source, name, snapshotter = "overlayfs";
  std::vector<std::string> cmd;
  bool force = false;
};

Status import_rootfs(Client& c, const Options& o, bool json_output) {
  struct stat st {};
  if (::stat(o.source.c_str(), &st) < 0)
    return from_errno(errno, "import-rootfs: stat \"{}\"", o.source);
  std::string stamp = std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  BERTH_TRY(auto held, CommandLease::create(c, "import-rootfs"));
  const std::string& lease = held.id();

  // 1. The layer blob.
  diff::Descriptor layer;
  if (S_ISDIR(st.st_mode)) {
    dpb::DiffRequest req;
    convert::to_proto(Mount{"bind", o.source, "", {"ro", "rbind"}}, req.add_right());
    req.set_ref("import-rootfs-layer-" + stamp);
    auto ctx = c.context(lease);
    ctx->set_deadline(std::chrono::system_clock::time_point::max());
    dpb::DiffResponse resp;
    BERTH_RETURN_IF_ERROR(
        c.check(dpb::Diff::NewStub(c.channel())->Diff(ctx.get(), req, &resp), "create layer"));
    layer = convert::from_proto(resp.diff());
  } else {
    int fd = ::open(o.source.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return from_errno(errno, "open \"{}\"", o.source);
    unsigned char magic[4] = {};
    bool gz = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    auto d = write_content(c, fd, {.ref = "import-rootfs-tar-" + stamp, .lease = lease});
    ::close(fd);
    if (!d.ok()) return d.status();
    layer.digest = *d;
    layer.size = st.st_size;
    layer.media_type = std::string(gz ? diff::kMediaTypeOciLayerGzip : diff::kMediaTypeOciLayer);
  }

  // 2. Unpack: the diffID comes back from the apply; one layer, so the chain ID is the diffID.
  UnpackStores stores(c, o.snapshotter, lease);
  BERTH_TRY(auto unpacked, unpack::unpack_layer(stores, {layer, ""}, ""));
  const std::string& diff_id = unpacked.diff_id;

  // 3. Config and manifest.
  std::string now = core::format_rfc3339(std::chrono::system_clock::now());
  json config = {
      {"architecture", model::host_platform().architecture},
      {"os", "linux"},
      {"created", now},
      {"config",
       {{"Cmd", o.cmd.empty() ? std::vector<std::string>{"/bin/sh"} : o.cmd},
        {"Env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {diff_id}}}},
      {"history", {{{"created", now}, {"created_by", "berth images import-rootfs " + o.source}}}}};
  std::string config_bytes = config.dump();
  BERTH_TRY(
      auto config_digest,
      put_bytes(c, config_bytes, "import-rootfs-config-" + stamp,
                {{"containerd.io/gc.ref.snapshot." + o.snapshotter, unpacked.chain_id}}, lease));
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", config_digest},
        {"size", config_bytes.size()}}},
      {"layers",
       {{{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}}}}};
  std::string manifest_bytes = manifest.dump();
  BERTH_TRY(auto manifest_digest, put_bytes(c, manifest_bytes, "import-rootfs-manifest-" + stamp,
                                            {{"containerd.io/gc.ref.content.config", config_digest},
                                             {"containerd.io/gc.ref.content.l.0", layer.digest}},
                                            lease));

  // 4. The image record (which from now on holds everything; the lease can go).
  ipb::CreateImageRequest create;
  create.mutable_image()->set_name(o.name);
  auto* target = create.mutable_image()->mutable_target();
  target->set_media_type("application/vnd.oci.image.manifest.v1+json");
  target->set_digest(manifest_digest);
  target->set_size(static_cast<std::int64_t>(manifest_bytes.size()));
  auto images = ipb::Images::NewStub(c.channel());
  ipb::CreateImageResponse created;
  auto ctx = c.context();
  Status s = c.check(images->Create(ctx.get(), create, &created), "create image");
  if (s.code() == Code::kAlreadyExists && o.force) {
    ipb::UpdateImageRequest u;
    *u.mutable_image() = create.image();
    u.mutable_update_mask()->add_paths("target");
    ipb::UpdateImageResponse ur;
    auto uctx = c.context();
    s = c.check(images->Update(uctx.get(), u, &ur), "update image");
  } else if (s.code() == Code::kAlreadyExists) {
    return already_exists("image \"{}\" already exists (use --force to replace it)", o.name);
  }
  BERTH_RETURN_IF_ERROR(s);
  if (json_output) {
    print_json(std::cout, {{"name", o.name},
                           {"digest", manifest_digest},
                           {"layer", layer.digest},
                           {"diff_id", diff_id}});
  } else {
    std::cout << o.name << " " << manifest_digest << "\n";
  }
  return Status();
}

}  // namespace

void add_import_rootfs_command(CLI::App& images, const GlobalOptions& global) {
  auto o = std::make_shared<Options>();
  auto* cmd = images.add_subcommand(
      "import-rootfs", "build a one-layer image from a directory or tarball: SOURCE NAME");
  cmd->add_option("source", o->source, "directory or tar / tar.gz file")->required();
  cmd->add_option("name", o->name, "image name, e.g. docker.io/library/busybox:latest")->required();
  cmd->add_option("--snapshotter", o->snapshotter, "snapshotter to unpack into")
      ->capture_default_str();
  cmd->add_option("--cmd", o->cmd, "the image's default command (default /bin/sh)");
  cmd->add_flag("--force", o->force, "replace an image of that name");
  set_action(cmd, global, [&global, o](Client& c) -> Status {
    return import_rootfs(c, *o, global.format == "json");
  });
}

}  // namespace berth::cli

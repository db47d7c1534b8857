#include "cmd/berth/image_client.h"

#include <berth/convert/descriptor.h>
#include <berth/grpc.h>

#include "cmd/berth/commands.h"
#include "cmd/berth/unpack_stores.h"
#include "core/digest.h"
#include "core/time.h"
#include "core/unique.h"
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

}  // namespace

nlohmann::json descriptor_json(const model::Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

Result<std::string> read_blob(Client& c, const std::string& digest, std::size_t limit) {
  cpb::ReadContentRequest req;
  req.set_digest(digest);
  auto ctx = c.context();
  auto reader = cpb::Content::NewStub(c.channel())->Read(ctx.get(), req);
  std::string body;
  cpb::ReadContentResponse chunk;
  while (reader->Read(&chunk)) {
    body += chunk.data();
    if (body.size() > limit) {
      ctx->TryCancel();
      reader->Finish();
      return invalid_argument("document {} is larger than {} bytes", digest, limit);
    }
  }
  BERTH_RETURN_IF_ERROR(c.check(reader->Finish(), "read " + digest));
  return body;
}

Result<std::string> put_bytes(Client& c, const std::string& data, const std::string& ref,
                              const std::map<std::string, std::string>& labels,
                              const std::string& lease) {
  std::string digest = core::Sha256::digest_of(data);
  std::size_t pos = 0;
  auto r = write_content(
      c,
      [&](char* buf, std::size_t n) -> Result<std::size_t> {
        std::size_t k = std::min(n, data.size() - pos);
        std::memcpy(buf, data.data() + pos, k);
        pos += k;
        return k;
      },
      {.ref = ref,
       .size = static_cast<std::int64_t>(data.size()),
       .expected = digest,
       .labels = labels,
       .lease = lease});
  if (!r.ok()) return r.status();
  // An existing blob keeps its old labels: set ours explicitly.
  if (!labels.empty()) BERTH_RETURN_IF_ERROR(label_content(c, digest, labels, lease));
  return digest;
}

Status label_content(Client& c, const std::string& digest,
                     const std::map<std::string, std::string>& labels, const std::string& lease) {
  cpb::UpdateRequest u;
  u.mutable_info()->set_digest(digest);
  for (const auto& [k, v] : labels) {
    (*u.mutable_info()->mutable_labels())[k] = v;
    u.mutable_update_mask()->add_paths("labels." + k);
  }
  cpb::UpdateResponse ur;
  auto ctx = c.context(lease);
  return c.check(cpb::Content::NewStub(c.channel())->Update(ctx.get(), u, &ur),
                 "label " + digest);
}

Result<CommandLease> CommandLease::create(Client& c, const std::string& prefix,
                                          std::chrono::seconds ttl) {
  lpb::CreateRequest req;
  req.set_id(prefix + "-" + core::unique_part());
  (*req.mutable_labels())["containerd.io/gc.expire"] =
      core::format_rfc3339(std::chrono::system_clock::now() + ttl);
  lpb::CreateResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(
      c.check(lpb::Leases::NewStub(c.channel())->Create(ctx.get(), req, &resp), "create lease"));
  return CommandLease(c, req.id());
}

CommandLease::~CommandLease() {
  if (!id_.empty()) delete_lease(c_, id_).ignore();
}

Status remove_snapshot(Client& c, const std::string& snapshotter, const std::string& key) {
  spb::RemoveSnapshotRequest r;
  r.set_snapshotter(snapshotter);
  r.set_key(key);
  google::protobuf::Empty e;
  auto ctx = c.context();
  Status st = c.check(spb::Snapshots::NewStub(c.channel())->Remove(ctx.get(), r, &e),
                      "remove snapshot " + key);
  return st.code() == Code::kNotFound ? Status() : st;
}

Status delete_lease(Client& c, const std::string& id) {
  lpb::DeleteRequest d;
  d.set_id(id);
  google::protobuf::Empty e;
  auto ctx = c.context();
  Status st = c.check(lpb::Leases::NewStub(c.channel())->Delete(ctx.get(), d, &e), "delete lease " + id);
  return st.code() == Code::kNotFound ? Status() : st;
}

Result<model::Descriptor> image_target(Client& c, const std::string& name) {
  ipb::GetImageRequest req;
  req.set_name(name);
  ipb::GetImageResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(
      c.check(ipb::Images::NewStub(c.channel())->Get(ctx.get(), req, &resp), "get image"));
  return convert::from_proto(resp.image().target());
}

Status save_image(Client& c, const std::string& name, const model::Descriptor& target,
                  const std::string& lease) {
  auto images = ipb::Images::NewStub(c.channel());
  ipb::UpdateImageRequest u;
  u.mutable_image()->set_name(name);
  convert::to_proto(target, u.mutable_image()->mutable_target());
  u.mutable_update_mask()->add_paths("target");
  ipb::UpdateImageResponse ur;
  auto uctx = c.context(lease);
  Status s = c.check(images->Update(uctx.get(), u, &ur), "update image " + name);
  if (s.code() != Code::kNotFound) return s;
  ipb::CreateImageRequest create;
  *create.mutable_image() = u.image();
  ipb::CreateImageResponse created;
  auto ctx = c.context(lease);
  return c.check(images->Create(ctx.get(), create, &created), "create image " + name);
}

Result<ResolvedImage> resolve_image(Client& c, const model::Descriptor& target,
                                    const model::Platform& platform) {
  return images::resolve_image([&c](const std::string& digest) { return read_blob(c, digest); },
                               target, platform);
}

Result<bool> is_unpacked(Client& c, const ResolvedImage& image, const std::string& snapshotter) {
  UnpackStores stores(c, snapshotter, "");
  return unpack::is_unpacked(stores, image.config.diff_ids);
}

Result<std::string> unpack(Client& c, const ResolvedImage& image, const std::string& snapshotter,
                           const std::string& lease, const UnpackProgress& progress) {
  std::vector<unpack::Layer> layers;
  for (std::size_t i = 0; i < image.manifest.layers.size(); ++i)
    layers.push_back({image.manifest.layers[i], image.config.diff_ids[i]});
  UnpackStores stores(c, snapshotter, lease);
  return unpack::unpack_image(stores, layers, image.manifest.config.digest,
                              [&](std::size_t i, const unpack::Layer& layer, unpack::Step step) {
                                if (progress && step != unpack::Step::kApplying)
                                  progress(i, layer.blob, step == unpack::Step::kExisted ? "exists" : "applied");
                              });
}

Result<model::Platform> platform_option(const std::string& spec) {
  if (spec.empty()) return model::host_platform();
  auto p = model::parse_platform(spec);
  if (!p.ok()) return invalid_argument("--platform \"{}\": {}", spec, p.status().message());
  return p;
}

}  // namespace berth::cli

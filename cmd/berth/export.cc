// berth images export OUT.tar NAME...: an OCI image layout tar (oci-layout, index.json,
// blobs/sha256/*) that also carries a Docker manifest.json, streamed blob by blob from the
// content store (no temporary copies). Index targets are exported with every platform whose
// blobs are present locally.
#include <archive.h>
#include <archive_entry.h>
#include <berth/convert/descriptor.h>
#include <berth/grpc.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "core/archive_text.h"
#include "core/images/model.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"

namespace berth::cli {
namespace {

namespace cpb = ::containerd::services::content::v1;
namespace ipb = ::containerd::services::images::v1;
using nlohmann::json;

class LayoutWriter {
 public:
  explicit LayoutWriter(Client& c) : c_(c), a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
  }
  ~LayoutWriter() { archive_write_free(a_); }

  Status open(const std::string& path) {
    if (archive_write_open_filename(a_, path.c_str()) != ARCHIVE_OK) {
      return invalid_argument("export: cannot write \"{}\": {}", path, core::archive_error(a_));
    }
    return Status();
  }
  Status file(const std::string& name, const std::string& data) {
    BERTH_RETURN_IF_ERROR(header(name, static_cast<std::int64_t>(data.size())));
    if (archive_write_data(a_, data.data(), data.size()) < 0) return error(name);
    return Status();
  }
  // Streams a blob from the content store into blobs/sha256/<hex>, once.
  Status blob(const model::Descriptor& d) {
    if (!written_.insert(d.digest).second) return Status();
    BERTH_RETURN_IF_ERROR(header("blobs/sha256/" + d.digest.substr(7), d.size));
    cpb::ReadContentRequest req;
    req.set_digest(d.digest);
    auto ctx = c_.context();
    ctx->set_deadline(std::chrono::system_clock::time_point::max());
    auto reader = cpb::Content::NewStub(c_.channel())->Read(ctx.get(), req);
    cpb::ReadContentResponse chunk;
    std::int64_t total = 0;
    while (reader->Read(&chunk)) {
      total += static_cast<std::int64_t>(chunk.data().size());
      if (archive_write_data(a_, chunk.data().data(), chunk.data().size()) < 0)
        return error(d.digest);
    }
    BERTH_RETURN_IF_ERROR(c_.check(reader->Finish(), "read " + d.digest));
    if (total != d.size)
      return Status(Code::kDataLoss, fmt::format("blob {} is {} bytes, its descriptor says {}",
                                                 d.digest, total, d.size));
    return Status();
  }
  Status close() {
    if (archive_write_close(a_) != ARCHIVE_OK) return error("archive");
    return Status();
  }

 private:
  Status header(const std::string& name, std::int64_t size) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0444);
    archive_entry_set_size(e.get(), size);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) return error(name);
    return Status();
  }
  Status error(const std::string& what) {
    return internal_error("export: writing {}: {}", what, core::archive_error(a_));
  }
  Client& c_;
  archive* a_;
  std::set<std::string> written_;
};

// Writes a manifest and its config and layers; returns the Docker manifest.json entry.
Result<json> export_manifest(Client& c, LayoutWriter& w, const model::Descriptor& d,
                             const std::string& name) {
  BERTH_TRY(auto body, read_blob(c, d.digest));
  BERTH_TRY(auto m, model::parse_manifest(body));
  BERTH_RETURN_IF_ERROR(w.blob(m.config));
  json layers = json::array();
  for (const auto& l : m.layers) {
    BERTH_RETURN_IF_ERROR(w.blob(l));
    layers.push_back("blobs/sha256/" + l.digest.substr(7));
  }
  BERTH_RETURN_IF_ERROR(w.blob(d));
  json tags = json::array();
  if (!name.empty()) tags.push_back(name);
  return json{{"Config", "blobs/sha256/" + m.config.digest.substr(7)},
              {"RepoTags", tags},
              {"Layers", layers}};
}

}  // namespace

void add_export_command(CLI::App& images, const GlobalOptions& global) {
  struct Options {
    std::string out;
    std::vector<std::string> names;
    std::string platform;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = images.add_subcommand(
      "export", "write images as an OCI layout tar (with a Docker manifest.json): OUT NAME...");
  cmd->add_option("out", o->out, "output tar file")->required();
  cmd->add_option("names", o->names, "image names")->required();
  cmd->add_option("--platform", o->platform,
                  "export only this platform: each index is replaced by its manifest for it");
  set_action(cmd, global, [o](Client& c) -> Status {
    LayoutWriter w(c);
    BERTH_RETURN_IF_ERROR(w.open(o->out));
    json index = {{"schemaVersion", 2},
                  {"mediaType", model::media_type::kOciIndex},
                  {"manifests", json::array()}};
    json docker = json::array();
    for (const auto& n : o->names) {
      ipb::GetImageRequest req;
      req.set_name(n);
      ipb::GetImageResponse resp;
      auto ctx = c.context();
      BERTH_RETURN_IF_ERROR(
          c.check(ipb::Images::NewStub(c.channel())->Get(ctx.get(), req, &resp), "get image"));
      model::Descriptor target = convert::from_proto(resp.image().target());
      if (!o->platform.empty() && model::media_type::is_index(target.media_type)) {
        BERTH_TRY(auto p, platform_option(o->platform));
        BERTH_TRY(auto resolved, resolve_image(c, target, p));
        target = resolved.manifest_descriptor;
      }
      if (model::media_type::is_manifest(target.media_type)) {
        BERTH_TRY(auto entry, export_manifest(c, w, target, n));
        docker.push_back(entry);
      } else if (model::media_type::is_index(target.media_type)) {
        BERTH_TRY(auto body, read_blob(c, target.digest));
        BERTH_TRY(auto idx, model::parse_index(body));
        for (const auto& e : idx.manifests) {
          if (!model::media_type::is_manifest(e.descriptor.media_type)) continue;
          auto entry = export_manifest(c, w, e.descriptor, "");
          if (!entry.ok() && entry.status().code() != Code::kNotFound)
            return entry.status();  // absent platforms are skipped
        }
        BERTH_RETURN_IF_ERROR(w.blob(target));
      } else {
        return invalid_argument(
            "image \"{}\": target media type \"{}\" is neither an index nor a manifest", n,
            target.media_type);
      }
      json d = descriptor_json(target);
      std::string tag = n.substr(n.rfind(':') == std::string::npos || n.rfind(':') < n.rfind('/')
                                     ? n.size()
                                     : n.rfind(':') + 1);
      d["annotations"]["io.containerd.image.name"] = n;
      if (!tag.empty()) d["annotations"]["org.opencontainers.image.ref.name"] = tag;
      index["manifests"].push_back(d);
    }
    BERTH_RETURN_IF_ERROR(w.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    BERTH_RETURN_IF_ERROR(w.file("index.json", index.dump()));
    BERTH_RETURN_IF_ERROR(w.file("manifest.json", docker.dump()));
    return w.close();
  });
}

}  // namespace berth::cli

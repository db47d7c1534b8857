// Test helper: OCI image layouts assembled in memory (layers, configs, manifests, indexes), written
// as a tar or a directory, for import tests and for feeding images to containerd.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <sys/utsname.h>

#include "core/digest.h"
#include "core/fs.h"
#include "tests/support/tar_builder.h"

namespace berth::test {

using nlohmann::json;

inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

struct Layer {
  std::string blob, media_type, diff_id;
};
inline Layer make_layer(const std::string& tar, const char* compression = nullptr) {
  Layer l;
  l.diff_id = core::Sha256::digest_of(tar);
  if (!compression) {
    l.blob = tar;
    l.media_type = "application/vnd.oci.image.layer.v1.tar";
  } else {
    l.blob = compress(tar, compression);
    l.media_type = std::string("application/vnd.oci.image.layer.v1.tar+") + compression;
  }
  return l;
}

// An OCI image layout assembled in memory: blobs, manifests, one index.
class Layout {
 public:
  // Adds config + manifest for one platform; returns the manifest's descriptor. `config_extra`
  // is merged into the image config's "config" (e.g. {"User": "app"}).
  json manifest(const std::string& arch, const std::vector<Layer>& layers,
                std::vector<std::string> diff_ids = {}, const json& config_extra = json::object()) {
    if (diff_ids.empty()) {
      for (const auto& l : layers) diff_ids.push_back(l.diff_id);
    }
    json config = {{"architecture", arch},
                   {"os", "linux"},
                   {"config", {{"Cmd", {"/bin/sh"}}}},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
    config["config"].merge_patch(config_extra);
    json m = {{"schemaVersion", 2},
              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
              {"config", blob(config.dump(), "application/vnd.oci.image.config.v1+json")},
              {"layers", json::array()}};
    for (const auto& l : layers) m["layers"].push_back(blob(l.blob, l.media_type));
    json d = blob(m.dump(), "application/vnd.oci.image.manifest.v1+json");
    d["platform"] = {{"os", "linux"}, {"architecture", arch}};
    return d;
  }
  json index(const std::vector<json>& manifests) {
    json i = {{"schemaVersion", 2},
              {"mediaType", "application/vnd.oci.image.index.v1+json"},
              {"manifests", manifests}};
    return blob(i.dump(), "application/vnd.oci.image.index.v1+json");
  }
  // Lists `d` in index.json under a name.
  void name(json d, const std::string& name) {
    d["annotations"] = {{"io.containerd.image.name", name},
                        {"org.opencontainers.image.ref.name", name.substr(name.rfind(':') + 1)}};
    top_.push_back(d);
  }
  std::string tar() const {
    TarBuilder t;
    t.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    t.file("index.json", index_json());
    for (const auto& [digest, data] : blobs_) t.file("blobs/sha256/" + digest.substr(7), data);
    return t.finish();
  }
  void write_dir(const std::string& dir) const {
    std::filesystem::create_directories(dir + "/blobs/sha256");
    write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    write_file(dir + "/index.json", index_json());
    for (const auto& [digest, data] : blobs_)
      write_file(dir + "/blobs/sha256/" + digest.substr(7), data);
  }

 private:
  json blob(const std::string& data, const std::string& media_type) {
    std::string digest = core::Sha256::digest_of(data);
    blobs_[digest] = data;
    return {{"mediaType", media_type}, {"digest", digest}, {"size", data.size()}};
  }
  std::string index_json() const {
    return json{{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", top_}}
        .dump();
  }
  std::map<std::string, std::string> blobs_;
  std::vector<json> top_;
};

// The architecture name of this machine in OCI terms.
inline std::string host_arch() {
  utsname u{};
  ::uname(&u);
  return std::string(u.machine) == "aarch64" ? "arm64" : "amd64";
}

// A busybox root filesystem layer (the host's busybox-static, a few applets linked, the usual
// empty top-level directories) as a tar.
inline std::string busybox_rootfs_tar() {
  TarBuilder t;
  auto busybox = core::read_file("/bin/busybox");
  t.dir("bin").file("bin/busybox", busybox.ok() ? *busybox : "", 0755);
  for (const char* app : {"sh", "echo", "sleep", "ps", "cat", "hostname", "ls", "id", "true"})
    t.symlink(std::string("bin/") + app, "busybox");
  for (const char* d : {"proc", "sys", "dev", "tmp", "etc"}) t.dir(d);
  return t.finish();
}

// A one-layer busybox image for this machine's architecture, as an OCI layout tar named `name`.
inline std::string busybox_image_tar(const std::string& name) {
  Layout layout;
  layout.name(layout.manifest(host_arch(), {make_layer(busybox_rootfs_tar(), "gzip")}), name);
  return layout.tar();
}

}  // namespace berth::test

// Differs (io.containerd.differ.v1.*): apply a layer blob onto mounts, and compute the layer that
// turns one tree into another. Both read and write content through the namespaced content store
// of the caller's RequestContext.
#pragma once

#include <berth/context.h>
#include <berth/mount.h>
#include <berth/plugin.h>

#include <map>
#include <string>
#include <vector>

namespace berth::diff {

// An OCI descriptor.
struct Descriptor {
  std::string media_type;
  std::string digest;
  std::int64_t size = 0;
  std::map<std::string, std::string> annotations;
};

inline constexpr std::string_view kMediaTypeOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeOciLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeOciLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kMediaTypeDockerLayer =
    "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
// The label the applier checks the uncompressed digest against, when present.
inline constexpr std::string_view kUncompressedLabel = "containerd.io/uncompressed";

class BERTH_API Applier {
 public:
  virtual ~Applier() = default;
  // Applies the layer `desc` onto the tree `mounts` describe. Returns the descriptor of the
  // uncompressed layer (digest = diffID). When desc carries the annotation
  // containerd.io/uncompressed (or `expected_diff_id` is set), a different diffID is an error and
  // the caller must discard the snapshot. Nothing is ever written outside the mounted tree.
  virtual Result<Descriptor> apply(const RequestContext& ctx, const Descriptor& desc,
                                   const std::vector<Mount>& mounts,
                                   std::string_view expected_diff_id = {}) = 0;
};

class BERTH_API Comparer {
 public:
  virtual ~Comparer() = default;
  // Writes the changes from `lower` to `upper` as a layer (with .wh. whiteouts) into the content
  // store under `ref`, labelled `labels`, and returns its descriptor. media_type: the tar or
  // tar+gzip layer type (empty: gzip).
  virtual Result<Descriptor> compare(const RequestContext& ctx, const std::vector<Mount>& lower,
                                     const std::vector<Mount>& upper, std::string_view media_type,
                                     std::string_view ref,
                                     const std::map<std::string, std::string>& labels) = 0;
};

class BERTH_API DifferPlugin : public virtual Plugin {
 public:
  virtual Applier& applier() = 0;
  virtual Comparer& comparer() = 0;
};

}  // namespace berth::diff

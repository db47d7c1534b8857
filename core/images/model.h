// The OCI image model (and Docker schema 2, which maps onto it): descriptors, platforms, index,
// manifest and config documents, chain IDs. Parsing is strict: a malformed or inconsistent
// document is refused with the field named ("manifest.layers[2].digest: ...").
#pragma once

#include <berth/diff.h>
#include <berth/result.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::images::model {

using diff::Descriptor;

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
bool is_index(std::string_view mt);
bool is_manifest(std::string_view mt);
bool is_config(std::string_view mt);
bool is_layer(std::string_view mt);
}  // namespace media_type

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string to_string() const;
  bool operator==(const Platform&) const = default;
};

// "linux/arm64/v8", "amd64" (os defaults to linux). Normalised (x86_64 -> amd64, aarch64 ->
// arm64, arm64/v8 -> arm64, armhf -> arm/v7, arm -> arm/v7, i386 -> 386).
Result<Platform> parse_platform(std::string_view spec);
Platform normalize(Platform p);
Platform host_platform();

// Which platforms an image for `wanted` may use, best first (containerd's fallbacks: amd64 ->
// 386; arm64 -> arm/v8..v5; arm/vN -> arm/v(N-1)..v5).
std::vector<Platform> compatible(const Platform& wanted);
// Rank of `candidate` in compatible(wanted); nullopt when it does not match.
std::optional<std::size_t> match_rank(const Platform& wanted, const Platform& candidate);

struct IndexEntry {
  Descriptor descriptor;
  std::optional<Platform> platform;
};
struct Index {
  std::string media_type;
  std::vector<IndexEntry> manifests;
  std::map<std::string, std::string> annotations;
};
struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};
struct Config {
  Platform platform;
  std::vector<std::string> diff_ids;
  std::string raw;  // the document as stored
};

Result<Index> parse_index(std::string_view json);
Result<Manifest> parse_manifest(std::string_view json);
Result<Config> parse_config(std::string_view json);
// The descriptor of an index entry best matching `wanted`; NotFound naming what is available.
Result<IndexEntry> select_manifest(const Index& index, const Platform& wanted);

// chainID(L0) = diffID(L0); chainID(L0..n) = sha256("<chainID(L0..n-1)> <diffID(Ln)>").
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);

// docker.io name normalisation: "busybox" -> "docker.io/library/busybox:latest",
// "me/app:1" -> "docker.io/me/app:1", "reg:5000/x" -> "reg:5000/x:latest"; digests kept.
Result<std::string> normalize_reference(std::string_view ref);

}  // namespace berth::images::model

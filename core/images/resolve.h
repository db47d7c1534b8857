// An image narrowed to one platform: indexes followed down to the best-matching manifest, and
// its config, read through a caller's blob reader (the CLI reads over the Content service, the
// daemon from its content store) so both resolve the same way.
#pragma once

#include <berth/result.h>

#include <functional>
#include <string>

#include "core/images/model.h"

namespace berth::images {

struct ResolvedImage {
  model::Descriptor manifest_descriptor;
  model::Manifest manifest;
  model::Config config;
};

// Reads a document blob by digest (bounded by the reader).
using BlobReader = std::function<Result<std::string>(const std::string& digest)>;

// Follows indexes (at most 8 deep) down to the manifest for `platform`; NotFound names the
// platforms available. Entries whose blobs are absent are not candidates.
Result<ResolvedImage> resolve_image(const BlobReader& read, const model::Descriptor& target,
                                    const model::Platform& platform);
// A manifest and its config; the config's diffIDs must match the manifest's layers.
Result<ResolvedImage> resolve_manifest(const BlobReader& read, const model::Descriptor& d);

}  // namespace berth::images

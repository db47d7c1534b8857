// Applying a layer tar (plain, gzip or zstd, as its media type says) to a directory, safely.
//
// Every path is resolved inside the root (openat2 RESOLVE_IN_ROOT): absolute names and symlinks
// met on the way stay within the tree; names with ".." components, whiteouts of "." or "..",
// oversized headers are refused with an error naming the entry. The diffID (sha256 of the
// uncompressed stream) is computed while applying.
//
// Only the decompressor the media type names is enabled (gzip or zstd, built into libarchive;
// never xz, bzip2, lz4 or an external program); a layer whose bytes are not compressed passes
// through as plain tar, as containerd accepts. The uncompressed size, each entry's size and the
// entry count are bounded (limits below): a bomb fails with ResourceExhausted naming the limit.
//
// Modes:
//   kNaive         the root is the complete tree (bind mount source, native snapshot, a mounted
//                  overlay): ".wh.x" deletes x, ".wh..wh..opq" empties the directory of
//                  everything this layer does not add.
//   kOverlayUpper  the root is an empty overlay upperdir over `lowerdirs`: whiteouts become
//                  0/0 character devices, opaque directories get trusted.overlay.opaque=y, and
//                  parent directories missing from the upper dir are created with the
//                  attributes they have in the lower layers.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace berth::plugins::differ {

struct ApplyLimits {
  std::int64_t max_bytes = std::int64_t{64} << 30;  // uncompressed tar stream
  std::int64_t max_entries = 4'000'000;
  bool sync = true;  // the differ's sync_layers: syncfs after each layer (see ApplyOptions)
};

struct ApplyOptions {
  enum class Mode { kNaive, kOverlayUpper } mode = Mode::kNaive;
  std::vector<std::string> lowerdirs;  // nearest first, for kOverlayUpper
  // The layer's media type; "" accepts gzip or zstd (detected), or plain tar.
  std::string media_type;
  ApplyLimits limits;
  // syncfs() the root's filesystem before returning: the layer's files are on disk before the
  // caller commits the snapshot (which a power loss must not leave pointing at lost data).
  bool sync = false;
};

// Which decompressor a layer media type names. InvalidArgument for a media type that is not a
// layer Berth can apply.
enum class Compression { kNone, kGzip, kZstd, kDetect };
Result<Compression> layer_compression(std::string_view media_type);

struct ApplyResult {
  std::string diff_id;
  std::int64_t uncompressed_size = 0;
};

// Reads compressed bytes: fills buf, returns the count (0 at the end).
using ReadFn = std::function<Result<std::size_t>(char* buf, std::size_t n)>;

// FailedPrecondition with message starting "overlay fallback:" means the overlay fast path met
// something it cannot do in an upper dir alone (a parent that is a symlink in a lower layer); the
// caller should clear the upper dir and apply through a mounted overlay instead.
Result<ApplyResult> apply_layer(const ReadFn& read, const std::string& root,
                                const ApplyOptions& options);

}  // namespace berth::plugins::differ

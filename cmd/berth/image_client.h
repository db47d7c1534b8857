// What the image commands (import, import-rootfs, export, unpack, check, mount) share: reading and
// writing small documents, labels, a lease held for the length of a command, resolving an image to
// the manifest of one platform, and unpacking its layers into a snapshotter the way containerd
// does (so images unpacked by either are found by the other).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cmd/berth/client.h"
#include "core/images/model.h"
#include "core/images/resolve.h"

namespace berth::cli {

namespace model = images::model;

nlohmann::json descriptor_json(const model::Descriptor& d);

// A whole (small) blob; refused above `limit` bytes.
Result<std::string> read_blob(Client& c, const std::string& digest,
                              std::size_t limit = 16 << 20);
// Writes a small document as content (labels set even when it existed) and returns its digest.
Result<std::string> put_bytes(Client& c, const std::string& data, const std::string& ref,
                              const std::map<std::string, std::string>& labels,
                              const std::string& lease);
// Sets (merges) labels on a blob.
Status label_content(Client& c, const std::string& digest,
                     const std::map<std::string, std::string>& labels, const std::string& lease);

// Removing a snapshot or a lease that is already gone is not an error (NotFound is success).
Status remove_snapshot(Client& c, const std::string& snapshotter, const std::string& key);
Status delete_lease(Client& c, const std::string& id);

// A lease that expires on its own after `ttl` (in case the command dies) and is deleted when the
// object goes away.
class CommandLease {
 public:
  static Result<CommandLease> create(Client& c, const std::string& prefix,
                                     std::chrono::seconds ttl = std::chrono::hours(1));
  CommandLease(CommandLease&& o) noexcept : c_(o.c_), id_(std::move(o.id_)) { o.id_.clear(); }
  CommandLease& operator=(CommandLease&&) = delete;
  ~CommandLease();
  const std::string& id() const { return id_; }

 private:
  CommandLease(Client& c, std::string id) : c_(c), id_(std::move(id)) {}
  Client& c_;
  std::string id_;
};

// The target of an image record.
Result<model::Descriptor> image_target(Client& c, const std::string& name);
// Creates the image record, or points an existing one at `target` (ctr's import semantics).
Status save_image(Client& c, const std::string& name, const model::Descriptor& target,
                  const std::string& lease);

using images::ResolvedImage;
// Follows indexes down to the manifest for `platform`; NotFound names the platforms available.
Result<ResolvedImage> resolve_image(Client& c, const model::Descriptor& target,
                                    const model::Platform& platform);

// Applies the layers not yet unpacked in `snapshotter` (one per chain ID, keyed
// "extract-<unique> <chainID>"), checks each diffID against the config, labels layers with
// containerd.io/uncompressed and the config with containerd.io/gc.ref.snapshot.<snapshotter>.
// `progress` is told about every layer ("applied" / "exists"). Returns the top chain ID.
using UnpackProgress =
    std::function<void(std::size_t index, const model::Descriptor& layer, std::string_view what)>;
Result<std::string> unpack(Client& c, const ResolvedImage& image, const std::string& snapshotter,
                           const std::string& lease, const UnpackProgress& progress = {});
// Whether every chain ID of the image exists in the snapshotter.
Result<bool> is_unpacked(Client& c, const ResolvedImage& image, const std::string& snapshotter);

// The platform from --platform, or the host's.
Result<model::Platform> platform_option(const std::string& spec);

}  // namespace berth::cli

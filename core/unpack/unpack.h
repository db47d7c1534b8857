// The one unpack: an image's layers applied to a snapshotter the way containerd does it, so an
// image unpacked by Berth is found by containerd and the other way round, whoever asked for it
// (a pull in the daemon, `images import`, `import-rootfs`, `images unpack`, the CRI).
//
// Per layer: the chain ID exists already → hold it in the lease, done. Else prepare
// "extract-<unique> <chainID>" on the parent chain, apply the blob (the differ reports the digest
// of what it unpacked), check it against the config's diffID, commit under the chain ID (losing
// a race to another unpack of the same layer is success), remove the key on any failure. The
// layer blob is labelled containerd.io/uncompressed=<diffID>, and the config of a fully unpacked
// image containerd.io/gc.ref.snapshot.<snapshotter>=<top chain ID> so the collector keeps the
// snapshots while the image exists.
//
// The stores are reached through `Stores`: the daemon implements it over its plugins, the CLI
// over the daemon's Snapshots/Diff/Content/Leases services — one sequence, two transports.
#pragma once

#include <berth/diff.h>
#include <berth/mount.h>
#include <berth/result.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace berth::unpack {

class Stores {
 public:
  virtual ~Stores() = default;
  // The snapshotter's name, for the gc.ref.snapshot label.
  virtual const std::string& snapshotter() const = 0;
  // OK if the (committed) snapshot exists, NotFound if not.
  virtual Status stat(const std::string& name) = 0;
  virtual Result<std::vector<Mount>> prepare(const std::string& key, const std::string& parent) = 0;
  // Applies a layer blob onto `mounts`; returns the digest of the uncompressed tar (its diffID).
  virtual Result<std::string> apply(const diff::Descriptor& layer,
                                    const std::vector<Mount>& mounts) = 0;
  virtual Status commit(const std::string& name, const std::string& key) = 0;
  virtual Status remove(const std::string& key) = 0;
  // Holds an existing snapshot in the caller's lease (nothing to do without one).
  virtual Status lease(const std::string& name) = 0;
  // Merges labels into a blob's.
  virtual Status label(const std::string& digest,
                       const std::map<std::string, std::string>& labels) = 0;
};

struct Layer {
  diff::Descriptor blob;
  std::string diff_id;  // from the image config; "" = learn it from the apply (import-rootfs)
};

enum class Step { kApplying, kApplied, kExisted };

struct Unpacked {
  std::string diff_id;
  std::string chain_id;
  Step step = Step::kApplied;  // kApplied or kExisted
};

using LayerProgress = std::function<void(Step)>;

// One layer on top of the chain `parent` ("" for the first).
Result<Unpacked> unpack_layer(Stores& stores, const Layer& layer, const std::string& parent,
                              const LayerProgress& progress = {});

// The label that keeps an unpacked image's snapshots: set on its config blob.
Status label_config(Stores& stores, const std::string& config_digest, const std::string& top_chain);

// Every layer in order, then the config label. Returns the top chain ID ("" for no layers).
using ImageProgress = std::function<void(std::size_t index, const Layer& layer, Step step)>;
Result<std::string> unpack_image(Stores& stores, const std::vector<Layer>& layers,
                                 const std::string& config_digest,
                                 const ImageProgress& progress = {});

// Whether the top chain of `diff_ids` exists (an image without layers counts as unpacked).
Result<bool> is_unpacked(Stores& stores, const std::vector<std::string>& diff_ids);

}  // namespace berth::unpack

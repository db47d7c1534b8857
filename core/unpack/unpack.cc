#include "core/unpack/unpack.h"

#include "core/digest.h"
#include "core/unique.h"

namespace berth::unpack {
namespace {

std::string chain_of(const std::string& parent, const std::string& diff_id) {
  return parent.empty() ? diff_id : core::Sha256::digest_of(parent + " " + diff_id);
}

}  // namespace

Result<Unpacked> unpack_layer(Stores& stores, const Layer& layer, const std::string& parent,
                              const LayerProgress& progress) {
  auto tell = [&](Step s) {
    if (progress) progress(s);
  };
  auto label_blob = [&](const std::string& diff_id) {
    return stores.label(layer.blob.digest, {{std::string(diff::kUncompressedLabel), diff_id}});
  };
  Unpacked out{layer.diff_id, "", Step::kApplied};
  if (!layer.diff_id.empty()) {
    out.chain_id = chain_of(parent, layer.diff_id);
    Status exists = stores.stat(out.chain_id);
    if (exists.ok()) {
      BERTH_RETURN_IF_ERROR(stores.lease(out.chain_id));
      BERTH_RETURN_IF_ERROR(label_blob(out.diff_id));
      out.step = Step::kExisted;
      tell(out.step);
      return out;
    }
    if (exists.code() != Code::kNotFound) return exists;
  }

  tell(Step::kApplying);
  // The key names the chain when it is known, so a reader of the snapshot list sees what is
  // being extracted (containerd's convention).
  std::string key = "extract-" + core::unique_part() + " " +
                    (out.chain_id.empty() ? layer.blob.digest : out.chain_id);
  BERTH_TRY(auto mounts, stores.prepare(key, parent));
  Status s;
  if (auto applied = stores.apply(layer.blob, mounts); !applied.ok()) {
    s = applied.status();
  } else if (!layer.diff_id.empty() && *applied != layer.diff_id) {
    s = Status(Code::kFailedPrecondition,
               fmt::format("layer {}: wrong diffID: the config says {}, the layer's content is {}",
                           layer.blob.digest, layer.diff_id, *applied));
  } else {
    out.diff_id = *applied;
    out.chain_id = chain_of(parent, out.diff_id);
    s = stores.commit(out.chain_id, key);
  }
  if (!s.ok()) {
    stores.remove(key).ignore();
    // Another unpack of the same layer won the race: its snapshot is as good as ours.
    if (s.code() != Code::kAlreadyExists) return s;
    BERTH_RETURN_IF_ERROR(stores.lease(out.chain_id));
  }
  BERTH_RETURN_IF_ERROR(label_blob(out.diff_id));
  tell(Step::kApplied);
  return out;
}

Status label_config(Stores& stores, const std::string& config_digest,
                    const std::string& top_chain) {
  return stores.label(config_digest,
                      {{"containerd.io/gc.ref.snapshot." + stores.snapshotter(), top_chain}});
}

Result<std::string> unpack_image(Stores& stores, const std::vector<Layer>& layers,
                                 const std::string& config_digest, const ImageProgress& progress) {
  std::string parent;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    BERTH_TRY(auto done, unpack_layer(stores, layers[i], parent, [&](Step s) {
                if (progress) progress(i, layers[i], s);
              }));
    parent = done.chain_id;
  }
  if (!parent.empty()) BERTH_RETURN_IF_ERROR(label_config(stores, config_digest, parent));
  return parent;
}

Result<bool> is_unpacked(Stores& stores, const std::vector<std::string>& diff_ids) {
  std::string chain;
  for (const auto& d : diff_ids) chain = chain_of(chain, d);
  if (chain.empty()) return true;
  Status s = stores.stat(chain);
  if (s.code() == Code::kNotFound) return false;
  BERTH_RETURN_IF_ERROR(s);
  return true;
}

}  // namespace berth::unpack

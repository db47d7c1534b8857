#include "core/images/resolve.h"

#include <optional>

namespace berth::images {
namespace {

// Depth-first over nested indexes; keeps the best-ranked match.
Status find_platform(const BlobReader& read, const model::Descriptor& d,
                     const model::Platform& wanted, std::optional<std::size_t>& best_rank,
                     std::optional<ResolvedImage>& best, std::vector<std::string>& seen,
                     int depth) {
  if (depth > 8) return invalid_argument("index {} nests more than 8 levels deep", d.digest);
  if (model::media_type::is_manifest(d.media_type)) {
    BERTH_TRY(auto r, resolve_manifest(read, d));
    seen.push_back(r.config.platform.to_string());
    auto rank = model::match_rank(wanted, r.config.platform);
    if (rank && (!best_rank || *rank < *best_rank)) {
      best_rank = rank;
      best = std::move(r);
    }
    return Status();
  }
  if (!model::media_type::is_index(d.media_type)) {
    return invalid_argument("{}: media type \"{}\" is neither an index nor a manifest", d.digest,
                            d.media_type);
  }
  BERTH_TRY(auto body, read(d.digest));
  auto idx = model::parse_index(body);
  if (!idx.ok()) return invalid_argument("index {}: {}", d.digest, idx.status().message());
  for (const auto& e : idx->manifests) {
    // An entry that states its platform is skipped without reading it when it cannot match.
    if (e.platform && model::media_type::is_manifest(e.descriptor.media_type) &&
        !model::match_rank(wanted, *e.platform)) {
      seen.push_back(e.platform->to_string());
      continue;
    }
    Status st = find_platform(read, e.descriptor, wanted, best_rank, best, seen, depth + 1);
    // Platforms whose blobs are absent (not imported or pulled) are simply not candidates.
    if (!st.ok() && st.code() != Code::kNotFound) return st;
  }
  return Status();
}

}  // namespace

Result<ResolvedImage> resolve_manifest(const BlobReader& read, const model::Descriptor& d) {
  BERTH_TRY(auto body, read(d.digest));
  auto m = model::parse_manifest(body);
  if (!m.ok()) return invalid_argument("manifest {}: {}", d.digest, m.status().message());
  BERTH_TRY(auto config_body, read(m->config.digest));
  auto config = model::parse_config(config_body);
  if (!config.ok())
    return invalid_argument("config {}: {}", m->config.digest, config.status().message());
  if (config->diff_ids.size() != m->layers.size()) {
    return invalid_argument("config {} lists {} diffIDs but its manifest has {} layers",
                            m->config.digest, config->diff_ids.size(), m->layers.size());
  }
  return ResolvedImage{d, std::move(*m), std::move(*config)};
}

Result<ResolvedImage> resolve_image(const BlobReader& read, const model::Descriptor& target,
                                    const model::Platform& platform) {
  std::optional<std::size_t> best_rank;
  std::optional<ResolvedImage> best;
  std::vector<std::string> seen;
  BERTH_RETURN_IF_ERROR(find_platform(read, target, platform, best_rank, best, seen, 0));
  if (!best) {
    std::string list;
    for (const auto& s : seen) list += (list.empty() ? "" : ", ") + s;
    return not_found("{}: no manifest for platform {} (available: {})", target.digest,
                     model::normalize(platform).to_string(), list.empty() ? "none" : list);
  }
  return std::move(*best);
}

}  // namespace berth::images

// Any bytes: parsing never crashes, and what parses is self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/images/model.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace berth::images::model;
  if (auto idx = parse_index(text); idx.ok()) {
    for (const auto& e : idx->manifests) {
      if (e.descriptor.size < 0) std::abort();
    }
    select_manifest(*idx, host_platform()).status().ignore();
  }
  if (auto m = parse_manifest(text); m.ok()) {
    for (const auto& l : m->layers) {
      if (!media_type::is_layer(l.media_type)) std::abort();
    }
  }
  if (auto c = parse_config(text); c.ok()) {
    if (chain_ids(c->diff_ids).size() != c->diff_ids.size()) std::abort();
  }
  normalize_reference(text).status().ignore();
  parse_platform(text).status().ignore();
  return 0;
}

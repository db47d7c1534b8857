// io.containerd.differ.v1.walking: applies layers onto snapshot mounts and writes diffs.
//
// Apply avoids mounting where it can: a bind mount is applied to its source directory, an
// active overlay straight into its upperdir (overlay whiteout form, no mount); anything else is
// mounted on a temporary directory under the plugin's state dir first.
#pragma once

#include <berth/diff.h>
#include <berth/metadata.h>

#include "plugins/differ/walking/apply.h"

namespace berth::plugins::differ {

class WalkingDiffer final : public diff::DifferPlugin, public diff::Applier, public diff::Comparer {
 public:
  WalkingDiffer(std::shared_ptr<metadata::MetadataStore> store, std::string state_dir,
                ApplyLimits limits = {})
      : store_(std::move(store)), state_(std::move(state_dir)), limits_(limits) {}

  diff::Applier& applier() override { return *this; }
  diff::Comparer& comparer() override { return *this; }

  Result<diff::Descriptor> apply(const RequestContext& ctx, const diff::Descriptor& desc,
                                 const std::vector<Mount>& mounts,
                                 std::string_view expected_diff_id) override;
  Result<diff::Descriptor> compare(const RequestContext& ctx, const std::vector<Mount>& lower,
                                   const std::vector<Mount>& upper, std::string_view media_type,
                                   std::string_view ref,
                                   const std::map<std::string, std::string>& labels) override;

 private:
  std::shared_ptr<metadata::MetadataStore> store_;
  std::string state_;
  ApplyLimits limits_;
};

}  // namespace berth::plugins::differ

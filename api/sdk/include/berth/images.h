// Image records: a name bound to a target descriptor (index or manifest) in a namespace.
#pragma once

#include <berth/context.h>
#include <berth/diff.h>
#include <berth/plugin.h>

#include <map>
#include <string>
#include <vector>

namespace berth::images {

struct Image {
  std::string name;
  std::map<std::string, std::string> labels;
  diff::Descriptor target;
  Timestamp created_at;
  Timestamp updated_at;
};

class BERTH_API Store {
 public:
  virtual ~Store() = default;
  virtual Result<Image> get(const RequestContext& ctx, std::string_view name) = 0;
  // Filters over name, target.digest, target.mediatype, labels.<key>.
  virtual Result<std::vector<Image>> list(const RequestContext& ctx,
                                          const std::vector<std::string>& filters) = 0;
  // AlreadyExists when the name is taken; InvalidArgument for a missing target digest.
  virtual Result<Image> create(const RequestContext& ctx, const Image& image) = 0;
  // Paths: labels, labels.<key>, target, annotations (none: labels and target).
  virtual Result<Image> update(const RequestContext& ctx, const Image& image,
                               const std::vector<std::string>& paths) = 0;
  virtual Status remove(const RequestContext& ctx, std::string_view name) = 0;
};

}  // namespace berth::images

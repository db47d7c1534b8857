#include "plugins/differ/walking/walking.h"

#include <filesystem>

#include "core/copy.h"
#include "core/fs.h"
#include "core/mount.h"
#include "plugins/differ/walking/apply.h"
#include "plugins/differ/walking/compare.h"

namespace berth::plugins::differ {
namespace {

std::optional<std::string> option_value(const Mount& m, std::string_view key) {
  for (const auto& o : m.options) {
    if (o.size() > key.size() && o.compare(0, key.size(), key) == 0 && o[key.size()] == '=') {
      return o.substr(key.size() + 1);
    }
  }
  return std::nullopt;
}

bool has_option(const Mount& m, std::string_view opt) {
  return std::find(m.options.begin(), m.options.end(), opt) != m.options.end();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

// Empties a directory (the upper dir of a failed fast-path apply) without removing it.
Status clear_dir(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    BERTH_RETURN_IF_ERROR(core::remove_tree(e.path().string()));
  }
  return Status();
}

}  // namespace

Result<diff::Descriptor> WalkingDiffer::apply(const RequestContext& ctx,
                                              const diff::Descriptor& desc,
                                              const std::vector<Mount>& mounts,
                                              std::string_view expected_diff_id) {
  if (mounts.empty()) return invalid_argument("apply of {}: no mounts given", desc.digest);
  BERTH_TRY(auto reader, store_->content()->reader(ctx, desc.digest));
  std::shared_ptr<content::ReaderAt> shared(std::move(reader));
  auto make_reader = [shared]() {
    auto offset = std::make_shared<std::int64_t>(0);
    return ReadFn([shared, offset](char* buf, std::size_t n) -> Result<std::size_t> {
      BERTH_TRY(auto got, shared->read_at(buf, n, *offset));
      *offset += static_cast<std::int64_t>(got);
      return got;
    });
  };

  if (auto c = layer_compression(desc.media_type); !c.ok())
    return c.status().with_context(fmt::format("apply layer {}", desc.digest));
  ApplyOptions naive;
  naive.media_type = desc.media_type;
  naive.limits = limits_;
  naive.sync = limits_.sync;
  Result<ApplyResult> result = Status(Code::kInternal, "not applied");
  const Mount& m = mounts.front();
  if (mounts.size() == 1 && (m.type == "bind" || m.type == "rbind")) {
    if (has_option(m, "ro"))
      return failed_precondition("apply of {}: the mount is read-only", desc.digest);
    result = apply_layer(make_reader(), m.source, naive);
  } else if (mounts.size() == 1 && m.type == "overlay" && option_value(m, "upperdir")) {
    ApplyOptions opts = naive;
    opts.mode = ApplyOptions::Mode::kOverlayUpper;
    if (auto lower = option_value(m, "lowerdir")) opts.lowerdirs = split(*lower, ':');
    std::string upper = *option_value(m, "upperdir");
    result = apply_layer(make_reader(), upper, opts);
    if (!result.ok() && result.status().message().rfind("overlay fallback:", 0) == 0) {
      BERTH_RETURN_IF_ERROR(clear_dir(upper));
      result = Status(Code::kUnavailable, "mount needed");
    }
  }
  if (!result.ok() &&
      (result.status().code() == Code::kInternal || result.status().code() == Code::kUnavailable) &&
      (result.status().message() == "not applied" || result.status().message() == "mount needed")) {
    BERTH_RETURN_IF_ERROR(core::make_dirs(state_ + "/mounts", 0700));
    auto tmp = core::TempDir::create("apply-");
    if (!tmp.ok()) return tmp.status();
    BERTH_TRY(auto mounted, core::ScopedMount::create(mounts, tmp->path()));
    result = apply_layer(make_reader(), tmp->path(), naive);
  }
  if (!result.ok()) return result.status().with_context(fmt::format("apply layer {}", desc.digest));
  std::string expected(expected_diff_id);
  if (expected.empty()) {
    if (auto it = desc.annotations.find(std::string(diff::kUncompressedLabel));
        it != desc.annotations.end()) {
      expected = it->second;
    }
  }
  if (!expected.empty() && expected != result->diff_id) {
    return failed_precondition("apply layer {}: its uncompressed digest is {}, but {} was expected",
                               desc.digest, result->diff_id, expected);
  }
  diff::Descriptor out;
  out.media_type = std::string(diff::kMediaTypeOciLayer);
  out.digest = result->diff_id;
  out.size = result->uncompressed_size;
  return out;
}

Result<diff::Descriptor> WalkingDiffer::compare(const RequestContext& ctx,
                                                const std::vector<Mount>& lower,
                                                const std::vector<Mount>& upper,
                                                std::string_view media_type, std::string_view ref,
                                                const std::map<std::string, std::string>& labels) {
  bool gzip = media_type.empty() || media_type == diff::kMediaTypeOciLayerGzip ||
              media_type == diff::kMediaTypeDockerLayerGzip;
  if (!gzip && media_type != diff::kMediaTypeOciLayer &&
      media_type != diff::kMediaTypeDockerLayer) {
    return invalid_argument("diff: unsupported media type \"{}\"", media_type);
  }
  auto ldir = core::TempDir::create("diff-lower-");
  auto udir = core::TempDir::create("diff-upper-");
  if (!ldir.ok()) return ldir.status();
  if (!udir.ok()) return udir.status();
  std::optional<core::ScopedMount> lm;
  if (!lower.empty()) {
    auto ro = lower;
    BERTH_TRY(auto m, core::ScopedMount::create(ro, ldir->path()));
    lm.emplace(std::move(m));
  }
  BERTH_TRY(auto um, core::ScopedMount::create(upper, udir->path()));
  std::string r =
      ref.empty()
          ? fmt::format("diff-{}", std::chrono::system_clock::now().time_since_epoch().count())
          : std::string(ref);
  BERTH_TRY(auto writer, store_->content()->writer(ctx, {.ref = r}));
  BERTH_TRY(auto written, write_diff(ldir->path(), udir->path(), gzip, *writer));
  std::map<std::string, std::string> all = labels;
  all[std::string(diff::kUncompressedLabel)] = written.diff_id;
  Status st = writer->commit(0, "", all);
  if (!st.ok() && st.code() != Code::kAlreadyExists) return st;
  diff::Descriptor out;
  out.media_type =
      gzip ? std::string(diff::kMediaTypeOciLayerGzip) : std::string(diff::kMediaTypeOciLayer);
  out.digest = writer->digest();
  out.size = written.size;
  return out;
}

}  // namespace berth::plugins::differ

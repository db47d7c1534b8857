#include "plugins/metadata/rocksdb/image_store.h"

#include <berth/content.h>
#include <berth/identifiers.h>

#include <nlohmann/json.hpp>

#include "core/filters.h"
#include "core/time.h"

namespace berth::plugins::metadata {
namespace {

using berth::images::Image;
using nlohmann::json;

std::string encode(const Image& i) {
  return json{{"target",
               {{"mediatype", i.target.media_type},
                {"digest", i.target.digest},
                {"size", i.target.size},
                {"annotations", i.target.annotations}}},
              {"labels", i.labels},
              {"created", core::to_unix_nanos(i.created_at)},
              {"updated", core::to_unix_nanos(i.updated_at)}}
      .dump();
}

Result<Image> decode(std::string_view name, std::string_view v) {
  try {
    auto j = json::parse(v);
    Image i;
    i.name = std::string(name);
    const auto& t = j.at("target");
    i.target.media_type = t.value("mediatype", std::string());
    i.target.digest = t.value("digest", std::string());
    i.target.size = t.value("size", std::int64_t{0});
    i.target.annotations = t.value("annotations", std::map<std::string, std::string>{});
    i.labels = j.value("labels", std::map<std::string, std::string>{});
    i.created_at = core::from_unix_nanos(j.value("created", std::int64_t{0}));
    i.updated_at = core::from_unix_nanos(j.value("updated", std::int64_t{0}));
    return i;
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss, fmt::format("image \"{}\": corrupt record: {}", name, e.what()));
  }
}

Status validate(const Image& i) {
  if (i.name.empty()) return invalid_argument("image name must not be empty");
  if (i.target.media_type.empty())
    return invalid_argument("image \"{}\": target media type is required", i.name);
  BERTH_RETURN_IF_ERROR(content::validate_digest(i.target.digest)
                            .with_context(fmt::format("image \"{}\" target", i.name)));
  if (i.target.size < 0) return invalid_argument("image \"{}\": target size is negative", i.name);
  return validate_labels(i.labels);
}

}  // namespace

Status ImageStore::check(const RequestContext& ctx, std::string_view name) const {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_RETURN_IF_ERROR(validate_identifier(ctx.ns));
  if (name.empty()) return invalid_argument("image name must not be empty");
  return Status();
}

Result<Image> ImageStore::get(const RequestContext& ctx, std::string_view name) {
  BERTH_RETURN_IF_ERROR(check(ctx, name));
  BERTH_TRY(auto v, db_.read("images", RocksStore::key(ctx.ns, name)));
  if (!v) return not_found("image \"{}\" not found in namespace \"{}\"", name, ctx.ns);
  return decode(name, *v);
}

Result<std::vector<Image>> ImageStore::list(const RequestContext& ctx,
                                            const std::vector<std::string>& filters) {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::vector<Image> out;
  BERTH_RETURN_IF_ERROR(
      db_.scan("images", ctx.ns, [&](std::string_view name, std::string_view v) -> Status {
        BERTH_TRY(auto i, decode(name, v));
        bool match =
            filter.match([&](const std::vector<std::string>& p) -> std::optional<std::string> {
              if (p.size() == 1 && p[0] == "name") return i.name;
              if (p.size() == 2 && p[0] == "target" && p[1] == "digest") return i.target.digest;
              if (p.size() == 2 && p[0] == "target" && p[1] == "mediatype")
                return i.target.media_type;
              return label_field(i.labels, p);
            });
        if (match) out.push_back(std::move(i));
        return Status();
      }));
  return out;
}

Result<Image> ImageStore::create(const RequestContext& ctx, const Image& image) {
  BERTH_RETURN_IF_ERROR(check(ctx, image.name));
  BERTH_RETURN_IF_ERROR(validate(image));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, image.name);
  std::lock_guard lock(db_.key_lock("images", k));
  BERTH_TRY(auto existing, db_.read("images", k));
  if (existing) return already_exists("image \"{}\" already exists", image.name);
  Image i = image;
  i.created_at = i.updated_at = std::chrono::system_clock::now();
  rocksdb::WriteBatch batch;
  BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
  batch.Put(db_.family("images"), k, encode(i));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  return i;
}

Result<Image> ImageStore::update(const RequestContext& ctx, const Image& image,
                                 const std::vector<std::string>& paths) {
  BERTH_RETURN_IF_ERROR(check(ctx, image.name));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, image.name);
  std::lock_guard lock(db_.key_lock("images", k));
  BERTH_TRY(auto cur, get(ctx, image.name));
  if (paths.empty()) {
    cur.labels = image.labels;
    cur.target = image.target;
  }
  for (const auto& p : paths) {
    if (apply_label_path(cur.labels, image.labels, p)) {
      continue;
    } else if (p == "target") {
      cur.target = image.target;
    } else if (p == "annotations") {
      cur.target.annotations = image.target.annotations;
    } else {
      return invalid_argument("image \"{}\": cannot update field \"{}\"", image.name, p);
    }
  }
  BERTH_RETURN_IF_ERROR(validate(cur));
  cur.updated_at = std::chrono::system_clock::now();
  rocksdb::WriteBatch batch;
  batch.Put(db_.family("images"), k, encode(cur));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);  // a target change can release content
  return cur;
}

Status ImageStore::remove(const RequestContext& ctx, std::string_view name) {
  BERTH_RETURN_IF_ERROR(check(ctx, name));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, name);
  std::lock_guard lock(db_.key_lock("images", k));
  BERTH_TRY(auto v, db_.read("images", k));
  if (!v) return not_found("image \"{}\" not found in namespace \"{}\"", name, ctx.ns);
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("images"), k);
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);
  return Status();
}

}  // namespace berth::plugins::metadata

#include "plugins/metadata/rocksdb/container_store.h"

#include <berth/identifiers.h>
#include <berth/labels.h>

#include <nlohmann/json.hpp>

#include "core/filters.h"
#include "core/time.h"

namespace berth::plugins::metadata {
namespace {

using berth::containers::Any;
using berth::containers::Container;
using nlohmann::json;

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

Result<std::string> unhex(std::string_view h) {
  if (h.size() % 2) return Status(Code::kDataLoss, "odd hex length");
  std::string out;
  out.reserve(h.size() / 2);
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < h.size(); i += 2) {
    int a = val(h[i]), b = val(h[i + 1]);
    if (a < 0 || b < 0) return Status(Code::kDataLoss, "bad hex");
    out.push_back(static_cast<char>(a * 16 + b));
  }
  return out;
}

json any_json(const Any& a) { return {{"type_url", a.type_url}, {"value", hex(a.value)}}; }
Result<Any> any_from(const json& j) {
  Any a;
  a.type_url = j.value("type_url", std::string());
  BERTH_TRY(a.value, unhex(j.value("value", std::string())));
  return a;
}

std::string encode(const Container& c) {
  json j = {{"image", c.image},
            {"runtime", c.runtime_name},
            {"snapshotter", c.snapshotter},
            {"snapshot_key", c.snapshot_key},
            {"labels", c.labels},
            {"created", core::to_unix_nanos(c.created_at)},
            {"updated", core::to_unix_nanos(c.updated_at)}};
  if (c.runtime_options) j["runtime_options"] = any_json(*c.runtime_options);
  if (c.spec) j["spec"] = any_json(*c.spec);
  json ext = json::object();
  for (const auto& [k, v] : c.extensions) ext[k] = any_json(v);
  j["extensions"] = ext;
  return j.dump();
}

Result<Container> decode(std::string_view id, std::string_view v) {
  try {
    auto j = json::parse(v);
    Container c;
    c.id = std::string(id);
    c.image = j.value("image", std::string());
    c.runtime_name = j.value("runtime", std::string());
    c.snapshotter = j.value("snapshotter", std::string());
    c.snapshot_key = j.value("snapshot_key", std::string());
    c.labels = j.value("labels", std::map<std::string, std::string>{});
    c.created_at = core::from_unix_nanos(j.value("created", std::int64_t{0}));
    c.updated_at = core::from_unix_nanos(j.value("updated", std::int64_t{0}));
    if (j.contains("runtime_options")) {
      BERTH_TRY(c.runtime_options, any_from(j["runtime_options"]));
    }
    if (j.contains("spec")) {
      BERTH_TRY(c.spec, any_from(j["spec"]));
    }
    // Bound to a local: items() of the temporary j.value() returns would dangle in the loop.
    const json extensions = j.value("extensions", json::object());
    for (const auto& [k, e] : extensions.items()) {
      BERTH_TRY(c.extensions[k], any_from(e));
    }
    return c;
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss, fmt::format("container \"{}\": corrupt record: {}", id, e.what()));
  }
}

Status validate(const Container& c) {
  BERTH_RETURN_IF_ERROR(validate_identifier(c.id).with_context("container id"));
  if (c.runtime_name.empty())
    return invalid_argument("container \"{}\": runtime name is required", c.id);
  if (!c.snapshot_key.empty() && c.snapshotter.empty())
    return invalid_argument("container \"{}\": a snapshot key needs a snapshotter", c.id);
  for (const auto& [k, v] : c.extensions) {
    if (k.empty()) return invalid_argument("container \"{}\": extension with an empty name", c.id);
  }
  return validate_labels(c.labels);
}

}  // namespace

Status ContainerStore::check(const RequestContext& ctx, std::string_view id) const {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_RETURN_IF_ERROR(validate_identifier(ctx.ns));
  if (id.empty()) return invalid_argument("container id must not be empty");
  return Status();
}

Result<Container> ContainerStore::get(const RequestContext& ctx, std::string_view id) {
  BERTH_RETURN_IF_ERROR(check(ctx, id));
  BERTH_TRY(auto v, db_.read("containers", RocksStore::key(ctx.ns, id)));
  if (!v) return not_found("container \"{}\" in namespace \"{}\": not found", id, ctx.ns);
  return decode(id, *v);
}

Result<std::vector<Container>> ContainerStore::list(const RequestContext& ctx,
                                                    const std::vector<std::string>& filters) {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::vector<Container> out;
  BERTH_RETURN_IF_ERROR(
      db_.scan("containers", ctx.ns, [&](std::string_view id, std::string_view v) -> Status {
        BERTH_TRY(auto c, decode(id, v));
        bool match =
            filter.match([&](const std::vector<std::string>& p) -> std::optional<std::string> {
              if (p.size() == 1 && p[0] == "id") return c.id;
              if (p.size() == 1 && p[0] == "image") return c.image;
              if (p.size() == 1 && p[0] == "snapshotter") return c.snapshotter;
              if (p.size() == 2 && p[0] == "runtime" && p[1] == "name") return c.runtime_name;
              return label_field(c.labels, p);
            });
        if (match) out.push_back(std::move(c));
        return Status();
      }));
  return out;
}

Result<Container> ContainerStore::create(const RequestContext& ctx, const Container& in) {
  BERTH_RETURN_IF_ERROR(check(ctx, in.id));
  BERTH_RETURN_IF_ERROR(validate(in));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, in.id);
  std::lock_guard lock(db_.key_lock("containers", k));
  BERTH_TRY(auto existing, db_.read("containers", k));
  if (existing) return already_exists("container \"{}\" already exists", in.id);
  Container c = in;
  c.created_at = c.updated_at = std::chrono::system_clock::now();
  rocksdb::WriteBatch batch;
  BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
  batch.Put(db_.family("containers"), k, encode(c));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  return c;
}

Result<Container> ContainerStore::update(const RequestContext& ctx, const Container& in,
                                         const std::vector<std::string>& paths) {
  BERTH_RETURN_IF_ERROR(check(ctx, in.id));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, in.id);
  std::lock_guard lock(db_.key_lock("containers", k));
  BERTH_TRY(auto cur, get(ctx, in.id));
  // containerd's rule: the runtime and snapshotter cannot change once set.
  if (!in.runtime_name.empty() && in.runtime_name != cur.runtime_name && paths.empty())
    return invalid_argument("container \"{}\": runtime cannot be changed", in.id);
  if (!in.snapshotter.empty() && in.snapshotter != cur.snapshotter && paths.empty())
    return invalid_argument("container \"{}\": snapshotter cannot be changed", in.id);
  if (paths.empty()) {
    cur.labels = in.labels;
    cur.image = in.image;
    cur.spec = in.spec;
    cur.snapshot_key = in.snapshot_key;
    cur.extensions = in.extensions;
  }
  for (const auto& p : paths) {
    if (apply_label_path(cur.labels, in.labels, p)) continue;
    if (p == "image") {
      cur.image = in.image;
    } else if (p == "spec") {
      cur.spec = in.spec;
    } else if (p == "snapshotkey") {
      cur.snapshot_key = in.snapshot_key;
    } else if (p == "extensions") {
      cur.extensions = in.extensions;
    } else if (p.rfind("extensions.", 0) == 0) {
      std::string key = p.substr(11);
      if (auto it = in.extensions.find(key); it != in.extensions.end()) cur.extensions[key] = it->second;
      else cur.extensions.erase(key);
    } else if (p == "runtime" || p == "snapshotter") {
      return invalid_argument("container \"{}\": {} cannot be changed", in.id, p);
    } else {
      return invalid_argument("container \"{}\": cannot update field \"{}\"", in.id, p);
    }
  }
  BERTH_RETURN_IF_ERROR(validate(cur));
  cur.updated_at = std::chrono::system_clock::now();
  rocksdb::WriteBatch batch;
  batch.Put(db_.family("containers"), k, encode(cur));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);
  return cur;
}

Status ContainerStore::remove(const RequestContext& ctx, std::string_view id) {
  BERTH_RETURN_IF_ERROR(check(ctx, id));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, id);
  std::lock_guard lock(db_.key_lock("containers", k));
  BERTH_TRY(auto v, db_.read("containers", k));
  if (!v) return not_found("container \"{}\" in namespace \"{}\": not found", id, ctx.ns);
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("containers"), k);
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);  // its snapshot may be garbage now
  return Status();
}

}  // namespace berth::plugins::metadata

#include "plugins/metadata/rocksdb/lease_store.h"

#include <berth/content.h>
#include <berth/identifiers.h>

#include "core/filters.h"
#include "core/time.h"

namespace berth::plugins::metadata {

using berth::leases::Lease;
using berth::leases::Resource;

Status validate_resource(const Resource& r) {
  if (r.id.empty()) return invalid_argument("lease resource needs an id");
  if (r.type == "content") return content::validate_digest(r.id);
  if (r.type == "ingests") return Status();
  if (r.type.rfind("snapshots/", 0) == 0 && r.type.size() > 10) return Status();
  return invalid_argument(
      "lease resource type \"{}\" is not content, ingests or snapshots/<snapshotter>", r.type);
}

Status LeaseStore::check(const RequestContext& ctx) const {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  return validate_identifier(ctx.ns);
}

Status LeaseStore::require_lease(const RequestContext& ctx, std::string_view id) {
  BERTH_TRY(auto v, db_.read("leases", RocksStore::key(ctx.ns, id)));
  if (!v) return not_found("lease \"{}\" not found in namespace \"{}\"", id, ctx.ns);
  return Status();
}

Result<Lease> LeaseStore::create(const RequestContext& ctx, const Lease& lease) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  // containerd accepts any non-empty lease id (ctr images mount uses the mount path), so only
  // what would break the key layout is refused.
  if (lease.id.empty()) return invalid_argument("lease id must not be empty");
  if (lease.id.find('\0') != std::string::npos)
    return invalid_argument("lease id contains a NUL byte");
  if (lease.id.size() > 1024)
    return invalid_argument("lease id is {} bytes long (limit 1024)", lease.id.size());
  BERTH_RETURN_IF_ERROR(validate_labels(lease.labels));
  std::optional<Timestamp> expires;
  if (auto it = lease.labels.find(std::string(berth::leases::kExpireLabel));
      it != lease.labels.end()) {
    auto t = core::parse_rfc3339(it->second);
    if (!t.ok())
      return invalid_argument("label {}: {}", berth::leases::kExpireLabel, t.status().message());
    expires = *t;
  }
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, lease.id);
  std::lock_guard lock(db_.key_lock("leases", k));
  BERTH_TRY(auto existing, db_.read("leases", k));
  if (existing) return already_exists("lease \"{}\" already exists", lease.id);
  LeaseRecord r;
  r.created = core::to_unix_nanos(std::chrono::system_clock::now());
  r.labels = lease.labels;
  rocksdb::WriteBatch batch;
  BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
  batch.Put(db_.family("leases"), k, encode(r));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false, expires);
  Lease out = lease;
  out.created_at = core::from_unix_nanos(r.created);
  return out;
}

Status LeaseStore::remove(const RequestContext& ctx, std::string_view id) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, id);
  std::lock_guard lock(db_.key_lock("leases", k));
  BERTH_RETURN_IF_ERROR(require_lease(ctx, id));
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("leases"), k);
  std::string prefix = k + std::string(1, '\0');
  batch.DeleteRange(db_.family("lease_resources"), prefix, prefix + std::string(1, '\xff'));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);
  return Status();
}

Result<std::vector<Lease>> LeaseStore::list(const RequestContext& ctx,
                                            const std::vector<std::string>& filters) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::vector<Lease> out;
  BERTH_RETURN_IF_ERROR(
      db_.scan("leases", ctx.ns, [&](std::string_view id, std::string_view v) -> Status {
        BERTH_TRY(auto r, decode_lease(v));
        Lease l;
        l.id = std::string(id);
        l.created_at = core::from_unix_nanos(r.created);
        l.labels = r.labels;
        bool match =
            filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
              if (path.size() == 1 && path[0] == "id") return l.id;
              return label_field(l.labels, path);
            });
        if (match) out.push_back(std::move(l));
        return Status();
      }));
  return out;
}

Status LeaseStore::change_resource(const RequestContext& ctx, std::string_view lease,
                                   const Resource& r, bool add) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_RETURN_IF_ERROR(validate_resource(r));
  std::shared_lock gc(db_.gc_lock());
  BERTH_RETURN_IF_ERROR(require_lease(ctx, lease));
  rocksdb::WriteBatch batch;
  std::string k = RocksStore::lease_resource_key(ctx.ns, lease, r.type, r.id);
  if (add) {
    batch.Put(db_.family("lease_resources"), k, "");
  } else {
    batch.Delete(db_.family("lease_resources"), k);
  }
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(!add);  // releasing a resource can make it garbage
  return Status();
}

Status LeaseStore::add_resource(const RequestContext& ctx, std::string_view lease,
                                const Resource& r) {
  return change_resource(ctx, lease, r, true);
}

Status LeaseStore::delete_resource(const RequestContext& ctx, std::string_view lease,
                                   const Resource& r) {
  return change_resource(ctx, lease, r, false);
}

Result<std::vector<Resource>> LeaseStore::list_resources(const RequestContext& ctx,
                                                         std::string_view lease) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_RETURN_IF_ERROR(require_lease(ctx, lease));
  std::vector<Resource> out;
  std::string lease_prefix = std::string(lease) + std::string(1, '\0');
  BERTH_RETURN_IF_ERROR(db_.scan(
      "lease_resources", ctx.ns,
      [&](std::string_view k, std::string_view) {
        std::string_view rest = k.substr(lease_prefix.size());
        auto sep = rest.find('\0');
        if (sep == std::string_view::npos) return Status();
        out.push_back({std::string(rest.substr(sep + 1)), std::string(rest.substr(0, sep))});
        return Status();
      },
      lease_prefix));
  return out;
}

}  // namespace berth::plugins::metadata

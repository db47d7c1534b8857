#include "plugins/metadata/rocksdb/content_view.h"

#include <berth/identifiers.h>

#include <atomic>

#include "core/filters.h"
#include "core/time.h"

namespace berth::plugins::metadata {
namespace {

using content::Info;
using content::IngestStatus;

Info to_info(std::string_view digest, const ContentRecord& r) {
  Info i;
  i.digest = std::string(digest);
  i.size = r.size;
  i.created_at = core::from_unix_nanos(r.created);
  i.updated_at = core::from_unix_nanos(r.updated);
  i.labels = r.labels;
  return i;
}

std::int64_t now_nanos() { return core::to_unix_nanos(std::chrono::system_clock::now()); }

// Backend refs: "<ns>/<unique>/<ref>", unique per process start and call, so the same ref in two
// namespaces (or twice in a row) never shares backend state by accident.
std::string make_backend_ref(std::string_view ns, std::string_view ref) {
  static std::atomic<std::uint64_t> seq{0};
  return fmt::format("{}/{}-{}/{}", ns, now_nanos(), seq.fetch_add(1), ref);
}

}  // namespace

Status ContentView::check(const RequestContext& ctx) const {
  if (ctx.ns.empty()) return failed_precondition("namespace is required");
  return validate_identifier(ctx.ns);
}

Result<content::Store*> ContentView::backend() const {
  if (!db_.options().backend) return failed_precondition("no content store backend is loaded");
  return db_.options().backend.get();
}

Result<Info> ContentView::info(const RequestContext& ctx, std::string_view digest) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_RETURN_IF_ERROR(content::validate_digest(digest));
  BERTH_TRY(auto v, db_.read("content", RocksStore::key(ctx.ns, digest)));
  if (!v) return not_found("content {} not found in namespace \"{}\"", digest, ctx.ns);
  BERTH_TRY(auto r, decode_content(*v));
  return to_info(digest, r);
}

Result<Info> ContentView::update(const RequestContext& ctx, const Info& info,
                                 const std::vector<std::string>& paths) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_RETURN_IF_ERROR(content::validate_digest(info.digest));
  BERTH_RETURN_IF_ERROR(validate_labels(info.labels));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, info.digest);
  std::lock_guard lock(db_.key_lock("content", k));
  BERTH_TRY(auto v, db_.read("content", k));
  if (!v) return not_found("content {} not found in namespace \"{}\"", info.digest, ctx.ns);
  BERTH_TRY(auto r, decode_content(*v));
  BERTH_RETURN_IF_ERROR(
      update_labels(r.labels, info.labels, paths, fmt::format("content {}", info.digest)));
  BERTH_RETURN_IF_ERROR(validate_labels(r.labels));
  r.updated = now_nanos();
  rocksdb::WriteBatch batch;
  batch.Put(db_.family("content"), k, encode(r));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  return to_info(info.digest, r);
}

Status ContentView::walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                         const content::WalkFn& fn) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  return db_.scan(
      "content", ctx.ns, [&](std::string_view digest, std::string_view value) -> Status {
        BERTH_TRY(auto r, decode_content(value));
        Info info = to_info(digest, r);
        bool match =
            filter.match([&](const auto& path) { return content::info_field(info, path); });
        return match ? fn(info) : Status();
      });
}

Status ContentView::remove(const RequestContext& ctx, std::string_view digest) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_RETURN_IF_ERROR(content::validate_digest(digest));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, digest);
  std::lock_guard lock(db_.key_lock("content", k));
  BERTH_TRY(auto v, db_.read("content", k));
  if (!v) return not_found("content {} not found in namespace \"{}\"", digest, ctx.ns);
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("content"), k);
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  // The bytes go when the collector finds no namespace referencing them.
  db_.notify_mutation(true);
  return Status();
}

Result<std::unique_ptr<content::ReaderAt>> ContentView::reader(const RequestContext& ctx,
                                                               std::string_view digest) {
  BERTH_TRY(auto info, this->info(ctx, digest));
  BERTH_TRY(auto* b, backend());
  return b->reader(ctx, digest);
}

Result<IngestStatus> ContentView::status(const RequestContext& ctx, std::string_view ref) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_TRY(auto v, db_.read("ingests", RocksStore::key(ctx.ns, ref)));
  if (!v) return not_found("ingest \"{}\" not found in namespace \"{}\"", ref, ctx.ns);
  BERTH_TRY(auto r, decode_ingest(*v));
  BERTH_TRY(auto* b, backend());
  auto s = b->status(ctx, r.backend_ref);
  if (!s.ok() && s.status().code() == Code::kNotFound) {
    // Recorded but never started in the backend (or lost): nothing written yet.
    IngestStatus empty;
    empty.ref = std::string(ref);
    empty.expected = r.expected;
    return empty;
  }
  if (!s.ok()) return s.status();
  s->ref = std::string(ref);
  return s;
}

Result<std::vector<IngestStatus>> ContentView::list_statuses(
    const RequestContext& ctx, const std::vector<std::string>& filters) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::vector<std::string> refs;
  BERTH_RETURN_IF_ERROR(db_.scan("ingests", ctx.ns, [&](std::string_view ref, std::string_view) {
    refs.emplace_back(ref);
    return Status();
  }));
  std::vector<IngestStatus> out;
  for (const auto& ref : refs) {
    auto s = status(ctx, ref);
    if (!s.ok()) continue;
    bool match =
        filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
          if (path.size() == 1 && path[0] == "ref") return s->ref;
          return std::nullopt;
        });
    if (match) out.push_back(std::move(*s));
  }
  return out;
}

Status ContentView::abort(const RequestContext& ctx, std::string_view ref) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  std::shared_lock gc(db_.gc_lock());
  std::string k = RocksStore::key(ctx.ns, ref);
  std::lock_guard lock(db_.key_lock("ingests", k));
  BERTH_TRY(auto v, db_.read("ingests", k));
  if (!v) return not_found("ingest \"{}\" not found in namespace \"{}\"", ref, ctx.ns);
  BERTH_TRY(auto r, decode_ingest(*v));
  BERTH_TRY(auto* b, backend());
  Status st = b->abort(ctx, r.backend_ref);
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  rocksdb::WriteBatch batch;
  batch.Delete(db_.family("ingests"), k);
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(true);
  return Status();
}

Status ContentView::link(const RequestContext& ctx, std::string_view digest, std::int64_t size,
                         const Labels& labels, std::string_view ingest_ref_to_drop) {
  std::string k = RocksStore::key(ctx.ns, digest);
  std::lock_guard lock(db_.key_lock("content", k));
  BERTH_TRY(auto existing, db_.read("content", k));
  rocksdb::WriteBatch batch;
  if (!ingest_ref_to_drop.empty()) {
    batch.Delete(db_.family("ingests"), RocksStore::key(ctx.ns, ingest_ref_to_drop));
  }
  BERTH_RETURN_IF_ERROR(db_.attach_to_lease(batch, ctx, "content", digest));
  if (!existing) {
    BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
    ContentRecord r;
    r.size = size;
    r.created = r.updated = now_nanos();
    r.labels = labels;
    batch.Put(db_.family("content"), k, encode(r));
  }
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false);
  if (existing)
    return already_exists("content {} already exists in namespace \"{}\"", digest, ctx.ns);
  return Status();
}

// Wraps a backend writer: the user's ref in status(), and a commit that records the blob in the
// namespace (and the lease) in the same batch that drops the ingest record.
class ContentView::NsWriter final : public content::Writer {
 public:
  NsWriter(ContentView& view, RequestContext ctx, std::string ref,
           std::unique_ptr<content::Writer> inner)
      : view_(view), ctx_(std::move(ctx)), ref_(std::move(ref)), inner_(std::move(inner)) {}

  Status write(std::string_view data) override { return inner_->write(data); }
  IngestStatus status() const override {
    auto s = inner_->status();
    s.ref = ref_;
    return s;
  }
  std::string digest() const override { return inner_->digest(); }
  Status truncate(std::int64_t size) override { return inner_->truncate(size); }

  Status commit(std::int64_t size, std::string_view expected, const Labels& labels) override {
    BERTH_RETURN_IF_ERROR(validate_labels(labels));
    std::shared_lock gc(view_.db_.gc_lock());
    std::int64_t written = inner_->status().offset;
    std::string digest = inner_->digest();
    Status st = inner_->commit(size, expected, labels);
    if (!st.ok() && st.code() != Code::kAlreadyExists) {
      // Speak of the client's ref, not the backend's.
      std::string msg = st.message();
      std::string backend_ref = inner_->status().ref;
      for (auto pos = msg.find(backend_ref); pos != std::string::npos && !backend_ref.empty();
           pos = msg.find(backend_ref, pos + ref_.size())) {
        msg.replace(pos, backend_ref.size(), ref_);
      }
      return Status(st.code(), msg);
    }
    return view_.link(ctx_, digest, written, labels, ref_);
  }

 private:
  ContentView& view_;
  RequestContext ctx_;
  std::string ref_;
  std::unique_ptr<content::Writer> inner_;
};

Result<std::unique_ptr<content::Writer>> ContentView::writer(
    const RequestContext& ctx, const content::WriterOptions& options) {
  BERTH_RETURN_IF_ERROR(check(ctx));
  if (options.ref.empty()) return invalid_argument("an ingest ref is required");
  BERTH_TRY(auto* b, backend());
  std::shared_lock gc(db_.gc_lock());
  if (!options.expected.empty()) {
    BERTH_RETURN_IF_ERROR(content::validate_digest(options.expected));
    BERTH_TRY(auto existing, db_.read("content", RocksStore::key(ctx.ns, options.expected)));
    if (existing) return already_exists("content {} already exists", options.expected);
    if (db_.options().content_sharing == SharingPolicy::kShared) {
      // Another namespace has the bytes: link them here instead of receiving them again.
      auto binfo = b->info(ctx, options.expected);
      if (binfo.ok() && (options.total == 0 || options.total == binfo->size)) {
        Status st = link(ctx, options.expected, binfo->size, {}, "");
        if (st.ok()) return already_exists("content {} already exists", options.expected);
        return st;
      }
    }
  }
  std::string k = RocksStore::key(ctx.ns, options.ref);
  std::lock_guard lock(db_.key_lock("ingests", k));
  BERTH_TRY(auto existing, db_.read("ingests", k));
  IngestRecord rec;
  if (existing) {
    BERTH_TRY(rec, decode_ingest(*existing));
  } else {
    rec.backend_ref = make_backend_ref(ctx.ns, options.ref);
  }
  if (!options.expected.empty()) rec.expected = options.expected;
  if (ctx.lease.empty()) {
    rec.expires =
        core::to_unix_nanos(std::chrono::system_clock::now() + db_.options().ingest_expiry);
  }
  rocksdb::WriteBatch batch;
  BERTH_RETURN_IF_ERROR(db_.ensure_namespace(batch, ctx.ns));
  BERTH_RETURN_IF_ERROR(db_.attach_to_lease(batch, ctx, "ingests", options.ref));
  batch.Put(db_.family("ingests"), k, encode(rec));
  content::WriterOptions backend_opts = options;
  backend_opts.ref = rec.backend_ref;
  // Isolated namespaces receive the bytes even when another namespace has them.
  if (db_.options().content_sharing == SharingPolicy::kIsolated) backend_opts.expected.clear();
  BERTH_TRY(auto inner, b->writer(ctx, backend_opts));
  BERTH_RETURN_IF_ERROR(db_.write(batch));
  db_.notify_mutation(false, rec.expires
                                 ? std::optional<Timestamp>(core::from_unix_nanos(rec.expires))
                                 : std::nullopt);
  return std::unique_ptr<content::Writer>(
      std::make_unique<NsWriter>(*this, ctx, options.ref, std::move(inner)));
}

}  // namespace berth::plugins::metadata

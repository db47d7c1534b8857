// Content store interfaces: content-addressed immutable blobs plus resumable ingests.
//
// The same interface is implemented by the backend store (io.containerd.content.v1.content,
// un-namespaced: ctx.ns is ignored) and by the metadata store's namespaced view of it (what the
// gRPC service uses). Thread-safe. Error codes:
//   NotFound            unknown digest or ref
//   AlreadyExists       commit (or writer with `expected`) of a digest that is already present
//   Unavailable         the ref is held by another writer
//   FailedPrecondition  size or digest mismatch at commit (nothing committed)
//   InvalidArgument     malformed digest, ref or label
//   OutOfRange          a write at the wrong offset, a read past the end
#pragma once

#include <berth/context.h>
#include <berth/labels.h>
#include <berth/plugin.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace berth::content {

struct Info {
  std::string digest;  // "sha256:<64 hex>"
  std::int64_t size = 0;
  Timestamp created_at;
  Timestamp updated_at;
  std::map<std::string, std::string> labels;
};

struct IngestStatus {
  std::string ref;
  std::int64_t offset = 0;  // bytes received so far
  std::int64_t total = 0;   // expected size if known, else 0
  std::string expected;     // expected digest if known
  Timestamp started_at;
  Timestamp updated_at;
};

class BERTH_API ReaderAt {
 public:
  virtual ~ReaderAt() = default;
  virtual std::int64_t size() const = 0;
  // Reads up to n bytes at offset; returns the count (0 at end).
  virtual Result<std::size_t> read_at(void* buf, std::size_t n, std::int64_t offset) = 0;
};

// One writer per ref. Destroying a writer without commit keeps the ingest, so a later writer on
// the same ref resumes at status().offset.
class BERTH_API Writer {
 public:
  virtual ~Writer() = default;
  virtual Status write(std::string_view data) = 0;
  virtual IngestStatus status() const = 0;
  // The digest of what was written so far.
  virtual std::string digest() const = 0;
  // Only 0 is supported: start over.
  virtual Status truncate(std::int64_t size) = 0;
  // size 0 or expected "" skip that check. Labels are applied to the committed blob.
  virtual Status commit(std::int64_t size, std::string_view expected,
                        const std::map<std::string, std::string>& labels) = 0;
};

struct WriterOptions {
  std::string ref;
  std::int64_t total = 0;
  std::string expected;
};

using WalkFn = std::function<Status(const Info&)>;

class BERTH_API Store {
 public:
  virtual ~Store() = default;

  virtual Result<Info> info(const RequestContext& ctx, std::string_view digest) = 0;
  // Field paths: "labels" replaces all labels, "labels.<key>" one label (removed when absent or
  // empty in info.labels); no paths replaces all labels.
  virtual Result<Info> update(const RequestContext& ctx, const Info& info,
                              const std::vector<std::string>& paths) = 0;
  // Filters in containerd's language over digest, size and labels.<key>.
  virtual Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                      const WalkFn& fn) = 0;
  virtual Status remove(const RequestContext& ctx, std::string_view digest) = 0;
  virtual Result<std::unique_ptr<ReaderAt>> reader(const RequestContext& ctx,
                                                   std::string_view digest) = 0;

  virtual Result<IngestStatus> status(const RequestContext& ctx, std::string_view ref) = 0;
  // Filters over ref (e.g. ref~=^layer-).
  virtual Result<std::vector<IngestStatus>> list_statuses(
      const RequestContext& ctx, const std::vector<std::string>& filters) = 0;
  virtual Status abort(const RequestContext& ctx, std::string_view ref) = 0;
  virtual Result<std::unique_ptr<Writer>> writer(const RequestContext& ctx,
                                                 const WriterOptions& options) = 0;
};

// The backend store plugin's instance.
class BERTH_API ContentPlugin : public virtual Plugin {
 public:
  virtual std::shared_ptr<Store> store() = 0;
};

// Filter fields of a blob: digest, size, labels.<key>.
inline std::optional<std::string> info_field(const Info& info,
                                             const std::vector<std::string>& path) {
  if (path.size() == 1 && path[0] == "digest") return info.digest;
  if (path.size() == 1 && path[0] == "size") return std::to_string(info.size);
  return label_field(info.labels, path);
}

// "sha256:<64 lowercase hex>", the only algorithm Berth stores.
inline Status validate_digest(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.substr(0, kPrefix.size()) != kPrefix || digest.size() != kPrefix.size() + 64) {
    return invalid_argument("digest \"{}\" is not of the form sha256:<64 hex digits>", digest);
  }
  for (char c : digest.substr(kPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return invalid_argument("digest \"{}\" is not of the form sha256:<64 hex digits>", digest);
    }
  }
  return Status();
}

}  // namespace berth::content

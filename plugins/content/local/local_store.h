// The backend content store: blobs on the local filesystem.
//
//   <root>/blobs/sha256/<hex>          committed blobs, read-only (0444)
//   <root>/ingest/<sha256(ref)>/       one directory per ingest in progress:
//        ref        the ref            data       bytes received so far
//        startedat  ns since epoch     total      expected size (if known)
//        expected   expected digest    hashstate  saved SHA-256 state + offset, updated after
//                                                 every write, so a resume hashes only the tail
//
// Not namespaced: RequestContext::ns is ignored (the metadata store adds namespaces).
#pragma once

#include <berth/content.h>

#include <mutex>
#include <set>
#include <string>

namespace berth::plugins::content {

class LocalStore final : public berth::content::Store,
                         public std::enable_shared_from_this<LocalStore> {
 public:
  static Result<std::shared_ptr<LocalStore>> open(const std::string& root);

  Result<berth::content::Info> info(const RequestContext& ctx, std::string_view digest) override;
  Result<berth::content::Info> update(const RequestContext& ctx, const berth::content::Info& info,
                                      const std::vector<std::string>& paths) override;
  Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
              const berth::content::WalkFn& fn) override;
  Status remove(const RequestContext& ctx, std::string_view digest) override;
  Result<std::unique_ptr<berth::content::ReaderAt>> reader(const RequestContext& ctx,
                                                           std::string_view digest) override;
  Result<berth::content::IngestStatus> status(const RequestContext& ctx,
                                              std::string_view ref) override;
  Result<std::vector<berth::content::IngestStatus>> list_statuses(
      const RequestContext& ctx, const std::vector<std::string>& filters) override;
  Status abort(const RequestContext& ctx, std::string_view ref) override;
  Result<std::unique_ptr<berth::content::Writer>> writer(
      const RequestContext& ctx, const berth::content::WriterOptions& options) override;

  std::string blob_path(std::string_view digest) const;
  std::string ingest_dir(std::string_view ref) const;
  const std::string& root() const { return root_; }

 private:
  class LocalWriter;
  friend class LocalWriter;
  explicit LocalStore(std::string root) : root_(std::move(root)) {}

  bool lock_ref(const std::string& ref);
  void unlock_ref(const std::string& ref);
  Result<berth::content::IngestStatus> status_of_dir(const std::string& dir);

  std::string root_;
  std::mutex mu_;
  std::set<std::string> active_refs_;
};

}  // namespace berth::plugins::content

// The CRI's view of images in its namespace (k8s.io), over the daemon's metadata store and the
// same transfer/unpack code as `berth images pull`. As containerd's CRI does, a pulled image gets
// three records with one target: its reference (docker.io/library/busybox:1.36), its repo digest
// (docker.io/library/busybox@sha256:<target>) and its ID (sha256:<config digest>), each labelled
// io.cri-containerd.image=managed. The CRI's Image groups every record whose target resolves to
// the same config: id = the config digest, repo_tags = the tagged names, repo_digests = name@digest.
#pragma once

#include <berth/diff.h>
#include <berth/metadata.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/images/resolve.h"
#include "core/transfer/transfer.h"

namespace berth::cri {

struct CriImage {
  std::string id;  // sha256:<config digest>
  std::vector<std::string> repo_tags, repo_digests;
  std::vector<std::string> names;  // every record of it
  std::uint64_t size = 0;          // manifest + config + layers of the platform
  std::optional<std::int64_t> uid;  // the config's User when numeric
  std::string username;             // else its name part
  bool pinned = false;
  images::ResolvedImage resolved;
  images::Image record;  // one of them (the first by name)
};

struct PullAuth {
  std::string username, password;  // from username/password, or `auth` (base64 user:pass)
  std::string identity_token;      // a refresh token, sent as the password for the token flow
  std::string registry_token;      // a bearer token sent as is
  std::string server_address;      // the registry these are for ("" = the image's)
};

class ImageStore {
 public:
  static constexpr const char* kManagedLabel = "io.cri-containerd.image";
  static constexpr const char* kPinnedLabel = "io.cri-containerd.pinned";

  ImageStore(std::shared_ptr<metadata::MetadataStore> md,
             std::shared_ptr<diff::DifferPlugin> differ, std::string ns, std::string snapshotter,
             std::string hosts_dir, int max_concurrent);

  // Every image of the namespace (records that cannot be resolved for this platform are
  // skipped).
  Result<std::vector<CriImage>> list();
  // By ID (sha256:<hex>, or a unique prefix of the hex of at least 12), reference or repo digest;
  // NotFound when there is none; InvalidArgument for a reference that does not parse.
  Result<CriImage> find(const std::string& spec);
  // Pulls (and unpacks) `ref`; returns the image.
  Result<CriImage> pull(const std::string& ref, const PullAuth& auth,
                        const std::function<bool()>& cancelled);
  // Removes every record of the image; OK when there is none.
  Status remove(const std::string& spec);

  const std::string& ns() const { return ns_; }
  const std::string& snapshotter() const { return snapshotter_; }
  RequestContext context() const { return RequestContext{ns_, "", [] { return false; }}; }
  std::shared_ptr<metadata::MetadataStore> metadata() const { return md_; }

 private:
  Result<images::ResolvedImage> resolve(const diff::Descriptor& target);
  std::vector<CriImage> group(const std::vector<images::Image>& records);
  Status save_record(const std::string& name, const diff::Descriptor& target,
                     std::map<std::string, std::string> labels);

  std::shared_ptr<metadata::MetadataStore> md_;
  transfer::Transfers transfers_;
  std::string ns_, snapshotter_, hosts_dir_;
  int max_concurrent_;
  // Resolved documents by target digest (content is immutable).
  std::mutex mu_;
  std::map<std::string, images::ResolvedImage> resolved_;
};

}  // namespace berth::cri

// Image pull and push between a registry and the daemon's stores (content, snapshotters, images),
// done in the daemon so every client gets the same behaviour: the transfer service
// (berth.services.transfer.v1) is a thin gRPC adaptor over this.
//
// Pull: resolve the reference → index → the platform's manifest → config → layers, fetched in
// parallel (bounded) into the content store under a lease, each verified by the store before it
// is committed, and each layer applied to the snapshotter as soon as it and its parents are there.
// Blobs two pulls want at once are fetched once. An interrupted pull leaves its verified blobs and
// partial downloads (ingests) under a lease that expires by itself, so the next pull fetches only
// what is missing, resuming partial blobs with Range requests. Transient registry failures are
// retried with exponential backoff.
//
// Push: the image's blobs (layers and config, then manifests, the index last) go up unless the
// registry has them (HEAD); a blob whose source repository on the same registry is known
// (containerd.io/distribution.source.<host> label) is mounted across repositories instead.
#pragma once

#include <berth/diff.h>
#include <berth/images.h>
#include <berth/metadata.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/images/model.h"
#include "core/remotes/client.h"

namespace berth::transfer {

// One progress report: an item (a blob by digest, or a step) changed.
struct Progress {
  std::string id;
  std::string kind;    // index, manifest, config, layer, step
  std::string status;  // waiting, downloading, uploading, exists, mounted, done, unpacking,
                       // unpacked, retrying, resolved
  std::int64_t offset = 0, total = 0;
  std::string message;
};
using ProgressFn = std::function<void(const Progress&)>;

struct RegistryAccess {
  remotes::HostOptions host;  // flags of the request (plain HTTP, CA, credentials)
  std::string hosts_dir;      // certs.d layout, "" = none
};

struct Retry {
  int attempts = 5;
  std::chrono::milliseconds backoff{250};  // doubled each time
};

struct PullOptions {
  std::string ref;
  images::model::Platform platform;
  bool all_platforms = false;  // every manifest of an index (no unpack)
  bool unpack = true;
  std::string snapshotter = "overlayfs";
  RegistryAccess registry;
  int max_concurrent = 3;
  std::map<std::string, std::string> labels;  // of the image record
  Retry retry;
};

struct PushOptions {
  std::string image;  // the image record
  std::string ref;    // the destination; "" = the image's name
  std::optional<images::model::Platform> platform;
  RegistryAccess registry;
  std::int64_t chunk_size = 16 << 20;
  int max_concurrent = 3;
  Retry retry;
};

class Transfers {
 public:
  Transfers(std::shared_ptr<metadata::MetadataStore> md, std::shared_ptr<diff::DifferPlugin> differ)
      : md_(std::move(md)), differ_(std::move(differ)) {}

  struct Pulled {
    images::Image image;  // the record as created or updated
    bool created = false;
  };
  Result<Pulled> pull(const RequestContext& ctx, const PullOptions& o, const ProgressFn& progress);
  // The digest of what the destination reference now points at.
  Result<std::string> push(const RequestContext& ctx, const PushOptions& o,
                           const ProgressFn& progress);

 private:
  struct Remote;
  struct PushPlan;
  class Pusher;
  struct Inflight {
    bool done = false;
    Status status;
  };

  Status fetch(const RequestContext& ctx, Remote& remote, const diff::Descriptor& d,
               const std::string& kind, const std::map<std::string, std::string>& labels,
               const ProgressFn& progress);
  Status fetch_once(const RequestContext& ctx, Remote& remote, const diff::Descriptor& d,
                    const std::string& kind, const std::map<std::string, std::string>& labels,
                    const ProgressFn& progress);
  // An index, manifest or config (size-checked first).
  Status fetch_document(const RequestContext& ctx, Remote& remote, const diff::Descriptor& d,
                        const std::string& kind, const ProgressFn& progress);
  Result<std::string> read_small(const RequestContext& ctx, const std::string& digest);

  // The steps of a pull.
  Result<std::unique_ptr<Remote>> connect_pull(const remotes::Repository& repo,
                                               const RegistryAccess& access, const Retry& retry);
  Result<diff::Descriptor> resolve(const RequestContext& ctx, Remote& remote,
                                   const std::string& name, const std::string& object,
                                   const ProgressFn& progress);
  // The manifests the pull wants (one platform, or all), the index labelled to keep them.
  Result<std::vector<diff::Descriptor>> select_manifests(const RequestContext& ctx, Remote& remote,
                                                         const diff::Descriptor& target,
                                                         const PullOptions& o,
                                                         const ProgressFn& progress);
  // A manifest, its config and its layers (unpacked as they arrive). `resumable` is cleared
  // when a later pull could not do better (a layer over the differ's limits).
  Status pull_manifest(const RequestContext& ctx, Remote& remote, const diff::Descriptor& md,
                       const std::string& name, const PullOptions& o, const ProgressFn& progress,
                       bool* resumable);
  Status pull_layers(const RequestContext& ctx, Remote& remote, const std::string& name,
                     const images::model::Manifest& manifest,
                     const std::vector<std::string>& diff_ids, const PullOptions& o,
                     const ProgressFn& progress, bool* resumable);
  // What a push sends (the image narrowed to one platform, or all its manifests).
  Result<PushPlan> plan_push(const RequestContext& ctx, const images::Image& image,
                             const std::optional<images::model::Platform>& platform);
  // The image record: created, or pointed at what was pulled.
  Result<Pulled> save_image(const RequestContext& ctx, const std::string& name,
                            const diff::Descriptor& target,
                            const std::map<std::string, std::string>& labels);

  std::shared_ptr<metadata::MetadataStore> md_;
  std::shared_ptr<diff::DifferPlugin> differ_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<Inflight>> inflight_;  // digest -> fetch in progress
};

}  // namespace berth::transfer

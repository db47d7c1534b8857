// Pull: resolve, fetch (verified, resumable, deduplicated) and unpack as layers arrive.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/remotes/hosts.h"
#include "core/time.h"
#include "core/transfer/internal.h"
#include "core/transfer/transfer.h"
#include "core/unique.h"
#include "core/unpack/daemon_stores.h"

namespace berth::transfer {

namespace model = images::model;
namespace mt = images::model::media_type;
using diff::Descriptor;
using Labels = std::map<std::string, std::string>;
using namespace detail;

// The registry endpoints of one transfer (mirrors first). One client per endpoint, so resolving
// and fetching share its credentials and token cache.
struct Transfers::Remote {
  remotes::Repository repo;
  std::vector<std::unique_ptr<remotes::RegistryClient>> all;
  std::vector<remotes::RegistryClient*> clients;    // may pull
  std::vector<remotes::RegistryClient*> resolvers;  // may resolve
  Retry retry;
};

Status Transfers::fetch_document(const RequestContext& ctx, Remote& remote, const Descriptor& d,
                                 const std::string& kind, const ProgressFn& progress) {
  // Indexes, manifests and configs are read whole: a registry claiming a huge one is refused
  // before anything is downloaded.
  if (d.size < 0 || d.size > static_cast<std::int64_t>(kMaxDocument))
    return invalid_argument("{} {} is said to be {} bytes; at most {} are accepted", kind, d.digest,
                            d.size, kMaxDocument);
  return fetch(ctx, remote, d, kind, {}, progress);
}

Status Transfers::fetch(const RequestContext& ctx, Remote& remote, const Descriptor& d,
                        const std::string& kind, const Labels& labels, const ProgressFn& progress) {
  BERTH_RETURN_IF_ERROR(content::validate_digest(d.digest).with_context(kind));
  // One fetch per digest at a time in this daemon; others wait for it, then link its result.
  for (;;) {
    std::shared_ptr<Inflight> theirs, mine;
    {
      std::unique_lock lock(mu_);
      auto it = inflight_.find(d.digest);
      if (it == inflight_.end()) {
        mine = inflight_[d.digest] = std::make_shared<Inflight>();
      } else {
        theirs = it->second;
      }
    }
    if (mine) {
      Status s = fetch_once(ctx, remote, d, kind, labels, progress);
      std::lock_guard lock(mu_);
      mine->done = true;
      mine->status = s;
      inflight_.erase(d.digest);
      cv_.notify_all();
      return s;
    }
    progress({d.digest, kind, "waiting", 0, d.size, "fetched by another pull"});
    std::unique_lock lock(mu_);
    while (!theirs->done) {
      if (ctx.cancelled()) return cancelled_status();
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    // Theirs is done either way: try again (finds the blob, or fetches it ourselves).
  }
}

Status Transfers::fetch_once(const RequestContext& ctx, Remote& remote, const Descriptor& d,
                             const std::string& kind, const Labels& labels,
                             const ProgressFn& progress) {
  auto store = md_->content();
  Labels all = labels;
  all[source_label(remote.repo)] = remote.repo.name;
  auto mark_existing = [&]() -> Status {
    BERTH_RETURN_IF_ERROR(unpack::add_content_labels(*store, ctx, d.digest, all));
    if (!ctx.lease.empty())
      BERTH_RETURN_IF_ERROR(md_->leases().add_resource(ctx, ctx.lease, {d.digest, "content"}));
    progress({d.digest, kind, "exists", d.size, d.size, ""});
    return Status();
  };
  bool verified_fresh = false;  // a mismatch after resuming gets one fresh start
  int progressed = 0;
  Status last;
  for (int attempt = 0; attempt < remote.retry.attempts; ++attempt) {
    if (ctx.cancelled()) return cancelled_status();
    if (attempt > 0) {
      auto wait = backoff(remote.retry, attempt);
      progress({d.digest, kind, "retrying", 0, d.size,
                fmt::format("attempt {} of {} in {} ms: {}", attempt + 1, remote.retry.attempts,
                            wait.count(), last.message())});
      if (!sleep_unless_cancelled(ctx, wait)) return cancelled_status();
    }
    auto w = store->writer(ctx, {.ref = "pull-" + d.digest, .total = d.size, .expected = d.digest});
    if (w.status().code() == Code::kAlreadyExists) return mark_existing();
    if (w.status().code() == Code::kUnavailable) {  // someone else (a client-side pull) writes it
      last = w.status();
      continue;
    }
    if (!w.ok()) return w.status();
    auto& writer = *w;
    std::int64_t offset = writer->status().offset;
    if (offset > d.size) {
      BERTH_RETURN_IF_ERROR(writer->truncate(0));
      offset = 0;
    }
    std::int64_t resumed_from = offset;
    if (offset < d.size) {
      progress({d.digest, kind, "downloading", offset, d.size,
                offset > 0 ? fmt::format("resuming at byte {}", offset) : ""});
      Status fetched;
      for (auto* client : remote.clients) {
        auto restart = [&]() -> Status {
          resumed_from = 0;
          return writer->truncate(0);
        };
        std::int64_t written = writer->status().offset;
        auto sink = [&](std::string_view data) -> Status {
          if (ctx.cancelled()) return cancelled_status();
          if (written + static_cast<std::int64_t>(data.size()) > d.size)
            return Status(Code::kDataLoss,
                          fmt::format("{} {}: the registry sent more than the {} bytes expected",
                                      kind, d.digest, d.size));
          BERTH_RETURN_IF_ERROR(writer->write(data));
          written += static_cast<std::int64_t>(data.size());
          progress({d.digest, kind, "downloading", written, d.size, ""});
          return Status();
        };
        fetched = client->fetch_blob_from(remote.repo, d.digest, writer->status().offset, restart,
                                          sink, kind == "index" || kind == "manifest");
        if (fetched.ok() || fetched.code() == Code::kCancelled) break;
        if (fetched.code() != Code::kNotFound && !retryable(fetched)) break;
        if (writer->status().offset > resumed_from) break;  // progress made: retry this endpoint
      }
      if (fetched.code() == Code::kCancelled) return fetched;
      if (!fetched.ok()) {
        last = fetched;
        if (retryable(fetched)) {
          // The ingest is kept: the next attempt resumes. An attempt that got bytes does not
          // count against the limit (a registry that cuts long downloads still gets there).
          if (writer->status().offset > resumed_from && progressed++ < kMaxProgressRetries)
            attempt = 0;
          continue;
        }
        if (fetched.code() == Code::kDataLoss) BERTH_RETURN_IF_ERROR(writer->truncate(0));
        return fetched;
      }
    }
    Status committed = writer->commit(d.size, d.digest, all);
    if (committed.ok() || committed.code() == Code::kAlreadyExists) {
      if (committed.code() == Code::kAlreadyExists) return mark_existing();
      progress({d.digest, kind, "done", d.size, d.size, ""});
      return Status();
    }
    if (committed.code() == Code::kFailedPrecondition) {
      // Not the bytes the descriptor names: nothing was committed. Start over once if part of it
      // came from an earlier, interrupted pull; otherwise the registry serves bad content.
      writer.reset();
      (void)store->abort(ctx, "pull-" + d.digest);
      if (resumed_from > 0 && !verified_fresh) {
        verified_fresh = true;
        last = committed;
        --attempt;
        continue;
      }
      return Status(
          Code::kDataLoss,
          fmt::format("{} {} from {}/{} does not match its digest ({}); nothing was "
                      "stored",
                      kind, d.digest, remote.repo.host, remote.repo.name, committed.message()));
    }
    return committed;
  }
  return Status(last.code(), fmt::format("{} {}: giving up after {} attempts: {}", kind, d.digest,
                                         remote.retry.attempts, last.message()));
}

Result<std::unique_ptr<Transfers::Remote>> Transfers::connect_pull(const remotes::Repository& repo,
                                                                   const RegistryAccess& access,
                                                                   const Retry& retry) {
  BERTH_TRY(auto endpoints, remotes::host_endpoints(access.hosts_dir, repo.host, access.host));
  auto remote = std::make_unique<Remote>(Remote{repo, {}, {}, {}, retry});
  for (const auto& e : endpoints) {
    if (!e.pull && !e.resolve) continue;
    auto& client =
        remote->all.emplace_back(std::make_unique<remotes::RegistryClient>(e.options, e.base));
    if (e.pull) remote->clients.push_back(client.get());
    if (e.resolve) remote->resolvers.push_back(client.get());
  }
  if (remote->clients.empty() || remote->resolvers.empty())
    return failed_precondition("no registry host for {} may pull and resolve", repo.host);
  return remote;
}

Result<Descriptor> Transfers::resolve(const RequestContext& ctx, Remote& remote,
                                      const std::string& name, const std::string& object,
                                      const ProgressFn& progress) {
  progress({name, "step", "resolving", 0, 0, ""});
  Result<remotes::Resolved> resolved = Status(Code::kUnavailable, "no resolver");
  Status st = with_retries(
      ctx, remote.retry,
      [&](const std::string& why) {
        progress({name, "step", "retrying", 0, 0, why});
      },
      [&]() -> Status {
        for (auto* r : remote.resolvers) {  // mirrors first; a mirror without the image is skipped
          resolved = r->resolve(remote.repo, object);
          if (resolved.ok() ||
              (resolved.status().code() != Code::kNotFound && !retryable(resolved.status())))
            break;
        }
        return resolved.status();
      });
  if (!st.ok()) return st.with_context("resolve " + name);
  Descriptor target{resolved->media_type, resolved->digest, resolved->size, {}};
  progress({name, "step", "resolved", 0, 0, target.digest});
  return target;
}

Result<std::vector<Descriptor>> Transfers::select_manifests(const RequestContext& ctx,
                                                            Remote& remote,
                                                            const Descriptor& target,
                                                            const PullOptions& o,
                                                            const ProgressFn& progress) {
  if (!mt::is_index(target.media_type)) return std::vector<Descriptor>{target};
  // Fetch without labels first to read it; the gc.ref labels follow once children are known.
  BERTH_RETURN_IF_ERROR(fetch_document(ctx, remote, target, "index", progress));
  BERTH_TRY(auto body, read_small(ctx, target.digest));
  BERTH_TRY(auto index, model::parse_index(body));
  std::vector<Descriptor> manifests;
  Labels refs;
  if (o.all_platforms) {
    for (std::size_t i = 0; i < index.manifests.size(); ++i) {
      const auto& e = index.manifests[i];
      if (!mt::is_manifest(e.descriptor.media_type)) continue;
      manifests.push_back(e.descriptor);
      refs[fmt::format("containerd.io/gc.ref.content.m.{}", i)] = e.descriptor.digest;
    }
  } else {
    BERTH_TRY(auto entry, model::select_manifest(index, o.platform));
    manifests.push_back(entry.descriptor);
    for (std::size_t i = 0; i < index.manifests.size(); ++i)
      if (index.manifests[i].descriptor.digest == entry.descriptor.digest)
        refs[fmt::format("containerd.io/gc.ref.content.m.{}", i)] = entry.descriptor.digest;
  }
  BERTH_RETURN_IF_ERROR(unpack::add_content_labels(*md_->content(), ctx, target.digest, refs));
  return manifests;
}

Status Transfers::pull_manifest(const RequestContext& ctx, Remote& remote, const Descriptor& md,
                                const std::string& name, const PullOptions& o,
                                const ProgressFn& progress, bool* resumable) {
  // The manifest is small: fetch it unlabelled, read it, then label it with its children.
  BERTH_RETURN_IF_ERROR(fetch_document(ctx, remote, md, "manifest", progress));
  BERTH_TRY(auto body, read_small(ctx, md.digest));
  BERTH_TRY(auto manifest, model::parse_manifest(body));
  Labels refs{{"containerd.io/gc.ref.content.config", manifest.config.digest}};
  for (std::size_t i = 0; i < manifest.layers.size(); ++i)
    refs[fmt::format("containerd.io/gc.ref.content.l.{}", i)] = manifest.layers[i].digest;
  BERTH_RETURN_IF_ERROR(unpack::add_content_labels(*md_->content(), ctx, md.digest, refs));

  BERTH_RETURN_IF_ERROR(fetch_document(ctx, remote, manifest.config, "config", progress));
  BERTH_TRY(auto config_body, read_small(ctx, manifest.config.digest));
  BERTH_TRY(auto config, model::parse_config(config_body));
  if (config.diff_ids.size() != manifest.layers.size())
    return invalid_argument("image {}: the manifest has {} layers but the config {} diffIDs", name,
                            manifest.layers.size(), config.diff_ids.size());
  return pull_layers(ctx, remote, name, manifest, config.diff_ids, o, progress, resumable);
}

Status Transfers::pull_layers(const RequestContext& ctx, Remote& remote, const std::string& name,
                              const model::Manifest& manifest,
                              const std::vector<std::string>& diff_ids, const PullOptions& o,
                              const ProgressFn& progress, bool* resumable) {
  bool do_unpack = o.unpack && !o.all_platforms;
  for (const auto& l : manifest.layers) progress({l.digest, "layer", "waiting", 0, l.size, ""});
  // Layers download in parallel; this thread applies each as soon as it and its parents are in,
  // while later ones are still coming.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> state(manifest.layers.size(), 0);  // 0 pending, 1 fetched, -1 failed
  std::atomic<bool> stop{false};
  Status fetch_error;
  std::thread downloader([&] {
    fetch_error = run_parallel(
        manifest.layers.size(), o.max_concurrent,
        [&](std::size_t i) {
          Status s = fetch(ctx, remote, manifest.layers[i], "layer", {}, progress);
          std::lock_guard lock(mu);
          state[i] = s.ok() ? 1 : -1;
          cv.notify_all();
          return s;
        },
        [&] { return stop.load() || ctx.cancelled(); });
    std::lock_guard lock(mu);
    for (auto& st : state)
      if (st == 0) st = -1;
    cv.notify_all();
  });
  Status unpack_error;
  if (do_unpack) {
    auto stores = unpack::DaemonStores::open(*md_, *differ_, ctx, o.snapshotter);
    std::string parent;
    for (std::size_t i = 0; stores.ok() && i < manifest.layers.size(); ++i) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return state[i] != 0; });
        if (state[i] < 0) break;
      }
      const Descriptor& layer = manifest.layers[i];
      auto report = [&](unpack::Step step) {
        if (step == unpack::Step::kApplying) {
          progress({layer.digest, "layer", "unpacking", 0, layer.size, ""});
        } else {
          progress({layer.digest, "layer", "unpacked", layer.size, layer.size,
                    step == unpack::Step::kExisted ? "already unpacked" : ""});
        }
      };
      auto done = unpack::unpack_layer(*stores, {layer, diff_ids[i]}, parent, report);
      if (!done.ok()) {
        unpack_error = done.status();
        stop = true;
        break;
      }
      parent = done->chain_id;
    }
    if (!stores.ok()) {
      unpack_error = stores.status();
      stop = true;
    } else if (unpack_error.ok() && !parent.empty()) {
      // Wait for the downloads before labelling (a failed one is reported below).
      downloader.join();
      if (fetch_error.ok())
        unpack_error = unpack::label_config(*stores, manifest.config.digest, parent);
    }
  }
  if (downloader.joinable()) downloader.join();
  if (!fetch_error.ok()) return fetch_error;
  // A layer over the differ's limits stays over them: nothing to resume.
  if (unpack_error.code() == Code::kResourceExhausted) *resumable = false;
  return unpack_error.with_context("unpack " + name);
}

Result<Transfers::Pulled> Transfers::save_image(const RequestContext& ctx, const std::string& name,
                                                const Descriptor& target, const Labels& labels) {
  images::Image image;
  image.name = name;
  image.target = target;
  image.labels = labels;
  Pulled out;
  auto saved = md_->images().create(ctx, image);
  out.created = saved.ok();
  if (saved.status().code() == Code::kAlreadyExists) {
    std::vector<std::string> paths = {"target"};
    for (const auto& [k, v] : labels) paths.push_back("labels." + k);
    saved = md_->images().update(ctx, image, paths);
  }
  if (!saved.ok()) return saved.status();
  out.image = std::move(*saved);
  return out;
}

Result<Transfers::Pulled> Transfers::pull(const RequestContext& ctx_in, const PullOptions& o,
                                          const ProgressFn& progress) {
  BERTH_TRY(auto ref, parse_reference(o.ref));
  BERTH_TRY(auto remote, connect_pull(ref.repo, o.registry, o.retry));

  // The lease keeps everything fetched from garbage collection until the image record holds it;
  // after a failure it stays (and expires by itself) so the next pull resumes.
  RequestContext ctx = ctx_in;
  leases::Lease lease;
  lease.id = "berth-pull-" + core::unique_part();
  lease.labels = {{std::string(leases::kExpireLabel),
                   core::format_rfc3339(std::chrono::system_clock::now() + kLeaseTtl)},
                  {"berth.io/pull", ref.name}};
  BERTH_RETURN_IF_ERROR(md_->leases().create(ctx, lease).status());
  ctx.lease = lease.id;
  // On success the image record holds everything: the lease goes. On failure it stays only if
  // it protects something to resume from.
  struct LeaseEnd {
    Transfers* self;
    const RequestContext& ctx;
    bool succeeded = false;
    bool resumable = true;  // false when retrying cannot help (a layer over the differ's limits)
    ~LeaseEnd() {
      if (!succeeded && resumable) {
        auto held = self->md_->leases().list_resources(ctx, ctx.lease);
        if (held.ok() && !held->empty()) return;
      }
      (void)self->md_->leases().remove(ctx, ctx.lease);
    }
  } lease_end{this, ctx};

  BERTH_TRY(auto target, resolve(ctx, *remote, ref.name, ref.object, progress));
  BERTH_TRY(auto manifests, select_manifests(ctx, *remote, target, o, progress));
  for (const auto& md : manifests)
    BERTH_RETURN_IF_ERROR(
        pull_manifest(ctx, *remote, md, ref.name, o, progress, &lease_end.resumable));
  BERTH_TRY(auto out, save_image(ctx, ref.name, target, o.labels));
  lease_end.succeeded = true;
  return out;
}

}  // namespace berth::transfer

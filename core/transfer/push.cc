// Push: blobs (exists, mounted across repositories, or uploaded) then manifests, an index last.
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

// What a push sends: per manifest its blobs (config and layers) then itself; an index last.
struct Transfers::PushPlan {
  struct Manifest {
    Descriptor descriptor;
    std::vector<Descriptor> blobs;
  };
  std::vector<Manifest> manifests;
  Descriptor top;
  bool push_index = false;
};

Result<Transfers::PushPlan> Transfers::plan_push(const RequestContext& ctx,
                                                 const images::Image& image,
                                                 const std::optional<model::Platform>& platform) {
  PushPlan plan;
  plan.top = image.target;
  auto add_manifest = [&](const Descriptor& d) -> Status {
    auto body = read_small(ctx, d.digest);
    if (!body.ok())
      return Status(body.status().code(), fmt::format("manifest {} of {}: {}", d.digest, image.name,
                                                      body.status().message()));
    BERTH_TRY(auto m, model::parse_manifest(*body));
    PushPlan::Manifest out{d, {m.config}};
    out.blobs.insert(out.blobs.end(), m.layers.begin(), m.layers.end());
    plan.manifests.push_back(std::move(out));
    return Status();
  };
  if (mt::is_manifest(plan.top.media_type)) {
    BERTH_RETURN_IF_ERROR(add_manifest(plan.top));
    return plan;
  }
  if (!mt::is_index(plan.top.media_type))
    return invalid_argument("image {}: target media type \"{}\" is not a manifest or an index",
                            image.name, plan.top.media_type);
  BERTH_TRY(auto body, read_small(ctx, plan.top.digest));
  BERTH_TRY(auto index, model::parse_index(body));
  if (platform) {
    BERTH_TRY(auto entry, model::select_manifest(index, *platform));
    plan.top = entry.descriptor;
    BERTH_RETURN_IF_ERROR(add_manifest(plan.top));
    return plan;
  }
  for (const auto& e : index.manifests) {
    if (!mt::is_manifest(e.descriptor.media_type)) continue;
    if (auto info = md_->content()->info(ctx, e.descriptor.digest); !info.ok())
      return failed_precondition(
          "{}: the manifest for {} ({}) is not in the content store; push one platform with "
          "--platform",
          image.name, e.platform ? e.platform->to_string() : "no platform", e.descriptor.digest);
    BERTH_RETURN_IF_ERROR(add_manifest(e.descriptor));
  }
  plan.push_index = true;
  return plan;
}

// One push's blob and manifest uploads to one registry repository, each retried.
class Transfers::Pusher {
 public:
  Pusher(Transfers& t, const RequestContext& ctx, const PushOptions& o, const ProgressFn& progress,
         remotes::Repository repo, remotes::RegistryClient& client)
      : t_(t),
        ctx_(ctx),
        o_(o),
        progress_(progress),
        repo_(std::move(repo)),
        client_(client),
        store_(t.md_->content()),
        label_key_(source_label(repo_)) {}

  // HEAD first ("exists"); a cross-repository mount when the source label names another
  // repository on this registry; else an upload in chunks.
  Status blob(const Descriptor& d, const std::string& kind) {
    BERTH_TRY(auto info, store_->info(ctx_, d.digest));
    return retrying(d.digest, kind, [&]() -> Status {
      BERTH_TRY(bool exists, client_.blob_exists(repo_, d.digest));
      if (exists) {
        progress_({d.digest, kind, "exists", info.size, info.size, ""});
        return Status();
      }
      if (auto src = info.labels.find(label_key_); src != info.labels.end()) {
        std::string from = src->second.substr(0, src->second.find(','));
        if (from != repo_.name) {
          BERTH_TRY(bool mounted, client_.mount_blob(repo_, d.digest, from));
          if (mounted) {
            progress_({d.digest, kind, "mounted", info.size, info.size, "from " + from});
            return Status();
          }
        }
      }
      BERTH_TRY(auto reader, store_->reader(ctx_, d.digest));
      auto read = [&](std::int64_t off, std::size_t n) -> Result<std::string> {
        if (ctx_.cancelled()) return cancelled_status();
        std::string buf(n, '\0');
        std::size_t got = 0;
        while (got < n) {
          BERTH_TRY(auto k, reader->read_at(buf.data() + got, n - got,
                                            off + static_cast<std::int64_t>(got)));
          if (k == 0) return Status(Code::kDataLoss, fmt::format("{}: short read", d.digest));
          got += k;
        }
        return buf;
      };
      progress_({d.digest, kind, "uploading", 0, info.size, ""});
      BERTH_RETURN_IF_ERROR(client_.upload_blob(
          repo_, d.digest, info.size, o_.chunk_size, read, [&](std::int64_t sent) {
            progress_({d.digest, kind, "uploading", sent, info.size, ""});
          }));
      progress_({d.digest, kind, "done", info.size, info.size, ""});
      return Status();
    });
  }

  // A manifest or index under `reference` (a tag, or its digest: then skipped when present).
  Status manifest(const Descriptor& d, const std::string& kind, const std::string& reference) {
    BERTH_TRY(auto body, t_.read_small(ctx_, d.digest));
    return retrying(d.digest, kind, [&]() -> Status {
      if (reference == d.digest) {
        BERTH_TRY(bool exists, client_.manifest_exists(repo_, d.digest));
        if (exists) {
          progress_({d.digest, kind, "exists", d.size, d.size, ""});
          return Status();
        }
      }
      progress_({d.digest, kind, "uploading", 0, d.size, ""});
      BERTH_RETURN_IF_ERROR(client_.put_manifest(repo_, reference, d.media_type, body));
      progress_({d.digest, kind, "done", d.size, d.size, ""});
      return Status();
    });
  }

  // Remembers where the blobs now live (containerd.io/distribution.source.<host>), for later
  // cross-repository mounts.
  void remember_sources(const std::vector<std::string>& digests) {
    for (const auto& digest : digests) {
      auto info = store_->info(ctx_, digest);
      if (!info.ok()) continue;
      std::string repos = info->labels[label_key_];
      bool listed = false;
      for (std::size_t p = 0; p <= repos.size();) {
        auto comma = repos.find(',', p);
        if (repos.substr(p, comma == std::string::npos ? std::string::npos : comma - p) ==
            repo_.name)
          listed = true;
        if (comma == std::string::npos) break;
        p = comma + 1;
      }
      if (listed) continue;
      (void)unpack::add_content_labels(
          *store_, ctx_, digest,
          {{label_key_, repos.empty() ? repo_.name : repos + "," + repo_.name}});
    }
  }

 private:
  Status retrying(const std::string& id, const std::string& kind,
                  const std::function<Status()>& op) {
    return with_retries(
        ctx_, o_.retry,
        [&](const std::string& why) {
          progress_({id, kind, "retrying", 0, 0, why});
        },
        op);
  }

  Transfers& t_;
  const RequestContext& ctx_;
  const PushOptions& o_;
  const ProgressFn& progress_;
  remotes::Repository repo_;
  remotes::RegistryClient& client_;
  std::shared_ptr<content::Store> store_;
  std::string label_key_;
};

Result<std::string> Transfers::push(const RequestContext& ctx, const PushOptions& o,
                                    const ProgressFn& progress) {
  BERTH_TRY(auto image, md_->images().get(ctx, o.image));
  BERTH_TRY(auto ref, parse_reference(o.ref.empty() ? image.name : o.ref));
  BERTH_TRY(auto endpoints,
            remotes::host_endpoints(o.registry.hosts_dir, ref.repo.host, o.registry.host));
  const remotes::Endpoint* server = nullptr;
  for (const auto& e : endpoints)
    if (e.push) server = &e;
  if (!server) return failed_precondition("no registry host for {} may push", ref.repo.host);
  remotes::RegistryClient client(server->options, server->base);
  BERTH_TRY(auto plan, plan_push(ctx, image, o.platform));

  Pusher pusher(*this, ctx, o, progress, ref.repo, client);
  bool by_digest = ref.object.rfind("sha256:", 0) == 0;
  std::vector<std::string> pushed;
  for (const auto& m : plan.manifests) {
    BERTH_RETURN_IF_ERROR(run_parallel(
        m.blobs.size(), o.max_concurrent,
        [&](std::size_t i) { return pusher.blob(m.blobs[i], i == 0 ? "config" : "layer"); },
        [&] { return ctx.cancelled(); }));
    if (ctx.cancelled()) return cancelled_status();
    bool is_top = !plan.push_index && m.descriptor.digest == plan.top.digest;
    BERTH_RETURN_IF_ERROR(pusher.manifest(m.descriptor, "manifest",
                                          is_top && !by_digest ? ref.object : m.descriptor.digest));
    for (const auto& b : m.blobs) pushed.push_back(b.digest);
    pushed.push_back(m.descriptor.digest);
  }
  if (plan.push_index) {
    BERTH_RETURN_IF_ERROR(
        pusher.manifest(plan.top, "index", by_digest ? plan.top.digest : ref.object));
    pushed.push_back(plan.top.digest);
  }
  pusher.remember_sources(pushed);
  return plan.top.digest;
}

}  // namespace berth::transfer

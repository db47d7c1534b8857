// io.containerd.grpc.v1.cri: the Kubernetes CRI (runtime.v1 and runtime.v1alpha2 RuntimeService
// and ImageService) on berthd's socket, in its own namespace (k8s.io).
//
//   [plugins."io.containerd.grpc.v1.cri"]
//     namespace = "k8s.io"
//     snapshotter = "overlayfs"
//     hosts_dir = "/etc/berth/certs.d"     # the same certs.d layout as `berth images pull`
//     max_concurrent_downloads = 3
//     cgroup_driver = "cgroupfs"           # what RuntimeConfig tells the kubelet
//     default_runtime = "berth"            # the handler of an empty runtime_handler
//     runtimes = { berth = "io.containerd.berth.v1", runc = "io.containerd.runc.v2" }
//     network = ""                         # the pods' CNI network ("": the first that loads)
//     pause_binary = ""                    # "": berth-pause next to berthd, then in PATH
//
// Both API versions are served by one object: v1alpha2's services are declared over v1's
// messages (api/proto/cri/runtime/v1alpha2), so each method below overrides both.
//
// Pods and containers live in plugins/cri/pods (their specs in spec, their logs in logs).
// Streaming (Exec, Attach, PortForward), stats and UpdateContainerResources answer
// Unimplemented until they land.
#include <berth/grpc.h>
#include <berth/identifiers.h>
#include <berth/metadata.h>
#include <berth/network.h>
#include <berth/runtime.h>
#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/log.h"
#include "cri/runtime/v1/api.grpc.pb.h"
#include "cri/runtime/v1alpha2/api.grpc.pb.h"
#include "core/fs.h"
#include "plugins/cri/images.h"
#include "plugins/cri/pods.h"

namespace berth::cri {
namespace {

namespace v1 = ::runtime::v1;
namespace v1alpha2 = ::runtime::v1alpha2;
using GStatus = ::grpc::Status;
using GContext = ::grpc::ServerContext;

constexpr const char* kCriVersion = "0.1.0";

struct Config {
  std::string ns = "k8s.io";
  std::string snapshotter = "overlayfs";
  std::string hosts_dir = "/etc/berth/certs.d";
  std::int64_t max_concurrent = 3;
  std::string cgroup_driver = "cgroupfs";
  std::string default_runtime = "berth";
  std::map<std::string, std::string> runtimes = {{"berth", "io.containerd.berth.v1"},
                                                 {"runc", "io.containerd.runc.v2"}};
  std::string network;
  std::string pause_binary;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void to_proto(const CriImage& img, v1::Image* out) {
  out->set_id(img.id);
  for (const auto& t : img.repo_tags) out->add_repo_tags(t);
  for (const auto& d : img.repo_digests) out->add_repo_digests(d);
  out->set_size(img.size);
  if (img.uid) out->mutable_uid()->set_value(*img.uid);
  out->set_username(img.username);
  out->mutable_spec()->set_image(img.id);
  out->set_pinned(img.pinned);
}

// The AuthConfig of a pull: `auth` is base64 "user:password" (docker's config.json form).
Result<PullAuth> pull_auth(const v1::AuthConfig& a) {
  PullAuth out;
  out.username = a.username();
  out.password = a.password();
  if (!a.auth().empty()) {
    auto decoded = core::base64_decode(a.auth());
    if (!decoded.ok()) return invalid_argument("auth.auth: {}", decoded.status().message());
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return invalid_argument("auth.auth: not \"user:password\"");
    out.username = decoded->substr(0, colon);
    out.password = decoded->substr(colon + 1);
  }
  out.identity_token = a.identity_token();
  out.registry_token = a.registry_token();
  out.server_address = a.server_address();
  return out;
}

class CriService final : public Plugin,
                         public GrpcService,
                         public v1::RuntimeService::Service,
                         public v1alpha2::RuntimeService::Service,
                         public v1::ImageService::Service,
                         public v1alpha2::ImageService::Service {
 public:
  CriService(Config c, std::string snapshotter_root, std::shared_ptr<metadata::MetadataStore> md,
             std::shared_ptr<diff::DifferPlugin> differ,
             std::shared_ptr<runtime::TaskManager> tasks,
             std::shared_ptr<network::Networks> networks,
             std::shared_ptr<events::Exchange> exchange, PodsConfig pods)
      : c_(std::move(c)),
        snapshotter_root_(std::move(snapshotter_root)),
        tasks_(tasks),
        networks_(networks),
        images_(md, std::move(differ), c_.ns, c_.snapshotter, c_.hosts_dir,
                static_cast<int>(c_.max_concurrent)),
        pods_(std::move(pods), md, std::move(tasks), std::move(networks), std::move(exchange),
              images_) {}

  berth::Status start() { return pods_.start(); }
  berth::Status close() override {
    pods_.stop();
    return berth::Status();
  }

  void register_grpc(grpc::ServerBuilder& builder) override {
    builder.RegisterService(static_cast<v1::RuntimeService::Service*>(this));
    builder.RegisterService(static_cast<v1alpha2::RuntimeService::Service*>(this));
    builder.RegisterService(static_cast<v1::ImageService::Service*>(this));
    builder.RegisterService(static_cast<v1alpha2::ImageService::Service*>(this));
  }

  // ---- runtime: version, status, config ------------------------------------------------------

  GStatus Version(GContext* ctx, const v1::VersionRequest*, v1::VersionResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      out->set_version(kCriVersion);
      out->set_runtime_name("berth");
      out->set_runtime_version(BERTH_VERSION);
      out->set_runtime_api_version("v1");
      return berth::Status();
    });
  }

  GStatus Status(GContext* ctx, const v1::StatusRequest* req, v1::StatusResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      auto* runtime = out->mutable_status()->add_conditions();
      runtime->set_type("RuntimeReady");
      runtime->set_status(tasks_ != nullptr);
      if (!tasks_) {
        runtime->set_reason("RuntimeNotReady");
        runtime->set_message("no io.containerd.runtime.v2 plugin is loaded");
      }
      auto* net = out->mutable_status()->add_conditions();
      net->set_type("NetworkReady");
      auto ready = network_ready();
      net->set_status(ready.ok());
      if (!ready.ok()) {
        net->set_reason("NetworkPluginNotReady");
        net->set_message(ready.message());
      }
      // Every handler by name, and the default once more under "" (what an empty
      // runtime_handler selects).
      for (const auto& [name, type] : c_.runtimes) {
        auto* h = out->add_runtime_handlers();
        h->set_name(name);
        h->mutable_features()->set_recursive_read_only_mounts(true);
      }
      auto* dflt = out->add_runtime_handlers();
      dflt->mutable_features()->set_recursive_read_only_mounts(true);
      if (req->verbose()) {
        nlohmann::json cfg = {{"namespace", c_.ns},
                              {"snapshotter", c_.snapshotter},
                              {"hostsDir", c_.hosts_dir},
                              {"cgroupDriver", c_.cgroup_driver},
                              {"defaultRuntime", c_.default_runtime},
                              {"runtimes", c_.runtimes},
                              {"podCIDR", pod_cidr()}};
        (*out->mutable_info())["config"] = cfg.dump();
      }
      return berth::Status();
    });
  }

  GStatus RuntimeConfig(GContext* ctx, const v1::RuntimeConfigRequest*,
                        v1::RuntimeConfigResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      out->mutable_linux()->set_cgroup_driver(c_.cgroup_driver == "systemd" ? v1::SYSTEMD
                                                                             : v1::CGROUPFS);
      return berth::Status();
    });
  }

  GStatus UpdateRuntimeConfig(GContext* ctx, const v1::UpdateRuntimeConfigRequest* req,
                              v1::UpdateRuntimeConfigResponse*) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      const auto& cidr = req->runtime_config().network_config().pod_cidr();
      if (cidr.size() > 256) return invalid_argument("pod_cidr: longer than 256 characters");
      std::lock_guard lock(mu_);
      if (!cidr.empty()) pod_cidr_ = cidr;
      return berth::Status();
    });
  }

  // ---- pods and containers ---------------------------------------------------------------------

  GStatus RunPodSandbox(GContext* ctx, const v1::RunPodSandboxRequest* req,
                        v1::RunPodSandboxResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      BERTH_TRY(auto id, pods_.run_sandbox(*req));
      out->set_pod_sandbox_id(id);
      return berth::Status();
    });
  }

  GStatus StopPodSandbox(GContext* ctx, const v1::StopPodSandboxRequest* req,
                         v1::StopPodSandboxResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.stop_sandbox(req->pod_sandbox_id()); });
  }

  GStatus RemovePodSandbox(GContext* ctx, const v1::RemovePodSandboxRequest* req,
                           v1::RemovePodSandboxResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.remove_sandbox(req->pod_sandbox_id()); });
  }

  GStatus PodSandboxStatus(GContext* ctx, const v1::PodSandboxStatusRequest* req,
                           v1::PodSandboxStatusResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.sandbox_status(*req, out); });
  }

  GStatus ListPodSandbox(GContext* ctx, const v1::ListPodSandboxRequest* req,
                         v1::ListPodSandboxResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.list_sandboxes(req->filter(), out); });
  }

  GStatus CreateContainer(GContext* ctx, const v1::CreateContainerRequest* req,
                          v1::CreateContainerResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      BERTH_TRY(auto id, pods_.create_container(*req));
      out->set_container_id(id);
      return berth::Status();
    });
  }

  GStatus StartContainer(GContext* ctx, const v1::StartContainerRequest* req,
                         v1::StartContainerResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.start_container(req->container_id()); });
  }

  GStatus StopContainer(GContext* ctx, const v1::StopContainerRequest* req,
                        v1::StopContainerResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.stop_container(req->container_id(), req->timeout()); });
  }

  GStatus RemoveContainer(GContext* ctx, const v1::RemoveContainerRequest* req,
                          v1::RemoveContainerResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.remove_container(req->container_id()); });
  }

  GStatus ListContainers(GContext* ctx, const v1::ListContainersRequest* req,
                         v1::ListContainersResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.list_containers(req->filter(), out); });
  }

  GStatus ContainerStatus(GContext* ctx, const v1::ContainerStatusRequest* req,
                          v1::ContainerStatusResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.container_status(*req, out); });
  }

  GStatus ReopenContainerLog(GContext* ctx, const v1::ReopenContainerLogRequest* req,
                             v1::ReopenContainerLogResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.reopen_log(req->container_id()); });
  }

  GStatus ExecSync(GContext* ctx, const v1::ExecSyncRequest* req, v1::ExecSyncResponse* out) override {
    return serve_unscoped(ctx, [&] {
      return pods_.exec_sync(*req, out, [ctx] { return ctx->IsCancelled(); });
    });
  }

  GStatus UpdateContainerResources(GContext* ctx, const v1::UpdateContainerResourcesRequest* req,
                                   v1::UpdateContainerResourcesResponse*) override {
    return serve_unscoped(ctx, [&] { return pods_.update_resources(*req); });
  }

  GStatus ContainerStats(GContext* ctx, const v1::ContainerStatsRequest* req,
                         v1::ContainerStatsResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.container_stats(req->container_id(), out->mutable_stats()); });
  }

  GStatus ListContainerStats(GContext* ctx, const v1::ListContainerStatsRequest* req,
                             v1::ListContainerStatsResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.list_container_stats(req->filter(), out); });
  }

  GStatus PodSandboxStats(GContext* ctx, const v1::PodSandboxStatsRequest* req,
                          v1::PodSandboxStatsResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.sandbox_stats(req->pod_sandbox_id(), out->mutable_stats()); });
  }

  GStatus ListPodSandboxStats(GContext* ctx, const v1::ListPodSandboxStatsRequest* req,
                              v1::ListPodSandboxStatsResponse* out) override {
    return serve_unscoped(ctx, [&] { return pods_.list_sandbox_stats(req->filter(), out); });
  }

  // The kubelet's evented PLEG: one long stream per subscriber, until it goes away, berthd stops,
  // or it falls too far behind (ResourceExhausted: it relists and subscribes again).
  GStatus GetContainerEvents(GContext* ctx, const v1::GetEventsRequest*,
                             grpc::ServerWriter<v1::ContainerEventResponse>* writer) override {
    auto sub = pods_.events().subscribe();
    GStatus result = GStatus::OK;
    while (!ctx->IsCancelled() && !pods_.stopping()) {
      auto e = sub->next(std::chrono::milliseconds(250));
      if (e) {
        if (!writer->Write(*e)) break;
        continue;
      }
      std::lock_guard lock(sub->mu);
      if (sub->dropped) {
        result = GStatus(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         "the event stream fell too far behind; list again and resubscribe");
        break;
      }
    }
    pods_.events().unsubscribe(sub);
    return result;
  }

  // ---- images ----------------------------------------------------------------------------------

  GStatus ListImages(GContext* ctx, const v1::ListImagesRequest* req,
                     v1::ListImagesResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      const auto& want = req->filter().image().image();
      if (!want.empty()) {
        auto img = images_.find(want);
        if (img.status().code() == Code::kNotFound) return berth::Status();
        if (!img.ok()) return img.status();
        to_proto(*img, out->add_images());
        return berth::Status();
      }
      BERTH_TRY(auto all, images_.list());
      for (const auto& img : all) to_proto(img, out->add_images());
      return berth::Status();
    });
  }

  GStatus ImageStatus(GContext* ctx, const v1::ImageStatusRequest* req,
                      v1::ImageStatusResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      auto img = images_.find(req->image().image());
      // A missing image is an empty answer, not an error (the kubelet then pulls).
      if (img.status().code() == Code::kNotFound) return berth::Status();
      if (!img.ok()) return img.status();
      to_proto(*img, out->mutable_image());
      if (req->verbose()) {
        nlohmann::json info = {{"chainID", images::model::chain_ids(img->resolved.config.diff_ids)
                                               .back()},
                               {"imageSpec", nlohmann::json::parse(img->resolved.config.raw,
                                                                   nullptr, false)},
                               {"manifest", img->resolved.manifest_descriptor.digest},
                               {"names", img->names}};
        if (img->resolved.config.diff_ids.empty()) info["chainID"] = "";
        (*out->mutable_info())["info"] = info.dump();
      }
      return berth::Status();
    });
  }

  GStatus PullImage(GContext* ctx, const v1::PullImageRequest* req,
                    v1::PullImageResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      BERTH_TRY(auto auth, pull_auth(req->auth()));
      BERTH_TRY(auto img, images_.pull(req->image().image(), auth,
                                       [ctx] { return ctx->IsCancelled(); }));
      out->set_image_ref(img.id);
      return berth::Status();
    });
  }

  GStatus RemoveImage(GContext* ctx, const v1::RemoveImageRequest* req,
                      v1::RemoveImageResponse*) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      return images_.remove(req->image().image());
    });
  }

  GStatus ImageFsInfo(GContext* ctx, const v1::ImageFsInfoRequest*,
                      v1::ImageFsInfoResponse* out) override {
    return serve_unscoped(ctx, [&]() -> berth::Status {
      BERTH_TRY(auto usage, image_fs_usage());
      auto* fs = out->add_image_filesystems();
      fs->set_timestamp(now_ns());
      fs->mutable_fs_id()->set_mountpoint(snapshotter_root_);
      fs->mutable_used_bytes()->set_value(usage.first);
      fs->mutable_inodes_used()->set_value(usage.second);
      return berth::Status();
    });
  }

 private:
  berth::Status network_ready() {
    if (!networks_) return failed_precondition("no io.berth.network.v1 plugin is loaded");
    auto nets = networks_->list_networks();
    if (!nets.ok()) return nets.status();
    for (const auto& n : *nets)
      if (n.error.empty()) return berth::Status();
    return failed_precondition("cni config uninitialized: no network configuration loads");
  }

  std::string pod_cidr() {
    std::lock_guard lock(mu_);
    return pod_cidr_;
  }

  // Bytes and inodes of the snapshots of the CRI's namespace (what its images and containers
  // hold), cached for 10 s: the kubelet asks every few seconds and a walk sums every snapshot.
  Result<std::pair<std::uint64_t, std::uint64_t>> image_fs_usage() {
    std::lock_guard lock(usage_mu_);
    auto now = std::chrono::steady_clock::now();
    if (usage_at_ && now - *usage_at_ < std::chrono::seconds(10)) return usage_;
    BERTH_TRY(auto sn, images_.metadata()->snapshotter(c_.snapshotter));
    auto ctx = images_.context();
    std::uint64_t bytes = 0, inodes = 0;
    BERTH_RETURN_IF_ERROR(sn->walk(ctx, {}, [&](const snapshots::Info& info) -> berth::Status {
      auto u = sn->usage(ctx, info.name);
      if (u.ok()) {
        bytes += static_cast<std::uint64_t>(u->size);
        inodes += static_cast<std::uint64_t>(u->inodes);
      }
      return berth::Status();
    }));
    usage_ = {bytes, inodes};
    usage_at_ = now;
    return usage_;
  }

  Config c_;
  std::string snapshotter_root_;
  std::shared_ptr<runtime::TaskManager> tasks_;
  std::shared_ptr<network::Networks> networks_;
  ImageStore images_;
  Pods pods_;
  std::mutex mu_;
  std::string pod_cidr_;
  std::mutex usage_mu_;
  std::optional<std::chrono::steady_clock::time_point> usage_at_;
  std::pair<std::uint64_t, std::uint64_t> usage_{0, 0};
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "cri";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kDiffer),
                      std::string(plugin_type::kRuntimeV2), std::string(network::kPluginType),
                      std::string(plugin_type::kEvent)};
  r.config = [](ConfigReader& in) -> Result<std::shared_ptr<const void>> {
    Config c;
    BERTH_RETURN_IF_ERROR(in.read("namespace", c.ns));
    BERTH_RETURN_IF_ERROR(in.read("snapshotter", c.snapshotter));
    BERTH_RETURN_IF_ERROR(in.read("hosts_dir", c.hosts_dir));
    BERTH_RETURN_IF_ERROR(in.read("max_concurrent_downloads", c.max_concurrent));
    BERTH_RETURN_IF_ERROR(in.read("cgroup_driver", c.cgroup_driver));
    BERTH_RETURN_IF_ERROR(in.read("default_runtime", c.default_runtime));
    BERTH_RETURN_IF_ERROR(in.read("runtimes", c.runtimes));
    BERTH_RETURN_IF_ERROR(in.read("network", c.network));
    BERTH_RETURN_IF_ERROR(in.read("pause_binary", c.pause_binary));
    if (!c.pause_binary.empty() && c.pause_binary.front() != '/')
      return in.invalid("pause_binary", "must be an absolute path");
    if (!validate_identifier(c.ns).ok())
      return in.invalid("namespace", validate_identifier(c.ns).message());
    if (c.max_concurrent < 1 || c.max_concurrent > 64)
      return in.invalid("max_concurrent_downloads", "must be between 1 and 64");
    if (c.cgroup_driver != "cgroupfs" && c.cgroup_driver != "systemd")
      return in.invalid("cgroup_driver", "must be \"cgroupfs\" or \"systemd\"");
    if (!c.runtimes.count(c.default_runtime))
      return in.invalid("default_runtime", "names no entry of runtimes");
    return config_value(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    const auto& c = ic.config<Config>();
    BERTH_TRY(auto md, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    BERTH_TRY(auto differ, ic.get_as<diff::DifferPlugin>(plugin_type::kDiffer));
    // Without a runtime or networks the CRI still serves images and says what is not ready.
    auto tasks = ic.get_as<runtime::TaskManager>(plugin_type::kRuntimeV2);
    auto networks = ic.get_as<network::Networks>(network::kPluginType);
    std::string snapshotter_root =
        (std::filesystem::path(ic.root()).parent_path() /
         ("io.containerd.snapshotter.v1." + c.snapshotter))
            .string();
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    PodsConfig pc;
    pc.ns = c.ns;
    pc.snapshotter = c.snapshotter;
    pc.default_runtime = c.default_runtime;
    pc.runtimes = c.runtimes;
    pc.network = c.network;
    pc.pause_binary = c.pause_binary;
    if (pc.pause_binary.empty()) {
      if (auto found = core::find_executable("berth-pause", {core::executable_dir()}))
        pc.pause_binary = *found;
    }
    pc.root = ic.root();
    pc.state = ic.state();
    pc.snapshotter_root = snapshotter_root;
    ic.exports()["namespace"] = c.ns;
    auto svc = std::make_shared<CriService>(
        c, std::move(snapshotter_root), md, std::move(differ), tasks.ok() ? *tasks : nullptr,
        networks.ok() ? *networks : nullptr, exchange.ok() ? *exchange : nullptr, std::move(pc));
    BERTH_RETURN_IF_ERROR(svc->start());
    return std::shared_ptr<Plugin>(svc);
  };
  return {r};
}

}  // namespace
}  // namespace berth::cri

BERTH_PLUGIN_MODULE(berth::cri::registrations)

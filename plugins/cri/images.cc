#include "plugins/cri/images.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/unpack/daemon_stores.h"

namespace berth::cri {
namespace {

namespace model = images::model;

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
  });
}

// "docker.io/library/busybox:1" -> "docker.io/library/busybox"; digests and the port of a host
// ("reg:5000/x") are not tags.
std::string repository_of(const std::string& name) {
  if (auto at = name.find('@'); at != std::string::npos) return name.substr(0, at);
  auto slash = name.rfind('/');
  auto colon = name.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return name.substr(0, colon);
  return name;
}

bool is_id_name(const std::string& name) { return name.rfind("sha256:", 0) == 0; }

// "host" of a server_address as the kubelet sends it: "https://reg:5000/v1/" -> "reg:5000".
std::string host_of(std::string addr) {
  if (auto p = addr.find("://"); p != std::string::npos) addr = addr.substr(p + 3);
  if (auto p = addr.find('/'); p != std::string::npos) addr = addr.substr(0, p);
  return addr;
}

bool same_registry(const std::string& a, const std::string& b) {
  auto docker = [](const std::string& h) {
    return h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io";
  };
  return a == b || (docker(a) && docker(b));
}

}  // namespace

ImageStore::ImageStore(std::shared_ptr<metadata::MetadataStore> md,
                       std::shared_ptr<diff::DifferPlugin> differ, std::string ns,
                       std::string snapshotter, std::string hosts_dir, int max_concurrent)
    : md_(md),
      transfers_(std::move(md), std::move(differ)),
      ns_(std::move(ns)),
      snapshotter_(std::move(snapshotter)),
      hosts_dir_(std::move(hosts_dir)),
      max_concurrent_(max_concurrent) {}

Result<images::ResolvedImage> ImageStore::resolve(const diff::Descriptor& target) {
  {
    std::lock_guard lock(mu_);
    if (auto it = resolved_.find(target.digest); it != resolved_.end()) return it->second;
  }
  auto ctx = context();
  auto read = [&](const std::string& digest) {
    return unpack::read_document(*md_->content(), ctx, digest);
  };
  BERTH_TRY(auto r, images::resolve_image(read, target, model::host_platform()));
  std::lock_guard lock(mu_);
  if (resolved_.size() > 4096) resolved_.clear();  // bounded: a cache, not a store
  resolved_[target.digest] = r;
  return r;
}

std::vector<CriImage> ImageStore::group(const std::vector<images::Image>& records) {
  std::map<std::string, CriImage> by_id;
  for (const auto& rec : records) {
    auto r = resolve(rec.target);
    if (!r.ok()) continue;  // another platform's image, or content not (yet) all there
    std::string id = r->manifest.config.digest;
    auto& img = by_id[id];
    if (img.id.empty()) {
      img.id = id;
      img.resolved = *r;
      img.record = rec;
      img.size = static_cast<std::uint64_t>(r->manifest_descriptor.size + r->manifest.config.size);
      for (const auto& l : r->manifest.layers) img.size += static_cast<std::uint64_t>(l.size);
      // The config's User: "uid[:gid]" or "name[:group]".
      auto cfg = nlohmann::json::parse(r->config.raw, nullptr, false);
      std::string user;
      if (cfg.is_object() && cfg.contains("config") && cfg["config"].is_object() &&
          cfg["config"].contains("User") && cfg["config"]["User"].is_string())
        user = cfg["config"]["User"].get<std::string>();
      user = user.substr(0, user.find(':'));
      if (!user.empty() && std::all_of(user.begin(), user.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
          }) && user.size() < 10) {
        img.uid = std::stoll(user);
      } else if (!user.empty()) {
        img.username = user;
      } else {
        img.uid = 0;  // no User: root, as the kubelet expects a value
      }
    }
    img.names.push_back(rec.name);
    if (rec.labels.count(kPinnedLabel) && rec.labels.at(kPinnedLabel) == "pinned") img.pinned = true;
    if (is_id_name(rec.name)) continue;
    if (rec.name.find('@') != std::string::npos) {
      img.repo_digests.push_back(rec.name);
    } else {
      img.repo_tags.push_back(rec.name);
      img.repo_digests.push_back(repository_of(rec.name) + "@" + rec.target.digest);
    }
  }
  std::vector<CriImage> out;
  for (auto& [id, img] : by_id) {
    for (auto* v : {&img.repo_tags, &img.repo_digests, &img.names}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    out.push_back(std::move(img));
  }
  return out;
}

Result<std::vector<CriImage>> ImageStore::list() {
  BERTH_TRY(auto records, md_->images().list(context(), {}));
  return group(records);
}

Result<CriImage> ImageStore::find(const std::string& spec) {
  if (spec.empty()) return invalid_argument("image: a reference or an ID is required");
  // An ID, full ("sha256:<64 hex>") or a prefix of its hex (at least 12, as `crictl` shows).
  std::string hex = spec.rfind("sha256:", 0) == 0 ? spec.substr(7) : spec;
  bool id_like = is_hex(hex) && hex.size() <= 64 &&
                 (spec.rfind("sha256:", 0) == 0 ? hex.size() == 64 : hex.size() >= 12);
  if (id_like) {
    BERTH_TRY(auto all, list());
    std::vector<CriImage> hits;
    for (auto& img : all)
      if (img.id.compare(7, hex.size(), hex) == 0) hits.push_back(std::move(img));
    if (hits.size() == 1) return std::move(hits.front());
    if (hits.size() > 1)
      return invalid_argument("image ID prefix \"{}\" matches {} images", spec, hits.size());
    if (spec.rfind("sha256:", 0) == 0) return not_found("image \"{}\" not found", spec);
    // A 12+ character hex name that is no ID: try it as a reference below.
  }
  auto name = model::normalize_reference(spec);
  if (!name.ok())
    return invalid_argument("image \"{}\": {}", spec, name.status().message());
  auto rec = md_->images().get(context(), *name);
  if (!rec.ok()) {
    if (rec.status().code() == Code::kNotFound) return not_found("image \"{}\" not found", spec);
    return rec.status();
  }
  auto r = resolve(rec->target);
  if (!r.ok()) return not_found("image \"{}\": {}", spec, r.status().message());
  // Every record of the same image.
  BERTH_TRY(auto all, list());
  for (auto& img : all)
    if (img.id == r->manifest.config.digest) return std::move(img);
  return not_found("image \"{}\" not found", spec);
}

Status ImageStore::save_record(const std::string& name, const diff::Descriptor& target,
                               std::map<std::string, std::string> labels) {
  images::Image image;
  image.name = name;
  image.target = target;
  image.labels = std::move(labels);
  auto ctx = context();
  auto saved = md_->images().create(ctx, image);
  if (saved.status().code() == Code::kAlreadyExists) {
    std::vector<std::string> paths = {"target"};
    for (const auto& [k, v] : image.labels) paths.push_back("labels." + k);
    saved = md_->images().update(ctx, image, paths);
  }
  return saved.status();
}

Result<CriImage> ImageStore::pull(const std::string& ref, const PullAuth& auth,
                                  const std::function<bool()>& cancelled) {
  if (ref.empty()) return invalid_argument("image: a reference is required");
  auto name = model::normalize_reference(ref);
  if (!name.ok()) return invalid_argument("image \"{}\": {}", ref, name.status().message());
  transfer::PullOptions o;
  o.ref = *name;
  o.platform = model::host_platform();
  o.snapshotter = snapshotter_;
  o.max_concurrent = max_concurrent_;
  o.registry.hosts_dir = hosts_dir_;
  o.labels = {{kManagedLabel, "managed"}};
  // Credentials go to the registry they are for and nowhere else.
  std::string host = repository_of(*name);
  host = host.substr(0, host.find('/'));
  if (auth.server_address.empty() || same_registry(host_of(auth.server_address), host)) {
    o.registry.host.username = auth.username;
    o.registry.host.password = auth.password;
    if (!auth.identity_token.empty()) o.registry.host.password = auth.identity_token;
    if (!auth.registry_token.empty())
      o.registry.host.headers["Authorization"] = "Bearer " + auth.registry_token;
  }
  RequestContext ctx{ns_, "", cancelled};
  BERTH_TRY(auto pulled, transfers_.pull(ctx, o, [](const transfer::Progress&) {}));
  BERTH_TRY(auto r, resolve(pulled.image.target));
  const auto& target = pulled.image.target;
  // The repo digest and the ID, as containerd's CRI names them.
  if (name->find('@') == std::string::npos)
    BERTH_RETURN_IF_ERROR(
        save_record(repository_of(*name) + "@" + target.digest, target, o.labels));
  BERTH_RETURN_IF_ERROR(save_record(r.manifest.config.digest, target, o.labels));
  return find(r.manifest.config.digest);
}

Status ImageStore::remove(const std::string& spec) {
  auto img = find(spec);
  if (!img.ok()) return img.status().code() == Code::kNotFound ? Status() : img.status();
  for (const auto& n : img->names) {
    Status st = md_->images().remove(context(), n);
    if (!st.ok() && st.code() != Code::kNotFound) return st;
  }
  return Status();
}

}  // namespace berth::cri

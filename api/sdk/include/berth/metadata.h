// The metadata store (io.containerd.metadata.v1.*): namespaced records that survive a restart.
// Thread-safe; every method may be called concurrently from gRPC handlers.
#pragma once

#include <berth/containers.h>
#include <berth/content.h>
#include <berth/gc.h>
#include <berth/images.h>
#include <berth/leases.h>
#include <berth/plugin.h>
#include <berth/snapshots.h>

#include <map>
#include <string>
#include <vector>

namespace berth::metadata {

struct Namespace {
  std::string name;
  std::map<std::string, std::string> labels;
};

class BERTH_API NamespaceStore {
 public:
  virtual ~NamespaceStore() = default;
  // InvalidArgument for a bad name or label; AlreadyExists when it exists.
  virtual Status create(const Namespace& ns) = 0;
  // NotFound when absent.
  virtual Result<Namespace> get(std::string_view name) = 0;
  virtual Result<std::vector<Namespace>> list() = 0;
  // Field paths: empty or "labels" replaces all labels; "labels.<key>" sets (or, with no value in
  // ns.labels, removes) one label. Returns the namespace as stored.
  virtual Result<Namespace> update(const Namespace& ns, const std::vector<std::string>& paths) = 0;
  // FailedPrecondition when the namespace still holds anything; NotFound when absent.
  virtual Status remove(std::string_view name) = 0;
};

class BERTH_API MetadataStore : public virtual Plugin {
 public:
  virtual NamespaceStore& namespaces() = 0;
  // The namespaced view of the backend content store: what clients see.
  virtual std::shared_ptr<content::Store> content() = 0;
  virtual leases::Manager& leases() = 0;
  virtual images::Store& images() = 0;
  virtual containers::Store& containers() = 0;
  virtual gc::Collector& collector() = 0;
  // The namespaced view of a backend snapshotter, by id ("overlayfs", "native", a proxy name).
  virtual Result<std::shared_ptr<snapshots::Snapshotter>> snapshotter(std::string_view name) = 0;
  virtual std::vector<std::string> snapshotter_names() = 0;
};

}  // namespace berth::metadata

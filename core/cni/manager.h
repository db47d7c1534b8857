// Attachments: a container's (or pod's) network namespace joined to CNI networks. One per
// namespace/id, recorded on disk before anything is created so that whatever a crash leaves is
// found and torn down later, with the ADD results cached as libcni does so DEL works after a
// restart or a config change. Operations on one id are serialised; different ids run in parallel.
//
// On disk:
//   <root>/attachments/<ns>/<id>.json        the record (networks with their configs, ports, ...)
//   <root>/results/<net>-<cni id>-<ifname>   libcni's cache format ("cniCacheV1")
//   <state>/netns/<cni id>                   the pinned network namespace
//   <state>/etc/<ns>/<id>/{hosts,resolv.conf,hostname}
// Records and results are durable (host-local leases are too, and DEL releases them after a
// reboot); the namespace and files are runtime state.
#pragma once

#include <berth/network.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cni/config.h"
#include "core/cni/invoke.h"

namespace berth::cni {

struct ManagerOptions {
  std::vector<std::string> bin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};
  std::string conf_dir = "/etc/berth/cni/net.d";
  std::string root, state;
  // Bring lo up in every namespace (what the CRI's loopback network does, without a process).
  bool loopback = true;
  // Write the default network into conf_dir when it is asked for and not configured.
  bool write_default = true;
  DefaultNetwork default_network;
  std::chrono::milliseconds plugin_timeout{std::chrono::seconds(60)};
  std::string host_resolv_conf = "/etc/resolv.conf";
};

class Manager {
 public:
  static Result<std::unique_ptr<Manager>> open(ManagerOptions o);

  Result<std::vector<network::NetworkInfo>> list_networks();
  Result<network::Attachment> attach(const std::string& ns, const std::string& id,
                                     const network::AttachOptions& opts);
  Status detach(const std::string& ns, const std::string& id);
  Status check(const std::string& ns, const std::string& id);
  Result<network::Attachment> get(const std::string& ns, const std::string& id);
  // "" for every namespace.
  Result<std::vector<network::Attachment>> list(const std::string& ns);

  struct Collected {
    network::Attachment attachment;
    Status status;  // of its teardown
  };
  // Tears down every attachment `stale` picks (garbage collection of attachments whose container
  // is gone, and at start those whose namespace did not survive a reboot).
  std::vector<Collected> collect(const std::function<bool(const network::Attachment&)>& stale);

  const ManagerOptions& options() const { return o_; }
  // CNI_CONTAINERID of an attachment: readable, and unique across namespaces.
  static std::string cni_id(const std::string& ns, const std::string& id);

 private:
  explicit Manager(ManagerOptions o);
  struct Record;
  std::shared_ptr<std::mutex> lock_for(const std::string& ns, const std::string& id);
  Result<NetworkList> resolve(const std::string& name);
  std::string record_path(const std::string& ns, const std::string& id) const;
  std::string etc_dir(const std::string& ns, const std::string& id) const;
  Result<std::optional<Record>> read_record(const std::string& ns, const std::string& id);
  Status write_record(const Record& r, bool durable = true);
  // keep_on_error: a failed DEL keeps the record for a retry (not after a failed ADD: the
  // plugin that failed may not DEL what it never made, and nothing else would retry it).
  Status teardown(Record& r, bool keep_on_error = true);

  ManagerOptions o_;
  Invoker invoker_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> locks_;
};

}  // namespace berth::cni

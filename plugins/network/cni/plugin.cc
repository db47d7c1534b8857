// io.berth.network.v1.cni: networks for containers and pods through CNI (core/cni).
//
//   [plugins."io.berth.network.v1.cni"]
//     bin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]   # where the CNI plugins are
//     conf_dir = "/etc/berth/cni/net.d"             # .conflist/.conf/.json network configs
//     loopback = true                               # bring lo up in each namespace
//     plugin_timeout = "60s"
//     write_default_network = true                  # write "berth" on first use when absent
//     default_network = "berth"
//     default_bridge = "berth0"
//     default_subnet = "10.89.0.0/24"
//     default_masquerade = true                     # outbound NAT for the default network
//
// An attachment of a container lives as long as its record: the plugin watches /containers/delete
// and tears down the attachment of a container that is gone (CNI DEL, netns, files), and at start
// it collects those whose container went while the daemon was down.
#include <berth/events.h>
#include <berth/identifiers.h>
#include <berth/metadata.h>
#include <berth/network.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "berth/network/v1/network.pb.h"
#include "core/cni/manager.h"
#include "core/log.h"
#include "github.com/containerd/containerd/api/events/container.pb.h"

namespace berth::plugins::network_cni {
namespace {

namespace pb = ::berth::services::network::v1;

struct Config {
  cni::ManagerOptions manager;
};

class CniNetworks final : public network::Networks {
 public:
  CniNetworks(std::unique_ptr<cni::Manager> m, std::shared_ptr<metadata::MetadataStore> meta,
              std::shared_ptr<events::Exchange> exchange)
      : m_(std::move(m)), meta_(std::move(meta)), exchange_(std::move(exchange)) {}

  ~CniNetworks() override { stop(); }

  Status start() {
    if (!exchange_) return Status();
    BERTH_TRY(sub_, exchange_->subscribe({"topic==\"/containers/delete\""}));
    watcher_ = std::thread([this] { watch(); });
    return Status();
  }

  Status close() override {
    stop();
    return Status();
  }

  Result<std::vector<network::NetworkInfo>> list_networks() override {
    return m_->list_networks();
  }

  Result<network::Attachment> attach(const RequestContext& ctx, std::string_view id,
                                     const network::AttachOptions& in) override {
    network::AttachOptions opts = in;
    if (opts.owned_by_container && meta_) {
      // The attachment belongs to the record: no record, no attachment to leak.
      auto ct = meta_->containers().get(ctx, id);
      if (!ct.ok())
        return ct.status().with_context(fmt::format("attach networks to container {}", id));
      opts.owner_created = ct->created_at;
    }
    auto a = m_->attach(ctx.ns, std::string(id), opts);
    if (!a.ok()) {
      publish_error(ctx.ns, id, "attach", a.status());
      return a;
    }
    pb::NetworkAttach e;
    e.set_container_id(std::string(id));
    for (const auto& n : a->networks) e.add_networks(n);
    for (const auto& ip : a->ips()) e.add_ips(ip);
    publish(ctx.ns, "/network/attach", e);
    return a;
  }

  Status detach(const RequestContext& ctx, std::string_view id) override {
    bool had = m_->get(ctx.ns, std::string(id)).ok();
    Status st = m_->detach(ctx.ns, std::string(id));
    if (!st.ok()) {
      publish_error(ctx.ns, id, "detach", st);
      return st;
    }
    if (had) {
      pb::NetworkDetach e;
      e.set_container_id(std::string(id));
      publish(ctx.ns, "/network/detach", e);
    }
    return st;
  }

  Status check(const RequestContext& ctx, std::string_view id) override {
    return m_->check(ctx.ns, std::string(id));
  }
  Result<network::Attachment> get(const RequestContext& ctx, std::string_view id) override {
    return m_->get(ctx.ns, std::string(id));
  }
  Result<std::vector<network::Attachment>> list(const RequestContext& ctx) override {
    return m_->list(ctx.ns);
  }

 private:
  void publish(const std::string& ns, const char* topic, const google::protobuf::Message& m) {
    if (exchange_)
      exchange_->publish(ns, topic, m.GetDescriptor()->full_name(), m.SerializeAsString())
          .ignore();
  }
  void publish_error(const std::string& ns, std::string_view id, const char* op,
                     const Status& st) {
    if (!validate_identifier(ns).ok()) return;
    pb::NetworkError e;
    e.set_container_id(std::string(id));
    e.set_operation(op);
    e.set_message(st.message());
    publish(ns, "/network/error", e);
  }

  // Whether the container an attachment belongs to is gone (or is a newer one of the same id).
  bool owner_gone(const network::Attachment& a) {
    if (!a.owned_by_container || !meta_) return false;
    RequestContext rc;
    rc.ns = a.ns;
    auto ct = meta_->containers().get(rc, a.id);
    if (!ct.ok()) return ct.status().code() == Code::kNotFound;
    return ct->created_at > a.created_at;
  }

  void collect() {
    for (const auto& c : m_->collect([this](const network::Attachment& a) { return owner_gone(a); })) {
      if (c.status.ok()) {
        log::info("network attachment torn down", {{"namespace", c.attachment.ns},
                                                   {"id", c.attachment.id}});
        pb::NetworkDetach e;
        e.set_container_id(c.attachment.id);
        publish(c.attachment.ns, "/network/detach", e);
      } else {
        log::warn("network attachment not torn down", {{"namespace", c.attachment.ns},
                                                       {"id", c.attachment.id},
                                                       {"error", c.status.message()}});
        publish_error(c.attachment.ns, c.attachment.id, "detach", c.status);
      }
    }
  }

  void watch() {
    collect();  // what went while the daemon was down
    while (!stopping_) {
      auto env = sub_->next(std::chrono::milliseconds(500));
      if (!env) continue;
      ::containerd::events::ContainerDelete e;
      if (!e.ParseFromString(env->payload) || e.id().empty()) continue;
      auto a = m_->get(env->ns, e.id());
      if (!a.ok() || !owner_gone(*a)) continue;
      RequestContext rc;
      rc.ns = env->ns;
      detach(rc, e.id()).ignore();
    }
  }

  void stop() {
    stopping_ = true;
    if (sub_) sub_->close();
    if (watcher_.joinable()) watcher_.join();
  }

  std::unique_ptr<cni::Manager> m_;
  std::shared_ptr<metadata::MetadataStore> meta_;
  std::shared_ptr<events::Exchange> exchange_;
  std::shared_ptr<events::Subscription> sub_;
  std::thread watcher_;
  std::atomic<bool> stopping_{false};
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(network::kPluginType);
  r.id = "cni";
  r.requires_types = {std::string(plugin_type::kMetadata), std::string(plugin_type::kEvent)};
  r.config = [](ConfigReader& rd) -> Result<std::shared_ptr<const void>> {
    auto c = std::make_shared<Config>();
    auto& m = c->manager;
    BERTH_RETURN_IF_ERROR(rd.read("bin_dirs", m.bin_dirs));
    BERTH_RETURN_IF_ERROR(rd.read("conf_dir", m.conf_dir));
    BERTH_RETURN_IF_ERROR(rd.read("loopback", m.loopback));
    BERTH_RETURN_IF_ERROR(rd.read_duration("plugin_timeout", m.plugin_timeout));
    BERTH_RETURN_IF_ERROR(rd.read("write_default_network", m.write_default));
    BERTH_RETURN_IF_ERROR(rd.read("default_network", m.default_network.name));
    BERTH_RETURN_IF_ERROR(rd.read("default_bridge", m.default_network.bridge));
    BERTH_RETURN_IF_ERROR(rd.read("default_subnet", m.default_network.subnet));
    BERTH_RETURN_IF_ERROR(rd.read("default_masquerade", m.default_network.masquerade));
    if (m.bin_dirs.empty()) return rd.invalid("bin_dirs", "needs at least one directory");
    if (m.conf_dir.empty()) return rd.invalid("conf_dir", "must not be empty");
    if (m.plugin_timeout.count() <= 0) return rd.invalid("plugin_timeout", "must be positive");
    if (Status st = cni::validate_name("network", m.default_network.name); !st.ok())
      return rd.invalid("default_network", st.message());
    if (m.default_network.bridge.empty() || m.default_network.bridge.size() > 15)
      return rd.invalid("default_bridge", "an interface name of 1 to 15 characters");
    return std::shared_ptr<const void>(c);
  };
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    if (::geteuid() != 0) return skip("network namespaces and CNI need root");
    cni::ManagerOptions o = ic.config<Config>().manager;
    o.root = ic.root();
    o.state = ic.state();
    o.default_network.ipam_dir = ic.root() + "/ipam";
    BERTH_TRY(auto m, cni::Manager::open(o));
    BERTH_TRY(auto meta, ic.get_as<metadata::MetadataStore>(plugin_type::kMetadata));
    auto exchange = ic.get_as<events::Exchange>(plugin_type::kEvent);
    auto p = std::make_shared<CniNetworks>(std::move(m), std::move(meta),
                                           exchange.ok() ? *exchange : nullptr);
    BERTH_RETURN_IF_ERROR(p->start());
    ic.exports()["conf_dir"] = o.conf_dir;
    std::string dirs;
    for (const auto& d : o.bin_dirs) dirs += (dirs.empty() ? "" : ":") + d;
    ic.exports()["bin_dirs"] = dirs;
    return std::shared_ptr<Plugin>(p);
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::network_cni

BERTH_PLUGIN_MODULE(berth::plugins::network_cni::registrations)

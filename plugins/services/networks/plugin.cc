// io.containerd.grpc.v1.networks: berth.services.network.v1.Networks over io.berth.network.v1.
#include <berth/grpc.h>
#include <berth/network.h>
#include <berth/proto_time.h>

#include "berth/network/v1/network.grpc.pb.h"
#include "core/cni/etc_files.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::berth::services::network::v1;

void to_proto(const network::Attachment& a, pb::Attachment* out) {
  out->set_namespace_(a.ns);
  out->set_container_id(a.id);
  out->set_netns_path(a.netns_path);
  out->set_hosts_path(a.hosts_path);
  out->set_resolv_conf_path(a.resolv_conf_path);
  out->set_hostname_path(a.hostname_path);
  out->set_hostname(a.hostname);
  for (const auto& n : a.networks) out->add_networks(n);
  for (const auto& p : a.ports) {
    auto* m = out->add_ports();
    m->set_host_port(p.host_port);
    m->set_container_port(p.container_port);
    m->set_protocol(p.protocol);
    m->set_host_ip(p.host_ip);
  }
  for (const auto& i : a.interfaces) {
    auto* m = out->add_interfaces();
    m->set_network(i.network);
    m->set_name(i.name);
    m->set_mac(i.mac);
    for (const auto& x : i.addresses) m->add_addresses(x);
    for (const auto& x : i.gateways) m->add_gateways(x);
  }
  berth::to_proto(a.created_at, out->mutable_created_at());
}

class NetworksService final : public Plugin, public GrpcService, public pb::Networks::Service {
 public:
  explicit NetworksService(std::shared_ptr<network::Networks> n) : n_(std::move(n)) {}

  void register_grpc(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status List(grpc::ServerContext* ctx, const pb::ListNetworksRequest*,
                    pb::ListNetworksResponse* out) override {
    return serve_unscoped(ctx, [&]() -> Status {
      BERTH_TRY(auto all, n_->list_networks());
      for (const auto& n : all) {
        auto* m = out->add_networks();
        m->set_name(n.name);
        m->set_cni_version(n.cni_version);
        m->set_file(n.file);
        for (const auto& p : n.plugins) m->add_plugins(p);
        m->set_config(n.config);
        m->set_error(n.error);
      }
      return Status();
    });
  }

  grpc::Status Attach(grpc::ServerContext* ctx, const pb::AttachRequest* req,
                      pb::AttachResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      network::AttachOptions o;
      o.networks = {req->networks().begin(), req->networks().end()};
      for (const auto& p : req->ports()) {
        if (p.host_port() > 65535 || p.container_port() > 65535)
          return invalid_argument("port mapping {}:{}: ports must be 1-65535", p.host_port(),
                                  p.container_port());
        o.ports.push_back({static_cast<std::uint16_t>(p.host_port()),
                           static_cast<std::uint16_t>(p.container_port()),
                           p.protocol().empty() ? "tcp" : p.protocol(), p.host_ip()});
      }
      o.dns.servers = {req->dns_servers().begin(), req->dns_servers().end()};
      o.dns.searches = {req->dns_searches().begin(), req->dns_searches().end()};
      o.dns.options = {req->dns_options().begin(), req->dns_options().end()};
      o.hostname = req->hostname();
      for (const auto& h : req->extra_hosts()) {
        BERTH_TRY(auto parsed, cni::parse_extra_host(h));
        o.extra_hosts.push_back(parsed);
      }
      BERTH_TRY(auto a, n_->attach(rc, req->container_id(), o));
      to_proto(a, out->mutable_attachment());
      return Status();
    });
  }

  grpc::Status Detach(grpc::ServerContext* ctx, const pb::DetachRequest* req,
                      google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) { return n_->detach(rc, req->container_id()); });
  }

  grpc::Status Check(grpc::ServerContext* ctx, const pb::CheckRequest* req,
                     google::protobuf::Empty*) override {
    return serve(ctx, [&](const RequestContext& rc) { return n_->check(rc, req->container_id()); });
  }

  grpc::Status GetAttachment(grpc::ServerContext* ctx, const pb::GetAttachmentRequest* req,
                             pb::GetAttachmentResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto a, n_->get(rc, req->container_id()));
      to_proto(a, out->mutable_attachment());
      return Status();
    });
  }

  grpc::Status ListAttachments(grpc::ServerContext* ctx, const pb::ListAttachmentsRequest*,
                               pb::ListAttachmentsResponse* out) override {
    return serve(ctx, [&](const RequestContext& rc) -> Status {
      BERTH_TRY(auto all, n_->list(rc));
      for (const auto& a : all) to_proto(a, out->add_attachments());
      return Status();
    });
  }

 private:
  std::shared_ptr<network::Networks> n_;
};

std::vector<Registration> registrations() {
  Registration r;
  r.type = std::string(plugin_type::kGrpc);
  r.id = "networks";
  r.requires_types = {std::string(network::kPluginType)};
  r.init = [](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
    auto n = ic.get_as<network::Networks>(network::kPluginType);
    if (!n.ok()) {
      if (is_skip(n.status())) return skip("no network plugin ({})", n.status().message());
      return n.status();
    }
    return std::shared_ptr<Plugin>(std::make_shared<NetworksService>(std::move(*n)));
  };
  return {r};
}

}  // namespace
}  // namespace berth::plugins::services

BERTH_PLUGIN_MODULE(berth::plugins::services::registrations)

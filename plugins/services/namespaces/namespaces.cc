#include "plugins/services/namespaces/namespaces.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::namespaces::v1;

void to_proto(const metadata::Namespace& ns, pb::Namespace* out) {
  out->set_name(ns.name);
  for (const auto& [k, v] : ns.labels) (*out->mutable_labels())[k] = v;
}

metadata::Namespace from_proto(const pb::Namespace& in) {
  metadata::Namespace ns;
  ns.name = in.name();
  for (const auto& [k, v] : in.labels()) ns.labels[k] = v;
  return ns;
}

}  // namespace

NamespacesService::NamespacesService(std::shared_ptr<metadata::MetadataStore> store)
    : store_(std::move(store)) {}

grpc::Status NamespacesService::Get(grpc::ServerContext* ctx, const pb::GetNamespaceRequest* req,
                                    pb::GetNamespaceResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto ns = store_->namespaces().get(req->name());
    if (ns.status().code() == Code::kNotFound) {
      // As containerd: a namespace comes into being on first use, so one not created yet is
      // answered with its name and no labels (dockerd asks for "moby" before using it).
      if (Status st = validate_identifier(req->name()); !st.ok())
        return invalid_argument("namespace \"{}\": {}", req->name(), st.message());
      out->mutable_namespace_()->set_name(req->name());
      return Status();
    }
    if (!ns.ok()) return ns.status();
    to_proto(*ns, out->mutable_namespace_());
    return Status();
  });
}

grpc::Status NamespacesService::List(grpc::ServerContext* ctx, const pb::ListNamespacesRequest*,
                                     pb::ListNamespacesResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto all = store_->namespaces().list();
    if (!all.ok()) return all.status();
    for (const auto& ns : *all) to_proto(ns, out->add_namespaces());
    return Status();
  });
}

grpc::Status NamespacesService::Create(grpc::ServerContext* ctx,
                                       const pb::CreateNamespaceRequest* req,
                                       pb::CreateNamespaceResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto ns = from_proto(req->namespace_());
    if (Status st = validate_identifier(ns.name); !st.ok()) {
      return invalid_argument("namespace \"{}\": {}", ns.name, st.message());
    }
    if (Status st = store_->namespaces().create(ns); !st.ok()) return st;
    to_proto(ns, out->mutable_namespace_());
    return Status();
  });
}

grpc::Status NamespacesService::Update(grpc::ServerContext* ctx,
                                       const pb::UpdateNamespaceRequest* req,
                                       pb::UpdateNamespaceResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto ns = from_proto(req->namespace_());
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    auto updated = store_->namespaces().update(ns, paths);
    if (!updated.ok()) return updated.status();
    to_proto(*updated, out->mutable_namespace_());
    return Status();
  });
}

grpc::Status NamespacesService::Delete(grpc::ServerContext* ctx,
                                       const pb::DeleteNamespaceRequest* req,
                                       google::protobuf::Empty*) {
  return serve_unscoped(ctx, [&]() -> Status { return store_->namespaces().remove(req->name()); });
}

}  // namespace berth::plugins::services

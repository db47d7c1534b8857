// The gRPC edge of the SDK: how a plugin serves a gRPC service on berthd's socket, and the
// conversions every service needs (Status <-> grpc::Status, namespace and lease headers).
#pragma once

#include <berth/context.h>
#include <berth/identifiers.h>
#include <berth/plugin.h>
#include <berth/proto_time.h>
#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>

namespace berth {

// A plugin instance that also implements GrpcService has its services registered on the daemon's
// gRPC server after every plugin has initialised. The instance must outlive the server (it does:
// the server stops before plugins close).
class BERTH_API GrpcService {
 public:
  virtual ~GrpcService() = default;
  virtual void register_grpc(grpc::ServerBuilder& builder) = 0;
};

// Codes share gRPC's numbers, so this is a cast.
inline grpc::Status to_grpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
}

inline Status from_grpc(const grpc::Status& s) {
  if (s.ok()) return Status();
  return Status(static_cast<Code>(s.error_code()), s.error_message());
}

inline constexpr const char* kNamespaceHeader = "containerd-namespace";
inline constexpr const char* kLeaseHeader = "containerd-lease";

inline std::optional<std::string> header(const grpc::ServerContext& ctx, const char* key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

// The namespace of a call: FailedPrecondition when the header is missing, InvalidArgument when the
// name is not a valid identifier.
inline Result<std::string> request_namespace(const grpc::ServerContext& ctx) {
  auto ns = header(ctx, kNamespaceHeader);
  if (!ns || ns->empty()) return failed_precondition("namespace is required");
  if (Status st = validate_identifier(*ns); !st.ok()) {
    return invalid_argument("namespace \"{}\": {}", *ns, st.message());
  }
  return *ns;
}

// The namespace, lease and liveness of a call, for the stores.
inline Result<RequestContext> request_context(grpc::ServerContext& ctx) {
  BERTH_TRY(auto ns, request_namespace(ctx));
  RequestContext rc;
  rc.ns = std::move(ns);
  if (auto lease = header(ctx, kLeaseHeader)) rc.lease = *lease;
  rc.cancelled = [&ctx] { return ctx.IsCancelled(); };
  return rc;
}

// The one gRPC edge of a handler: `body` does the work and returns a Status; serve() converts it,
// turns an exception into Internal (one bad request never takes the daemon down), and reports a
// call its client abandoned as Cancelled rather than as whatever the interrupted work returned.
template <typename Body>
grpc::Status serve_unscoped(grpc::ServerContext* ctx, Body&& body) {
  Status s;
  try {
    s = body();
  } catch (const std::exception& e) {
    s = Status(Code::kInternal, std::string("unexpected failure: ") + e.what());
  } catch (...) {
    s = Status(Code::kInternal, "unexpected failure");
  }
  if (!s.ok() && ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled by the client");
  return to_grpc(s);
}

// The same for a namespaced call: `body(rc)` gets the call's RequestContext (namespace, lease,
// cancellation); a missing or invalid namespace fails before the body runs.
template <typename Body>
grpc::Status serve(grpc::ServerContext* ctx, Body&& body) {
  return serve_unscoped(ctx, [&]() -> Status {
    BERTH_TRY(auto rc, request_context(*ctx));
    return body(static_cast<const RequestContext&>(rc));
  });
}

}  // namespace berth

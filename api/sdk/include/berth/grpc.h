// The gRPC edge of the SDK: how a plugin serves a gRPC service on berthd's socket, and the
// conversions every service needs (Status <-> grpc::Status, namespace and lease headers).
#pragma once

#include <berth/context.h>
#include <berth/identifiers.h>
#include <berth/plugin.h>
#include <google/protobuf/timestamp.pb.h>
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

inline void to_proto(Timestamp t, google::protobuf::Timestamp* out) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  out->set_seconds(ns / 1'000'000'000);
  out->set_nanos(static_cast<int>(ns % 1'000'000'000));
}

inline Timestamp from_proto(const google::protobuf::Timestamp& t) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
}

}  // namespace berth

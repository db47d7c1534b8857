// A snapshotter served by another process over containerd's Snapshots gRPC API (what
// [proxy_plugins.NAME] type = "snapshot" declares). Every request names the snapshotter NAME and
// carries the caller's namespace header, as containerd's proxy does.
#pragma once

#include <berth/snapshots.h>
#include <grpcpp/grpcpp.h>

#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"

namespace berth::snapshotters {

class ProxySnapshotter final : public snapshots::Snapshotter {
 public:
  // `address` is a unix socket path. The channel connects lazily and reconnects on its own.
  ProxySnapshotter(std::string name, const std::string& address);

  Result<snapshots::Info> stat(const RequestContext& ctx, std::string_view key) override;
  Result<snapshots::Info> update(const RequestContext& ctx, const snapshots::Info& info,
                                 const std::vector<std::string>& paths) override;
  Result<snapshots::Usage> usage(const RequestContext& ctx, std::string_view key) override;
  Result<std::vector<Mount>> mounts(const RequestContext& ctx, std::string_view key) override;
  Result<std::vector<Mount>> prepare(const RequestContext& ctx, std::string_view key,
                                     std::string_view parent,
                                     const std::map<std::string, std::string>& labels) override;
  Result<std::vector<Mount>> view(const RequestContext& ctx, std::string_view key,
                                  std::string_view parent,
                                  const std::map<std::string, std::string>& labels) override;
  Status commit(const RequestContext& ctx, std::string_view name, std::string_view key,
                const std::map<std::string, std::string>& labels) override;
  Status remove(const RequestContext& ctx, std::string_view key) override;
  Status walk(const RequestContext& ctx, const std::vector<std::string>& filters,
              const snapshots::WalkFn& fn) override;
  Status cleanup(const RequestContext& ctx) override;

 private:
  std::unique_ptr<grpc::ClientContext> context(const RequestContext& ctx) const;
  Status check(const grpc::Status& s, std::string_view what) const;

  std::string name_;
  std::string address_;
  std::unique_ptr<::containerd::services::snapshots::v1::Snapshots::Stub> stub_;
};

}  // namespace berth::snapshotters

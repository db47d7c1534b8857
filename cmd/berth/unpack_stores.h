// The CLI's `unpack::Stores`: the daemon's Snapshots, Diff, Content and Leases services, every
// call under the command's lease. With it the CLI runs the same unpack sequence as the daemon
// (core/unpack), not a copy of it.
#pragma once

#include <string>

#include "cmd/berth/client.h"
#include "core/unpack/unpack.h"

namespace berth::cli {

class UnpackStores final : public unpack::Stores {
 public:
  UnpackStores(Client& c, std::string snapshotter, std::string lease)
      : c_(c), snapshotter_(std::move(snapshotter)), lease_(std::move(lease)) {}

  const std::string& snapshotter() const override { return snapshotter_; }
  Status stat(const std::string& name) override;
  Result<std::vector<Mount>> prepare(const std::string& key, const std::string& parent) override;
  Result<std::string> apply(const diff::Descriptor& layer,
                            const std::vector<Mount>& mounts) override;
  Status commit(const std::string& name, const std::string& key) override;
  Status remove(const std::string& key) override;
  Status lease(const std::string& name) override;
  Status label(const std::string& digest,
               const std::map<std::string, std::string>& labels) override;

 private:
  Client& c_;
  std::string snapshotter_, lease_;
};

}  // namespace berth::cli

// Container records from the CLI: creating one from an image (or a rootfs directory) the way
// containerd's client does, and removing one with its snapshot. Shared by `containers create`,
// `containers rm` and `run`.
#pragma once

#include <CLI/CLI.hpp>

#include "cmd/berth/client.h"
#include "cmd/berth/network_client.h"
#include "core/ocispec/generate.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.pb.h"

namespace berth::cli {

struct CreateOptions {
  std::string image, id, snapshotter = "overlayfs", runtime = "io.containerd.berth.v1", platform,
                         spec_file, memory, cpus;
  bool rootfs_dir = false;    // `image` is a root filesystem directory
  std::string runtime_binary; // runc options' BinaryName: the shim runs this runc-compatible binary
  std::vector<std::string> labels;
  ocispec::SpecOptions spec;
  NetOptions net;
};

// Unpacks the image if needed, generates the spec, prepares the read-write snapshot (key = id)
// and creates the record, under one lease until the record holds the snapshot; with CNI
// networks, attaches them and points the spec at the daemon's network namespace. With
// `rootfs_dir`, no image and no snapshot: the spec's root is that directory.
Result<::containerd::services::containers::v1::Container> create_container(Client& c,
                                                                           CreateOptions o);
Result<::containerd::services::containers::v1::Container> get_container(Client& c,
                                                                        const std::string& id);
// Removes the container's networks, record and (unless kept) its snapshot.
Status remove_container(Client& c, const std::string& id, bool keep_snapshot);
// Attaches a created container to CNI networks and points its spec at the network namespace.
Result<::containerd::services::containers::v1::Container> join_networks(
    Client& c, const ::containerd::services::containers::v1::Container& ct, const NetOptions& n);
// The flags of `containers create` (and `run`) that fill CreateOptions.
void add_create_options(CLI::App* cmd, CreateOptions& co);

}  // namespace berth::cli

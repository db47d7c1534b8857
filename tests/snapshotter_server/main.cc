// A stand-alone snapshotter process for proxy tests: serves the native (or overlayfs)
// snapshotter library over containerd's Snapshots gRPC API on a unix socket.
//   berth-test-snapshotter --root DIR --address SOCKET [--backend native|overlayfs]
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include "snapshotters/native/native.h"
#include "snapshotters/overlayfs/overlay.h"
#include "snapshotters/proxy/server.h"

int main(int argc, char** argv) {
  std::string root, address, backend = "native";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--root")
      root = argv[i + 1];
    else if (flag == "--address")
      address = argv[i + 1];
    else if (flag == "--backend")
      backend = argv[i + 1];
  }
  if (root.empty() || address.empty()) {
    std::cerr << "usage: berth-test-snapshotter --root DIR --address SOCKET [--backend "
                 "native|overlayfs]\n";
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  berth::Result<std::shared_ptr<berth::snapshots::Snapshotter>> sn =
      berth::Status(berth::Code::kInternal, "");
  if (backend == "overlayfs") {
    auto o = berth::snapshotters::OverlaySnapshotter::open(root);
    if (o.ok())
      sn = std::shared_ptr<berth::snapshots::Snapshotter>(*o);
    else
      sn = o.status();
  } else {
    auto n = berth::snapshotters::NativeSnapshotter::open(root);
    if (n.ok())
      sn = std::shared_ptr<berth::snapshots::Snapshotter>(*n);
    else
      sn = n.status();
  }
  if (!sn.ok()) {
    std::cerr << "berth-test-snapshotter: " << sn.status().message() << "\n";
    return 1;
  }
  ::unlink(address.c_str());
  berth::snapshotters::SnapshotsServer service(*sn);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "berth-test-snapshotter: cannot serve on " << address << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  ::unlink(address.c_str());
  return 0;
}

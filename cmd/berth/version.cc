// berth version
#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/output.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"

namespace berth::cli {

void add_version_command(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("version", "print the client and server versions");
  set_action(cmd, global, [&global](Client& c) -> Status {
    namespace vpb = ::containerd::services::version::v1;
    namespace ipb = ::containerd::services::introspection::v1;
    vpb::VersionResponse v;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(vpb::Version::NewStub(c.channel())->Version(ctx.get(), {}, &v), "version"));
    ipb::ServerResponse server;
    auto ctx2 = c.context();
    BERTH_RETURN_IF_ERROR(c.check(
        ipb::Introspection::NewStub(c.channel())->Server(ctx2.get(), {}, &server), "server"));
    if (global.format == "json") {
      print_json(
          std::cout,
          {{"client", {{"version", BERTH_VERSION}, {"revision", BERTH_REVISION}}},
           {"server",
            {{"version", v.version()}, {"revision", v.revision()}, {"uuid", server.uuid()}}}});
      return Status();
    }
    std::cout << "Client:\n  Version:  " << BERTH_VERSION << "\n  Revision: " << BERTH_REVISION
              << "\n\n"
              << "Server:\n  Version:  " << v.version() << "\n  Revision: " << v.revision()
              << "\n  UUID:     " << server.uuid() << "\n";
    return Status();
  });
}

}  // namespace berth::cli

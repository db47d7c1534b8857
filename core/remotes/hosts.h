// Registry host configuration in containerd's `certs.d` convention:
//
//   <hosts_dir>/<host>/hosts.toml        (<host> as in the reference, "docker.io" for Docker Hub;
//   <hosts_dir>/_default/hosts.toml       used when the host has no directory of its own)
//
//   server = "https://registry.example.com"      # the upstream; default https://<host>
//   capabilities = ["pull", "resolve", "push"]   # of the server
//   ca = "/path/ca.pem"                           # or a list; relative to the host's directory
//   client = [["/path/cert.pem", "/path/key.pem"]]
//   skip_verify = false
//   [host."http://mirror.local:5000"]             # mirrors, tried before the server, file order
//     capabilities = ["pull", "resolve"]
//     override_path = false                       # true: the URL's path replaces /v2
//     credentials = false                         # (Berth) true: the mirror gets the credentials
//                                                 # given to the pull or push (-u); by default
//                                                 # only the server does
//     [host."http://mirror.local:5000".header]
//       x-custom = "value"
//
// Without a hosts.toml, *.crt files in the host's directory are trusted CAs and *.cert/*.key
// pairs client certificates (Docker's layout).
#pragma once

#include <berth/result.h>

#include <string>
#include <vector>

#include "core/remotes/client.h"

namespace berth::remotes {

struct Endpoint {
  std::string base;  // "https://host:port/v2"
  bool pull = true, resolve = true, push = true;
  HostOptions options;
};

// The endpoints to try for `host` (mirrors first, the server last). `defaults` carries what the
// caller asked for (plain HTTP, skip-verify, CA, credentials) and applies to every endpoint on top
// of the file, but for the credentials, which only the server gets (and mirrors that say
// `credentials = true`). `hosts_dir` "" or absent: just the server.
Result<std::vector<Endpoint>> host_endpoints(const std::string& hosts_dir, const std::string& host,
                                             const HostOptions& defaults);

}  // namespace berth::remotes

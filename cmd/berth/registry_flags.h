// The registry flags `berth images pull|push` and `berth content fetch-blob` share: how to reach
// a registry (plain HTTP, TLS trust, client certificate, credentials, certs.d directory).
#pragma once

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <string>

#include "berth/transfer/v1/transfer.pb.h"
#include "core/remotes/client.h"

namespace berth::cli {

struct RegistryFlags {
  bool plain_http = false, skip_verify = false;
  std::string user, ca, cert, key, hosts_dir;

  void add(CLI::App* cmd) {
    cmd->add_flag("--plain-http", plain_http, "talk to the registry over http://");
    cmd->add_flag("--skip-verify,-k", skip_verify, "do not verify the registry's certificate");
    cmd->add_option("--user,-u", user, "USER[:PASSWORD] for the registry");
    cmd->add_option("--tlscacert,--ca", ca, "a PEM CA certificate to trust");
    cmd->add_option("--tlscert", cert, "a PEM client certificate (mutual TLS)");
    cmd->add_option("--tlskey", key, "the client certificate's key");
    cmd->add_option("--hosts-dir", hosts_dir, "certs.d directory with <host>/hosts.toml");
  }

  // For a transfer done by the daemon: paths made absolute (the daemon has another cwd).
  void to_proto(::berth::services::transfer::v1::RegistryOptions* r) const {
    r->set_plain_http(plain_http);
    r->set_skip_verify(skip_verify);
    r->set_ca_file(absolute(ca));
    r->set_client_cert(absolute(cert));
    r->set_client_key(absolute(key));
    r->set_hosts_dir(absolute(hosts_dir));
    auto [name, password] = credentials();
    r->set_username(name);
    r->set_password(password);
  }

  // For a registry client in the CLI itself.
  remotes::HostOptions host_options() const {
    remotes::HostOptions o;
    o.plain_http = plain_http;
    o.skip_verify = skip_verify;
    if (!ca.empty()) o.ca_files = {ca};
    o.cert_file = cert;
    o.key_file = key;
    std::tie(o.username, o.password) = credentials();
    return o;
  }

 private:
  std::pair<std::string, std::string> credentials() const {
    auto colon = user.find(':');
    return {user.substr(0, colon), colon == std::string::npos ? "" : user.substr(colon + 1)};
  }
  static std::string absolute(const std::string& p) {
    if (p.empty() || p[0] == '/') return p;
    char cwd[4096];
    return ::getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + p : p;
  }
};

}  // namespace berth::cli

// berth-shim: containerd's runtime v2 shim protocol, one process per container (or per group).
//
//   berth-shim -namespace NS -id ID -address DAEMON_SOCKET [-publish-binary P] [-debug] start
//     (cwd = bundle) prints the ttrpc address of a serving shim, starting one when the group has
//     none: the listener is made here and handed to a re-exec of this binary as fd 3, which is
//     re-parented once we exit.
//   berth-shim ... delete
//     (cwd = bundle) cleans up after a shim that died: kills and removes the container, unmounts
//     the rootfs, prints a DeleteResponse.
//   berth-shim ... (no action): serve containerd.task.v2.Task on fd 3.
// Installed also as containerd-shim-berth-v1, so containerd runs it for runtime
// "io.containerd.berth.v1".
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/asio.h"
#include "core/fs.h"
#include "core/mount.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "core/oci/container.h"
#include "core/oci/sealed_exe.h"
#include "shim/publisher.h"
#include "shim/service.h"
#include "core/ttrpc/ttrpc.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

namespace {

using namespace berth;
namespace fs = std::filesystem;

constexpr const char* kSocketDir = "/run/berth/s";

struct Flags {
  std::string ns, id, address, publish_binary, socket, bundle;
  bool debug = false, version = false;
  std::string action;
  std::vector<std::string> raw;  // as given, for the re-exec
};

// Go's flag syntax: -name value, -name=value, --name value; booleans take no value.
Result<Flags> parse_flags(int argc, char** argv) {
  Flags f;
  std::map<std::string, std::string*> str = {
      {"namespace", &f.ns},    {"id", &f.id},
      {"address", &f.address}, {"publish-binary", &f.publish_binary},
      {"socket", &f.socket},   {"bundle", &f.bundle}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() < 2 || a[0] != '-') {
      if (!f.action.empty()) return invalid_argument("unexpected argument \"{}\"", a);
      f.action = a;
      continue;
    }
    f.raw.push_back(a);
    std::string name = a.substr(a[1] == '-' ? 2 : 1), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.erase(eq);
      has_value = true;
    }
    if (name == "debug") {
      f.debug = true;
      continue;
    }
    if (name == "v" || name == "version") {
      f.version = true;
      continue;
    }
    auto it = str.find(name);
    if (it == str.end()) return invalid_argument("flag provided but not defined: -{}", name);
    if (!has_value) {
      if (++i >= argc) return invalid_argument("flag needs an argument: -{}", name);
      value = argv[i];
      f.raw.push_back(value);
    }
    *it->second = value;
  }
  if (f.ns.empty()) f.ns = "default";
  if (f.bundle.empty()) {
    std::error_code ec;
    f.bundle = fs::current_path(ec).string();
  }
  return f;
}

std::string sha256_hex(const std::string& s) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  std::string out;
  for (unsigned char c : md) out += fmt::format("{:02x}", c);
  return out;
}

// Containers of one group (a pod) share a shim: the group is the config's annotation, else the id.
std::string group_of(const Flags& f) {
  auto text = core::read_file(f.bundle + "/config.json");
  if (text.ok()) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object() && j.contains("annotations") && j["annotations"].is_object()) {
      for (const char* key : {"io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id"}) {
        if (j["annotations"].contains(key) && j["annotations"][key].is_string())
          return j["annotations"][key];
      }
    }
  }
  return f.id;
}

Status start(const Flags& f, char** argv) {
  if (f.id.empty()) return invalid_argument("start: -id is required");
  BERTH_RETURN_IF_ERROR(oci::validate_id(f.id));
  // containerd writes the runtime options to stdin; they reach the shim again with Create.
  if (!::isatty(0)) std::string ignored((std::istreambuf_iterator<char>(std::cin)), {});
  std::string path =
      f.socket.empty()
          ? fmt::format("{}/{}", kSocketDir, sha256_hex(f.address + "/" + f.ns + "/" + group_of(f)))
          : f.socket;
  std::string address = "unix://" + path;
  if (!core::socket_accepts(path)) {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    ::unlink(path.c_str());
    int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
      return invalid_argument("socket path {} is too long", path);
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
      return from_errno(errno, "bind {}", path);
    ::chmod(path.c_str(), 0600);
    if (::listen(lfd, 128) < 0) return from_errno(errno, "listen on {}", path);
    pid_t pid = ::fork();
    if (pid < 0) return from_errno(errno, "fork the shim");
    if (pid == 0) {
      ::setsid();
      if (lfd == 3) {
        ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
      } else {
        ::dup2(lfd, 3);  // clears close-on-exec
      }
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      // Logs: the bundle's `log` FIFO when the daemon reads one, else a file in the bundle.
      int log = ::open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (log < 0) log = ::open("shim.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (log >= 0) {
        ::fcntl(log, F_SETFL, O_WRONLY);
        ::dup2(log, 2);
      }
      std::vector<char*> args{argv[0]};
      for (const auto& a : f.raw) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      // The serving shim clones containers: it runs from a write-protected copy of this binary
      // (core/oci/sealed_exe.h), so no container can overwrite it on the host.
      Status st = oci::reexec_sealed(args.data(), environ);
      std::fprintf(stderr, "berth-shim: %s\n", st.message().c_str());
      ::_exit(127);
    }
    ::close(lfd);
  }
  BERTH_RETURN_IF_ERROR(core::write_file_atomic(f.bundle + "/address", address, 0600, core::Durability::kVolatile));
  std::cout << address << std::flush;
  return Status();
}

Status remove(const Flags& f) {
  if (f.id.empty()) return invalid_argument("delete: -id is required");
  ::containerd::task::v2::DeleteResponse resp;
  if (auto pid = core::read_file(f.bundle + "/.runtime/" + f.id + "/state.json"); pid.ok()) {
    auto j = nlohmann::json::parse(*pid, nullptr, false);
    if (j.is_object()) resp.set_pid(j.value("pid", 0u));
  } else if (auto p = core::read_file(f.bundle + "/init.pid"); p.ok()) {
    resp.set_pid(static_cast<std::uint32_t>(std::atoi(p->c_str())));
  }
  auto backend = shim::backend_for_bundle(f.bundle);
  backend->kill(f.id, SIGKILL, true).ignore();
  Status rs = backend->remove(f.id);
  if (!rs.ok() && rs.code() != Code::kNotFound)
    std::fprintf(stderr, "berth-shim delete: %s\n", rs.message().c_str());
  // The dead shim's socket file, unless a live shim (of another container of its group) serves it.
  if (auto address = core::read_file(f.bundle + "/address"); address.ok()) {
    std::string path = ttrpc::socket_path(*address);
    if (path.rfind(kSocketDir, 0) == 0 && !core::socket_accepts(path)) ::unlink(path.c_str());
  }
  Status us = core::unmount_all(f.bundle + "/rootfs", true);
  if (!us.ok()) std::fprintf(stderr, "berth-shim delete: %s\n", us.message().c_str());
  resp.set_exit_status(128 + SIGKILL);
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  resp.mutable_exited_at()->set_seconds(now / 1'000'000'000);
  resp.mutable_exited_at()->set_nanos(static_cast<int>(now % 1'000'000'000));
  std::string out = resp.SerializeAsString();
  std::fwrite(out.data(), 1, out.size(), stdout);
  return Status();
}

Status serve(const Flags& f, char** argv) {
  // Normally `start` exec'd us sealed already; a shim started some other way re-execs once.
  BERTH_RETURN_IF_ERROR(oci::reexec_sealed(argv, environ));
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::signal(SIGPIPE, SIG_IGN);  // FIFOs and pipes whose reader left: an error, not death
  boost::asio::io_context io(1);
  // The daemon multiplexes every call to this shim on one connection, Waits included (one per
  // process, answered when it exits): a high cap on what is outstanding, no idle timeout.
  ttrpc::ServerLimits limits;
  limits.max_connections = 64;
  limits.max_outstanding = 4096;
  limits.max_queued_bytes = 64 << 20;
  ttrpc::Server server(io, limits);
  std::string socket_path;
  struct stat st {};
  if (::fstat(3, &st) == 0 && S_ISSOCK(st.st_mode)) {
    sockaddr_un sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(3, reinterpret_cast<sockaddr*>(&sa), &len) == 0) socket_path = sa.sun_path;
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    BERTH_RETURN_IF_ERROR(server.adopt(3));
  } else if (!f.socket.empty()) {
    socket_path = f.socket;
    BERTH_RETURN_IF_ERROR(server.listen(f.socket));
  } else {
    return invalid_argument("no listening socket on fd 3 and no -socket: run `start` instead");
  }
  const char* ttrpc_address = std::getenv("TTRPC_ADDRESS");
  shim::Publisher publisher(io, ttrpc_address ? ttrpc_address : "");
  shim::Service service(io, shim::ServiceOptions{f.ns}, publisher);
  service.register_on(server);
  boost::asio::signal_set signals(io, SIGCHLD, SIGTERM, SIGINT);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGCHLD) service.reap();
        // SIGTERM/SIGINT end an idle shim; one with containers lives on (the daemon owns its
        // lifetime through Shutdown).
        if (sig != SIGCHLD && service.empty() && service.on_shutdown) service.on_shutdown();
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  service.on_shutdown = [&] {
    server.close();
    if (!socket_path.empty()) ::unlink(socket_path.c_str());
    io.stop();
  };
  service.reap();  // anything that exited before the handler was in place
  io.run();
  return Status();
}

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL is here only for SHA-256: skip reading openssl.cnf at every shim start.
  ::OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  auto flags = parse_flags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "berth-shim: %s\n", flags.status().message().c_str());
    return 2;
  }
  if (flags->version) {
    std::printf("berth-shim %s\n", BERTH_VERSION);
    return 0;
  }
  Status st;
  if (flags->action == "start") {
    st = start(*flags, argv);
  } else if (flags->action == "delete") {
    st = remove(*flags);
  } else if (flags->action.empty()) {
    st = serve(*flags, argv);
  } else {
    st = invalid_argument("unknown action \"{}\" (start, delete, or none to serve)", flags->action);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "berth-shim: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}

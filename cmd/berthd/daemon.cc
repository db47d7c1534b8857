#include "cmd/berthd/daemon.h"

#include <berth/grpc.h>
#include <berth/ttrpc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "core/fs.h"
#include "core/log.h"

namespace berth::daemon {

Daemon::Daemon(core::Config config) : config_(std::move(config)) {}

Daemon::~Daemon() { stop(); }

void Daemon::register_proxy_plugins() {
  for (const auto& [name, proxy] : config_.proxy_plugins) {
    // The connection itself comes from a factory module (io.berth.proxy.v1.<type>), so the
    // daemon needs no client code for each proxied API.
    Registration r;
    r.type = proxy.type;
    r.id = name;
    r.requires_types = {std::string(kProxyFactoryType)};
    std::string address = proxy.address;
    std::string type = proxy.type;
    auto caps = proxy.capabilities;
    auto platform = proxy.platform;
    r.init = [name, type, address, caps,
              platform](InitContext& ic) -> Result<std::shared_ptr<Plugin>> {
      ic.capabilities() = caps;
      if (!platform.empty()) ic.platforms().push_back(platform);
      auto factory = ic.get_by_id(kProxyFactoryType, type);
      if (!factory.ok()) {
        return failed_precondition("no proxy support for type {} is loaded ({})", type,
                                   factory.status().message());
      }
      auto f = std::dynamic_pointer_cast<ProxyFactory>(*factory);
      if (!f) return internal_error("plugin {}.{} is not a proxy factory", kProxyFactoryType, type);
      return f->connect(ic, name, address);
    };
    Status st = registry_->add(std::move(r), "config:" + config_.source);
    if (!st.ok()) log::error("proxy plugin not registered", {{"name", name}, {"error", st}});
  }
}

Status Daemon::start() {
  BERTH_RETURN_IF_ERROR(core::make_dirs(config_.root, 0711));
  BERTH_RETURN_IF_ERROR(core::make_dirs(config_.state, 0711));
  BERTH_TRY(auto lock, LockFile::acquire(config_.root + "/berthd.lock"));
  lock_.emplace(std::move(lock));
  BERTH_RETURN_IF_ERROR(prepare_socket_path(config_.grpc_address));

  core::PluginRegistry::Options opts;
  opts.root = config_.root;
  opts.state = config_.state;
  opts.grpc_address = config_.grpc_address;
  opts.ttrpc_address = config_.effective_ttrpc_address();
  opts.disabled = {config_.disabled_plugins.begin(), config_.disabled_plugins.end()};
  opts.required = config_.required_plugins;
  opts.configs = config_.plugins;
  opts.config_source = config_.source;
  registry_ = std::make_unique<core::PluginRegistry>(std::move(opts));

  std::string plugin_dir =
      config_.plugin_dir.empty() ? core::default_plugin_dir() : config_.plugin_dir;
  log::info("loading plugins", {{"dir", plugin_dir}});
  for (const auto& err : loader_.load_dir(plugin_dir, *registry_)) {
    log::error("plugin module not loaded", {{"module", err.path}, {"error", err.error}});
  }
  register_proxy_plugins();
  BERTH_RETURN_IF_ERROR(registry_->decode_configs());
  BERTH_RETURN_IF_ERROR(registry_->init_all());

  grpc::ServerBuilder builder;
  int bound_port = 0;
  // Listen on a temporary name, set mode and owner, then rename into place: clients never see
  // the socket before it has its final permissions.
  std::string starting = config_.grpc_address + ".starting";
  ::unlink(starting.c_str());
  builder.AddListeningPort("unix:" + starting, grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.grpc_max_recv_message_size));
  builder.SetMaxSendMessageSize(static_cast<int>(config_.grpc_max_send_message_size));
  std::size_t services = 0;
  for (const auto& [id, instance] : registry_->instances(plugin_type::kGrpc)) {
    if (auto svc = std::dynamic_pointer_cast<GrpcService>(instance)) {
      svc->register_grpc(builder);
      ++services;
    } else {
      log::warn("grpc plugin does not implement GrpcService", {{"id", id}});
    }
  }
  if (services == 0) {
    return failed_precondition(
        "no gRPC service plugin initialised; nothing to serve (check plugin_dir \"{}\")",
        config_.plugin_dir.empty() ? core::default_plugin_dir() : config_.plugin_dir);
  }
  // The socket must not be reachable by others before its mode is set: create it under a umask
  // that leaves it 0660.
  mode_t old_umask = ::umask(0117);
  server_ = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server_) {
    return unavailable("cannot serve gRPC on \"{}\" (see the log above for the reason)",
                       config_.grpc_address);
  }
  if (::chmod(starting.c_str(), 0660) < 0) {
    return from_errno(errno, "chmod \"{}\"", starting);
  }
  if ((config_.grpc_uid != 0 || config_.grpc_gid != 0) &&
      ::chown(starting.c_str(), static_cast<uid_t>(config_.grpc_uid),
              static_cast<gid_t>(config_.grpc_gid)) < 0) {
    return from_errno(errno, "chown \"{}\"", starting);
  }
  if (::rename(starting.c_str(), config_.grpc_address.c_str()) < 0) {
    return from_errno(errno, "rename \"{}\" to \"{}\"", starting, config_.grpc_address);
  }
  socket_created_ = true;
  BERTH_RETURN_IF_ERROR(serve_ttrpc());
  log::info("berthd serving", {{"address", config_.grpc_address},
                               {"services", services},
                               {"root", config_.root},
                               {"state", config_.state}});
  return Status();
}

Status Daemon::serve_ttrpc() {
  std::string address = config_.effective_ttrpc_address();
  BERTH_RETURN_IF_ERROR(prepare_socket_path(address));
  // Shims connect here to forward events, one connection each, one event at a time; an idle
  // connection is closed after a while (shims reconnect for their next event).
  ttrpc::ServerLimits limits;
  limits.max_connections = 8192;
  limits.idle_timeout = std::chrono::minutes(10);
  ttrpc_ = std::make_unique<ttrpc::Server>(ttrpc_io_, limits);
  std::size_t methods = 0;
  for (auto type : {plugin_type::kGrpc, plugin_type::kTtrpc}) {
    for (const auto& [id, instance] : registry_->instances(type)) {
      auto svc = std::dynamic_pointer_cast<TtrpcService>(instance);
      if (!svc) continue;
      for (auto& m : svc->ttrpc_methods()) {
        ttrpc_->handle_sync(m.service, m.method, [fn = m.handle](const ttrpc::Call& call) { return fn(call.payload); });
        ++methods;
      }
    }
  }
  mode_t old_umask = ::umask(0117);
  Status st = ttrpc_->listen(address);
  ::umask(old_umask);
  BERTH_RETURN_IF_ERROR(st.with_context("serve ttrpc"));
  ttrpc_socket_created_ = true;
  ttrpc_thread_ = std::thread([this] { ttrpc_io_.run(); });
  log::info("ttrpc serving", {{"address", address}, {"methods", methods}});
  return Status();
}

void Daemon::wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  log::info("stopping", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
}

void Daemon::stop() {
  if (ttrpc_) {
    if (ttrpc_thread_.joinable()) {
      boost::asio::post(ttrpc_io_, [this] {
        ttrpc_->close();
        ttrpc_io_.stop();
      });
      ttrpc_thread_.join();
    }
    ttrpc_.reset();
  }
  if (ttrpc_socket_created_) {
    ::unlink(config_.effective_ttrpc_address().c_str());
    ttrpc_socket_created_ = false;
  }
  if (server_) {
    // In-flight calls get a grace period; streams still open after it are cancelled.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
  }
  if (registry_) {
    registry_->close_all();
    registry_.reset();
  }
  ::unlink((config_.grpc_address + ".starting").c_str());  // a start that failed half-way
  if (socket_created_) {
    ::unlink(config_.grpc_address.c_str());
    socket_created_ = false;
  }
  lock_.reset();
}

}  // namespace berth::daemon

#include "plugins/cri/pods.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/copy.h"
#include "core/digest.h"
#include "core/fd.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/mount.h"
#include "core/signal.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "plugins/cri/spec.h"

namespace berth::cri {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kKindLabel = "io.cri-containerd.kind";
constexpr const char* kSandboxExt = "io.cri-containerd.sandbox.metadata";
constexpr const char* kContainerExt = "io.cri-containerd.container.metadata";
constexpr const char* kSandboxType = "berth.io/cri/SandboxMetadata";
constexpr const char* kContainerType = "berth.io/cri/ContainerMetadata";
constexpr const char* kSpecType = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
constexpr const char* kResourcesType = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
constexpr const char* kProcessType = "types.containerd.io/opencontainers/runtime-spec/1/Process";
// An exit the daemon could not see (the task was gone when it came back).
constexpr std::int32_t kUnknownExitCode = 255;
// ExecSync keeps at most this much of each stream (the kubelet's probes read a few bytes).
constexpr std::size_t kMaxExecOutput = 16 << 20;

std::int64_t now_ns() { return core::to_unix_nanos(std::chrono::system_clock::now()); }

std::string random_id() {
  unsigned char b[32];
  std::size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

template <typename M>
std::string encode(const M& m) {
  return core::base64_encode(m.SerializeAsString());
}

template <typename M>
Status decode(const std::string& text, M* m, const char* what) {
  auto bytes = core::base64_decode(text);
  if (!bytes.ok() || !m->ParseFromString(*bytes)) return invalid_argument("{}: not a valid record", what);
  return Status();
}

bool labels_match(const google::protobuf::Map<std::string, std::string>& have,
                  const google::protobuf::Map<std::string, std::string>& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

std::string stop_signal(const std::string& image_config) {
  auto doc = json::parse(image_config, nullptr, false);
  if (doc.is_object() && doc.contains("config") && doc["config"].is_object())
    return doc["config"].value("StopSignal", std::string());
  return "";
}

}  // namespace

struct Pods::Sandbox {
  std::mutex op;       // one lifecycle operation at a time
  std::mutex persist;  // record writes in the order their states were taken
  std::string id, name;
  v1::PodSandboxConfig config;
  std::string handler, runtime;
  std::string netns_path, hosts_path, resolv_conf_path, hostname_path;
  std::vector<std::string> ips;
  std::string shm;  // the pod's /dev/shm tmpfs ("" with host IPC)
  std::int64_t created_at = 0;
  std::uint32_t pid = 0;
  bool ready = false;

  json to_json() const {
    return {{"id", id},           {"name", name},
            {"config", encode(config)},
            {"handler", handler}, {"runtime", runtime},
            {"netns", netns_path}, {"hosts", hosts_path},
            {"resolvConf", resolv_conf_path}, {"hostname", hostname_path},
            {"ips", ips},         {"shm", shm},
            {"createdAt", created_at}, {"pid", pid},
            {"ready", ready}};
  }
  Status from_json(const json& j) {
    try {
      id = j.at("id");
      name = j.at("name");
      BERTH_RETURN_IF_ERROR(decode(j.at("config").get<std::string>(), &config, "sandbox config"));
      handler = j.at("handler");
      runtime = j.at("runtime");
      netns_path = j.at("netns");
      hosts_path = j.at("hosts");
      resolv_conf_path = j.at("resolvConf");
      hostname_path = j.at("hostname");
      ips = j.at("ips").get<std::vector<std::string>>();
      shm = j.at("shm");
      created_at = j.at("createdAt");
      pid = j.at("pid");
      ready = j.at("ready");
    } catch (const std::exception& e) {
      return invalid_argument("sandbox record: {}", e.what());
    }
    return Status();
  }
  SandboxJoin join() const {
    return {id, pid, netns_path, hosts_path, resolv_conf_path, hostname_path, shm};
  }
};

struct Pods::Container {
  std::mutex op;
  std::mutex persist;
  std::string id, sandbox_id, name;
  v1::ContainerConfig config;
  std::string image_id, image_ref, image_config;
  std::string log_path;  // "" when the pod has no log directory
  std::string spec;
  std::int64_t created_at = 0, started_at = 0, finished_at = 0;
  std::int32_t exit_code = 0;
  bool oom = false;
  std::string reason, message;

  json to_json() const {
    return {{"id", id},
            {"sandboxId", sandbox_id},
            {"name", name},
            {"config", encode(config)},
            {"imageId", image_id},
            {"imageRef", image_ref},
            {"imageConfig", image_config},
            {"logPath", log_path},
            {"createdAt", created_at},
            {"startedAt", started_at},
            {"finishedAt", finished_at},
            {"exitCode", exit_code},
            {"oom", oom},
            {"reason", reason},
            {"message", message}};
  }
  Status from_json(const json& j) {
    try {
      id = j.at("id");
      sandbox_id = j.at("sandboxId");
      name = j.at("name");
      BERTH_RETURN_IF_ERROR(decode(j.at("config").get<std::string>(), &config, "container config"));
      image_id = j.at("imageId");
      image_ref = j.at("imageRef");
      image_config = j.at("imageConfig");
      log_path = j.at("logPath");
      created_at = j.at("createdAt");
      started_at = j.at("startedAt");
      finished_at = j.at("finishedAt");
      exit_code = j.at("exitCode");
      oom = j.at("oom");
      reason = j.at("reason");
      message = j.at("message");
    } catch (const std::exception& e) {
      return invalid_argument("container record: {}", e.what());
    }
    return Status();
  }
  v1::ContainerState state() const {
    if (finished_at > 0) return v1::CONTAINER_EXITED;
    if (started_at > 0) return v1::CONTAINER_RUNNING;
    return v1::CONTAINER_CREATED;
  }
};

Pods::Pods(PodsConfig c, std::shared_ptr<metadata::MetadataStore> md,
           std::shared_ptr<runtime::TaskManager> tasks, std::shared_ptr<network::Networks> networks,
           std::shared_ptr<events::Exchange> exchange, ImageStore& images)
    : c_(std::move(c)),
      md_(std::move(md)),
      tasks_(std::move(tasks)),
      networks_(std::move(networks)),
      exchange_(std::move(exchange)),
      images_(images) {}

Pods::~Pods() { stop(); }

RequestContext Pods::ctx() const { return RequestContext{c_.ns, "", [] { return false; }}; }

std::string Pods::fifo_dir(const std::string& id) const { return c_.state + "/io/" + id; }

Status Pods::start() {
  BERTH_RETURN_IF_ERROR(core::make_private_dir(c_.state + "/io"));
  BERTH_RETURN_IF_ERROR(core::make_private_dir(c_.state + "/sandboxes"));
  if (tasks_) BERTH_RETURN_IF_ERROR(prepare_pause_rootfs());
  if (exchange_) {
    BERTH_TRY(sub_, exchange_->subscribe({"topic==\"/tasks/exit\",namespace==\"" + c_.ns + "\"",
                                          "topic==\"/tasks/oom\",namespace==\"" + c_.ns + "\""}));
  }
  BERTH_RETURN_IF_ERROR(recover());
  if (sub_) monitor_ = std::thread([this] { monitor(); });
  return Status();
}

void Pods::stop() {
  stopping_ = true;
  if (sub_) sub_->close();
  if (monitor_.joinable()) monitor_.join();
}

// The sandbox's root: a directory holding only berth-pause and the mount points its spec needs,
// bind-mounted read-only into every pause container (no image to pull).
Status Pods::prepare_pause_rootfs() {
  std::string root = c_.root + "/pause-rootfs";
  for (const char* d : {"", "/proc", "/dev", "/sys", "/etc", "/tmp"})
    BERTH_RETURN_IF_ERROR(core::make_dirs(root + d, 0755));
  for (const char* f : {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}) {
    if (!fs::exists(root + f)) BERTH_RETURN_IF_ERROR(core::write_file_atomic(root + f, "", 0644));
  }
  if (c_.pause_binary.empty())
    return failed_precondition("berth-pause was not found next to berthd (set pause_binary)");
  BERTH_TRY(auto bin, core::read_file(c_.pause_binary));
  auto have = core::read_file(root + "/pause");
  if (!have.ok() || *have != bin)
    BERTH_RETURN_IF_ERROR(core::write_file_atomic(root + "/pause", bin, 0755));
  return Status();
}

Result<std::string> Pods::runtime_of(const std::string& handler) {
  auto name = handler.empty() ? c_.default_runtime : handler;
  auto it = c_.runtimes.find(name);
  if (it == c_.runtimes.end())
    return invalid_argument("runtime handler \"{}\" is not configured (runtimes of the cri plugin)", name);
  return it->second;
}

Result<std::string> Pods::pick_network() {
  if (!c_.network.empty()) return c_.network;
  BERTH_TRY(auto nets, networks_->list_networks());
  for (const auto& n : nets)
    if (n.error.empty()) return n.name;
  return failed_precondition("no CNI network loads (the NetworkReady condition says why)");
}

Status Pods::persist(const Sandbox& s) {
  std::lock_guard p(const_cast<std::mutex&>(s.persist));
  BERTH_TRY(auto rec, md_->containers().get(ctx(), s.id));
  {
    std::lock_guard lock(mu_);
    rec.extensions[kSandboxExt] = {kSandboxType, s.to_json().dump()};
  }
  return md_->containers().update(ctx(), rec, {std::string("extensions.") + kSandboxExt}).status();
}

Status Pods::persist(const Container& c) {
  std::lock_guard p(const_cast<std::mutex&>(c.persist));
  BERTH_TRY(auto rec, md_->containers().get(ctx(), c.id));
  {
    std::lock_guard lock(mu_);
    rec.extensions[kContainerExt] = {kContainerType, c.to_json().dump()};
  }
  return md_->containers().update(ctx(), rec, {std::string("extensions.") + kContainerExt}).status();
}

template <typename T>
static Result<std::shared_ptr<T>> find_in(std::map<std::string, std::shared_ptr<T>>& m,
                                          const std::string& id, const char* what) {
  if (id.empty()) return invalid_argument("{} id is empty", what);
  if (auto it = m.find(id); it != m.end()) return it->second;
  // A unique prefix names it too (as containerd's truncated ids).
  std::shared_ptr<T> found;
  for (auto it = m.lower_bound(id); it != m.end() && it->first.rfind(id, 0) == 0; ++it) {
    if (found) return invalid_argument("{} id prefix \"{}\" is ambiguous", what, id);
    found = it->second;
  }
  if (!found) return not_found("{} \"{}\" not found", what, id);
  return found;
}

Result<std::shared_ptr<Pods::Sandbox>> Pods::find_sandbox(const std::string& id) {
  std::lock_guard lock(mu_);
  return find_in(sandboxes_, id, "pod sandbox");
}

Result<std::shared_ptr<Pods::Container>> Pods::find_container(const std::string& id) {
  std::lock_guard lock(mu_);
  return find_in(containers_, id, "container");
}

// ---- sandboxes ---------------------------------------------------------------------------------

Result<std::string> Pods::run_sandbox(const v1::RunPodSandboxRequest& r) {
  if (!tasks_) return failed_precondition("no io.containerd.runtime.v2 plugin is loaded");
  const auto& cfg = r.config();
  const auto& md = cfg.metadata();
  if (md.name().empty() || md.uid().empty() || md.namespace_().empty())
    return invalid_argument("sandbox metadata needs name, uid and namespace");
  if (md.name().size() > 253 || md.uid().size() > 253 || md.namespace_().size() > 253 ||
      cfg.hostname().size() > 253)
    return invalid_argument("sandbox metadata: names are limited to 253 characters");
  if (!cfg.log_directory().empty() && cfg.log_directory().front() != '/')
    return invalid_argument("log_directory \"{}\" must be absolute", cfg.log_directory());
  BERTH_TRY(auto runtime, runtime_of(r.runtime_handler()));
  const auto& nso = cfg.linux().security_context().namespace_options();
  bool host_net = nso.network() == v1::NODE;
  if (!host_net && !networks_) return failed_precondition("no io.berth.network.v1 plugin is loaded");

  auto s = std::make_shared<Sandbox>();
  s->id = random_id();
  s->name = fmt::format("{}_{}_{}_{}", md.name(), md.namespace_(), md.uid(), md.attempt());
  s->config = cfg;
  s->handler = r.runtime_handler();
  s->runtime = runtime;
  s->created_at = now_ns();
  {
    std::lock_guard lock(mu_);
    if (!names_.insert(s->name).second)
      return already_exists("pod sandbox name \"{}\" is reserved by another sandbox", s->name);
  }
  std::lock_guard op(s->op);
  auto rc = ctx();
  std::vector<std::function<void()>> undo;
  auto fail = [&](Status st) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    std::lock_guard lock(mu_);
    names_.erase(s->name);
    return st;
  };

  if (!host_net) {
    network::AttachOptions ao;
    auto net = pick_network();
    if (!net.ok()) return fail(net.status());
    ao.networks = {*net};
    ao.hostname = cfg.hostname();
    ao.owned_by_container = false;
    ao.dns.servers = {cfg.dns_config().servers().begin(), cfg.dns_config().servers().end()};
    ao.dns.searches = {cfg.dns_config().searches().begin(), cfg.dns_config().searches().end()};
    ao.dns.options = {cfg.dns_config().options().begin(), cfg.dns_config().options().end()};
    for (const auto& p : cfg.port_mappings()) {
      if (p.host_port() <= 0) continue;  // not published
      if (p.host_port() > 65535 || p.container_port() <= 0 || p.container_port() > 65535)
        return fail(invalid_argument("port mapping {}:{}: ports are 1-65535", p.host_port(),
                                     p.container_port()));
      network::PortMapping pm;
      pm.host_port = static_cast<std::uint16_t>(p.host_port());
      pm.container_port = static_cast<std::uint16_t>(p.container_port());
      pm.protocol = p.protocol() == v1::UDP ? "udp" : p.protocol() == v1::SCTP ? "sctp" : "tcp";
      pm.host_ip = p.host_ip();
      ao.ports.push_back(pm);
    }
    ao.args = {{"IgnoreUnknown", "1"},
               {"K8S_POD_NAMESPACE", md.namespace_()},
               {"K8S_POD_NAME", md.name()},
               {"K8S_POD_INFRA_CONTAINER_ID", s->id},
               {"K8S_POD_UID", md.uid()}};
    auto a = networks_->attach(rc, s->id, ao);
    if (!a.ok()) return fail(a.status().with_context("set up the pod network"));
    undo.push_back([this, rc, id = s->id] { networks_->detach(rc, id).ignore(); });
    s->netns_path = a->netns_path;
    s->hosts_path = a->hosts_path;
    s->resolv_conf_path = a->resolv_conf_path;
    s->hostname_path = a->hostname_path;
    s->ips = a->ips();
  }
  if (nso.ipc() != v1::NODE) {
    std::string dir = c_.state + "/sandboxes/" + s->id;
    std::string shm = dir + "/shm";
    if (Status st = core::make_dirs(shm, 0711); !st.ok()) return fail(st);
    if (::mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k") < 0)
      return fail(from_errno(errno, "mount the pod's /dev/shm at {}", shm));
    undo.push_back([dir, shm] {
      ::umount2(shm.c_str(), MNT_DETACH);
      core::remove_tree(dir).ignore();
    });
    s->shm = shm;
  }
  auto spec = sandbox_spec(c_.ns, s->id, cfg, s->join());
  if (!spec.ok()) return fail(spec.status());

  containers::Container rec;
  rec.id = s->id;
  rec.labels = {cfg.labels().begin(), cfg.labels().end()};
  rec.labels[kKindLabel] = "sandbox";
  rec.runtime_name = runtime;
  rec.spec = containers::Any{kSpecType, spec->dump()};
  {
    std::lock_guard lock(mu_);
    rec.extensions[kSandboxExt] = {kSandboxType, s->to_json().dump()};
  }
  if (auto st = md_->containers().create(rc, rec); !st.ok())
    return fail(st.status().with_context("sandbox record"));
  undo.push_back([this, rc, id = s->id] { md_->containers().remove(rc, id).ignore(); });

  runtime::CreateRequest cr;
  cr.ns = c_.ns;
  cr.id = s->id;
  cr.runtime = runtime;
  cr.spec = spec->dump();
  cr.rootfs = {Mount{"bind", c_.root + "/pause-rootfs", "", {"rbind", "ro"}}};
  auto t = tasks_->create(cr);
  if (!t.ok()) return fail(t.status().with_context("create the pause task"));
  undo.push_back([this, id = s->id] {
    if (auto t = tasks_->get(c_.ns, id); t.ok()) {
      (*t)->kill("", SIGKILL, true).ignore();
      (*t)->wait("", [] { return false; }).status().ignore();
    }
    remove_task(id).ignore();
  });
  auto pid = (*t)->start("");
  if (!pid.ok()) return fail(pid.status().with_context("start the pause process"));
  {
    std::lock_guard lock(mu_);
    s->pid = *pid;
    s->ready = true;
    sandboxes_[s->id] = s;
  }
  if (Status st = persist(*s); !st.ok()) {
    {
      std::lock_guard lock(mu_);
      sandboxes_.erase(s->id);
    }
    return fail(st.with_context("save the sandbox record"));
  }
  log::info("cri: pod sandbox ready", {{"id", s->id}, {"pod", s->name}});
  emit(v1::CONTAINER_CREATED_EVENT, s->id);
  emit(v1::CONTAINER_STARTED_EVENT, s->id);
  return s->id;
}

Status Pods::stop_sandbox(const std::string& id) {
  BERTH_TRY(auto s, find_sandbox(id));
  std::lock_guard op(s->op);
  return stop_sandbox_locked(*s);
}

Status Pods::stop_sandbox_locked(Sandbox& s) {
  // The containers first (at once: the kubelet already stopped them gracefully).
  std::vector<std::shared_ptr<Container>> members;
  {
    std::lock_guard lock(mu_);
    for (const auto& [cid, c] : containers_)
      if (c->sandbox_id == s.id) members.push_back(c);
  }
  for (const auto& c : members) {
    std::lock_guard cop(c->op);
    BERTH_RETURN_IF_ERROR(stop_container_locked(*c, 0));
  }
  if (auto t = tasks_ ? tasks_->get(c_.ns, s.id) : Result<std::shared_ptr<runtime::Task>>(not_found("")); t.ok()) {
    auto st = (*t)->state("");
    if (st.ok() && st->status != runtime::TaskStatus::kStopped) {
      (*t)->kill("", SIGKILL, true).ignore();
      (*t)->wait("", [] { return false; }).status().ignore();
    }
    BERTH_RETURN_IF_ERROR(remove_task(s.id).with_context("delete the pause task"));
  }
  if (!s.netns_path.empty() && networks_) {
    BERTH_RETURN_IF_ERROR(networks_->detach(ctx(), s.id).with_context("tear down the pod network"));
  }
  if (!s.shm.empty() && core::is_mount_point(s.shm)) {
    if (::umount2(s.shm.c_str(), MNT_DETACH) < 0)
      return from_errno(errno, "unmount the pod's /dev/shm {}", s.shm);
  }
  bool was_ready;
  {
    std::lock_guard lock(mu_);
    was_ready = s.ready;
    s.ready = false;
  }
  Status st = persist(s);
  if (was_ready) {
    log::info("cri: pod sandbox stopped", {{"id", s.id}});
    emit(v1::CONTAINER_STOPPED_EVENT, s.id);
  }
  return st;
}

Status Pods::remove_sandbox(const std::string& id) {
  auto found = find_sandbox(id);
  if (found.status().code() == Code::kNotFound) return Status();  // already gone
  BERTH_TRY(auto s, found);
  std::lock_guard op(s->op);
  BERTH_RETURN_IF_ERROR(stop_sandbox_locked(*s));
  std::vector<std::string> members;
  {
    std::lock_guard lock(mu_);
    for (const auto& [cid, c] : containers_)
      if (c->sandbox_id == s->id) members.push_back(cid);
  }
  for (const auto& cid : members) BERTH_RETURN_IF_ERROR(remove_container(cid));
  auto st = md_->containers().remove(ctx(), s->id);
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  // Through descriptors, stopping at a mount: a pod /dev/shm still mounted is never emptied.
  if (Status rm = core::remove_tree(c_.state + "/sandboxes/" + s->id); !rm.ok())
    log::warn("cri: the sandbox's directory stays", {{"id", s->id}, {"error", rm.message()}});
  emit(v1::CONTAINER_DELETED_EVENT, s->id);
  std::lock_guard lock(mu_);
  sandboxes_.erase(s->id);
  names_.erase(s->name);
  cpu_samples_.erase("pod:" + s->id);
  return Status();
}

Status Pods::sandbox_status(const v1::PodSandboxStatusRequest& r, v1::PodSandboxStatusResponse* out) {
  BERTH_TRY(auto s, find_sandbox(r.pod_sandbox_id()));
  std::lock_guard lock(mu_);
  auto* st = out->mutable_status();
  st->set_id(s->id);
  *st->mutable_metadata() = s->config.metadata();
  st->set_state(s->ready ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY);
  st->set_created_at(s->created_at);
  if (!s->ips.empty()) {
    st->mutable_network()->set_ip(s->ips[0]);
    for (std::size_t i = 1; i < s->ips.size(); ++i)
      st->mutable_network()->add_additional_ips()->set_ip(s->ips[i]);
  }
  *st->mutable_linux()->mutable_namespaces()->mutable_options() =
      s->config.linux().security_context().namespace_options();
  *st->mutable_labels() = s->config.labels();
  *st->mutable_annotations() = s->config.annotations();
  st->set_runtime_handler(s->handler);
  out->set_timestamp(now_ns());
  if (r.verbose()) {
    json info = {{"pid", s->pid},
                 {"netNamespacePath", s->netns_path},
                 {"runtimeHandler", s->handler},
                 {"runtimeType", s->runtime},
                 {"shm", s->shm},
                 {"name", s->name}};
    (*out->mutable_info())["info"] = info.dump();
  }
  return Status();
}

Status Pods::list_sandboxes(const v1::PodSandboxFilter& f, v1::ListPodSandboxResponse* out) {
  std::lock_guard lock(mu_);
  for (const auto& [id, s] : sandboxes_) {
    if (!f.id().empty() && id.rfind(f.id(), 0) != 0) continue;
    auto state = s->ready ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
    if (f.has_state() && f.state().state() != state) continue;
    if (!labels_match(s->config.labels(), f.label_selector())) continue;
    auto* item = out->add_items();
    item->set_id(id);
    *item->mutable_metadata() = s->config.metadata();
    item->set_state(state);
    item->set_created_at(s->created_at);
    *item->mutable_labels() = s->config.labels();
    *item->mutable_annotations() = s->config.annotations();
    item->set_runtime_handler(s->handler);
  }
  return Status();
}

// ---- containers --------------------------------------------------------------------------------

Result<std::string> Pods::create_container(const v1::CreateContainerRequest& r) {
  BERTH_TRY(auto s, find_sandbox(r.pod_sandbox_id()));
  const auto& cfg = r.config();
  if (cfg.metadata().name().empty()) return invalid_argument("container metadata needs a name");
  if (cfg.metadata().name().size() > 253) return invalid_argument("container name is longer than 253 characters");
  if (cfg.log_path().find("..") != std::string::npos || (!cfg.log_path().empty() && cfg.log_path().front() == '/'))
    return invalid_argument("log_path \"{}\" must be relative to the pod's log directory, without ..",
                            cfg.log_path());
  SandboxJoin join;
  v1::PodSandboxConfig pod;
  std::string runtime;
  {
    std::lock_guard lock(mu_);
    if (!s->ready) return failed_precondition("pod sandbox {} is not ready", s->id);
    join = s->join();
    pod = s->config;
    runtime = s->runtime;
  }
  BERTH_TRY(auto img, images_.find(cfg.image().image()));
  std::uint32_t target_pid = 0;
  const auto& target = cfg.linux().security_context().namespace_options().target_id();
  if (!target.empty()) {
    if (auto t = tasks_->get(c_.ns, target); t.ok()) target_pid = (*t)->pid();
  }

  auto c = std::make_shared<Container>();
  c->id = random_id();
  c->sandbox_id = s->id;
  c->name = fmt::format("{}_{}_{}_{}_{}", cfg.metadata().name(), pod.metadata().name(),
                        pod.metadata().namespace_(), pod.metadata().uid(), cfg.metadata().attempt());
  c->config = cfg;
  c->image_id = img.id;
  c->image_ref = img.repo_digests.empty() ? img.id : img.repo_digests.front();
  c->image_config = img.resolved.config.raw;
  if (!pod.log_directory().empty() && !cfg.log_path().empty())
    c->log_path = (fs::path(pod.log_directory()) / cfg.log_path()).string();
  c->created_at = now_ns();
  BERTH_TRY(auto user_str, user_spec(cfg, c->image_config));
  std::optional<ocispec::User> user;
  if (!user_str.empty()) {
    std::string top;
    if (!img.resolved.config.diff_ids.empty())
      top = images::model::chain_ids(img.resolved.config.diff_ids).back();
    BERTH_TRY(user, resolve_user_in_image(c->id, top, user_str));
  }
  BERTH_TRY(auto spec, container_spec(c_.ns, c->id, cfg, pod, join, c->image_config,
                                      cfg.image().image(), user, target_pid));
  c->spec = spec.dump();
  {
    std::lock_guard lock(mu_);
    if (!names_.insert(c->name).second)
      return already_exists("container name \"{}\" is reserved by another container", c->name);
  }
  std::lock_guard op(c->op);
  auto rc = ctx();
  auto release = [&](Status st) {
    std::lock_guard lock(mu_);
    names_.erase(c->name);
    return st;
  };
  containers::Container rec;
  rec.id = c->id;
  rec.labels = {cfg.labels().begin(), cfg.labels().end()};
  rec.labels[kKindLabel] = "container";
  rec.image = img.record.name;
  rec.runtime_name = runtime;
  rec.spec = containers::Any{kSpecType, c->spec};
  rec.snapshotter = c_.snapshotter;
  rec.snapshot_key = c->id;
  rec.extensions[kContainerExt] = {kContainerType, c->to_json().dump()};
  if (auto st = md_->containers().create(rc, rec); !st.ok())
    return release(st.status().with_context("container record"));
  auto sn = md_->snapshotter(c_.snapshotter);
  std::string parent;
  if (!img.resolved.config.diff_ids.empty())
    parent = images::model::chain_ids(img.resolved.config.diff_ids).back();
  Status prepared = sn.ok() ? (*sn)->prepare(rc, c->id, parent, {}).status() : sn.status();
  if (!prepared.ok()) {
    md_->containers().remove(rc, c->id).ignore();
    return release(prepared.with_context("prepare the container's snapshot"));
  }
  {
    std::lock_guard lock(mu_);
    containers_[c->id] = c;
  }
  emit(v1::CONTAINER_CREATED_EVENT, c->id);
  return c->id;
}

Status Pods::start_container(const std::string& id) {
  BERTH_TRY(auto c, find_container(id));
  std::lock_guard op(c->op);
  std::shared_ptr<Sandbox> s;
  {
    std::lock_guard lock(mu_);
    if (c->state() != v1::CONTAINER_CREATED)
      return failed_precondition("container {} is not in the created state", c->id);
    auto it = sandboxes_.find(c->sandbox_id);
    if (it == sandboxes_.end() || !it->second->ready)
      return failed_precondition("pod sandbox {} of container {} is not ready", c->sandbox_id, c->id);
    s = it->second;
  }
  auto rc = ctx();
  BERTH_TRY(auto sn, md_->snapshotter(c_.snapshotter));
  BERTH_TRY(auto mounts, sn->mounts(rc, c->id));
  std::string dir = fifo_dir(c->id);
  BERTH_RETURN_IF_ERROR(core::make_private_dir(dir));
  std::map<std::string, std::string> fifos = {{"stdout", dir + "/stdout"}};
  if (!c->config.tty()) fifos["stderr"] = dir + "/stderr";
  logs_.remove(c->id);
  BERTH_RETURN_IF_ERROR(logs_.add(c->id, c->log_path, fifos));

  auto failed = [&](Status st) {
    logs_.remove(c->id);
    remove_task(c->id).ignore();
    {
      std::lock_guard lock(mu_);
      c->started_at = c->finished_at = now_ns();
      c->exit_code = 128;
      c->reason = "StartError";
      c->message = st.message();
    }
    persist(*c).ignore();
    return st;
  };
  runtime::CreateRequest cr;
  cr.ns = c_.ns;
  cr.id = c->id;
  {
    std::lock_guard lock(mu_);
    cr.runtime = s->runtime;
  }
  cr.spec = c->spec;
  cr.rootfs = mounts;
  cr.io.stdout = fifos["stdout"];
  cr.io.stderr = c->config.tty() ? "" : fifos["stderr"];
  cr.io.terminal = c->config.tty();
  auto t = tasks_->create(cr);
  if (!t.ok()) return failed(t.status().with_context("create the task"));
  logs_.connected(c->id);
  auto pid = (*t)->start("");
  if (!pid.ok()) return failed(pid.status().with_context("start the task"));
  {
    std::lock_guard lock(mu_);
    if (c->started_at == 0) c->started_at = now_ns();
  }
  Status st = persist(*c);
  emit(v1::CONTAINER_STARTED_EVENT, c->id);
  return st;
}

Status Pods::stop_container(const std::string& id, std::int64_t timeout_s) {
  BERTH_TRY(auto c, find_container(id));
  std::lock_guard op(c->op);
  return stop_container_locked(*c, timeout_s);
}

Status Pods::stop_container_locked(Container& c, std::int64_t timeout_s) {
  {
    std::lock_guard lock(mu_);
    if (c.state() == v1::CONTAINER_EXITED) return Status();
  }
  auto t = tasks_ ? tasks_->get(c_.ns, c.id) : Result<std::shared_ptr<runtime::Task>>(not_found(""));
  if (!t.ok()) {
    if (t.status().code() != Code::kNotFound) return t.status();
    // Created, never started: nothing runs. Started, task gone: an exit we did not see.
    std::lock_guard lock(mu_);
    if (c.state() == v1::CONTAINER_CREATED) return Status();
  } else {
    auto state = (*t)->state("");
    if (state.ok() && state->status != runtime::TaskStatus::kStopped) {
      if (timeout_s > 0) {
        int sig = SIGTERM;
        if (auto name = stop_signal(c.image_config); !name.empty()) {
          if (auto parsed = core::parse_signal(name); parsed.ok()) sig = *parsed;
        }
        (*t)->kill("", static_cast<std::uint32_t>(sig), false).ignore();
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
        auto exited = (*t)->wait("", [deadline] { return std::chrono::steady_clock::now() >= deadline; });
        if (exited.ok()) {
          record_exit(c.id, exited->status, exited->at);
          reap(c.id);
          return Status();
        }
      }
      (*t)->kill("", SIGKILL, true).ignore();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      auto exited = (*t)->wait("", [deadline] { return std::chrono::steady_clock::now() >= deadline; });
      if (!exited.ok()) return exited.status().with_context(fmt::format("wait for container {} to exit", c.id));
      record_exit(c.id, exited->status, exited->at);
    } else if (state.ok()) {
      record_exit(c.id, state->exit_status, state->exited_at);
    }
  }
  bool unknown = false;
  {
    std::lock_guard lock(mu_);
    if (c.finished_at == 0) {
      unknown = true;
      c.finished_at = now_ns();
      c.exit_code = kUnknownExitCode;
      c.reason = "Unknown";
      c.message = "the container's task is gone; its exit status is unknown";
    }
  }
  persist(c).ignore();
  if (unknown) emit(v1::CONTAINER_STOPPED_EVENT, c.id);
  reap(c.id);
  return Status();
}

Status Pods::remove_container(const std::string& id) {
  auto found = find_container(id);
  if (found.status().code() == Code::kNotFound) return Status();
  BERTH_TRY(auto c, found);
  std::lock_guard op(c->op);
  BERTH_RETURN_IF_ERROR(stop_container_locked(*c, 0));
  BERTH_RETURN_IF_ERROR(remove_task(c->id));
  logs_.remove(c->id);
  auto rc = ctx();
  if (auto sn = md_->snapshotter(c_.snapshotter); sn.ok()) {
    auto st = (*sn)->remove(rc, c->id);
    if (!st.ok() && st.code() != Code::kNotFound) return st.with_context("remove the container's snapshot");
  }
  auto st = md_->containers().remove(rc, c->id);
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  core::remove_tree(fifo_dir(c->id)).ignore();
  emit(v1::CONTAINER_DELETED_EVENT, c->id);
  std::lock_guard lock(mu_);
  containers_.erase(c->id);
  names_.erase(c->name);
  cpu_samples_.erase(c->id);
  return Status();
}

Status Pods::container_status(const v1::ContainerStatusRequest& r, v1::ContainerStatusResponse* out) {
  BERTH_TRY(auto c, find_container(r.container_id()));
  std::lock_guard lock(mu_);
  auto* st = out->mutable_status();
  st->set_id(c->id);
  *st->mutable_metadata() = c->config.metadata();
  st->set_state(c->state());
  st->set_created_at(c->created_at);
  st->set_started_at(c->started_at);
  st->set_finished_at(c->finished_at);
  st->set_exit_code(c->exit_code);
  *st->mutable_image() = c->config.image();
  st->set_image_ref(c->image_ref);
  st->set_image_id(c->image_id);
  st->set_reason(c->reason);
  st->set_message(c->message);
  *st->mutable_labels() = c->config.labels();
  *st->mutable_annotations() = c->config.annotations();
  *st->mutable_mounts() = c->config.mounts();
  st->set_log_path(c->log_path);
  if (c->config.linux().has_resources())
    *st->mutable_resources()->mutable_linux() = c->config.linux().resources();
  if (r.verbose()) {
    std::uint32_t pid = 0;
    if (c->state() == v1::CONTAINER_RUNNING && tasks_)
      if (auto t = tasks_->get(c_.ns, c->id); t.ok()) pid = (*t)->pid();
    json info = {{"sandboxID", c->sandbox_id},
                 {"pid", pid},
                 {"name", c->name},
                 {"runtimeSpec", json::parse(c->spec, nullptr, false)}};
    (*out->mutable_info())["info"] = info.dump();
  }
  return Status();
}

Status Pods::list_containers(const v1::ContainerFilter& f, v1::ListContainersResponse* out) {
  std::lock_guard lock(mu_);
  for (const auto& [id, c] : containers_) {
    if (!f.id().empty() && id.rfind(f.id(), 0) != 0) continue;
    if (f.has_state() && f.state().state() != c->state()) continue;
    if (!f.pod_sandbox_id().empty() && c->sandbox_id.rfind(f.pod_sandbox_id(), 0) != 0) continue;
    if (!labels_match(c->config.labels(), f.label_selector())) continue;
    auto* item = out->add_containers();
    item->set_id(id);
    item->set_pod_sandbox_id(c->sandbox_id);
    *item->mutable_metadata() = c->config.metadata();
    *item->mutable_image() = c->config.image();
    item->set_image_ref(c->image_ref);
    item->set_image_id(c->image_id);
    item->set_state(c->state());
    item->set_created_at(c->created_at);
    *item->mutable_labels() = c->config.labels();
    *item->mutable_annotations() = c->config.annotations();
  }
  return Status();
}

Status Pods::reopen_log(const std::string& id) {
  BERTH_TRY(auto c, find_container(id));
  {
    std::lock_guard lock(mu_);
    if (c->state() != v1::CONTAINER_RUNNING)
      return failed_precondition("container {} is not running", c->id);
  }
  return logs_.reopen(c->id);
}

Status Pods::exec_sync(const v1::ExecSyncRequest& r, v1::ExecSyncResponse* out,
                       const std::function<bool()>& cancelled) {
  BERTH_TRY(auto c, find_container(r.container_id()));
  if (r.cmd().empty()) return invalid_argument("cmd is empty");
  if (r.timeout() < 0) return invalid_argument("timeout is negative");
  {
    std::lock_guard lock(mu_);
    if (c->state() != v1::CONTAINER_RUNNING)
      return failed_precondition("container {} is not running", c->id);
  }
  BERTH_TRY(auto t, tasks_->get(c_.ns, c->id));
  auto spec = json::parse(c->spec, nullptr, false);
  if (!spec.is_object() || !spec.contains("process")) return internal_error("container {} has no process spec", c->id);
  json process = spec["process"];
  process["args"] = std::vector<std::string>(r.cmd().begin(), r.cmd().end());
  process["terminal"] = false;

  std::string exec_id = "exec-" + random_id().substr(0, 16);
  std::string dir = fifo_dir(c->id);
  BERTH_RETURN_IF_ERROR(core::make_private_dir(dir));
  std::string paths[2] = {dir + "/" + exec_id + ".stdout", dir + "/" + exec_id + ".stderr"};
  core::Fd readers[2], keepalive[2];
  for (int i = 0; i < 2; ++i) {
    if (::mkfifo(paths[i].c_str(), 0600) < 0) return from_errno(errno, "create fifo {}", paths[i]);
    readers[i] = core::Fd(::open(paths[i].c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    keepalive[i] = core::Fd(::open(paths[i].c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (readers[i].get() < 0 || keepalive[i].get() < 0) return from_errno(errno, "open fifo {}", paths[i]);
  }
  auto cleanup = [&] {
    for (const auto& p : paths) ::unlink(p.c_str());
  };
  runtime::IO io{"", paths[0], paths[1], false};
  if (Status st = t->exec(exec_id, io, containers::Any{kProcessType, process.dump()}); !st.ok()) {
    cleanup();
    return st.with_context(fmt::format("exec in container {}", c->id));
  }
  auto started = t->start(exec_id);
  if (!started.ok()) {
    t->delete_process(exec_id).status().ignore();
    cleanup();
    return started.status().with_context(fmt::format("start exec in container {}", c->id));
  }
  keepalive[0] = core::Fd();
  keepalive[1] = core::Fd();
  auto deadline = r.timeout() > 0
                      ? std::chrono::steady_clock::now() + std::chrono::seconds(r.timeout())
                      : std::chrono::steady_clock::time_point::max();
  std::string got[2];
  bool open[2] = {true, true};
  bool timed_out = false;
  while (open[0] || open[1]) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    if (cancelled()) break;
    int wait_ms = 200;
    if (deadline != std::chrono::steady_clock::time_point::max())
      wait_ms = static_cast<int>(std::min<std::int64_t>(
          200, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
    pollfd p[2];
    int n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i)
      if (open[i]) {
        p[n] = {readers[i].get(), POLLIN, 0};
        which[n++] = i;
      }
    if (::poll(p, static_cast<nfds_t>(n), wait_ms) < 0 && errno != EINTR) break;
    for (int k = 0; k < n; ++k) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int i = which[k];
      char buf[16384];
      ssize_t got_n = ::read(readers[i].get(), buf, sizeof buf);
      if (got_n > 0) {
        if (got[i].size() < kMaxExecOutput)
          got[i].append(buf, std::min<std::size_t>(static_cast<std::size_t>(got_n), kMaxExecOutput - got[i].size()));
      } else if (got_n == 0 || (errno != EAGAIN && errno != EINTR)) {
        open[i] = false;
      }
    }
  }
  if (timed_out || cancelled()) {
    t->kill(exec_id, SIGKILL, false).ignore();
    t->wait(exec_id, [] { return false; }).status().ignore();
    t->delete_process(exec_id).status().ignore();
    cleanup();
    if (timed_out)
      return Status(Code::kDeadlineExceeded,
                    fmt::format("command {} in container {} timed out after {}s", r.cmd(0), c->id,
                                r.timeout()));
    return Status(Code::kCancelled, "the client went away");
  }
  auto exited = t->wait(exec_id, [deadline] { return std::chrono::steady_clock::now() >= deadline; });
  t->delete_process(exec_id).status().ignore();
  cleanup();
  if (!exited.ok()) return exited.status().with_context(fmt::format("wait for exec in container {}", c->id));
  out->set_stdout(got[0]);
  out->set_stderr(got[1]);
  out->set_exit_code(static_cast<std::int32_t>(exited->status));
  return Status();
}

// ---- exits and recovery ------------------------------------------------------------------------

void Pods::record_exit(const std::string& id, std::uint32_t status, Timestamp at) {
  std::shared_ptr<Container> c;
  std::shared_ptr<Sandbox> s;
  {
    std::lock_guard lock(mu_);
    if (auto it = containers_.find(id); it != containers_.end()) {
      c = it->second;
      if (c->finished_at != 0) return;
      auto n = core::to_unix_nanos(at);
      c->finished_at = n > 0 ? n : now_ns();
      if (c->started_at == 0) c->started_at = c->finished_at;
      c->exit_code = static_cast<std::int32_t>(status);
      c->reason = c->oom ? "OOMKilled" : status == 0 ? "Completed" : "Error";
    } else if (auto it = sandboxes_.find(id); it != sandboxes_.end()) {
      s = it->second;
      if (!s->ready) return;
      s->ready = false;
    } else {
      return;
    }
  }
  if (c) persist(*c).ignore();
  if (s) persist(*s).ignore();
  emit(v1::CONTAINER_STOPPED_EVENT, id);
}

Result<ocispec::User> Pods::resolve_user_in_image(const std::string& id, const std::string& top,
                                                  const std::string& user) {
  // The image's files, as a view of its top layer mounted for the lookup only.
  auto rc = ctx();
  BERTH_TRY(auto sn, md_->snapshotter(c_.snapshotter));
  std::string key = "cri-user-lookup-" + id;
  BERTH_TRY(auto mounts, sn->view(rc, key, top, {}));
  std::string dir = c_.state + "/user-lookup/" + id;
  Result<ocispec::User> out = internal_error("user lookup did not run");
  if (Status st = core::make_private_dir(dir); !st.ok()) {
    out = st;
  } else {
    auto mounted = core::ScopedMount::create(mounts, dir);
    if (!mounted.ok()) {
      out = mounted.status().with_context("mount the image to look up its users");
    } else {
      core::Fd root(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      out = root.get() < 0 ? Result<ocispec::User>(from_errno(errno, "open the image root"))
                           : ocispec::resolve_user(root.get(), user);
    }
  }
  ::rmdir(dir.c_str());
  sn->remove(rc, key).ignore();
  return out;
}

Status Pods::remove_task(const std::string& id) {
  if (!tasks_) return Status();
  std::lock_guard lock(remove_task_mu_);
  auto r = tasks_->remove(c_.ns, id);
  if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
  return Status();
}

void Pods::reap(const std::string& id) {
  remove_task(id).ignore();
  // The shim closed its FIFO ends as it went: the last output is read shortly.
  logs_.drain(id, std::chrono::seconds(2));
  logs_.remove(id);
}

void Pods::monitor() {
  while (!stopping_) {
    auto e = sub_->next(std::chrono::milliseconds(500));
    if (!e) continue;
    if (e->topic == "/tasks/exit") {
      containerd::events::TaskExit ev;
      if (!ev.ParseFromString(e->payload) || ev.id() != ev.container_id()) continue;
      auto at = core::from_unix_nanos(ev.exited_at().seconds() * 1'000'000'000LL + ev.exited_at().nanos());
      record_exit(ev.container_id(), ev.exit_status(), at);
      bool known;
      {
        std::lock_guard lock(mu_);
        known = containers_.count(ev.container_id()) || sandboxes_.count(ev.container_id());
      }
      if (known) reap(ev.container_id());
    } else if (e->topic == "/tasks/oom") {
      containerd::events::TaskOOM ev;
      if (!ev.ParseFromString(e->payload)) continue;
      std::lock_guard lock(mu_);
      if (auto it = containers_.find(ev.container_id()); it != containers_.end()) it->second->oom = true;
    }
  }
}

Status Pods::recover() {
  auto rc = ctx();
  BERTH_TRY(auto records, md_->containers().list(rc, {std::string("labels.\"") + kKindLabel + "\""}));
  for (const auto& rec : records) {
    auto kind = rec.labels.find(kKindLabel);
    if (kind == rec.labels.end()) continue;
    const char* key = kind->second == "sandbox" ? kSandboxExt : kContainerExt;
    auto ext = rec.extensions.find(key);
    if (ext == rec.extensions.end()) continue;
    auto doc = json::parse(ext->second.value, nullptr, false);
    if (kind->second == "sandbox") {
      auto s = std::make_shared<Sandbox>();
      if (Status st = s->from_json(doc); !st.ok()) {
        log::warn("cri: skipping a sandbox record", {{"id", rec.id}, {"error", st.message()}});
        continue;
      }
      auto t = tasks_ ? tasks_->get(c_.ns, s->id) : Result<std::shared_ptr<runtime::Task>>(not_found(""));
      bool running = false;
      if (t.ok()) {
        auto state = (*t)->state("");
        running = state.ok() && state->status == runtime::TaskStatus::kRunning;
        if (running) s->pid = (*t)->pid();
        else remove_task(s->id).ignore();
      }
      s->ready = s->ready && running;
      std::lock_guard lock(mu_);
      names_.insert(s->name);
      sandboxes_[s->id] = s;
    } else {
      auto c = std::make_shared<Container>();
      if (Status st = c->from_json(doc); !st.ok()) {
        log::warn("cri: skipping a container record", {{"id", rec.id}, {"error", st.message()}});
        continue;
      }
      if (rec.spec) c->spec = rec.spec->value;
      std::lock_guard lock(mu_);
      names_.insert(c->name);
      containers_[c->id] = c;
    }
  }
  // Containers that ran: still running (logs reopened), or exited while berthd was down.
  std::vector<std::shared_ptr<Container>> running;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : containers_)
      if (c->state() == v1::CONTAINER_RUNNING) running.push_back(c);
  }
  for (const auto& c : running) {
    auto t = tasks_ ? tasks_->get(c_.ns, c->id) : Result<std::shared_ptr<runtime::Task>>(not_found(""));
    auto state = t.ok() ? (*t)->state("") : Result<runtime::ProcessState>(t.status());
    if (state.ok() && state->status != runtime::TaskStatus::kStopped) {
      std::string dir = fifo_dir(c->id);
      std::map<std::string, std::string> fifos = {{"stdout", dir + "/stdout"}};
      if (!c->config.tty()) fifos["stderr"] = dir + "/stderr";
      if (Status st = logs_.add(c->id, c->log_path, fifos); st.ok()) logs_.connected(c->id);
      else log::warn("cri: cannot reopen a container's log", {{"id", c->id}, {"error", st.message()}});
      continue;
    }
    if (state.ok()) {
      record_exit(c->id, state->exit_status, state->exited_at);
    } else {
      {
        std::lock_guard lock(mu_);
        c->finished_at = now_ns();
        c->exit_code = kUnknownExitCode;
        c->reason = "Unknown";
        c->message = "the container's task was gone when berthd started; its exit status is lost";
      }
      persist(*c).ignore();
    }
    remove_task(c->id).ignore();
  }
  std::lock_guard lock(mu_);
  if (!sandboxes_.empty() || !containers_.empty())
    log::info("cri: recovered pods", {{"sandboxes", std::to_string(sandboxes_.size())},
                                      {"containers", std::to_string(containers_.size())}});
  return Status();
}

// ---- GetContainerEvents ----------------------------------------------------------------------

std::optional<v1::ContainerEventResponse> EventHub::Subscriber::next(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu);
  cv.wait_for(lock, wait, [&] { return !queue.empty() || dropped; });
  if (queue.empty() || dropped) return std::nullopt;
  auto e = std::move(queue.front());
  queue.pop_front();
  return e;
}

std::shared_ptr<EventHub::Subscriber> EventHub::subscribe() {
  auto s = std::make_shared<Subscriber>();
  std::lock_guard lock(mu_);
  subs_.push_back(s);
  return s;
}

void EventHub::unsubscribe(const std::shared_ptr<Subscriber>& s) {
  std::lock_guard lock(mu_);
  std::erase(subs_, s);
}

void EventHub::publish(const v1::ContainerEventResponse& e) {
  std::lock_guard lock(mu_);
  for (const auto& s : subs_) {
    {
      std::lock_guard sl(s->mu);
      if (s->dropped) continue;
      if (s->queue.size() >= kMaxQueued) {
        s->dropped = true;
        s->queue.clear();
      } else {
        s->queue.push_back(e);
      }
    }
    s->cv.notify_one();
  }
}

void Pods::emit(v1::ContainerEventType type, const std::string& id) {
  v1::ContainerEventResponse e;
  e.set_container_id(id);
  e.set_container_event_type(type);
  e.set_created_at(now_ns());
  std::string sandbox_id = id;
  std::vector<std::string> members;
  {
    std::lock_guard lock(mu_);
    if (auto it = containers_.find(id); it != containers_.end()) sandbox_id = it->second->sandbox_id;
    for (const auto& [cid, c] : containers_)
      if (c->sandbox_id == sandbox_id) members.push_back(cid);
  }
  v1::PodSandboxStatusRequest pr;
  pr.set_pod_sandbox_id(sandbox_id);
  v1::PodSandboxStatusResponse ps;
  if (sandbox_status(pr, &ps).ok()) *e.mutable_pod_sandbox_status() = ps.status();
  for (const auto& cid : members) {
    v1::ContainerStatusRequest cr;
    cr.set_container_id(cid);
    v1::ContainerStatusResponse cs;
    if (container_status(cr, &cs).ok()) *e.add_containers_statuses() = cs.status();
  }
  events_.publish(e);
}

// ---- UpdateContainerResources ------------------------------------------------------------------

Status Pods::update_resources(const v1::UpdateContainerResourcesRequest& r) {
  BERTH_TRY(auto c, find_container(r.container_id()));
  if (!r.has_linux()) return Status();  // nothing for Linux to change
  BERTH_TRY(auto res, linux_resources(r.linux()));
  std::lock_guard op(c->op);
  v1::ContainerState state;
  {
    std::lock_guard lock(mu_);
    state = c->state();
  }
  if (state == v1::CONTAINER_EXITED || state == v1::CONTAINER_UNKNOWN)
    return failed_precondition("container {} is not running or created", c->id);
  if (state == v1::CONTAINER_RUNNING) {
    BERTH_TRY(auto t, tasks_->get(c_.ns, c->id));
    BERTH_RETURN_IF_ERROR((*t).update(containers::Any{kResourcesType, res.dump()}, {})
                              .with_context(fmt::format("update the resources of container {}", c->id)));
  }
  // The spec keeps what the container now has, for a start after this and for ContainerStatus.
  auto spec = json::parse(c->spec, nullptr, false);
  if (!spec.is_object()) return internal_error("container {} has no spec", c->id);
  spec["linux"]["resources"].merge_patch(res);
  {
    std::lock_guard lock(mu_);
    c->spec = spec.dump();
    *c->config.mutable_linux()->mutable_resources() = r.linux();
  }
  auto rc = ctx();
  BERTH_TRY(auto rec, md_->containers().get(rc, c->id));
  rec.spec = containers::Any{kSpecType, c->spec};
  BERTH_RETURN_IF_ERROR(md_->containers().update(rc, rec, {"spec"}).status());
  return persist(*c);
}

// ---- stats -------------------------------------------------------------------------------------

std::pair<std::uint64_t, std::int64_t> Pods::swap_cpu_sample(const std::string& key, std::uint64_t cpu_ns,
                                                            std::int64_t at) {
  std::lock_guard lock(mu_);
  auto& slot = cpu_samples_[key];
  auto prev = slot;
  slot = {cpu_ns, at};
  return prev;
}

Status Pods::fill_container_stats(Container& c, v1::ContainerStats* out, CgroupSample* sample) {
  std::int64_t now = now_ns();
  bool running;
  {
    std::lock_guard lock(mu_);
    auto* a = out->mutable_attributes();
    a->set_id(c.id);
    *a->mutable_metadata() = c.config.metadata();
    *a->mutable_labels() = c.config.labels();
    *a->mutable_annotations() = c.config.annotations();
    running = c.state() == v1::CONTAINER_RUNNING;
  }
  auto rc = ctx();
  if (auto sn = md_->snapshotter(c_.snapshotter); sn.ok()) {
    if (auto u = (*sn)->usage(rc, c.id); u.ok()) {
      auto* fs = out->mutable_writable_layer();
      fs->set_timestamp(now);
      fs->mutable_fs_id()->set_mountpoint(c_.snapshotter_root);
      fs->mutable_used_bytes()->set_value(static_cast<std::uint64_t>(std::max<std::int64_t>(u->size, 0)));
      fs->mutable_inodes_used()->set_value(static_cast<std::uint64_t>(std::max<std::int64_t>(u->inodes, 0)));
    }
  }
  if (!running || !tasks_) return Status();
  auto t = tasks_->get(c_.ns, c.id);
  if (!t.ok()) return Status();  // it just exited
  auto metrics = (*t)->stats();
  if (!metrics.ok()) {
    if (metrics.status().code() == Code::kNotFound) return Status();
    return metrics.status().with_context(fmt::format("stats of container {}", c.id));
  }
  BERTH_TRY(auto s, decode_metrics(*metrics));
  auto [prev_ns, prev_at] = swap_cpu_sample(c.id, s.cpu_ns, now);
  fill_cpu(out->mutable_cpu(), s, now, prev_ns, prev_at);
  fill_memory(out->mutable_memory(), s, now);
  fill_swap(out->mutable_swap(), s, now);
  if (sample) *sample = s;
  return Status();
}

Status Pods::container_stats(const std::string& id, v1::ContainerStats* out) {
  BERTH_TRY(auto c, find_container(id));
  return fill_container_stats(*c, out, nullptr);
}

Status Pods::list_container_stats(const v1::ContainerStatsFilter& f, v1::ListContainerStatsResponse* out) {
  std::vector<std::shared_ptr<Container>> chosen;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, c] : containers_) {
      if (!f.id().empty() && id.rfind(f.id(), 0) != 0) continue;
      if (!f.pod_sandbox_id().empty() && c->sandbox_id.rfind(f.pod_sandbox_id(), 0) != 0) continue;
      if (!labels_match(c->config.labels(), f.label_selector())) continue;
      // As containerd: stats are of containers that run.
      if (c->state() != v1::CONTAINER_RUNNING) continue;
      chosen.push_back(c);
    }
  }
  for (const auto& c : chosen) {
    v1::ContainerStats st;
    if (Status s = fill_container_stats(*c, &st, nullptr); !s.ok()) {
      log::warn("cri: container stats", {{"id", c->id}, {"error", s.message()}});
      continue;
    }
    *out->add_stats() = std::move(st);
  }
  return Status();
}

Status Pods::sandbox_stats(const std::string& id, v1::PodSandboxStats* out) {
  BERTH_TRY(auto s, find_sandbox(id));
  std::int64_t now = now_ns();
  std::uint32_t pause_pid = 0;
  std::vector<std::shared_ptr<Container>> members;
  {
    std::lock_guard lock(mu_);
    auto* a = out->mutable_attributes();
    a->set_id(s->id);
    *a->mutable_metadata() = s->config.metadata();
    *a->mutable_labels() = s->config.labels();
    *a->mutable_annotations() = s->config.annotations();
    if (s->ready) pause_pid = s->pid;
    for (const auto& [cid, c] : containers_)
      if (c->sandbox_id == s->id && c->state() == v1::CONTAINER_RUNNING) members.push_back(c);
  }
  auto* linux = out->mutable_linux();
  // The pod's usage is its pause's and its containers' (each has its own cgroup).
  CgroupSample pod;
  if (pause_pid != 0 && tasks_) {
    if (auto t = tasks_->get(c_.ns, s->id); t.ok()) {
      if (auto m = (*t)->stats(); m.ok()) {
        if (auto p = decode_metrics(*m); p.ok()) pod += *p;
      }
    }
  }
  for (const auto& c : members) {
    v1::ContainerStats st;
    CgroupSample sample;
    if (Status e = fill_container_stats(*c, &st, &sample); !e.ok()) {
      log::warn("cri: container stats", {{"id", c->id}, {"error", e.message()}});
      continue;
    }
    pod += sample;
    *linux->add_containers() = std::move(st);
  }
  if (pause_pid == 0) return Status();  // a stopped pod has only its attributes
  auto [prev_ns, prev_at] = swap_cpu_sample("pod:" + s->id, pod.cpu_ns, now);
  fill_cpu(linux->mutable_cpu(), pod, now, prev_ns, prev_at);
  fill_memory(linux->mutable_memory(), pod, now);
  linux->mutable_process()->set_timestamp(now);
  linux->mutable_process()->mutable_process_count()->set_value(pod.pids);
  // /proc/<pause>/net/dev lists the interfaces of the pod's network namespace.
  if (auto text = core::read_file("/proc/" + std::to_string(pause_pid) + "/net/dev"); text.ok())
    fill_network(linux->mutable_network(), *text, "eth0", now);
  return Status();
}

Status Pods::list_sandbox_stats(const v1::PodSandboxStatsFilter& f, v1::ListPodSandboxStatsResponse* out) {
  std::vector<std::string> chosen;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, s] : sandboxes_) {
      if (!f.id().empty() && id.rfind(f.id(), 0) != 0) continue;
      if (!labels_match(s->config.labels(), f.label_selector())) continue;
      if (!s->ready) continue;
      chosen.push_back(id);
    }
  }
  for (const auto& id : chosen) {
    v1::PodSandboxStats st;
    if (Status e = sandbox_stats(id, &st); !e.ok()) {
      if (e.code() != Code::kNotFound) log::warn("cri: pod stats", {{"id", id}, {"error", e.message()}});
      continue;
    }
    *out->add_stats() = std::move(st);
  }
  return Status();
}

}  // namespace berth::cri

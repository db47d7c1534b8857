#include "cmd/berth/kernel_ns.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>

#include "core/fs.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"

namespace berth::cli {

const std::vector<std::string>& kernel_ns_types() {
  static const std::vector<std::string> types = {"mnt", "net", "pid", "uts", "ipc",
                                                 "user", "cgroup", "time"};
  return types;
}

std::uint64_t ns_inode(pid_t pid, const std::string& type) {
  std::string link = "/proc/" + std::to_string(pid) + "/ns/" + type;
  char buf[128];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  std::string v(buf, static_cast<std::size_t>(n));  // "net:[4026531833]"
  auto open = v.find('[');
  if (open == std::string::npos) return 0;
  return std::strtoull(v.c_str() + open + 1, nullptr, 10);
}

namespace {

std::string command_of(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  auto cmdline = core::read_file(base + "/cmdline");
  std::string cmd = cmdline.ok() ? *cmdline : "";
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  std::replace(cmd.begin(), cmd.end(), '\0', ' ');
  if (cmd.empty()) {
    auto comm = core::read_file(base + "/comm");
    cmd = comm.ok() ? *comm : "";
    while (!cmd.empty() && cmd.back() == '\n') cmd.pop_back();
  }
  return cmd;
}

}  // namespace

std::vector<KernelNamespace> read_kernel_namespaces() {
  std::map<std::pair<std::string, std::uint64_t>, KernelNamespace> by;
  DIR* d = ::opendir("/proc");
  if (!d) return {};
  std::vector<pid_t> pids;
  while (dirent* e = ::readdir(d)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    pids.push_back(static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10)));
  }
  ::closedir(d);
  std::sort(pids.begin(), pids.end());
  for (pid_t pid : pids) {
    struct stat st {};
    if (::stat(("/proc/" + std::to_string(pid)).c_str(), &st) < 0) continue;  // gone
    for (const auto& t : kernel_ns_types()) {
      std::uint64_t ino = ns_inode(pid, t);
      if (!ino) continue;
      auto& ns = by[{t, ino}];
      if (ns.pids.empty()) {
        ns.inode = ino;
        ns.type = t;
        ns.uid = st.st_uid;
        ns.command = command_of(pid);
      }
      ns.pids.push_back(pid);
    }
  }
  std::vector<KernelNamespace> out;
  for (auto& [k, v] : by) out.push_back(std::move(v));
  std::sort(out.begin(), out.end(), [](const KernelNamespace& a, const KernelNamespace& b) {
    return a.inode < b.inode;
  });
  return out;
}

std::map<std::pair<std::string, std::uint64_t>, std::string> container_namespaces(Client* c) {
  std::map<std::pair<std::string, std::uint64_t>, std::string> out;
  if (!c) return out;
  namespace nspb = ::containerd::services::namespaces::v1;
  namespace tpb = ::containerd::services::tasks::v1;
  nspb::ListNamespacesRequest lr;
  nspb::ListNamespacesResponse lresp;
  auto ctx = c->context();
  if (!nspb::Namespaces::NewStub(c->channel())->List(ctx.get(), lr, &lresp).ok()) return out;
  // The host's: pid 1's where it can be read (this process's otherwise).
  std::map<std::string, std::uint64_t> host;
  for (const auto& t : kernel_ns_types()) {
    host[t] = ns_inode(1, t);
    if (!host[t]) host[t] = ns_inode(::getpid(), t);
  }
  auto tasks = tpb::Tasks::NewStub(c->channel());
  for (const auto& n : lresp.namespaces()) {
    grpc::ClientContext tctx;
    tctx.AddMetadata("containerd-namespace", n.name());
    tctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    tpb::ListTasksRequest req;
    tpb::ListTasksResponse resp;
    if (!tasks->List(&tctx, req, &resp).ok()) continue;
    for (const auto& t : resp.tasks()) {
      if (t.pid() == 0) continue;
      for (const auto& type : kernel_ns_types()) {
        std::uint64_t ino = ns_inode(static_cast<pid_t>(t.pid()), type);
        if (ino && ino != host[type]) out[{type, ino}] = n.name() + "/" + t.id();
      }
    }
  }
  return out;
}

}  // namespace berth::cli

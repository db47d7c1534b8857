#include "core/oci/container_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "core/fs.h"
#include "core/time.h"
#include "core/oci/unix_socket.h"

namespace berth::oci::detail {

std::optional<ProcStat> proc_stat(pid_t pid) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return std::nullopt;
  auto close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 2));
  ProcStat st;
  in >> st.state;
  std::string field;
  for (int i = 4; i < 22 && in >> field; ++i) {
  }
  in >> st.start;
  return st;
}

bool alive(pid_t pid, std::uint64_t start) {
  auto st = proc_stat(pid);
  return st && st->start == start && st->state != 'Z' && st->state != 'X';
}

bool signal_pending(pid_t pid) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/status");
  if (!text.ok()) return false;
  for (const char* key : {"\nSigPnd:", "\nShdPnd:"}) {
    auto at = text->find(key);
    if (at == std::string::npos) continue;
    auto mask = std::strtoull(text->c_str() + at + std::strlen(key), nullptr, 16);
    if (mask) return true;
  }
  return false;
}

Status check_capabilities(const Process& p, bool new_userns) {
  if (!p.capabilities || new_userns) return Status();
  const auto& c = *p.capabilities;
  for (const auto& [set, names] :
       {std::pair<const char*, const std::vector<std::string>*>{"bounding", &c.bounding},
        {"effective", &c.effective},
        {"permitted", &c.permitted},
        {"inheritable", &c.inheritable},
        {"ambient", &c.ambient}}) {
    for (const auto& name : *names) {
      auto n = capability_number(name);
      if (n && ::prctl(PR_CAPBSET_READ, *n, 0, 0, 0) != 1) {
        return Status(Code::kFailedPrecondition,
                      fmt::format("process.capabilities.{}: {} is not in this host's capability "
                                  "bounding set, so no container here can have it",
                                  set, name));
      }
    }
  }
  return Status();
}

pid_t clone_process(unsigned long flags) {
  return static_cast<pid_t>(
      ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
}

Status write_id_map(pid_t pid, const char* file, const std::vector<IdMapping>& maps) {
  std::string text;
  for (const auto& m : maps) text += fmt::format("{} {} {}\n", m.container_id, m.host_id, m.size);
  std::string path = fmt::format("/proc/{}/{}", pid, file);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return from_errno(errno, "open {}", path);
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n < 0) return from_errno(err, "write {} ({})", path, text.substr(0, text.size() - 1));
  return Status();
}

Result<ConsoleEnds> console_ends(bool terminal, const std::string& socket) {
  ConsoleEnds ends;
  if (!terminal) return ends;
  if (!socket.empty()) {
    BERTH_TRY(int fd, connect_unix(socket, "console socket"));
    ends.child = core::Fd(fd);
    return ends;
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    return from_errno(errno, "socketpair");
  ends.parent = core::Fd(pair[0]);
  ends.child = core::Fd(pair[1]);
  return ends;
}

const char* ns_proc_name(const std::string& type) {
  if (type == "network") return "net";
  if (type == "mount") return "mnt";
  return type.c_str();
}

json state_to_json(const ContainerState& s) {
  return {{"id", s.id},
          {"bundle", s.bundle},
          {"rootfs", s.rootfs},
          {"pid", s.pid},
          {"pid_start", s.pid_start},
          {"cgroup_path", s.cgroup_path},
          {"created", core::format_rfc3339(s.created)},
          {"annotations", s.annotations},
          {"owner", s.owner}};
}

Result<ContainerState> state_from_json(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return internal_error("{}: corrupt state file", where);
  ContainerState s;
  try {
    s.id = j.at("id").get<std::string>();
    s.bundle = j.at("bundle").get<std::string>();
    s.rootfs = j.value("rootfs", "");
    s.pid = j.at("pid").get<pid_t>();
    s.pid_start = j.value("pid_start", std::uint64_t{0});
    s.cgroup_path = j.value("cgroup_path", "");
    auto created = core::parse_rfc3339(j.value("created", ""));
    if (created.ok()) s.created = *created;
    s.annotations = j.value("annotations", std::map<std::string, std::string>{});
    s.owner = j.value("owner", "");
  } catch (const json::exception& e) {
    return internal_error("{}: corrupt state file: {}", where, e.what());
  }
  return s;
}

Resources with_default_devices(Resources r) {
  auto rule = [](const char* type, std::optional<std::int64_t> major,
                 std::optional<std::int64_t> minor, const char* access) {
    DeviceRule d;
    d.allow = true;
    d.type = type;
    d.major = major;
    d.minor = minor;
    d.access = access;
    return d;
  };
  // No rules at all: deny everything but the defaults below (never "everything", which a fresh
  // cgroup allows).
  if (r.devices.empty()) {
    DeviceRule deny_all = rule("a", std::nullopt, std::nullopt, "rwm");
    deny_all.allow = false;
    r.devices.push_back(deny_all);
  }
  for (auto d :
       {rule("c", std::nullopt, std::nullopt, "m"), rule("b", std::nullopt, std::nullopt, "m"),
        rule("c", 1, 3, "rwm"), rule("c", 1, 5, "rwm"), rule("c", 1, 7, "rwm"),
        rule("c", 1, 8, "rwm"), rule("c", 1, 9, "rwm"), rule("c", 5, 0, "rwm"),
        rule("c", 5, 1, "rwm"), rule("c", 5, 2, "rwm"), rule("c", 136, std::nullopt, "rwm")})
    r.devices.push_back(d);
  return r;
}

}  // namespace berth::oci::detail

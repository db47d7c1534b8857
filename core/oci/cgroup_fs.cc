#include "core/oci/cgroup_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "core/fs.h"

namespace berth::oci::cgroups {
namespace {

class HostFs final : public CgroupFs {
 public:
  Status write(const std::string& dir, const std::string& file, const std::string& value) override {
    std::string path = dir + "/" + file;
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_TRUNC);
    if (fd < 0) {
      if (errno == ENOENT)
        return Status(Code::kUnimplemented,
                      fmt::format("cgroup file {} does not exist (controller or feature missing "
                                  "on this host)",
                                  path));
      return from_errno(errno, "open cgroup file {}", path);
    }
    ssize_t n = ::write(fd, value.data(), value.size());
    int err = errno;
    ::close(fd);
    if (n < 0) return from_errno(err, "write \"{}\" to {}", value, path);
    return Status();
  }
  std::optional<std::string> read(const std::string& path) const override {
    auto r = core::read_file(path);
    if (!r.ok()) return std::nullopt;
    std::string s = *r;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  bool exists(const std::string& path) const override { return ::access(path.c_str(), F_OK) == 0; }
  Status mkdir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST)
      return from_errno(errno, "create cgroup {}", dir);
    return Status();
  }
  Status mkdir_all(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return invalid_argument("create cgroup {}: {}", dir, ec.message());
    return Status();
  }
  int rmdir(const std::string& dir) override { return ::rmdir(dir.c_str()) == 0 ? 0 : errno; }
};

}  // namespace

CgroupFs& CgroupFs::host() {
  static HostFs fs;
  return fs;
}

std::uint64_t read_u64(const CgroupFs& fs, const std::string& path) {
  auto v = fs.read(path);
  if (!v || v->empty() || *v == "max") return 0;
  return std::strtoull(v->c_str(), nullptr, 10);
}

std::map<std::string, std::uint64_t> read_keyed(const CgroupFs& fs, const std::string& path) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in(fs.read(path).value_or(""));
  std::string k;
  std::uint64_t v;
  while (in >> k >> v) out[k] = v;
  return out;
}

Result<std::vector<pid_t>> read_procs(const CgroupFs& fs, const std::string& dir) {
  auto text = fs.read(dir + "/cgroup.procs");
  if (!text) return from_errno(errno, "read {}/cgroup.procs", dir);
  std::istringstream in(*text);
  std::vector<pid_t> out;
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

Status remove_dir(CgroupFs& fs, const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    int err = fs.rmdir(dir);
    if (err == 0 || err == ENOENT) return Status();
    if (err != EBUSY) return from_errno(err, "remove cgroup {}", dir);
    auto procs = fs.read(dir + "/cgroup.procs");
    if (procs && !procs->empty())
      return from_errno(EBUSY, "remove cgroup {} (processes {} are still in it)", dir, *procs);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return from_errno(EBUSY, "remove cgroup {} (tasks still in it)", dir);
}

}  // namespace berth::oci::cgroups

// The OCI runtime spec's config.json (Linux parts), parsed strictly: a field of the wrong type or
// an invalid value is refused with its path ("process.rlimits[1].type: unknown rlimit
// \"RLIMIT_FOO\""). Unknown fields are ignored, as the spec asks.
#pragma once

#include <berth/result.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::oci {

struct User {
  std::uint32_t uid = 0, gid = 0;
  std::optional<std::uint32_t> umask;
  std::vector<std::uint32_t> additional_gids;
};

struct Capabilities {
  std::vector<std::string> bounding, effective, inheritable, permitted, ambient;
};

struct Rlimit {
  std::string type;  // "RLIMIT_NOFILE"
  int resource = 0;  // RLIMIT_NOFILE
  std::uint64_t hard = 0, soft = 0;
};

struct Process {
  bool terminal = false;
  std::optional<std::pair<unsigned, unsigned>> console_size;  // height, width
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::optional<Capabilities> capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::string apparmor_profile;
  std::optional<int> oom_score_adj;
  std::string selinux_label;
};

struct Mount {
  std::string destination, type, source;
  std::vector<std::string> options;
};

struct Hook {
  std::string path;
  std::vector<std::string> args, env;
  std::optional<int> timeout;  // seconds
};
struct Hooks {
  std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart,
      poststop;
};

struct Namespace {
  std::string type;  // pid network mount ipc uts user cgroup time
  std::string path;  // join instead of create
  int clone_flag = 0;
};

struct IdMapping {
  std::uint32_t container_id = 0, host_id = 0, size = 0;
};

struct Device {
  std::string type;  // c b u p
  std::string path;
  std::int64_t major = 0, minor = 0;
  std::optional<std::uint32_t> file_mode, uid, gid;
};

struct DeviceRule {
  bool allow = false;
  std::string type;  // a c b ("" = all)
  std::optional<std::int64_t> major, minor;
  std::string access;  // rwm
};

struct Memory {
  std::optional<std::int64_t> limit, reservation, swap, kernel, kernel_tcp;
  std::optional<std::uint64_t> swappiness;
  std::optional<bool> disable_oom_killer, use_hierarchy;
};
struct Cpu {
  std::optional<std::uint64_t> shares;
  std::optional<std::int64_t> quota;
  std::optional<std::uint64_t> period;
  std::optional<std::int64_t> realtime_runtime;
  std::optional<std::uint64_t> realtime_period;
  std::string cpus, mems;
  std::optional<std::int64_t> idle;
};
struct WeightDevice {
  std::int64_t major = 0, minor = 0;
  std::optional<std::uint16_t> weight, leaf_weight;
};
struct ThrottleDevice {
  std::int64_t major = 0, minor = 0;
  std::uint64_t rate = 0;
};
struct BlockIo {
  std::optional<std::uint16_t> weight, leaf_weight;
  std::vector<WeightDevice> weight_device;
  std::vector<ThrottleDevice> throttle_read_bps, throttle_write_bps, throttle_read_iops,
      throttle_write_iops;
};
struct HugepageLimit {
  std::string page_size;  // "2MB"
  std::uint64_t limit = 0;
};
struct Resources {
  std::vector<DeviceRule> devices;
  std::optional<Memory> memory;
  std::optional<Cpu> cpu;
  std::optional<std::int64_t> pids_limit;
  std::optional<BlockIo> block_io;
  std::vector<HugepageLimit> hugepage_limits;
  std::optional<std::uint32_t> net_class_id;
  std::map<std::string, std::uint32_t> net_priorities;
  std::map<std::string, std::string> unified;
};

struct SeccompArg {
  unsigned index = 0;
  std::uint64_t value = 0, value_two = 0;
  std::string op;  // SCMP_CMP_EQ ...
};
struct SeccompRule {
  std::vector<std::string> names;
  std::string action;
  std::optional<std::uint32_t> errno_ret;
  std::vector<SeccompArg> args;
};
struct Seccomp {
  std::string default_action;
  std::optional<std::uint32_t> default_errno_ret;
  std::vector<std::string> architectures, flags;
  std::string listener_path;
  std::vector<SeccompRule> syscalls;
};

struct Linux {
  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings, gid_mappings;
  std::vector<Device> devices;
  std::string cgroups_path;
  std::optional<Resources> resources;
  std::map<std::string, std::string> sysctl;
  std::optional<Seccomp> seccomp;
  std::string rootfs_propagation;
  std::vector<std::string> masked_paths, readonly_paths;
  std::string mount_label;

  const Namespace* find(std::string_view type) const;
};

struct Spec {
  std::string oci_version;
  std::optional<Process> process;
  std::string root_path;  // as written (relative to the bundle or absolute)
  bool root_readonly = false;
  std::string hostname, domainname;
  std::vector<Mount> mounts;
  Hooks hooks;
  std::map<std::string, std::string> annotations;
  Linux linux;
  std::string raw;  // the document, for the state directory
};

// Parses config.json text. `where` prefixes error messages (the file name).
Result<Spec> parse_spec(std::string_view json, std::string_view where = "config.json");
// Parses a process.json (runc exec --process).
Result<Process> parse_process(std::string_view json, std::string_view where = "process.json");
// Parses a linux.resources object alone (runc update, a shim's Update).
Result<Resources> parse_resources(std::string_view json, std::string_view where = "resources");
// The default spec `berth-runtime spec` writes (runc's defaults, rootless when asked).
std::string default_spec_json(bool rootless);

// "CAP_SYS_ADMIN" -> its number; nullopt when unknown.
std::optional<int> capability_number(std::string_view name);
// "RLIMIT_NOFILE" -> RLIMIT_NOFILE.
std::optional<int> rlimit_number(std::string_view name);

}  // namespace berth::oci

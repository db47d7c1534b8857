#include "core/oci/seccomp.h"

#include <seccomp.h>
#include <unistd.h>

#include <cstring>

#include "core/oci/unix_socket.h"

namespace berth::oci {
namespace {

Result<std::uint32_t> action(const std::string& name, std::optional<std::uint32_t> errno_ret) {
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
  if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errno_ret.value_or(EPERM));
  if (name == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(errno_ret.value_or(EPERM));
  if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (name == "SCMP_ACT_NOTIFY") return SCMP_ACT_NOTIFY;
  return invalid_argument("linux.seccomp: unknown action \"{}\"", name);
}

scmp_compare op(const std::string& name) {
  if (name == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (name == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (name == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (name == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (name == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (name == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  return SCMP_CMP_EQ;
}

// "SCMP_ARCH_X86_64" -> libseccomp's token.
Result<std::uint32_t> arch(const std::string& name) {
  std::string lower = name.rfind("SCMP_ARCH_", 0) == 0 ? name.substr(10) : name;
  for (auto& c : lower) c = static_cast<char>(std::tolower(c));
  if (lower == "x86_64") lower = "x86_64";
  std::uint32_t token = seccomp_arch_resolve_name(lower.c_str());
  if (token == 0) return invalid_argument("linux.seccomp.architectures: unknown \"{}\"", name);
  return token;
}

struct Ctx {
  scmp_filter_ctx ctx = nullptr;
  ~Ctx() {
    if (ctx) seccomp_release(ctx);
  }
};

}  // namespace

Result<SeccompFilter> SeccompFilter::build(const Seccomp& s) {
  SeccompFilter f;
  BERTH_TRY(std::uint32_t def, action(s.default_action, s.default_errno_ret));
  f.ctx_ = seccomp_init(def);
  if (!f.ctx_) return invalid_argument("linux.seccomp: seccomp_init failed");
  for (const auto& a : s.architectures) {
    BERTH_TRY(std::uint32_t token, arch(a));
    int rc = seccomp_arch_add(f.ctx_, token);
    if (rc < 0 && rc != -EEXIST) return from_errno(-rc, "linux.seccomp: add architecture {}", a);
  }
  for (const auto& flag : s.flags) {
    if (flag == "SECCOMP_FILTER_FLAG_LOG") {
      seccomp_attr_set(f.ctx_, SCMP_FLTATR_CTL_LOG, 1);
    } else if (flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
      seccomp_attr_set(f.ctx_, SCMP_FLTATR_CTL_SSB, 1);
    } else if (flag != "SECCOMP_FILTER_FLAG_TSYNC") {
      return invalid_argument("linux.seccomp.flags: unknown flag \"{}\"", flag);
    }
  }
  // The runtime sets no_new_privs itself when the spec asks; loading must not force it.
  seccomp_attr_set(f.ctx_, SCMP_FLTATR_CTL_NNP, 0);
  for (std::size_t i = 0; i < s.syscalls.size(); ++i) {
    const auto& rule = s.syscalls[i];
    BERTH_TRY(std::uint32_t act, action(rule.action, rule.errno_ret));
    if (act == SCMP_ACT_NOTIFY) f.notify_ = true;
    if (act == def) continue;  // libseccomp refuses rules equal to the default
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& a : rule.args) {
      scmp_arg_cmp c{};
      c.arg = a.index;
      c.op = op(a.op);
      c.datum_a = a.value;
      c.datum_b = a.value_two;
      cmps.push_back(c);
    }
    for (const auto& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown on this kernel/arch: ignored, like runc
      int rc = seccomp_rule_add_array(f.ctx_, act, nr, static_cast<unsigned>(cmps.size()),
                                      cmps.empty() ? nullptr : cmps.data());
      if (rc < 0) {
        // Several conditions on one argument need one rule each (runc's approach).
        bool same_arg = cmps.size() > 1;
        for (std::size_t x = 1; x < cmps.size(); ++x) same_arg = same_arg && cmps[x].arg == cmps[0].arg;
        if (rc == -EINVAL && same_arg) {
          for (const auto& c : cmps) {
            rc = seccomp_rule_add_array(f.ctx_, act, nr, 1, &c);
            if (rc < 0) break;
          }
        }
        if (rc < 0)
          return from_errno(-rc, "linux.seccomp.syscalls[{}]: rule for \"{}\"", i, name);
      }
    }
  }
  return f;
}

SeccompFilter::~SeccompFilter() {
  if (ctx_) seccomp_release(ctx_);
}

Result<int> SeccompFilter::load() {
  int rc = seccomp_load(ctx_);
  if (rc < 0) return from_errno(-rc, "load seccomp filter");
  if (!notify_) return -1;
  int fd = seccomp_notify_fd(ctx_);
  if (fd < 0) return from_errno(-fd, "seccomp notify fd");
  return fd;
}

Status send_seccomp_fd(const std::string& listener_path, int fd, const std::string& state_json) {
  BERTH_TRY(int s, connect_unix(listener_path, "seccomp listener"));
  Status st = send_fd(s, fd, state_json);
  ::close(s);
  return st.with_context("seccomp listener " + listener_path);
}

}  // namespace berth::oci

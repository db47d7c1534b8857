// linux.seccomp with libseccomp: every action, architecture list, flag and argument comparison the
// spec allows. Built before the container process starts (so a bad profile fails `create` with
// the rule named), loaded as the last step before exec.
#pragma once

#include <berth/result.h>

#include <utility>

#include "core/oci/spec.h"

namespace berth::oci {

class SeccompFilter {
 public:
  static Result<SeccompFilter> build(const Seccomp& spec);
  SeccompFilter(SeccompFilter&& o) noexcept : ctx_(o.ctx_), notify_(o.notify_) { o.ctx_ = nullptr; }
  SeccompFilter& operator=(SeccompFilter&& o) noexcept {
    std::swap(ctx_, o.ctx_);
    notify_ = o.notify_;
    return *this;
  }
  ~SeccompFilter();
  // Installs the filter on the calling thread; returns the notify fd for SCMP_ACT_NOTIFY rules
  // (else -1).
  Result<int> load();

 private:
  SeccompFilter() = default;
  void* ctx_ = nullptr;
  bool notify_ = false;
};

// Hands a seccomp notify fd to linux.seccomp.listenerPath (SCM_RIGHTS, the state as payload).
Status send_seccomp_fd(const std::string& listener_path, int fd, const std::string& state_json);

}  // namespace berth::oci

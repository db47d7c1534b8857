// Inside the transfer library: what pull (pull.cc) and push (push.cc) share.
#pragma once

#include <berth/context.h>
#include <berth/result.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/remotes/client.h"
#include "core/transfer/transfer.h"
#include "core/unpack/daemon_stores.h"

namespace berth::transfer::detail {

using unpack::kMaxDocument;
inline constexpr std::chrono::hours kLeaseTtl{24};
inline constexpr int kMaxProgressRetries = 1000;

// A normalised reference split into the repository and the tag or digest to resolve.
struct Reference {
  std::string name;  // normalised, as the image record is named
  remotes::Repository repo;
  std::string object;  // tag or digest
};
Result<Reference> parse_reference(const std::string& ref);

// containerd.io/distribution.source.<host>: the repositories of that host a blob is known in.
std::string source_label(const remotes::Repository& repo);
bool retryable(const Status& s);
Status cancelled_status();
// The wait before attempt `attempt` (the first retry waits r.backoff, then it doubles).
std::chrono::milliseconds backoff(const Retry& r, int attempt);
// False when the client went away meanwhile.
bool sleep_unless_cancelled(const RequestContext& ctx, std::chrono::milliseconds d);
// Runs `op` until it succeeds or fails for a reason retrying cannot fix, at most r.attempts
// times, with exponential backoff; `report` hears of each retry.
Status with_retries(const RequestContext& ctx, const Retry& r,
                    const std::function<void(const std::string&)>& report,
                    const std::function<Status()>& op);
// Runs `fn(i)` for i in [0, n) on up to `width` threads, in index order; stops handing out work
// after the first failure (or when `stop` says so). Returns the first failure.
Status run_parallel(
    std::size_t n, int width, const std::function<Status(std::size_t)>& fn,
    const std::function<bool()>& stop = [] { return false; });

}  // namespace berth::transfer::detail

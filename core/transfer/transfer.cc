#include "core/transfer/transfer.h"

#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "core/transfer/internal.h"
#include "core/unpack/daemon_stores.h"

namespace berth::transfer {

namespace detail {

namespace model = images::model;

Result<Reference> parse_reference(const std::string& ref) {
  Reference r;
  BERTH_TRY(r.name, model::normalize_reference(ref));
  BERTH_TRY(r.repo, remotes::Repository::parse(r.name));
  if (auto at = r.name.find('@'); at != std::string::npos) {
    r.object = r.name.substr(at + 1);
  } else {
    r.object = r.name.substr(r.name.rfind(':') + 1);
  }
  return r;
}

// The distribution source label key for a registry host (containerd's convention).
std::string source_label(const remotes::Repository& repo) {
  std::string host = repo.host == "registry-1.docker.io" ? "docker.io" : repo.host;
  return "containerd.io/distribution.source." + host;
}

// Transport trouble worth another attempt: connection refused or cut, timeouts, 5xx, short reads.
bool retryable(const Status& s) { return s.code() == Code::kUnavailable; }

bool sleep_unless_cancelled(const RequestContext& ctx, std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (ctx.cancelled()) return false;
    std::this_thread::sleep_for(std::min(d, std::chrono::milliseconds(50)));
  }
  return !ctx.cancelled();
}

Status cancelled_status() { return Status(Code::kCancelled, "the client went away"); }

std::chrono::milliseconds backoff(const Retry& r, int attempt) {
  return r.backoff * (1 << std::min(attempt - 1, 6));
}

// Runs `op` until it succeeds or fails for a reason retrying cannot fix, at most r.attempts
// times, waiting backoff(attempt) in between; `report` hears of each retry.
Status with_retries(const RequestContext& ctx, const Retry& r,
                    const std::function<void(const std::string&)>& report,
                    const std::function<Status()>& op) {
  Status last;
  for (int attempt = 0; attempt < r.attempts; ++attempt) {
    if (attempt > 0) {
      auto wait = backoff(r, attempt);
      report(fmt::format("attempt {} of {} in {} ms: {}", attempt + 1, r.attempts, wait.count(),
                         last.message()));
      if (!sleep_unless_cancelled(ctx, wait)) return cancelled_status();
    }
    last = op();
    if (last.ok() || !retryable(last)) return last;
  }
  return Status(last.code(),
                fmt::format("giving up after {} attempts: {}", r.attempts, last.message()));
}

// Runs `fn(i)` for i in [0, n) on up to `width` threads, in index order; stops handing out work
// after the first failure (or when `stop` says so). Returns the first failure.
Status run_parallel(std::size_t n, int width, const std::function<Status(std::size_t)>& fn,
                    const std::function<bool()>& stop) {
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  Status first;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (;;) {
      std::size_t i = next++;
      if (i >= n || failed || stop()) return;
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, width) && static_cast<std::size_t>(t) < n; ++t)
    threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  return first;
}

}  // namespace detail

using detail::kMaxDocument;
using diff::Descriptor;

Result<std::string> Transfers::read_small(const RequestContext& ctx, const std::string& digest) {
  return unpack::read_document(*md_->content(), ctx, digest, kMaxDocument);
}

}  // namespace berth::transfer

// Power loss, simulated: what tests/e2e/powerloss_preload.cc recorded of a process's writes and
// syncs is replayed into a model of what is on the disk (a file keeps the size it had at its
// last fsync; a create, mkdir, rename, unlink or rmdir lasts only once its directory was
// fsynced — POSIX's promise, stricter than ext4's journal), and everything else is taken away
// from the real files: unsynced tails truncated, operations that never became durable undone
// (removed files brought back from the preload's hard-link stash).
#pragma once

#include <berth/result.h>

#include <string>

namespace berth::e2e {

struct PowerLoss {
  int truncated = 0;      // files cut back to their synced size
  int undone = 0;         // directory operations reverted
  int unrecoverable = 0;  // existing files truncated by open (their old content is gone)
};

// Applies the power loss the log at `log_path` describes. A line "A" (which a test may append
// itself) marks everything before it as synced, as a journal commit would.
Result<PowerLoss> lose_power(const std::string& log_path);

}  // namespace berth::e2e

// Writing the difference between two trees as a layer tar (containerd's walking diff): entries
// for added and changed paths (with their parent directories), ".wh.<name>" for deleted ones,
// hard links kept, xattrs as PAX records. The diffID is the sha256 of the uncompressed tar.
#pragma once

#include <berth/content.h>

#include <string>

namespace berth::plugins::differ {

struct DiffWritten {
  std::string diff_id;
  std::int64_t size = 0;  // bytes written to the content writer
};

Result<DiffWritten> write_diff(const std::string& lower, const std::string& upper, bool gzip,
                               content::Writer& out);

}  // namespace berth::plugins::differ

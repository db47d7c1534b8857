// Any bytes as a layer: applying never crashes and never writes outside the scratch root (a
// sibling "canary" directory must stay empty).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/copy.h"
#include "plugins/differ/walking/apply.h"

namespace {
std::string base() {
  // run.sh hands over a scratch directory it removes afterwards.
  static std::string dir = [] {
    const char* env = std::getenv("BERTH_FUZZ_DIR");
    std::string d;
    if (env && *env) {
      d = env;
    } else {
      char tmpl[] = "/tmp/berth-fuzz-XXXXXX";
      d = ::mkdtemp(tmpl);
    }
    std::filesystem::create_directories(d + "/canary");
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string root = base() + "/root";
  berth::core::remove_tree(root).ignore();
  ::mkdir(root.c_str(), 0755);
  std::size_t pos = 0;
  auto read = [&](char* buf, std::size_t n) -> berth::Result<std::size_t> {
    std::size_t k = std::min(n, size - pos);
    std::memcpy(buf, data + pos, k);
    pos += k;
    return k;
  };
  berth::plugins::differ::apply_layer(read, root, {}).status().ignore();
  if (!std::filesystem::is_empty(base() + "/canary")) std::abort();
  for (const auto& e : std::filesystem::directory_iterator(base())) {
    auto n = e.path().filename().string();
    if (n != "root" && n != "canary") std::abort();  // something escaped the root
  }
  return 0;
}

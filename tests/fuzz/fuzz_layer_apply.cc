// Any bytes as a layer: applying never crashes and never changes anything outside the scratch
// root. A populated canary directory sits beside the root (so "../canary" from inside the root
// names it when a path is re-joined as a string): any deletion or change in it aborts, as does
// any new entry beside the two.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/copy.h"
#include "plugins/differ/walking/apply.h"
#include "tests/support/canary.h"

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
    return d;
  }();
  return dir;
}

const berth::test::Canary& canary() {
  static berth::test::Canary* c = [] {
    auto made = berth::test::Canary::create_at(base() + "/canary");
    if (!made) std::abort();
    return new berth::test::Canary(std::move(*made));
  }();
  return *c;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& c = canary();
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
  if (!c.intact()) {
    std::fputs(c.report().c_str(), stderr);
    std::abort();  // something outside the root was deleted or changed
  }
  for (const auto& e : std::filesystem::directory_iterator(base())) {
    auto n = e.path().filename().string();
    if (n != "root" && n != "canary") std::abort();  // something escaped the root
  }
  return 0;
}

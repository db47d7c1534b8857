// Test helper: a layer applier's ReadFn over bytes in memory.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "plugins/differ/walking/apply.h"

namespace berth::test {

inline plugins::differ::ReadFn reader_of(const std::string& data) {
  auto pos = std::make_shared<std::size_t>(0);
  return [data, pos](char* buf, std::size_t n) -> Result<std::size_t> {
    std::size_t k = std::min(n, data.size() - *pos);
    std::memcpy(buf, data.data() + *pos, k);
    *pos += k;
    return k;
  };
}

}  // namespace berth::test

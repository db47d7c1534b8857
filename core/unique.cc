#include "core/unique.h"

#include <unistd.h>

#include <atomic>
#include <chrono>

namespace berth::core {

std::string unique_part() {
  static std::atomic<unsigned> seq{0};
  return std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-" +
         std::to_string(::getpid()) + "-" + std::to_string(seq++);
}

}  // namespace berth::core

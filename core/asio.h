// Boost.Asio, plus what Boost 1.74's asio/awaitable.hpp uses without including (std::exchange).
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on

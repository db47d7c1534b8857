// Result<T>: a value or a non-OK Status. [[nodiscard]] so an error cannot be dropped silently.
#pragma once

#include <berth/status.h>

#include <cassert>
#include <cstdlib>
#include <utility>
#include <variant>

namespace berth {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) {
      // An OK status carries no value: a programming error, not an input error.
      fmt::print(stderr, "berth: Result constructed from an OK status\n");
      std::abort();
    }
  }
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, T>>>
  Result(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }

  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  T& checked() {
    if (!ok()) {
      fmt::print(stderr, "berth: value() on an error result: {}\n",
                 std::get<Status>(v_).to_string());
      std::abort();
    }
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

}  // namespace berth

// BERTH_TRY(auto x, expr): evaluates expr (a Result), returns its Status on error, otherwise
// binds the value to the declaration.
#define BERTH_TRY(decl, expr) BERTH_TRY_IMPL_(BERTH_CONCAT_(berth_result_, __LINE__), decl, expr)
#define BERTH_TRY_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                     \
  if (!tmp.ok()) return tmp.status();    \
  decl = std::move(tmp).value()

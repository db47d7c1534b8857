// Status: the one error model of Berth. Codes are numerically equal to gRPC's, so the gRPC edge
// converts with a cast. Messages are lowercase, name the operation and quote the path or id.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace berth {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view code_name(Code code);

// A Status is cheap when OK (one null pointer) and carries code + message otherwise.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message)
      : rep_(code == Code::kOk ? nullptr : std::make_shared<Rep>(Rep{code, std::move(message)})) {}

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  const std::string& message() const {
    static const std::string kEmpty;
    return rep_ ? rep_->message : kEmpty;
  }

  // Returns a copy whose message is "<context>: <message>"; OK stays OK, a skip stays a skip.
  Status with_context(std::string_view context) const {
    if (ok()) return *this;
    Status out(code(), fmt::format("{}: {}", context, message()));
    if (skips_plugin()) out.rep_ = std::make_shared<Rep>(Rep{code(), out.message(), true});
    return out;
  }

  // A plugin that does not apply to this host: see skip() in plugin.h. A typed mark, not a
  // message prefix, so no error text can be mistaken for it.
  static Status skip_plugin(std::string message) {
    Status out;
    out.rep_ = std::make_shared<Rep>(Rep{Code::kUnimplemented, std::move(message), true});
    return out;
  }
  bool skips_plugin() const { return rep_ && rep_->skip; }

  // "not found: container \"c1\"" style, for logs and CLI output.
  std::string to_string() const;

  // Marks an error as intentionally ignored.
  void ignore() const {}

 private:
  struct Rep {
    Code code;
    std::string message;
    bool skip = false;
  };
  std::shared_ptr<const Rep> rep_;
};

inline std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kCancelled: return "cancelled";
    case Code::kUnknown: return "unknown";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kDeadlineExceeded: return "deadline exceeded";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kFailedPrecondition: return "failed precondition";
    case Code::kAborted: return "aborted";
    case Code::kOutOfRange: return "out of range";
    case Code::kUnimplemented: return "unimplemented";
    case Code::kInternal: return "internal";
    case Code::kUnavailable: return "unavailable";
    case Code::kDataLoss: return "data loss";
    case Code::kUnauthenticated: return "unauthenticated";
  }
  return "unknown";
}

inline std::string Status::to_string() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", code_name(code()), message());
}

// Convenience constructors taking fmt-style arguments.
template <typename... Args>
Status error(Code code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kNotFound, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status already_exists(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kAlreadyExists, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status failed_precondition(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kFailedPrecondition, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status internal_error(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kInternal, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
Status unavailable(fmt::format_string<Args...> f, Args&&... args) {
  return Status(Code::kUnavailable, fmt::format(f, std::forward<Args>(args)...));
}

// Maps an errno to the closest code and appends the errno name, e.g.
// "mkdir \"/x\": ENOENT (No such file or directory)".
Code code_from_errno(int err);
const char* errno_name(int err);

template <typename... Args>
Status from_errno(int err, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code_from_errno(err),
                fmt::format("{}: {} ({})", fmt::format(f, std::forward<Args>(args)...),
                            errno_name(err), std::strerror(err)));
}

inline Code code_from_errno(int err) {
  switch (err) {
    case ENOENT: return Code::kNotFound;
    case EEXIST: return Code::kAlreadyExists;
    case EACCES:
    case EPERM: return Code::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return Code::kInvalidArgument;
    case EBUSY:
    case EAGAIN: return Code::kUnavailable;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE: return Code::kResourceExhausted;
    case ENOSYS:
    case EOPNOTSUPP: return Code::kUnimplemented;
    case ETIMEDOUT: return Code::kDeadlineExceeded;
    default: return Code::kInternal;
  }
}

inline const char* errno_name(int err) {
  // strerrorname_np is glibc >= 2.32 (Debian 12 has 2.36).
  const char* name = ::strerrorname_np(err);
  return name ? name : "E?";
}

}  // namespace berth

#define BERTH_CONCAT_INNER_(a, b) a##b
#define BERTH_CONCAT_(a, b) BERTH_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when it is not OK.
#define BERTH_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::berth::Status berth_status_ = (expr);        \
    if (!berth_status_.ok()) return berth_status_; \
  } while (0)

// Status and Result<T>: the error type of every seam in Shoal.
//
// A Status is OK or an ErrorCode (defined in proto/common.proto, so that it
// crosses the wire unchanged) plus a human-readable message. Result<T> holds
// either a T or a non-OK Status. Neither throws.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include "proto/common.pb.h"

namespace shoal {

using ErrorCode = proto::ErrorCode;

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }

  bool ok() const { return code_ == proto::OK; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // The errno a POSIX caller should see for this status (0 when OK).
  int ToErrno() const;
  // Builds a status from an errno value, with `context` as the message prefix.
  static Status FromErrno(int err, const std::string& context);

 private:
  ErrorCode code_ = proto::OK;
  std::string message_;
};

inline Status Error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace shoal

#define SHOAL_CONCAT_INNER(a, b) a##b
#define SHOAL_CONCAT(a, b) SHOAL_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::shoal::Status _st = (expr);             \
    if (!_st.ok()) return _st;                \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, ResultExpr())` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SHOAL_CONCAT(_res_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

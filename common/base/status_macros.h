// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
// Debian's Abseil (20220623) ships no status_macros, so the project has its own.
#ifndef IST_COMMON_BASE_STATUS_MACROS_H_
#define IST_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    const ::absl::Status ist_status_ = (expr);         \
    if (!ist_status_.ok()) return ist_status_;         \
  } while (0)

#define IST_STATUS_CONCAT_INNER_(a, b) a##b
#define IST_STATUS_CONCAT_(a, b) IST_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  IST_ASSIGN_OR_RETURN_IMPL_(IST_STATUS_CONCAT_(ist_statusor_, __LINE__), lhs, rexpr)

#define IST_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()

#endif  // IST_COMMON_BASE_STATUS_MACROS_H_

// Early-return helpers for absl::Status and absl::StatusOr, and the one way
// to add context to a status while keeping its code.
#pragma once

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

// Returns `status` with "context: " before its message and the same code.
// OK stays OK.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace jailover::common

#define JAILOVER_STATUS_CONCAT_INNER_(a, b) a##b
#define JAILOVER_STATUS_CONCAT_(a, b) JAILOVER_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status jailover_status_ = (expr);                   \
    if (!jailover_status_.ok()) return jailover_status_;        \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, else moves the value into `lhs`, which may be a
// declaration: ASSIGN_OR_RETURN(auto x, Foo());
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  JAILOVER_ASSIGN_OR_RETURN_IMPL_(JAILOVER_STATUS_CONCAT_(jailover_statusor_, __LINE__), lhs, rexpr)

#define JAILOVER_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();    \
  lhs = std::move(statusor).value()

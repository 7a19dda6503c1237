// JAILOVER_CHECK: for invariants only (impossible states, programming
// errors). Environmental failures are returned as absl::Status, never checked.
// Debian's Abseil 20220623 has no absl/log, hence this macro.
#pragma once

namespace jailover::common::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition);
}  // namespace jailover::common::internal

// Logs the failed condition with file and line, flushes the log and aborts.
#define JAILOVER_CHECK(condition)                                                  \
  do {                                                                             \
    if (!(condition)) {                                                            \
      ::jailover::common::internal::CheckFailed(__FILE__, __LINE__, #condition);   \
    }                                                                              \
  } while (0)

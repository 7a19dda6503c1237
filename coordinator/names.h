// Short names of the v1 enums for messages and logs: READY, RUNNING,
// failover. One place, so every part of the coordinator says them alike.
#pragma once

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator {

// `full` without `prefix`, or "<what> N" for a value the proto does not name.
inline std::string ShortEnumName(const std::string& full, absl::string_view prefix,
                                 absl::string_view what, int value) {
  absl::string_view name = absl::StripPrefix(full, prefix);
  return name.empty() || name == full ? absl::StrCat(what, " ", value) : std::string(name);
}

// "READY", "FENCED", ...
inline std::string HostStateName(v1::HostState state) {
  return ShortEnumName(v1::HostState_Name(state), "HOST_STATE_", "state", state);
}

// "RUNNING", "FAILING_OVER", ...
inline std::string JailPhaseName(v1::JailPhase phase) {
  return ShortEnumName(v1::JailPhase_Name(phase), "JAIL_PHASE_", "phase", phase);
}

// "failover", "migrate", "restart", ...
inline std::string OperationKindName(v1::OperationKind kind) {
  return absl::AsciiStrToLower(
      ShortEnumName(v1::OperationKind_Name(kind), "OPERATION_KIND_", "KIND", kind));
}

}  // namespace jailover::coordinator

// What a jail(8) definition may contain, shared by the coordinator's catalog
// (which validates a jail when it is applied) and the FreeBSD driver (which
// renders it into jail.conf), so that a jail the catalog accepts can be
// started and both refuse the same things. Pure functions, thread-safe.
#pragma once

#include "absl/strings/string_view.h"

namespace jailover::common {

// True if `value` contains a newline or a NUL byte (neither may reach a
// jail.conf line or an argv element).
bool HasNewlineOrNul(absl::string_view value);

// [a-z0-9_.]+ without empty dot components: a jail(8) parameter name (also
// the allow.* names without their prefix).
bool IsJailParamName(absl::string_view name);

// [A-Za-z_][A-Za-z0-9_]*: a portable environment variable name.
bool IsEnvVarName(absl::string_view name);

// The prefix of the environment variables the agent sets in every jail
// (JAILOVER_HOST, JAILOVER_EPOCH); a jail spec may not set them.
inline constexpr absl::string_view kReservedEnvPrefix = "JAILOVER_";
// True if `name` starts with kReservedEnvPrefix.
bool IsReservedEnvVar(absl::string_view name);

// True if `param` is a jail(8) parameter the agent sets itself or must keep
// unset: name, jid, path, host, host.hostname, ip4, ip4.addr, ip6, ip6.addr,
// vnet, vnet.interface, interface, ip_hostname, persist, devfs_ruleset,
// enforce_statfs, securelevel, children.max, stop.timeout, command, depend,
// mount and everything under exec., mount. and allow., also in the "no" form
// jail(8) reads as the same boolean ("nopersist", "ip4.noaddr").
bool IsManagedJailParam(absl::string_view param);

}  // namespace jailover::common

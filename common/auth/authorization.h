// The one authorization table of jailover: which roles (identity.h) may call
// which RPC, for both daemons. The gRPC servers enforce it at the edge
// (server_auth.h) before any handler runs; a call that the table does not
// name is refused (default deny).
//
// Three kinds of rule:
// - the roles listed may call the method;
// - an agent may call it only for its own host (Coordinator.Lease, whose
//   Register names the host; Agent.RenewStorageLease, whose request names
//   the host its grants carry). The edge admits any agent; the handler, which
//   has the message, checks the host with AuthorizeOwnHost;
// - grpc.health.v1.Health: any identity (load balancers get viewer
//   certificates).
// Coordinator terms and image epochs reach an agent only through methods
// only coordinators may call (mutating Agent RPCs, the lease stream's
// answers), so no operator or agent certificate can fence, or lock out, a
// host. Pure and thread-safe; the denial counters are atomics.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/auth/identity.h"

namespace jailover::common {

// Who may call one method.
struct MethodRule {
  std::string method;          // "/jailover.v1.Agent/StopJail"
  uint32_t roles = 0;          // bit (1 << Role) per role allowed
  bool own_host_only = false;  // agents only for the host the message names
};

// The whole table, for documentation and the completeness test.
const std::vector<MethodRule>& AuthorizationTable();

// The rule of a full method name, if the table has one.
std::optional<MethodRule> FindMethodRule(absl::string_view method);

// OK if `caller` may call `method`. PermissionDenied naming the caller, the
// method and the roles allowed, otherwise; also for an unknown method and
// for a caller without an identity (nullopt: a certificate without a
// jailover identity). Counts every denial (DeniedCalls).
absl::Status Authorize(const std::optional<Identity>& caller, absl::string_view method);

// For an own-host-only method, in its handler (after Authorize admitted the
// caller): OK unless `caller` is an agent whose host is not `host`.
// Coordinators pass, and so does nullopt, which here means a server
// without TLS (--insecure: no identities at all).
// PermissionDenied naming both hosts otherwise, counted.
absl::Status AuthorizeOwnHost(const std::optional<Identity>& caller, absl::string_view method,
                              absl::string_view host);

// Calls refused since the process started, by the caller's role ("none" for
// a caller without an identity), for /metrics.
struct DeniedCount {
  std::string role;
  uint64_t count = 0;
};
std::vector<DeniedCount> DeniedCalls();

}  // namespace jailover::common

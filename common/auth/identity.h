// Who a certificate speaks for. Every jailover certificate carries exactly
// one URI subject alternative name of the form
//
//   spiffe://jailover/ROLE/NAME
//
// (a SPIFFE ID in the trust domain "jailover"), where ROLE is one of
// coordinator, agent, operator, viewer and NAME is a jailover name
// (ValidateName): the coordinator's id, the agent's host name, the
// operator's or viewer's user name. Authorization (authorization.h) decides
// on the role and, for agents, on the name. One CA per cluster: the trust
// domain is fixed, the CA is what separates clusters. Pure, thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jailover::common {

enum class Role {
  kCoordinator,  // a jailover-coordinator
  kAgent,        // the jailover-agent of host NAME
  kOperator,     // changes the cluster (jailoverctl apply, migrate, drain, ...)
  kViewer,       // reads the cluster (status, get, events) and health
};

inline constexpr char kIdentityScheme[] = "spiffe://jailover/";

struct Identity {
  Role role = Role::kViewer;
  std::string name;

  friend bool operator==(const Identity&, const Identity&) = default;
};

// "coordinator", "agent", "operator", "viewer".
absl::string_view RoleName(Role role);
// The inverse of RoleName; InvalidArgument naming the roles otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// spiffe://jailover/ROLE/NAME.
std::string IdentityUri(const Identity& identity);
// ROLE/NAME, for logs, errors and the audit trail.
std::string IdentityString(const Identity& identity);

// Parses IdentityUri's form. InvalidArgument, saying what is wrong, for any
// other URI (another scheme or trust domain, an unknown role, a bad name,
// extra path segments, a query or fragment).
absl::StatusOr<Identity> ParseIdentityUri(absl::string_view uri);

}  // namespace jailover::common

#include "common/auth/identity.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/validation/validation.h"

namespace jailover::common {
namespace {

constexpr std::array<std::pair<Role, absl::string_view>, 4> kRoles = {{
    {Role::kCoordinator, "coordinator"},
    {Role::kAgent, "agent"},
    {Role::kOperator, "operator"},
    {Role::kViewer, "viewer"},
}};

}  // namespace

absl::string_view RoleName(Role role) {
  for (const auto& [value, name] : kRoles) {
    if (value == role) return name;
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (const auto& [value, role_name] : kRoles) {
    if (role_name == name) return value;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", name, "\": one of coordinator, agent, operator, viewer"));
}

std::string IdentityUri(const Identity& identity) {
  return absl::StrCat(kIdentityScheme, RoleName(identity.role), "/", identity.name);
}

std::string IdentityString(const Identity& identity) {
  return absl::StrCat(RoleName(identity.role), "/", identity.name);
}

absl::StatusOr<Identity> ParseIdentityUri(absl::string_view uri) {
  absl::string_view rest = uri;
  if (!absl::ConsumePrefix(&rest, kIdentityScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity URI \"", uri, "\": does not start with ", kIdentityScheme));
  }
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity URI \"", uri, "\": expected ", kIdentityScheme, "ROLE/NAME"));
  }
  absl::StatusOr<Role> role = ParseRole(rest.substr(0, slash));
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity URI \"", uri, "\": ", role.status().message()));
  }
  Identity identity;
  identity.role = *role;
  identity.name = std::string(rest.substr(slash + 1));
  // ValidateName also rules out '/', '?', '#' and '%': one plain segment.
  if (absl::Status valid = ValidateName("identity name", identity.name); !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity URI \"", uri, "\": ", valid.message()));
  }
  return identity;
}

}  // namespace jailover::common

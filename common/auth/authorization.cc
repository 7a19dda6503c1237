#include "common/auth/authorization.h"

#include <array>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace jailover::common {
namespace {

constexpr uint32_t Bit(Role role) { return 1u << static_cast<uint32_t>(role); }

constexpr uint32_t kCoordinator = Bit(Role::kCoordinator);
constexpr uint32_t kAgent = Bit(Role::kAgent);
constexpr uint32_t kOperator = Bit(Role::kOperator);
constexpr uint32_t kViewer = Bit(Role::kViewer);
constexpr uint32_t kReaders = kCoordinator | kOperator | kViewer;
constexpr uint32_t kEveryone = kCoordinator | kAgent | kOperator | kViewer;

constexpr std::array<Role, 4> kAllRoles = {Role::kCoordinator, Role::kAgent, Role::kOperator,
                                           Role::kViewer};

// Denials per role, and at the end those without an identity.
std::array<std::atomic<uint64_t>, kAllRoles.size() + 1> denied_counts;

std::vector<MethodRule> MakeTable() {
  std::vector<MethodRule> table;
  auto add = [&table](absl::string_view service, std::initializer_list<absl::string_view> methods,
                      uint32_t roles, bool own_host_only = false) {
    for (absl::string_view method : methods) {
      table.push_back(MethodRule{absl::StrCat("/", service, "/", method), roles, own_host_only});
    }
  };
  // --- jailover.v1.Agent: the coordinator drives, others may look. ---
  add("jailover.v1.Agent",
      {"CreateJail", "StartJail", "StopJail", "DestroyJail", "ExecInJail", "CreateImage",
       "AttachImage", "DetachImage", "ExportImage", "UnexportImage", "ImportImage", "ReleaseImage",
       "FsckImage", "MountImage", "UnmountImage", "ConfigureVip", "RemoveVip", "SetVipAdvskew"},
      kCoordinator);
  add("jailover.v1.Agent", {"ListJails", "GetVipState", "GetHostFacts"}, kReaders);
  // A jail host renews the leases of its own grants at the storage host.
  add("jailover.v1.Agent", {"RenewStorageLease"}, kAgent, /*own_host_only=*/true);
  // --- jailover.v1.Coordinator: agents hold leases, operators change,
  // viewers read. ---
  add("jailover.v1.Coordinator", {"Lease"}, kAgent, /*own_host_only=*/true);
  add("jailover.v1.Coordinator",
      {"ListHosts", "GetHost", "ListImages", "GetImage", "ListVips", "ListJails", "GetJail", "Plan",
       "ListOperations", "GetOperation", "WatchEvents", "GetClusterStatus"},
      kReaders);
  add("jailover.v1.Coordinator",
      {"RegisterHost", "DrainHost", "UndrainHost", "SetMaintenance", "MarkHostFenced",
       "ReadmitHost", "RemoveHost", "ApplyImage", "DeleteImage", "ApplyVip", "DeleteVip",
       "ApplyJail", "DeleteJail", "RestartJail", "Migrate", "Failover"},
      kOperator);
  // --- Health, on both daemons: whoever holds a certificate. ---
  add("grpc.health.v1.Health", {"Check", "Watch"}, kEveryone);
  return table;
}

std::string AllowedRoles(const MethodRule& rule) {
  std::vector<std::string> names;
  for (Role role : kAllRoles) {
    if ((rule.roles & Bit(role)) == 0) continue;
    names.push_back(role == Role::kAgent && rule.own_host_only ? "agent (own host)"
                                                               : std::string(RoleName(role)));
  }
  return absl::StrJoin(names, ", ");
}

absl::Status Deny(const std::optional<Identity>& caller, std::string message) {
  const size_t slot = caller.has_value() ? static_cast<size_t>(caller->role) : kAllRoles.size();
  denied_counts[slot].fetch_add(1, std::memory_order_relaxed);
  return absl::PermissionDeniedError(std::move(message));
}

std::string CallerName(const std::optional<Identity>& caller) {
  return caller.has_value() ? IdentityString(*caller)
                            : std::string("a certificate without a jailover identity");
}

}  // namespace

const std::vector<MethodRule>& AuthorizationTable() {
  static const std::vector<MethodRule>* table = new std::vector<MethodRule>(MakeTable());
  return *table;
}

std::optional<MethodRule> FindMethodRule(absl::string_view method) {
  for (const MethodRule& rule : AuthorizationTable()) {
    if (rule.method == method) return rule;
  }
  return std::nullopt;
}

absl::Status Authorize(const std::optional<Identity>& caller, absl::string_view method) {
  std::optional<MethodRule> rule = FindMethodRule(method);
  if (!rule.has_value()) {
    return Deny(caller, absl::StrCat(CallerName(caller), " may not call ", method,
                                     ": not in jailover's authorization table"));
  }
  if (!caller.has_value()) {
    return Deny(caller, absl::StrCat(CallerName(caller), " may not call ", method,
                                     " (allowed: ", AllowedRoles(*rule), "; see ", kIdentityScheme,
                                     "ROLE/NAME in docs/security.md)"));
  }
  if ((rule->roles & Bit(caller->role)) == 0) {
    return Deny(caller, absl::StrCat(IdentityString(*caller), " may not call ", method,
                                     " (allowed: ", AllowedRoles(*rule), ")"));
  }
  return absl::OkStatus();
}

absl::Status AuthorizeOwnHost(const std::optional<Identity>& caller, absl::string_view method,
                              absl::string_view host) {
  if (!caller.has_value() || caller->role != Role::kAgent || caller->name == host) {
    return absl::OkStatus();
  }
  return Deny(caller,
              absl::StrCat(IdentityString(*caller), " may call ", method, " only for its own host ",
                           caller->name, ", not for host \"", host, "\""));
}

std::vector<DeniedCount> DeniedCalls() {
  std::vector<DeniedCount> counts;
  for (size_t i = 0; i < kAllRoles.size(); ++i) {
    counts.push_back(
        {std::string(RoleName(kAllRoles[i])), denied_counts[i].load(std::memory_order_relaxed)});
  }
  counts.push_back({"none", denied_counts[kAllRoles.size()].load(std::memory_order_relaxed)});
  return counts;
}

}  // namespace jailover::common

#include "coordinator/catalog/catalog.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log/log.h"
#include "common/proto/time_util.h"
#include "common/status/status_macros.h"
#include "common/validation/jail_params.h"
#include "common/validation/validation.h"
#include "coordinator/cluster/jail_tracker.h"
#include "coordinator/names.h"
#include "google/protobuf/util/message_differencer.h"

namespace jailover::coordinator::catalog {
namespace {

using google::protobuf::util::MessageDifferencer;

// Commits attempted before giving up on concurrent writers.
constexpr int kMaxCommitAttempts = 8;
// Longest value quoted in an error message.
constexpr size_t kMaxQuoted = 80;
constexpr absl::Duration kMaxStopTimeout = absl::Hours(1);
constexpr uint32_t kMaxDevfsRuleset = 65535;
constexpr uint32_t kMaxPort = 65535;
// rctl(8) amounts are short numbers.
constexpr size_t kMaxRctlAmountBytes = 20;

// `value` for an error message: quoted, escaped, shortened.
std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuoted) {
    return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxQuoted)), "\"... (",
                        value.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

std::string ActorOf(absl::string_view actor) {
  return actor.empty() ? std::string("an unnamed caller") : std::string(actor);
}

// `status` with "PREFIX" before its message, same code.
absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool IsRctlResource(absl::string_view resource) {
  return !resource.empty() &&
         std::all_of(resource.begin(), resource.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// deny, log, devctl, throttle, or a signal: sig + [a-z0-9]+ (sigterm,
// sigkill...).
bool IsRctlAction(absl::string_view action) {
  if (action == "deny" || action == "log" || action == "devctl" || action == "throttle") {
    return true;
  }
  if (!absl::StartsWith(action, "sig") || action.size() == 3) return false;
  return std::all_of(action.begin() + 3, action.end(), IsLowerAlnum);
}

// [0-9]+ with an optional k/m/g/t/p suffix (either case), as rctl(8) reads it.
bool IsRctlAmount(absl::string_view amount) {
  if (amount.empty() || amount.size() > kMaxRctlAmountBytes) return false;
  absl::string_view digits = amount;
  if (absl::string_view("kKmMgGtTpP").find(digits.back()) != absl::string_view::npos) {
    digits.remove_suffix(1);
  }
  return !digits.empty() &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Password of a CARP group: 1..19 printable ASCII bytes, no spaces.
absl::Status ValidateVipPassword(absl::string_view prefix, absl::string_view password) {
  if (password.size() > kMaxVipPasswordBytes) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "password is ", password.size(),
                                                   " bytes, at most ", kMaxVipPasswordBytes));
  }
  for (char c : password) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "password must be printable ASCII without spaces (a byte 0x",
                       absl::Hex(static_cast<unsigned char>(c)), " was found)"));
    }
  }
  return absl::OkStatus();
}

// The IPv4 address of "A.B.C.D/P" (validated before).
uint32_t Ipv4Of(absl::string_view cidr) {
  const std::string address(cidr.substr(0, cidr.find('/')));
  in_addr parsed{};
  if (::inet_pton(AF_INET, address.c_str(), &parsed) != 1) return 0;
  return parsed.s_addr;
}

std::string AddressOf(absl::string_view cidr) {
  return std::string(cidr.substr(0, cidr.find('/')));
}

std::string DescribeImage(const v1::ImageSpec& spec) {
  return absl::StrCat(
      spec.storage_host(), ":", spec.path(), " ", spec.size_bytes(), " bytes ",
      absl::AsciiStrToLower(ShortEnumName(v1::Filesystem_Name(spec.filesystem()), "FILESYSTEM_",
                                          "filesystem", spec.filesystem())));
}

// Why an image's path was accepted without the image root check.
std::string UncheckedImagePath(const v1::ImageSpec& spec) {
  return absl::StrCat("path not checked: the agent of storage host ", spec.storage_host(),
                      " reported no image root; it checks the path itself when it creates the "
                      "image");
}

std::string DescribeVip(const v1::VipSpec& vip) {
  return absl::StrCat(vip.address(), " on ", vip.interface(), " vhid ", vip.vhid(), " advbase ",
                      vip.advbase());
}

// Why a jail's mount point was accepted without the jail root check on
// `hosts`.
std::string UncheckedMountPoint(const std::vector<std::string>& hosts) {
  return absl::StrCat("spec.mount_point not checked on ", absl::StrJoin(hosts, ", "),
                      ": no jail root reported by the agent; it checks the mount point itself "
                      "when it mounts the image");
}

std::string DescribeJail(const v1::Jail& jail) {
  std::string out = absl::StrCat("image ", jail.image());
  if (!jail.vip().empty()) absl::StrAppend(&out, ", vip ", jail.vip());
  absl::StrAppend(&out, ", on ", jail.placement().preferred_host());
  if (jail.placement().standbys_size() > 0) {
    absl::StrAppend(&out, " (standbys ", absl::StrJoin(jail.placement().standbys(), ","), ")");
  }
  return out;
}

bool Equal(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return MessageDifferencer::Equals(a, b);
}

// The commit loop: `build` reads what it depends on, validates, and returns
// the Txn to commit, or nullopt when nothing needs writing. Retried while a
// compare fails (a concurrent writer), up to kMaxCommitAttempts.
using BuildFn = std::function<absl::StatusOr<std::optional<store::Txn>>()>;
absl::Status CommitLoop(store::StateStore& store, absl::string_view what, const BuildFn& build) {
  absl::Status last;
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::Txn> txn, build());
    if (!txn.has_value()) return absl::OkStatus();
    absl::StatusOr<int64_t> committed = store.Commit(*txn);
    if (committed.ok()) return absl::OkStatus();
    if (committed.status().code() != absl::StatusCode::kAborted) {
      return common::Annotate(committed.status(), absl::StrCat(what, ": writing the state store"));
    }
    last = committed.status();
  }
  return absl::AbortedError(
      absl::StrCat(what, ": gave up after ", kMaxCommitAttempts,
                   " attempts conflicting with concurrent writers; last: ", last.message()));
}

// The stored host `host`; FailedPrecondition unless it is registered with
// `role`.
absl::StatusOr<v1::Host> GetHostWithRole(const store::StateStore& store, absl::string_view prefix,
                                         absl::string_view host, v1::HostRole role,
                                         absl::string_view role_word) {
  ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Host>> stored,
                   store::GetObject<v1::Host>(store, host));
  if (!stored.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat(prefix, "host ", host, " is not registered (its agent must register first)"));
  }
  const auto& roles = stored->object.roles();
  if (std::find(roles.begin(), roles.end(), role) == roles.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat(prefix, "host ", host, " does not have the ", role_word, " role"));
  }
  return std::move(stored->object);
}

// The roots an agent reports in HostFacts.
enum class HostRoot { kImage, kJail };

// Checks that `path` (normalized) lies strictly below the root that `host`'s
// agent reported at registration: its --image_root or --jail_root, outside
// which the agent refuses to create an image or mount one. Checking here
// turns "image path /etc/shadow" or "mount_point /etc" into an error at apply
// time instead of a failed start. Returns true when checked, false when the
// agent reported no root (an agent older than HostFacts.image_root): the
// definition is accepted and the agent's own check still refuses a bad path
// when the jail starts. InvalidArgument if `path` is outside the root,
// FailedPrecondition if the agent reported a malformed root.
absl::StatusOr<bool> CheckUnderHostRoot(absl::string_view prefix, absl::string_view field,
                                        absl::string_view path, const v1::Host& host,
                                        HostRoot which) {
  const v1::HostFacts& facts = host.status().facts();
  const std::string& root = which == HostRoot::kImage ? facts.image_root() : facts.jail_root();
  const absl::string_view root_word = which == HostRoot::kImage ? "image root" : "jail root";
  const absl::string_view flag = which == HostRoot::kImage ? "--image_root" : "--jail_root";
  if (root.empty()) return false;
  if (!common::ValidateAbsolutePath(root_word, root).ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(prefix, "host ", host.name(), " reported an invalid ", root_word, " ",
                     Quote(root), " (its agent's ", flag, "), so ", field, " cannot be checked"));
  }
  if (!common::ValidatePathUnder(field, root, path).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, field, " ", Quote(path), " is not below ", Quote(root), ", the ",
                     root_word, " of host ", host.name(), " (its agent's ", flag, ")"));
  }
  return true;
}

// `path` as NormalizeImage stores it, so that "/a/x.img/" and "/a/x.img"
// compare equal even in a definition stored before paths were normalized.
std::string ComparablePath(const std::string& path) {
  absl::StatusOr<std::string> normalized = common::ValidateAbsolutePath("path", path);
  return normalized.ok() ? *normalized : path;
}

// --- Static validation (InvalidArgument). ---

absl::StatusOr<v1::ImageSpec> NormalizeImage(const v1::ImageSpec& spec) {
  RETURN_IF_ERROR(common::ValidateName("image name", spec.name()));
  const std::string prefix = absl::StrCat("image ", spec.name(), ": ");
  auto invalid = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, problem));
  };
  v1::ImageSpec out = spec;
  if (spec.storage_host().empty()) return invalid("storage_host is required");
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateName("storage_host", spec.storage_host())));
  if (spec.path().empty()) return invalid("path is required");
  absl::StatusOr<std::string> path = common::ValidateAbsolutePath("path", spec.path());
  if (!path.ok()) return Prefixed(prefix, path.status());
  if (*path == "/") return invalid("path \"/\" is not a file");
  out.set_path(*path);
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateImageSize(spec.size_bytes())));
  if (spec.filesystem() != v1::FILESYSTEM_UFS && spec.filesystem() != v1::FILESYSTEM_EXT4) {
    return invalid(absl::StrCat("filesystem must be UFS or EXT4, got ",
                                v1::Filesystem_Name(spec.filesystem()).empty()
                                    ? absl::StrCat(static_cast<int>(spec.filesystem()))
                                    : v1::Filesystem_Name(spec.filesystem())));
  }
  return out;
}

// Validated VipSpec with advbase 0 made 1; the password may be empty here.
absl::StatusOr<v1::VipSpec> NormalizeVip(const v1::VipSpec& spec) {
  RETURN_IF_ERROR(common::ValidateName("vip name", spec.name()));
  const std::string prefix = absl::StrCat("vip ", spec.name(), ": ");
  v1::VipSpec out = spec;
  if (spec.address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "address (A.B.C.D/P) is required"));
  }
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateCidr("address", spec.address())));
  {
    const std::string address = AddressOf(spec.address());
    in_addr parsed{};
    if (::inet_pton(AF_INET, address.c_str(), &parsed) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "address ", Quote(spec.address()),
                                                     " is not IPv4 (only IPv4 "
                                                     "VIPs are supported)"));
    }
  }
  if (spec.interface().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "interface is required"));
  }
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateInterfaceName("interface", spec.interface())));
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateVhid(spec.vhid())));
  if (spec.advbase() == 0) {
    out.set_advbase(1);
  } else {
    RETURN_IF_ERROR(Prefixed(prefix, common::ValidateAdvbase(spec.advbase())));
  }
  if (!spec.password().empty()) {
    RETURN_IF_ERROR(ValidateVipPassword(prefix, spec.password()));
  }
  return out;
}

absl::Status ValidateArgv(absl::string_view prefix, absl::string_view field,
                          const google::protobuf::RepeatedPtrField<std::string>& argv) {
  if (argv.size() > kMaxExecArgs) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "spec.", field, " has ", argv.size(),
                                                   " arguments, at most ", kMaxExecArgs));
  }
  for (int i = 0; i < argv.size(); ++i) {
    const std::string element = absl::StrCat(prefix, "spec.", field, "[", i, "]");
    if (argv[i].empty()) return absl::InvalidArgumentError(absl::StrCat(element, " is empty"));
    if (common::HasNewlineOrNul(argv[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(element, " ", Quote(argv[i]), " contains a newline or NUL"));
    }
  }
  if (!argv.empty() && argv[0].find('=') != std::string::npos) {
    // /usr/bin/env and sh would read NAME=value as an assignment.
    return absl::InvalidArgumentError(absl::StrCat(prefix, "spec.", field, "[0] ", Quote(argv[0]),
                                                   ": the command must not contain '='"));
  }
  return absl::OkStatus();
}

absl::Status ValidateJailSpec(absl::string_view prefix, v1::JailSpec& spec) {
  auto invalid = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "spec.", problem));
  };
  if (!spec.hostname().empty()) {
    RETURN_IF_ERROR(Prefixed(prefix, common::ValidateName("spec.hostname", spec.hostname())));
  }
  if (!spec.mount_point().empty()) {
    absl::StatusOr<std::string> mount =
        common::ValidateAbsolutePath("spec.mount_point", spec.mount_point());
    if (!mount.ok()) return Prefixed(prefix, mount.status());
    if (*mount == "/") return invalid("mount_point must not be \"/\"");
    spec.set_mount_point(*mount);
  }
  if (spec.exec_start().empty()) {
    return invalid("exec_start is required (the command that starts the jail)");
  }
  RETURN_IF_ERROR(ValidateArgv(prefix, "exec_start", spec.exec_start()));
  RETURN_IF_ERROR(ValidateArgv(prefix, "exec_stop", spec.exec_stop()));
  if (spec.has_stop_timeout()) {
    const absl::Duration timeout = common::FromProtoDuration(spec.stop_timeout());
    if (timeout < absl::ZeroDuration() || timeout > kMaxStopTimeout) {
      return invalid(
          absl::StrCat("stop_timeout ", absl::FormatDuration(timeout), " is not within 0..1h"));
    }
  }
  if (spec.devfs_ruleset() > kMaxDevfsRuleset) {
    return invalid(absl::StrCat("devfs_ruleset ", spec.devfs_ruleset(), " is not within 0..",
                                kMaxDevfsRuleset));
  }
  if (spec.has_securelevel() && (spec.securelevel() < -1 || spec.securelevel() > 3)) {
    return invalid(absl::StrCat("securelevel ", spec.securelevel(), " is not within -1..3"));
  }
  if (spec.has_enforce_statfs() && spec.enforce_statfs() > 2) {
    return invalid(absl::StrCat("enforce_statfs ", spec.enforce_statfs(), " is not within 0..2"));
  }
  for (int i = 0; i < spec.allow_size(); ++i) {
    if (!common::IsJailParamName(spec.allow(i))) {
      return invalid(absl::StrCat("allow[", i, "] ", Quote(spec.allow(i)),
                                  " must match [a-z0-9_.]+, without the \"allow.\" prefix"));
    }
  }
  // Sorted, so that the first bad one reported does not depend on map order.
  std::vector<std::pair<std::string, std::string>> params(spec.params().begin(),
                                                          spec.params().end());
  std::sort(params.begin(), params.end());
  for (const auto& [name, value] : params) {
    if (!common::IsJailParamName(name)) {
      return invalid(absl::StrCat("params ", Quote(name), ": the name must match [a-z0-9_.]+"));
    }
    if (common::IsManagedJailParam(name)) {
      return invalid(absl::StrCat("params ", Quote(name),
                                  ": set by jailover itself (use name, spec.hostname, "
                                  "spec.mount_point, vip, "
                                  "spec.exec_start, spec.exec_stop, spec.stop_timeout, "
                                  "spec.devfs_ruleset, "
                                  "spec.securelevel, spec.enforce_statfs or spec.allow)"));
    }
    if (common::HasNewlineOrNul(value)) {
      return invalid(absl::StrCat("params ", Quote(name), ": the value contains a newline or NUL"));
    }
  }
  for (int i = 0; i < spec.limits_size(); ++i) {
    const v1::RctlLimit& limit = spec.limits(i);
    const std::string field = absl::StrCat("limits[", i, "]");
    if (!IsRctlResource(limit.resource())) {
      return invalid(absl::StrCat(field, ".resource ", Quote(limit.resource()),
                                  " must match [a-z]+ (memoryuse, maxproc, pcpu...)"));
    }
    if (!IsRctlAction(limit.action())) {
      return invalid(absl::StrCat(field, ".action ", Quote(limit.action()),
                                  " must be deny, log, devctl, throttle or a signal (sigterm, "
                                  "sigkill...)"));
    }
    if (!IsRctlAmount(limit.amount())) {
      return invalid(absl::StrCat(field, ".amount ", Quote(limit.amount()),
                                  " must be a decimal number with an optional k/m/g/t/p suffix"));
    }
  }
  std::vector<std::pair<std::string, std::string>> env(spec.env().begin(), spec.env().end());
  std::sort(env.begin(), env.end());
  for (const auto& [name, value] : env) {
    if (!common::IsEnvVarName(name)) {
      return invalid(
          absl::StrCat("env ", Quote(name), ": the name must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if (common::IsReservedEnvVar(name)) {
      return invalid(absl::StrCat("env ", Quote(name), ": names starting with ",
                                  common::kReservedEnvPrefix,
                                  " are set by the agent (JAILOVER_HOST, JAILOVER_EPOCH)"));
    }
    if (common::HasNewlineOrNul(value)) {
      return invalid(absl::StrCat("env ", Quote(name), ": the value contains a newline or NUL"));
    }
  }
  if (spec.health_port() > kMaxPort) {
    return invalid(absl::StrCat("health_port ", spec.health_port(), " is not within 0..65535"));
  }
  return absl::OkStatus();
}

// The definition to store: validated, status cleared, paths normalized.
absl::StatusOr<v1::Jail> NormalizeJail(const v1::Jail& desired) {
  const std::string& name = desired.name();
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  if (name.find('.') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jail name ", Quote(name), ": must not contain '.' (jail(8) reads it as a hierarchy)"));
  }
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jail name ", Quote(name), ": must not be all digits (jail(8) reads that as a jid)"));
  }
  const std::string prefix = absl::StrCat("jail ", name, ": ");
  auto invalid = [&](absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, problem));
  };
  v1::Jail out = desired;
  out.clear_status();
  if (out.image().empty()) return invalid("image is required");
  RETURN_IF_ERROR(Prefixed(prefix, common::ValidateName("image", out.image())));
  if (!out.vip().empty()) RETURN_IF_ERROR(Prefixed(prefix, common::ValidateName("vip", out.vip())));

  const v1::Placement& placement = out.placement();
  if (placement.preferred_host().empty()) return invalid("placement.preferred_host is required");
  RETURN_IF_ERROR(Prefixed(
      prefix, common::ValidateName("placement.preferred_host", placement.preferred_host())));
  if (placement.standbys_size() > kMaxStandbys) {
    return invalid(absl::StrCat("placement.standbys has ", placement.standbys_size(),
                                " hosts, at most ", kMaxStandbys));
  }
  std::set<std::string> seen;
  for (int i = 0; i < placement.standbys_size(); ++i) {
    const std::string& standby = placement.standbys(i);
    RETURN_IF_ERROR(Prefixed(
        prefix, common::ValidateName(absl::StrCat("placement.standbys[", i, "]"), standby)));
    if (standby == placement.preferred_host()) {
      return invalid(absl::StrCat("placement.standbys[", i, "] ", standby,
                                  " is the preferred host; a standby must be another host"));
    }
    if (!seen.insert(standby).second) {
      return invalid(absl::StrCat("placement.standbys lists ", standby, " twice"));
    }
  }
  RETURN_IF_ERROR(Prefixed(prefix, cluster::ResolvePolicy(out.policy()).status()));
  RETURN_IF_ERROR(ValidateJailSpec(prefix, *out.mutable_spec()));
  return out;
}

// A jail that is stopped or was never placed: nothing of it runs anywhere.
bool IsAtRest(const v1::JailStatus& status) {
  return status.phase() == v1::JAIL_PHASE_STOPPED ||
         (status.host().empty() && status.operation_id().empty());
}

std::string WhereItIs(const v1::JailStatus& status) {
  std::string out = JailPhaseName(status.phase());
  if (!status.host().empty()) absl::StrAppend(&out, " on ", status.host());
  if (!status.operation_id().empty()) {
    absl::StrAppend(&out, " (operation ", status.operation_id(), ")");
  }
  return out;
}

}  // namespace

Catalog::Catalog(store::StateStore& store, common::Clock& clock) : store_(store), clock_(clock) {}

v1::Event Catalog::NewEvent(absl::string_view type) const {
  v1::Event event;
  event.set_type(std::string(type));
  event.set_severity(v1::SEVERITY_INFO);
  common::ToProtoTimestamp(clock_.WallNow(), event.mutable_time());
  return event;
}

// ---------------------------------------------------------------------------
// Images.

absl::StatusOr<ApplyImageResult> Catalog::ApplyImage(const v1::ImageSpec& spec,
                                                     absl::string_view actor) {
  ASSIGN_OR_RETURN(const v1::ImageSpec wanted, NormalizeImage(spec));
  const std::string& name = wanted.name();
  const std::string prefix = absl::StrCat("image ", name, ": ");
  const std::string key = store::ObjectKey<v1::Image>(name);
  absl::MutexLock lock(&write_mu_);
  ApplyImageResult result;
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("image ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        result = ApplyImageResult();
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> current,
                         store::GetObject<v1::Image>(store_, name));
        if (current.has_value()) {
          const v1::ImageSpec& stored = current->object.spec();
          auto immutable = [&](absl::string_view field, const std::string& from,
                               const std::string& to) {
            return absl::FailedPreconditionError(
                absl::StrCat(prefix, field, " cannot change (", from, " -> ", to,
                             "): the backing file exists; delete the image and apply a new "
                             "one instead"));
          };
          if (stored.size_bytes() != wanted.size_bytes()) {
            return immutable("size_bytes", absl::StrCat(stored.size_bytes()),
                             absl::StrCat(wanted.size_bytes()));
          }
          if (stored.filesystem() != wanted.filesystem()) {
            return immutable("filesystem", v1::Filesystem_Name(stored.filesystem()),
                             v1::Filesystem_Name(wanted.filesystem()));
          }
          if (stored.storage_host() != wanted.storage_host()) {
            return immutable("storage_host", stored.storage_host(), wanted.storage_host());
          }
          if (stored.path() != wanted.path()) {
            return immutable("path", stored.path(), wanted.path());
          }
        }
        // One backing file, one image. The grant and its epoch are kept per
        // image, so two images naming one file could be granted to two hosts
        // at once and both would write it. Checked on re-apply too, so that
        // such a pair stored before this check is reported.
        ASSIGN_OR_RETURN(store::VersionedList<v1::Image> images,
                         store::ListObjects<v1::Image>(store_));
        for (const store::Versioned<v1::Image>& other : images.objects) {
          const v1::ImageSpec& theirs = other.object.spec();
          if (theirs.name() == name || theirs.storage_host() != wanted.storage_host() ||
              ComparablePath(theirs.path()) != wanted.path()) {
            continue;
          }
          return absl::AlreadyExistsError(absl::StrCat(
              prefix, "backing file ", wanted.path(), " on storage host ", wanted.storage_host(),
              " is already used by image ", theirs.name(),
              " (two images on one file could be granted to two hosts at once); use image ",
              theirs.name(), " or give this one another path"));
        }
        ASSIGN_OR_RETURN(const v1::Host storage_host,
                         GetHostWithRole(store_, prefix, wanted.storage_host(),
                                         v1::HOST_ROLE_STORAGE, "storage"));
        ASSIGN_OR_RETURN(
            const bool path_checked,
            CheckUnderHostRoot(prefix, "path", wanted.path(), storage_host, HostRoot::kImage));
        result.path_unchecked = !path_checked;
        if (current.has_value()) {
          // Every field is immutable and equal: nothing to write.
          result.image = current->object;
          return std::optional<store::Txn>();
        }
        v1::Image image;
        *image.mutable_spec() = wanted;
        store::Txn txn;
        txn.ExpectAbsent(key).PutObject(image);
        v1::Event event = NewEvent(kImageAppliedEvent);
        event.set_image(name);
        event.set_host(wanted.storage_host());
        event.set_to_value(DescribeImage(wanted));
        event.set_reason(absl::StrCat("image ", name, " created by ", ActorOf(actor)));
        if (result.path_unchecked) {
          // Recorded where operators look (events), not only in our log.
          event.set_severity(v1::SEVERITY_WARNING);
          absl::StrAppend(event.mutable_reason(), "; ", UncheckedImagePath(wanted));
        }
        txn.AppendEvent(std::move(event));
        result.image = std::move(image);
        result.created = true;
        result.changed = true;
        return std::optional<store::Txn>(std::move(txn));
      }));
  if (result.changed) {
    spdlog::info("image {}: created ({}) by {}", name, DescribeImage(wanted), ActorOf(actor));
    if (result.path_unchecked) spdlog::warn("image {}: {}", name, UncheckedImagePath(wanted));
  }
  return result;
}

absl::StatusOr<std::vector<v1::Image>> Catalog::ListImages() const {
  ASSIGN_OR_RETURN(store::VersionedList<v1::Image> list, store::ListObjects<v1::Image>(store_));
  std::vector<v1::Image> out;
  out.reserve(list.objects.size());
  for (store::Versioned<v1::Image>& item : list.objects) out.push_back(std::move(item.object));
  return out;
}

absl::StatusOr<v1::Image> Catalog::GetImage(absl::string_view name) const {
  RETURN_IF_ERROR(common::ValidateName("image name", name));
  ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> image,
                   store::GetObject<v1::Image>(store_, name));
  if (!image.has_value()) return absl::NotFoundError(absl::StrCat("image ", name, " not found"));
  return std::move(image->object);
}

absl::Status Catalog::DeleteImage(absl::string_view name, absl::string_view actor) {
  RETURN_IF_ERROR(common::ValidateName("image name", name));
  const std::string key = store::ObjectKey<v1::Image>(name);
  absl::MutexLock lock(&write_mu_);
  std::string description;
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("image ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> current,
                         store::GetObject<v1::Image>(store_, name));
        if (!current.has_value()) {
          return absl::NotFoundError(absl::StrCat("image ", name, " not found"));
        }
        const v1::Image& image = current->object;
        std::string user = image.jail();
        if (user.empty()) {
          ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> jails,
                           store::ListObjects<v1::Jail>(store_));
          for (const store::Versioned<v1::Jail>& jail : jails.objects) {
            if (jail.object.image() == name) {
              user = jail.object.name();
              break;
            }
          }
        }
        if (!user.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("image ", name, " is used by jail ", user, ": delete the jail first"));
        }
        if (!image.grant().host().empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("image ", name, " is granted to ", image.grant().host(), " at epoch ",
                           image.grant().epoch(), ": stop/delete its jail first"));
        }
        description = DescribeImage(image.spec());
        store::Txn txn;
        txn.ExpectModRevision(key, current->mod_revision).Delete(key);
        v1::Event event = NewEvent(kImageDeletedEvent);
        event.set_image(std::string(name));
        event.set_host(image.spec().storage_host());
        event.set_from_value(description);
        event.set_reason(absl::StrCat("image ", name, " deleted by ", ActorOf(actor)));
        txn.AppendEvent(std::move(event));
        return std::optional<store::Txn>(std::move(txn));
      }));
  spdlog::info("image {}: deleted ({}) by {}", std::string(name), description, ActorOf(actor));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// VIPs.

absl::StatusOr<ApplyVipResult> Catalog::ApplyVip(const v1::VipSpec& spec, absl::string_view actor) {
  ASSIGN_OR_RETURN(const v1::VipSpec normalized, NormalizeVip(spec));
  const std::string& name = normalized.name();
  const std::string prefix = absl::StrCat("vip ", name, ": ");
  const std::string key = store::ObjectKey<v1::VipSpec>(name);
  absl::MutexLock lock(&write_mu_);
  ApplyVipResult result;
  std::string change;
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("vip ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        result = ApplyVipResult();
        v1::VipSpec wanted = normalized;
        ASSIGN_OR_RETURN(store::VersionedList<v1::VipSpec> vips,
                         store::ListObjects<v1::VipSpec>(store_));
        const store::Versioned<v1::VipSpec>* current = nullptr;
        for (const store::Versioned<v1::VipSpec>& vip : vips.objects) {
          if (vip.object.name() == name) current = &vip;
        }
        if (current == nullptr && wanted.password().empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat(prefix, "password is required when creating a VIP (1..",
                           kMaxVipPasswordBytes, " printable ASCII bytes, no spaces)"));
        }
        if (current != nullptr && wanted.password().empty()) {
          wanted.set_password(current->object.password());
        }
        for (const store::Versioned<v1::VipSpec>& other : vips.objects) {
          const v1::VipSpec& vip = other.object;
          if (vip.name() == name) continue;
          if (vip.interface() == wanted.interface() && vip.vhid() == wanted.vhid()) {
            return absl::FailedPreconditionError(
                absl::StrCat(prefix, "vhid ", wanted.vhid(), " on ", wanted.interface(),
                             " is already used by vip ", vip.name()));
          }
          if (Ipv4Of(vip.address()) == Ipv4Of(wanted.address())) {
            return absl::FailedPreconditionError(
                absl::StrCat(prefix, "address ", AddressOf(wanted.address()),
                             " is already used by vip ", vip.name(), " (", vip.address(), ")"));
          }
        }
        if (current != nullptr) {
          const v1::VipSpec& stored = current->object;
          if (Equal(stored, wanted)) {
            result.vip = stored;
            result.vip.clear_password();
            return std::optional<store::Txn>();
          }
          std::vector<std::string> moved;
          if (stored.interface() != wanted.interface()) moved.push_back("interface");
          if (stored.vhid() != wanted.vhid()) moved.push_back("vhid");
          if (stored.address() != wanted.address()) moved.push_back("address");
          if (!moved.empty()) {
            ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> jails,
                             store::ListObjects<v1::Jail>(store_));
            for (const store::Versioned<v1::Jail>& jail : jails.objects) {
              if (jail.object.vip() != name) continue;
              return absl::FailedPreconditionError(absl::StrCat(
                  prefix, absl::StrJoin(moved, ", "), " cannot change while jail ",
                  jail.object.name(), " uses the VIP (", DescribeVip(stored), " -> ",
                  DescribeVip(wanted), "); delete the jail or give it another VIP first"));
            }
          }
          if (stored.advbase() != wanted.advbase()) moved.push_back("advbase");
          if (stored.password() != wanted.password()) moved.push_back("password");
          change = absl::StrJoin(moved, ", ");
        }
        store::Txn txn;
        if (current != nullptr) {
          txn.ExpectModRevision(key, current->mod_revision);
        } else {
          txn.ExpectAbsent(key);
        }
        txn.PutObject(wanted);
        v1::Event event = NewEvent(kVipAppliedEvent);
        if (current != nullptr) event.set_from_value(DescribeVip(current->object));
        event.set_to_value(DescribeVip(wanted));
        event.set_reason(
            current == nullptr
                ? absl::StrCat("vip ", name, " created by ", ActorOf(actor))
                : absl::StrCat("vip ", name, " updated (", change, ") by ", ActorOf(actor)));
        txn.AppendEvent(std::move(event));
        result.created = current == nullptr;
        result.changed = true;
        result.vip = std::move(wanted);
        result.vip.clear_password();
        return std::optional<store::Txn>(std::move(txn));
      }));
  if (result.changed) {
    spdlog::info("vip {}: {} ({}) by {}", name,
                 result.created ? std::string("created") : absl::StrCat("updated: ", change),
                 DescribeVip(result.vip), ActorOf(actor));
  }
  return result;
}

absl::StatusOr<std::vector<v1::VipSpec>> Catalog::ListVips() const {
  ASSIGN_OR_RETURN(store::VersionedList<v1::VipSpec> list, store::ListObjects<v1::VipSpec>(store_));
  std::vector<v1::VipSpec> out;
  out.reserve(list.objects.size());
  for (store::Versioned<v1::VipSpec>& item : list.objects) {
    item.object.clear_password();
    out.push_back(std::move(item.object));
  }
  return out;
}

absl::StatusOr<v1::VipSpec> Catalog::GetVip(absl::string_view name, bool with_password) const {
  RETURN_IF_ERROR(common::ValidateName("vip name", name));
  ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::VipSpec>> vip,
                   store::GetObject<v1::VipSpec>(store_, name));
  if (!vip.has_value()) return absl::NotFoundError(absl::StrCat("vip ", name, " not found"));
  if (!with_password) vip->object.clear_password();
  return std::move(vip->object);
}

absl::Status Catalog::DeleteVip(absl::string_view name, absl::string_view actor) {
  RETURN_IF_ERROR(common::ValidateName("vip name", name));
  const std::string key = store::ObjectKey<v1::VipSpec>(name);
  absl::MutexLock lock(&write_mu_);
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("vip ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::VipSpec>> current,
                         store::GetObject<v1::VipSpec>(store_, name));
        if (!current.has_value()) {
          return absl::NotFoundError(absl::StrCat("vip ", name, " not found"));
        }
        ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> jails,
                         store::ListObjects<v1::Jail>(store_));
        for (const store::Versioned<v1::Jail>& jail : jails.objects) {
          if (jail.object.vip() == name) {
            return absl::FailedPreconditionError(
                absl::StrCat("vip ", name, " is used by jail ", jail.object.name(),
                             ": delete the jail or give it another VIP first"));
          }
        }
        store::Txn txn;
        txn.ExpectModRevision(key, current->mod_revision).Delete(key);
        v1::Event event = NewEvent(kVipDeletedEvent);
        event.set_from_value(DescribeVip(current->object));
        event.set_reason(absl::StrCat("vip ", name, " deleted by ", ActorOf(actor)));
        txn.AppendEvent(std::move(event));
        return std::optional<store::Txn>(std::move(txn));
      }));
  spdlog::info("vip {}: deleted by {}", std::string(name), ActorOf(actor));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Jails.

absl::StatusOr<ApplyJailResult> Catalog::ApplyJail(const v1::Jail& desired, absl::string_view actor,
                                                   bool dry_run) {
  ASSIGN_OR_RETURN(const v1::Jail wanted, NormalizeJail(desired));
  const std::string& name = wanted.name();
  const std::string prefix = absl::StrCat("jail ", name, ": ");
  const std::string key = store::ObjectKey<v1::Jail>(name);
  absl::MutexLock lock(&write_mu_);
  ApplyJailResult result;
  std::vector<std::string> changes;
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("jail ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        result = ApplyJailResult();
        changes.clear();
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Jail>> current,
                         store::GetObject<v1::Jail>(store_, name));
        // The image: exists, and no other jail uses it.
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> image,
                         store::GetObject<v1::Image>(store_, wanted.image()));
        if (!image.has_value()) {
          return absl::FailedPreconditionError(absl::StrCat(
              prefix, "image ", wanted.image(), " does not exist (apply the image first)"));
        }
        if (!image->object.jail().empty() && image->object.jail() != name) {
          return absl::FailedPreconditionError(absl::StrCat(
              prefix, "image ", wanted.image(), " is already used by jail ", image->object.jail()));
        }
        ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> jails,
                         store::ListObjects<v1::Jail>(store_));
        for (const store::Versioned<v1::Jail>& other : jails.objects) {
          if (other.object.name() == name) continue;
          if (other.object.image() == wanted.image()) {
            return absl::FailedPreconditionError(absl::StrCat(prefix, "image ", wanted.image(),
                                                              " is already used by jail ",
                                                              other.object.name()));
          }
          if (!wanted.vip().empty() && other.object.vip() == wanted.vip()) {
            return absl::FailedPreconditionError(absl::StrCat(
                prefix, "vip ", wanted.vip(), " is already used by jail ", other.object.name()));
          }
        }
        // The VIP: exists.
        std::optional<store::Versioned<v1::VipSpec>> vip;
        if (!wanted.vip().empty()) {
          ASSIGN_OR_RETURN(vip, store::GetObject<v1::VipSpec>(store_, wanted.vip()));
          if (!vip.has_value()) {
            return absl::FailedPreconditionError(absl::StrCat(
                prefix, "vip ", wanted.vip(), " does not exist (apply the VIP first)"));
          }
        }
        // The hosts: registered jail hosts, each of which may mount the image
        // at spec.mount_point, so it must lie below each one's jail root. (An
        // empty mount point is the coordinator's --jail_root/NAME.)
        std::vector<std::string> placement_hosts = {wanted.placement().preferred_host()};
        placement_hosts.insert(placement_hosts.end(), wanted.placement().standbys().begin(),
                               wanted.placement().standbys().end());
        for (const std::string& host_name : placement_hosts) {
          ASSIGN_OR_RETURN(const v1::Host host,
                           GetHostWithRole(store_, prefix, host_name, v1::HOST_ROLE_JAIL, "jail"));
          if (wanted.spec().mount_point().empty()) continue;
          ASSIGN_OR_RETURN(const bool checked,
                           CheckUnderHostRoot(prefix, "spec.mount_point",
                                              wanted.spec().mount_point(), host, HostRoot::kJail));
          if (!checked) result.mount_point_unchecked_on.push_back(host_name);
        }

        v1::Jail stored = wanted;
        std::string old_image;
        if (current.has_value()) {
          const v1::Jail& before = current->object;
          old_image = before.image();
          if (before.image() != wanted.image() && !IsAtRest(before.status())) {
            return absl::FailedPreconditionError(absl::StrCat(
                prefix, "image cannot change (", before.image(), " -> ", wanted.image(),
                ") while the jail is ", WhereItIs(before.status()), ": stop it first"));
          }
          result.spec_changed = !Equal(before.spec(), wanted.spec()) ||
                                before.image() != wanted.image() || before.vip() != wanted.vip();
          result.placement_changed = !Equal(before.placement(), wanted.placement());
          result.policy_changed = !Equal(before.policy(), wanted.policy());
          if (!Equal(before.spec(), wanted.spec())) changes.push_back("spec");
          if (before.image() != wanted.image()) changes.push_back("image");
          if (before.vip() != wanted.vip()) changes.push_back("vip");
          if (result.placement_changed) changes.push_back("placement");
          if (result.policy_changed) changes.push_back("policy");
          *stored.mutable_status() = before.status();
          if (changes.empty() && image->object.jail() == name) {
            result.jail = before;
            return std::optional<store::Txn>();
          }
        } else {
          v1::JailStatus* status = stored.mutable_status();
          status->set_phase(v1::JAIL_PHASE_PENDING);
          common::ToProtoTimestamp(clock_.WallNow(), status->mutable_since());
          status->set_reason(absl::StrCat("applied by ", ActorOf(actor)));
          result.created = true;
        }
        result.changed = true;

        store::Txn txn;
        if (current.has_value()) {
          txn.ExpectModRevision(key, current->mod_revision);
        } else {
          txn.ExpectAbsent(key);
        }
        txn.PutObject(stored);
        const std::string image_key = store::ObjectKey<v1::Image>(wanted.image());
        txn.ExpectModRevision(image_key, image->mod_revision);
        if (image->object.jail() != name) {
          v1::Image bound = image->object;
          bound.set_jail(name);
          txn.PutObject(bound);
        }
        if (!old_image.empty() && old_image != wanted.image()) {
          ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> released,
                           store::GetObject<v1::Image>(store_, old_image));
          if (released.has_value() && released->object.jail() == name) {
            txn.ExpectModRevision(store::ObjectKey<v1::Image>(old_image), released->mod_revision);
            released->object.clear_jail();
            txn.PutObject(released->object);
          }
        }
        if (vip.has_value()) {
          txn.ExpectModRevision(store::ObjectKey<v1::VipSpec>(wanted.vip()), vip->mod_revision);
        }
        v1::Event event = NewEvent(kJailAppliedEvent);
        event.set_jail(name);
        event.set_image(wanted.image());
        event.set_host(stored.status().host());
        if (current.has_value()) event.set_from_value(DescribeJail(current->object));
        event.set_to_value(DescribeJail(stored));
        if (current.has_value()) {
          event.set_reason(
              absl::StrCat("jail ", name, " updated (",
                           changes.empty() ? "image binding" : absl::StrJoin(changes, ", "),
                           ") by ", ActorOf(actor)));
        } else {
          event.set_reason(absl::StrCat("jail ", name, " created by ", ActorOf(actor)));
        }
        if (!result.mount_point_unchecked_on.empty()) {
          event.set_severity(v1::SEVERITY_WARNING);
          absl::StrAppend(event.mutable_reason(), "; ",
                          UncheckedMountPoint(result.mount_point_unchecked_on));
        }
        txn.AppendEvent(std::move(event));
        result.jail = std::move(stored);
        if (dry_run) return std::optional<store::Txn>();
        return std::optional<store::Txn>(std::move(txn));
      }));
  if (result.changed && !dry_run) {
    spdlog::info("jail {}: {} ({}) by {}", name,
                 result.created ? std::string("created")
                                : absl::StrCat("updated: ", absl::StrJoin(changes, ", ")),
                 DescribeJail(result.jail), ActorOf(actor));
    if (!result.mount_point_unchecked_on.empty()) {
      spdlog::warn("jail {}: {}", name, UncheckedMountPoint(result.mount_point_unchecked_on));
    }
  }
  return result;
}

absl::StatusOr<std::vector<v1::Jail>> Catalog::ListJails(
    absl::string_view host, const std::vector<v1::JailPhase>& phases) const {
  if (!host.empty()) RETURN_IF_ERROR(common::ValidateName("host", host));
  ASSIGN_OR_RETURN(store::VersionedList<v1::Jail> list, store::ListObjects<v1::Jail>(store_));
  std::vector<v1::Jail> out;
  for (store::Versioned<v1::Jail>& item : list.objects) {
    const v1::JailStatus& status = item.object.status();
    if (!host.empty() && status.host() != host) continue;
    if (!phases.empty() &&
        std::find(phases.begin(), phases.end(), status.phase()) == phases.end()) {
      continue;
    }
    out.push_back(std::move(item.object));
  }
  return out;
}

absl::StatusOr<v1::Jail> Catalog::GetJail(absl::string_view name) const {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Jail>> jail,
                   store::GetObject<v1::Jail>(store_, name));
  if (!jail.has_value()) return absl::NotFoundError(absl::StrCat("jail ", name, " not found"));
  return std::move(jail->object);
}

absl::Status Catalog::ForgetJail(absl::string_view name, absl::string_view actor) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  const std::string key = store::ObjectKey<v1::Jail>(name);
  absl::MutexLock lock(&write_mu_);
  RETURN_IF_ERROR(CommitLoop(
      store_, absl::StrCat("jail ", name), [&]() -> absl::StatusOr<std::optional<store::Txn>> {
        ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Jail>> current,
                         store::GetObject<v1::Jail>(store_, name));
        if (!current.has_value()) {
          return absl::NotFoundError(absl::StrCat("jail ", name, " not found"));
        }
        const v1::Jail& jail = current->object;
        if (!IsAtRest(jail.status())) {
          return absl::FailedPreconditionError(absl::StrCat(
              "jail ", name, " is ", WhereItIs(jail.status()), ": it must be stopped first"));
        }
        store::Txn txn;
        txn.ExpectModRevision(key, current->mod_revision).Delete(key);
        if (!jail.image().empty()) {
          ASSIGN_OR_RETURN(std::optional<store::Versioned<v1::Image>> image,
                           store::GetObject<v1::Image>(store_, jail.image()));
          if (image.has_value() && image->object.jail() == name) {
            txn.ExpectModRevision(store::ObjectKey<v1::Image>(jail.image()), image->mod_revision);
            image->object.clear_jail();
            txn.PutObject(image->object);
          }
        }
        v1::Event event = NewEvent(kJailDeletedEvent);
        event.set_jail(std::string(name));
        event.set_image(jail.image());
        event.set_from_value(DescribeJail(jail));
        event.set_reason(absl::StrCat("jail ", name, " deleted by ", ActorOf(actor)));
        txn.AppendEvent(std::move(event));
        return std::optional<store::Txn>(std::move(txn));
      }));
  spdlog::info("jail {}: definition deleted by {}", std::string(name), ActorOf(actor));
  return absl::OkStatus();
}

}  // namespace jailover::coordinator::catalog

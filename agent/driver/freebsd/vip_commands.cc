#include "agent/driver/freebsd/vip_commands.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

constexpr char kIfconfig[] = "/sbin/ifconfig";
constexpr char kSysctl[] = "/sbin/sysctl";

std::optional<CarpRole> ParseRole(absl::string_view state) {
  // carp(4) prints them upper case; ifconfig accepts any case.
  const std::string upper = absl::AsciiStrToUpper(state);
  if (upper == "INIT") return CarpRole::kInit;
  if (upper == "BACKUP") return CarpRole::kBackup;
  if (upper == "MASTER") return CarpRole::kMaster;
  return std::nullopt;
}

// Words of a line, split on spaces and tabs.
std::vector<absl::string_view> Words(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

bool ParseInt(absl::string_view text, int min, int max, int* out) {
  return absl::SimpleAtoi(text, out) && *out >= min && *out <= max;
}

}  // namespace

absl::Status ValidateVipConfig(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  RETURN_IF_ERROR(common::ValidateIpAddress("vip address", vip.address));
  if (vip.address.find(':') != std::string::npos) {
    return absl::InvalidArgumentError("vip address: only IPv4 VIPs are supported");
  }
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid));
  RETURN_IF_ERROR(common::ValidateAdvbase(vip.advbase));
  RETURN_IF_ERROR(common::ValidateAdvskew(vip.advskew));
  // carp(4) keys are at most CARP_KEY_LEN (20) bytes; longer ones are cut.
  // Refuse them instead of letting two hosts disagree silently.
  if (vip.password.empty() || vip.password.size() > 20) {
    return absl::InvalidArgumentError("vip password: must be 1..20 bytes");
  }
  for (char c : vip.password) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "vip password: printable characters only, no spaces or control characters");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretArgv> BuildCarpAddArgv(const VipConfig& vip) {
  RETURN_IF_ERROR(ValidateVipConfig(vip));
  SecretArgv out;
  out.argv = {kIfconfig,
              vip.interface,
              "vhid",
              absl::StrCat(vip.vhid),
              "advbase",
              absl::StrCat(vip.advbase),
              "advskew",
              absl::StrCat(vip.advskew),
              "pass",
              vip.password,
              "alias",
              absl::StrCat(vip.address, "/32")};
  out.secret_args = {9};
  return out;
}

std::vector<std::string> BuildCarpSetAdvskewArgv(const std::string& interface, int vhid,
                                                 int advskew) {
  return {kIfconfig, interface, "vhid", absl::StrCat(vhid), "advskew", absl::StrCat(advskew)};
}

std::vector<std::string> BuildCarpRemoveArgv(const std::string& interface,
                                             const std::string& address) {
  return {kIfconfig, interface, "inet", address, "-alias"};
}

std::vector<std::string> BuildIfconfigShowArgv(const std::string& interface) {
  return {kIfconfig, interface};
}

std::vector<std::string> BuildCarpPreemptArgv() { return {kSysctl, "net.inet.carp.preempt=1"}; }

absl::StatusOr<std::vector<CarpStatus>> ParseIfconfigCarp(absl::string_view interface,
                                                          absl::string_view text) {
  std::map<int, CarpStatus> by_vhid;
  std::map<int, std::vector<std::string>> addresses;
  int last_vhid = -1;  // the carp line a following "peer" line belongs to
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const std::vector<absl::string_view> words = Words(line);
    if (words.empty()) continue;
    if (words[0] == "carp:") {
      // carp: STATE vhid N advbase B advskew K [key "..."]
      CarpStatus status;
      status.interface = std::string(interface);
      std::optional<CarpRole> role =
          words.size() >= 8 ? ParseRole(words[1]) : std::optional<CarpRole>();
      if (!role || words[2] != "vhid" || words[4] != "advbase" || words[6] != "advskew" ||
          !ParseInt(words[3], 1, 255, &status.vhid) ||
          !ParseInt(words[5], 0, 255, &status.advbase) ||
          !ParseInt(words[7], 0, 255, &status.advskew)) {
        return absl::InternalError(absl::StrCat("ifconfig ", interface,
                                                ": cannot parse carp line \"",
                                                absl::StripAsciiWhitespace(line), "\""));
      }
      status.role = *role;
      last_vhid = status.vhid;
      by_vhid[status.vhid] = std::move(status);
      continue;
    }
    if (words[0] == "peer" && last_vhid > 0) {
      // 14.x: "peer 224.0.0.18 peer6 ff02::12" right after its carp line.
      if (words.size() >= 2) by_vhid[last_vhid].peer = std::string(words[1]);
      continue;
    }
    last_vhid = -1;
    if ((words[0] == "inet" || words[0] == "inet6") && words.size() >= 4 &&
        words[words.size() - 2] == "vhid") {
      int vhid = 0;
      if (!ParseInt(words.back(), 1, 255, &vhid)) {
        return absl::InternalError(absl::StrCat("ifconfig ", interface,
                                                ": cannot parse the vhid of \"",
                                                absl::StripAsciiWhitespace(line), "\""));
      }
      // inet6 addresses may carry a %scope; the prefix is a separate word.
      std::string address(words[1]);
      address = address.substr(0, address.find('%'));
      addresses[vhid].push_back(std::move(address));
    }
  }
  std::vector<CarpStatus> out;
  for (auto& [vhid, status] : by_vhid) {
    status.addresses = std::move(addresses[vhid]);
    out.push_back(std::move(status));
  }
  return out;
}

absl::StatusOr<std::optional<CarpTransition>> ParseDevdCarpEvent(absl::string_view event) {
  event = absl::StripTrailingAsciiWhitespace(event.substr(0, event.find('\0')));
  absl::ConsumePrefix(&event, "!");
  std::map<std::string, std::string> fields;
  for (absl::string_view word : absl::StrSplit(event, ' ', absl::SkipEmpty())) {
    const std::pair<std::string, std::string> kv = absl::StrSplit(word, absl::MaxSplits('=', 1));
    fields[kv.first] = kv.second;
  }
  if (fields["system"] != "CARP") return std::nullopt;
  const std::string& subsystem = fields["subsystem"];  // VHID@IF
  const size_t at = subsystem.find('@');
  CarpTransition transition;
  if (at == std::string::npos ||
      !ParseInt(absl::string_view(subsystem).substr(0, at), 1, 255, &transition.vhid)) {
    return absl::InvalidArgumentError(
        absl::StrCat("devd CARP event: bad subsystem \"", subsystem, "\" (want VHID@IF)"));
  }
  transition.interface = subsystem.substr(at + 1);
  RETURN_IF_ERROR(common::ValidateInterfaceName("devd CARP event interface", transition.interface));
  const std::optional<CarpRole> role = ParseRole(fields["type"]);
  if (!role) {
    return absl::InvalidArgumentError(
        absl::StrCat("devd CARP event: unknown type \"", fields["type"], "\""));
  }
  transition.role = *role;
  return transition;
}

}  // namespace jailover::agent::freebsd

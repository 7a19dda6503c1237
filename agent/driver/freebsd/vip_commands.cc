#include "agent/driver/freebsd/vip_commands.h"

#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/driver/freebsd/tools.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

// Quoted and escaped for an error message, cut to a readable length.
std::string Quote(absl::string_view text) {
  constexpr size_t kMaxQuoted = 120;
  std::string out = absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuoted)), "\"");
  if (text.size() > kMaxQuoted) out += "...";
  return out;
}

// 1 to 3 decimal digits (no sign, no spaces) with a value in [min, max].
bool ParseSmallInt(absl::string_view text, int min, int max, int* out) {
  if (text.empty() || text.size() > 3) return false;
  int value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// carp(4) state names as ip_carp.h's CARP_STATES prints them.
std::optional<CarpRole> ParseRole(absl::string_view state) {
  if (state == "INIT") return CarpRole::kInit;
  if (state == "BACKUP") return CarpRole::kBackup;
  if (state == "MASTER") return CarpRole::kMaster;
  return std::nullopt;
}

std::vector<absl::string_view> Words(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty());
}

// "\tcarp: STATE vhid N advbase B advskew K [key "..."]", already split.
// `line` is the whole line, for the key check and the error.
absl::StatusOr<CarpStatus> ParseCarpLine(absl::string_view interface, absl::string_view line,
                                         const std::vector<absl::string_view>& words) {
  CarpStatus status;
  status.interface = std::string(interface);
  std::optional<CarpRole> role;
  bool ok = words.size() >= 8 && (role = ParseRole(words[1])).has_value() &&
            words[2] == "vhid" && ParseSmallInt(words[3], 1, 255, &status.vhid) &&
            words[4] == "advbase" && ParseSmallInt(words[5], 0, 255, &status.advbase) &&
            words[6] == "advskew" && ParseSmallInt(words[7], 0, 255, &status.advskew);
  if (ok && words.size() > 8) {
    // ifconfig -k: ` key "SECRET"`; the key may hold spaces, so look at
    // the raw rest of the line: it must be one quoted string.
    const size_t key = line.find(" key \"");
    ok = words[8] == "key" && key != absl::string_view::npos;
    if (ok) {
      const absl::string_view quoted = line.substr(key + 5);
      ok = quoted.size() >= 2 && quoted.back() == '"';
    }
  }
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("ifconfig ", interface, ": cannot parse carp line ", Quote(line),
                     " (want \"carp: INIT|BACKUP|MASTER vhid N advbase B advskew K\")"));
  }
  status.role = *role;
  return status;
}

}  // namespace

absl::Status ValidateVipConfig(const VipConfig& vip) {
  RETURN_IF_ERROR(common::ValidateName("vip name", vip.name));
  RETURN_IF_ERROR(common::ValidateInterfaceName("vip interface", vip.interface));
  RETURN_IF_ERROR(common::ValidateIpAddress("vip address", vip.address));
  if (absl::StrContains(vip.address, ':')) {
    return absl::InvalidArgumentError(
        absl::StrCat("vip address ", Quote(vip.address), ": only IPv4 VIPs are supported"));
  }
  RETURN_IF_ERROR(common::ValidateVhid(vip.vhid));
  RETURN_IF_ERROR(common::ValidateAdvbase(vip.advbase));
  RETURN_IF_ERROR(common::ValidateAdvskew(vip.advskew));
  // The message never quotes the password.
  if (vip.password.empty()) {
    return absl::InvalidArgumentError("vip password: must not be empty");
  }
  if (vip.password.size() > kMaxCarpPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("vip password: longer than ", kMaxCarpPasswordBytes,
                     " bytes (ifconfig would silently cut it to that length)"));
  }
  for (char c : vip.password) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "vip password: may contain only printable ASCII characters, no spaces");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretArgv> BuildCarpAddArgv(const VipConfig& vip) {
  RETURN_IF_ERROR(ValidateVipConfig(vip));
  SecretArgv out;
  out.argv = {kIfconfigTool,
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
  return {kIfconfigTool, interface, "vhid", absl::StrCat(vhid), "advskew", absl::StrCat(advskew)};
}

std::vector<std::string> BuildCarpStateMasterArgv(const std::string& interface, int vhid) {
  return {kIfconfigTool, interface, "vhid", absl::StrCat(vhid), "state", "master"};
}

std::vector<std::string> BuildCarpSetTimingArgv(const std::string& interface, int vhid,
                                                int advbase, int advskew) {
  return {kIfconfigTool, interface,           "vhid",    absl::StrCat(vhid),
          "advbase", absl::StrCat(advbase), "advskew", absl::StrCat(advskew)};
}

std::vector<std::string> BuildCarpRemoveArgv(const std::string& interface,
                                             const std::string& address) {
  return {kIfconfigTool, interface, "inet", address, "-alias"};
}

std::vector<std::string> BuildIfconfigShowArgv(const std::string& interface) {
  return {kIfconfigTool, interface};
}

std::vector<std::string> BuildCarpPreemptArgv() { return {kSysctlTool, "net.inet.carp.preempt=1"}; }

absl::StatusOr<std::vector<CarpStatus>> ParseIfconfigCarp(absl::string_view interface,
                                                          absl::string_view text) {
  const auto error = [interface](absl::string_view what, absl::string_view line) {
    return absl::InternalError(
        absl::StrCat("ifconfig ", interface, ": ", what, " in line ", Quote(line)));
  };
  std::map<int, CarpStatus> by_vhid;
  // Addresses per vhid with the line that named them (for the error when
  // the vhid has no carp line).
  std::map<int, std::vector<std::pair<std::string, absl::string_view>>> addresses;
  int peer_owner = 0;  // vhid of the carp line just read, else 0
  bool first_line = true;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    const absl::string_view line = absl::StripTrailingAsciiWhitespace(raw);
    if (line.empty()) continue;
    const bool indented = absl::ascii_isspace(static_cast<unsigned char>(line.front()));
    const std::vector<absl::string_view> words = Words(line);
    if (words.empty()) continue;
    if (!indented) {
      // The header: "em0: flags=8843<UP,...> metric 0 mtu 1500".
      if (!first_line || words[0] != absl::StrCat(interface, ":")) {
        return error(absl::StrCat("not the output of one interface ", interface), line);
      }
      first_line = false;
      continue;
    }
    first_line = false;
    const int previous_carp = peer_owner;
    peer_owner = 0;
    if (words[0] == "carp:") {
      ASSIGN_OR_RETURN(CarpStatus status, ParseCarpLine(interface, line, words));
      const int vhid = status.vhid;
      if (!by_vhid.emplace(vhid, std::move(status)).second) {
        return error(absl::StrCat("vhid ", vhid, " listed twice"), line);
      }
      peer_owner = vhid;
    } else if (words[0] == "peer" && previous_carp != 0) {
      // 14.x: "\t      peer 224.0.0.18 peer6 ff02::12" after its carp line.
      if (words.size() != 4 || words[2] != "peer6" ||
          !common::ValidateIpAddress("peer", words[1]).ok() ||
          !common::ValidateIpAddress("peer6", words[3]).ok()) {
        return error("cannot parse the CARP peer line", line);
      }
      by_vhid[previous_carp].peer = std::string(words[1]);
    } else if ((words[0] == "inet" || words[0] == "inet6") && words.size() >= 4 &&
               words[words.size() - 2] == "vhid") {
      int vhid = 0;
      if (!ParseSmallInt(words.back(), 1, 255, &vhid)) {
        return error("bad vhid", line);
      }
      // inet6 link-local addresses carry a %zone.
      const absl::string_view address = words[1].substr(0, words[1].find('%'));
      if (!common::ValidateIpAddress("address", address).ok()) {
        return error("bad address", line);
      }
      addresses[vhid].emplace_back(std::string(address), line);
    }
  }
  for (auto& [vhid, list] : addresses) {
    const auto it = by_vhid.find(vhid);
    if (it == by_vhid.end()) {
      return error(absl::StrCat("address of vhid ", vhid, " without a carp line (truncated?)"),
                   list.front().second);
    }
    for (auto& entry : list) it->second.addresses.push_back(std::move(entry.first));
  }
  std::vector<CarpStatus> out;
  out.reserve(by_vhid.size());
  for (auto& entry : by_vhid) out.push_back(std::move(entry.second));
  return out;
}

absl::StatusOr<std::optional<CarpTransition>> ParseDevdCarpEvent(absl::string_view event) {
  event = event.substr(0, event.find('\0'));
  event = absl::StripAsciiWhitespace(event);
  // devd prefixes: ! notify, + attach, - detach, ? nomatch. Only notify
  // events carry system=; a line without a prefix is read as a notify.
  if (event.empty() || event.front() == '+' || event.front() == '-' || event.front() == '?') {
    return std::nullopt;
  }
  const absl::string_view original = event;
  absl::ConsumePrefix(&event, "!");
  std::map<absl::string_view, absl::string_view> fields;
  bool duplicate = false;
  for (absl::string_view word : Words(event)) {
    const size_t eq = word.find('=');
    if (eq == absl::string_view::npos) continue;
    const absl::string_view key = word.substr(0, eq);
    const absl::string_view value = word.substr(eq + 1);
    const auto [it, inserted] = fields.emplace(key, value);
    if (!inserted && it->second != value) duplicate = true;
  }
  const auto field = [&fields](absl::string_view key) -> absl::string_view {
    const auto it = fields.find(key);
    return it == fields.end() ? absl::string_view() : it->second;
  };
  if (field("system") != "CARP") return std::nullopt;
  const auto invalid = [original](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("devd CARP event ", Quote(original), ": ", what));
  };
  if (duplicate) return invalid("a key is given twice with different values");
  const absl::string_view subsystem = field("subsystem");  // VHID@IFNAME
  const size_t at = subsystem.find('@');
  CarpTransition transition;
  if (at == absl::string_view::npos ||
      !ParseSmallInt(subsystem.substr(0, at), 1, 255, &transition.vhid)) {
    return invalid("subsystem is not VHID@INTERFACE with a vhid of 1..255");
  }
  const absl::string_view interface = subsystem.substr(at + 1);
  if (!common::ValidateInterfaceName("interface", interface).ok()) {
    return invalid("bad interface name in subsystem");
  }
  transition.interface = std::string(interface);
  const std::optional<CarpRole> role = ParseRole(field("type"));
  if (!role) return invalid("type is not MASTER, BACKUP or INIT");
  transition.role = *role;
  return transition;
}

}  // namespace jailover::agent::freebsd

#include "common/validation/jail_params.h"

#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace jailover::common {

bool HasNewlineOrNul(absl::string_view value) {
  return value.find('\n') != absl::string_view::npos ||
         value.find('\0') != absl::string_view::npos;
}

bool IsJailParamName(absl::string_view name) {
  if (name.empty()) return false;
  for (absl::string_view part : absl::StrSplit(name, '.')) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
  }
  return true;
}

bool IsEnvVarName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

bool IsReservedEnvVar(absl::string_view name) {
  return absl::StartsWith(name, kReservedEnvPrefix);
}

bool IsManagedJailParam(absl::string_view param) {
  static const auto* const kManaged = new std::set<std::string, std::less<>>{
      "name",           "jid",         "path",         "host",         "host.hostname",
      "ip4",            "ip4.addr",    "ip6",          "ip6.addr",     "vnet",
      "vnet.interface", "interface",   "ip_hostname",  "persist",      "devfs_ruleset",
      "enforce_statfs", "securelevel", "children.max", "stop.timeout", "command",
      "depend",         "mount"};
  auto managed = [](absl::string_view name) {
    return kManaged->count(name) > 0 || absl::StartsWith(name, "exec.") ||
           absl::StartsWith(name, "mount.") || absl::StartsWith(name, "allow.");
  };
  if (managed(param)) return true;
  // jail(8) treats "noX" as the boolean X, also in the last component
  // ("nopersist", "ip4.noaddr"; config.c equalopts).
  const size_t dot = param.rfind('.');
  const size_t last = dot == absl::string_view::npos ? 0 : dot + 1;
  if (param.substr(last, 2) == "no") {
    return managed(absl::StrCat(param.substr(0, last), param.substr(last + 2)));
  }
  return false;
}

}  // namespace jailover::common

#include "agent/driver/freebsd/jail_commands.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/exec/command_runner.h"
#include "common/status/status_macros.h"
#include "common/validation/jail_params.h"
#include "common/validation/validation.h"

namespace jailover::agent::freebsd {
namespace {

// Longest value quoted in an error message.
constexpr size_t kMaxQuoted = 80;
// MAXHOSTNAMELEN is 256 with the NUL.
constexpr size_t kMaxHostnameBytes = 255;
constexpr int kMaxDevfsRuleset = 65535;
// jail(8) reads stop.timeout with strtol into an int; a day is plenty.
constexpr absl::Duration kMaxStopTimeout = absl::Hours(24);
constexpr size_t kMaxRctlAmountBytes = 20;

constexpr char kConfHeader[] = "# jail.conf(5) file of jail ";
constexpr char kRctlLinePrefix[] = "# rctl: ";

// `value` for an error message: quoted, escaped, shortened.
std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuoted) {
    return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxQuoted)), "\"... (",
                        value.size(), " bytes)");
  }
  return absl::StrCat("\"", absl::CHexEscape(value), "\"");
}

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z][a-z0-9_]*: rctl(8) resource and action names.
bool IsRctlWord(absl::string_view word) {
  if (word.empty() || !(word[0] >= 'a' && word[0] <= 'z')) return false;
  for (char c : word) {
    if (!IsLowerAlnum(c) && c != '_') return false;
  }
  return true;
}

// A byte that needs no quoting in a POSIX sh word and that jail(8) neither
// treats as a metacharacter nor splits on.
bool IsShellSafe(char c, bool first_word) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '_':
    case '@':
    case '%':
    case '+':
    case ',':
    case '.':
    case '/':
    case ':':
    case '-':
      return true;
    case '=':
      // NAME=value as the first word is an assignment to sh.
      return !first_word;
    default:
      return false;
  }
}

std::string ShellQuote(absl::string_view word, bool first_word) {
  bool safe = !word.empty();
  for (char c : word) {
    if (!IsShellSafe(c, first_word)) {
      safe = false;
      break;
    }
  }
  return safe ? std::string(word) : common::SingleQuoteForShell(word);
}

// A path jail(8) can pass through `/bin/sh -c "devfs_mount_jail PATH/dev"`
// unquoted: no whitespace, control characters or shell metacharacters.
bool IsShellInertPath(absl::string_view path) {
  for (char c : path) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
    if (absl::string_view("!\"#$&'()*;<>?[\\]`{|}~").find(c) != absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateExecArgv(absl::string_view field, const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string element_field = absl::StrCat(field, "[", i, "]");
    if (common::HasNewlineOrNul(argv[i])) {
      return Invalid(element_field, "must not contain a newline or NUL");
    }
  }
  if (argv.empty()) return absl::OkStatus();
  if (argv[0].empty()) return Invalid(absl::StrCat(field, "[0]"), "the command must not be empty");
  if (argv[0].find('=') != std::string::npos) {
    // /usr/bin/env and sh would both read NAME=value as an assignment.
    return Invalid(absl::StrCat(field, "[0]"),
                   absl::StrCat(Quote(argv[0]), ": the command must not contain '='"));
  }
  return absl::OkStatus();
}

// Seconds for a jail.conf integer parameter, rounded up.
int64_t CeilSeconds(absl::Duration d) {
  return absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1)));
}

void AddParam(std::string& out, absl::string_view name, absl::string_view value) {
  absl::StrAppend(&out, "\t", name, " = ", QuoteJailConfString(value), ";\n");
}

void AddBool(std::string& out, absl::string_view name) { absl::StrAppend(&out, "\t", name, ";\n"); }

// Reverses QuoteJailConfString for the body of a quoted value.
absl::StatusOr<std::string> UnquoteJailConfString(absl::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\') {
      out += body[i];
      continue;
    }
    if (++i == body.size()) return absl::InternalError("value ends in a backslash");
    out += body[i];
  }
  return out;
}

// The value of `\tNAME = "VALUE";` if `line` is that line, else nullopt.
absl::StatusOr<std::optional<std::string>> ConfValue(absl::string_view line,
                                                     absl::string_view name) {
  line = absl::StripAsciiWhitespace(line);
  if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " = \"") ||
      !absl::ConsumeSuffix(&line, "\";")) {
    return std::optional<std::string>();
  }
  ASSIGN_OR_RETURN(std::string value, UnquoteJailConfString(line));
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<RctlLimit> ParseRctlRule(absl::string_view rule) {
  // RESOURCE:ACTION=AMOUNT
  const size_t colon = rule.find(':');
  const size_t equals = rule.find('=');
  if (colon == absl::string_view::npos || equals == absl::string_view::npos || equals < colon) {
    return absl::InternalError(absl::StrCat("bad rctl line ", Quote(rule)));
  }
  RctlLimit limit;
  limit.resource = std::string(rule.substr(0, colon));
  limit.action = std::string(rule.substr(colon + 1, equals - colon - 1));
  limit.amount = std::string(rule.substr(equals + 1));
  const absl::Status valid = ValidateRctlLimit(limit, "rctl line");
  if (!valid.ok()) return absl::InternalError(valid.message());
  return limit;
}

// `line` without its "jail: ", "jls: " or "jexec: " prefix (warnx), or ""
// for a line without one.
absl::string_view StripToolPrefix(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  for (absl::string_view prefix : {"jail: ", "jls: ", "jexec: "}) {
    if (absl::ConsumePrefix(&line, prefix)) return line;
  }
  return absl::string_view();
}

// `"NAME" SUFFIX`, `jail "NAME" SUFFIX` or `jail 7 SUFFIX`: jail(8)'s
// jail_quoted_warnx and the kernel's jail_errmsg.
bool MatchesJailMessage(absl::string_view rest, absl::string_view suffix) {
  if (!absl::ConsumeSuffix(&rest, suffix)) return false;
  absl::ConsumePrefix(&rest, "jail ");
  if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') return true;
  if (rest.empty()) return false;
  for (char c : rest) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

absl::Status JlsError(absl::string_view problem) {
  return absl::InternalError(absl::StrCat("jls: ", problem));
}

// Appends the addresses of `field` (an array of strings or one string) of
// jail entry `index` to `info`, sorted by family.
absl::Status AddAddresses(const nlohmann::json& jail, const char* field, size_t index,
                          JailInfo& info) {
  const auto it = jail.find(field);
  if (it == jail.end() || it->is_null()) return absl::OkStatus();
  std::vector<std::string> addresses;
  if (it->is_string()) {
    addresses.push_back(it->get_ref<const std::string&>());
  } else if (it->is_array()) {
    for (const nlohmann::json& address : *it) {
      if (!address.is_string()) {
        return JlsError(absl::StrCat("jail entry ", index, ": ", field,
                                     " holds a non-string element"));
      }
      addresses.push_back(address.get_ref<const std::string&>());
    }
  } else {
    return JlsError(
        absl::StrCat("jail entry ", index, ": ", field, " is neither an array nor a string"));
  }
  for (std::string& address : addresses) {
    if (address.empty()) continue;
    // __version "1" listed IPv6 addresses in ipv4_addrs (reference 2.3).
    if (address.find(':') != std::string::npos) {
      info.ip6_addresses.push_back(std::move(address));
    } else {
      info.ip4_addresses.push_back(std::move(address));
    }
  }
  return absl::OkStatus();
}

// The optional string `field` of jail entry `index`, "" if absent or null.
absl::StatusOr<std::string> OptionalString(const nlohmann::json& jail, const char* field,
                                           size_t index) {
  const auto it = jail.find(field);
  if (it == jail.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return JlsError(absl::StrCat("jail entry ", index, ": ", field, " is not a string"));
  }
  return it->get_ref<const std::string&>();
}

absl::StatusOr<JailInfo> ParseJlsJail(const nlohmann::json& jail, size_t index) {
  if (!jail.is_object()) {
    return JlsError(absl::StrCat("jail entry ", index, " is not an object"));
  }
  JailInfo info;
  const auto jid = jail.find("jid");
  bool jid_ok = false;
  if (jid != jail.end()) {
    if (jid->is_number_unsigned()) {
      const uint64_t value = jid->get<uint64_t>();
      jid_ok = value > 0 && value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
      info.jid = static_cast<int64_t>(value);
    } else if (jid->is_number_integer()) {
      info.jid = jid->get<int64_t>();
      jid_ok = info.jid > 0;
    } else if (jid->is_string()) {
      // Parameter mode (`jls -n`) prints every value as a string.
      const std::string& text = jid->get_ref<const std::string&>();
      jid_ok = !text.empty() &&
               std::all_of(text.begin(), text.end(),
                           [](char c) { return c >= '0' && c <= '9'; }) &&
               absl::SimpleAtoi(text, &info.jid) && info.jid > 0;
    }
  }
  if (!jid_ok) return JlsError(absl::StrCat("jail entry ", index, ": missing or bad jid"));

  const auto name = jail.find("name");
  if (name == jail.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return JlsError(absl::StrCat("jail entry ", index, " (jid ", info.jid,
                                 "): missing name (was jls run without -v?)"));
  }
  info.name = name->get_ref<const std::string&>();
  ASSIGN_OR_RETURN(info.path, OptionalString(jail, "path", index));
  ASSIGN_OR_RETURN(info.hostname, OptionalString(jail, "hostname", index));
  if (info.hostname.empty()) {
    // Parameter mode names it by the parameter.
    ASSIGN_OR_RETURN(info.hostname, OptionalString(jail, "host.hostname", index));
  }
  RETURN_IF_ERROR(AddAddresses(jail, "ipv4_addrs", index, info));
  RETURN_IF_ERROR(AddAddresses(jail, "ipv6_addrs", index, info));
  RETURN_IF_ERROR(AddAddresses(jail, "ip4.addr", index, info));
  RETURN_IF_ERROR(AddAddresses(jail, "ip6.addr", index, info));
  ASSIGN_OR_RETURN(const std::string state, OptionalString(jail, "state", index));
  info.dying = absl::EqualsIgnoreCase(state, "DYING");
  const auto dying = jail.find("dying");
  if (dying != jail.end() && dying->is_boolean() && dying->get<bool>()) info.dying = true;
  return info;
}

}  // namespace

absl::Status ValidateJailName(absl::string_view name) {
  RETURN_IF_ERROR(common::ValidateName("jail name", name));
  if (name.find('.') != absl::string_view::npos) {
    return Invalid(absl::StrCat("jail name ", Quote(name)),
                   "must not contain '.' (jail(8) reads it as the hierarchy separator)");
  }
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Invalid(absl::StrCat("jail name ", Quote(name)),
                   "must not be all digits (jail(8), jls and jexec read that as a jid)");
  }
  return absl::OkStatus();
}

absl::Status ValidateRctlLimit(const RctlLimit& limit, absl::string_view field) {
  if (!IsRctlWord(limit.resource)) {
    return Invalid(absl::StrCat(field, ".resource"),
                   absl::StrCat(Quote(limit.resource), ": want a name like memoryuse or maxproc"));
  }
  if (!IsRctlWord(limit.action)) {
    return Invalid(absl::StrCat(field, ".action"),
                   absl::StrCat(Quote(limit.action), ": want a name like deny, log or sigterm"));
  }
  absl::string_view digits = limit.amount;
  if (!digits.empty() &&
      absl::string_view("kKmMgGtTpPeE").find(digits.back()) != absl::string_view::npos) {
    digits.remove_suffix(1);
  }
  const bool amount_ok =
      limit.amount.size() <= kMaxRctlAmountBytes && !digits.empty() &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!amount_ok) {
    return Invalid(absl::StrCat(field, ".amount"),
                   absl::StrCat(Quote(limit.amount),
                                ": want a decimal number with an optional k/m/g/t/p/e suffix"));
  }
  return absl::OkStatus();
}

std::string FormatRctlRule(const RctlLimit& limit) {
  return absl::StrCat(limit.resource, ":", limit.action, "=", limit.amount);
}

std::string QuoteJailConfString(absl::string_view value) {
  std::string out = "\"";
  out.reserve(value.size() + 2);
  for (char c : value) {
    if (c == '\\' || c == '"' || c == '$') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string ShellQuoteArgv(const std::vector<std::string>& argv) {
  std::vector<std::string> words;
  words.reserve(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) words.push_back(ShellQuote(argv[i], i == 0));
  return absl::StrJoin(words, " ");
}

std::string JailConfDir(const std::string& state_dir) {
  return absl::StrCat(state_dir, "/jails");
}

std::string JailConfPath(const std::string& state_dir, const std::string& name) {
  return absl::StrCat(JailConfDir(state_dir), "/", name, ".conf");
}

std::string JailConsoleLogPath(const std::string& state_dir, const std::string& name) {
  return absl::StrCat(JailConfDir(state_dir), "/", name, ".console.log");
}

absl::StatusOr<std::string> RenderJailConf(const JailConfig& config,
                                           const FreeBsdDriverOptions& options) {
  RETURN_IF_ERROR(ValidateJailName(config.name));
  const std::string prefix = absl::StrCat("jail ", config.name, ": ");
  auto invalid = [&](absl::string_view field, absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, field, ": ", problem));
  };
  auto annotate = [&](const absl::Status& status) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, status.message()));
  };

  absl::StatusOr<std::string> path = common::ValidateAbsolutePath("path", config.path);
  if (!path.ok()) return annotate(path.status());
  if (*path == "/") {
    return invalid("path", "must not be / (mount.devfs would mount over the host's /dev)");
  }
  if (!IsShellInertPath(*path)) {
    return invalid("path", absl::StrCat(Quote(*path),
                                        ": must not contain whitespace, control characters or "
                                        "shell metacharacters (jail(8) mounts PATH/dev through "
                                        "/bin/sh -c without quoting)"));
  }
  if (config.hostname.size() > kMaxHostnameBytes) {
    return invalid("hostname", absl::StrCat("longer than ", kMaxHostnameBytes, " bytes"));
  }
  if (common::HasNewlineOrNul(config.hostname)) {
    return invalid("hostname", "must not contain a newline or NUL");
  }
  if (!config.ip4_address.empty()) {
    const absl::Status ip = common::ValidateIpAddress("ip4_address", config.ip4_address);
    if (!ip.ok()) return annotate(ip);
    if (config.ip4_address.find(':') != std::string::npos) {
      return invalid("ip4_address", absl::StrCat(Quote(config.ip4_address), ": not IPv4"));
    }
  }
  if (config.exec_start.empty()) return invalid("exec_start", "must not be empty");
  if (absl::Status s = ValidateExecArgv("exec_start", config.exec_start); !s.ok()) {
    return annotate(s);
  }
  if (absl::Status s = ValidateExecArgv("exec_stop", config.exec_stop); !s.ok()) {
    return annotate(s);
  }
  for (const auto& [name, value] : config.env) {
    if (!common::IsEnvVarName(name)) {
      return invalid(absl::StrCat("env ", Quote(name)),
                     "the name must match [A-Za-z_][A-Za-z0-9_]*");
    }
    if (common::HasNewlineOrNul(value)) {
      return invalid(absl::StrCat("env ", Quote(name)), "must not contain a newline or NUL");
    }
  }
  if (config.stop_timeout < absl::ZeroDuration() || config.stop_timeout > kMaxStopTimeout) {
    return invalid("stop_timeout", absl::StrCat(absl::FormatDuration(config.stop_timeout),
                                                ": must be 0..24h"));
  }
  if (config.devfs_ruleset < 0 || config.devfs_ruleset > kMaxDevfsRuleset) {
    return invalid("devfs_ruleset", absl::StrCat(config.devfs_ruleset, ": must be 0..65535"));
  }
  if (config.securelevel < -1 || config.securelevel > 3) {
    return invalid("securelevel", absl::StrCat(config.securelevel, ": must be -1..3"));
  }
  if (config.enforce_statfs < 0 || config.enforce_statfs > 2) {
    return invalid("enforce_statfs", absl::StrCat(config.enforce_statfs, ": must be 0..2"));
  }
  for (size_t i = 0; i < config.allow.size(); ++i) {
    if (!common::IsJailParamName(config.allow[i])) {
      return invalid(absl::StrCat("allow[", i, "]"),
                     absl::StrCat(Quote(config.allow[i]),
                                  ": must match [a-z0-9_.]+, without the \"allow.\" prefix"));
    }
  }
  for (const auto& [name, value] : config.params) {
    const std::string field = absl::StrCat("params ", Quote(name));
    if (!common::IsJailParamName(name)) return invalid(field, "the name must match [a-z0-9_.]+");
    if (common::IsManagedJailParam(name)) {
      return invalid(field,
                     "set by the driver itself (use hostname, path, ip4_address, exec_start, "
                     "exec_stop, stop_timeout, devfs_ruleset, securelevel, enforce_statfs or "
                     "allow)");
    }
    if (common::HasNewlineOrNul(value)) return invalid(field, "must not contain a newline or NUL");
  }
  for (size_t i = 0; i < config.limits.size(); ++i) {
    if (absl::Status s = ValidateRctlLimit(config.limits[i], absl::StrCat("limits[", i, "]"));
        !s.ok()) {
      return annotate(s);
    }
  }
  absl::StatusOr<std::string> state_dir =
      common::ValidateAbsolutePath("options.state_dir", options.state_dir);
  if (!state_dir.ok()) return annotate(state_dir.status());
  if (common::HasNewlineOrNul(*state_dir)) {
    return invalid("options.state_dir", "must not contain a newline or NUL");
  }

  std::vector<std::string> start;
  if (!config.env.empty()) {
    start.push_back(kEnvTool);
    for (const auto& [name, value] : config.env) start.push_back(absl::StrCat(name, "=", value));
  }
  start.insert(start.end(), config.exec_start.begin(), config.exec_start.end());
  const int64_t exec_timeout =
      std::max<int64_t>(1, absl::ToInt64Seconds(options.command_timeout - kExecTimeoutMargin));

  std::string out = absl::StrCat(kConfHeader, config.name,
                                 ", written by jailover-agent; do not edit.\n");
  for (const RctlLimit& limit : config.limits) {
    absl::StrAppend(&out, kRctlLinePrefix, FormatRctlRule(limit), "\n");
  }
  absl::StrAppend(&out, config.name, " {\n");
  AddParam(out, "path", *path);
  if (!config.hostname.empty()) AddParam(out, "host.hostname", config.hostname);
  // The bare address: with "iface|addr" jail(8) would add and later delete
  // a non-CARP alias itself (reference 1.6).
  if (!config.ip4_address.empty()) AddParam(out, "ip4.addr", config.ip4_address);
  AddBool(out, "persist");
  AddBool(out, "mount.devfs");
  AddParam(out, "devfs_ruleset", absl::StrCat(config.devfs_ruleset));
  AddParam(out, "enforce_statfs", absl::StrCat(config.enforce_statfs));
  AddParam(out, "securelevel", absl::StrCat(config.securelevel));
  AddParam(out, "children.max", "0");
  for (const std::string& allow : config.allow) AddBool(out, absl::StrCat("allow.", allow));
  AddBool(out, "exec.clean");
  AddParam(out, "exec.start", ShellQuoteArgv(start));
  if (!config.exec_stop.empty()) AddParam(out, "exec.stop", ShellQuoteArgv(config.exec_stop));
  AddParam(out, "exec.consolelog", JailConsoleLogPath(*state_dir, config.name));
  AddParam(out, "exec.timeout", absl::StrCat(exec_timeout));
  AddParam(out, "stop.timeout", absl::StrCat(CeilSeconds(config.stop_timeout)));
  for (const auto& [name, value] : config.params) AddParam(out, name, value);
  out += "}\n";
  return out;
}

absl::StatusOr<JailConfSummary> ParseJailConf(absl::string_view text) {
  JailConfSummary summary;
  bool have_path = false;
  bool in_block = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, kRctlLinePrefix)) {
      absl::StatusOr<RctlLimit> limit = ParseRctlRule(absl::StripAsciiWhitespace(line));
      if (!limit.ok()) return common::Annotate(limit.status(), "jail conf");
      summary.limits.push_back(*std::move(limit));
      continue;
    }
    const absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (stripped.empty() || stripped[0] == '#') continue;
    if (absl::EndsWith(stripped, " {")) {
      if (!summary.name.empty()) {
        return absl::InternalError(
            absl::StrCat("jail conf: a second jail block ", Quote(stripped)));
      }
      summary.name = std::string(absl::StripSuffix(stripped, " {"));
      in_block = true;
      continue;
    }
    if (stripped == "}") {
      in_block = false;
      continue;
    }
    if (!in_block) continue;
    absl::StatusOr<std::optional<std::string>> path = ConfValue(stripped, "path");
    if (!path.ok()) return common::Annotate(path.status(), "jail conf: path");
    if (path->has_value()) {
      summary.path = **path;
      have_path = true;
      continue;
    }
    absl::StatusOr<std::optional<std::string>> stop = ConfValue(stripped, "stop.timeout");
    if (!stop.ok()) return common::Annotate(stop.status(), "jail conf: stop.timeout");
    if (stop->has_value()) {
      const std::string& seconds_text = **stop;
      int64_t seconds = 0;
      if (seconds_text.empty() ||
          !std::all_of(seconds_text.begin(), seconds_text.end(),
                       [](char c) { return c >= '0' && c <= '9'; }) ||
          !absl::SimpleAtoi(seconds_text, &seconds) ||
          seconds > absl::ToInt64Seconds(kMaxStopTimeout)) {
        return absl::InternalError(
            absl::StrCat("jail conf: bad stop.timeout ", Quote(seconds_text)));
      }
      summary.stop_timeout = absl::Seconds(seconds);
    }
  }
  if (summary.name.empty()) return absl::InternalError("jail conf: no jail block");
  if (!have_path) {
    return absl::InternalError(absl::StrCat("jail conf: jail ", Quote(summary.name),
                                            " has no path"));
  }
  return summary;
}

std::vector<std::string> BuildJailCreateArgv(const std::string& conf_path,
                                             const std::string& name) {
  return {kJailTool, "-i", "-f", conf_path, "-c", name};
}

std::vector<std::string> BuildJailRemoveArgv(const std::string& conf_path,
                                             const std::string& name) {
  return {kJailTool, "-f", conf_path, "-r", name};
}

std::vector<std::string> BuildJailRemoveByNameArgv(const std::string& name) {
  return {kJailTool, "-r", name};
}

std::vector<std::string> BuildJailForceRemoveArgv(const std::string& name) {
  return {kJailTool, "-R", name};
}

std::vector<std::string> BuildJlsArgv() { return {kJlsTool, "--libxo", "json", "-v"}; }

std::vector<std::string> BuildJexecArgv(const std::string& jail,
                                        const std::vector<std::string>& argv) {
  std::vector<std::string> out = {kJexecTool, "-l", jail};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<std::string> BuildRctlAddArgv(const std::string& name, const RctlLimit& limit) {
  return {kRctlTool, "-a", absl::StrCat("jail:", name, ":", FormatRctlRule(limit))};
}

std::vector<std::string> BuildRctlRemoveArgv(const std::string& name) {
  return {kRctlTool, "-r", absl::StrCat("jail:", name)};
}

std::vector<std::string> BuildDevfsUnmountArgv(const std::string& jail_path) {
  return {kUmountTool, "-f", absl::StrCat(jail_path, "/dev")};
}

absl::StatusOr<int64_t> ParseJailCreateJid(absl::string_view stdout_text) {
  absl::string_view last;
  for (absl::string_view line : absl::StrSplit(stdout_text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) last = line;
  }
  int64_t jid = 0;
  if (last.empty() ||
      !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(last, &jid) || jid <= 0) {
    return absl::InternalError(
        absl::StrCat("jail -c: expected the new jid on stdout, got ", Quote(stdout_text)));
  }
  return jid;
}

absl::StatusOr<std::vector<JailInfo>> ParseJlsJson(absl::string_view json_text) {
  try {
    const nlohmann::json doc = nlohmann::json::parse(json_text.begin(), json_text.end(),
                                                     /*cb=*/nullptr,
                                                     /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      return JlsError(absl::StrCat("output is not valid JSON (truncated or garbled?): ",
                                   Quote(json_text)));
    }
    if (!doc.is_object()) return JlsError("expected a JSON object at the top level");
    const auto info = doc.find("jail-information");
    if (info == doc.end() || !info->is_object()) {
      return JlsError("no \"jail-information\" object (was jls run with --libxo json?)");
    }
    std::vector<JailInfo> jails;
    const auto list = info->find("jail");
    if (list == info->end() || list->is_null()) return jails;  // no jails
    if (!list->is_array()) return JlsError("\"jail-information\".\"jail\" is not an array");
    jails.reserve(list->size());
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(JailInfo jail, ParseJlsJail((*list)[i], i));
      jails.push_back(std::move(jail));
    }
    return jails;
  } catch (const nlohmann::json::exception& e) {
    // Not expected with allow_exceptions = false and the type checks above;
    // kept so that a surprise never crosses this module.
    return JlsError(absl::StrCat("cannot read the output: ", e.what()));
  }
}

bool IsJailNotFound(absl::string_view stderr_text) {
  for (absl::string_view line : absl::StrSplit(stderr_text, '\n')) {
    if (MatchesJailMessage(StripToolPrefix(line), " not found")) return true;
  }
  return false;
}

bool IsJailAlreadyExists(absl::string_view stderr_text) {
  for (absl::string_view line : absl::StrSplit(stderr_text, '\n')) {
    if (MatchesJailMessage(StripToolPrefix(line), " already exists")) return true;
  }
  return false;
}

}  // namespace jailover::agent::freebsd

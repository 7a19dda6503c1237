// Pure argv builders, the jail.conf(5) renderer and output parsers for
// FreeBSD jails: jail(8), jls(8), jexec(8), rctl(8) and umount(8), in the
// syntax and formats of shared/freebsd-reference.md sections 1, 2, 3 and
// 7.2. No I/O, no logging; thread-safe.
//
// Every jail the agent runs has one agent-owned conf file,
// STATE_DIR/jails/NAME.conf, holding exactly one `NAME { ... }` block. It is
// used for both `jail -f FILE -c NAME` and `jail -f FILE -r NAME`, so removal
// undoes what creation did (reference 0.6). The jail's rctl(8) rules, which
// the kernel does not keep across a jail's re-creation (reference 7.2), are
// stored in the same file as comment lines ("# rctl: memoryuse:deny=1g"):
// one file, replaced atomically, that jail(8) ignores and ParseJailConf
// reads back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/freebsd/tools.h"
#include "agent/driver/jail_driver.h"

namespace jailover::agent::freebsd {

// Prefixed to exec.start when the config has an environment: exec.clean
// leaves the command only HOME, SHELL, TERM, USER and PATH=/bin:/usr/bin.
inline constexpr char kEnvTool[] = "/usr/bin/env";

// jail(8)'s stop.timeout when a conf file does not set it (command.c
// DEFAULT_STOP_TIMEOUT).
inline constexpr absl::Duration kDefaultJailStopTimeout = absl::Seconds(10);
// exec.timeout is the driver's command_timeout minus this, so that jail(8)
// times out exec.start itself and unwinds the half-made jail (mounts, jail)
// before the CommandRunner would kill jail(8) in the middle of it.
inline constexpr absl::Duration kExecTimeoutMargin = absl::Seconds(10);

// OK, or InvalidArgument naming "jail name": common::ValidateName, and
// additionally no '.' (jail(8) reads dots as the hierarchy separator,
// reference 1.4) and not all digits (jail.conf, jls -j, jexec and jail -r
// read an all-digit name as a jid, reference 2.1 and 3).
absl::Status ValidateJailName(absl::string_view name);

// OK, or InvalidArgument naming the field ("limits[2].action"): resource
// and action are [a-z][a-z0-9_]* ("memoryuse", "deny", "sigterm"), amount
// is decimal digits with at most one of the suffixes k, m, g, t, p, e (any
// case), 1..20 bytes.
absl::Status ValidateRctlLimit(const RctlLimit& limit, absl::string_view field = "limit");

// RESOURCE:ACTION=AMOUNT, as stored in the conf file's "# rctl:" lines.
std::string FormatRctlRule(const RctlLimit& limit);

// `value` as a double-quoted jail.conf(5) string. Inside double quotes
// jail.conf (usr.sbin/jail/jaillex.l) expands $name and ${name} variables
// and reads C-style backslash escapes: a backslash followed by a digit 0-7,
// 'x', or one of abfnrtv is an escape sequence, and followed by any other
// character stands for that character. So '\' becomes "\\", '"' becomes
// "\"" and '$' becomes "\$"; every other byte is copied as is. The caller
// makes sure there is no newline or NUL.
std::string QuoteJailConfString(absl::string_view value);

// argv as a POSIX sh command line that jail(8) turns back into exactly this
// argv. jail(8) runs an exec.* command through `/bin/sh -c` when it holds
// one of !"$&'()*;<>?[\]`{|}~ and otherwise splits it on whitespace and
// execs it (reference 1.4, command.c). Elements made only of
// [A-Za-z0-9_@%+,./:-] (and '=' after the first element) are copied; every
// other element, and the empty string, is put in single quotes (a ' inside
// becomes '\''). A quoted element makes the line go through sh, which
// removes the quotes; a line without quotes has no metacharacter and no
// whitespace inside an element, so splitting gives the same argv.
std::string ShellQuoteArgv(const std::vector<std::string>& argv);

// STATE_DIR/jails, STATE_DIR/jails/NAME.conf, STATE_DIR/jails/NAME.console.log.
std::string JailConfDir(const std::string& state_dir);
std::string JailConfPath(const std::string& state_dir, const std::string& name);
std::string JailConsoleLogPath(const std::string& state_dir, const std::string& name);

// Validates `config` and renders its conf file:
//
//   # jail.conf(5) file of jail NAME, written by jailover-agent; do not edit.
//   # rctl: RESOURCE:ACTION=AMOUNT           (one line per limit)
//   NAME {
//   	path = "...";
//   	host.hostname = "...";                (omitted when empty)
//   	ip4.addr = "ADDR";                    (bare address; omitted when empty)
//   	persist;
//   	mount.devfs;
//   	devfs_ruleset = "N";
//   	enforce_statfs = "N";
//   	securelevel = "N";
//   	children.max = "0";
//   	allow.X;                              (one per allow entry, in order)
//   	exec.clean;
//   	exec.start = "[/usr/bin/env K=V ...] ARGV";   (ShellQuoteArgv)
//   	exec.stop = "ARGV";                   (omitted when exec_stop is empty)
//   	exec.consolelog = "STATE_DIR/jails/NAME.console.log";
//   	exec.timeout = "S";                   (command_timeout - 10 s, >= 1)
//   	stop.timeout = "S";                   (stop_timeout, rounded up)
//   	PARAM = "VALUE";                      (pass-through params, sorted)
//   }
//
// InvalidArgument naming the field for: a bad jail name (ValidateJailName);
// a path that is not absolute and normalised, is "/", or holds whitespace
// or shell metacharacters (jail(8) mounts devfs with `/bin/sh -c
// "devfs_mount_jail PATH/dev RULESET"`, the path unquoted); a hostname over
// 255 bytes; an ip4_address that is not a bare IPv4 literal; an empty
// exec_start, an exec argv element or env value with a newline or NUL, an
// empty first element or one containing '='; an env name not matching
// [A-Za-z_][A-Za-z0-9_]*; a negative stop_timeout; devfs_ruleset outside
// 0..65535; securelevel outside -1..3; enforce_statfs outside 0..2; an allow
// entry or param name not matching [a-z0-9_.]+ (no empty dot components);
// a param the driver manages itself (common::IsManagedJailParam); a value with a
// newline or NUL; a bad rctl limit (ValidateRctlLimit); an options.state_dir
// that is not an absolute path.
absl::StatusOr<std::string> RenderJailConf(const JailConfig& config,
                                           const FreeBsdDriverOptions& options);

// What the driver reads back from a conf file written by RenderJailConf.
struct JailConfSummary {
  std::string name;
  std::string path;
  absl::Duration stop_timeout = kDefaultJailStopTimeout;
  std::vector<RctlLimit> limits;
};

// Parses a conf file in the layout RenderJailConf writes: the "# rctl:"
// comment lines, the `NAME {` line, and the `path` and `stop.timeout`
// lines (values unescaped as QuoteJailConfString escapes them). Other lines
// are ignored. Internal naming the problem for a file without a jail block
// or path, a second jail block, a bad rctl line or a non-numeric
// stop.timeout. Never crashes on any input.
absl::StatusOr<JailConfSummary> ParseJailConf(absl::string_view text);

// /usr/sbin/jail -i -f CONF -c NAME. Prints only the new jid (reference 1.2).
std::vector<std::string> BuildJailCreateArgv(const std::string& conf_path,
                                             const std::string& name);
// /usr/sbin/jail -f CONF -r NAME: exec.stop, SIGTERM, stop.timeout, removal,
// then the unmounts of the conf file (reference 1.5).
std::vector<std::string> BuildJailRemoveArgv(const std::string& conf_path,
                                             const std::string& name);
// /usr/sbin/jail -r NAME, for a jail whose conf file is gone: SIGTERM, the
// default stop.timeout, removal; no exec.stop, no unmounts.
std::vector<std::string> BuildJailRemoveByNameArgv(const std::string& name);
// /usr/sbin/jail -R NAME: removes the jail at once without the conf file
// (no exec.stop, no SIGTERM wait, no unmounts).
std::vector<std::string> BuildJailForceRemoveArgv(const std::string& name);
// /usr/sbin/jls --libxo json -v: every live jail (dying ones need -d).
std::vector<std::string> BuildJlsArgv();
// /usr/sbin/jexec -l JAIL ARGV...: runs ARGV in the jail with a clean login
// environment (reference 3). `jail` is a jid or a name; an all-digit value
// is read as a jid, so the driver passes the jid.
std::vector<std::string> BuildJexecArgv(const std::string& jail,
                                        const std::vector<std::string>& argv);
// /usr/bin/rctl -a jail:NAME:RESOURCE:ACTION=AMOUNT. Not validated.
std::vector<std::string> BuildRctlAddArgv(const std::string& name, const RctlLimit& limit);
// /usr/bin/rctl -r jail:NAME: removes all the jail's rules.
std::vector<std::string> BuildRctlRemoveArgv(const std::string& name);
// /sbin/umount -f PATH/dev: the devfs that mount.devfs put there, which
// `jail -R` leaves mounted (it would keep the jail's image busy).
std::vector<std::string> BuildDevfsUnmountArgv(const std::string& jail_path);

// The jid that `jail -i ... -c` printed ("7\n"): the last non-empty line,
// a positive decimal number. Internal quoting the output otherwise.
absl::StatusOr<int64_t> ParseJailCreateJid(absl::string_view stdout_text);

// Parses `jls --libxo json -v` (reference 2.3): {"__version": "2",
// "jail-information": {"jail": [ {...}, ... ]}}. Per jail: jid (number, or
// a decimal string) and name are required; path, hostname, ipv4_addrs,
// ipv6_addrs (arrays of strings, or one string) and state ("DYING" sets
// dying; a boolean "dying" is read too) are optional. Addresses are sorted
// into IPv4 and IPv6 by family, since __version "1" put IPv6 addresses in
// ipv4_addrs. A missing or null "jail" list means no jails. Internal with a
// message starting "jls:" for text that is not JSON (truncated, garbled) or
// JSON of another shape. Never crashes or throws.
absl::StatusOr<std::vector<JailInfo>> ParseJlsJson(absl::string_view json_text);

// True if jail(8), jls(8) or jexec(8) said the jail does not exist:
// `jail: "NAME" not found`, `jls: jail "NAME" not found`, `... jail 7 not
// found` (reference 1.2, 1.5, 2.1, 3).
bool IsJailNotFound(absl::string_view stderr_text);
// True if jail(8) refused a create because the jail exists:
// `jail: "NAME" already exists` (reference 1.1).
bool IsJailAlreadyExists(absl::string_view stderr_text);

}  // namespace jailover::agent::freebsd

// Pure argv builders and output parsers for CARP on FreeBSD: ifconfig(8)
// with carp(4), sysctl(8), and devd(8) CARP notifications, in the formats
// of shared/freebsd-reference.md section 6. No I/O, no logging; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/driver/vip_driver.h"

namespace jailover::agent::freebsd {

// The longest CARP password ifconfig(8) passes on whole. ifcarp.c copies it
// with strlcpy(carpr_key, val, CARP_KEY_LEN) and CARP_KEY_LEN is 20
// (netinet/ip_carp.h), so byte 20 on is cut off without a word.
inline constexpr size_t kMaxCarpPasswordBytes = 19;

// An argv with the indices of its secret elements, to be passed as
// CommandOptions::secret_args so they never reach a log or an error.
struct SecretArgv {
  std::vector<std::string> argv;
  std::vector<size_t> secret_args;
};

// OK, or InvalidArgument naming the first bad field: name (ValidateName),
// interface (ValidateInterfaceName), address (an IPv4 literal, no prefix),
// vhid 1..255, advbase 1..255, advskew 0..254, and password: 1 to
// kMaxCarpPasswordBytes bytes, printable ASCII without spaces. The message
// never contains the password.
absl::Status ValidateVipConfig(const VipConfig& vip);

// /sbin/ifconfig IF vhid N advbase B advskew K pass P alias ADDR/32, vhid
// first (ifconfig refuses advbase/advskew/pass before it); secret_args holds
// the index of P. InvalidArgument as ValidateVipConfig.
absl::StatusOr<SecretArgv> BuildCarpAddArgv(const VipConfig& vip);
// /sbin/ifconfig IF vhid N advskew K. Arguments are not validated.
std::vector<std::string> BuildCarpSetAdvskewArgv(const std::string& interface, int vhid,
                                                 int advskew);
// /sbin/ifconfig IF vhid N state master: forces the vhid to MASTER (it
// advertises at once; the old master, hearing a better advskew, steps
// down). Arguments are not validated.
std::vector<std::string> BuildCarpStateMasterArgv(const std::string& interface, int vhid);
// /sbin/ifconfig IF vhid N advbase B advskew K: changes both on an existing
// vhid (a VIP whose advbase was changed). Arguments are not validated.
std::vector<std::string> BuildCarpSetTimingArgv(const std::string& interface, int vhid,
                                                int advbase, int advskew);
// /sbin/ifconfig IF inet ADDR -alias. The kernel destroys the vhid with its
// last address.
std::vector<std::string> BuildCarpRemoveArgv(const std::string& interface,
                                             const std::string& address);
// /sbin/ifconfig IF
std::vector<std::string> BuildIfconfigShowArgv(const std::string& interface);
// /sbin/sysctl net.inet.carp.preempt=1. Without preemption a BACKUP with a
// lower advskew never takes over from a live MASTER, so the VIP would not
// follow the jail (reference 6.5).
std::vector<std::string> BuildCarpPreemptArgv();

// Parses the output of `ifconfig IF` into one CarpStatus per vhid, ordered
// by vhid, each with `interface` set to `interface`:
//   "\tcarp: STATE vhid N advbase B advskew K"  (13.x and 14.x; with -k a
//       ` key "..."` follows; the key is ignored)
//   "\t      peer A peer6 B"  (14.x, right after its carp line: peer = A)
//   "\tinet ADDR ... vhid N" / "\tinet6 ADDR[%ZONE] ... vhid N"  (the
//       addresses of vhid N, in output order, zone dropped)
// Text without carp lines gives an empty vector. Internal, quoting the line,
// for a carp or peer line that does not parse, a vhid listed twice, an
// address whose vhid has no carp line (truncated output), or a first line
// that names another interface. Never crashes on any input.
absl::StatusOr<std::vector<CarpStatus>> ParseIfconfigCarp(absl::string_view interface,
                                                          absl::string_view text);

// Parses one devd(8) event, e.g. "!system=CARP subsystem=10@em0 type=MASTER".
// Keys may come in any order, unknown keys are ignored, and trailing
// whitespace, newlines and NUL bytes are dropped. Returns nullopt for an
// event of another system or a non-notify event (+, -, ?), and
// InvalidArgument for a CARP event whose subsystem is not VHID@IFNAME (vhid
// 1..255, a valid interface name) or whose type is not MASTER, BACKUP or
// INIT. The transition's `time` is left for the caller to set.
absl::StatusOr<std::optional<CarpTransition>> ParseDevdCarpEvent(absl::string_view event);

}  // namespace jailover::agent::freebsd

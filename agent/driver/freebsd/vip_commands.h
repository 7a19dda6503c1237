// Pure argv builders and output parsers for CARP on FreeBSD: ifconfig(8)
// with carp(4), sysctl(8) and devd(8) CARP events, exactly as
// shared/freebsd-reference.md section 6 gives them. No I/O; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/driver/vip_driver.h"

namespace jailover::agent::freebsd {

// An argv and the indices of its secret elements (CommandOptions::secret_args).
struct SecretArgv {
  std::vector<std::string> argv;
  std::vector<size_t> secret_args;
};

// Checks a VipConfig: interface name, IPv4 address, vhid 1..255, advbase
// 1..255, advskew 0..254, password 1..255 printable bytes without spaces.
// InvalidArgument naming the field.
absl::Status ValidateVipConfig(const VipConfig& vip);

// ifconfig IF vhid N advbase B advskew K pass P alias ADDR/32 (vhid first:
// ifconfig refuses advbase/advskew/pass before it). The password's index is
// in secret_args.
absl::StatusOr<SecretArgv> BuildCarpAddArgv(const VipConfig& vip);
// ifconfig IF vhid N advskew K
std::vector<std::string> BuildCarpSetAdvskewArgv(const std::string& interface, int vhid,
                                                 int advskew);
// ifconfig IF inet ADDR -alias (the vhid goes with its last address)
std::vector<std::string> BuildCarpRemoveArgv(const std::string& interface,
                                             const std::string& address);
// ifconfig IF
std::vector<std::string> BuildIfconfigShowArgv(const std::string& interface);
// sysctl net.inet.carp.preempt=1: a BACKUP with a lower advskew takes over,
// so the VIP follows the jail.
std::vector<std::string> BuildCarpPreemptArgv();

// Parses `ifconfig IF` output into one CarpStatus per vhid: the
// "\tcarp: STATE vhid N advbase B advskew K [key "..."]" lines, the 14.x
// "\t      peer A peer6 B" line after one, and the inet/inet6 lines ending
// in "vhid N" (their addresses). No carp lines = no vhids. A carp line that
// does not parse is Internal, naming the line.
absl::StatusOr<std::vector<CarpStatus>> ParseIfconfigCarp(absl::string_view interface,
                                                          absl::string_view text);

// Parses one devd event: "!system=CARP subsystem=VHID@IF type=STATE".
// nullopt for events of other systems; InvalidArgument for a CARP event
// that does not parse (bad vhid, interface or state). `time` is set by the
// caller.
absl::StatusOr<std::optional<CarpTransition>> ParseDevdCarpEvent(absl::string_view event);

}  // namespace jailover::agent::freebsd

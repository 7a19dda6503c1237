// A JailDriver defines, starts, stops and lists jails (FreeBSD) or namespace
// containers (Linux) on this host. It holds no failover policy: epochs,
// idempotency and locking live in the agent service above it. Implementations
// are thread-safe for calls on different jails; the caller serialises calls
// on the same jail.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/exec/command_runner.h"

namespace jailover::agent {

// One rctl(8) rule for a jail: jail:NAME:RESOURCE:ACTION=AMOUNT.
struct RctlLimit {
  std::string resource;  // "memoryuse", "maxproc", "pcpu", ...
  std::string action;    // "deny", "log", "throttle", ...
  std::string amount;    // "4g", "200", "50"
};

// Everything a driver needs to run one jail. Built by the agent from the
// API's JailSpec and VipSpec; validated before it reaches a driver.
struct JailConfig {
  std::string name;
  std::string hostname;
  // Root of the jail: the mount point of its image.
  std::string path;
  // The VIP the jail binds, without prefix ("198.18.0.100"). The agent puts
  // the address on the host with CARP; the jail gets the bare address.
  std::string ip4_address;
  // Commands run inside the jail to start and stop it, as argv.
  std::vector<std::string> exec_start;
  std::vector<std::string> exec_stop;
  // How long the jail's processes get after SIGTERM before SIGKILL.
  absl::Duration stop_timeout = absl::Seconds(10);
  int devfs_ruleset = 4;
  int securelevel = 2;
  int enforce_statfs = 2;
  // allow.* parameters to enable, without the "allow." prefix.
  std::vector<std::string> allow;
  // Further jail(8) parameters, name -> value, passed through.
  std::map<std::string, std::string> params;
  std::vector<RctlLimit> limits;
  // Environment of exec_start.
  std::map<std::string, std::string> env;
};

// A jail as the OS reports it.
struct JailInfo {
  std::string name;
  // FreeBSD jid; Linux: host pid of the jail's init.
  int64_t jid = 0;
  std::string path;
  std::string hostname;
  std::vector<std::string> ip4_addresses;
  std::vector<std::string> ip6_addresses;
  // Being removed (FreeBSD "dying" jail).
  bool dying = false;
};

// What Stop did.
struct StopResult {
  // False if the jail was not running (Stop is then a no-op).
  bool was_running = false;
  // True if the grace period ran out and processes were killed.
  bool killed = false;
};

class JailDriver {
 public:
  virtual ~JailDriver() = default;

  // Writes what Start and Stop need (FreeBSD: the jail's conf file).
  // Idempotent: the same config again is a no-op. InvalidArgument for a
  // config the platform cannot express.
  virtual absl::Status Define(const JailConfig& config) = 0;
  // Starts a defined jail and applies its rctl limits. AlreadyExists if it
  // runs; NotFound if not defined; Internal with the tool's message if the
  // start failed (nothing is left running then).
  virtual absl::StatusOr<JailInfo> Start(const std::string& name) = 0;
  // Stops the jail: exec_stop, SIGTERM, SIGKILL after `grace`; removes its
  // rctl rules. A jail that is not running gives was_running = false.
  virtual absl::StatusOr<StopResult> Stop(const std::string& name, absl::Duration grace) = 0;
  // Removes the definition. FailedPrecondition if the jail runs.
  virtual absl::Status Undefine(const std::string& name) = 0;
  // The jails running on this host (all of them, not only the agent's).
  virtual absl::StatusOr<std::vector<JailInfo>> List() = 0;
  // Runs `argv` inside the running jail. NotFound if it does not run.
  virtual absl::StatusOr<common::CommandResult> Exec(const std::string& name,
                                                     const std::vector<std::string>& argv,
                                                     absl::Duration timeout) = 0;
};

}  // namespace jailover::agent

// A VipDriver puts CARP-shared service addresses (VIPs) on this host, sets
// this host's advskew for each (lowest advskew = master, preemption on),
// reports CARP state and delivers state transitions as they happen. It holds
// no failover policy. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jailover::agent {

enum class CarpRole { kInit, kBackup, kMaster };

// One VIP as configured on this host.
struct VipConfig {
  std::string name;
  std::string interface;
  // IPv4 address without prefix; configured as ADDRESS/32.
  std::string address;
  int vhid = 0;
  int advbase = 1;
  int advskew = 100;
  // CARP shared secret; never logged.
  std::string password;
};

// CARP state of one vhid on one interface, as the OS reports it.
struct CarpStatus {
  std::string interface;
  int vhid = 0;
  CarpRole role = CarpRole::kInit;
  int advbase = 0;
  int advskew = 0;
  // Addresses carrying this vhid.
  std::vector<std::string> addresses;
  // 14.x: unicast peer ("224.0.0.18" = multicast default); empty if not shown.
  std::string peer;
};

// A CARP state change, as reported by the OS (devd on FreeBSD, ucarp's
// scripts on Linux).
struct CarpTransition {
  std::string interface;
  int vhid = 0;
  CarpRole role = CarpRole::kInit;
  absl::Time time;
};

class VipDriver {
 public:
  virtual ~VipDriver() = default;

  // Host-wide CARP setup (FreeBSD: net.inet.carp.preempt=1). Idempotent.
  virtual absl::Status Prepare() = 0;
  // Adds the VIP with its vhid, advbase, advskew and password. Idempotent
  // for the same config; a different advskew is applied as SetAdvskew.
  virtual absl::Status Configure(const VipConfig& vip) = 0;
  // Changes this host's advskew for the VIP's vhid.
  virtual absl::Status SetAdvskew(const VipConfig& vip, int advskew) = 0;
  // Removes the address (and with it the vhid). Idempotent.
  virtual absl::Status Remove(const VipConfig& vip) = 0;
  // A planned hand-over, after the previous master's speaker was demoted or
  // removed: makes this host MASTER for the VIP now, instead of after CARP's
  // master-down interval (advbase x 3) of silence. The VIP must be
  // configured here (FailedPrecondition otherwise). OK if already MASTER.
  virtual absl::Status Claim(const VipConfig& vip) = 0;
  // CARP state of every vhid on `interface`.
  virtual absl::StatusOr<std::vector<CarpStatus>> State(const std::string& interface) = 0;
  // Starts delivering transitions to `callback` (from a driver thread) until
  // StopWatching. An event source that cannot be opened yet (devd
  // restarting) is retried in the background with a warning, not an error.
  virtual absl::Status Watch(std::function<void(const CarpTransition&)> callback) = 0;
  virtual void StopWatching() = 0;
};

const char* CarpRoleName(CarpRole role);  // "INIT", "BACKUP", "MASTER"

}  // namespace jailover::agent

// The VIP guard: a dead-man's switch on this host's CARP addresses.
//
// The agent fences a jail (VIP removed first) when neither its coordinator
// lease nor its image's storage lease was renewed for a ttl (lease_tracker.h)
// — but only while the agent runs. An agent that is SIGSTOPped, hung, or
// dead leaves its ucarp daemons advertising at the holder's advskew: the
// standby that the coordinator starts the jail on, after fencing this host at
// the storage host, ties with them, and clients keep reaching this host,
// whose disk is gone, until the agent comes back (chaos etcd cycles 3, 60,
// 84, 107: 15-18 s). One serving host (design invariant 3b) must not depend
// on the agent being alive.
//
// So the agent writes, at every renewal, until when its leases let it hold
// its VIPs (LeaseTracker::HoldUntil) to DIR/hold-until, and starts the guard
// (`jailover-agent --vip_guard` with the agent's own flags; one per state
// directory, held by a lock on DIR/guard.lock; it outlives the agent as the
// ucarps do). The guard reads the file every 100 ms on the same monotonic
// clock (CLOCK_MONOTONIC is one clock for every process of the machine) and,
// once the deadline has passed, removes every VIP on record (the Linux
// driver's RemoveAll: each ucarp stopped, its address deleted) and records
// that in DIR/released.json. It releases once per lapse: a later deadline
// in the future arms it again. The agent, finding released.json, fences
// itself (as it would have on its own at that deadline) and removes the
// file; its readmission brings the jails back, with their VIPs.
//
// The deadline is the agent's own: the guard never acts before the agent
// would have fenced itself, so it changes nothing while the agent runs. A
// host that holds no image, or only images it was told MOVED (it fences
// those itself; a move never fences the host), has no deadline ("none"):
// losing the coordinator fences nothing, and the guard leaves its VIPs alone.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/lease_tracker.h"
#include "common/daemon/daemon_main.h"
#include "common/time/clock.h"

namespace jailover::agent {

struct AgentOptions;

// STATE_DIR/vip-guard, and the files in it.
std::string VipGuardDir(const std::string& state_dir);
inline constexpr char kHoldUntilFile[] = "hold-until";
inline constexpr char kReleasedFile[] = "released.json";
inline constexpr char kGuardLockFile[] = "guard.lock";
inline constexpr char kGuardLogFile[] = "guard.log";

// Writes `hold` (nullopt: nothing held) to `path` as one fixed-size record
// written in place, the value twice ("NS NS\n", "none none\n"), so that a
// reader can tell a torn read; no rename, no fsync (several writes a second;
// the file only matters while the machine is up).
absl::Status WriteHoldUntil(const std::string& path, std::optional<LeaseTime> hold);
// What WriteHoldUntil wrote. NotFound: no file; DataLoss: a torn or garbled
// record (read it again later).
absl::StatusOr<std::optional<LeaseTime>> ReadHoldUntil(const std::string& path);

// The agent's side of released.json: if the guard released this host's VIPs,
// what it recorded (one line, for the self-fence's reason), and the file is
// removed; nullopt if it did not.
std::optional<std::string> TakeGuardRelease(const std::string& dir);

// Takes DIR/guard.lock (flock, not waiting) and returns its descriptor, to
// hold for as long as this process is the guard; FailedPrecondition if
// another process holds it.
absl::StatusOr<int> TakeGuardLock(const std::string& dir);

// The guard's rule, without I/O: release once `now` is past a deadline, once
// per lapse (armed again by a deadline in the future or by "none").
class GuardRule {
 public:
  bool ShouldRelease(std::optional<LeaseTime> hold, LeaseTime now);

 private:
  bool armed_ = true;
};

class VipGuard final : public common::Daemon {
 public:
  // Removes every VIP of the host; returns their names.
  using ReleaseFn = std::function<absl::StatusOr<std::vector<std::string>>()>;
  static constexpr absl::Duration kPoll = absl::Milliseconds(100);

  // Takes DIR/guard.lock (FailedPrecondition if another guard holds it) and
  // starts the thread that runs CheckOnce every `poll` (zero: no thread,
  // for tests that call CheckOnce). `clock` must outlive the guard.
  static absl::StatusOr<std::unique_ptr<VipGuard>> Start(const std::string& dir, ReleaseFn release,
                                                         common::Clock& clock,
                                                         absl::Duration poll = kPoll);
  // The guard of an agent's flags (--vip_guard): the Linux driver's
  // RemoveAll on options.state_dir; FailedPrecondition for another driver.
  static absl::StatusOr<std::unique_ptr<common::Daemon>> StartForAgent(const AgentOptions& options,
                                                                       common::Clock& clock);
  ~VipGuard() override;

  // One round: read the deadline, release if the rule says so (logged, and
  // recorded in released.json).
  void CheckOnce();
  void Shutdown(absl::Duration deadline) override;

 private:
  VipGuard(std::string dir, ReleaseFn release, common::Clock& clock, int lock_fd)
      : dir_(std::move(dir)), release_(std::move(release)), clock_(clock), lock_fd_(lock_fd) {}

  const std::string dir_;
  const ReleaseFn release_;
  common::Clock& clock_;
  const int lock_fd_;
  GuardRule rule_;
  bool warned_unreadable_ = false;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace jailover::agent

// JailTracker: the coordinator's pure state machine of one jail — its phase
// (v1::JailPhase), the host it runs on, the operation acting on it, and its
// automation policy (restart/failover budget, failback). Like HostTracker it
// does no I/O and reads no clock: every input carries `now` (the Clock's
// monotonic time) and every output is data — phase transitions with reasons,
// and a decision of what the coordinator should do next, which the
// operations engine turns into a persisted operation.
//
// Phases:
//   PENDING       wants to run; nothing runs it. With no host: never placed
//                 (decision kStart). With a host: it stopped running there
//                 (observed, or its operation failed); once a heartbeat of
//                 that host confirms it is not running, kRestart there.
//   STARTING, MIGRATING, FAILING_OVER, STOPPING
//                 an operation (START or RESTART, MIGRATE, FAILOVER, STOP) is
//                 acting on it; OperationFinished / OperationFailed end them.
//   RUNNING       running on host(). A heartbeat of that host that no longer
//                 lists it (believed only observe_grace after the phase began,
//                 so a snapshot taken before the start is not taken as a
//                 crash) makes it PENDING.
//   STOPPED       stopped on purpose; no decisions.
//   ERROR         automation gave up (budget exhausted, a stop failed); only
//                 an operator's operation takes it out (and resets the budget).
//
// Decisions (Evaluate), given the states of the hosts:
//   kFailover once the jail's host lease expired (UNREACHABLE) or it is
//   FENCED — never while it is merely SUSPECT. The failover operation's
//   first step fences the old host from the jail's image at the storage host
//   (the grant goes to the standby at epoch + 1, the old host's connection is
//   cut), so nothing moves while the old host could still write; or when the
//   jail is down on a host in MAINTENANCE, or its host lost its storage
//   lease (the host stays READY; the failover cleans it up). kRestart when it is down on a READY or
//   DRAINING host. Both draw on the policy budget: at most max_restarts
//   automatic restarts and failovers, counted together, started within the
//   sliding window; the one that would exceed it puts the jail in ERROR with
//   the reason instead. kFailback (policy AUTO) when the jail runs away from
//   its preferred host and that host has been READY and usable for
//   failback_after. kStart for a jail never placed.
//
// Policy defaults (JailPolicy fields left unset): failback NONE,
// failback_after 5m, max_restarts 3, window 10m.
//
// Thread-compatible: not thread-safe; the caller serialises access.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/cluster/host_tracker.h"
#include "coordinator/names.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::cluster {

struct JailTrackerConfig {
  // Reports that the jail is not running on its host are ignored for this
  // long after the phase began (heartbeats carry a snapshot taken up to one
  // renew interval earlier).
  absl::Duration observe_grace = absl::Seconds(1);
};

// A JailPolicy with its defaults applied.
struct EffectivePolicy {
  v1::FailbackMode failback = v1::FAILBACK_MODE_NONE;
  absl::Duration failback_after = absl::Minutes(5);
  uint32_t max_restarts = 3;
  absl::Duration window = absl::Minutes(10);
};
// Applies the defaults; InvalidArgument for a negative failback_after or a
// window that is set but not positive.
absl::StatusOr<EffectivePolicy> ResolvePolicy(const v1::JailPolicy& policy);

// What the jail tracker needs to know of a host.
struct HostView {
  v1::HostState state = v1::HOST_STATE_UNSPECIFIED;
  // When the host entered `state`.
  MonoTime since;
  bool usable_for_placement = false;
  // When the heartbeat carrying its last observed state arrived, if any.
  std::optional<MonoTime> observed_at;
};
HostView ViewOf(const HostTracker& host);
// The view of a host by name; nullopt = unknown host.
using HostLookup = absl::FunctionRef<std::optional<HostView>(absl::string_view host)>;

struct JailTransition {
  v1::JailPhase from = v1::JAIL_PHASE_UNSPECIFIED;
  v1::JailPhase to = v1::JAIL_PHASE_UNSPECIFIED;
  MonoTime at;
  std::string reason;
};

enum class JailAction { kNone, kStart, kRestart, kFailover, kFailback };

// What the coordinator should do about the jail now.
struct JailDecision {
  JailAction action = JailAction::kNone;
  // Where the jail is (restart, failover, failback); empty for kStart.
  std::string from_host;
  // kStart: the preferred host if usable, else empty (the planner picks);
  // kRestart: from_host; kFailover: empty (the planner picks a standby);
  // kFailback: the preferred host.
  std::string to_host;
  // Why this action, or why none ("waiting: host h1 is SUSPECT ...").
  std::string reason;
};

struct JailUpdate {
  std::vector<JailTransition> transitions;
  JailDecision decision;
};

// An operation beginning to act on the jail.
struct JailOperationStart {
  std::string operation_id;
  // START, RESTART, MIGRATE, FAILOVER or STOP.
  v1::OperationKind kind = v1::OPERATION_KIND_UNSPECIFIED;
  // Target host; required except for STOP.
  std::string to_host;
  // Started by the coordinator's automation (counts against the budget for
  // RESTART and FAILOVER) rather than by an operator.
  bool automatic = false;
};

class JailTracker {
 public:
  // A new jail, PENDING and never placed. InvalidArgument for an invalid
  // policy or an empty name.
  static absl::StatusOr<JailTracker> Create(const v1::Jail& definition, MonoTime now,
                                            JailTrackerConfig config = {});
  // A tracker rebuilt after a coordinator restart from the persisted status
  // and, if the status names one, the operation acting on the jail (its
  // kind and to_host are needed to finish it). restarts_in_window is kept
  // as that many budget uses at `now` (conservative: they expire one window
  // later). InvalidArgument when the status names an operation but
  // `operation` is missing or has another id.
  static absl::StatusOr<JailTracker> Restore(const v1::Jail& definition,
                                             const v1::JailStatus& status,
                                             const v1::Operation* operation, MonoTime now,
                                             JailTrackerConfig config = {});

  // --- Inputs. ---

  // The operator re-applied the jail (placement, policy). Same name only.
  absl::Status SetDefinition(MonoTime now, const v1::Jail& definition);
  // An operation begins. Refused (FailedPrecondition, nothing changed) while
  // another operation acts on the jail, for MIGRATE unless RUNNING, for an
  // automatic operation while in ERROR, and for an automatic RESTART or
  // FAILOVER beyond the budget. The same operation id again is a no-op (a
  // resumed operation).
  absl::StatusOr<std::vector<JailTransition>> OperationStarted(MonoTime now,
                                                               const JailOperationStart& start);
  // The operation finished: RUNNING on its target (STOP: STOPPED), under
  // image `epoch` (0 = unchanged).
  absl::StatusOr<std::vector<JailTransition>> OperationFinished(MonoTime now,
                                                                absl::string_view operation_id,
                                                                uint64_t epoch);
  // The operation failed with `error`: PENDING (a STOP failure: ERROR). The
  // jail is then taken to be on the target (RESTART), still on its old host
  // (MIGRATE, FAILOVER) or, after a failed first START, still unplaced.
  absl::StatusOr<std::vector<JailTransition>> OperationFailed(MonoTime now,
                                                              absl::string_view operation_id,
                                                              absl::string_view error);
  // A heartbeat of `host` did (`running`) or did not list the jail, and
  // reported (`storage_lapsed`) that the storage lease of the jail's image
  // lapsed there; it arrived at `observed_at` (default `now`). Only reports
  // from the jail's own host matter, outside any operation, and only those
  // that arrived observe_grace after the phase began (an older snapshot
  // proves nothing — also after the coordinator was away, when `now` is
  // much later than the last report).
  absl::StatusOr<std::vector<JailTransition>> ObservedOnHost(
      MonoTime now, absl::string_view host, bool running, bool storage_lapsed = false,
      std::optional<MonoTime> observed_at = std::nullopt);
  // Decides what to do now. May itself move the jail to ERROR when the
  // budget is exhausted (the transition is returned).
  absl::StatusOr<JailUpdate> Evaluate(MonoTime now, HostLookup hosts);

  // --- Queries. ---

  const std::string& name() const { return name_; }
  v1::JailPhase phase() const { return phase_; }
  MonoTime since() const { return since_; }
  const std::string& reason() const { return reason_; }
  // Where it runs, ran last, or is being moved from; empty = never placed.
  const std::string& host() const { return host_; }
  // The operation acting on it; empty = none.
  const std::string& operation_id() const { return op_id_; }
  // That operation's target host.
  const std::string& operation_target() const { return op_target_; }
  // Its host reports its storage lease lapsed (RUNNING there).
  bool storage_lapsed() const { return storage_lapsed_; }
  uint64_t epoch() const { return epoch_; }
  const EffectivePolicy& policy() const { return policy_; }
  // True when the jail's host is UNREACHABLE or FENCED (`host_state`) and the jail is
  // RUNNING or PENDING there with no operation acting on it. Ignores the
  // budget (Evaluate applies it).
  bool NeedsFailover(v1::HostState host_state) const;
  // Automatic restarts and failovers started within the window ending at
  // `now`.
  int BudgetUsed(MonoTime now) const;

  // Fills phase, host, reason, operation_id, since, restarts_in_window and
  // epoch of `status` (monotonic times converted through the pair
  // `mono_now`, `wall_now`).
  void ToStatus(MonoTime mono_now, absl::Time wall_now, v1::JailStatus* status) const;

 private:
  JailTracker(std::string name, EffectivePolicy policy, std::string preferred,
              JailTrackerConfig config, MonoTime now);

  absl::Status CheckTime(MonoTime now);
  void SetPhase(v1::JailPhase phase, MonoTime now, std::string reason,
                std::vector<JailTransition>* out);
  // A restart or failover decision, or ERROR when the budget is spent.
  JailDecision Recover(JailAction action, MonoTime now, std::string why,
                       std::vector<JailTransition>* out);
  void DropExpiredAttempts(MonoTime now);

  std::string name_;
  EffectivePolicy policy_;
  std::string preferred_;
  JailTrackerConfig config_;
  v1::JailPhase phase_ = v1::JAIL_PHASE_PENDING;
  MonoTime since_;
  std::string reason_;
  MonoTime last_input_;
  std::string host_;
  uint64_t epoch_ = 0;
  // The operation acting on the jail.
  std::string op_id_;
  v1::OperationKind op_kind_ = v1::OPERATION_KIND_UNSPECIFIED;
  std::string op_target_;
  // PENDING on host_ after a failed operation: whether the jail still runs
  // there is unknown until the host's next heartbeat.
  bool unconfirmed_ = false;
  // RUNNING on host_, whose last heartbeat said its storage lease lapsed.
  bool storage_lapsed_ = false;
  // Start times of automatic restarts and failovers, oldest first.
  std::deque<MonoTime> attempts_;
};

}  // namespace jailover::coordinator::cluster

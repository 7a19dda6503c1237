// HostTracker: the coordinator's pure state machine of one host's membership
// (lease, failure detection, fencing, drain and maintenance). It does no I/O,
// reads no clock and starts no thread: every input carries `now`, a point of
// the Clock's monotonic time (Clock::MonotonicNow), and every output is data
// — the transitions of the host's state, with reasons, that the caller turns
// into events and persists, and queries the operations engine acts on.
//
// States (v1::HostState) and exact thresholds, with `age` = now - the last
// lease renewal (Register or Heartbeat):
//   READY       lease current.
//   SUSPECT     age >= suspect_after (default 1.5 x renew_interval: one whole
//               heartbeat missed, with half an interval of slack for jitter).
//               The next heartbeat returns the host to READY. Nothing moves.
//   UNREACHABLE age >= ttl. NeedsFencing() is true: the caller fails the
//               host's jails over, each failover fencing the host at the
//               storage host first (BeginFencing marks that). A heartbeat
//               before that returns the host to READY (nothing moved); one
//               during a failover of it (BeginFencing .. EndFencing or
//               StorageFencingDone) does not: a host whose jails are being
//               moved never returns to READY by heartbeating.
//   FENCED      StorageFencingDone (a failover's storage fence: its grants
//               revoked, connections cut — failed_over()), or age >= ttl +
//               safety_margin (by time), or MarkFenced by an operator
//               (audited: who and why), or a heartbeat reporting that the
//               agent fenced itself. A FENCED host that heartbeats again
//               stays FENCED ("returned") until Readmit, which is refused
//               while its agent still reports a running jail, an imported
//               image or a VIP it is CARP master of — except that a host
//               fenced by itself or by time, that no failover moved jails off
//               (not failed_over(), none in progress) and that no operator
//               fenced, is readmitted automatically by its next heartbeat
//               (it was cut off while nobody could fail it over: a
//               coordinator or network outage; its jails are still its own),
//               unless its agent fenced itself and reports something still
//               running. TakeAutoReadmission() says so, the reason is
//               audited. A heartbeat of a READY host reporting that its agent
//               fenced itself is the same case.
//   DRAINING / MAINTENANCE
//               administrative modes, shown while the host is otherwise
//               READY; a failure (SUSPECT, UNREACHABLE, FENCED) is shown
//               instead and the mode returns with the host. DRAINING (takes
//               no new jails; the caller migrates its jails away) lasts
//               until Undrain. MAINTENANCE (held out of service; the caller
//               drains it first) lasts until EndMaintenance or until its
//               optional expiry, after which the host is READY again (not
//               DRAINING): expiry means "back in service".
//   UNSPECIFIED before the agent's first Register.
//
// Agents measure their lease from when they sent the renewal, the tracker
// from when it arrived, so an agent's lease always ends first. When the
// coordinator itself was away (CoordinatorAway: its process or store
// stalled), every lease is extended by the time it was away: nobody is
// failed over for the coordinator's own absence.
//
// Every input is evaluated after first applying the timeouts up to `now`, so
// the result does not depend on how often Tick is called: a heartbeat that
// arrives after the ttl first makes the host UNREACHABLE, then READY again.
// Inputs whose `now` is older than a previous input's are refused
// (InvalidArgument); refused inputs change nothing.
//
// Thread-compatible: not thread-safe; the caller serialises access.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/names.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::cluster {

// The monotonic time of common::Clock::MonotonicNow().
using MonoTime = std::chrono::steady_clock::time_point;

// Lease and fencing timing of all hosts.
struct HostTrackerConfig {
  // Lease time to live: UNREACHABLE after this long without a heartbeat.
  absl::Duration ttl = absl::Seconds(3);
  // How often agents send heartbeats (sent to them in each LeaseGrant).
  absl::Duration renew_interval = absl::Milliseconds(500);
  // SUSPECT after this long without a heartbeat; zero = 1.5 x renew_interval.
  absl::Duration suspect_after = absl::ZeroDuration();
  // FENCED by time only after ttl + safety_margin without a heartbeat. Must
  // cover the agent's self-fence (stopping its jails within their stop
  // timeouts, unmounting, detaching) and clock rate differences.
  absl::Duration safety_margin = absl::Seconds(10);

  // suspect_after with its default applied.
  absl::Duration SuspectAfter() const;
  // OK, or InvalidArgument naming the field: all durations positive
  // (safety_margin may be zero), renew_interval < suspect_after < ttl.
  absl::Status Validate() const;
  // Coordinators on etcd: OK if agents' leases outlast a takeover by a
  // standby under a leadership lease of `election_ttl`; else InvalidArgument
  // saying what to raise.
  absl::Status CheckTakeoverFits(absl::Duration election_ttl) const;
};

// One change of the host's state, for the event log.
struct HostTransition {
  v1::HostState from = v1::HOST_STATE_UNSPECIFIED;
  v1::HostState to = v1::HOST_STATE_UNSPECIFIED;
  MonoTime at;
  std::string reason;
};

class HostTracker {
 public:
  // A host that no agent has registered for yet (UNSPECIFIED). `config`
  // must be valid (see HostTrackerConfig::Validate); `name` is for messages.
  HostTracker(std::string name, HostTrackerConfig config, MonoTime now);

  // A tracker rebuilt after a coordinator restart or takeover from the
  // persisted status (state, reason, fenced_by, failed_over). A FENCED host
  // stays FENCED (not "returned" until it heartbeats); any other host —
  // UNREACHABLE too: its lease may have lapsed only because the coordinator
  // was away — gets a grace of a fresh lease from `now` (its agent has one
  // ttl to reconnect, during which it is not even SUSPECT) and is not
  // usable for placement before its first heartbeat. (A failover of it that
  // was in progress resumes, and the
  // caller marks it with BeginFencing.) DRAINING and MAINTENANCE are kept; a
  // maintenance expiry is taken from `maintenance_until` if given.
  static absl::StatusOr<HostTracker> Restore(std::string name, HostTrackerConfig config,
                                             MonoTime now, const v1::HostStatus& persisted,
                                             std::optional<MonoTime> maintenance_until);

  // --- Inputs. Each returns the transitions it caused, oldest first. ---

  // The coordinator could not process anything for `away` (its process was
  // stopped, its store stalled), up to `now`: every renewal is moved `away`
  // later (capped at `now`), as if the time had not passed. Then applies the
  // timeouts.
  absl::StatusOr<std::vector<HostTransition>> CoordinatorAway(MonoTime now, absl::Duration away);
  // A failover of the host's jails (after its lease expired) is starting
  // (`detail`: which operation): the host is UNREACHABLE (at least) until it
  // ends, whatever its heartbeats say. A no-op on a host never registered.
  absl::StatusOr<std::vector<HostTransition>> BeginFencing(MonoTime now, absl::string_view detail);
  // That failover ended without fencing the host (it failed before its fence
  // step): its next heartbeat may return it to READY.
  absl::StatusOr<std::vector<HostTransition>> EndFencing(MonoTime now);
  // The agent opened a lease stream: renews the lease. `incarnation`
  // (non-empty) changes when the agent process restarts; a new incarnation
  // of a live host is not a failure (jails outlive the agent process). The
  // last observed state is dropped: the host is not usable for placement,
  // nor readmitted, before the new stream's first heartbeat.
  absl::StatusOr<std::vector<HostTransition>> Register(MonoTime now, absl::string_view incarnation);
  // A lease renewal with what the agent observes. FailedPrecondition before
  // Register.
  absl::StatusOr<std::vector<HostTransition>> Heartbeat(MonoTime now,
                                                        const v1::ObservedState& observed);
  // Applies the timeouts up to `now` (lease and maintenance expiry). Call it
  // at least every renew_interval / 2 for timely detection.
  absl::StatusOr<std::vector<HostTransition>> Tick(MonoTime now);
  // A failover's storage fencing of this host finished (its grants revoked,
  // its storage connections cut); `detail` says what was done ("img1 epoch
  // 7 -> 8"). Accepted in any registered state, as the fence has happened
  // whatever the host's state now; on a FENCED host it only records that
  // jails were moved off it (failed_over(): no automatic readmission).
  absl::StatusOr<std::vector<HostTransition>> StorageFencingDone(MonoTime now,
                                                                 absl::string_view detail);
  // An operator asserts the host cannot write (powered off, port shut).
  // `operator_name` and `reason` are required and kept for the audit trail.
  // Refused (FailedPrecondition) while the host holds a live lease — a host
  // that heartbeats is not fenced by saying so — so only an UNREACHABLE
  // host can be marked; a no-op when already FENCED.
  absl::StatusOr<std::vector<HostTransition>> MarkFenced(MonoTime now,
                                                         absl::string_view operator_name,
                                                         absl::string_view reason);
  // Takes a FENCED host back. FailedPrecondition unless it is FENCED, has
  // heartbeated since it was fenced and its lease is live, and its last
  // observed state has no running jail, no imported image and no VIP it is
  // CARP master of (the message lists what is still there). The caller then
  // sends the agent a Readmit; until a heartbeat shows the agent no longer
  // self-fenced, the host is READY but not usable for placement.
  absl::StatusOr<std::vector<HostTransition>> Readmit(MonoTime now, absl::string_view operator_name,
                                                      absl::string_view reason);
  // Enters DRAINING (from any state; shown once the host is READY). A
  // no-op when already draining; FailedPrecondition in maintenance.
  absl::StatusOr<std::vector<HostTransition>> Drain(MonoTime now, absl::string_view reason);
  // Leaves DRAINING; a no-op when not draining; FailedPrecondition in
  // maintenance (use EndMaintenance).
  absl::StatusOr<std::vector<HostTransition>> Undrain(MonoTime now, absl::string_view reason);
  // Enters (or extends) MAINTENANCE, until `until` if given (which must lie
  // after `now`, else InvalidArgument), else until EndMaintenance. Replaces
  // DRAINING.
  absl::StatusOr<std::vector<HostTransition>> SetMaintenance(MonoTime now,
                                                             std::optional<MonoTime> until,
                                                             absl::string_view reason);
  // Leaves MAINTENANCE; a no-op when not in maintenance.
  absl::StatusOr<std::vector<HostTransition>> EndMaintenance(MonoTime now,
                                                             absl::string_view reason);

  // --- Queries (as of the last input). ---

  const std::string& name() const { return name_; }
  // The state shown to users and used for decisions.
  v1::HostState state() const;
  // When the current state() began, and why.
  MonoTime since() const { return since_; }
  const std::string& reason() const { return reason_; }
  // READY (not draining, not in maintenance), heartbeated at least once
  // since the tracker started, and the agent does not report itself
  // self-fenced.
  bool IsUsableForPlacement() const;
  // UNREACHABLE and not yet fenced: the caller should fence it at the
  // storage layer (or wait for the time fence).
  bool NeedsFencing() const { return liveness_ == v1::HOST_STATE_UNREACHABLE; }
  // FENCED and heartbeating again within the ttl: waiting for Readmit.
  bool returned() const;
  bool draining() const { return admin_ == Admin::kDraining; }
  bool in_maintenance() const { return admin_ == Admin::kMaintenance; }
  // The operator's hold, kept under SUSPECT/UNREACHABLE/FENCED: DRAINING,
  // MAINTENANCE, or UNSPECIFIED for none (HostStatus.admin).
  v1::HostState admin_state() const;
  std::optional<MonoTime> maintenance_until() const { return maintenance_until_; }
  // Who fenced the host, while FENCED: "storage", "agent", "coordinator"
  // (by time) or "operator:NAME".
  const std::string& fenced_by() const { return fenced_by_; }
  // A failover moved jails off the host since it was fenced.
  bool failed_over() const { return failed_over_; }
  // A failover of the host is in progress (BeginFencing).
  bool fencing() const { return fencing_; }
  // The reason of an automatic readmission made by the last input, once:
  // the caller then sends the agent its Readmit.
  std::optional<std::string> TakeAutoReadmission();
  const std::string& incarnation() const { return incarnation_; }
  // The last lease renewal (Register or Heartbeat), if any.
  std::optional<MonoTime> last_renewal() const { return last_renewal_; }
  // When the lease ends if not renewed (last renewal + ttl), and when the
  // host is fenced by time (+ safety margin); nullopt before Register.
  std::optional<MonoTime> lease_expires() const;
  std::optional<MonoTime> fence_deadline() const;
  // What the agent reported in its last heartbeat, if any, and when that
  // heartbeat arrived.
  const std::optional<v1::ObservedState>& observed() const { return observed_; }
  std::optional<MonoTime> observed_at() const { return observed_at_; }
  const HostTrackerConfig& config() const { return config_; }
  // The time of the last input (inputs may not go back in time).
  MonoTime last_input() const { return last_input_; }

  // Fills state, reason, lease_expires, last_heartbeat, agent_incarnation,
  // maintenance_until and observed of `status`, converting monotonic times
  // to wall times through the pair (`mono_now`, `wall_now`) read together:
  // StateToStatus then LeaseToStatus.
  void ToStatus(MonoTime mono_now, absl::Time wall_now, v1::HostStatus* status) const;
  // The state part: state, admin, reason, agent_incarnation, fenced_by,
  // failed_over, maintenance_until.
  void StateToStatus(MonoTime mono_now, absl::Time wall_now, v1::HostStatus* status) const;
  // The lease part: last_heartbeat, lease_expires, observed.
  void LeaseToStatus(MonoTime mono_now, absl::Time wall_now, v1::HostStatus* status) const;

 private:
  enum class Admin { kNone, kDraining, kMaintenance };

  // Runs `change(probe, out)` on a copy advanced to `now` and keeps the copy
  // only if both succeed, so a refused input changes nothing.
  template <typename Change>
  absl::StatusOr<std::vector<HostTransition>> Apply(MonoTime now, Change change);
  // Checks `now` is not older than the last input, then applies the
  // timeouts up to it.
  absl::Status Advance(MonoTime now, std::vector<HostTransition>* out);
  void ApplyTimeouts(MonoTime now, std::vector<HostTransition>* out);
  // Changes liveness_/admin_ and records the transition of state(), if any.
  void SetLiveness(v1::HostState liveness, MonoTime now, std::string reason,
                   std::vector<HostTransition>* out);
  void SetAdmin(Admin admin, MonoTime now, std::string reason, std::vector<HostTransition>* out);
  void Record(v1::HostState before, MonoTime now, std::string reason,
              std::vector<HostTransition>* out);
  void Fence(MonoTime now, std::string by, std::string reason, std::vector<HostTransition>* out);
  // What in the last observed state stops a readmission; "" if nothing.
  std::string StillRunning() const;
  // Readmits automatically if nothing moved the host's jails while it was
  // fenced by itself or by time (see the file comment); true if it did.
  bool AutoReadmit(MonoTime now, const v1::ObservedState& observed,
                   std::vector<HostTransition>* out);

  std::string name_;
  HostTrackerConfig config_;
  // READY, SUSPECT, UNREACHABLE or FENCED (UNSPECIFIED before Register).
  v1::HostState liveness_ = v1::HOST_STATE_UNSPECIFIED;
  Admin admin_ = Admin::kNone;
  std::optional<MonoTime> maintenance_until_;
  MonoTime since_;
  std::string reason_;
  MonoTime last_input_;
  std::optional<MonoTime> last_renewal_;
  std::optional<MonoTime> fenced_at_;
  std::string fenced_by_;
  bool failed_over_ = false;
  bool fencing_ = false;
  // Restored live (Restore) and not heard from since: its grace.
  bool restored_ = false;
  std::optional<std::string> auto_readmitted_;
  std::string incarnation_;
  std::optional<v1::ObservedState> observed_;
  std::optional<MonoTime> observed_at_;
  // After Readmit, until a heartbeat shows the agent no longer self-fenced:
  // a self-fenced report is the agent not yet having processed the Readmit,
  // not a new fence.
  bool awaiting_unfence_ = false;
};

}  // namespace jailover::coordinator::cluster

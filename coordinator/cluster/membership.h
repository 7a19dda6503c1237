// Membership: the coordinator's side of the agents' lease. It owns one
// HostTracker per host, drives it with the lease stream's inputs (Register,
// Heartbeat), the clock (Tick) and operators' commands (MarkFenced, Readmit,
// Drain, Undrain), and persists what the trackers decide in the StateStore:
// every state transition is written as the host's v1::Host (status) together
// with one "host.state" v1::Event per transition, in a single commit guarded
// by a compare on the host key's mod revision. An input is applied to a copy
// of the tracker first and kept only if its commit succeeded, so the store
// never lags behind what the coordinator acts on (a failed Tick is simply
// redone by the next one: the transitions follow from time).
//
// Heartbeats that change no state are not written (they would cost one
// synchronous disk write per host per renew interval); List and Get fill the
// live part of the status (lease expiry, last heartbeat, observed state) from
// the trackers.
//
// Restart safety: Create rebuilds the trackers from the stored hosts with
// HostTracker::Restore, so a FENCED host stays FENCED across a coordinator
// restart, and every other host gets a grace of one ttl to reconnect.
//
// Stall detection (EnableStallDetection): a thread of the caller calls Pulse
// every pulse interval, and does nothing else. When any input finds the last
// pulse older than the threshold, the coordinator itself was away (its
// process stopped or starved, or its store stalled a commit under the lock):
// before that input, every lease is extended by the time away
// (HostTracker::CoordinatorAway) — nobody is failed over for the
// coordinator's own absence, whichever thread runs first when it returns.
//
// Readmission: Readmit (tracker accepted), or a heartbeat that readmitted
// the host automatically (HostTracker::TakeAutoReadmission), marks the
// host's Readmit message as pending; the next Heartbeat of that host returns it, after its grant,
// for the lease stream to send (one writer per stream, no cross-thread
// writes), and so does every later heartbeat that still reports the agent
// self-fenced. A host that is FENCED gets no lease grant.
//
// Thread-safe: one mutex serializes all inputs (store commits included).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "coordinator/cluster/host_tracker.h"
#include "coordinator/cluster/jail_tracker.h"
#include "coordinator/store/state_store.h"
#include "jailover/v1/agent.pb.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::cluster {

// The event type of a host's state transition.
inline constexpr char kHostStateEvent[] = "host.state";
// The event type of an automatic readmission (beside its host.state event,
// if the host was not READY).
inline constexpr char kHostReadmitEvent[] = "host.readmit";

// What the lease stream answers a Register or Heartbeat with.
struct LeaseAnswer {
  // The host's state after the input.
  v1::HostState state = v1::HOST_STATE_UNSPECIFIED;
  // Send a LeaseGrant (false while the host is FENCED: a fenced host gets no
  // lease, so its agent stays or becomes self-fenced).
  bool grant = false;
  // Send a Readmit with this reason after the grant (an operator readmitted
  // the host since its last heartbeat).
  std::optional<std::string> readmit_reason;
  // With a grant: every registered storage host's agent, sorted by host.
  std::vector<v1::StorageAgent> storage_agents;
};

class Membership {
 public:
  // Restores the trackers of every host in `store` and returns the
  // membership. `store` and `clock` are not owned and must outlive it.
  // InvalidArgument for an invalid `config`; the store's errors as they are.
  static absl::StatusOr<std::unique_ptr<Membership>> Create(store::StateStore& store,
                                                            HostTrackerConfig config,
                                                            common::Clock& clock);

  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Forgets the trackers and restores them from the store again, as Create
  // does: a coordinator that just became the leader starts from what the
  // previous leader stored (every live host gets a full ttl from now), and a
  // standby refreshes the view it serves reads from. On error the trackers
  // are left empty (the caller fails over or retries).
  absl::Status Reload();

  // --- The lease stream. ---

  // The first message of an agent's lease stream. Creates the host (or
  // updates its agent address, roles, labels, storage address and facts)
  // and renews its lease. InvalidArgument for a bad host name or a
  // registration without facts.incarnation; nothing changes then.
  absl::StatusOr<LeaseAnswer> Register(const v1::Register& registration);
  // A lease renewal of `host`. NotFound for a host this coordinator does not
  // know (the stream must Register first).
  absl::StatusOr<LeaseAnswer> Heartbeat(absl::string_view host, const v1::ObservedState& observed);

  // Applies the timeouts of every host up to now. Returns the first error
  // (other hosts are still ticked).
  absl::Status Tick();

  // Turns on stall detection (see the file comment): Pulse is then due every
  // `pulse_interval`, and a pulse older than `threshold` means the
  // coordinator was away.
  void EnableStallDetection(absl::Duration pulse_interval, absl::Duration threshold);
  // The stall detector's pulse (cheap).
  void Pulse();

  // --- Operators (audited: the events name `operator_name`). ---

  // See HostTracker::MarkFenced; `reason` is required. Returns the host.
  absl::StatusOr<v1::Host> MarkFenced(absl::string_view host, absl::string_view operator_name,
                                      absl::string_view reason);
  // See HostTracker::Readmit (refused with its message while the agent
  // reports a running jail, an import or a CARP master VIP; an agent that
  // holds nothing never fences itself, so nothing can cross the Readmit).
  absl::StatusOr<v1::Host> Readmit(absl::string_view host, absl::string_view operator_name,
                                   absl::string_view reason);
  absl::StatusOr<v1::Host> Drain(absl::string_view host, absl::string_view operator_name,
                                 absl::string_view reason);
  absl::StatusOr<v1::Host> Undrain(absl::string_view host, absl::string_view operator_name,
                                   absl::string_view reason);

  // Forgets a host whose agent is gone (UNREACHABLE or FENCED) and that no
  // jail (where it runs, its placement) and no image (storage, grant) names;
  // FailedPrecondition saying what still uses it otherwise. An agent that
  // comes back later registers as a new host.
  absl::Status Remove(absl::string_view host, absl::string_view operator_name,
                      absl::string_view reason);

  // Enters maintenance (until `duration` from now, if set) or leaves it.
  absl::StatusOr<v1::Host> SetMaintenance(absl::string_view host, absl::string_view operator_name,
                                          bool enabled, std::optional<absl::Duration> duration,
                                          absl::string_view reason);

  // --- The operations engine. ---

  // A failover of `host`'s jails begins / ended without fencing it (see
  // HostTracker::BeginFencing, EndFencing).
  absl::Status BeginFencing(absl::string_view host, absl::string_view detail);
  absl::Status EndFencing(absl::string_view host);

  // The host can no longer write through its grants (`detail`: which image,
  // which epoch): see HostTracker::StorageFencingDone. Returns the host.
  absl::StatusOr<v1::Host> StorageFencingDone(absl::string_view host, absl::string_view detail);

  // Called (under the membership's lock: it must be quick and not call
  // back) for every persisted transition; for metrics.
  void SetTransitionHook(std::function<void(const HostTransition&)> hook);

  // --- Queries. ---

  // What the jail trackers need of every host, by name.
  std::map<std::string, HostView> HostViews();

  // Every host sorted by name, with its live status; `states` empty = all.
  absl::StatusOr<std::vector<v1::Host>> List(const std::vector<v1::HostState>& states = {});
  // One host; NotFound if unknown.
  absl::StatusOr<v1::Host> Get(absl::string_view host);
  // How many hosts are in each state (states with none are absent).
  std::map<v1::HostState, int> CountByState();
  const HostTrackerConfig& config() const { return config_; }

 private:
  struct Entry {
    explicit Entry(HostTracker t) : tracker(std::move(t)) {}
    HostTracker tracker;
    // Readmit accepted and not yet delivered to the agent.
    std::optional<std::string> pending_readmit;
    // The reason of the last accepted Readmit, until a heartbeat shows the
    // agent no longer self-fenced: while its heartbeats still say
    // self-fenced, the Readmit is sent again (it may have crossed a fence
    // the agent's watchdog started just before).
    std::optional<std::string> readmitted;
    // The agent's address if the host has the storage role, else empty.
    std::string storage_agent;
  };

  Membership(store::StateStore& store, HostTrackerConfig config, common::Clock& clock);
  absl::Status RestoreAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The entry of `host`, or NotFound / InvalidArgument.
  absl::StatusOr<Entry*> FindLocked(absl::string_view host) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the host (re-read from the store, `update` applied, status from
  // `tracker`) and one event per transition in one commit.
  absl::Status PersistLocked(absl::string_view host, const HostTracker& tracker,
                             const std::vector<HostTransition>& transitions,
                             absl::string_view actor,
                             const std::function<void(v1::Host&)>& update, MonoTime mono_now,
                             absl::Time wall_now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `input` on a copy of the host's tracker, persists its transitions
  // and keeps the copy if that succeeded. Returns the host afterwards.
  absl::StatusOr<v1::Host> OperatorInputLocked(
      absl::string_view host, absl::string_view operator_name,
      const std::function<absl::StatusOr<std::vector<HostTransition>>(HostTracker&, MonoTime)>&
          input) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stored host with the tracker's live status.
  absl::StatusOr<v1::Host> ViewLocked(const std::string& name, const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `observed`: the heartbeat's, nullptr for Register (which gets no Readmit).
  LeaseAnswer AnswerLocked(Entry& entry, const v1::ObservedState* observed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::StateStore& store_;  // Not owned.
  const HostTrackerConfig config_;
  common::Clock& clock_;  // Not owned.

  absl::Mutex mu_;
  // If the last pulse is older than the threshold, extends every lease by
  // the time away (persisting the trackers' transitions, if any).
  void CatchUpLocked(MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::map<std::string, std::unique_ptr<Entry>, std::less<>> hosts_ ABSL_GUARDED_BY(mu_);
  // The storage hosts' agents of hosts_ (Entry::storage_agent), for every
  // grant; rebuilt when a host registers, is restored or removed.
  std::vector<v1::StorageAgent> storage_agents_ ABSL_GUARDED_BY(mu_);
  void RebuildStorageAgentsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::function<void(const HostTransition&)> transition_hook_ ABSL_GUARDED_BY(mu_);
  // Stall detection: off while pulse_interval_ is zero.
  absl::Duration pulse_interval_ ABSL_GUARDED_BY(mu_);
  absl::Duration stall_threshold_ ABSL_GUARDED_BY(mu_);
  MonoTime last_pulse_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::coordinator::cluster

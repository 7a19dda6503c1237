// Membership: the coordinator's side of the agents' lease. It owns one
// HostTracker per host, drives it with the lease stream's inputs (Register,
// Heartbeat), the clock (Tick) and operators' commands (MarkFenced, Readmit,
// Drain, Undrain), and persists what the trackers decide in the StateStore:
// every state transition is written as the host's v1::Host (status) together
// with one "host.state" v1::Event per transition, guarded by a compare on the
// host key's mod revision.
//
// The lease path never waits on the store. Inputs change the trackers in
// memory under a lock that is held for microseconds and never across a
// store call; what must be written (a transition, a registration's address
// and facts, an audit event) is queued, and Flush writes every queued host
// in as few commits as the Txn limits allow (group commit), outside that
// lock. Register and Heartbeat only queue (the background persister,
// StartPersister, flushes within milliseconds); Tick, the operators' inputs
// and the engine's return after their own Flush, and report its error (the
// change is kept and written by a later Flush: nothing is lost, nothing is
// acted on before it is stored). A host's liveness is judged on when its
// heartbeats arrived (Heartbeat's `arrived`), not on when this coordinator
// got to them.
//
// What the coordinator acts on is what is stored: List, Get, HostViews and
// CountByState show each host's state as of its last successful commit
// (a host never written yet is not shown), with the live part of the status
// (last heartbeat, lease expiry, observed state) from the tracker. Lease
// answers (grant or not) follow the tracker: granting before the READY is
// stored is safe (a restarted coordinator gives every live host a ttl of
// grace), and refusing one to a FENCED host before it is stored only errs on
// the safe side. Heartbeats that change no state are not written.
//
// Restart safety: Create rebuilds the trackers from the stored hosts with
// HostTracker::Restore, so a FENCED host stays FENCED across a coordinator
// restart, and every other host gets a grace of one ttl to reconnect.
//
// Stall detection (EnableStallDetection): a thread of the caller calls Pulse
// every pulse interval, and does nothing else. When any input finds the last
// pulse older than the threshold, the coordinator itself was away (its
// process stopped or starved): before that input, every lease is extended by
// the time away (HostTracker::CoordinatorAway) — nobody is failed over for
// the coordinator's own absence, whichever thread runs first when it returns.
//
// Readmission: Readmit (tracker accepted), or a heartbeat that readmitted
// the host automatically (HostTracker::TakeAutoReadmission), marks the
// host's Readmit message as pending; the next Heartbeat of that host returns it, after its grant,
// for the lease stream to send (one writer per stream, no cross-thread
// writes), and so does every later heartbeat that still reports the agent
// self-fenced. A host that is FENCED gets no lease grant.
//
// Thread-safe. Locks: persist_mu_ (one Flush, Remove or Reload at a time)
// before mu_ (the trackers; never held across a store call).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
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
  // Stops the persister and flushes what is still queued.
  ~Membership();

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
  // A lease renewal of `host`, received at `arrived` (now if unset; a time
  // before the tracker's last input counts as that input's). NotFound for a
  // host this coordinator does not know (the stream must Register first).
  absl::StatusOr<LeaseAnswer> Heartbeat(absl::string_view host, const v1::ObservedState& observed,
                                        std::optional<MonoTime> arrived = std::nullopt);

  // Applies the timeouts of every host up to now, then flushes. Returns the
  // first error (other hosts are still ticked).
  absl::Status Tick();

  // Writes every queued change (see the file comment) in as few commits as
  // the Txn limits allow. OK when nothing is queued; else the first commit
  // error (what failed stays queued).
  absl::Status Flush();
  // Starts a thread that flushes whenever something is queued (after an
  // error, again every `retry`), until the membership is destroyed.
  void StartPersister(absl::Duration retry = absl::Milliseconds(200));
  // How many hosts have changes not yet stored.
  size_t queued() ABSL_LOCKS_EXCLUDED(mu_);

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

  // Queues `event` (about a known host, event.host()) to be stored with
  // that host's next write, without waiting for the store (the lease path
  // audits through it). An event of an unknown host is logged and dropped.
  void Audit(v1::Event event);

  // Called (under the membership's lock: it must be quick and not call
  // back) for every stored transition; for metrics.
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
  struct QueuedEvent {
    v1::Event event;
    std::optional<HostTransition> transition;
  };
  struct Entry {
    explicit Entry(HostTracker t) : tracker(std::move(t)) {}
    // The live tracker: lease answers follow it.
    HostTracker tracker;
    // The tracker as of the last successful commit (nullopt: never stored):
    // what the coordinator acts on.
    std::optional<HostTracker> stored;
    // The host's registration data (address, roles, labels, facts) as
    // stored or to be stored; its status is filled from the tracker.
    v1::Host record;
    // mod_revision of the host's key (0: not in the store).
    int64_t mod_revision = 0;
    // Changes to store: `version` counts them (a host stays queued until a
    // commit took its latest version); the events not yet committed, oldest
    // first, each with its transition if it records one (logged and
    // counted once stored).
    uint64_t version = 0;
    std::vector<QueuedEvent> events;
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
  // One host's queued changes, as taken by Flush.
  struct Pending;

  Membership(store::StateStore& store, HostTrackerConfig config, common::Clock& clock);
  // Reads every stored host and replaces the trackers with them.
  absl::Status RestoreAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(persist_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(persist_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits `batch` (one Txn); on success marks the entries stored.
  absl::Status CommitBatch(std::vector<Pending>& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(persist_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  void PersisterLoop(absl::Duration retry);

  // The entry of `host`, or NotFound / InvalidArgument.
  absl::StatusOr<Entry*> FindLocked(absl::string_view host) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the host's record (with the status of its tracker, already
  // changed) and one event per transition for the next Flush; `update`
  // changes the record. Nothing is queued without a transition or update.
  void RecordLocked(const std::string& host, Entry& entry, std::vector<HostTransition> transitions,
                    absl::string_view actor, const std::function<void(v1::Host&)>& update = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the host's record, and `event` if set (no state change).
  void RecordEventLocked(const std::string& host, Entry& entry, std::optional<v1::Event> event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `input` on the host's tracker (all or nothing), queues what it
  // changed, flushes, and returns the host afterwards.
  absl::StatusOr<v1::Host> OperatorInput(
      absl::string_view host, absl::string_view operator_name,
      const std::function<absl::StatusOr<std::vector<HostTransition>>(HostTracker&, MonoTime)>&
          input,
      const std::function<void(Entry&)>& after = nullptr) ABSL_LOCKS_EXCLUDED(mu_);
  // The stored host with the tracker's live status; NotFound if never stored.
  absl::StatusOr<v1::Host> ViewLocked(const std::string& name, const Entry& entry,
                                      MonoTime mono_now, absl::Time wall_now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `observed`: the heartbeat's, nullptr for Register (which gets no Readmit).
  LeaseAnswer AnswerLocked(Entry& entry, const v1::ObservedState* observed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // If the last pulse is older than the threshold, extends every lease by
  // the time away (queuing the trackers' transitions, if any).
  void CatchUpLocked(MonoTime now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::StateStore& store_;  // Not owned.
  const HostTrackerConfig config_;
  common::Clock& clock_;  // Not owned.

  absl::Mutex persist_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> hosts_ ABSL_GUARDED_BY(mu_);
  // Hosts with queued changes.
  std::set<std::string> queued_ ABSL_GUARDED_BY(mu_);
  // The storage hosts' agents of hosts_ (Entry::storage_agent), for every
  // grant; rebuilt when a host registers, is restored or removed.
  std::vector<v1::StorageAgent> storage_agents_ ABSL_GUARDED_BY(mu_);
  void RebuildStorageAgentsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::function<void(const HostTransition&)> transition_hook_ ABSL_GUARDED_BY(mu_);
  // Stall detection: off while pulse_interval_ is zero.
  absl::Duration pulse_interval_ ABSL_GUARDED_BY(mu_);
  absl::Duration stall_threshold_ ABSL_GUARDED_BY(mu_);
  MonoTime last_pulse_ ABSL_GUARDED_BY(mu_);
  // The persister thread (StartPersister).
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread persister_;
};

}  // namespace jailover::coordinator::cluster

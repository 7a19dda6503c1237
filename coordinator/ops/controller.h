// Controller: the coordinator's automation. It keeps one JailTracker per
// defined jail (restored from the store at start-up), feeds them what the
// hosts' heartbeats report, and on every Reconcile (the tick, ~10 per second)
// turns their decisions into operations run by the Engine:
//   - a jail never placed → START on its preferred host (or the planner's
//     choice); after a failed start, again after 5 s, doubling up to 5 min;
//   - a jail down on a live host → RESTART (within its policy budget);
//   - a jail whose host's lease expired (UNREACHABLE) or that is FENCED →
//     FAILOVER, planned for the whole failed host at once (PlanHostFailure,
//     so the standbys share the load exactly as `jailoverctl plan fail-host`
//     shows); the failover's first step fences the host from the image. The
//     host is marked as being fenced (Membership::BeginFencing) for as long
//     as such a failover runs, so no heartbeat returns it to READY;
//   - a jail whose live host lost its storage lease (the host cannot reach
//     the storage host; the jail is not ready there) → FAILOVER of that jail
//     alone (PlanFailover: the old host is cleaned up), once the storage host
//     has been READY for a ttl;
//   - a jail down on a live host whose image is still imported there →
//     RESTART; whose image its host released (a fence) → START in place at
//     epoch + 1 (PlanStart on that host);
//   - a jail on a DRAINING or MAINTENANCE host → planned MIGRATION;
//   - failback (policy AUTO) → MIGRATION back to the preferred host.
// A plan with an ERROR problem is not started; its reason is logged (once
// per change) and kept as the decision's reason.
//
// It is the single writer of the jails' status (phase, host, epoch,
// operation): every tracker transition is persisted with a "jail.phase"
// event. As the engine's OperationObserver it records the phases its steps
// ask for, ends the trackers' operations, and marks a host whose lease
// failed FENCED once its failover's fence step took an image away from it
// (Membership::StorageFencingDone; Operation.fences_host).
//
// One serving host (Evictions): a heartbeat that shows a jail running, or a
// VIP held as CARP master, where the coordinator has not placed it gets an
// Evict for that host (audited once as a "host.evict" event).
//
// The view the planner works on takes an image's grant epoch from its
// storage host's report when that is newer than the store's (a grant step
// whose record was lost), so the next grant is always newer than what the
// storage host enforces.
//
// Thread-safe: one mutex for the trackers (store commits included).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/time/clock.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/cluster/jail_tracker.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/ops/engine.h"
#include "coordinator/ops/planner.h"
#include "coordinator/store/state_store.h"
#include "jailover/v1/coordinator.pb.h"

namespace jailover::coordinator::ops {

// Metrics hooks (all optional).
struct ControllerHooks {
  std::function<void(const v1::Operation&, const v1::OperationStep&, absl::Duration)> step_ended;
  std::function<void(const v1::Operation&, absl::Duration)> operation_ended;
};

struct ControllerOptions {
  // Agents' jail root (mount points of jails whose spec has none).
  std::string jail_root = std::string(kDefaultJailRoot);
  cluster::JailTrackerConfig jail_tracker;
  ControllerHooks hooks;
};

class Controller final : public OperationObserver {
 public:
  // Restores a tracker for every jail in `store`. Not owned, must outlive it:
  // store, membership, clock.
  static absl::StatusOr<std::unique_ptr<Controller>> Create(store::StateStore& store,
                                                            cluster::Membership& membership,
                                                            common::Clock& clock,
                                                            ControllerOptions options);
  // The engine that runs the operations and the catalog of definitions (set
  // once, before Reconcile; not owned).
  void SetEngine(Engine* engine);
  void SetCatalog(catalog::Catalog* catalog);

  // One round of automation (see the file comment).
  absl::Status Reconcile();

  // --- Operators' requests (each plans first; a plan with an ERROR problem
  // is refused with FailedPrecondition listing the problems). ---
  absl::StatusOr<v1::Operation> Migrate(const std::string& jail, const std::string& to_host,
                                        const std::string& reason, const std::string& requested_by);
  // `to_host` empty = the planner's choice.
  absl::StatusOr<v1::Operation> Failover(const std::string& jail, const std::string& to_host,
                                         const std::string& reason,
                                         const std::string& requested_by);
  absl::StatusOr<v1::Operation> Restart(const std::string& jail, const std::string& reason,
                                        const std::string& requested_by);
  // Deletes a jail: a jail that runs nowhere is forgotten at once (nullopt);
  // otherwise a STOP operation starts and the definition is forgotten when it
  // succeeds (its reason starts with kDeleteReason, so this survives a
  // coordinator restart).
  absl::StatusOr<std::optional<v1::Operation>> Delete(const std::string& jail,
                                                      const std::string& requested_by);
  // The dry run.
  absl::StatusOr<v1::PlanResponse> Plan(const v1::PlanRequest& request);
  absl::StatusOr<std::string> RenderPlan(const v1::PlanRequest& request);

  // Forgets the jail trackers and restores them from the store, as Create
  // does (after Membership::Reload, at a takeover or a standby's refresh).
  absl::Status Reload();
  // As the leader begins (before the engine resumes operations): marks the
  // hosts of unfinished failovers of failed hosts as being fenced
  // (Membership::BeginFencing), so that none returns to READY meanwhile.
  // Writes to the store: a leader only.
  absl::Status RestoreFencing();

  // The current snapshot the planner works on.
  absl::StatusOr<ClusterView> View();
  // What `host` must stop or give up, judged from the heartbeat `observed`
  // it just sent (see the file comment); nullopt when nothing. `term`: the
  // coordinator's.
  std::optional<v1::Evict> Evictions(const std::string& host, const v1::ObservedState& observed,
                                     uint64_t term);
  // Jails by phase name, for status and metrics.
  std::map<std::string, int> JailsByPhase();

  // OperationObserver.
  absl::Status OperationStarted(const v1::Operation& op) override;
  absl::Status RecordPhase(const v1::Operation& op, const Step& step) override;
  void HostFencedFromImage(const v1::Operation& op, const std::string& host,
                           const std::string& image, const std::string& detail) override;
  void StepEnded(const v1::Operation& op, const v1::OperationStep& step,
                 absl::Duration duration) override;
  void OperationEnded(const v1::Operation& op, absl::Duration duration) override;

 private:
  Controller(store::StateStore& store, cluster::Membership& membership, common::Clock& clock,
             ControllerOptions options);

  absl::StatusOr<ClusterView> ViewLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates trackers for new jails, updates definitions, drops deleted ones.
  absl::Status SyncTrackersLocked(const ClusterView& view) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the tracker's status into the stored jail with one "jail.phase"
  // event per transition.
  absl::Status PersistLocked(const cluster::JailTracker& tracker,
                             const std::vector<cluster::JailTransition>& transitions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts `planned` and tells its tracker. `problems` of the plan refuse it.
  absl::StatusOr<v1::Operation> StartLocked(const ops::Plan& plan, const PlannedOperation& planned,
                                            const std::string& reason,
                                            const std::string& requested_by, bool automatic)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An operator's operation on `jail`, planned by `plan_of`.
  absl::StatusOr<v1::Operation> OperatorOperationLocked(
      const std::string& jail,
      const std::function<absl::StatusOr<ops::Plan>(const ClusterView&)>& plan_of,
      const std::string& reason, const std::string& requested_by)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs `message` for `jail` unless it is what was logged last.
  void NoteLocked(const std::string& jail, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the hosts of unfinished failovers of failed hosts as being fenced
  // (after a restart or takeover).
  absl::Status RestoreFencingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The view's images take the grant their storage host reports when it is
  // newer than the stored one.
  void TrustStorageGrantsLocked(ClusterView& view) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends a "host.evict" event.
  void AuditEviction(const std::string& host, const std::string& jail, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(placements_mu_);
  // Publishes the trackers' placements for Evictions.
  void PublishPlacementsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::StateStore& store_;         // Not owned.
  cluster::Membership& membership_;  // Not owned.
  common::Clock& clock_;             // Not owned.
  const ControllerOptions options_;

  absl::Mutex mu_;
  Engine* engine_ ABSL_GUARDED_BY(mu_) = nullptr;
  catalog::Catalog* catalog_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<std::string, cluster::JailTracker> trackers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> noted_ ABSL_GUARDED_BY(mu_);
  // After a failed automatic first start: not before `at`; the next delay.
  struct Backoff {
    cluster::MonoTime at;
    absl::Duration delay;
  };
  std::map<std::string, Backoff> start_backoff_ ABSL_GUARDED_BY(mu_);
  // Unfinished failovers of failed hosts, by host: operation ids.
  std::map<std::string, std::set<std::string>> fencing_ops_ ABSL_GUARDED_BY(mu_);
  // From the last view: each jail's image and VIP.
  std::map<std::string, std::string> jail_image_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> vip_jail_ ABSL_GUARDED_BY(mu_);
  // What Evictions reads (published after every reconcile): where each jail
  // is placed, and the jail of each VIP.
  struct Placement {
    std::string host;
    std::string image;
    uint64_t epoch = 0;
    v1::JailPhase phase = v1::JAIL_PHASE_UNSPECIFIED;
    cluster::MonoTime since;
    // The host an operation in progress moves or starts the jail to (empty
    // without an operation).
    std::string operation_target;
  };
  absl::Mutex placements_mu_;
  std::map<std::string, Placement> placements_ ABSL_GUARDED_BY(placements_mu_);
  std::map<std::string, std::string> vip_placements_ ABSL_GUARDED_BY(placements_mu_);
  // Evictions already audited, by host: "jail@epoch" and "vip:NAME".
  std::map<std::string, std::set<std::string>> evicted_ ABSL_GUARDED_BY(placements_mu_);
  // Storage grants already logged as newer than the store's: "image@epoch".
  std::set<std::string> trusted_grants_ ABSL_GUARDED_BY(mu_);
};

// The reason of a STOP operation started by Delete.
inline constexpr char kDeleteReason[] = "delete requested by ";

// Operation problems as one line: "ERROR: ...; WARNING: ...".
std::string DescribeProblems(const ops::Plan& plan, const std::string& jail);

}  // namespace jailover::coordinator::ops

// The operations planner: the exact, ordered steps of a failover, a planned
// migration, a drain, a host failure or a restart, the placement decisions
// with their reasons, and the problems that stand in the way — computed as
// pure functions of a snapshot of the cluster (ClusterView). No I/O, no clock,
// no randomness: the same view gives the same plan, byte for byte.
//
// One source of truth: the dry run (`jailoverctl plan`, Coordinator.Plan)
// renders a Plan, and the operations engine executes the very same Plan's
// steps, in order, one agent call (or one coordinator record) per Step. A Step
// therefore carries every argument of its call (host, image, epoch, grant,
// endpoint, mount point, advskew); what it does not carry (the jail's spec,
// the VipSpec with its password) the engine reads from the store by name.
//
// Failover of jail J from P to standby S (image I on storage host T, grant
// epoch E):
//   fence    T ExportImage(I, grant {S, addr(S), E+1})  revokes P, cuts P,
//            and returns once P knows (its storage lease says MOVED) or its
//            storage lease ran out
//   import   S ImportImage(I, E+1, endpoint, remote path, filesystem)
//   fsck     S FsckImage(I, E+1)
//   mount    S MountImage(I, E+1, mount point)
//   create   S CreateJail(J, spec, I, E+1, vip)
//   start    S StartJail(J, I, E+1)
//   vip      S ConfigureVip(vip, advskew 0)               S becomes CARP master
//   [only when P is still reachable (a manual failover of a live host), all
//    best effort: demote the VIP on P (SetVipAdvskew to its backup advskew, or
//    RemoveVip), StopJail, DestroyJail, UnmountImage(force), ReleaseImage(force)
//    on P with epoch E — P's disk is already cut by the fence]
//   probe    S jail running and healthy on the VIP
//   running  coordinator records J RUNNING on S at epoch E+1
// Planned migration (P alive) has no fence and a graceful order:
//   not-ready (coordinator records MIGRATING: P's LB health is NOT_SERVING
//   from here), stop, destroy, unmount, release on P at epoch E; grant: T
//   ExportImage(I, grant {S, E+1}) (also cuts P); import, fsck, mount, create,
//   start on S; vip S -> 0; vip-demote on P; vip-claim on S (S takes the
//   address now that P gave it up, rather than after CARP's master-down
//   interval of silence); probe; running.
// Restart: stop, destroy, create (from the current spec), start, probe,
// running on the same host and epoch.
//
// Advskew (CARP: lowest advertises, preemption on): the host running the jail
// has kMasterAdvskew (0). Any other host keeping the jail's VIP has
// kBackupAdvskewBase + its rank in [preferred host, standbys...] (100 for the
// preferred host, 101 for the first standby, ...), so the next failover
// target is also the next CARP master. A host in neither list has the VIP
// removed when the jail leaves it.
//
// Standby choice (ChooseStandby): candidates are the preferred host and the
// ordered standbys, minus the excluded hosts (the current / failing host);
// hosts that are unknown, lack the jail role or are not READY are skipped.
// Among the remaining candidates the least loaded wins (load = jails placed
// there plus those this plan already moves there), ties going to the earlier
// candidate — so the order is respected until a standby carries more jails
// than another. With no usable candidate, the least loaded READY host with
// the jail role wins (ties by name). None at all is a problem, not an error.
//
// Problems are data (v1::PlanProblem). An ERROR problem for a jail means the
// real event would leave it down; its operation is `blocked` and the engine
// must not start it (the steps are still listed when a target is known, e.g.
// when the storage host is not READY and the failover must wait for it).
// Invalid input is an error: an unknown jail or host is NotFound, a bad name
// or an inconsistent view InvalidArgument.
//
// Thread-safety: stateless free functions over const inputs; safe to call
// concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "jailover/v1/coordinator.pb.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::ops {

// CARP advskew of the host that runs a jail.
inline constexpr uint32_t kMasterAdvskew = 0;
// Base advskew of hosts that keep a jail's VIP as backups (+ rank).
inline constexpr uint32_t kBackupAdvskewBase = 100;
// Highest advskew CARP accepts.
inline constexpr uint32_t kMaxAdvskew = 254;
// Agents' default jail root (AgentCoreOptions::jail_root): mount points of
// jails whose spec sets none are <jail root>/<jail name>.
inline constexpr absl::string_view kDefaultJailRoot = "/var/jailover/jails";

// A snapshot of the coordinator's state, keyed by object name (the key must
// equal the object's name). Built by the caller from the state store.
struct ClusterView {
  std::map<std::string, v1::Host> hosts;
  std::map<std::string, v1::Image> images;
  std::map<std::string, v1::Jail> jails;
  // By VIP name.
  std::map<std::string, v1::VipSpec> vips;
  // Agents' jail root, for jails whose spec has no mount_point.
  std::string jail_root = std::string(kDefaultJailRoot);
};

// What one step does. Each is exactly one agent RPC on `Step::host`, except
// kRecordPhase and kProbe, which the coordinator performs itself.
enum class StepAction {
  // Coordinator: record the jail's phase (`phase`) on `host`, at `epoch`.
  kRecordPhase,
  // StopJail(jail, image, epoch) on host (graceful, or with `force` killed
  // after 1 s; the agent's LB health turns NOT_SERVING as the stop begins).
  kStopJail,
  // DestroyJail(jail) on host.
  kDestroyJail,
  // UnmountImage(image, epoch, force).
  kUnmountImage,
  // ReleaseImage(image, epoch, force).
  kReleaseImage,
  // ExportImage(image, Grant{grant_host, grant_address, epoch}) on the
  // storage host: grants the new host and cuts every other (fencing).
  kExportImage,
  // ImportImage(image, epoch, endpoint, remote_path, filesystem). The
  // endpoint returned by the preceding kExportImage step, if any, wins over
  // the planned one (which is the image's last known export endpoint).
  kImportImage,
  // FsckImage(image, epoch); FSCK_RESULT_FAILED fails the step.
  kFsckImage,
  // MountImage(image, epoch, mount_point).
  kMountImage,
  // CreateJail(jail, spec from the store, image, epoch, VipSpec `vip`).
  kCreateJail,
  // StartJail(jail, image, epoch).
  kStartJail,
  // ConfigureVip(VipSpec `vip` from the store, advskew): adds or updates.
  kConfigureVip,
  // SetVipAdvskew(vip, advskew).
  kSetVipAdvskew,
  // RemoveVip(vip).
  kRemoveVip,
  // Coordinator: the jail runs on host and, if the spec has a health_port,
  // answers on VIP:health_port.
  kProbe,
  // CreateImage(ImageSpec from the store) on the storage host: creates the
  // backing file and its filesystem if missing (a no-op otherwise).
  kCreateImage,
};

// One step, with every argument of its call. Fields not used by the action
// are empty / zero.
struct Step {
  StepAction action = StepAction::kProbe;
  // OperationStep.name: "fence", "grant", "import", "fsck", "mount", "create",
  // "start", "vip", "vip-demote", "vip-claim", "stop", "destroy", "unmount", "release",
  // "not-ready", "probe", "running".
  std::string name;
  // The agent called, or the host the coordinator records / probes.
  std::string host;
  std::string jail;
  std::string image;
  // Epoch the call carries (for kExportImage: the new grant's epoch).
  uint64_t epoch = 0;
  // kExportImage: the epoch being replaced, and whose grant it was.
  uint64_t previous_epoch = 0;
  std::string previous_grant_host;
  // kExportImage: the granted host and its storage address.
  std::string grant_host;
  std::string grant_address;
  // kImportImage.
  std::string endpoint;
  std::string remote_path;
  v1::Filesystem filesystem = v1::FILESYSTEM_UNSPECIFIED;
  // kMountImage.
  std::string mount_point;
  // kConfigureVip, kSetVipAdvskew, kRemoveVip, kCreateJail: the VIP's name.
  std::string vip;
  uint32_t advskew = 0;
  // kConfigureVip: take the address now (the previous master released it).
  bool claim = false;
  // kExportImage: wait until the previous holder knows its grant moved (or
  // its storage lease ran out) before answering: a failover's fence, and a
  // start's grant away from an earlier holder.
  bool await_previous_holder = false;
  // kUnmountImage, kReleaseImage: even when busy; kStopJail: killed after
  // 1 s instead of the jail's stop timeout (a cleanup after a fence).
  bool force = false;
  // kRecordPhase.
  v1::JailPhase phase = v1::JAIL_PHASE_UNSPECIFIED;
  // A failure is logged and the operation continues (cleanup of a host that
  // may be misbehaving).
  bool best_effort = false;
  // For humans: "ExportImage web-img to h2 (10.0.0.2) at epoch 8, ...".
  std::string description;
};

// One operation the engine would start: a failover, migration or restart of
// one jail.
struct PlannedOperation {
  v1::OperationKind kind = v1::OPERATION_KIND_UNSPECIFIED;
  std::string jail;
  std::string from_host;
  // Empty when no target could be chosen (then `steps` is empty).
  std::string to_host;
  std::string image;
  // The image's grant epoch before, and the epoch the jail runs under after.
  uint64_t old_epoch = 0;
  uint64_t new_epoch = 0;
  // An ERROR problem names this jail: the engine must not start it.
  bool blocked = false;
  // A failover off a failed host (v1::Operation.fences_host).
  bool fences_host = false;
  std::vector<Step> steps;
};

// The answer to one scenario.
struct Plan {
  // The scenario: FAILOVER (of a jail, or of every jail of a failed host),
  // MIGRATE, DRAIN or RESTART.
  v1::OperationKind kind = v1::OPERATION_KIND_UNSPECIFIED;
  // "fail host h1", "migrate web to h3", ...
  std::string title;
  std::vector<PlannedOperation> operations;
  std::vector<v1::PlacementChoice> choices;
  std::vector<v1::PlanProblem> problems;

  // True if any problem has SEVERITY_ERROR.
  bool HasErrors() const;
};

// The outcome of ChooseStandby.
struct StandbyChoice {
  // Empty = none possible; `problem` then says why.
  std::string host;
  // One line per candidate considered, in order.
  std::vector<std::string> considered;
  std::optional<v1::PlanProblem> problem;
};

// Load per host: jails whose status names the host and whose phase is not
// STOPPED or UNSPECIFIED.
std::map<std::string, int> HostLoads(const ClusterView& view);

// Chooses where `jail` should run, never on a host in `excluded` (host ->
// why, e.g. "current host", "failing host"), with `load` as the load per host
// (HostLoads plus what the caller already planned). NotFound for an unknown
// jail.
absl::StatusOr<StandbyChoice> ChooseStandby(const ClusterView& view, absl::string_view jail,
                                            const std::map<std::string, std::string>& excluded,
                                            const std::map<std::string, int>& load);

// Failover of one jail off its current host (which may be alive: then it is
// cleaned up best effort after the fence).
absl::StatusOr<Plan> PlanFailover(const ClusterView& view, absl::string_view jail);

// What happens if `host` fails now: a failover of every jail on it, each to
// its own standby, with the load already planned accounted for; plus the
// jails elsewhere whose image is stored on `host`.
absl::StatusOr<Plan> PlanHostFailure(const ClusterView& view, absl::string_view host);

// Planned migration of `jail` to `target` (empty = let the planner choose).
absl::StatusOr<Plan> PlanMigration(const ClusterView& view, absl::string_view jail,
                                   absl::string_view target);

// Moves every jail off `host` by planned migration.
absl::StatusOr<Plan> PlanDrain(const ClusterView& view, absl::string_view host);

// Stop and start of `jail` on its current host.
absl::StatusOr<Plan> PlanRestart(const ClusterView& view, absl::string_view jail);

// Stop of `jail` where it runs (for a delete): VIP removed there (best
// effort), stop, destroy, unmount, release, STOPPED recorded.
absl::StatusOr<Plan> PlanStop(const ClusterView& view, absl::string_view jail);

// Start of a jail on `target` (empty = the preferred host if READY, else the
// planner's choice): create-image (if missing), grant (epoch + 1), import,
// fsck, mount, create, start, vip (master), vip-backup on the other READY
// hosts of its placement (best effort, advskew 100 + rank), probe, running.
// For a jail never placed; and for a jail placed on `target` that is not
// running there and whose image is no longer imported there (its host
// fenced it): a restart in place at epoch + 1, after clearing what is left
// of it there.
absl::StatusOr<Plan> PlanStart(const ClusterView& view, absl::string_view jail,
                               absl::string_view target);

// The Plan RPC's answer.
v1::PlanResponse ToPlanResponse(const Plan& plan);

// The operation the engine persists before running `planned` (state PENDING,
// one OperationStep per Step with its full call, detail = the step's
// description; image and epochs). The caller sets id, reason, requested_by,
// automatic and created.
v1::Operation ToOperation(const PlannedOperation& planned);

// A Step's call as persisted, and back: StepFromOperationStep(step with
// call ToStepCall(s), name and host of s) == s, description aside (taken
// from the step's detail).
v1::StepCall ToStepCall(const Step& step);
absl::StatusOr<Step> StepFromOperationStep(const v1::OperationStep& step);

// The text `jailoverctl plan` prints: title, numbered steps, placement
// choices with reasons, problems.
std::string RenderPlan(const Plan& plan);

}  // namespace jailover::coordinator::ops

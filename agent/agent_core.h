// AgentCore: what jailover-agent does for each Agent RPC, on top of the host
// drivers. It enforces the agent's rules so that no driver has to:
// - requests are validated before anything happens (INVALID_ARGUMENT);
// - a call from an older coordinator term is refused (FAILED_PRECONDITION);
// - one operation at a time per jail, image and VIP (ABORTED);
// - a repeated operation id returns the first result (RunIdempotent), also
//   while self-fenced;
// - a self-fenced agent refuses new mutating calls (UNAVAILABLE) until
//   readmitted;
// - a call carrying an epoch older than the newest seen for its image is
//   refused (FAILED_PRECONDITION) and changes nothing;
// - what the agent owns is persisted in the AgentStateStore.
// It also carries out the lease's decisions (LeaseTracker, through
// LeaseClient): fencing the jails of one image (FenceImage) or the whole host
// (SelfFence), and, on the storage side, answers the storage leases of the
// hosts it exports to (RenewStorageLease) from the grants it enforces.
// The gRPC service is a thin adapter over this class. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/vip_driver.h"
#include "agent/lease_tracker.h"
#include "agent/state/agent_state_store.h"
#include "agent/state/operation_guard.h"
#include "common/time/clock.h"
#include "jailover/v1/agent.pb.h"

namespace jailover::agent {

// What the lease says about one imported image (LeaseClient implements it).
class LeaseOracle {
 public:
  virtual ~LeaseOracle() = default;
  // Empty when the leases let the image's jails be ready, else why not.
  virtual std::string NotReadyReason(const std::string& image) = 0;
  // The image's storage lease for heartbeats, and its age (zero if none).
  virtual v1::StorageLeaseState StorageLeaseOf(const std::string& image, absl::Duration* age) = 0;
};

struct AgentCoreOptions {
  std::string host_name;
  // Jails' mount points must lie below this directory.
  std::string jail_root = "/var/jailover/jails";
  // Image files must lie below this directory (storage role).
  std::string image_root = "/var/jailover/images";
  // Grace for StopJail when neither the request nor the spec sets one.
  absl::Duration default_stop_grace = absl::Seconds(30);
  // I/O timeout for ImportImage when the request sets none.
  absl::Duration default_io_timeout = absl::Seconds(5);
  // Storage side: how long a jail host's storage lease may have been granted
  // by a previous run of this agent (its renewals' ttl is not remembered
  // across a restart), for ExportImage's await_previous_holder.
  absl::Duration lease_ttl = absl::Seconds(3);
  // TESTS ONLY, UNSAFE: every holder's storage lease is answered CURRENT and
  // a grant moving away does not wait for the previous holder (no storage
  // fence), to show that the chaos checker catches two writers.
  bool unsafe_skip_storage_fence_for_testing = false;
};

class AgentCore {
 public:
  // Nothing is owned; all must outlive the core.
  AgentCore(AgentCoreOptions options, AgentStateStore& store, JailDriver& jails, DiskDriver& disks,
            VipDriver& vips, common::Clock& clock);

  // Jails.
  absl::Status CreateJail(const v1::CreateJailRequest& request, v1::CreateJailResponse* response);
  absl::Status StartJail(const v1::StartJailRequest& request, v1::StartJailResponse* response);
  absl::Status StopJail(const v1::StopJailRequest& request, v1::StopJailResponse* response);
  absl::Status DestroyJail(const v1::DestroyJailRequest& request,
                           v1::DestroyJailResponse* response);
  absl::Status ListJails(v1::ListAgentJailsResponse* response);
  // Runs argv in the jail. Its output is never stored: a call repeated with
  // the same operation id does not run the command again and gets the first
  // call's exit code with empty output, *_truncated set where there was some.
  absl::Status ExecInJail(const v1::ExecInJailRequest& request, v1::ExecInJailResponse* response);

  // Images, storage side.
  absl::Status CreateImage(const v1::CreateImageRequest& request,
                           v1::CreateImageResponse* response);
  absl::Status AttachImage(const v1::AttachImageRequest& request,
                           v1::AttachImageResponse* response);
  absl::Status DetachImage(const v1::DetachImageRequest& request,
                           v1::DetachImageResponse* response);
  absl::Status ExportImage(const v1::ExportImageRequest& request,
                           v1::ExportImageResponse* response);
  absl::Status UnexportImage(const v1::UnexportImageRequest& request,
                             v1::UnexportImageResponse* response);
  // The storage lease of the images `request.host` holds (see agent.proto).
  // Read-only; answered while self-fenced too.
  absl::Status RenewStorageLease(const v1::RenewStorageLeaseRequest& request,
                                 v1::RenewStorageLeaseResponse* response);

  // Images, jail side.
  absl::Status ImportImage(const v1::ImportImageRequest& request,
                           v1::ImportImageResponse* response);
  absl::Status ReleaseImage(const v1::ReleaseImageRequest& request,
                            v1::ReleaseImageResponse* response);
  absl::Status FsckImage(const v1::FsckImageRequest& request, v1::FsckImageResponse* response);
  absl::Status MountImage(const v1::MountImageRequest& request, v1::MountImageResponse* response);
  absl::Status UnmountImage(const v1::UnmountImageRequest& request,
                            v1::UnmountImageResponse* response);

  // VIPs.
  absl::Status ConfigureVip(const v1::ConfigureVipRequest& request,
                            v1::ConfigureVipResponse* response);
  absl::Status RemoveVip(const v1::RemoveVipRequest& request, v1::RemoveVipResponse* response);
  absl::Status SetVipAdvskew(const v1::SetVipAdvskewRequest& request,
                             v1::SetVipAdvskewResponse* response);
  absl::Status GetVipState(const v1::GetVipStateRequest& request,
                           v1::GetVipStateResponse* response);

  // Readiness for load balancers: OK only when `name` runs on this host, is
  // not being stopped, and this host is CARP MASTER of the jail's VIP.
  // Otherwise Unavailable (or NotFound/InvalidArgument) with a one-line
  // reason. A StopJail marks the jail not ready before it stops it.
  absl::Status JailReady(const std::string& name);
  // Whether the agent is self-fenced (for /healthz and heartbeats).
  bool self_fenced() const;

  // Neither the coordinator lease nor any storage lease is left: refuse new
  // work (persisted, so a restart stays fenced) and fence everything — every
  // jail of its own marked not ready, its VIP removed, the jail stopped;
  // every import unmounted and released; every VIP removed, so this host
  // cannot be CARP master of them. Runs every step even when one fails (each
  // failure is logged) and returns the first error. Does not wait for object
  // locks: fencing wins over work in progress.
  absl::Status SelfFence(const std::string& reason);
  // Fences the jails of one image, if it is still imported under `epoch`
  // (0 = any): each jail that uses it is marked not ready, its VIP removed,
  // the jail stopped (killed if needed); the image is unmounted and released
  // (forced); then a jail whose stop failed (stuck on the lost disk) is
  // stopped again. Logged as "fence: ..." with `reason`. Not a host fence:
  // the agent keeps accepting work.
  absl::Status FenceImage(const std::string& image, uint64_t epoch, const std::string& reason);
  // FenceImage of several images as one fence: every jail of them is not
  // ready and every VIP of them removed before any jail is stopped or any
  // image released, so no VIP waits for another image's release (a forced
  // release of an import whose storage host cut it takes seconds).
  absl::Status FenceImages(const std::vector<ImageFence>& fences);
  // The coordinator's Evict (agent.proto): fences each listed jail whose
  // image this host holds under an older epoch than the given one, and
  // removes each listed VIP that no started jail of its own uses; refuses
  // (logs) the rest. Returns the first error.
  absl::Status Evict(const v1::Evict& evict);
  // The images this host holds for its jails, for the lease: every import
  // (witnessed by the storage agent it names, if any), and the image of
  // every started jail that has no import (unwitnessed).
  std::map<std::string, HeldImage> HeldImages();
  // Readiness and heartbeats ask `oracle` about the leases (not owned; set
  // once before serving, or never: then leases are not consulted).
  void SetLeaseOracle(LeaseOracle* oracle);
  // The coordinator readmitted this host: accept work again.
  absl::Status Readmit(const std::string& reason);
  // A lease grant (or readmission) came from a coordinator in `term`:
  // records it if newer (persisted; calls from older terms are refused from
  // then on), FailedPrecondition if older than a term already seen (a
  // deposed leader: its grant must not keep this host's lease alive).
  absl::Status AcceptCoordinatorTerm(uint64_t term);
  // At start-up: compares what the state file says this agent owns with
  // what the drivers report (jails running, devices imported, exports
  // serving, VIPs present), corrects the records where the OS has the last
  // word (a jail recorded as started that no longer runs; an import whose
  // device is gone) and logs every difference, so a restarted agent neither
  // forgets nor duplicates. Returns the number of differences found.
  // FailedPrecondition, nothing changed, if the state knows nothing (no
  // jail, image, VIP or epoch: the file was new or emptied) while the
  // drivers show jailover's jails (under the jail root), imports or
  // exports: the state file was lost, and the agent must not start without
  // its epochs (the message lists what was found and how to recover).
  absl::StatusOr<int> Reconcile();

  // A CARP state change from the VIP driver as the API reports it (with the
  // VIP's name when this agent configured that vhid).
  v1::CarpTransition DescribeCarpTransition(const CarpTransition& transition);
  // Forgets the driver listings readiness reuses (see CachedJails); called
  // after every mutating call and on CARP transitions.
  void ClearReadinessCache();
  // Names of the jails this agent defined.
  std::vector<std::string> JailNames();
  // What this host runs and holds, for heartbeats.
  absl::StatusOr<v1::ObservedState> Observe();

 private:
  // The common frame of every mutating call: check the coordinator term,
  // lock `lock_key`, answer a repeated id from its record, refuse while
  // self-fenced, then RunIdempotent.
  absl::Status Mutate(const v1::OperationContext& context, const char* method,
                      const std::string& lock_key, google::protobuf::Message* response,
                      const std::function<absl::Status()>& action,
                      const RecordedForm& recorded_form = nullptr);
  // The stored image `name`, NotFound if this agent does not know it.
  absl::StatusOr<jailover::internal::OwnedImage> OwnedImageOrNotFound(const std::string& name);
  absl::StatusOr<ImageFile> StoredImageFile(const std::string& name);
  absl::StatusOr<ImportSource> StoredImportSource(const std::string& name);
  // Driver listings for readiness, reused for kReadinessCacheTtl: health is
  // polled often (load balancers, the gRPC health refresher) and each
  // listing runs a tool. Any mutating call clears the cache.
  absl::StatusOr<std::vector<JailInfo>> CachedJails();
  absl::StatusOr<std::vector<CarpStatus>> CachedCarp(const std::string& interface);

  const AgentCoreOptions options_;
  AgentStateStore& store_;  // Not owned.
  JailDriver& jails_;       // Not owned.
  DiskDriver& disks_;       // Not owned.
  VipDriver& vips_;         // Not owned.
  common::Clock& clock_;    // Not owned.
  // Stops `jails`, removing `vips` first, then unmounts and releases
  // `images`; `what` prefixes every log line ("self-fence", "fence",
  // "evict").
  absl::Status StopAndRelease(const std::set<std::string>& jails,
                              const std::set<std::string>& images,
                              const std::set<std::string>& vips, const std::string& what);
  // The jails of `state` a fence stops: those recorded started and those the
  // driver lists as running, whatever the record says (a crash between start
  // and record must not leave one running). A failed listing is logged and
  // returned in `*listed`.
  std::set<std::string> JailsToStop(const internal::AgentState& state, const std::string& what,
                                    absl::Status* listed);
  // Storage side: the last CURRENT answer to the holder of an image's grant.
  struct HolderLease {
    std::string host;
    uint64_t epoch = 0;
    std::chrono::steady_clock::time_point answered;
    absl::Duration ttl;
    // Answered MOVED since the grant began to move away from it.
    bool told_moved = false;
  };
  // Waits (up to the holder's lease) until the previous holder of `image`'s
  // grant, `previous` at `epoch`, was told it moved; fills the response.
  void AwaitPreviousHolder(const std::string& image, const v1::Grant& previous,
                           v1::ExportImageResponse* response);

  ObjectLocks locks_;
  const std::chrono::steady_clock::time_point started_;
  absl::Mutex mu_;
  LeaseOracle* oracle_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Mutex holders_mu_;
  std::map<std::string, HolderLease> holders_ ABSL_GUARDED_BY(holders_mu_);
  // Images whose grant is being moved, to the epoch being granted: a
  // renewal for any other host or epoch is answered MOVED from the moment
  // the move begins (before the driver cuts the old holder).
  std::map<std::string, v1::Grant> moving_ ABSL_GUARDED_BY(holders_mu_);
  // Jails being stopped: not ready even while their processes still run.
  std::set<std::string> stopping_ ABSL_GUARDED_BY(mu_);
  std::optional<std::pair<absl::Time, std::vector<JailInfo>>> cached_jails_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<absl::Time, std::vector<CarpStatus>>> cached_carp_
      ABSL_GUARDED_BY(mu_);
};

// How long readiness reuses a driver listing.
inline constexpr absl::Duration kReadinessCacheTtl = absl::Milliseconds(250);

// Conversions between the API's messages and the drivers' structs, and the
// validation of what crosses the API edge. Pure; exposed for tests.
// JailConfigFromSpec also enforces the bounds of state_limits.h on the spec
// (it is stored as given): InvalidArgument naming the field and the limit.
absl::StatusOr<JailConfig> JailConfigFromSpec(const std::string& name, const v1::JailSpec& spec,
                                              const v1::VipSpec& vip,
                                              const std::string& jail_root);
absl::StatusOr<VipConfig> VipConfigFromSpec(const v1::VipSpec& vip, uint32_t advskew);

}  // namespace jailover::agent

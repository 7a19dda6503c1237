// AgentCore: what jailover-agent does for each Agent RPC, on top of the host
// drivers. It enforces the agent's rules so that no driver has to:
// - requests are validated before anything happens (INVALID_ARGUMENT);
// - a self-fenced agent refuses mutating calls (UNAVAILABLE) until readmitted;
// - a call from an older coordinator term is refused (FAILED_PRECONDITION);
// - one operation at a time per jail, image and VIP (ABORTED);
// - a repeated operation id returns the first result (RunIdempotent);
// - a call carrying an epoch older than the newest seen for its image is
//   refused (FAILED_PRECONDITION) and changes nothing;
// - what the agent owns is persisted in the AgentStateStore.
// The gRPC service is a thin adapter over this class. Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/driver/disk_driver.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/vip_driver.h"
#include "agent/state/agent_state_store.h"
#include "agent/state/operation_guard.h"
#include "common/time/clock.h"
#include "jailover/v1/agent.pb.h"

namespace jailover::agent {

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

  // The lease was lost: refuse new work (persisted, so a restart stays
  // fenced), stop every jail this agent started, unmount and release its
  // imports, and remove its VIPs so this host cannot be CARP master of them.
  // Runs every step even when one fails (each failure is logged) and
  // returns the first error. Does not wait for object locks: fencing wins
  // over work in progress.
  absl::Status SelfFence(const std::string& reason);
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
  // The common frame of every mutating call: refuse while self-fenced,
  // check the coordinator term, lock `lock_key`, then RunIdempotent.
  absl::Status Mutate(const v1::OperationContext& context, const char* method,
                      const std::string& lock_key, google::protobuf::Message* response,
                      const std::function<absl::Status()>& action);
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
  ObjectLocks locks_;
  absl::Mutex mu_;
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
absl::StatusOr<JailConfig> JailConfigFromSpec(const std::string& name, const v1::JailSpec& spec,
                                              const v1::VipSpec& vip,
                                              const std::string& jail_root);
absl::StatusOr<VipConfig> VipConfigFromSpec(const v1::VipSpec& vip, uint32_t advskew);

}  // namespace jailover::agent

// CoordinatorService: the jailover.v1.Coordinator gRPC service. A thin
// adapter: it validates requests and calls the domain objects (Membership
// for the lease stream and the host RPCs); no policy lives here. RPCs not
// implemented yet answer UNIMPLEMENTED (the generated default).
//
// The lease stream (Lease): the first message must be Register (else
// INVALID_ARGUMENT); each Register and Heartbeat is answered with a
// LeaseGrant carrying the configured ttl and renew interval — except while
// the host is FENCED: a fenced host gets no grant, so its agent fences itself
// (or stays fenced) until an operator readmits it (ReadmitHost), after which
// the next heartbeat is answered with a grant followed by a Readmit. When the
// stream ends nothing happens: the lease simply lapses.
//
// Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/http/metrics.h"
#include "coordinator/ops/controller.h"
#include "coordinator/store/state_store.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::coordinator {

// What the service reports about the process serving it.
struct CoordinatorIdentity {
  std::string name;
  absl::Time started;
};

// How GetClusterStatus describes the state store.
struct StoreDescription {
  // "sqlite" or "etcd".
  std::string kind;
  // e.g. the SQLite file's path.
  std::string detail;
};

// Leadership of a coordinator that shares its store with standbys (etcd).
// Without it (SQLite) the coordinator always leads, in term 0.
struct Leadership {
  // OK while this coordinator leads; else Unavailable naming the leader (a
  // standby serves reads and refuses what would change state).
  std::function<absl::Status()> check;
  // The term (fencing token) sent in lease grants and readmissions.
  std::function<uint64_t()> term;
  // Fills term, leader, followers and the store's health in a status.
  std::function<void(jailover::v1::GetClusterStatusResponse*)> describe;
};

class CoordinatorService final : public jailover::v1::Coordinator::Service {
 public:
  // `clock`, `membership` and `store` are not owned and must outlive the
  // service.
  CoordinatorService(CoordinatorIdentity identity, common::Clock& clock,
                     cluster::Membership& membership, store::StateStore& store,
                     ops::Controller& controller, catalog::Catalog& catalog,
                     StoreDescription store_description, Metrics* metrics = nullptr);

  // The HOST:PORT this coordinator listens on, known once the server has
  // bound its port (after the service was registered).
  void SetListenAddress(std::string address);
  // Before the server starts serving.
  void SetLeadership(Leadership leadership);

  // jailover::v1::Coordinator::Service
  grpc::Status Lease(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<jailover::v1::CoordinatorMessage, jailover::v1::AgentMessage>*
          stream) override;
  grpc::Status ListHosts(grpc::ServerContext* context,
                         const jailover::v1::ListHostsRequest* request,
                         jailover::v1::ListHostsResponse* response) override;
  grpc::Status GetHost(grpc::ServerContext* context, const jailover::v1::GetHostRequest* request,
                       jailover::v1::GetHostResponse* response) override;
  grpc::Status MarkHostFenced(grpc::ServerContext* context,
                              const jailover::v1::MarkHostFencedRequest* request,
                              jailover::v1::MarkHostFencedResponse* response) override;
  grpc::Status ReadmitHost(grpc::ServerContext* context,
                           const jailover::v1::ReadmitHostRequest* request,
                           jailover::v1::ReadmitHostResponse* response) override;
  // Marks the host DRAINING; the controller then migrates its jails away,
  // one operation per jail (followed with ListOperations --host). No single
  // operation is returned.
  grpc::Status DrainHost(grpc::ServerContext* context,
                         const jailover::v1::DrainHostRequest* request,
                         jailover::v1::DrainHostResponse* response) override;
  grpc::Status UndrainHost(grpc::ServerContext* context,
                           const jailover::v1::UndrainHostRequest* request,
                           jailover::v1::UndrainHostResponse* response) override;
  grpc::Status ApplyImage(grpc::ServerContext* context,
                          const jailover::v1::ApplyImageRequest* request,
                          jailover::v1::ApplyImageResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context,
                          const jailover::v1::ListImagesRequest* request,
                          jailover::v1::ListImagesResponse* response) override;
  grpc::Status GetImage(grpc::ServerContext* context, const jailover::v1::GetImageRequest* request,
                        jailover::v1::GetImageResponse* response) override;
  grpc::Status DeleteImage(grpc::ServerContext* context,
                           const jailover::v1::DeleteImageRequest* request,
                           jailover::v1::DeleteImageResponse* response) override;
  grpc::Status ApplyVip(grpc::ServerContext* context, const jailover::v1::ApplyVipRequest* request,
                        jailover::v1::ApplyVipResponse* response) override;
  grpc::Status ListVips(grpc::ServerContext* context, const jailover::v1::ListVipsRequest* request,
                        jailover::v1::ListVipsResponse* response) override;
  grpc::Status DeleteVip(grpc::ServerContext* context,
                         const jailover::v1::DeleteVipRequest* request,
                         jailover::v1::DeleteVipResponse* response) override;
  // Stores the definition; a new jail is started by the controller at once
  // (the START operation is returned), a running jail whose spec changed is
  // restarted in place (re-created from the new spec).
  grpc::Status ApplyJail(grpc::ServerContext* context,
                         const jailover::v1::ApplyJailRequest* request,
                         jailover::v1::ApplyJailResponse* response) override;
  grpc::Status DeleteJail(grpc::ServerContext* context,
                          const jailover::v1::DeleteJailRequest* request,
                          jailover::v1::DeleteJailResponse* response) override;
  // Not supported: hosts register through their agent's lease stream.
  grpc::Status RegisterHost(grpc::ServerContext* context,
                            const jailover::v1::RegisterHostRequest* request,
                            jailover::v1::RegisterHostResponse* response) override;
  grpc::Status RemoveHost(grpc::ServerContext* context,
                          const jailover::v1::RemoveHostRequest* request,
                          jailover::v1::RemoveHostResponse* response) override;
  grpc::Status SetMaintenance(grpc::ServerContext* context,
                              const jailover::v1::SetMaintenanceRequest* request,
                              jailover::v1::SetMaintenanceResponse* response) override;
  grpc::Status ListJails(grpc::ServerContext* context,
                         const jailover::v1::ListJailsRequest* request,
                         jailover::v1::ListJailsResponse* response) override;
  grpc::Status GetJail(grpc::ServerContext* context, const jailover::v1::GetJailRequest* request,
                       jailover::v1::GetJailResponse* response) override;
  grpc::Status RestartJail(grpc::ServerContext* context,
                           const jailover::v1::RestartJailRequest* request,
                           jailover::v1::RestartJailResponse* response) override;
  grpc::Status Migrate(grpc::ServerContext* context, const jailover::v1::MigrateRequest* request,
                       jailover::v1::MigrateResponse* response) override;
  grpc::Status Failover(grpc::ServerContext* context,
                        const jailover::v1::FailoverRequest* request,
                        jailover::v1::FailoverResponse* response) override;
  grpc::Status Plan(grpc::ServerContext* context, const jailover::v1::PlanRequest* request,
                    jailover::v1::PlanResponse* response) override;
  grpc::Status ListOperations(grpc::ServerContext* context,
                              const jailover::v1::ListOperationsRequest* request,
                              jailover::v1::ListOperationsResponse* response) override;
  grpc::Status GetOperation(grpc::ServerContext* context,
                            const jailover::v1::GetOperationRequest* request,
                            jailover::v1::GetOperationResponse* response) override;
  grpc::Status WatchEvents(grpc::ServerContext* context,
                           const jailover::v1::WatchEventsRequest* request,
                           grpc::ServerWriter<jailover::v1::Event>* writer) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const jailover::v1::GetClusterStatusRequest* request,
                                jailover::v1::GetClusterStatusResponse* response) override;

 private:
  // Fills each host's status.jails: the jails placed on it (not STOPPED).
  void AddPlacedJails(std::vector<v1::Host>& hosts);

  const CoordinatorIdentity identity_;
  common::Clock& clock_;                 // Not owned.
  cluster::Membership& membership_;      // Not owned.
  store::StateStore& store_;             // Not owned.
  ops::Controller& controller_;          // Not owned.
  catalog::Catalog& catalog_;            // Not owned.
  Metrics* const metrics_;               // Not owned; may be null.
  const StoreDescription store_description_;
  // Unavailable (as a gRPC status) unless this coordinator leads.
  grpc::Status CheckLeader();
  uint64_t Term();
  Leadership leadership_;  // Set before serving, then read-only.
  absl::Mutex mu_;
  std::string listen_address_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::coordinator

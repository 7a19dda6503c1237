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

#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "coordinator/cluster/membership.h"
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

class CoordinatorService final : public jailover::v1::Coordinator::Service {
 public:
  // `clock`, `membership` and `store` are not owned and must outlive the
  // service.
  CoordinatorService(CoordinatorIdentity identity, common::Clock& clock,
                     cluster::Membership& membership, store::StateStore& store,
                     StoreDescription store_description);

  // The HOST:PORT this coordinator listens on, known once the server has
  // bound its port (after the service was registered).
  void SetListenAddress(std::string address);

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
  // Marks the host DRAINING. No operation is returned yet: moving its jails
  // away belongs to the operations engine.
  grpc::Status DrainHost(grpc::ServerContext* context,
                         const jailover::v1::DrainHostRequest* request,
                         jailover::v1::DrainHostResponse* response) override;
  grpc::Status UndrainHost(grpc::ServerContext* context,
                           const jailover::v1::UndrainHostRequest* request,
                           jailover::v1::UndrainHostResponse* response) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const jailover::v1::GetClusterStatusRequest* request,
                                jailover::v1::GetClusterStatusResponse* response) override;

 private:
  const CoordinatorIdentity identity_;
  common::Clock& clock_;                 // Not owned.
  cluster::Membership& membership_;      // Not owned.
  store::StateStore& store_;             // Not owned.
  const StoreDescription store_description_;
  absl::Mutex mu_;
  std::string listen_address_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::coordinator

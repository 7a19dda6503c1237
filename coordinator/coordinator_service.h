// CoordinatorService: the jailover.v1.Coordinator gRPC service. A thin
// adapter: it validates requests and calls the domain objects; no policy
// lives here. RPCs not implemented yet answer UNIMPLEMENTED (the generated
// default). Thread-safe.
#pragma once

#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/time/clock.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace jailover::coordinator {

// What the service reports about the process serving it.
struct CoordinatorIdentity {
  std::string name;
  absl::Time started;
};

class CoordinatorService final : public jailover::v1::Coordinator::Service {
 public:
  // `clock` is not owned and must outlive the service.
  CoordinatorService(CoordinatorIdentity identity, common::Clock& clock);

  // The HOST:PORT this coordinator listens on, known once the server has
  // bound its port (after the service was registered).
  void SetListenAddress(std::string address);

  // jailover::v1::Coordinator::Service
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const jailover::v1::GetClusterStatusRequest* request,
                                jailover::v1::GetClusterStatusResponse* response) override;

 private:
  const CoordinatorIdentity identity_;
  common::Clock& clock_;  // Not owned.
  absl::Mutex mu_;
  std::string listen_address_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jailover::coordinator

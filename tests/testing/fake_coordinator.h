// FakeCoordinator: a jailover.v1.Coordinator whose only real RPC is Lease,
// for testing the agent's side of the lease. It grants a lease for every
// heartbeat unless silenced, records what agents reported, and can send a
// Readmit. Runs a real gRPC server on 127.0.0.1 (port chosen by the OS).
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jailover/v1/coordinator.grpc.pb.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace jailover::testing {

class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  // Grants carry this ttl and renew interval.
  FakeCoordinator(absl::Duration ttl, absl::Duration renew_interval);
  ~FakeCoordinator() override;

  // Starts serving; returns "127.0.0.1:PORT".
  std::string Start();
  void Stop();

  // While silenced, heartbeats are read but not answered.
  void SetSilenced(bool silenced);
  // Sends a Readmit on the open stream (if any).
  void Readmit(const std::string& reason);

  int heartbeats();
  // The last Register and the last observed state received.
  v1::Register last_register();
  v1::ObservedState last_observed();
  std::vector<v1::CarpTransition> transitions();

  // v1::Coordinator::Service
  grpc::Status Lease(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>* stream)
      override;

 private:
  const absl::Duration ttl_;
  const absl::Duration renew_interval_;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool silenced_ ABSL_GUARDED_BY(mu_) = false;
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  v1::Register last_register_ ABSL_GUARDED_BY(mu_);
  v1::ObservedState last_observed_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CarpTransition> transitions_ ABSL_GUARDED_BY(mu_);
  grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::AgentMessage>* stream_
      ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace jailover::testing

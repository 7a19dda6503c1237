// CoordinatorServer: a running jailover-coordinator — its gRPC server
// (Coordinator service and grpc.health.v1) built from CoordinatorOptions.
// Start-up and shutdown are driven by common::RunDaemonMain.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/daemon/daemon_main.h"
#include "common/daemon/grpc_server.h"
#include "common/time/clock.h"
#include "coordinator/coordinator_options.h"

namespace jailover::coordinator {

class CoordinatorService;

class CoordinatorServer final : public common::Daemon {
 public:
  // Builds and starts the coordinator. `clock` is not owned and must outlive it.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Create(
      const CoordinatorOptions& options, common::Clock& clock);
  ~CoordinatorServer() override;


  // common::Daemon
  void Shutdown(absl::Duration deadline) override;

 private:
  CoordinatorServer() = default;

  std::unique_ptr<CoordinatorService> service_;  // Owned.
  std::unique_ptr<common::GrpcServer> grpc_;     // Owned; uses service_.
};

}  // namespace jailover::coordinator

// CoordinatorServer: a running jailover-coordinator — its state store
// (SQLite in --data_dir), the hosts' membership restored from it, the gRPC
// server (Coordinator service and grpc.health.v1) and the tick thread that
// applies lease timeouts every 100 ms. Built from CoordinatorOptions;
// start-up and shutdown are driven by common::RunDaemonMain.
#pragma once

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/daemon/daemon_main.h"
#include "common/daemon/grpc_server.h"
#include "common/time/clock.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/store/sqlite_store.h"

namespace jailover::coordinator {

class CoordinatorService;

class CoordinatorServer final : public common::Daemon {
 public:
  // Builds and starts the coordinator. `clock` is not owned and must outlive it.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Create(
      const CoordinatorOptions& options, common::Clock& clock);
  ~CoordinatorServer() override;

  // common::Daemon. Stops the tick thread, then the gRPC server.
  void Shutdown(absl::Duration deadline) override;

 private:
  CoordinatorServer() = default;
  void TickLoop();

  // Destroyed in reverse order: the server first, the store last.
  std::unique_ptr<store::SqliteStore> store_;        // Owned.
  std::unique_ptr<cluster::Membership> membership_;  // Owned; uses store_.
  std::unique_ptr<CoordinatorService> service_;      // Owned; uses membership_, store_.
  std::unique_ptr<common::GrpcServer> grpc_;         // Owned; uses service_.
  absl::Notification stop_ticking_;
  std::thread tick_thread_;
};

}  // namespace jailover::coordinator

// CoordinatorServer: a running jailover-coordinator — its state store
// (SQLite in --data_dir), the hosts' membership restored from it, the gRPC
// server (Coordinator service and grpc.health.v1), the operations engine
// (resuming what a previous run left unfinished) and the tick thread that
// applies lease timeouts and runs the controller's automation every 100 ms. Built from CoordinatorOptions;
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
#include "coordinator/http/coordinator_http.h"
#include "coordinator/http/metrics.h"
#include "coordinator/ops/agent_caller.h"
#include "coordinator/ops/controller.h"
#include "coordinator/ops/engine.h"
#include "coordinator/store/sqlite_store.h"

namespace jailover::coordinator {

class CoordinatorService;

class CoordinatorServer final : public common::Daemon {
 public:
  // Builds and starts the coordinator. `clock` is not owned and must outlive it.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Create(
      const CoordinatorOptions& options, common::Clock& clock);
  ~CoordinatorServer() override;

  // common::Daemon. Stops the tick thread, the engine's workers (their
  // operations resume at the next start), then the gRPC server.
  void Shutdown(absl::Duration deadline) override;

 private:
  CoordinatorServer() = default;
  void TickLoop();
  // Refreshes the gauges and renders /metrics.
  std::string RenderMetrics();

  // Destroyed in reverse order: the server first, the store last.
  std::unique_ptr<store::SqliteStore> store_;        // Owned.
  std::unique_ptr<Metrics> metrics_;                 // Owned.
  std::unique_ptr<cluster::Membership> membership_;  // Owned; uses store_.
  std::unique_ptr<catalog::Catalog> catalog_;        // Owned; uses store_.
  std::unique_ptr<ops::Controller> controller_;      // Owned; uses membership_, store_.
  std::unique_ptr<ops::GrpcAgentCaller> agents_;     // Owned.
  std::unique_ptr<ops::Engine> engine_;              // Owned; uses controller_, agents_.
  std::unique_ptr<CoordinatorService> service_;      // Owned; uses all of the above.
  std::unique_ptr<common::GrpcServer> grpc_;         // Owned; uses service_.
  std::unique_ptr<CoordinatorHttpServer> http_;      // Owned; uses metrics_ and the above.
  absl::Notification stop_ticking_;
  std::thread tick_thread_;
};

}  // namespace jailover::coordinator

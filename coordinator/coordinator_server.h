// CoordinatorServer: a running jailover-coordinator — its state store
// (SQLite in --data_dir, or etcd), the hosts' membership restored from it,
// the gRPC server (Coordinator service and grpc.health.v1), the operations
// engine (resuming what a previous run left unfinished) and the tick thread
// that applies lease timeouts and runs the controller's automation every
// 100 ms. Built from CoordinatorOptions; start-up and shutdown are driven by
// common::RunDaemonMain.
//
// With --store=etcd the coordinator starts as a standby: it serves reads
// (its view reloaded from etcd when the store changes) and refuses writes
// and agents' leases with the leader's name, while its election thread
// campaigns. Once elected it takes over exactly as a restarted coordinator
// would — trackers restored from the store (every host gets a full lease
// ttl), unfinished operations resumed — with the leader key's revision as
// its term: every store write is guarded by it and every agent command
// carries it. Losing the leadership (the etcd session expired or could
// have) ends the process at once (exit status 75): a deposed leader must
// not act for another moment, and its supervisor restarts it as a standby.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/daemon/daemon_main.h"
#include "common/daemon/grpc_server.h"
#include "common/time/clock.h"
#include "coordinator/cluster/membership.h"
#include "coordinator/coordinator_options.h"
#include "coordinator/etcd/election.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/http/coordinator_http.h"
#include "coordinator/http/metrics.h"
#include "coordinator/ops/agent_caller.h"
#include "coordinator/ops/controller.h"
#include "coordinator/ops/engine.h"
#include "coordinator/store/etcd_store.h"
#include "coordinator/store/state_store.h"

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
  // Deletes the finished operations retention no longer keeps (leader).
  void PruneOperations();
  // Refreshes the gauges and renders /metrics.
  std::string RenderMetrics();
  // The engine of a leader in `term`; started with ResumeAll.
  absl::Status StartEngine(uint64_t term);
  // etcd: campaigns, then takes over (see the file comment).
  void ElectionLoop();
  absl::Status TakeOver(const etcd::LeaderInfo& won);
  // Unavailable naming the leader, unless this coordinator leads.
  absl::Status CheckLeader();
  void DescribeLeadership(v1::GetClusterStatusResponse* response);
  // A standby reloads its view when the store moved (at most every second).
  void RefreshStandbyView();

  CoordinatorOptions options_;
  common::Clock* clock_ = nullptr;  // Not owned.
  ops::ControllerOptions controller_options_;

  // Destroyed in reverse order: the server first, the store last.
  std::unique_ptr<etcd::EtcdClient> etcd_;           // Owned; etcd store only.
  std::unique_ptr<store::StateStore> store_;         // Owned.
  store::EtcdStore* etcd_store_ = nullptr;           // store_, if it is etcd.
  std::unique_ptr<Metrics> metrics_;                 // Owned.
  std::unique_ptr<cluster::Membership> membership_;  // Owned; uses store_.
  std::unique_ptr<catalog::Catalog> catalog_;        // Owned; uses store_.
  std::unique_ptr<ops::Controller> controller_;      // Owned; uses membership_, store_.
  std::unique_ptr<ops::GrpcAgentCaller> agents_;     // Owned.
  std::unique_ptr<ops::Engine> engine_;              // Owned; uses controller_, agents_.
  std::unique_ptr<CoordinatorService> service_;      // Owned; uses all of the above.
  std::unique_ptr<common::GrpcServer> grpc_;         // Owned; uses service_.
  std::unique_ptr<CoordinatorHttpServer> http_;      // Owned; uses metrics_ and the above.
  std::unique_ptr<etcd::Election> election_;         // Owned; etcd store only.
  absl::Notification stop_ticking_;
  std::thread tick_thread_;
  std::thread pulse_thread_;
  std::thread election_thread_;
  // Set once (by the election thread, after the engine exists); always true
  // without an election.
  std::atomic<bool> leading_{false};
  std::atomic<uint64_t> term_{0};
  // Standby: the store revision its view was loaded at, and when.
  int64_t standby_revision_ = -1;
  absl::Time standby_refreshed_ = absl::InfinitePast();
};

}  // namespace jailover::coordinator

// LeaseClient: the agent's side of the lease. It keeps a Coordinator.Lease
// stream open to the first coordinator that accepts it, trying the endpoints
// in turn (standbys refuse it, the leader accepts; a grant whose coordinator
// term is older than one already seen is refused too), sends Register and
// then a Heartbeat with what the host observes every renew interval, and
// takes the coordinator's LeaseGrants. A watchdog fences the host
// (AgentCore::SelfFence) when no grant has arrived for the lease ttl —
// whatever the reason: coordinator down, network partition, or a
// coordinator that stopped answering. A Readmit from the coordinator ends
// the fence. CARP transitions reported by the VIP driver are pushed on the
// stream as they happen. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/agent_core.h"
#include "common/time/clock.h"
#include "common/tls/credentials.h"
#include "jailover/v1/agent.pb.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace jailover::agent {

struct LeaseOptions {
  // Coordinator endpoints, HOST:PORT, tried in order; at least one.
  std::vector<std::string> coordinators;
  common::TlsOptions tls;
  // Who this agent is (host, address, roles, facts).
  v1::Register registration;
  // Until the first grant says otherwise.
  absl::Duration ttl = absl::Seconds(3);
  absl::Duration renew_interval = absl::Milliseconds(500);
};

class LeaseClient {
 public:
  // `core` and `clock` are not owned and must outlive the client.
  LeaseClient(LeaseOptions options, AgentCore& core, common::Clock& clock);
  ~LeaseClient();

  // Starts the stream and watchdog threads. The ttl counts from here: an
  // agent that never reaches a coordinator fences itself after one ttl.
  void Start();
  // Stops both threads. Idempotent. Does not fence.
  void Shutdown();

  // Queues a CARP state change to be pushed to the coordinator at once
  // (ahead of the next heartbeat). Dropped if no stream opens before 64
  // newer ones arrive: heartbeats carry the current states anyway.
  void ReportCarpTransition(v1::CarpTransition transition);

  // True while the last grant is younger than the ttl.
  bool HasLease();

 private:
  // One stream session with `endpoint`; returns when it breaks or on
  // shutdown: true if it got at least one grant.
  bool RunSession(const std::string& endpoint);
  void StreamLoop();
  void WatchdogLoop();
  // Sleeps up to `d` of the clock's time, or until shutdown; false on shutdown.
  bool SleepUnlessShutdown(absl::Duration d);

  const LeaseOptions options_;
  AgentCore& core_;       // Not owned.
  common::Clock& clock_;  // Not owned.

  absl::Mutex mu_;
  std::chrono::steady_clock::time_point last_grant_ ABSL_GUARDED_BY(mu_);
  absl::Duration ttl_ ABSL_GUARDED_BY(mu_);
  absl::Duration renew_interval_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // The live stream's context, so Shutdown can cancel it.
  grpc::ClientContext* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<v1::CarpTransition> pending_transitions_ ABSL_GUARDED_BY(mu_);

  std::thread stream_thread_;
  std::thread watchdog_thread_;
};

}  // namespace jailover::agent

// LeaseClient: the agent's side of its leases, driving a LeaseTracker (the
// pure rules, agent/lease_tracker.h) with real streams and RPCs:
//   - the coordinator lease: a Coordinator.Lease stream kept open to the
//     first coordinator that accepts it, trying the endpoints in turn
//     (standbys refuse it; a grant whose coordinator term is older than one
//     already seen is refused too); Register, then a Heartbeat with what the
//     host observes every renew interval; each LeaseGrant renews the lease
//     from when the renewal it answers was SENT. CARP transitions are pushed
//     on the stream as they happen; Readmit and Evict messages are carried
//     out;
//   - the storage leases: every renew interval, one RenewStorageLease call to
//     the agent of each storage host this host imported images from, asking
//     whether each grant still stands;
//   - a watchdog that applies the tracker's decisions: fences the jails of an
//     image whose grant moved, or whose leases both lapsed
//     (AgentCore::FenceImage), or the whole host (AgentCore::SelfFence).
// It is also the AgentCore's LeaseOracle (readiness and heartbeats ask it
// about the storage leases). Thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_core.h"
#include "agent/lease_tracker.h"
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
  // Client TLS for the coordinator and the storage agents.
  common::TlsOptions tls;
  // Who this agent is (host, address, roles, facts).
  v1::Register registration;
  // Until the first grant says otherwise.
  absl::Duration ttl = absl::Seconds(3);
  absl::Duration renew_interval = absl::Milliseconds(500);
  // The VIP guard's directory (vip_guard.h): at every renewal the client
  // writes there until when its leases let the host hold its VIPs, and it
  // fences the host when the guard says it released them. Empty: no guard.
  std::string vip_guard_dir;
};

class LeaseClient final : public LeaseOracle {
 public:
  // `core` and `clock` are not owned and must outlive the client.
  LeaseClient(LeaseOptions options, AgentCore& core, common::Clock& clock);
  ~LeaseClient() override;

  // Becomes the core's lease oracle and starts the threads. Both kinds of
  // lease count from here: an agent that reaches neither a coordinator nor
  // the storage hosts of what it holds fences it after one ttl.
  void Start();
  // Stops every thread. Idempotent. Does not fence.
  void Shutdown();

  // Queues a CARP state change to be pushed to the coordinator at once
  // (ahead of the next heartbeat). Dropped if no stream opens before 64
  // newer ones arrive: heartbeats carry the current states anyway.
  void ReportCarpTransition(v1::CarpTransition transition);

  // True while the coordinator lease is current.
  bool HasLease();

  // LeaseOracle
  std::string NotReadyReason(const std::string& image) override;
  v1::StorageLeaseState StorageLeaseOf(const std::string& image, absl::Duration* age) override;

 private:
  // One stream session with `endpoint`; returns when it breaks or on
  // shutdown: true if it got at least one grant.
  bool RunSession(const std::string& endpoint);
  void StreamLoop();
  // Every renew interval: one RenewStorageLease call per storage agent.
  void StorageLoop();
  void WatchdogLoop();
  // Tells the tracker what the core holds now.
  void SyncHeld();
  // Writes tracker_.HoldUntil() for the VIP guard if it changed.
  void PublishHoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sleeps up to `d` of the clock's time, or until shutdown; false on shutdown.
  bool SleepUnlessShutdown(absl::Duration d);

  const LeaseOptions options_;
  AgentCore& core_;       // Not owned.
  common::Clock& clock_;  // Not owned.

  absl::Mutex mu_;
  LeaseTracker tracker_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Set to make the watchdog evaluate at once (a MOVED answer, an Evict).
  bool wake_watchdog_ ABSL_GUARDED_BY(mu_) = false;
  // Set as each heartbeat leaves: the storage renewals go with it.
  bool storage_due_ ABSL_GUARDED_BY(mu_) = false;
  // The live stream's context, so Shutdown can cancel it.
  grpc::ClientContext* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<v1::CarpTransition> pending_transitions_ ABSL_GUARDED_BY(mu_);
  // Evict messages to carry out (on the watchdog thread: a fence takes
  // seconds, and the stream must keep reading grants meanwhile).
  std::deque<v1::Evict> pending_evicts_ ABSL_GUARDED_BY(mu_);
  // The deadline last written for the VIP guard (unset: none written yet).
  std::optional<std::optional<LeaseTime>> published_hold_ ABSL_GUARDED_BY(mu_);
  bool hold_write_failed_ ABSL_GUARDED_BY(mu_) = false;
  // Heartbeat sequence numbers, one series per incarnation.
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // How long the last granted renewal of the current stream took (sent to
  // granted); reported in the next heartbeat.
  std::optional<absl::Duration> last_grant_latency_ ABSL_GUARDED_BY(mu_);
  // The storage hosts' agents of the last grant: the storage lease channel
  // goes to each of them every round, images or not.
  std::vector<v1::StorageAgent> storage_agents_ ABSL_GUARDED_BY(mu_);
  // Consecutive failed storage lease rounds per storage host (0: the last
  // one answered); kUnreachableRounds or more is reported in heartbeats.
  std::map<std::string, int> storage_failures_ ABSL_GUARDED_BY(mu_);
  static constexpr int kUnreachableRounds = 2;
  // ObservedState.unreachable_storage_hosts, from storage_failures_.
  std::vector<std::string> UnreachableStorageHostsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::thread stream_thread_;
  std::thread storage_thread_;
  std::thread watchdog_thread_;
};

}  // namespace jailover::agent

// Election: leader election of jailover coordinators over etcd, the way
// etcd's own concurrency package does it, reduced to what jailover needs.
//
// - Each coordinator holds a session: an etcd lease of `ttl`, kept alive
//   every ttl/4, and its registration P coordinators/<name> (a serialized
//   v1::CoordinatorInfo) attached to that lease, so the standbys are listed
//   and disappear with their process.
// - Campaign: one Txn "if P leader does not exist (create_revision == 0),
//   put P leader = my CoordinatorInfo with my lease". The winner's term is
//   the create_revision of P leader: an etcd revision, so every later
//   leader has a higher term. The term is the fencing token: it guards
//   every store write (EtcdStore's write guard on P leader's
//   create_revision) and is sent with every agent command; agents refuse a
//   term older than one they have seen.
// - A loser watches P leader and campaigns again when it is deleted (the
//   leader resigned or its lease expired: etcd deletes the key).
// - The session is valid until (send time of the last answered keep-alive
//   + the TTL that answer gave). The holder must stop acting before etcd
//   could have expired the lease: the lost handler runs (once) when that
//   deadline passes without a newer answer, or when etcd says the lease is
//   gone. Clocks: only this machine's monotonic clock is compared with
//   itself; etcd's TTL is a duration.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/etcd/etcd_client.h"
#include "jailover/v1/coordinator.pb.h"

namespace jailover::coordinator::etcd {

struct ElectionOptions {
  // Key prefix shared with the store (starts and ends with '/').
  std::string prefix = "/jailover/";
  // Who this coordinator is: name (unique in the cluster), address, version,
  // start time. `leader` is ignored.
  v1::CoordinatorInfo self;
  // Time to live of the session lease (etcd may raise it to its minimum).
  absl::Duration ttl = absl::Seconds(2);
};

// The leader as recorded in P leader.
struct LeaderInfo {
  v1::CoordinatorInfo info;
  // create_revision of P leader: the leadership term (fencing token).
  int64_t term = 0;
};

// P leader for `prefix`.
std::string LeaderKey(const std::string& prefix);

class Election {
 public:
  // `client` is not owned and must outlive the election.
  Election(EtcdClient& client, ElectionOptions options);
  ~Election();
  Election(const Election&) = delete;
  Election& operator=(const Election&) = delete;

  // Grants the session lease, registers this coordinator and starts keeping
  // the lease alive. A registration of the same name still alive after two
  // ttls (another process with this name) is FailedPrecondition. `on_lost` runs once, on the
  // keep-alive thread, when the session is lost (see the file comment), with the reason.
  absl::Status Start(std::function<void(const std::string& reason)> on_lost);

  // Blocks until this coordinator holds the leadership and returns it, or
  // until Resign (Cancelled) or the session is lost (Aborted: a standby then
  // opens a new one with OpenSession and campaigns again).
  absl::StatusOr<LeaderInfo> Campaign();

  // A new session after the last one was lost (a lease granted, this
  // coordinator registered again, the keep-alive thread restarted).
  // Cancelled after Resign.
  absl::Status OpenSession();

  // The current leader, or nullopt if there is none.
  absl::StatusOr<std::optional<LeaderInfo>> Leader();
  // Every registered coordinator (leader included), sorted by name.
  absl::StatusOr<std::vector<v1::CoordinatorInfo>> Coordinators();

  // The TTL etcd granted the session (after Start).
  absl::Duration granted_ttl() const;
  // True while the session lease is certainly alive.
  bool SessionValid() const;

  // Revokes the session lease (giving the leadership up at once if held, so
  // a standby need not wait for the ttl) and stops the threads. Idempotent.
  void Resign();

 private:
  void KeepAliveLoop();
  void Lost(const std::string& reason);
  // Waits until no session holds this coordinator's name (see Start).
  absl::Status WaitForNameFree();
  // Deadline of one etcd call of the election (per endpoint tried): a
  // quarter of the ttl, so a member that went silent is left in time.
  absl::Duration CallTimeout() const;

  EtcdClient& client_;  // Not owned.
  const ElectionOptions options_;
  const std::string leader_key_;
  const std::string member_key_;
  std::function<void(const std::string&)> on_lost_;

  mutable absl::Mutex mu_;
  int64_t lease_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration granted_ttl_ ABSL_GUARDED_BY(mu_);
  // Monotonic time until which the session is certainly alive.
  std::chrono::steady_clock::time_point valid_until_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  // The watch a Campaign waits on, so Resign can cancel it.
  EtcdWatch* campaign_watch_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Guards keepalive_thread_ (restarted by OpenSession, joined by Resign).
  absl::Mutex thread_mu_;
  std::thread keepalive_thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace jailover::coordinator::etcd

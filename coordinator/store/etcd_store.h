// EtcdStore: the StateStore over etcd v3, for coordinators that share their
// state and elect a leader (several coordinators, one etcd cluster).
//
// Layout under the configured prefix P (e.g. "/jailover/"):
//   P state/<kind>/<name>   the objects (StateStore key "<kind>/<name>")
//   P events/<%020u seq>    the event log, one serialized v1::Event per key
//   P meta/commit           written by every Commit: its value is the last
//                           event sequence (decimal), its mod_revision is the
//                           store's revision
// (P leader and P coordinators/ belong to the election, not the store.)
//
// Mapping of the StateStore model:
// - Revision() = mod_revision of P meta/commit (0 before the first commit):
//   the etcd revision of this store's newest commit. Revisions are etcd's, so
//   they rise strictly but not by one (the election and other prefixes write
//   to the same etcd): dense_revisions = false in the conformance suite.
// - Commit = one etcd Txn: the caller's compares (MOD == mod_revision; 0 =
//   absent), a compare on P meta/commit's mod_revision as read just before
//   (so commits are serialized and event sequences stay dense), and the
//   write guard if set; success = the puts and deletes, the events (each a
//   put), the new P meta/commit, and the deletion of events beyond
//   retention; failure = a Range of every compared key, to report which
//   compare failed. A failure caused only by P meta/commit (another commit
//   went first) is retried inside Commit; one caused by a caller's compare
//   is Aborted naming the key, the expected and the found mod_revision; one
//   caused by the write guard is FailedPrecondition ("not the leader").
// - create/mod revisions of keys are etcd's own.
// - List reads the prefix and P meta/commit in one Txn (one snapshot); its
//   revision is the store revision at that snapshot.
// - Events past max_events are deleted by the commit that appends beyond
//   the limit; ReadEvents before the oldest kept one is OutOfRange.
// - WaitForRevision watches P meta/commit (one background watcher per
//   store, started by the first wait that has to block, re-created from the
//   last seen revision after a stream error or a failover).
// - A Commit that fails with Unavailable or DeadlineExceeded after etcd
//   received it may still have been applied (etcd cannot say); the client
//   never resends such a write, and the callers' compares make their retry
//   safe (it aborts instead of applying twice).
// - List pages through large prefixes (256 keys a page) at the revision of
//   the first page, so it is still one snapshot.
// Txn size: etcd's default --max-txn-ops is 128 per branch; a Commit adds
// two writes of its own (meta and trimming), so kMaxTxnWrites is 126.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/store/state_store.h"

namespace jailover::coordinator::store {

struct EtcdStoreOptions {
  // Key prefix of everything this store writes; must start and end with
  // '/', printable ASCII.
  std::string prefix = "/jailover/";
  // Events retained (newest N); >= 1.
  uint64_t max_events = 100000;
};

// Only the holder of the leadership writes: every Commit also requires
// etcd key `key` to have create_revision `create_revision` (the leader key
// this coordinator created when it won the election).
struct WriteGuard {
  std::string key;
  int64_t create_revision = 0;
};

class EtcdStore final : public StateStore {
 public:
  // `client` is not owned and must outlive the store. Checks that etcd
  // answers (a Range of P meta/commit); InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(etcd::EtcdClient& client,
                                                         const EtcdStoreOptions& options);
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  // Sets (or clears, with nullopt) the write guard. Commits started after
  // the call use it. A guard with create_revision <= 0 refuses every commit
  // (FailedPrecondition): a standby's.
  void SetWriteGuard(std::optional<WriteGuard> guard);

  // StateStore
  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) const override;
  absl::StatusOr<ListResult> List(absl::string_view prefix) const override;
  absl::StatusOr<int64_t> Revision() const override;
  absl::StatusOr<int64_t> Commit(const Txn& txn) override;
  absl::StatusOr<std::vector<v1::Event>> ReadEvents(uint64_t after_sequence,
                                                    int limit) const override;
  absl::StatusOr<EventLogInfo> GetEventLogInfo() const override;
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, absl::Time deadline) override;

  const std::string& prefix() const { return options_.prefix; }

 private:
  EtcdStore(etcd::EtcdClient& client, EtcdStoreOptions options);

  // P meta/commit as read: its mod_revision (the store revision) and the
  // last event sequence in its value; both 0 when it does not exist.
  struct Meta {
    int64_t revision = 0;
    uint64_t last_sequence = 0;
  };

  // "P state/<key>", "P events/<%020u seq>".
  std::string StateKey(absl::string_view key) const;
  std::string EventKey(uint64_t sequence) const;
  // Meta from a Range of P meta/commit; DataLoss if its value is not a
  // sequence.
  absl::StatusOr<Meta> ParseMeta(const ::etcdserverpb::RangeResponse& range) const;
  absl::StatusOr<Meta> ReadMeta() const;
  // Starts the revision watcher unless it runs (or the store is closing).
  void EnsureWatcher();
  // The watcher thread: follows P meta/commit's mod_revision into
  // seen_revision_, re-creating the watch after stream errors.
  void WatchLoop();

  etcd::EtcdClient& client_;  // Not owned.
  const EtcdStoreOptions options_;
  const std::string meta_key_;
  const std::string events_prefix_;
  mutable absl::Mutex mu_;
  std::optional<WriteGuard> guard_ ABSL_GUARDED_BY(mu_);

  // The revision watcher, started by the first WaitForRevision that has to
  // wait. Waiters Await seen_revision_ under watch_mu_.
  absl::Mutex watch_mu_;
  int64_t seen_revision_ ABSL_GUARDED_BY(watch_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(watch_mu_) = false;
  bool watcher_started_ ABSL_GUARDED_BY(watch_mu_) = false;
  // The watch the watcher thread is blocked on (cancelled by the destructor).
  etcd::EtcdWatch* watch_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  std::thread watcher_;
};

}  // namespace jailover::coordinator::store

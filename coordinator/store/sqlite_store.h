// SqliteStore: the embedded StateStore, one SQLite file in the coordinator's
// data directory (the default for a single coordinator).
//
// Durability: journal_mode=WAL, synchronous=FULL, so a Commit that returned
// is on disk; every Commit is one SQLite transaction (BEGIN IMMEDIATE ...
// COMMIT), so a crash or power loss leaves whole commits only. The revision
// and the event sequence are stored in the same transaction as the data.
//
// Schema: versioned by the schema_migrations table (one row per applied
// migration). Open applies the missing migrations in order, all in one
// transaction; a file written by a newer jailover (higher schema version than
// this binary knows) is refused with FailedPrecondition rather than touched.
// A file that is not a SQLite database, or is corrupt, is DataLoss; a SQLite
// database that is not a jailover state store is FailedPrecondition.
//
// Events: kept in the same file; with `max_events` > 0 only the newest
// max_events are retained (older ones are deleted by the commit that
// appends past the limit), so the file does not grow without bound.
//
// One store per file: Open takes an exclusive flock(2) on "<path>.lock" for
// the store's lifetime, so a second coordinator (or a second Open in this
// process) on the same data directory is refused with FailedPrecondition
// instead of silently splitting the brain; the lock goes away with the
// process. Read-only inspection with the sqlite3 tool remains possible.
// WaitForRevision sees the commits made through this object, which are all
// of them. Thread-safe: one connection, serialized by a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/store/state_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace jailover::coordinator::store {

struct SqliteStoreOptions {
  // Events retained; older ones are deleted. Must be >= 1.
  uint64_t max_events = 100000;
  // How long a statement waits for a lock held by another connection
  // (another process opening the same file) before failing.
  absl::Duration busy_timeout = absl::Seconds(5);
  // Run PRAGMA quick_check when opening, so corruption is reported at start
  // rather than in the middle of a failover.
  bool check_integrity_on_open = true;
};

class SqliteStore final : public StateStore {
 public:
  // The schema version this binary writes (the number of migrations).
  static int LatestSchemaVersion();

  // Creates or opens the store at `path` (":memory:" for a throwaway
  // in-memory store) and migrates it to LatestSchemaVersion().
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           const SqliteStoreOptions& options = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // StateStore
  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) const override;
  absl::StatusOr<ListResult> List(absl::string_view prefix) const override;
  absl::StatusOr<int64_t> Revision() const override;
  absl::StatusOr<int64_t> Commit(const Txn& txn) override;
  absl::StatusOr<std::vector<v1::Event>> ReadEvents(uint64_t after_sequence,
                                                    int limit) const override;
  absl::StatusOr<EventLogInfo> GetEventLogInfo() const override;
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, absl::Time deadline) override;

  // The value of `PRAGMA name` as text ("wal", "2"), for diagnostics and
  // tests. `name` must be one of journal_mode, synchronous, foreign_keys,
  // busy_timeout; else InvalidArgument.
  absl::StatusOr<std::string> PragmaValue(absl::string_view name) const;
  // The schema version of the open file.
  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }

 private:
  class Statement;

  SqliteStore(std::string path, SqliteStoreOptions options);
  absl::Status Initialize();
  absl::Status LockFile();
  absl::Status MigrateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PrepareStatementsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadCountersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs SQL without parameters or results (pragmas, BEGIN, DDL).
  absl::Status ExecLocked(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The body of Commit inside BEGIN IMMEDIATE; the caller commits or rolls
  // back.
  absl::Status ApplyLocked(const Txn& txn, int64_t new_revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> FirstEventSequenceLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A status for SQLite result `rc`, with `what` and the connection's message.
  absl::Status SqliteError(int rc, absl::string_view what) const;

  const std::string path_;
  const SqliteStoreOptions options_;
  int schema_version_ = 0;
  // The flock(2)ed "<path>.lock"; -1 for ":memory:".
  int lock_fd_ = -1;

  mutable absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Prepared once, reused (reset after each use).
  std::unique_ptr<Statement> get_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> list_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> put_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> delete_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> insert_event_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> trim_events_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> read_events_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> first_event_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> set_meta_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Statement> get_meta_ ABSL_GUARDED_BY(mu_);
  // Mirrors of the meta table, updated after each successful commit.
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t event_sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jailover::coordinator::store

#include "coordinator/store/sqlite_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <iterator>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"

namespace jailover::coordinator::store {
namespace {

// One schema migration: `sql` (constant DDL, never built from values) takes
// a file from version - 1 to `version`. Append new migrations at the end;
// never edit a released one.
struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "initial schema: kv, events, meta",
     R"sql(
CREATE TABLE kv (
  key TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
  seq INTEGER PRIMARY KEY NOT NULL,
  data BLOB NOT NULL
);
CREATE TABLE meta (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('revision', 0), ('event_sequence', 0);
)sql"},
};

constexpr int kMaxReadEvents = 10000;

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return absl::StatusCode::kDataLoss;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
      return absl::StatusCode::kUnavailable;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

bool IsPrintableAscii(absl::string_view s) {
  for (const char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

// A prepared statement of the store's connection. Bind, Step until it
// returns false, then Reset (done by the ResetGuard of each user).
class SqliteStore::Statement {
 public:
  static absl::StatusOr<std::unique_ptr<Statement>> Prepare(const SqliteStore& store, sqlite3* db,
                                                            absl::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return store.SqliteError(rc, absl::StrCat("preparing \"", sql, "\""));
    }
    return std::unique_ptr<Statement>(new Statement(store, stmt));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void BindText(int index, absl::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void BindBlob(int index, absl::string_view blob) {
    // A zero-length blob with a null pointer would bind NULL; keep it a blob.
    sqlite3_bind_blob(stmt_, index, blob.empty() ? "" : blob.data(), static_cast<int>(blob.size()),
                      SQLITE_STATIC);
  }
  void BindInt64(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }

  // True when a row is available, false when done.
  absl::StatusOr<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return store_.SqliteError(rc, absl::StrCat("executing \"", sqlite3_sql(stmt_), "\""));
  }
  // Steps a statement that returns no rows.
  absl::Status Run() {
    ASSIGN_OR_RETURN(const bool row, Step());
    if (row) return absl::InternalError(absl::StrCat("unexpected row from ", sqlite3_sql(stmt_)));
    return absl::OkStatus();
  }

  int64_t ColumnInt64(int index) { return sqlite3_column_int64(stmt_, index); }
  std::string ColumnBytes(int index) {
    const void* data = sqlite3_column_blob(stmt_, index);
    const int size = sqlite3_column_bytes(stmt_, index);
    if (data == nullptr || size <= 0) return "";
    return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
  }

  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  Statement(const SqliteStore& store, sqlite3_stmt* stmt) : store_(store), stmt_(stmt) {}

  const SqliteStore& store_;
  sqlite3_stmt* stmt_;
};

namespace {

// Resets a statement when the scope ends, so no statement keeps a read
// transaction or its bound (borrowed) parameters alive.
template <typename S>
auto ResetGuard(S& statement) {
  return absl::MakeCleanup([&statement] { statement.Reset(); });
}

}  // namespace

int SqliteStore::LatestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

SqliteStore::SqliteStore(std::string path, SqliteStoreOptions options)
    : path_(std::move(path)), options_(options) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  get_.reset();
  list_.reset();
  put_.reset();
  delete_.reset();
  insert_event_.reset();
  trim_events_.reset();
  read_events_.reset();
  first_event_.reset();
  set_meta_.reset();
  get_meta_.reset();
  if (db_ != nullptr) {
    const int rc = sqlite3_close_v2(db_);
    if (rc != SQLITE_OK) {
      spdlog::warn("state store {}: close failed: {}", path_, sqlite3_errstr(rc));
    }
    db_ = nullptr;
  }
  if (lock_fd_ >= 0) close(lock_fd_);
}

absl::Status SqliteStore::SqliteError(int rc, absl::string_view what) const {
  // sqlite3_errmsg describes the most recent failure on the connection,
  // which is `rc` (every call happens under mu_).
  std::string detail = sqlite3_errstr(rc);
  if (db_ != nullptr) {
    const char* message = sqlite3_errmsg(db_);
    if (message != nullptr && detail != message) detail = absl::StrCat(message, "; ", detail);
  }
  std::string hint;
  if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
    hint = " (the file is not a usable SQLite database; restore it from a backup)";
  } else if ((rc & 0xff) == SQLITE_BUSY) {
    hint = " (another process holds the database; only one coordinator may use it)";
  }
  return absl::Status(CodeFor(rc), absl::StrCat("state store ", path_, ": ", what, ": ", detail,
                                                " (sqlite code ", rc, ")", hint));
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               const SqliteStoreOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("state store path is empty");
  if (options.max_events < 1) {
    return absl::InvalidArgumentError("state store max_events must be at least 1");
  }
  if (options.busy_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("state store busy_timeout is negative");
  }
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(path, options));
  RETURN_IF_ERROR(store->Initialize());
  return store;
}

absl::Status SqliteStore::LockFile() {
  if (path_ == ":memory:") return absl::OkStatus();
  const std::string lock_path = path_ + ".lock";
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    const int error = errno;
    return absl::FailedPreconditionError(absl::StrCat(
        "state store ", path_, ": cannot create lock file ", lock_path, ": ", strerror(error)));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("state store ", path_, " is in use by another coordinator (", lock_path,
                       " is locked); an embedded store serves one coordinator only"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("state store ", path_, ": cannot lock ", lock_path, ": ", strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Initialize() {
  RETURN_IF_ERROR(LockFile());
  absl::MutexLock lock(&mu_);
  const int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(rc, "opening");
    sqlite3_close_v2(db_);
    db_ = nullptr;
    return status;
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(absl::ToInt64Milliseconds(options_.busy_timeout)));

  // The first statement that reads the file; a non-database fails here.
  {
    ASSIGN_OR_RETURN(auto journal, Statement::Prepare(*this, db_, "PRAGMA journal_mode=WAL"));
    auto reset = ResetGuard(*journal);
    ASSIGN_OR_RETURN(const bool row, journal->Step());
    const std::string mode = row ? journal->ColumnBytes(0) : "";
    const bool in_memory = path_ == ":memory:" || path_.empty();
    if (mode != "wal" && !(in_memory && mode == "memory")) {
      return absl::FailedPreconditionError(
          absl::StrCat("state store ", path_,
                       ": cannot enable WAL journal mode (journal_mode is \"", mode, "\")"));
    }
  }
  RETURN_IF_ERROR(ExecLocked("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(ExecLocked("PRAGMA foreign_keys=ON"));
  if (options_.check_integrity_on_open) {
    ASSIGN_OR_RETURN(auto check, Statement::Prepare(*this, db_, "PRAGMA quick_check"));
    auto reset = ResetGuard(*check);
    std::vector<std::string> problems;
    while (true) {
      ASSIGN_OR_RETURN(const bool row, check->Step());
      if (!row) break;
      std::string line = check->ColumnBytes(0);
      if (line != "ok" && problems.size() < 5) problems.push_back(std::move(line));
    }
    if (!problems.empty()) {
      return absl::DataLossError(absl::StrCat("state store ", path_,
                                              " is corrupt: ", absl::StrJoin(problems, "; "),
                                              " (restore it from a backup)"));
    }
  }
  RETURN_IF_ERROR(MigrateLocked());
  RETURN_IF_ERROR(PrepareStatementsLocked());
  RETURN_IF_ERROR(LoadCountersLocked());
  spdlog::info("state store {}: open, schema version {}, revision {}, event sequence {}", path_,
               schema_version_, revision_, event_sequence_);
  return absl::OkStatus();
}

absl::Status SqliteStore::ExecLocked(absl::string_view sql) {
  const std::string text(sql);
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return SqliteError(rc, absl::StrCat("executing \"", sql, "\""));
  return absl::OkStatus();
}

absl::Status SqliteStore::MigrateLocked() {
  RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
  auto rollback = absl::MakeCleanup([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (sqlite3_get_autocommit(db_) == 0) (void)ExecLocked("ROLLBACK");
  });

  // Which tables exist: none (a new file), ours, or someone else's.
  bool has_migrations_table = false;
  std::vector<std::string> other_tables;
  {
    ASSIGN_OR_RETURN(auto tables,
                     Statement::Prepare(*this, db_,
                                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                                        "ORDER BY name"));
    auto reset = ResetGuard(*tables);
    while (true) {
      ASSIGN_OR_RETURN(const bool row, tables->Step());
      if (!row) break;
      std::string name = tables->ColumnBytes(0);
      if (name == "schema_migrations") {
        has_migrations_table = true;
      } else {
        other_tables.push_back(std::move(name));
      }
    }
  }
  if (!has_migrations_table) {
    if (!other_tables.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state store ", path_, " is a SQLite database but not a jailover state store (tables ",
          absl::StrJoin(other_tables, ", "), ", no schema_migrations)"));
    }
    RETURN_IF_ERROR(
        ExecLocked("CREATE TABLE schema_migrations ("
                   "version INTEGER PRIMARY KEY NOT NULL, description TEXT NOT NULL)"));
  }

  int current = 0;
  {
    ASSIGN_OR_RETURN(
        auto version,
        Statement::Prepare(*this, db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    auto reset = ResetGuard(*version);
    ASSIGN_OR_RETURN(const bool row, version->Step());
    if (row) current = static_cast<int>(version->ColumnInt64(0));
  }
  const int latest = LatestSchemaVersion();
  if (current > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state store ", path_, " has schema version ", current,
        ", newer than the newest this coordinator knows (", latest,
        "); it was written by a newer jailover: upgrade this coordinator, or restore a backup "
        "taken before the upgrade"));
  }
  if (current == latest) {
    schema_version_ = current;
    std::move(rollback).Cancel();
    return ExecLocked("COMMIT");
  }

  ASSIGN_OR_RETURN(auto record, Statement::Prepare(*this, db_,
                                                   "INSERT INTO schema_migrations "
                                                   "(version, description) VALUES (?1, ?2)"));
  for (const Migration& migration : kMigrations) {
    if (migration.version <= current) continue;
    RETURN_IF_ERROR(common::Annotate(ExecLocked(migration.sql),
                                     absl::StrCat("schema migration ", migration.version)));
    auto reset = ResetGuard(*record);
    record->BindInt64(1, migration.version);
    record->BindText(2, migration.description);
    RETURN_IF_ERROR(record->Run());
    spdlog::info("state store {}: applied schema migration {} ({})", path_, migration.version,
                 migration.description);
  }
  record.reset();
  std::move(rollback).Cancel();
  absl::Status committed = ExecLocked("COMMIT");
  if (!committed.ok()) {
    if (sqlite3_get_autocommit(db_) == 0) (void)ExecLocked("ROLLBACK");
    return committed;
  }
  schema_version_ = latest;
  return absl::OkStatus();
}

absl::Status SqliteStore::PrepareStatementsLocked() {
  ASSIGN_OR_RETURN(get_, Statement::Prepare(*this, db_,
                                            "SELECT value, create_revision, mod_revision "
                                            "FROM kv WHERE key = ?1"));
  ASSIGN_OR_RETURN(list_, Statement::Prepare(*this, db_,
                                             "SELECT key, value, create_revision, mod_revision "
                                             "FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) "
                                             "ORDER BY key"));
  ASSIGN_OR_RETURN(put_, Statement::Prepare(*this, db_,
                                            "INSERT INTO kv (key, value, create_revision, "
                                            "mod_revision) VALUES (?1, ?2, ?3, ?3) "
                                            "ON CONFLICT (key) DO UPDATE SET "
                                            "value = excluded.value, "
                                            "mod_revision = excluded.mod_revision"));
  ASSIGN_OR_RETURN(delete_, Statement::Prepare(*this, db_, "DELETE FROM kv WHERE key = ?1"));
  ASSIGN_OR_RETURN(insert_event_, Statement::Prepare(*this, db_,
                                                     "INSERT INTO events (seq, data) "
                                                     "VALUES (?1, ?2)"));
  ASSIGN_OR_RETURN(trim_events_,
                   Statement::Prepare(*this, db_, "DELETE FROM events WHERE seq <= ?1"));
  ASSIGN_OR_RETURN(read_events_, Statement::Prepare(*this, db_,
                                                    "SELECT seq, data FROM events WHERE seq > ?1 "
                                                    "ORDER BY seq LIMIT ?2"));
  ASSIGN_OR_RETURN(first_event_,
                   Statement::Prepare(*this, db_, "SELECT COALESCE(MIN(seq), 0) FROM events"));
  ASSIGN_OR_RETURN(set_meta_,
                   Statement::Prepare(*this, db_, "UPDATE meta SET value = ?2 WHERE name = ?1"));
  ASSIGN_OR_RETURN(get_meta_,
                   Statement::Prepare(*this, db_, "SELECT value FROM meta WHERE name = ?1"));
  return absl::OkStatus();
}

absl::Status SqliteStore::LoadCountersLocked() {
  auto read = [this](absl::string_view name)
                  ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<int64_t> {
    auto reset = ResetGuard(*get_meta_);
    get_meta_->BindText(1, name);
    ASSIGN_OR_RETURN(const bool row, get_meta_->Step());
    if (!row) {
      return absl::DataLossError(absl::StrCat("state store ", path_, ": meta row \"", name,
                                              "\" is missing (restore it from a backup)"));
    }
    const int64_t value = get_meta_->ColumnInt64(0);
    if (value < 0) {
      return absl::DataLossError(
          absl::StrCat("state store ", path_, ": meta \"", name, "\" is negative (", value, ")"));
    }
    return value;
  };
  ASSIGN_OR_RETURN(revision_, read("revision"));
  ASSIGN_OR_RETURN(const int64_t sequence, read("event_sequence"));
  event_sequence_ = static_cast<uint64_t>(sequence);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<KeyValue>> SqliteStore::Get(absl::string_view key) const {
  RETURN_IF_ERROR(ValidateKey(key));
  absl::MutexLock lock(&mu_);
  auto reset = ResetGuard(*get_);
  get_->BindText(1, key);
  ASSIGN_OR_RETURN(const bool row, get_->Step());
  if (!row) return std::optional<KeyValue>();
  KeyValue kv;
  kv.key = std::string(key);
  kv.value = get_->ColumnBytes(0);
  kv.create_revision = get_->ColumnInt64(1);
  kv.mod_revision = get_->ColumnInt64(2);
  return std::optional<KeyValue>(std::move(kv));
}

absl::StatusOr<ListResult> SqliteStore::List(absl::string_view prefix) const {
  if (!IsPrintableAscii(prefix)) {
    return absl::InvalidArgumentError("state store list prefix has non-printable bytes");
  }
  // Every key with the prefix lies in [prefix, prefix with its last byte + 1).
  std::string end(prefix);
  if (!end.empty()) end.back() = static_cast<char>(end.back() + 1);

  absl::MutexLock lock(&mu_);
  auto reset = ResetGuard(*list_);
  list_->BindText(1, prefix);
  if (end.empty()) {
    list_->BindNull(2);
  } else {
    list_->BindText(2, end);
  }
  ListResult result;
  result.revision = revision_;
  while (true) {
    ASSIGN_OR_RETURN(const bool row, list_->Step());
    if (!row) break;
    KeyValue kv;
    kv.key = list_->ColumnBytes(0);
    kv.value = list_->ColumnBytes(1);
    kv.create_revision = list_->ColumnInt64(2);
    kv.mod_revision = list_->ColumnInt64(3);
    result.entries.push_back(std::move(kv));
  }
  return result;
}

absl::StatusOr<int64_t> SqliteStore::Revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

absl::Status SqliteStore::ApplyLocked(const Txn& txn, int64_t new_revision) {
  for (const Txn::Compare& compare : txn.compares()) {
    auto reset = ResetGuard(*get_);
    get_->BindText(1, compare.key);
    ASSIGN_OR_RETURN(const bool row, get_->Step());
    const int64_t actual = row ? get_->ColumnInt64(2) : 0;
    if (actual != compare.mod_revision) {
      const std::string found =
          row ? absl::StrCat("mod_revision ", actual) : std::string("no such key");
      const std::string expected = compare.mod_revision == 0
                                       ? std::string("no such key")
                                       : absl::StrCat("mod_revision ", compare.mod_revision);
      return absl::AbortedError(absl::StrCat("state store compare failed on ", compare.key,
                                             ": expected ", expected, ", found ", found,
                                             " (re-read and retry)"));
    }
  }
  for (const Txn::Op& op : txn.ops()) {
    if (op.type == Txn::Op::Type::kPut) {
      auto reset = ResetGuard(*put_);
      put_->BindText(1, op.key);
      put_->BindBlob(2, op.value);
      put_->BindInt64(3, new_revision);
      RETURN_IF_ERROR(put_->Run());
    } else {
      auto reset = ResetGuard(*delete_);
      delete_->BindText(1, op.key);
      RETURN_IF_ERROR(delete_->Run());
    }
  }
  uint64_t sequence = event_sequence_;
  for (const v1::Event& event : txn.events()) {
    ++sequence;
    v1::Event stored = event;
    stored.set_sequence(sequence);
    const std::string data = stored.SerializeAsString();
    auto reset = ResetGuard(*insert_event_);
    insert_event_->BindInt64(1, static_cast<int64_t>(sequence));
    insert_event_->BindBlob(2, data);
    RETURN_IF_ERROR(insert_event_->Run());
  }
  if (sequence > options_.max_events && !txn.events().empty()) {
    auto reset = ResetGuard(*trim_events_);
    trim_events_->BindInt64(1, static_cast<int64_t>(sequence - options_.max_events));
    RETURN_IF_ERROR(trim_events_->Run());
  }
  auto set_meta = [this](absl::string_view name, int64_t value) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto reset = ResetGuard(*set_meta_);
    set_meta_->BindText(1, name);
    set_meta_->BindInt64(2, value);
    RETURN_IF_ERROR(set_meta_->Run());
    if (sqlite3_changes(db_) != 1) {
      return absl::DataLossError(
          absl::StrCat("state store ", path_, ": meta row \"", name, "\" is missing"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(set_meta("revision", new_revision));
  if (sequence != event_sequence_) {
    RETURN_IF_ERROR(set_meta("event_sequence", static_cast<int64_t>(sequence)));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteStore::Commit(const Txn& txn) {
  RETURN_IF_ERROR(ValidateTxn(txn));
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
  const int64_t new_revision = revision_ + 1;
  absl::Status status = ApplyLocked(txn, new_revision);
  if (status.ok()) status = ExecLocked("COMMIT");
  if (!status.ok()) {
    if (sqlite3_get_autocommit(db_) == 0) {
      const absl::Status rolled_back = ExecLocked("ROLLBACK");
      if (!rolled_back.ok()) {
        spdlog::error("state store {}: rollback failed: {}", path_, rolled_back.ToString());
      }
    }
    if (status.code() != absl::StatusCode::kAborted) {
      // After a storage error, believe the file rather than the counters.
      const absl::Status reloaded = LoadCountersLocked();
      if (!reloaded.ok()) {
        spdlog::error("state store {}: cannot re-read counters: {}", path_, reloaded.ToString());
      }
    }
    return status;
  }
  revision_ = new_revision;
  event_sequence_ += txn.events().size();
  // Waiters in WaitForRevision re-check their condition when mu_ is released.
  return new_revision;
}

absl::StatusOr<uint64_t> SqliteStore::FirstEventSequenceLocked() const {
  auto reset = ResetGuard(*first_event_);
  ASSIGN_OR_RETURN(const bool row, first_event_->Step());
  return row ? static_cast<uint64_t>(first_event_->ColumnInt64(0)) : 0;
}

absl::StatusOr<std::vector<v1::Event>> SqliteStore::ReadEvents(uint64_t after_sequence,
                                                               int limit) const {
  if (limit < 1 || limit > kMaxReadEvents) {
    return absl::InvalidArgumentError(
        absl::StrCat("event read limit ", limit, " is outside 1..", kMaxReadEvents));
  }
  absl::MutexLock lock(&mu_);
  std::vector<v1::Event> events;
  if (after_sequence >= event_sequence_) return events;
  ASSIGN_OR_RETURN(const uint64_t first, FirstEventSequenceLocked());
  if (first == 0 || after_sequence + 1 < first) {
    return absl::OutOfRangeError(absl::StrCat(
        "events ", after_sequence + 1, "..", first == 0 ? event_sequence_ : first - 1,
        " were dropped by retention (the last ", options_.max_events,
        " are kept); the oldest kept is ", first, ", resume after ", first == 0 ? 0 : first - 1));
  }
  auto reset = ResetGuard(*read_events_);
  read_events_->BindInt64(1, static_cast<int64_t>(after_sequence));
  read_events_->BindInt64(2, limit);
  while (true) {
    ASSIGN_OR_RETURN(const bool row, read_events_->Step());
    if (!row) break;
    const int64_t sequence = read_events_->ColumnInt64(0);
    v1::Event event;
    RETURN_IF_ERROR(
        ParseStoredValue(absl::StrCat("event ", sequence), read_events_->ColumnBytes(1), event));
    event.set_sequence(static_cast<uint64_t>(sequence));
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<EventLogInfo> SqliteStore::GetEventLogInfo() const {
  absl::MutexLock lock(&mu_);
  EventLogInfo info;
  ASSIGN_OR_RETURN(info.first_sequence, FirstEventSequenceLocked());
  info.last_sequence = event_sequence_;
  return info;
}

absl::StatusOr<int64_t> SqliteStore::WaitForRevision(int64_t after, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto newer = [this, after]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return revision_ > after; };
  if (!mu_.AwaitWithDeadline(absl::Condition(&newer), deadline)) {
    return absl::DeadlineExceededError(absl::StrCat("state store ", path_, ": revision still ",
                                                    revision_, " (waited for > ", after, ")"));
  }
  return revision_;
}

absl::StatusOr<std::string> SqliteStore::PragmaValue(absl::string_view name) const {
  if (name != "journal_mode" && name != "synchronous" && name != "foreign_keys" &&
      name != "busy_timeout") {
    return absl::InvalidArgumentError(absl::StrCat("PragmaValue: unsupported pragma ", name));
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto pragma, Statement::Prepare(*this, db_, absl::StrCat("PRAGMA ", name)));
  auto reset = ResetGuard(*pragma);
  ASSIGN_OR_RETURN(const bool row, pragma->Step());
  if (!row) return absl::InternalError(absl::StrCat("PRAGMA ", name, " returned no row"));
  return pragma->ColumnBytes(0);
}

}  // namespace jailover::coordinator::store

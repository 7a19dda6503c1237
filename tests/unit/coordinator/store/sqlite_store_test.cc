// SqliteStore: the StateStore conformance suite on a temporary file, plus
// what only the SQLite store has: durability pragmas, the schema version and
// its migrations, refusing files it must not touch, and whole commits after
// a killed writer.
#include "coordinator/store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/store/state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tests/unit/coordinator/store/state_store_conformance.h"

namespace jailover::coordinator::store {
namespace {

using ::testing::HasSubstr;

// A SQLite file in a temporary directory that lives as long as the harness.
class SqliteHarness final : public StateStoreHarness {
 public:
  SqliteHarness() : dir_("sqlite_store"), path_(dir_.path() + "/state.db") {}
  absl::StatusOr<std::unique_ptr<StateStore>> Open(uint64_t max_events) override {
    SqliteStoreOptions options;
    if (max_events > 0) options.max_events = max_events;
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_, options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<StateStore>(std::move(*store));
  }

 private:
  jailover::testing::ScopedTempDir dir_;
  std::string path_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StateStoreConformanceTest,
                         ::testing::Values(StateStoreConformanceParam{
                             .name = "Sqlite",
                             .make_harness = [] { return std::make_unique<SqliteHarness>(); },
                             .supports_reopen = true,
                             .dense_revisions = true}),
                         StateStoreConformanceParamName);

// Raw access to a database file, bypassing the store (to inspect it or to
// make it into something the store must refuse).
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
        SQLITE_OK);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  // The first column of the first row as text ("" if none).
  std::string QueryOne(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db_);
    std::string out;
    if (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) out = reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const SqliteStoreOptions& options = {}) {
    return SqliteStore::Open(path_, options);
  }
  std::unique_ptr<SqliteStore> MustOpen() {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = Open();
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void WriteFile(const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
    ASSERT_TRUE(out.good());
  }

  jailover::testing::ScopedTempDir dir_{"sqlite_store"};
  const std::string path_ = dir_.path() + "/state.db";
};

TEST_F(SqliteStoreTest, DurabilityPragmasAreInEffect) {
  std::unique_ptr<SqliteStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->PragmaValue("journal_mode").value_or("?"), "wal");
  EXPECT_EQ(store->PragmaValue("synchronous").value_or("?"), "2");  // FULL
  EXPECT_EQ(store->PragmaValue("foreign_keys").value_or("?"), "1");
  EXPECT_EQ(store->PragmaValue("busy_timeout").value_or("?"), "5000");
  EXPECT_EQ(store->PragmaValue("user_version; DROP TABLE kv").status().code(),
            absl::StatusCode::kInvalidArgument);
  store.reset();
  // WAL is a property of the file: another connection sees it too.
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryOne("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, NewFileRecordsEveryMigration) {
  std::unique_ptr<SqliteStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), SqliteStore::LatestSchemaVersion());
  EXPECT_GE(SqliteStore::LatestSchemaVersion(), 1);
  store.reset();
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM schema_migrations"),
            absl::StrCat(SqliteStore::LatestSchemaVersion()));
  EXPECT_EQ(raw.QueryOne("SELECT MAX(version) FROM schema_migrations"),
            absl::StrCat(SqliteStore::LatestSchemaVersion()));
  EXPECT_EQ(raw.QueryOne("SELECT description FROM schema_migrations WHERE version = 1"),
            "initial schema: kv, events, meta");
}

TEST_F(SqliteStoreTest, FileAtVersionZeroIsMigratedForward) {
  {
    // A file whose migrations table exists but has none applied yet.
    RawDb raw(path_);
    raw.Exec(
        "CREATE TABLE schema_migrations ("
        "version INTEGER PRIMARY KEY NOT NULL, description TEXT NOT NULL)");
  }
  std::unique_ptr<SqliteStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), SqliteStore::LatestSchemaVersion());
  EXPECT_TRUE(store->Commit(Txn().Put("hosts/h1", "v")).ok());
}

TEST_F(SqliteStoreTest, ReopeningAtTheSameVersionChangesNothing) {
  std::unique_ptr<SqliteStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(Txn().Put("hosts/h1", "v")).ok());
  store.reset();
  store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Revision().value_or(-1), 1);
  store.reset();
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM schema_migrations"),
            absl::StrCat(SqliteStore::LatestSchemaVersion()));
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefusedAndLeftUntouched) {
  {
    std::unique_ptr<SqliteStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(Txn().Put("jails/web01", "keep me")).ok());
  }
  {
    RawDb raw(path_);
    raw.Exec("INSERT INTO schema_migrations (version, description) VALUES (99, 'from the future')");
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
  EXPECT_THAT(store.status().message(), HasSubstr("newer jailover"));
  EXPECT_THAT(store.status().message(), HasSubstr(path_));

  RawDb raw(path_);
  EXPECT_EQ(raw.QueryOne("SELECT MAX(version) FROM schema_migrations"), "99");
  EXPECT_EQ(raw.QueryOne("SELECT value FROM kv WHERE key = 'jails/web01'"), "keep me");
}

TEST_F(SqliteStoreTest, ForeignSqliteDatabaseIsRefused) {
  {
    RawDb raw(path_);
    raw.Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)");
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("not a jailover state store"));
  EXPECT_THAT(store.status().message(), HasSubstr("customers"));
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryOne("SELECT COUNT(*) FROM sqlite_master WHERE name = 'kv'"), "0");
}

TEST_F(SqliteStoreTest, GarbageFileIsDataLossAndLeftAsItWas) {
  std::string garbage;
  uint32_t x = 12345;
  for (int i = 0; i < 8192; ++i) {
    x = x * 1103515245u + 12345u;
    garbage.push_back(static_cast<char>(x >> 24));
  }
  WriteFile(garbage);
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("not a usable SQLite database"));
  EXPECT_EQ(jailover::testing::ReadFileOrEmpty(path_), garbage);
}

TEST_F(SqliteStoreTest, DatabaseWithDamagedPagesIsDataLoss) {
  {
    std::unique_ptr<SqliteStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(
          store->Commit(Txn().Put(absl::StrCat("hosts/h", i), std::string(2000, 'v'))).ok());
    }
  }
  // Keep the 100-byte header, overwrite everything after the first page.
  std::string bytes = jailover::testing::ReadFileOrEmpty(path_);
  ASSERT_GT(bytes.size(), 8192u);
  for (size_t i = 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ (i * 31));
  WriteFile(bytes);
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = Open();
  ASSERT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, BadOptionsAndPathsAreErrors) {
  SqliteStoreOptions options;
  options.max_events = 0;
  EXPECT_EQ(Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteStore::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<SqliteStore>> missing =
      SqliteStore::Open(dir_.path() + "/no/such/dir/state.db");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("no/such/dir/state.db"));
}

TEST_F(SqliteStoreTest, SecondOpenOfTheSameFileIsRefusedUntilTheFirstCloses) {
  std::unique_ptr<SqliteStore> first = MustOpen();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Commit(Txn().Put("hosts/h1", "v")).ok());
  absl::StatusOr<std::unique_ptr<SqliteStore>> second = Open();
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another coordinator"));
  // The refused open did not disturb the first.
  EXPECT_EQ(first->Revision().value_or(-1), 1);
  ASSERT_TRUE(first->Commit(Txn().Put("hosts/h2", "v")).ok());
  first.reset();
  std::unique_ptr<SqliteStore> again = MustOpen();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Revision().value_or(-1), 2);
}

TEST_F(SqliteStoreTest, InMemoryStoreWorks) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_EQ((*store)->Commit(Txn().Put("hosts/h1", "v")).value_or(-1), 1);
  EXPECT_EQ((*store)->Get("hosts/h1").value().value().value, "v");
}

// Kills a child process that commits in a loop, three times, reopening in
// between: every commit the child saw acknowledged survives, and the file
// holds only whole commits (both keys of a commit, its event, its revision).
TEST_F(SqliteStoreTest, KilledWriterLeavesOnlyWholeCommits) {
  ASSERT_NE(MustOpen(), nullptr);  // Create the file, then close it.
  int64_t acked = 0;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);
      if (!store.ok()) _exit(2);
      int64_t next = (*store)->Revision().value_or(-1) + 1;
      for (;; ++next) {
        v1::Event event;
        event.set_type("test.commit");
        event.set_reason(absl::StrCat(next));
        Txn txn;
        txn.Put("hosts/a", absl::StrCat(next))
            .Put("hosts/b", absl::StrCat(next))
            .AppendEvent(event);
        absl::StatusOr<int64_t> revision = (*store)->Commit(txn);
        if (!revision.ok() || *revision != next) _exit(3);
        if (write(fds[1], &next, sizeof(next)) != sizeof(next)) _exit(4);
      }
    }
    close(fds[1]);
    // Let the child commit a number of times, then kill it mid-loop.
    const int64_t wanted = acked + 20;
    while (acked < wanted) {
      int64_t value = 0;
      const ssize_t n = read(fds[0], &value, sizeof(value));
      if (n != static_cast<ssize_t>(sizeof(value))) break;
      acked = value;
    }
    kill(pid, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(wstatus))
        << "child exited early with status " << (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    ASSERT_GE(acked, wanted);

    std::unique_ptr<SqliteStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    const int64_t revision = store->Revision().value_or(-1);
    EXPECT_GE(revision, acked);  // Nothing acknowledged is lost.
    std::optional<KeyValue> a = store->Get("hosts/a").value_or(std::nullopt);
    std::optional<KeyValue> b = store->Get("hosts/b").value_or(std::nullopt);
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(a->value, absl::StrCat(revision));
    EXPECT_EQ(b->value, absl::StrCat(revision));
    EXPECT_EQ(a->mod_revision, revision);
    EXPECT_EQ(b->mod_revision, revision);
    absl::StatusOr<EventLogInfo> info = store->GetEventLogInfo();
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->last_sequence, static_cast<uint64_t>(revision));
    absl::StatusOr<std::vector<v1::Event>> events = store->ReadEvents(0, 10000);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->size(), static_cast<size_t>(revision));
    EXPECT_EQ(events->back().reason(), absl::StrCat(revision));
    acked = revision;
  }
}

}  // namespace
}  // namespace jailover::coordinator::store

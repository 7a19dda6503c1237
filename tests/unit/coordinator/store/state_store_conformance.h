// StateStoreConformanceTest: the one test suite every StateStore
// implementation must pass (SQLite now, etcd later). A store's test binary
// includes this header exactly once (it defines the TEST_Ps) and
// instantiates the suite with a harness factory:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StateStoreConformanceTest,
//                            ::testing::Values(StateStoreConformanceParam{...}),
//                            StateStoreConformanceParamName);
//
// The suite checks the contract of state_store.h: keys and revisions (create
// vs mod), one revision step per commit and none for a failed one,
// compare-and-swap (create-only, update at the right revision, a stale
// revision aborts the whole txn including its events), two writers racing on
// one key (exactly one wins each round, no lost update), event sequences,
// resume and retention, WaitForRevision, bad keys, persistence across
// reopening, and the typed helpers.
#pragma once

#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "coordinator/store/state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::store {

// The backing data of one test. Open() returns a store over it; calling Open
// again after the previous store was destroyed must show the same data (for
// stores that persist; see supports_reopen).
class StateStoreHarness {
 public:
  virtual ~StateStoreHarness() = default;
  // `max_events` = event retention (keep the newest N); 0 = store default.
  virtual absl::StatusOr<std::unique_ptr<StateStore>> Open(uint64_t max_events) = 0;
};

struct StateStoreConformanceParam {
  // Test name suffix: letters, digits, underscores.
  std::string name;
  // A harness over fresh, empty data each call.
  std::function<std::unique_ptr<StateStoreHarness>()> make_harness;
  // Open() after the store was destroyed shows the same data.
  bool supports_reopen = true;
  // The revision rises by exactly one per commit. A store whose revision
  // also counts writes outside the StateStore (etcd shared with leader
  // election) sets false: then only "strictly increasing" is checked.
  bool dense_revisions = true;
};

// gtest prints a parameter in test listings (ctest's test names); without
// this it would dump the struct's bytes, pointers included.
inline void PrintTo(const StateStoreConformanceParam& param, std::ostream* out) {
  *out << param.name;
}

inline std::string StateStoreConformanceParamName(
    const ::testing::TestParamInfo<StateStoreConformanceParam>& info) {
  return info.param.name;
}

class StateStoreConformanceTest : public ::testing::TestWithParam<StateStoreConformanceParam> {
 protected:
  void SetUp() override {
    harness_ = GetParam().make_harness();
    ASSERT_NE(harness_, nullptr);
    OpenStore();
  }
  void TearDown() override {
    store_.reset();  // Before the harness and its data.
    harness_.reset();
  }

  void OpenStore(uint64_t max_events = 0) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<StateStore>> store = harness_->Open(max_events);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Checks that `next` is the revision after `prev`.
  void ExpectNextRevision(int64_t prev, int64_t next) {
    if (GetParam().dense_revisions) {
      EXPECT_EQ(next, prev + 1);
    } else {
      EXPECT_GT(next, prev);
    }
  }

  int64_t CurrentRevision() {
    absl::StatusOr<int64_t> revision = store_->Revision();
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.ok() ? *revision : -1;
  }

  // Commits `txn`, failing the test (and returning -1) if it does not commit.
  int64_t MustCommit(const Txn& txn) {
    absl::StatusOr<int64_t> revision = store_->Commit(txn);
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.ok() ? *revision : -1;
  }

  std::optional<KeyValue> MustGet(const std::string& key) {
    absl::StatusOr<std::optional<KeyValue>> kv = store_->Get(key);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? *kv : std::nullopt;
  }

  std::vector<std::string> ListKeys(const std::string& prefix) {
    absl::StatusOr<ListResult> list = store_->List(prefix);
    EXPECT_TRUE(list.ok()) << list.status();
    std::vector<std::string> keys;
    if (list.ok()) {
      for (const KeyValue& kv : list->entries) keys.push_back(kv.key);
    }
    return keys;
  }

  std::vector<v1::Event> MustReadEvents(uint64_t after, int limit = 1000) {
    absl::StatusOr<std::vector<v1::Event>> events = store_->ReadEvents(after, limit);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *events : std::vector<v1::Event>();
  }

  static v1::Event MakeEvent(const std::string& type, const std::string& reason) {
    v1::Event event;
    event.set_type(type);
    event.set_reason(reason);
    event.set_severity(v1::SEVERITY_INFO);
    return event;
  }

  std::unique_ptr<StateStoreHarness> harness_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(StateStoreConformanceTest, NewStoreIsEmpty) {
  EXPECT_EQ(CurrentRevision(), 0);
  EXPECT_FALSE(MustGet("hosts/h1").has_value());
  EXPECT_THAT(ListKeys(""), ::testing::IsEmpty());
  EXPECT_THAT(MustReadEvents(0), ::testing::IsEmpty());
  absl::StatusOr<EventLogInfo> info = store_->GetEventLogInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->first_sequence, 0u);
  EXPECT_EQ(info->last_sequence, 0u);
}

TEST_P(StateStoreConformanceTest, PutGetListTrackCreateAndModRevisions) {
  const int64_t r1 = MustCommit(Txn().Put("hosts/h1", "host-v1"));
  ExpectNextRevision(0, r1);
  std::optional<KeyValue> h1 = MustGet("hosts/h1");
  ASSERT_TRUE(h1.has_value());
  EXPECT_EQ(h1->key, "hosts/h1");
  EXPECT_EQ(h1->value, "host-v1");
  EXPECT_EQ(h1->create_revision, r1);
  EXPECT_EQ(h1->mod_revision, r1);

  const int64_t r2 = MustCommit(Txn().Put("jails/web02", "b").Put("jails/web01", "a"));
  ExpectNextRevision(r1, r2);
  const int64_t r3 = MustCommit(Txn().Put("hosts/h1", "host-v2"));
  ExpectNextRevision(r2, r3);

  h1 = MustGet("hosts/h1");
  ASSERT_TRUE(h1.has_value());
  EXPECT_EQ(h1->value, "host-v2");
  EXPECT_EQ(h1->create_revision, r1);
  EXPECT_EQ(h1->mod_revision, r3);

  absl::StatusOr<ListResult> jails = store_->List(std::string(kJailsPrefix));
  ASSERT_TRUE(jails.ok()) << jails.status();
  EXPECT_EQ(jails->revision, r3);
  ASSERT_EQ(jails->entries.size(), 2u);
  EXPECT_EQ(jails->entries[0].key, "jails/web01");
  EXPECT_EQ(jails->entries[0].value, "a");
  EXPECT_EQ(jails->entries[1].key, "jails/web02");
  EXPECT_EQ(jails->entries[1].value, "b");
  for (const KeyValue& kv : jails->entries) {
    EXPECT_EQ(kv.create_revision, r2);
    EXPECT_EQ(kv.mod_revision, r2);
  }
  EXPECT_THAT(ListKeys(""), ::testing::ElementsAre("hosts/h1", "jails/web01", "jails/web02"));
  EXPECT_THAT(ListKeys("hosts/"), ::testing::ElementsAre("hosts/h1"));
  EXPECT_THAT(ListKeys("jails/web02"), ::testing::ElementsAre("jails/web02"));
  EXPECT_THAT(ListKeys("images/"), ::testing::IsEmpty());
  EXPECT_EQ(CurrentRevision(), r3);
}

TEST_P(StateStoreConformanceTest, PrefixListDoesNotLeakIntoNeighbouringKinds) {
  MustCommit(Txn().Put("vips/v1", "x").Put("hosts/h1", "y").Put("images/i1", "z"));
  // "hosts" sorts between "hosts/" and "hosts0"; nothing else may match.
  EXPECT_THAT(ListKeys("host"), ::testing::ElementsAre("hosts/h1"));
  EXPECT_THAT(ListKeys("vips/"), ::testing::ElementsAre("vips/v1"));
  EXPECT_THAT(ListKeys("images/i1"), ::testing::ElementsAre("images/i1"));
  EXPECT_THAT(ListKeys("images/i2"), ::testing::IsEmpty());
}

TEST_P(StateStoreConformanceTest, EmptyValueIsStoredAsEmpty) {
  MustCommit(Txn().Put("images/i1", ""));
  std::optional<KeyValue> kv = MustGet("images/i1");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "");
}

TEST_P(StateStoreConformanceTest, BinaryValuesRoundTrip) {
  const std::string value("\0\x01\xff\n\0end", 8);
  MustCommit(Txn().Put("images/i1", value));
  std::optional<KeyValue> kv = MustGet("images/i1");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, value);
}

TEST_P(StateStoreConformanceTest, DeleteRemovesKeyAndRecreateStartsNewCreateRevision) {
  const int64_t r1 = MustCommit(Txn().Put("vips/v1", "one").Put("vips/v2", "two"));
  const int64_t r2 = MustCommit(Txn().Delete("vips/v1"));
  ExpectNextRevision(r1, r2);
  EXPECT_FALSE(MustGet("vips/v1").has_value());
  EXPECT_THAT(ListKeys("vips/"), ::testing::ElementsAre("vips/v2"));

  // Deleting a missing key is not an error, and it is still a commit.
  const int64_t r3 = MustCommit(Txn().Delete("vips/v1"));
  ExpectNextRevision(r2, r3);

  const int64_t r4 = MustCommit(Txn().Put("vips/v1", "again"));
  std::optional<KeyValue> v1 = MustGet("vips/v1");
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(v1->value, "again");
  EXPECT_EQ(v1->create_revision, r4);
  EXPECT_EQ(v1->mod_revision, r4);
}

TEST_P(StateStoreConformanceTest, CreateOnlyCompareWithZero) {
  const int64_t r1 = MustCommit(Txn().ExpectAbsent("jails/web01").Put("jails/web01", "first"));
  ExpectNextRevision(0, r1);

  absl::StatusOr<int64_t> second =
      store_->Commit(Txn().ExpectAbsent("jails/web01").Put("jails/web01", "second"));
  ASSERT_EQ(second.status().code(), absl::StatusCode::kAborted) << second.status();
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr("jails/web01"));
  EXPECT_THAT(second.status().message(), ::testing::HasSubstr(absl::StrCat("mod_revision ", r1)));
  EXPECT_EQ(CurrentRevision(), r1);
  EXPECT_EQ(MustGet("jails/web01")->value, "first");
}

TEST_P(StateStoreConformanceTest, UpdateAtCurrentModRevisionSucceeds) {
  const int64_t r1 = MustCommit(Txn().Put("jails/web01", "v1"));
  const int64_t r2 =
      MustCommit(Txn().ExpectModRevision("jails/web01", r1).Put("jails/web01", "v2"));
  ExpectNextRevision(r1, r2);
  std::optional<KeyValue> kv = MustGet("jails/web01");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, "v2");
  EXPECT_EQ(kv->mod_revision, r2);
  EXPECT_EQ(kv->create_revision, r1);
}

TEST_P(StateStoreConformanceTest, StaleCompareAbortsWholeTxnIncludingEvents) {
  const int64_t r1 =
      MustCommit(Txn().Put("hosts/h1", "v1").AppendEvent(MakeEvent("host.state", "added")));
  const int64_t r2 = MustCommit(Txn().Put("hosts/h1", "v2"));
  ASSERT_GT(r2, r1);

  Txn txn;
  txn.ExpectModRevision("hosts/h1", r1)
      .Put("hosts/h1", "v3")
      .Put("jails/web01", "new")
      .Delete("images/i1")
      .AppendEvent(MakeEvent("host.state", "must not appear"));
  absl::StatusOr<int64_t> result = store_->Commit(txn);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kAborted) << result.status();
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("hosts/h1"));
  EXPECT_THAT(result.status().message(),
              ::testing::HasSubstr(absl::StrCat("expected mod_revision ", r1)));
  EXPECT_THAT(result.status().message(),
              ::testing::HasSubstr(absl::StrCat("found mod_revision ", r2)));

  EXPECT_EQ(CurrentRevision(), r2);
  EXPECT_EQ(MustGet("hosts/h1")->value, "v2");
  EXPECT_FALSE(MustGet("jails/web01").has_value());
  const std::vector<v1::Event> events = MustReadEvents(0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].reason(), "added");
  EXPECT_EQ(store_->GetEventLogInfo()->last_sequence, 1u);

  // The next successful commit takes the very next revision and sequence.
  const int64_t r3 = MustCommit(
      Txn().Put("jails/web01", "x").AppendEvent(MakeEvent("jail.phase", "after the abort")));
  ExpectNextRevision(r2, r3);
  EXPECT_EQ(MustReadEvents(1).at(0).sequence(), 2u);
}

TEST_P(StateStoreConformanceTest, EveryCompareMustHold) {
  const int64_t r1 = MustCommit(Txn().Put("hosts/h1", "a").Put("hosts/h2", "b"));
  // The first compare holds, the second (h2 must not exist) does not.
  absl::StatusOr<int64_t> result = store_->Commit(
      Txn().ExpectModRevision("hosts/h1", r1).ExpectAbsent("hosts/h2").Put("hosts/h3", "c"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kAborted) << result.status();
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("hosts/h2"));
  EXPECT_FALSE(MustGet("hosts/h3").has_value());
  EXPECT_EQ(CurrentRevision(), r1);

  // A compare on a key that was deleted: expected revision no longer matches.
  const int64_t r2 = MustCommit(Txn().Delete("hosts/h2"));
  result = store_->Commit(Txn().ExpectModRevision("hosts/h2", r1).Put("hosts/h2", "back"));
  ASSERT_EQ(result.status().code(), absl::StatusCode::kAborted) << result.status();
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("no such key"));
  EXPECT_EQ(CurrentRevision(), r2);
}

TEST_P(StateStoreConformanceTest, BadKeysAreInvalidArgumentAndChangeNothing) {
  const int64_t r1 = MustCommit(Txn().Put("hosts/h1", "v"));
  for (const std::string& key :
       {std::string(""), std::string("hosts"), std::string("hosts/"), std::string("/h1"),
        std::string("pets/rex"), std::string("hosts/bad name"), std::string("hosts/.."),
        std::string("hosts/a/b"), std::string("jails/-dash"), std::string(64 + 6, 'x'),
        std::string("jails/") + std::string(64, 'a'), std::string("operations/a b")}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(store_->Get(key).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Commit(Txn().Put(key, "v")).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Commit(Txn().Delete(key)).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Commit(Txn().ExpectAbsent(key).Put("hosts/h2", "v")).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  // A bad key anywhere in the txn rejects all of it.
  EXPECT_EQ(store_->Commit(Txn().Put("hosts/h2", "v").Put("pets/rex", "v")).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Malformed transactions.
  EXPECT_EQ(store_->Commit(Txn()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Commit(Txn().ExpectAbsent("hosts/h2")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Commit(Txn().Put("hosts/h2", "a").Delete("hosts/h2")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Commit(Txn().Put("hosts/h2", "a").AppendEvent(v1::Event())).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store_->Commit(Txn().ExpectModRevision("hosts/h1", -1).Put("hosts/h2", "a")).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store_->Commit(Txn().Put("hosts/h2", std::string(kMaxValueBytes + 1, 'x'))).status().code(),
      absl::StatusCode::kInvalidArgument);
  Txn too_big;
  for (size_t i = 0; i <= kMaxTxnWrites; ++i) too_big.Put(absl::StrCat("hosts/h", i), "v");
  EXPECT_EQ(store_->Commit(too_big).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List("hosts/\n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ReadEvents(0, 0).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(CurrentRevision(), r1);
  EXPECT_THAT(ListKeys(""), ::testing::ElementsAre("hosts/h1"));
  EXPECT_THAT(MustReadEvents(0), ::testing::IsEmpty());
}

TEST_P(StateStoreConformanceTest, OperationKeysAcceptOperationIds) {
  MustCommit(Txn().Put("operations/6f1c2e9a-0b7d-4e55-9a3b-2f0c1d2e3f40:3", "step"));
  EXPECT_THAT(ListKeys("operations/"),
              ::testing::ElementsAre("operations/6f1c2e9a-0b7d-4e55-9a3b-2f0c1d2e3f40:3"));
}

TEST_P(StateStoreConformanceTest, TwoWritersRacingOnOneKeyExactlyOneWinsEachRound) {
  constexpr int kRounds = 40;
  int64_t revision = MustCommit(Txn().Put("jails/web01", "start"));
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    // Both writers read the same mod_revision, then both try to replace it.
    absl::StatusOr<int64_t> results[2];
    std::latch start(2);
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        start.arrive_and_wait();
        results[w] = store_->Commit(Txn()
                                        .ExpectModRevision("jails/web01", revision)
                                        .Put("jails/web01", absl::StrCat("round ", round, " w", w))
                                        .AppendEvent(MakeEvent("jail.phase", "w")));
      });
    }
    for (std::thread& t : writers) t.join();
    const int wins = (results[0].ok() ? 1 : 0) + (results[1].ok() ? 1 : 0);
    ASSERT_EQ(wins, 1) << results[0].status() << " / " << results[1].status();
    const int winner = results[0].ok() ? 0 : 1;
    EXPECT_EQ(results[1 - winner].status().code(), absl::StatusCode::kAborted);
    ExpectNextRevision(revision, *results[winner]);
    std::optional<KeyValue> kv = MustGet("jails/web01");
    ASSERT_TRUE(kv.has_value());
    EXPECT_EQ(kv->value, absl::StrCat("round ", round, " w", winner));
    EXPECT_EQ(kv->mod_revision, *results[winner]);
    revision = *results[winner];
  }
  // One event per round: the losers' events were not appended.
  EXPECT_EQ(MustReadEvents(0).size(), static_cast<size_t>(kRounds));
}

TEST_P(StateStoreConformanceTest, ConcurrentReadModifyWriteLosesNoUpdate) {
  constexpr int kThreads = 3;
  constexpr int kIncrements = 30;
  MustCommit(Txn().Put("operations/counter", "0"));
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<absl::Status> failures(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIncrements; ++i) {
        absl::StatusOr<int64_t> committed = CommitWithRetry(
            *store_,
            [&]() -> absl::StatusOr<Txn> {
              absl::StatusOr<std::optional<KeyValue>> kv = store_->Get("operations/counter");
              if (!kv.ok()) return kv.status();
              int value = 0;
              if (!kv->has_value() || !absl::SimpleAtoi((*kv)->value, &value)) {
                return absl::InternalError("counter missing or not a number");
              }
              Txn txn;
              txn.ExpectModRevision("operations/counter", (*kv)->mod_revision)
                  .Put("operations/counter", absl::StrCat(value + 1));
              return txn;
            },
            /*max_attempts=*/1000);
        if (!committed.ok()) {
          failures[t] = committed.status();
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& failure : failures) EXPECT_TRUE(failure.ok()) << failure;
  std::optional<KeyValue> kv = MustGet("operations/counter");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, absl::StrCat(kThreads * kIncrements));
}

TEST_P(StateStoreConformanceTest, CommitWithRetryGivesUpWithAborted) {
  const int64_t r1 = MustCommit(Txn().Put("hosts/h1", "v"));
  int calls = 0;
  absl::StatusOr<int64_t> result = CommitWithRetry(
      *store_,
      [&]() -> absl::StatusOr<Txn> {
        ++calls;
        Txn txn;
        txn.ExpectModRevision("hosts/h1", r1 + 100).Put("hosts/h1", "never");
        return txn;
      },
      3);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(), ::testing::HasSubstr("hosts/h1"));
  EXPECT_EQ(calls, 3);
  // An error from the builder is returned as is, without retrying.
  calls = 0;
  result = CommitWithRetry(*store_, [&]() -> absl::StatusOr<Txn> {
    ++calls;
    return absl::NotFoundError("jail web01 is gone");
  });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(MustGet("hosts/h1")->value, "v");
}

TEST_P(StateStoreConformanceTest, EventsGetIncreasingSequencesAndResume) {
  v1::Event first = MakeEvent("host.state", "one");
  first.set_sequence(77);  // Ignored: the store assigns sequences.
  first.set_host("h1");
  first.set_from_value("READY");
  first.set_to_value("SUSPECT");
  const int64_t r1 = MustCommit(Txn().AppendEvent(first).AppendEvent(MakeEvent("x", "two")));
  ExpectNextRevision(0, r1);  // An events-only commit is a commit.
  MustCommit(Txn().Put("jails/web01", "j").AppendEvent(MakeEvent("jail.phase", "three")));

  const std::vector<v1::Event> all = MustReadEvents(0);
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].sequence(), i + 1);
  EXPECT_EQ(all[0].reason(), "one");
  EXPECT_EQ(all[0].host(), "h1");
  EXPECT_EQ(all[0].from_value(), "READY");
  EXPECT_EQ(all[0].to_value(), "SUSPECT");
  EXPECT_EQ(all[1].reason(), "two");
  EXPECT_EQ(all[2].type(), "jail.phase");

  // Resume after a sequence, in pages.
  std::vector<v1::Event> page = MustReadEvents(1, 1);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].reason(), "two");
  page = MustReadEvents(2, 10);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].reason(), "three");
  EXPECT_THAT(MustReadEvents(3), ::testing::IsEmpty());
  EXPECT_THAT(MustReadEvents(100), ::testing::IsEmpty());

  absl::StatusOr<EventLogInfo> info = store_->GetEventLogInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->first_sequence, 1u);
  EXPECT_EQ(info->last_sequence, 3u);
}

TEST_P(StateStoreConformanceTest, EventRetentionKeepsNewestAndReportsDroppedRange) {
  OpenStore(/*max_events=*/3);
  for (int i = 1; i <= 5; ++i) {
    MustCommit(Txn().AppendEvent(MakeEvent("x", absl::StrCat("event ", i))));
  }
  absl::StatusOr<EventLogInfo> info = store_->GetEventLogInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->first_sequence, 3u);
  EXPECT_EQ(info->last_sequence, 5u);

  const std::vector<v1::Event> kept = MustReadEvents(2);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].sequence(), 3u);
  EXPECT_EQ(kept[0].reason(), "event 3");
  EXPECT_EQ(kept[2].sequence(), 5u);

  for (uint64_t after : {0u, 1u}) {
    absl::StatusOr<std::vector<v1::Event>> lost = store_->ReadEvents(after, 10);
    EXPECT_EQ(lost.status().code(), absl::StatusCode::kOutOfRange) << after;
    EXPECT_THAT(lost.status().message(), ::testing::HasSubstr("oldest kept is 3"));
  }
  // Sequences are not reused after dropping.
  MustCommit(Txn().AppendEvent(MakeEvent("x", "event 6")));
  EXPECT_EQ(MustReadEvents(5).at(0).sequence(), 6u);
}

TEST_P(StateStoreConformanceTest, WaitForRevisionWakesOnCommit) {
  const int64_t before = CurrentRevision();
  absl::StatusOr<int64_t> woke = absl::UnknownError("not run");
  std::latch started(1);
  std::thread waiter([&] {
    started.count_down();
    woke = store_->WaitForRevision(before, absl::Now() + absl::Seconds(60));
  });
  started.wait();
  const int64_t committed = MustCommit(Txn().Put("hosts/h1", "v"));
  waiter.join();
  ASSERT_TRUE(woke.ok()) << woke.status();
  EXPECT_GE(*woke, committed);
  EXPECT_GT(*woke, before);
}

TEST_P(StateStoreConformanceTest, WaitForRevisionReturnsAtOnceOrTimesOut) {
  const int64_t r1 = MustCommit(Txn().Put("hosts/h1", "v"));
  // Already newer: returns at once even with a deadline in the past.
  absl::StatusOr<int64_t> now = store_->WaitForRevision(r1 - 1, absl::InfinitePast());
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(*now, r1);
  // Nothing newer: DeadlineExceeded at the deadline.
  EXPECT_EQ(store_->WaitForRevision(r1, absl::InfinitePast()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(store_->WaitForRevision(r1, absl::Now() + absl::Milliseconds(20)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_P(StateStoreConformanceTest, ReopenKeepsDataRevisionsAndEventSequence) {
  if (!GetParam().supports_reopen) GTEST_SKIP() << "store does not persist";
  const int64_t r1 =
      MustCommit(Txn().Put("hosts/h1", "v1").AppendEvent(MakeEvent("host.state", "a")));
  const int64_t r2 = MustCommit(Txn()
                                    .Put("jails/web01", "j")
                                    .Put("hosts/h1", "v2")
                                    .AppendEvent(MakeEvent("jail.phase", "b")));

  OpenStore();
  EXPECT_EQ(CurrentRevision(), r2);
  std::optional<KeyValue> h1 = MustGet("hosts/h1");
  ASSERT_TRUE(h1.has_value());
  EXPECT_EQ(h1->value, "v2");
  EXPECT_EQ(h1->create_revision, r1);
  EXPECT_EQ(h1->mod_revision, r2);
  EXPECT_THAT(ListKeys(""), ::testing::ElementsAre("hosts/h1", "jails/web01"));
  EXPECT_EQ(MustReadEvents(0).size(), 2u);

  const int64_t r3 = MustCommit(Txn().AppendEvent(MakeEvent("x", "c")));
  ExpectNextRevision(r2, r3);
  const std::vector<v1::Event> events = MustReadEvents(2);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].sequence(), 3u);
}

TEST_P(StateStoreConformanceTest, TypedHelpersRoundTripEveryKind) {
  v1::Host host;
  host.set_name("h1");
  host.set_agent_address("10.0.0.1:7443");
  host.add_roles(v1::HOST_ROLE_JAIL);
  host.mutable_status()->set_state(v1::HOST_STATE_READY);
  v1::Image image;
  image.mutable_spec()->set_name("web01");
  image.mutable_grant()->set_host("h1");
  image.mutable_grant()->set_epoch(7);
  v1::Jail jail;
  jail.set_name("web01");
  jail.set_image("web01");
  jail.mutable_placement()->add_standbys("h2");
  v1::VipSpec vip;
  vip.set_name("web01-vip");
  vip.set_vhid(12);
  v1::Operation op;
  op.set_id("6f1c2e9a-0b7d-4e55-9a3b-2f0c1d2e3f40");
  op.set_kind(v1::OPERATION_KIND_FAILOVER);
  op.add_steps()->set_name("fence");

  EXPECT_EQ(ObjectKey(host), "hosts/h1");
  EXPECT_EQ(ObjectKey(image), "images/web01");
  EXPECT_EQ(ObjectKey(jail), "jails/web01");
  EXPECT_EQ(ObjectKey(vip), "vips/web01-vip");
  EXPECT_EQ(ObjectKey(op), "operations/6f1c2e9a-0b7d-4e55-9a3b-2f0c1d2e3f40");

  const int64_t r1 = MustCommit(
      Txn().PutObject(host).PutObject(image).PutObject(jail).PutObject(vip).PutObject(op));

  auto got_host = GetObject<v1::Host>(*store_, "h1");
  ASSERT_TRUE(got_host.ok()) << got_host.status();
  ASSERT_TRUE(got_host->has_value());
  EXPECT_EQ((*got_host)->object.agent_address(), "10.0.0.1:7443");
  EXPECT_EQ((*got_host)->object.status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ((*got_host)->mod_revision, r1);
  auto got_image = GetObject<v1::Image>(*store_, "web01");
  ASSERT_TRUE(got_image.ok() && got_image->has_value());
  EXPECT_EQ((*got_image)->object.grant().epoch(), 7u);
  auto got_vip = GetObject<v1::VipSpec>(*store_, "web01-vip");
  ASSERT_TRUE(got_vip.ok() && got_vip->has_value());
  EXPECT_EQ((*got_vip)->object.vhid(), 12u);
  auto got_op = GetObject<v1::Operation>(*store_, op.id());
  ASSERT_TRUE(got_op.ok() && got_op->has_value());
  EXPECT_EQ((*got_op)->object.steps(0).name(), "fence");

  v1::Jail jail2 = jail;
  jail2.set_name("db01");
  const int64_t r2 = MustCommit(Txn().PutObject(jail2));
  auto jails = ListObjects<v1::Jail>(*store_);
  ASSERT_TRUE(jails.ok()) << jails.status();
  EXPECT_EQ(jails->revision, r2);
  ASSERT_EQ(jails->objects.size(), 2u);
  EXPECT_EQ(jails->objects[0].object.name(), "db01");
  EXPECT_EQ(jails->objects[0].create_revision, r2);
  EXPECT_EQ(jails->objects[1].object.name(), "web01");
  EXPECT_EQ(jails->objects[1].object.placement().standbys(0), "h2");

  auto missing = GetObject<v1::Jail>(*store_, "nope");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
  EXPECT_EQ(GetObject<v1::Jail>(*store_, "bad name").status().code(),
            absl::StatusCode::kInvalidArgument);

  // A value that is not a serialized message is DataLoss, naming the key.
  MustCommit(Txn().Put("jails/broken", std::string("\x0a\xff\x01", 3)));
  auto broken = GetObject<v1::Jail>(*store_, "broken");
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(broken.status().message(), ::testing::HasSubstr("jails/broken"));
  EXPECT_EQ(ListObjects<v1::Jail>(*store_).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace jailover::coordinator::store

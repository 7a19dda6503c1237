// EtcdStore against real etcd (one member for the whole binary, started on
// 127.0.0.1 by EtcdCluster): the StateStore conformance suite, each test on
// a fresh key prefix, plus what only the etcd store has: two stores on one
// prefix (two coordinators) racing, the leadership write guard, retention
// deleting event keys in etcd, and failover to another member when the one
// the client uses is killed.
#include <atomic>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/store/etcd_store.h"
#include "coordinator/store/state_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/test_util.h"
#include "tests/unit/coordinator/store/state_store_conformance.h"

namespace jailover::coordinator::store {
namespace {

using ::jailover::testing::EtcdCluster;
using ::testing::HasSubstr;

// The one-member etcd shared by every test of the binary, and a client.
class EtcdEnvironment final : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<jailover::testing::ScopedTempDir>("etcd_store_itest");
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start(1, dir_->path());
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    etcd::EtcdClientOptions options;
    options.endpoints = cluster_->endpoints();
    absl::StatusOr<std::unique_ptr<etcd::EtcdClient>> client = etcd::EtcdClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }
  void TearDown() override {
    client_.reset();
    cluster_.reset();
    dir_.reset();
  }

  static etcd::EtcdClient& client() { return *client_; }
  static const std::string& dir() { return dir_->path(); }
  // A prefix no other test uses.
  static std::string FreshPrefix() { return absl::StrCat("/t/", next_prefix_.fetch_add(1), "/"); }

 private:
  static inline std::unique_ptr<jailover::testing::ScopedTempDir> dir_;
  static inline std::unique_ptr<EtcdCluster> cluster_;
  static inline std::unique_ptr<etcd::EtcdClient> client_;
  static inline std::atomic<int> next_prefix_{0};
};

const ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new EtcdEnvironment);

// A fresh prefix of the shared etcd; reopening = a new EtcdStore on it.
class EtcdHarness final : public StateStoreHarness {
 public:
  absl::StatusOr<std::unique_ptr<StateStore>> Open(uint64_t max_events) override {
    EtcdStoreOptions options;
    options.prefix = prefix_;
    if (max_events > 0) options.max_events = max_events;
    absl::StatusOr<std::unique_ptr<EtcdStore>> store =
        EtcdStore::Open(EtcdEnvironment::client(), options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<StateStore>(std::move(*store));
  }

 private:
  const std::string prefix_ = EtcdEnvironment::FreshPrefix();
};

INSTANTIATE_TEST_SUITE_P(Etcd, StateStoreConformanceTest,
                         ::testing::Values(StateStoreConformanceParam{
                             .name = "Etcd",
                             .make_harness = [] { return std::make_unique<EtcdHarness>(); },
                             .supports_reopen = true,
                             .dense_revisions = false}),
                         StateStoreConformanceParamName);

v1::Event MakeEvent(const std::string& reason) {
  v1::Event event;
  event.set_type("test");
  event.set_reason(reason);
  return event;
}

std::unique_ptr<EtcdStore> MustOpen(etcd::EtcdClient& client, const std::string& prefix,
                                    uint64_t max_events = 100000) {
  EtcdStoreOptions options;
  options.prefix = prefix;
  options.max_events = max_events;
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(client, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Every key under `prefix` in etcd, read directly.
std::vector<std::string> RawKeys(const std::string& prefix) {
  ::etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(etcd::PrefixRangeEnd(prefix));
  request.set_keys_only(true);
  absl::StatusOr<::etcdserverpb::RangeResponse> range = EtcdEnvironment::client().Range(request);
  EXPECT_TRUE(range.ok()) << range.status();
  std::vector<std::string> keys;
  if (range.ok()) {
    for (const auto& kv : range->kvs()) keys.push_back(kv.key());
  }
  return keys;
}

TEST(EtcdStoreTest, OpenRejectsBadOptions) {
  EtcdStoreOptions options;
  for (const std::string prefix : {"", "jailover/", "/jailover", "/jail\tover/"}) {
    options.prefix = prefix;
    EXPECT_EQ(EtcdStore::Open(EtcdEnvironment::client(), options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << prefix;
  }
  options.prefix = "/ok/";
  options.max_events = 0;
  EXPECT_EQ(EtcdStore::Open(EtcdEnvironment::client(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EtcdStoreTest, LayoutUnderPrefix) {
  const std::string prefix = EtcdEnvironment::FreshPrefix();
  std::unique_ptr<EtcdStore> store = MustOpen(EtcdEnvironment::client(), prefix);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit(Txn().Put("hosts/h1", "v").AppendEvent(MakeEvent("a"))).ok());
  EXPECT_THAT(RawKeys(prefix),
              ::testing::ElementsAre(absl::StrCat(prefix, "events/00000000000000000001"),
                                     absl::StrCat(prefix, "meta/commit"),
                                     absl::StrCat(prefix, "state/hosts/h1")));
}

// Two coordinators (two clients, two stores, one prefix) incrementing one
// counter with read-modify-write: no update is lost, and the events both
// append get dense sequences 1..N.
TEST(EtcdStoreTest, TwoStoresOnOnePrefixLoseNoUpdateAndKeepSequencesDense) {
  constexpr int kIncrements = 25;
  const std::string prefix = EtcdEnvironment::FreshPrefix();
  std::vector<std::unique_ptr<etcd::EtcdClient>> clients;
  std::vector<std::unique_ptr<EtcdStore>> stores;
  for (int i = 0; i < 2; ++i) {
    etcd::EtcdClientOptions options;
    options.endpoints = EtcdEnvironment::client().endpoints();
    absl::StatusOr<std::unique_ptr<etcd::EtcdClient>> client = etcd::EtcdClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    clients.push_back(std::move(*client));
    stores.push_back(MustOpen(*clients.back(), prefix));
    ASSERT_NE(stores.back(), nullptr);
  }
  ASSERT_TRUE(stores[0]->Commit(Txn().Put("operations/counter", "0")).ok());

  std::latch start(2);
  std::vector<absl::Status> failures(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      EtcdStore& store = *stores[t];
      start.arrive_and_wait();
      for (int i = 0; i < kIncrements; ++i) {
        absl::StatusOr<int64_t> committed = CommitWithRetry(
            store,
            [&]() -> absl::StatusOr<Txn> {
              absl::StatusOr<std::optional<KeyValue>> kv = store.Get("operations/counter");
              if (!kv.ok()) return kv.status();
              int value = 0;
              if (!kv->has_value() || !absl::SimpleAtoi((*kv)->value, &value)) {
                return absl::InternalError("counter missing or not a number");
              }
              Txn txn;
              txn.ExpectModRevision("operations/counter", (*kv)->mod_revision)
                  .Put("operations/counter", absl::StrCat(value + 1))
                  .AppendEvent(MakeEvent(absl::StrCat("store ", t, " -> ", value + 1)));
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
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& failure : failures) EXPECT_TRUE(failure.ok()) << failure;

  absl::StatusOr<std::optional<KeyValue>> counter = stores[1]->Get("operations/counter");
  ASSERT_TRUE(counter.ok()) << counter.status();
  ASSERT_TRUE(counter->has_value());
  EXPECT_EQ((*counter)->value, absl::StrCat(2 * kIncrements));

  absl::StatusOr<std::vector<v1::Event>> events = stores[0]->ReadEvents(0, 1000);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), static_cast<size_t>(2 * kIncrements));
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence(), i + 1);
    // Event i+1 was appended by the commit that set the counter to i+1.
    EXPECT_THAT((*events)[i].reason(), HasSubstr(absl::StrCat("-> ", i + 1)));
  }
  absl::StatusOr<EventLogInfo> info = stores[1]->GetEventLogInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->first_sequence, 1u);
  EXPECT_EQ(info->last_sequence, static_cast<uint64_t>(2 * kIncrements));
}

// A commit requires the leader key to have the guarded create_revision.
TEST(EtcdStoreTest, WriteGuardRefusesCommitsOfAFormerLeader) {
  etcd::EtcdClient& client = EtcdEnvironment::client();
  const std::string prefix = EtcdEnvironment::FreshPrefix();
  const std::string leader_key = absl::StrCat(prefix, "leader");
  std::unique_ptr<EtcdStore> store = MustOpen(client, prefix);
  ASSERT_NE(store, nullptr);

  ::etcdserverpb::PutRequest put;
  put.set_key(leader_key);
  put.set_value("coordinator-a");
  ASSERT_TRUE(client.Put(put).ok());
  ::etcdserverpb::RangeRequest get;
  get.set_key(leader_key);
  absl::StatusOr<::etcdserverpb::RangeResponse> leader = client.Range(get);
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_EQ(leader->kvs_size(), 1);
  const int64_t created = leader->kvs(0).create_revision();

  // Another create_revision: refused, nothing written.
  store->SetWriteGuard(WriteGuard{leader_key, created + 1});
  absl::StatusOr<int64_t> refused =
      store->Commit(Txn().Put("hosts/h1", "a").AppendEvent(MakeEvent("no")));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("not the leader"));
  EXPECT_THAT(refused.status().message(), HasSubstr(leader_key));
  EXPECT_EQ(*store->Revision(), 0);
  EXPECT_FALSE(store->Get("hosts/h1")->has_value());
  EXPECT_EQ(store->GetEventLogInfo()->last_sequence, 0u);

  // The right one: committed. Updating the leader key's value (a lease
  // refresh) does not change its create_revision.
  store->SetWriteGuard(WriteGuard{leader_key, created});
  EXPECT_TRUE(store->Commit(Txn().Put("hosts/h1", "b")).ok());
  put.set_value("coordinator-a, refreshed");
  ASSERT_TRUE(client.Put(put).ok());
  absl::StatusOr<int64_t> ok = store->Commit(Txn().Put("hosts/h1", "c"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*store->Get("hosts/h1"))->value, "c");

  // The leader key deleted (the lease expired): refused.
  ::etcdserverpb::TxnRequest remove;
  remove.add_success()->mutable_request_delete_range()->set_key(leader_key);
  ASSERT_TRUE(client.Txn(remove).ok());
  refused = store->Commit(Txn().Put("hosts/h1", "d"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("no longer exists"));

  // Re-created by another coordinator: a new create_revision, still refused.
  put.set_value("coordinator-b");
  ASSERT_TRUE(client.Put(put).ok());
  refused = store->Commit(Txn().Put("hosts/h1", "e"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ((*store->Get("hosts/h1"))->value, "c");
  EXPECT_EQ(*store->Revision(), *ok);

  // Without a guard, commits go through again.
  store->SetWriteGuard(std::nullopt);
  EXPECT_TRUE(store->Commit(Txn().Put("hosts/h1", "f")).ok());
}

// Retention deletes the event keys from etcd, also when one commit appends
// more events than are retained.
TEST(EtcdStoreTest, RetentionDeletesOldEventKeys) {
  const std::string prefix = EtcdEnvironment::FreshPrefix();
  std::unique_ptr<EtcdStore> store = MustOpen(EtcdEnvironment::client(), prefix, 3);
  ASSERT_NE(store, nullptr);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(store->Commit(Txn().AppendEvent(MakeEvent(absl::StrCat(i)))).ok());
  }
  const std::string events = absl::StrCat(prefix, "events/");
  EXPECT_THAT(RawKeys(events),
              ::testing::ElementsAre(absl::StrCat(events, "00000000000000000003"),
                                     absl::StrCat(events, "00000000000000000004"),
                                     absl::StrCat(events, "00000000000000000005")));
  // Five events in one commit: only the newest three of them are kept.
  Txn burst;
  for (int i = 6; i <= 10; ++i) burst.AppendEvent(MakeEvent(absl::StrCat(i)));
  ASSERT_TRUE(store->Commit(burst).ok());
  EXPECT_THAT(RawKeys(events),
              ::testing::ElementsAre(absl::StrCat(events, "00000000000000000008"),
                                     absl::StrCat(events, "00000000000000000009"),
                                     absl::StrCat(events, "00000000000000000010")));
  absl::StatusOr<std::vector<v1::Event>> kept = store->ReadEvents(7, 10);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_EQ((*kept)[0].sequence(), 8u);
  EXPECT_EQ((*kept)[0].reason(), "8");
  EXPECT_EQ(store->ReadEvents(6, 10).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(EtcdClientTest, PrefixRangeEnd) {
  EXPECT_EQ(etcd::PrefixRangeEnd("/t/"), "/t0");
  EXPECT_EQ(etcd::PrefixRangeEnd("a\xff"), "b");
  EXPECT_EQ(etcd::PrefixRangeEnd(""), std::string(1, '\0'));
  EXPECT_EQ(etcd::PrefixRangeEnd("\xff\xff"), std::string(1, '\0'));
}

TEST(EtcdClientTest, CreateRejectsBadEndpoints) {
  etcd::EtcdClientOptions options;
  EXPECT_EQ(etcd::EtcdClient::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string endpoint : {"localhost", ":2379", "127.0.0.1:0", "127.0.0.1:x"}) {
    options.endpoints = {endpoint};
    EXPECT_EQ(etcd::EtcdClient::Create(options).status().code(), absl::StatusCode::kInvalidArgument)
        << endpoint;
  }
}

TEST(EtcdClientTest, LeaseGrantKeepAliveRevoke) {
  etcd::EtcdClient& client = EtcdEnvironment::client();
  absl::StatusOr<::etcdserverpb::LeaseGrantResponse> lease = client.LeaseGrant(absl::Seconds(5));
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_NE(lease->id(), 0);
  EXPECT_GE(lease->ttl(), 5);
  absl::StatusOr<::etcdserverpb::LeaseKeepAliveResponse> alive = client.LeaseKeepAlive(lease->id());
  ASSERT_TRUE(alive.ok()) << alive.status();
  EXPECT_EQ(alive->id(), lease->id());
  EXPECT_GT(alive->ttl(), 0);
  // A key attached to the lease goes away with it.
  const std::string key = absl::StrCat(EtcdEnvironment::FreshPrefix(), "leased");
  ::etcdserverpb::PutRequest put;
  put.set_key(key);
  put.set_value("v");
  put.set_lease(lease->id());
  ASSERT_TRUE(client.Put(put).ok());
  ASSERT_TRUE(client.LeaseRevoke(lease->id()).ok());
  EXPECT_THAT(RawKeys(key), ::testing::IsEmpty());
  EXPECT_EQ(client.LeaseRevoke(lease->id()).code(), absl::StatusCode::kNotFound);
  alive = client.LeaseKeepAlive(lease->id());
  ASSERT_TRUE(alive.ok()) << alive.status();
  EXPECT_LE(alive->ttl(), 0);
}

TEST(EtcdClientTest, WatchDeliversEventsAndCancels) {
  etcd::EtcdClient& client = EtcdEnvironment::client();
  const std::string key = absl::StrCat(EtcdEnvironment::FreshPrefix(), "watched");
  ::etcdserverpb::PutRequest put;
  put.set_key(key);
  put.set_value("one");
  absl::StatusOr<::etcdserverpb::PutResponse> first = client.Put(put);
  ASSERT_TRUE(first.ok()) << first.status();
  // From the first put's revision: that put is delivered, then a new one.
  ::etcdserverpb::WatchCreateRequest create;
  create.set_key(key);
  create.set_start_revision(first->header().revision());
  absl::StatusOr<std::unique_ptr<etcd::EtcdWatch>> watch = client.Watch(create);
  ASSERT_TRUE(watch.ok()) << watch.status();
  put.set_value("two");
  ASSERT_TRUE(client.Put(put).ok());
  std::vector<std::string> values;
  while (values.size() < 2) {
    absl::StatusOr<::etcdserverpb::WatchResponse> next = (*watch)->Next();
    ASSERT_TRUE(next.ok()) << next.status();
    for (const auto& event : next->events()) values.push_back(event.kv().value());
  }
  EXPECT_THAT(values, ::testing::ElementsAre("one", "two"));

  // Cancel from another thread ends a blocked Next.
  absl::StatusOr<::etcdserverpb::WatchResponse> blocked = absl::UnknownError("not run");
  std::thread reader([&] { blocked = (*watch)->Next(); });
  (*watch)->Cancel();
  reader.join();
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kCancelled) << blocked.status();
}

TEST(EtcdClientTest, MemberStatusAndList) {
  etcd::EtcdClient& client = EtcdEnvironment::client();
  absl::StatusOr<::etcdserverpb::StatusResponse> status =
      client.MemberStatus(client.endpoints()[0]);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_NE(status->leader(), 0u);
  EXPECT_THAT(status->version(), ::testing::StartsWith("3."));
  absl::StatusOr<::etcdserverpb::MemberListResponse> members = client.MemberList();
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->members_size(), 1);
  EXPECT_EQ(members->members(0).id(), status->leader());
  // A member nobody listens on: Unavailable naming the endpoint.
  absl::StatusOr<::etcdserverpb::StatusResponse> dead = client.MemberStatus("127.0.0.1:1");
  EXPECT_EQ(dead.status().code(), absl::StatusCode::kUnavailable) << dead.status();
  EXPECT_THAT(dead.status().message(), HasSubstr("127.0.0.1:1"));
}

// A three-member cluster: killing the member the client talks to (the
// first endpoint) leaves the store usable through the other two.
TEST(EtcdStoreTest, SurvivesTheLossOfTheClientsMember) {
  jailover::testing::ScopedTempDir dir("etcd_store_failover");
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start(3, dir.path());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  etcd::EtcdClientOptions options;
  options.endpoints = (*cluster)->endpoints();
  options.call_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<etcd::EtcdClient>> client = etcd::EtcdClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  std::unique_ptr<EtcdStore> store = MustOpen(**client, "/jailover/");
  ASSERT_NE(store, nullptr);
  absl::StatusOr<int64_t> before =
      store->Commit(Txn().Put("hosts/h1", "before").AppendEvent(MakeEvent("before")));
  ASSERT_TRUE(before.ok()) << before.status();

  // The revision watcher starts on the first member (the wait times out)
  // and must move to another one after the kill.
  EXPECT_EQ(store->WaitForRevision(*before, absl::Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  (*cluster)->Kill(0);

  // Reads fail over at once (or after a new raft election, if the killed
  // member led). Writes: a commit may see the election; retry until one
  // goes through (the put is idempotent).
  absl::Status last;
  ASSERT_TRUE(jailover::testing::WaitUntil(
      [&] {
        absl::StatusOr<std::optional<KeyValue>> kv = store->Get("hosts/h1");
        last = kv.status();
        return kv.ok() && kv->has_value() && (*kv)->value == "before";
      },
      absl::Seconds(15), absl::Milliseconds(100)))
      << last;
  absl::StatusOr<int64_t> after = absl::UnknownError("not committed");
  ASSERT_TRUE(jailover::testing::WaitUntil(
      [&] {
        after = store->Commit(Txn().Put("hosts/h2", "after"));
        return after.ok();
      },
      absl::Seconds(15), absl::Milliseconds(100)))
      << after.status();
  EXPECT_GT(*after, *before);
  absl::StatusOr<ListResult> list = store->List("hosts/");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->entries.size(), 2u);
  EXPECT_EQ(list->entries[1].value, "after");
  EXPECT_EQ(list->revision, *after);
  absl::StatusOr<std::vector<v1::Event>> events = store->ReadEvents(0, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].reason(), "before");

  // WaitForRevision (its watch) also works through a surviving member.
  absl::StatusOr<int64_t> woke = absl::UnknownError("not run");
  std::thread waiter(
      [&] { woke = store->WaitForRevision(*after, absl::Now() + absl::Seconds(10)); });
  absl::StatusOr<int64_t> third = absl::UnknownError("not committed");
  ASSERT_TRUE(jailover::testing::WaitUntil(
      [&] {
        third = store->Commit(Txn().Put("hosts/h3", "third"));
        return third.ok();
      },
      absl::Seconds(10), absl::Milliseconds(100)))
      << third.status();
  waiter.join();
  ASSERT_TRUE(woke.ok()) << woke.status();
  EXPECT_GT(*woke, *after);
  store.reset();
}

}  // namespace
}  // namespace jailover::coordinator::store

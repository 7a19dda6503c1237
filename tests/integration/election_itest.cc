// Election against a real etcd (one member, 127.0.0.1, started by the test;
// etcd's minimum lease there is 1 s): the first campaign wins, a second one
// waits while the first holds the leadership and wins the moment it resigns,
// at a higher term; a session whose lease etcd no longer has is reported
// lost (the leader's cue to stop) and a standby can open a new one and
// campaign again.
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "coordinator/etcd/election.h"
#include "coordinator/etcd/etcd_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::etcd {
namespace {

class ElectionTest : public ::testing::Test {
 protected:
  ElectionTest() : temp_("election_itest") {}

  void SetUp() override {
    auto cluster = testing::EtcdCluster::Start(1, temp_.path());
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    EtcdClientOptions options;
    options.endpoints = cluster_->endpoints();
    auto client = EtcdClient::Create(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  std::unique_ptr<Election> MakeElection(const std::string& name) {
    ElectionOptions options;
    options.prefix = "/election/";
    options.self.set_name(name);
    options.self.set_address(name + ":7430");
    options.ttl = absl::Seconds(1);
    return std::make_unique<Election>(*client_, options);
  }

  testing::ScopedTempDir temp_;
  std::unique_ptr<testing::EtcdCluster> cluster_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(ElectionTest, SecondWaitsWhileTheFirstLeadsAndWinsWhenItResigns) {
  auto a = MakeElection("ctl1");
  auto b = MakeElection("ctl2");
  ASSERT_TRUE(a->Start([](const std::string&) {}).ok());
  ASSERT_TRUE(b->Start([](const std::string&) {}).ok());
  absl::StatusOr<LeaderInfo> first = a->Campaign();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->info.name(), "ctl1");
  EXPECT_GT(first->term, 0);

  absl::StatusOr<LeaderInfo> second = absl::UnknownError("not yet");
  absl::Notification won;
  std::thread campaign([&] {
    second = b->Campaign();
    won.Notify();
  });
  // Several ttls: ctl1 keeps its lease alive, ctl2 stays a standby.
  EXPECT_FALSE(won.WaitForNotificationWithTimeout(absl::Seconds(3)));
  EXPECT_TRUE(a->SessionValid());
  absl::StatusOr<std::optional<LeaderInfo>> leader = b->Leader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_TRUE(leader->has_value());
  EXPECT_EQ((*leader)->info.name(), "ctl1");
  EXPECT_EQ((*leader)->term, first->term);
  absl::StatusOr<std::vector<v1::CoordinatorInfo>> all = b->Coordinators();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "ctl1");
  EXPECT_EQ((*all)[1].name(), "ctl2");

  // ctl1 resigns (revokes its lease): ctl2 wins at once, in a later term.
  const absl::Time resigned = absl::Now();
  a->Resign();
  ASSERT_TRUE(won.WaitForNotificationWithTimeout(absl::Seconds(5)));
  campaign.join();
  EXPECT_LT(absl::Now() - resigned, absl::Milliseconds(900));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->info.name(), "ctl2");
  EXPECT_GT(second->term, first->term);
  all = b->Coordinators();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);  // ctl1's registration went with its lease.
  EXPECT_EQ((*all)[0].name(), "ctl2");
}

TEST_F(ElectionTest, LostLeaseIsReportedAndAStandbyCampaignsAgainInANewSession) {
  auto a = MakeElection("ctl1");
  std::atomic<int> lost{0};
  ASSERT_TRUE(a->Start([&](const std::string& reason) {
                 EXPECT_THAT(reason, ::testing::HasSubstr("no longer exists"));
                 ++lost;
               }).ok());
  absl::StatusOr<LeaderInfo> first = a->Campaign();
  ASSERT_TRUE(first.ok()) << first.status();

  // Someone revokes the session lease behind its back (as etcd does when it
  // expires): the leader key goes, the keep-alive finds the lease gone.
  absl::StatusOr<::etcdserverpb::RangeResponse> key = [&] {
    ::etcdserverpb::RangeRequest request;
    request.set_key(LeaderKey("/election/"));
    return client_->Range(request);
  }();
  ASSERT_TRUE(key.ok() && key->kvs_size() == 1);
  ASSERT_TRUE(client_->LeaseRevoke(key->kvs(0).lease()).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return lost.load() == 1; }, absl::Seconds(3)));
  EXPECT_FALSE(a->SessionValid());
  EXPECT_EQ(a->Campaign().status().code(), absl::StatusCode::kAborted);

  // A new session, a new campaign: leader again, at a later term.
  ASSERT_TRUE(a->OpenSession().ok());
  EXPECT_TRUE(a->SessionValid());
  absl::StatusOr<LeaderInfo> again = a->Campaign();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->term, first->term);
  EXPECT_EQ(lost.load(), 1);
}

TEST_F(ElectionTest, ASecondCoordinatorWithTheSameNameIsRefused) {
  auto a = MakeElection("ctl1");
  ASSERT_TRUE(a->Start([](const std::string&) {}).ok());
  auto twin = MakeElection("ctl1");
  const absl::Time started = absl::Now();
  const absl::Status refused = twin->Start([](const std::string&) {});
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("another coordinator named ctl1"));
  EXPECT_GE(absl::Now() - started, absl::Seconds(2));  // It waited for a crashed predecessor.
  // Once the first is gone (a clean exit revokes its lease), the name is free.
  a->Resign();
  auto next = MakeElection("ctl1");
  EXPECT_TRUE(next->Start([](const std::string&) {}).ok());
}

}  // namespace
}  // namespace jailover::coordinator::etcd

// LeaseTracker under hand-moved time: every rule of the agent's leases
// (agent/lease_tracker.h).
#include "agent/lease_tracker.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kTtl = absl::Seconds(3);
constexpr absl::Duration kRenew = absl::Milliseconds(500);

LeaseTime At(absl::Duration d) {
  return LeaseTime() + std::chrono::duration_cast<LeaseTime::duration>(absl::ToChronoNanoseconds(d));
}

absl::Duration Ms(int64_t ms) { return absl::Milliseconds(ms); }

class LeaseTrackerTest : public ::testing::Test {
 protected:
  LeaseTrackerTest() : tracker_(Config(), At(absl::ZeroDuration())) {}

  static LeaseTrackerConfig Config() {
    LeaseTrackerConfig config;
    config.ttl = kTtl;
    config.renew_interval = kRenew;
    return config;
  }

  // web-img held at epoch 1, witnessed by s1's agent.
  void HoldWeb(absl::Duration now, uint64_t epoch = 1, bool witnessed = true) {
    tracker_.SetHeld({{"web-img", Held(epoch, witnessed)}}, At(now));
  }

  static HeldImage Held(uint64_t epoch, bool witnessed = true) {
    return witnessed ? HeldImage{epoch, "198.18.0.21:7420", "s1"} : HeldImage{epoch, "", ""};
  }

  LeaseTracker tracker_;
};

TEST_F(LeaseTrackerTest, StartCountsAsARenewalOfEveryLease) {
  EXPECT_TRUE(tracker_.CoordinatorCurrent(At(kTtl - Ms(1))));
  EXPECT_FALSE(tracker_.CoordinatorCurrent(At(kTtl)));
  HoldWeb(absl::ZeroDuration());
  EXPECT_EQ(tracker_.Image("web-img", At(Ms(100))).state, StorageLease::kCurrent);
  EXPECT_EQ(tracker_.Image("web-img", At(kTtl)).state, StorageLease::kLapsed);
  EXPECT_EQ(tracker_.Image("other", At(Ms(100))).state, StorageLease::kNotHeld);
}

TEST_F(LeaseTrackerTest, TheCoordinatorLeaseCountsFromWhenTheRenewalWasSentNotFromTheGrant) {
  // Heartbeat sent at 1 s, its grant delayed to 2.5 s in transit.
  tracker_.CoordinatorGranted(At(absl::Seconds(1)), At(Ms(2500)));
  EXPECT_TRUE(tracker_.CoordinatorCurrent(At(Ms(3999))));
  EXPECT_FALSE(tracker_.CoordinatorCurrent(At(absl::Seconds(4))));  // 1 s + ttl, not 2.5 s + ttl
  EXPECT_EQ(tracker_.CoordinatorAge(At(absl::Seconds(4))), absl::Seconds(3));
  // A late grant answering an older renewal never moves the lease back.
  tracker_.CoordinatorGranted(At(Ms(200)), At(absl::Seconds(4)));
  EXPECT_EQ(tracker_.CoordinatorAge(At(absl::Seconds(4))), absl::Seconds(3));
}

TEST_F(LeaseTrackerTest, AStorageLeaseCountsFromWhenItsRequestWasSent) {
  HoldWeb(absl::ZeroDuration());
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(2)), /*current=*/true, "");
  EXPECT_EQ(tracker_.Image("web-img", At(Ms(4999))).state, StorageLease::kCurrent);
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(5))).state, StorageLease::kLapsed);
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(5))).age, absl::Seconds(3));
  // An older answer arriving late does not shorten it.
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(1)), true, "");
  EXPECT_EQ(tracker_.Image("web-img", At(Ms(4999))).state, StorageLease::kCurrent);
  // An answer for another epoch (a stale import) is ignored.
  tracker_.StorageAnswered("web-img", 7, At(absl::Seconds(4)), true, "");
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(5))).state, StorageLease::kLapsed);
}

TEST_F(LeaseTrackerTest, WithoutTheCoordinatorAJailKeepsServingOnItsStorageLease) {
  HoldWeb(absl::ZeroDuration());
  for (int s = 0; s < 30; ++s) {
    tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(s)), true, "");
    const LeaseDecision d = tracker_.Evaluate(At(absl::Seconds(s) + Ms(500)));
    EXPECT_THAT(d.fences, IsEmpty()) << s;
    EXPECT_FALSE(d.fence_host) << s;
    EXPECT_EQ(tracker_.NotReadyReason("web-img", At(absl::Seconds(s) + Ms(500))), "") << s;
  }
  EXPECT_FALSE(tracker_.CoordinatorCurrent(At(absl::Seconds(30))));
}

TEST_F(LeaseTrackerTest, WithoutItsStorageLeaseAJailIsNotReadyButKeepsRunningOnTheCoordinator) {
  HoldWeb(absl::ZeroDuration());
  for (int s = 1; s < 10; ++s) {
    tracker_.CoordinatorGranted(At(absl::Seconds(s)), At(absl::Seconds(s)));
    const LeaseDecision d = tracker_.Evaluate(At(absl::Seconds(s) + Ms(100)));
    EXPECT_THAT(d.fences, IsEmpty()) << s;
    EXPECT_FALSE(d.fence_host);
  }
  const LeaseTime now = At(absl::Seconds(9) + Ms(100));
  EXPECT_EQ(tracker_.Image("web-img", now).state, StorageLease::kLapsed);
  EXPECT_THAT(tracker_.NotReadyReason("web-img", now),
              HasSubstr("no storage lease for image web-img"));
}

TEST_F(LeaseTrackerTest, NeitherLeaseFencesTheImageAndTheHostOnce) {
  HoldWeb(absl::ZeroDuration());
  tracker_.CoordinatorGranted(At(absl::Seconds(1)), At(absl::Seconds(1)));
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(2)), true, "");
  // Coordinator lease until 4 s, storage lease until 5 s.
  EXPECT_THAT(tracker_.Evaluate(At(Ms(4500))).fences, IsEmpty());
  EXPECT_FALSE(tracker_.Evaluate(At(Ms(4999))).fence_host);
  const LeaseDecision d = tracker_.Evaluate(At(absl::Seconds(5)));
  ASSERT_EQ(d.fences.size(), 1u);
  EXPECT_EQ(d.fences[0].image, "web-img");
  EXPECT_EQ(d.fences[0].epoch, 1u);
  EXPECT_FALSE(d.fences[0].moved);
  EXPECT_THAT(d.fences[0].reason, HasSubstr("no coordinator lease for 4s"));
  EXPECT_THAT(d.fences[0].reason, HasSubstr("no storage lease for image web-img for 3s"));
  EXPECT_TRUE(d.fence_host);
  EXPECT_THAT(d.host_reason, HasSubstr("no storage lease for any image"));
  // Reported once.
  const LeaseDecision again = tracker_.Evaluate(At(absl::Seconds(6)));
  EXPECT_THAT(again.fences, IsEmpty());
  EXPECT_FALSE(again.fence_host);
  // Readmitted, then a new lapse fences the host again (once its images are
  // held again).
  tracker_.Unfenced();
  tracker_.SetHeld({}, At(absl::Seconds(7)));
  EXPECT_FALSE(tracker_.Evaluate(At(absl::Seconds(20))).fence_host);  // Holds nothing.
  HoldWeb(absl::Seconds(20), 2);
  EXPECT_FALSE(tracker_.Evaluate(At(Ms(22999))).fence_host);
  EXPECT_TRUE(tracker_.Evaluate(At(absl::Seconds(23))).fence_host);
}

TEST_F(LeaseTrackerTest, AHostThatHoldsNothingNeverFencesItself) {
  const LeaseDecision d = tracker_.Evaluate(At(absl::Hours(1)));
  EXPECT_THAT(d.fences, IsEmpty());
  EXPECT_FALSE(d.fence_host);
}

TEST_F(LeaseTrackerTest, MovedFencesTheImageAtOnceWhateverTheCoordinatorSays) {
  HoldWeb(absl::ZeroDuration());
  tracker_.CoordinatorGranted(At(absl::Seconds(1)), At(absl::Seconds(1)));
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(1)), false, "granted to h2 at epoch 2");
  const LeaseTime now = At(Ms(1100));
  EXPECT_TRUE(tracker_.CoordinatorCurrent(now));
  EXPECT_EQ(tracker_.Image("web-img", now).state, StorageLease::kMoved);
  EXPECT_THAT(tracker_.NotReadyReason("web-img", now), HasSubstr("granted to h2 at epoch 2"));
  const LeaseDecision d = tracker_.Evaluate(now);
  ASSERT_EQ(d.fences.size(), 1u);
  EXPECT_TRUE(d.fences[0].moved);
  EXPECT_THAT(d.fences[0].reason, HasSubstr("granted to h2 at epoch 2"));
  EXPECT_FALSE(d.fence_host);  // Not a host fence: the host lost one image.
  // A later CURRENT (a reordered answer) does not undo it.
  tracker_.StorageAnswered("web-img", 1, At(Ms(1200)), true, "");
  EXPECT_EQ(tracker_.Image("web-img", At(Ms(1300))).state, StorageLease::kMoved);
}

TEST_F(LeaseTrackerTest, MovedImagesAloneNeverFenceTheHost) {
  // Cut from the coordinator only: the coordinator fenced the host at the
  // storage host, the host learnt it from there.
  HoldWeb(absl::ZeroDuration());
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(2)), true, "");
  tracker_.StorageAnswered("web-img", 1, At(Ms(4500)), false, "granted to h2 at epoch 2");
  const LeaseDecision d = tracker_.Evaluate(At(absl::Seconds(5)));
  ASSERT_EQ(d.fences.size(), 1u);
  EXPECT_TRUE(d.fences[0].moved);
  EXPECT_FALSE(d.fence_host);
}

TEST_F(LeaseTrackerTest, AnUnwitnessedImportLivesOnTheCoordinatorLeaseAlone) {
  HoldWeb(absl::ZeroDuration(), 1, /*witnessed=*/false);
  tracker_.CoordinatorGranted(At(absl::Seconds(1)), At(absl::Seconds(1)));
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(2))).state, StorageLease::kUnwitnessed);
  EXPECT_EQ(tracker_.NotReadyReason("web-img", At(absl::Seconds(2))), "");
  EXPECT_THAT(tracker_.Evaluate(At(Ms(3999))).fences, IsEmpty());
  EXPECT_THAT(tracker_.NotReadyReason("web-img", At(absl::Seconds(4))),
              HasSubstr("has no storage witness"));
  const LeaseDecision d = tracker_.Evaluate(At(absl::Seconds(4)));
  ASSERT_EQ(d.fences.size(), 1u);
  EXPECT_THAT(d.fences[0].reason, HasSubstr("no storage witness for image web-img"));
  EXPECT_TRUE(d.fence_host);
}

TEST_F(LeaseTrackerTest, OnlyTheUncoveredImagesAreFencedWhileAnotherIsStillWitnessed) {
  tracker_.SetHeld({{"a", Held(1)}, {"b", Held(4)}}, At(absl::ZeroDuration()));
  tracker_.StorageAnswered("b", 4, At(absl::Seconds(2)), true, "");
  const LeaseDecision d = tracker_.Evaluate(At(Ms(3500)));
  ASSERT_EQ(d.fences.size(), 1u);
  EXPECT_EQ(d.fences[0].image, "a");
  EXPECT_FALSE(d.fence_host);  // b still vouches for the host.
  EXPECT_TRUE(tracker_.Evaluate(At(absl::Seconds(5))).fence_host);
}

TEST_F(LeaseTrackerTest, ANewImportStartsWithAFreshLeaseAndForgetsTheOldFence) {
  HoldWeb(absl::ZeroDuration());
  tracker_.StorageAnswered("web-img", 1, At(absl::Seconds(1)), false, "granted to h2 at epoch 2");
  ASSERT_EQ(tracker_.Evaluate(At(absl::Seconds(1))).fences.size(), 1u);
  tracker_.SetHeld({}, At(absl::Seconds(2)));  // Released by the fence.
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(2))).state, StorageLease::kNotHeld);
  HoldWeb(absl::Seconds(10), 3);  // Imported again, at epoch 3.
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(11))).state, StorageLease::kCurrent);
  EXPECT_THAT(tracker_.Evaluate(At(absl::Seconds(11))).fences, IsEmpty());
  // The same epoch held again keeps its lease (no renewal by SetHeld).
  HoldWeb(absl::Seconds(12), 3);
  EXPECT_EQ(tracker_.Image("web-img", At(absl::Seconds(13))).state, StorageLease::kLapsed);
}

TEST_F(LeaseTrackerTest, AStreamSilentForTwoRenewIntervalsIsLeft) {
  // Even with one coordinator: a new connection, not the one stuck in TCP's
  // retransmission backoff (found by the chaos run: a 0.9 s link flap left
  // the old connection silent for 5 s and the host was failed over).
  tracker_.StreamOpened(At(absl::Seconds(1)));
  EXPECT_FALSE(tracker_.ShouldLeaveStream(At(absl::Seconds(2))));
  EXPECT_TRUE(tracker_.ShouldLeaveStream(At(Ms(2001))));
  tracker_.CoordinatorGranted(At(Ms(1900)), At(absl::Seconds(2)));
  EXPECT_FALSE(tracker_.ShouldLeaveStream(At(absl::Seconds(3))));
  EXPECT_TRUE(tracker_.ShouldLeaveStream(At(Ms(3001))));
  // A new stream starts its own count.
  tracker_.StreamOpened(At(absl::Seconds(4)));
  EXPECT_FALSE(tracker_.ShouldLeaveStream(At(absl::Seconds(5))));
}

TEST_F(LeaseTrackerTest, GrantsChangeTheTiming) {
  tracker_.SetTiming(absl::Seconds(6), absl::Seconds(1));
  EXPECT_EQ(tracker_.ttl(), absl::Seconds(6));
  EXPECT_EQ(tracker_.renew_interval(), absl::Seconds(1));
  EXPECT_TRUE(tracker_.CoordinatorCurrent(At(absl::Seconds(5))));
  tracker_.SetTiming(absl::ZeroDuration(), absl::ZeroDuration());  // Unset: unchanged.
  EXPECT_EQ(tracker_.ttl(), absl::Seconds(6));
}

// The VIP guard's deadline: the latest end of the coordinator lease and of
// the storage leases of witnessed images not moved; none while nothing is
// held; past it, Evaluate fences the host.
TEST_F(LeaseTrackerTest, HoldUntilIsWhenTheLastLeaseEndsAndNoneWithoutImages) {
  EXPECT_EQ(tracker_.HoldUntil(), std::nullopt);  // nothing held: nothing to fence
  HoldWeb(absl::ZeroDuration());
  EXPECT_EQ(tracker_.HoldUntil(), At(kTtl));  // both count from the start
  tracker_.CoordinatorGranted(At(Ms(500)), At(Ms(520)));
  EXPECT_EQ(tracker_.HoldUntil(), At(Ms(500) + kTtl));
  // The storage lease alone carries it on (a coordinator outage).
  tracker_.StorageAnswered("web-img", 1, At(Ms(2000)), true, "");
  EXPECT_EQ(tracker_.HoldUntil(), At(Ms(2000) + kTtl));
  EXPECT_FALSE(tracker_.Evaluate(At(Ms(2000) + kTtl - Ms(1))).fence_host);
  EXPECT_TRUE(tracker_.Evaluate(At(Ms(2000) + kTtl)).fence_host);
  // Only moved images: the agent heard MOVED and fences them itself; a move
  // never fences the host, so there is no deadline (chaos-found: the guard
  // must not fence a live agent cut from the coordinator whose jail moved).
  tracker_.StorageAnswered("web-img", 1, At(Ms(2500)), false, "granted to h2 at epoch 2");
  EXPECT_EQ(tracker_.HoldUntil(), std::nullopt);
  EXPECT_FALSE(tracker_.Evaluate(At(absl::Seconds(10))).fence_host);
  // An unwitnessed image counts, on the coordinator lease alone.
  tracker_.SetHeld({{"web-img", Held(1)}, {"db-img", Held(1, /*witnessed=*/false)}}, At(Ms(3000)));
  tracker_.StorageAnswered("web-img", 1, At(Ms(3000)), false, "granted to h2 at epoch 2");
  EXPECT_EQ(tracker_.HoldUntil(), At(Ms(500) + kTtl));
  tracker_.SetHeld({}, At(Ms(3100)));
  EXPECT_EQ(tracker_.HoldUntil(), std::nullopt);
}

}  // namespace
}  // namespace jailover::agent

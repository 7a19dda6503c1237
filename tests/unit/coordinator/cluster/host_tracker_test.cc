#include "coordinator/cluster/host_tracker.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/proto/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace jailover::coordinator::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Step = std::pair<v1::HostState, v1::HostState>;

constexpr v1::HostState kReady = v1::HOST_STATE_READY;
constexpr v1::HostState kSuspect = v1::HOST_STATE_SUSPECT;
constexpr v1::HostState kUnreachable = v1::HOST_STATE_UNREACHABLE;
constexpr v1::HostState kFenced = v1::HOST_STATE_FENCED;
constexpr v1::HostState kDraining = v1::HOST_STATE_DRAINING;
constexpr v1::HostState kMaintenance = v1::HOST_STATE_MAINTENANCE;
constexpr v1::HostState kUnspecified = v1::HOST_STATE_UNSPECIFIED;

const absl::Duration kNs = absl::Nanoseconds(1);

// The (from, to) pairs of a call's transitions; a failed call fails the test.
std::vector<Step> Steps(const absl::StatusOr<std::vector<HostTransition>>& result) {
  EXPECT_TRUE(result.ok()) << result.status();
  std::vector<Step> steps;
  if (!result.ok()) return steps;
  for (const HostTransition& t : *result) steps.emplace_back(t.from, t.to);
  return steps;
}

v1::ObservedState Nothing() { return v1::ObservedState(); }

class HostTrackerTest : public ::testing::Test {
 protected:
  HostTrackerTest() { config_.safety_margin = absl::Seconds(2); }

  MonoTime Now() { return clock_.MonotonicNow(); }
  MonoTime At(absl::Duration d) { return start_ + absl::ToChronoNanoseconds(d); }
  void AdvanceTo(absl::Duration d) { clock_.Advance(absl::FromChrono(At(d) - Now())); }

  // A host registered and heartbeating once at start_.
  HostTracker Registered() {
    HostTracker host("h1", config_, Now());
    EXPECT_THAT(Steps(host.Register(Now(), "inc-1")), ElementsAre(Step(kUnspecified, kReady)));
    EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
    return host;
  }

  testing::FakeClock clock_;
  const MonoTime start_ = clock_.MonotonicNow();
  HostTrackerConfig config_;
};

TEST(HostTrackerConfigTest, DefaultsAndValidation) {
  HostTrackerConfig config;
  EXPECT_TRUE(config.Validate().ok());
  EXPECT_EQ(config.ttl, absl::Seconds(3));
  EXPECT_EQ(config.renew_interval, absl::Milliseconds(500));
  EXPECT_EQ(config.SuspectAfter(), absl::Milliseconds(750));

  HostTrackerConfig bad = config;
  bad.renew_interval = absl::ZeroDuration();
  EXPECT_THAT(bad.Validate().message(), HasSubstr("renew_interval must be positive"));
  bad = config;
  bad.ttl = absl::Milliseconds(700);
  EXPECT_EQ(bad.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.Validate().message(), HasSubstr("ttl"));
  bad = config;
  bad.suspect_after = absl::Milliseconds(400);  // Not longer than renew_interval.
  EXPECT_THAT(bad.Validate().message(), HasSubstr("suspect_after"));
  bad = config;
  bad.safety_margin = absl::Seconds(-1);
  EXPECT_THAT(bad.Validate().message(), HasSubstr("safety_margin"));
}

// Coordinators on etcd: agents' leases must outlast two election ttls and
// two renew intervals (a takeover after etcd's raft leader died too).
TEST(HostTrackerConfigTest, TakeoverMustFitInTheAgentsLease) {
  HostTrackerConfig config;  // ttl 3 s, renew 500 ms.
  // 2 x 2 s + 1 s = 5 s: the default election ttl needs a longer lease.
  const absl::Status refused = config.CheckTakeoverFits(absl::Seconds(2));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("--lease_ttl 3s is too short"));
  EXPECT_THAT(refused.message(), HasSubstr("= 5s"));
  // Exactly at the budget is refused too; below it is fine.
  config.ttl = absl::Seconds(5);
  EXPECT_FALSE(config.CheckTakeoverFits(absl::Seconds(2)).ok());
  config.ttl = absl::Seconds(6);
  EXPECT_TRUE(config.CheckTakeoverFits(absl::Seconds(2)).ok());
  // The tests' and the lab's settings.
  config.ttl = absl::Seconds(3);
  config.renew_interval = absl::Milliseconds(200);
  EXPECT_TRUE(config.CheckTakeoverFits(absl::Seconds(1)).ok());
  config.renew_interval = absl::Milliseconds(500);
  EXPECT_FALSE(config.CheckTakeoverFits(absl::Seconds(1)).ok());
  config.ttl = absl::Seconds(5);
  EXPECT_TRUE(config.CheckTakeoverFits(absl::Seconds(1)).ok());
}

TEST_F(HostTrackerTest, UnregisteredHostIsUnspecifiedAndRefusesHeartbeats) {
  HostTracker host("h1", config_, Now());
  EXPECT_EQ(host.state(), kUnspecified);
  EXPECT_FALSE(host.IsUsableForPlacement());
  EXPECT_FALSE(host.lease_expires().has_value());
  EXPECT_EQ(host.Heartbeat(Now(), Nothing()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host.StorageFencingDone(Now(), "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host.Register(Now(), "").status().code(), absl::StatusCode::kInvalidArgument);
  // Time alone does nothing to a host that never registered.
  AdvanceTo(absl::Minutes(5));
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.state(), kUnspecified);
}

TEST_F(HostTrackerTest, RegisteredHostIsUsableOnlyAfterItsFirstHeartbeat) {
  HostTracker host("h1", config_, Now());
  ASSERT_THAT(Steps(host.Register(Now(), "inc-1")), ElementsAre(Step(kUnspecified, kReady)));
  EXPECT_EQ(host.state(), kReady);
  EXPECT_FALSE(host.IsUsableForPlacement());
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  EXPECT_TRUE(host.IsUsableForPlacement());
  EXPECT_EQ(host.lease_expires(), At(absl::Seconds(3)));
  EXPECT_EQ(host.fence_deadline(), At(absl::Seconds(5)));
}

TEST_F(HostTrackerTest, SuspectAfterOneAndAHalfIntervalsAndBackOnTheNextHeartbeat) {
  HostTracker host = Registered();
  AdvanceTo(absl::Milliseconds(750) - kNs);
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.state(), kReady);
  AdvanceTo(absl::Milliseconds(750));
  auto suspect = host.Tick(Now());
  ASSERT_THAT(Steps(suspect), ElementsAre(Step(kReady, kSuspect)));
  EXPECT_THAT((*suspect)[0].reason, HasSubstr("no heartbeat for 750ms"));
  EXPECT_EQ((*suspect)[0].at, Now());
  EXPECT_EQ(host.since(), Now());
  EXPECT_FALSE(host.IsUsableForPlacement());
  EXPECT_FALSE(host.NeedsFencing());
  AdvanceTo(absl::Milliseconds(900));
  auto back = host.Heartbeat(Now(), Nothing());
  ASSERT_THAT(Steps(back), ElementsAre(Step(kSuspect, kReady)));
  EXPECT_THAT((*back)[0].reason, HasSubstr("heartbeat after 900ms"));
  EXPECT_TRUE(host.IsUsableForPlacement());
}

TEST_F(HostTrackerTest, UnreachableExactlyAtTheTtl) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(3) - kNs);
  EXPECT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kReady, kSuspect)));
  EXPECT_FALSE(host.NeedsFencing());
  AdvanceTo(absl::Seconds(3));
  auto lapsed = host.Tick(Now());
  ASSERT_THAT(Steps(lapsed), ElementsAre(Step(kSuspect, kUnreachable)));
  EXPECT_THAT((*lapsed)[0].reason, HasSubstr("lease expired"));
  EXPECT_TRUE(host.NeedsFencing());
  EXPECT_FALSE(host.IsUsableForPlacement());
}

TEST_F(HostTrackerTest, LeaseExpiryThenUnreachableThenFencedByTimeAfterTheSafetyMargin) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(1));
  EXPECT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kReady, kSuspect)));
  AdvanceTo(absl::Seconds(3));
  EXPECT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kSuspect, kUnreachable)));
  AdvanceTo(absl::Seconds(5) - kNs);  // ttl 3s + margin 2s.
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.state(), kUnreachable);
  AdvanceTo(absl::Seconds(5));
  auto fenced = host.Tick(Now());
  ASSERT_THAT(Steps(fenced), ElementsAre(Step(kUnreachable, kFenced)));
  EXPECT_THAT((*fenced)[0].reason, HasSubstr("fenced by time"));
  EXPECT_EQ(host.fenced_by(), "coordinator");
  EXPECT_FALSE(host.NeedsFencing());
  EXPECT_FALSE(host.returned());
  AdvanceTo(absl::Minutes(10));
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.state(), kFenced);
}

TEST_F(HostTrackerTest, StorageFencingFencesBeforeTheTimeFence) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(3));
  ASSERT_THAT(Steps(host.Tick(Now())),
              ElementsAre(Step(kReady, kSuspect), Step(kSuspect, kUnreachable)));
  AdvanceTo(absl::Milliseconds(3200));
  auto fenced = host.StorageFencingDone(Now(), "img1 epoch 7 -> 8");
  ASSERT_THAT(Steps(fenced), ElementsAre(Step(kUnreachable, kFenced)));
  EXPECT_THAT((*fenced)[0].reason, HasSubstr("storage fencing done: img1 epoch 7 -> 8"));
  EXPECT_EQ(host.fenced_by(), "storage");
  // Neither a second report nor the time fence changes anything.
  EXPECT_THAT(Steps(host.StorageFencingDone(Now(), "again")), IsEmpty());
  AdvanceTo(absl::Seconds(6));
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.fenced_by(), "storage");
}

TEST_F(HostTrackerTest, ALongSilenceWithoutTicksYieldsTheWholeChain) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(20));
  EXPECT_THAT(Steps(host.Tick(Now())),
              ElementsAre(Step(kReady, kSuspect), Step(kSuspect, kUnreachable),
                          Step(kUnreachable, kFenced)));
}

TEST_F(HostTrackerTest, HeartbeatAfterTheTtlButBeforeTheFenceReturnsToReady) {
  HostTracker host = Registered();
  AdvanceTo(absl::Milliseconds(3500));
  // No Tick in between: the heartbeat first applies the lapse, then renews.
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())),
              ElementsAre(Step(kReady, kSuspect), Step(kSuspect, kUnreachable),
                          Step(kUnreachable, kReady)));
  EXPECT_TRUE(host.IsUsableForPlacement());
}

TEST_F(HostTrackerTest, JitterUnderTheTtlNeverMakesTheHostUnreachable) {
  HostTracker host = Registered();
  // 2000 heartbeats, each 100ms..2.9s after the previous (deterministic
  // pseudo-random), with a Tick every 100ms in between.
  uint32_t seed = 12345;
  absl::Duration t = absl::ZeroDuration();
  int suspects = 0;
  for (int round = 0; round < 2000; ++round) {
    seed = seed * 1103515245u + 12345u;
    const absl::Duration gap = absl::Milliseconds(100 + (seed >> 8) % 2800);
    const absl::Duration next = t + gap;
    for (absl::Duration tick = t + absl::Milliseconds(100); tick < next;
         tick += absl::Milliseconds(100)) {
      AdvanceTo(tick);
      for (const Step& step : Steps(host.Tick(Now()))) {
        ASSERT_EQ(step, Step(kReady, kSuspect)) << "round " << round;
        ++suspects;
      }
      ASSERT_FALSE(host.NeedsFencing());
    }
    t = next;
    AdvanceTo(t);
    // A heartbeat between ticks may first note the suspicion, then end it.
    for (const Step& step : Steps(host.Heartbeat(Now(), Nothing()))) {
      ASSERT_TRUE(step.second == kReady || step.second == kSuspect) << "round " << round;
    }
    ASSERT_EQ(host.state(), kReady);
  }
  EXPECT_GT(suspects, 100);  // The jitter was real.
}

TEST_F(HostTrackerTest, NewIncarnationOfALiveHostIsNotAFailure) {
  HostTracker host = Registered();
  AdvanceTo(absl::Milliseconds(400));
  EXPECT_THAT(Steps(host.Register(Now(), "inc-2")), IsEmpty());
  EXPECT_EQ(host.state(), kReady);
  EXPECT_EQ(host.incarnation(), "inc-2");
  EXPECT_EQ(host.last_renewal(), Now());
  // A restart that took long enough to be suspected just ends the suspicion.
  AdvanceTo(absl::Seconds(2));
  EXPECT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kReady, kSuspect)));
  auto back = host.Register(Now(), "inc-3");
  ASSERT_THAT(Steps(back), ElementsAre(Step(kSuspect, kReady)));
  EXPECT_THAT((*back)[0].reason, HasSubstr("inc-2 -> inc-3"));
}

TEST_F(HostTrackerTest, SelfFencedReportWithSomethingStillRunningFencesTheHost) {
  HostTracker host = Registered();
  v1::ObservedState fenced;
  fenced.set_self_fenced(true);
  fenced.add_jails()->set_name("web");  // its stop failed
  auto result = host.Heartbeat(Now(), fenced);
  ASSERT_THAT(Steps(result), ElementsAre(Step(kReady, kFenced)));
  EXPECT_THAT((*result)[0].reason, HasSubstr("fenced itself"));
  EXPECT_EQ(host.fenced_by(), "agent");
  EXPECT_TRUE(host.returned());
  EXPECT_FALSE(host.TakeAutoReadmission().has_value());
}

TEST_F(HostTrackerTest, AHostThatFencedItselfWhileNothingMovedItsJailsIsReadmittedAutomatically) {
  // Silent past the time fence (the coordinator could not fail it over:
  // no standby, or the storage host was down).
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(5));
  ASSERT_THAT(Steps(host.Tick(Now())).back(), Step(kUnreachable, kFenced));
  EXPECT_EQ(host.fenced_by(), "coordinator");
  AdvanceTo(absl::Seconds(30));
  EXPECT_THAT(Steps(host.Register(Now(), "inc-1")), IsEmpty());
  // Its first report: it fenced itself and holds nothing.
  v1::ObservedState fenced;
  fenced.set_self_fenced(true);
  auto back = host.Heartbeat(Now(), fenced);
  ASSERT_THAT(Steps(back), ElementsAre(Step(kFenced, kReady)));
  EXPECT_THAT((*back)[0].reason, HasSubstr("readmitted automatically"));
  const std::optional<std::string> readmission = host.TakeAutoReadmission();
  ASSERT_TRUE(readmission.has_value());
  EXPECT_THAT(*readmission, HasSubstr("no failover moved its jails"));
  EXPECT_FALSE(host.TakeAutoReadmission().has_value());  // Once.
  // Until the agent took the Readmit it is not placed on, nor fenced again.
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), fenced)), IsEmpty());
  EXPECT_FALSE(host.IsUsableForPlacement());
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  EXPECT_TRUE(host.IsUsableForPlacement());

  // Back without having fenced itself (it holds nothing, or served on its
  // storage leases while no standby could take its jails): likewise.
  HostTracker idle = Registered();
  AdvanceTo(absl::Seconds(40));
  ASSERT_EQ(Steps(idle.Tick(Now())).back(), Step(kUnreachable, kFenced));
  v1::ObservedState serving;
  serving.add_jails()->set_name("web");
  auto served = idle.Heartbeat(Now(), serving);
  ASSERT_THAT(Steps(served), ElementsAre(Step(kFenced, kReady)));
  EXPECT_THAT((*served)[0].reason, HasSubstr("it is back"));
  EXPECT_TRUE(idle.IsUsableForPlacement());

  // A READY host reporting that it fenced itself (its agent lost both
  // leases before this coordinator noticed anything) likewise.
  HostTracker quick = Registered();
  EXPECT_THAT(Steps(quick.Heartbeat(Now(), fenced)), IsEmpty());
  EXPECT_EQ(quick.state(), kReady);
  EXPECT_TRUE(quick.TakeAutoReadmission().has_value());
}

TEST_F(HostTrackerTest, NoAutomaticReadmissionOnceAFailoverMovedItsJailsOrAnOperatorFencedIt) {
  v1::ObservedState fenced;
  fenced.set_self_fenced(true);
  // Failed over: its jails' fence.
  HostTracker moved = Registered();
  AdvanceTo(absl::Seconds(3));
  ASSERT_THAT(Steps(moved.BeginFencing(Now(), "failover of jail web")).back(),
              Step(kSuspect, kUnreachable));
  ASSERT_THAT(Steps(moved.StorageFencingDone(Now(), "web-img 1 -> 2")),
              ElementsAre(Step(kUnreachable, kFenced)));
  EXPECT_TRUE(moved.failed_over());
  EXPECT_EQ(moved.fenced_by(), "storage");
  EXPECT_THAT(Steps(moved.Heartbeat(Now(), fenced)), IsEmpty());
  EXPECT_EQ(moved.state(), kFenced);
  EXPECT_FALSE(moved.TakeAutoReadmission().has_value());
  // Fenced by itself first, its jails moved afterwards: still no.
  HostTracker later = Registered();
  v1::ObservedState busy = fenced;
  busy.add_jails()->set_name("web");
  ASSERT_THAT(Steps(later.Heartbeat(Now(), busy)), ElementsAre(Step(kReady, kFenced)));
  EXPECT_THAT(Steps(later.StorageFencingDone(Now(), "web-img 1 -> 2")), IsEmpty());
  EXPECT_TRUE(later.failed_over());
  EXPECT_THAT(Steps(later.Heartbeat(Now(), fenced)), IsEmpty());
  EXPECT_EQ(later.state(), kFenced);
  // An operator's word.
  HostTracker marked = Registered();
  AdvanceTo(absl::Seconds(7));
  ASSERT_EQ(Steps(marked.Tick(Now())).back(), Step(kSuspect, kUnreachable));
  ASSERT_THAT(Steps(marked.MarkFenced(Now(), "alice", "powered off")),
              ElementsAre(Step(kUnreachable, kFenced)));
  EXPECT_THAT(Steps(marked.Heartbeat(Now(), fenced)), IsEmpty());
  EXPECT_EQ(marked.state(), kFenced);
  // A failover in progress.
  HostTracker fencing = Registered();
  EXPECT_THAT(Steps(fencing.BeginFencing(Now(), "failover of jail web")),
              ElementsAre(Step(kReady, kUnreachable)));
  EXPECT_THAT(Steps(fencing.Heartbeat(Now(), fenced)), ElementsAre(Step(kUnreachable, kFenced)));
  EXPECT_FALSE(fencing.TakeAutoReadmission().has_value());
}

TEST_F(HostTrackerTest, AHostWhoseJailsAreBeingMovedDoesNotReturnToReadyByHeartbeating) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(3));
  ASSERT_EQ(Steps(host.Tick(Now())).back(), Step(kSuspect, kUnreachable));
  EXPECT_THAT(Steps(host.BeginFencing(Now(), "failover of jail web (operation 1)")), IsEmpty());
  EXPECT_TRUE(host.fencing());
  // A delayed heartbeat arrives: the host stays UNREACHABLE.
  AdvanceTo(absl::Milliseconds(3500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  EXPECT_EQ(host.state(), kUnreachable);
  EXPECT_FALSE(host.IsUsableForPlacement());
  // The failover ended before its fence (it failed): back at the next one.
  EXPECT_THAT(Steps(host.EndFencing(Now())), IsEmpty());
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), ElementsAre(Step(kUnreachable, kReady)));
}

TEST_F(HostTrackerTest, TheCoordinatorsOwnAbsenceExtendsEveryLease) {
  HostTracker host = Registered();
  // The coordinator was stopped for 10 s right after the heartbeat.
  AdvanceTo(absl::Seconds(10));
  EXPECT_THAT(Steps(host.CoordinatorAway(Now(), absl::Seconds(10))), IsEmpty());
  EXPECT_EQ(host.state(), kReady);
  EXPECT_EQ(host.last_renewal(), Now());
  // Then the lease runs as usual from there.
  AdvanceTo(absl::Seconds(13));
  EXPECT_EQ(Steps(host.Tick(Now())).back(), Step(kSuspect, kUnreachable));
  // Never beyond now, never backwards.
  HostTracker other = Registered();
  AdvanceTo(absl::Seconds(14));
  EXPECT_THAT(Steps(other.CoordinatorAway(Now(), absl::Seconds(13))), IsEmpty());
  EXPECT_EQ(other.last_renewal(), Now());  // 13 s + 13 s, capped at now
  EXPECT_EQ(other.CoordinatorAway(Now(), -absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HostTrackerTest, ReturningFencedHostStaysFencedUntilReadmittedWithNothingRunning) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(5));
  ASSERT_THAT(Steps(host.Tick(Now())).back(), Step(kUnreachable, kFenced));
  // Its jails were failed over: no automatic readmission.
  EXPECT_THAT(Steps(host.StorageFencingDone(Now(), "img-web 1 -> 2")), IsEmpty());

  // It comes back still running a jail, holding an import and CARP master.
  v1::ObservedState busy;
  busy.set_self_fenced(true);
  busy.add_jails()->set_name("web");
  busy.add_imports()->set_image("img-web");
  v1::ObservedVip* master = busy.add_vips();
  master->set_name("vip-web");
  master->set_state(v1::CARP_STATE_MASTER);
  v1::ObservedVip* backup = busy.add_vips();
  backup->set_name("vip-db");
  backup->set_state(v1::CARP_STATE_BACKUP);
  AdvanceTo(absl::Seconds(30));
  EXPECT_THAT(Steps(host.Register(Now(), "inc-2")), IsEmpty());
  EXPECT_THAT(Steps(host.Heartbeat(Now(), busy)), IsEmpty());
  EXPECT_EQ(host.state(), kFenced);
  EXPECT_TRUE(host.returned());
  EXPECT_FALSE(host.IsUsableForPlacement());

  auto refused = host.Readmit(Now(), "alice", "rebooted");
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("runs jails web"));
  EXPECT_THAT(refused.status().message(), HasSubstr("imported images img-web"));
  EXPECT_THAT(refused.status().message(), HasSubstr("CARP master of VIPs vip-web"));
  EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("vip-db")));
  EXPECT_EQ(host.state(), kFenced);

  // Many heartbeats later it is still FENCED; then it reports nothing.
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(absl::Milliseconds(500));
    EXPECT_THAT(Steps(host.Heartbeat(Now(), busy)), IsEmpty());
  }
  v1::ObservedState clean;
  clean.set_self_fenced(true);
  clean.add_vips()->CopyFrom(*backup);
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), clean)), IsEmpty());
  EXPECT_EQ(host.state(), kFenced);

  auto readmitted = host.Readmit(Now(), "alice", "rebooted");
  ASSERT_THAT(Steps(readmitted), ElementsAre(Step(kFenced, kReady)));
  EXPECT_THAT((*readmitted)[0].reason, HasSubstr("readmitted by alice: rebooted"));
  EXPECT_TRUE(host.fenced_by().empty());
  EXPECT_FALSE(host.failed_over());
  // The agent has not processed the Readmit yet: a stale self-fenced report
  // neither fences it again nor makes it usable.
  EXPECT_FALSE(host.IsUsableForPlacement());
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), clean)), IsEmpty());
  EXPECT_EQ(host.state(), kReady);
  EXPECT_FALSE(host.IsUsableForPlacement());
  clean.set_self_fenced(false);
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), clean)), IsEmpty());
  EXPECT_TRUE(host.IsUsableForPlacement());
  // From now on, a self-fence report is a real fence again (with nothing
  // running and no failover it would be readmitted at once).
  clean.set_self_fenced(true);
  clean.add_jails()->set_name("web");
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), clean)), ElementsAre(Step(kReady, kFenced)));
}

TEST_F(HostTrackerTest, ReadmitIsRefusedUnlessFencedAndBack) {
  HostTracker host = Registered();
  auto not_fenced = host.Readmit(Now(), "alice", "");
  EXPECT_EQ(not_fenced.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_fenced.status().message(), HasSubstr("READY, not FENCED"));
  EXPECT_EQ(host.Readmit(Now(), "", "").status().code(), absl::StatusCode::kInvalidArgument);

  AdvanceTo(absl::Seconds(5));
  ASSERT_EQ(Steps(host.Tick(Now())).back(), Step(kUnreachable, kFenced));
  // Its jails were moved (else its return would readmit it automatically).
  EXPECT_THAT(Steps(host.StorageFencingDone(Now(), "img 1 -> 2")), IsEmpty());
  // Fenced, never came back.
  auto silent = host.Readmit(Now(), "alice", "");
  EXPECT_EQ(silent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(silent.status().message(), HasSubstr("has not heartbeated"));
  // Came back once, then went silent again for a ttl.
  AdvanceTo(absl::Seconds(6));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  EXPECT_TRUE(host.returned());
  AdvanceTo(absl::Seconds(9));
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_FALSE(host.returned());
  EXPECT_EQ(host.Readmit(Now(), "alice", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host.state(), kFenced);
}

TEST_F(HostTrackerTest, ReadmitWaitsForTheFailoverThatIsFencingTheHost) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(5));
  ASSERT_THAT(Steps(host.Tick(Now())).back(), Step(kUnreachable, kFenced));
  // A failover of its jails begins; the machine comes back (replaced,
  // nothing running) before the failover's storage fence is done.
  EXPECT_THAT(Steps(host.BeginFencing(Now(), "failover of jail web (operation 1)")), IsEmpty());
  AdvanceTo(absl::Seconds(6));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  auto early = host.Readmit(Now(), "alice", "replaced");
  ASSERT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(),
              HasSubstr("a failover is fencing it from its images; readmit it when that "
                        "failover is done"));
  EXPECT_EQ(host.state(), kFenced);
  // The fence is done: now it can be.
  EXPECT_THAT(Steps(host.StorageFencingDone(Now(), "img-web 1 -> 2")), IsEmpty());
  EXPECT_THAT(Steps(host.Readmit(Now(), "alice", "replaced")),
              ElementsAre(Step(kFenced, kReady)));
}

TEST_F(HostTrackerTest, MarkFencedIsAuditedAndOnlyForUnreachableHosts) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(1));
  ASSERT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kReady, kSuspect)));
  auto live = host.MarkFenced(Now(), "alice", "powered off");
  ASSERT_EQ(live.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(live.status().message(), HasSubstr("SUSPECT (last heartbeat 1s ago)"));
  EXPECT_EQ(host.state(), kSuspect);
  EXPECT_EQ(host.MarkFenced(Now(), "alice", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host.MarkFenced(Now(), "", "powered off").status().code(),
            absl::StatusCode::kInvalidArgument);

  AdvanceTo(absl::Seconds(3));
  auto marked = host.MarkFenced(Now(), "alice", "powered off at the PDU");
  ASSERT_THAT(Steps(marked),
              ElementsAre(Step(kSuspect, kUnreachable), Step(kUnreachable, kFenced)));
  EXPECT_EQ((*marked)[1].reason, "marked fenced by alice: powered off at the PDU");
  EXPECT_EQ(host.fenced_by(), "operator:alice");
  EXPECT_EQ(host.reason(), "marked fenced by alice: powered off at the PDU");
  // Idempotent, and the first audit record is kept.
  EXPECT_THAT(Steps(host.MarkFenced(Now(), "bob", "again")), IsEmpty());
  EXPECT_EQ(host.fenced_by(), "operator:alice");
}

TEST_F(HostTrackerTest, DrainHoldsTheHostOutOfPlacementAndSurvivesAnOutage) {
  HostTracker host = Registered();
  EXPECT_THAT(Steps(host.Drain(Now(), "kernel upgrade")), ElementsAre(Step(kReady, kDraining)));
  EXPECT_FALSE(host.IsUsableForPlacement());
  EXPECT_THAT(Steps(host.Drain(Now(), "again")), IsEmpty());
  // A failure shows through the drain; the drain is back with the host.
  AdvanceTo(absl::Seconds(1));
  EXPECT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kDraining, kSuspect)));
  EXPECT_THAT(Steps(host.Heartbeat(Now(), Nothing())), ElementsAre(Step(kSuspect, kDraining)));
  EXPECT_TRUE(host.draining());
  EXPECT_THAT(Steps(host.Undrain(Now(), "done")), ElementsAre(Step(kDraining, kReady)));
  EXPECT_TRUE(host.IsUsableForPlacement());
  EXPECT_THAT(Steps(host.Undrain(Now(), "again")), IsEmpty());
}

TEST_F(HostTrackerTest, MaintenanceEndsAtItsExpiry) {
  HostTracker host = Registered();
  EXPECT_EQ(host.SetMaintenance(Now(), Now(), "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Steps(host.Drain(Now(), "first")), ElementsAre(Step(kReady, kDraining)));
  const MonoTime until = At(absl::Seconds(10));
  EXPECT_THAT(Steps(host.SetMaintenance(Now(), until, "disk swap")),
              ElementsAre(Step(kDraining, kMaintenance)));
  EXPECT_EQ(host.maintenance_until(), until);
  EXPECT_FALSE(host.draining());
  EXPECT_EQ(host.Drain(Now(), "x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(host.Undrain(Now(), "x").status().code(), absl::StatusCode::kFailedPrecondition);
  // The agent keeps heartbeating through the maintenance.
  for (absl::Duration t = absl::Milliseconds(500); t < absl::Seconds(10);
       t += absl::Milliseconds(500)) {
    AdvanceTo(t);
    ASSERT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  }
  AdvanceTo(absl::Seconds(10) - kNs);
  EXPECT_THAT(Steps(host.Tick(Now())), IsEmpty());
  EXPECT_EQ(host.state(), kMaintenance);
  AdvanceTo(absl::Seconds(10));
  auto ended = host.Tick(Now());
  ASSERT_THAT(Steps(ended), ElementsAre(Step(kMaintenance, kReady)));
  EXPECT_THAT((*ended)[0].reason, HasSubstr("expiry"));
  EXPECT_FALSE(host.maintenance_until().has_value());
  EXPECT_TRUE(host.IsUsableForPlacement());
}

TEST_F(HostTrackerTest, MaintenanceWithoutExpiryLastsUntilEnded) {
  HostTracker host = Registered();
  EXPECT_THAT(Steps(host.SetMaintenance(Now(), std::nullopt, "")),
              ElementsAre(Step(kReady, kMaintenance)));
  for (int i = 0; i < 100; ++i) {
    clock_.Advance(absl::Milliseconds(500));
    ASSERT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  }
  EXPECT_EQ(host.state(), kMaintenance);
  EXPECT_THAT(Steps(host.EndMaintenance(Now(), "done")), ElementsAre(Step(kMaintenance, kReady)));
  EXPECT_THAT(Steps(host.EndMaintenance(Now(), "again")), IsEmpty());
}

TEST_F(HostTrackerTest, TimeGoingBackIsRefusedAndChangesNothing) {
  HostTracker host = Registered();
  AdvanceTo(absl::Seconds(1));
  ASSERT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kReady, kSuspect)));
  auto back = host.Heartbeat(At(absl::Milliseconds(500)), Nothing());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(host.state(), kSuspect);
  EXPECT_EQ(host.last_renewal(), start_);
}

TEST_F(HostTrackerTest, RestoreKeepsFencesAndGivesLiveHostsAFreshLease) {
  v1::HostStatus status;
  status.set_state(kFenced);
  status.set_reason("marked fenced by alice: powered off");
  absl::StatusOr<HostTracker> fenced = HostTracker::Restore("h1", config_, Now(), status, {});
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->state(), kFenced);
  EXPECT_FALSE(fenced->returned());
  EXPECT_EQ(fenced->Readmit(Now(), "alice", "").status().code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(fenced->fenced_by(), "unknown");  // Written before fenced_by: never automatic.
  status.set_fenced_by("agent");
  status.set_failed_over(true);
  absl::StatusOr<HostTracker> moved = HostTracker::Restore("h1", config_, Now(), status, {});
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->fenced_by(), "agent");
  EXPECT_TRUE(moved->failed_over());
  v1::HostStatus round_trip;
  moved->ToStatus(Now(), absl::Now(), &round_trip);
  EXPECT_EQ(round_trip.fenced_by(), "agent");
  EXPECT_TRUE(round_trip.failed_over());

  // An UNREACHABLE host may only have lapsed because the coordinator was
  // away: a grace of one ttl to reconnect, like any live host.
  status.set_state(kUnreachable);
  const MonoTime restarted = Now();
  absl::StatusOr<HostTracker> unreachable = HostTracker::Restore("h2", config_, Now(), status, {});
  ASSERT_TRUE(unreachable.ok());
  EXPECT_EQ(unreachable->state(), kReady);
  EXPECT_FALSE(unreachable->NeedsFencing());
  EXPECT_FALSE(unreachable->IsUsableForPlacement());
  EXPECT_THAT(unreachable->reason(), HasSubstr("grace"));
  EXPECT_EQ(unreachable->lease_expires(), restarted + absl::ToChronoNanoseconds(absl::Seconds(3)));
  AdvanceTo(absl::Seconds(3) - kNs);  // Not even SUSPECT during the grace.
  EXPECT_THAT(Steps(unreachable->Tick(Now())), IsEmpty());
  AdvanceTo(absl::Seconds(3));
  EXPECT_THAT(Steps(unreachable->Tick(Now())),
              ElementsAre(Step(kReady, kSuspect), Step(kSuspect, kUnreachable)));

  status.set_state(kMaintenance);
  const MonoTime restart = Now();
  absl::StatusOr<HostTracker> maintenance =
      HostTracker::Restore("h3", config_, restart, status, At(absl::Minutes(1)));
  ASSERT_TRUE(maintenance.ok());
  EXPECT_EQ(maintenance->state(), kMaintenance);
  EXPECT_EQ(maintenance->maintenance_until(), At(absl::Minutes(1)));

  status.set_state(kReady);
  absl::StatusOr<HostTracker> ready = HostTracker::Restore("h4", config_, restart, status, {});
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->state(), kReady);
  EXPECT_FALSE(ready->IsUsableForPlacement());  // No heartbeat yet.
  EXPECT_EQ(ready->lease_expires(), restart + absl::ToChronoNanoseconds(absl::Seconds(3)));
  EXPECT_THAT(Steps(ready->Heartbeat(Now(), Nothing())), IsEmpty());
  EXPECT_TRUE(ready->IsUsableForPlacement());

  HostTrackerConfig bad = config_;
  bad.ttl = absl::ZeroDuration();
  EXPECT_EQ(HostTracker::Restore("h5", bad, Now(), status, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HostTrackerTest, TheOperatorsDrainOrMaintenanceOutlivesAnOutageAndARestart) {
  // In maintenance, then silent: SUSPECT shows, the maintenance is kept in
  // the persisted status and comes back with the restored tracker.
  HostTracker host = Registered();
  const MonoTime until = At(absl::Minutes(10));
  ASSERT_THAT(Steps(host.SetMaintenance(Now(), until, "disk swap")),
              ElementsAre(Step(kReady, kMaintenance)));
  AdvanceTo(absl::Seconds(1));
  ASSERT_THAT(Steps(host.Tick(Now())), ElementsAre(Step(kMaintenance, kSuspect)));
  v1::HostStatus status;
  host.ToStatus(Now(), absl::FromUnixSeconds(1000), &status);
  EXPECT_EQ(status.state(), kSuspect);
  EXPECT_EQ(status.admin(), kMaintenance);
  absl::StatusOr<HostTracker> restored = HostTracker::Restore("h1", config_, Now(), status, until);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->state(), kMaintenance);
  EXPECT_TRUE(restored->in_maintenance());
  EXPECT_EQ(restored->maintenance_until(), until);
  EXPECT_FALSE(restored->IsUsableForPlacement());

  // Draining and UNREACHABLE, or FENCED: the drain is kept under both.
  status.set_state(kUnreachable);
  status.set_admin(kDraining);
  absl::StatusOr<HostTracker> unreachable = HostTracker::Restore("h2", config_, Now(), status, {});
  ASSERT_TRUE(unreachable.ok());
  EXPECT_EQ(unreachable->state(), kDraining);  // Its grace to reconnect.
  EXPECT_TRUE(unreachable->draining());
  status.set_state(kFenced);
  absl::StatusOr<HostTracker> fenced = HostTracker::Restore("h3", config_, Now(), status, {});
  ASSERT_TRUE(fenced.ok());
  EXPECT_EQ(fenced->state(), kFenced);
  EXPECT_TRUE(fenced->draining());
  v1::HostStatus again;
  fenced->ToStatus(Now(), absl::FromUnixSeconds(1000), &again);
  EXPECT_EQ(again.admin(), kDraining);

  // No operator setting: none written; a nonsense one is refused.
  HostTracker plain = Registered();
  plain.ToStatus(Now(), absl::FromUnixSeconds(1000), &again);
  EXPECT_EQ(again.admin(), v1::HOST_STATE_UNSPECIFIED);
  status.set_admin(kSuspect);
  EXPECT_EQ(HostTracker::Restore("h4", config_, Now(), status, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HostTrackerTest, ToStatusConvertsMonotonicTimesToWallTimes) {
  HostTracker host = Registered();
  AdvanceTo(absl::Milliseconds(500));
  ASSERT_THAT(Steps(host.Heartbeat(Now(), Nothing())), IsEmpty());
  v1::HostStatus status;
  const absl::Time wall = clock_.WallNow();
  host.ToStatus(Now(), wall, &status);
  EXPECT_EQ(status.state(), kReady);
  EXPECT_EQ(status.agent_incarnation(), "inc-1");
  EXPECT_EQ(common::FromProtoTimestamp(status.last_heartbeat()), wall);
  EXPECT_EQ(common::FromProtoTimestamp(status.lease_expires()), wall + absl::Seconds(3));
  EXPECT_FALSE(status.has_maintenance_until());
  EXPECT_TRUE(status.has_observed());
}

}  // namespace
}  // namespace jailover::coordinator::cluster

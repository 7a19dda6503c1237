#include "coordinator/cluster/membership.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/proto/time_util.h"
#include "coordinator/store/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/stalling_store.h"
#include "tests/testing/test_util.h"

namespace jailover::coordinator::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

HostTrackerConfig Config() {
  HostTrackerConfig config;
  config.ttl = absl::Seconds(3);
  config.renew_interval = absl::Milliseconds(500);
  config.safety_margin = absl::Seconds(10);
  return config;  // SUSPECT after 750 ms.
}

v1::Register Registration(const std::string& host, const std::string& incarnation) {
  v1::Register registration;
  registration.set_host(host);
  registration.set_agent_address("10.0.0.1:7420");
  registration.add_roles(v1::HOST_ROLE_JAIL);
  registration.mutable_facts()->set_incarnation(incarnation);
  registration.mutable_facts()->set_os("FreeBSD");
  return registration;
}

v1::ObservedState RunningJail(const std::string& name) {
  v1::ObservedState observed;
  observed.add_jails()->set_name(name);
  return observed;
}

class MembershipTest : public ::testing::Test {
 protected:
  MembershipTest() : temp_("membership_test") {}

  void SetUp() override { OpenAll(); }

  // (Re)opens the store file and a Membership over it: a coordinator start.
  void OpenAll() {
    membership_.reset();
    store_.reset();
    auto store = store::SqliteStore::Open(temp_.path() + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto membership = Membership::Create(*store_, Config(), clock_);
    ASSERT_TRUE(membership.ok()) << membership.status();
    membership_ = *std::move(membership);
  }

  // The host as persisted in the store.
  v1::Host Stored(const std::string& name) {
    auto host = store::GetObject<v1::Host>(*store_, name);
    EXPECT_TRUE(host.ok()) << host.status();
    if (!host.ok() || !host->has_value()) return v1::Host();
    return (*host)->object;
  }

  // "FROM->TO" of every host.state event, oldest first.
  std::vector<std::string> Transitions() {
    auto events = store_->ReadEvents(0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    std::vector<std::string> out;
    if (!events.ok()) return out;
    for (const v1::Event& event : *events) {
      if (event.type() == kHostReadmitEvent) continue;  // Checked where expected.
      EXPECT_EQ(event.type(), kHostStateEvent);
      out.push_back(event.from_value() + "->" + event.to_value());
    }
    return out;
  }

  v1::Event LastEvent() {
    auto events = store_->ReadEvents(0, 1000);
    EXPECT_TRUE(events.ok() && !events->empty());
    return events.ok() && !events->empty() ? events->back() : v1::Event();
  }

  // Registers h1 and lets it go silent until FENCED by time.
  void RegisterThenFenceByTime() {
    ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
    clock_.Advance(absl::Seconds(14));
    ASSERT_TRUE(membership_->Tick().ok());
    ASSERT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  }

  testing::ScopedTempDir temp_;
  testing::FakeClock clock_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<Membership> membership_;
};

TEST_F(MembershipTest, RegisterAndHeartbeatsMakeTheHostReadyAndPersistIt) {
  auto answer = membership_->Register(Registration("h1", "inc1"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->state, v1::HOST_STATE_READY);
  EXPECT_TRUE(answer->grant);
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(absl::Milliseconds(500));
    ASSERT_TRUE(membership_->Tick().ok());
    auto beat = membership_->Heartbeat("h1", {});
    ASSERT_TRUE(beat.ok()) << beat.status();
    EXPECT_TRUE(beat->grant);
    EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  }
  const v1::Host stored = Stored("h1");
  EXPECT_EQ(stored.status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(stored.agent_address(), "10.0.0.1:7420");
  EXPECT_THAT(stored.roles(), ElementsAre(v1::HOST_ROLE_JAIL));
  EXPECT_EQ(stored.status().facts().os(), "FreeBSD");
  EXPECT_EQ(stored.status().agent_incarnation(), "inc1");
  // Heartbeats within the lease changed nothing: one transition only.
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY"));

  auto host = membership_->Get("h1");
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->status().state(), v1::HOST_STATE_READY);
  // Live status: the lease runs ttl from the last heartbeat.
  EXPECT_EQ(common::FromProtoTimestamp(host->status().lease_expires()),
            clock_.WallNow() + absl::Seconds(3));
}

// Every grant lists the storage hosts' agents (the jail hosts' storage lease
// channels go to each), from registrations and after a coordinator restart.
TEST_F(MembershipTest, GrantsListEveryStorageHostsAgent) {
  auto names = [](const LeaseAnswer& answer) {
    std::vector<std::string> out;
    for (const v1::StorageAgent& agent : answer.storage_agents) {
      out.push_back(agent.host() + "@" + agent.agent_address());
    }
    return out;
  };
  auto h1 = membership_->Register(Registration("h1", "inc1"));
  ASSERT_TRUE(h1.ok()) << h1.status();
  EXPECT_THAT(names(*h1), IsEmpty());
  v1::Register s2 = Registration("s2", "inc1");
  s2.set_agent_address("10.0.1.2:7420");
  s2.add_roles(v1::HOST_ROLE_STORAGE);
  ASSERT_TRUE(membership_->Register(s2).ok());
  v1::Register s1 = Registration("s1", "inc1");
  s1.set_agent_address("10.0.1.1:7420");
  s1.clear_roles();
  s1.add_roles(v1::HOST_ROLE_STORAGE);
  ASSERT_TRUE(membership_->Register(s1).ok());
  auto beat = membership_->Heartbeat("h1", v1::ObservedState());
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_THAT(names(*beat), ElementsAre("s1@10.0.1.1:7420", "s2@10.0.1.2:7420"));
  // s2 registers again without the storage role: no longer listed.
  s2.clear_roles();
  s2.add_roles(v1::HOST_ROLE_JAIL);
  ASSERT_TRUE(membership_->Register(s2).ok());
  beat = membership_->Heartbeat("h1", v1::ObservedState());
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_THAT(names(*beat), ElementsAre("s1@10.0.1.1:7420"));
  // A coordinator restart restores the list from the store.
  OpenAll();
  auto again = membership_->Register(Registration("h1", "inc2"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(names(*again), ElementsAre("s1@10.0.1.1:7420"));
}

TEST_F(MembershipTest, SilenceMovesThroughSuspectUnreachableFencedEachPersisted) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  clock_.Advance(absl::Milliseconds(700));
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  clock_.Advance(absl::Milliseconds(100));  // 800 ms >= 750 ms
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_SUSPECT);
  clock_.Advance(absl::Milliseconds(2200));  // 3 s = ttl
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_UNREACHABLE);
  clock_.Advance(absl::Milliseconds(9900));  // 12.9 s < ttl + margin
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_UNREACHABLE);
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "READY->SUSPECT",
                                         "SUSPECT->UNREACHABLE", "UNREACHABLE->FENCED"));
  const v1::Event fenced = LastEvent();
  EXPECT_EQ(fenced.host(), "h1");
  EXPECT_EQ(fenced.severity(), v1::SEVERITY_WARNING);
  EXPECT_EQ(common::FromProtoTimestamp(fenced.time()), clock_.WallNow());
  auto listed = membership_->List({v1::HOST_STATE_FENCED});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().name(), "h1");
  EXPECT_TRUE(membership_->List({v1::HOST_STATE_READY})->empty());
}

TEST_F(MembershipTest, AHeartbeatBeforeTheFenceReturnsTheHostToReady) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(membership_->Tick().ok());
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  EXPECT_TRUE(beat->grant);
  ASSERT_TRUE(membership_->Flush().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "READY->SUSPECT",
                                         "SUSPECT->UNREACHABLE", "UNREACHABLE->READY"));
}

TEST_F(MembershipTest, AFencedHostStaysFencedAcrossACoordinatorRestartAndGetsNoLease) {
  RegisterThenFenceByTime();
  // Its jails were failed over: only an operator readmits it.
  ASSERT_TRUE(membership_->StorageFencingDone("h1", "web1-img 1 -> 2").ok());
  OpenAll();  // Coordinator restart over the same file.
  auto host = membership_->Get("h1");
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->status().state(), v1::HOST_STATE_FENCED);

  // Its agent comes back: still FENCED, and no grant.
  clock_.Advance(absl::Seconds(1));
  auto registered = membership_->Register(Registration("h1", "inc2"));
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(registered->state, v1::HOST_STATE_FENCED);
  EXPECT_FALSE(registered->grant);
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->state, v1::HOST_STATE_FENCED);
  EXPECT_FALSE(beat->grant);
  EXPECT_FALSE(beat->readmit_reason.has_value());
  ASSERT_TRUE(membership_->Flush().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  EXPECT_EQ(Stored("h1").status().agent_incarnation(), "inc2");
}

TEST_F(MembershipTest, ReadmitIsRefusedWhileAJailRunsAndAcceptedWhenNothingRuns) {
  RegisterThenFenceByTime();
  // A failover moved its jails (so it is not readmitted automatically).
  ASSERT_TRUE(membership_->StorageFencingDone("h1", "web1-img 1 -> 2").ok());
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc2")).ok());
  ASSERT_TRUE(membership_->Heartbeat("h1", RunningJail("web1")).ok());
  const size_t events_before = Transitions().size();

  auto refused = membership_->Readmit("h1", "alice", "repaired");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("web1"));
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  EXPECT_TRUE(Stored("h1").status().failed_over());
  EXPECT_EQ(Transitions().size(), events_before);

  v1::ObservedState nothing;
  nothing.set_self_fenced(true);
  clock_.Advance(absl::Milliseconds(500));
  auto beat = membership_->Heartbeat("h1", nothing);
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->grant);
  EXPECT_EQ(beat->state, v1::HOST_STATE_FENCED);  // Failed over: an operator readmits it.
  auto readmitted = membership_->Readmit("h1", "alice", "repaired");
  ASSERT_TRUE(readmitted.ok()) << readmitted.status();
  EXPECT_EQ(readmitted->status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  const v1::Event event = LastEvent();
  EXPECT_EQ(event.from_value(), "FENCED");
  EXPECT_EQ(event.to_value(), "READY");
  EXPECT_THAT(event.reason(), HasSubstr("alice"));

  // The next heartbeat gets a grant and then the Readmit, once.
  clock_.Advance(absl::Milliseconds(500));
  beat = membership_->Heartbeat("h1", nothing);
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->grant);
  ASSERT_TRUE(beat->readmit_reason.has_value());
  EXPECT_THAT(*beat->readmit_reason, HasSubstr("alice"));
  // Still self-fenced (the Readmit crossed a fence of the agent's own):
  // the Readmit is sent again, until a heartbeat shows the agent unfenced.
  beat = membership_->Heartbeat("h1", nothing);
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->grant);
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  EXPECT_TRUE(beat->readmit_reason.has_value());
  beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->grant);
  EXPECT_FALSE(beat->readmit_reason.has_value());
  beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_FALSE(beat->readmit_reason.has_value());
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
}

TEST_F(MembershipTest, AnAgentThatHoldsNothingCanBeReadmittedWithoutHavingFencedItself) {
  // It holds nothing, so it never fences itself: nothing can cross the
  // readmission.
  RegisterThenFenceByTime();
  ASSERT_TRUE(membership_->StorageFencingDone("h1", "web1-img 1 -> 2").ok());
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc2")).ok());
  ASSERT_TRUE(membership_->Heartbeat("h1", {}).ok());
  auto readmitted = membership_->Readmit("h1", "alice", "repaired");
  ASSERT_TRUE(readmitted.ok()) << readmitted.status();
  EXPECT_EQ(readmitted->status().state(), v1::HOST_STATE_READY);
}

TEST_F(MembershipTest, AHostThatFencedItselfWhileNothingMovedItsJailsIsReadmittedAndTold) {
  RegisterThenFenceByTime();  // Nobody could fail it over (no failover ran).
  OpenAll();                  // Even across a coordinator restart.
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc2")).ok());
  v1::ObservedState fenced;
  fenced.set_self_fenced(true);
  auto beat = membership_->Heartbeat("h1", fenced);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  EXPECT_TRUE(beat->grant);
  ASSERT_TRUE(beat->readmit_reason.has_value());
  EXPECT_THAT(*beat->readmit_reason, HasSubstr("readmitted automatically"));
  ASSERT_TRUE(membership_->Flush().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(Transitions().back(), "FENCED->READY");
  const v1::Event event = LastEvent();
  EXPECT_EQ(event.type(), kHostReadmitEvent);
  EXPECT_EQ(event.host(), "h1");
  EXPECT_THAT(event.reason(), HasSubstr("readmitted automatically"));
  // Sent again while the agent still says self-fenced, then no more.
  EXPECT_TRUE(membership_->Heartbeat("h1", fenced)->readmit_reason.has_value());
  EXPECT_FALSE(membership_->Heartbeat("h1", {})->readmit_reason.has_value());
}

TEST_F(MembershipTest, AHostBeingFailedOverStaysUnreachableUntilItsFailoverEnds) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(membership_->Tick().ok());
  ASSERT_TRUE(membership_->BeginFencing("h1", "failover of jail web1").ok());
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->state, v1::HOST_STATE_UNREACHABLE);
  EXPECT_TRUE(beat->grant);  // Its lease goes on; only the state is held.
  ASSERT_TRUE(membership_->StorageFencingDone("h1", "web1-img 1 -> 2").ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  EXPECT_EQ(Stored("h1").status().fenced_by(), "storage");
  EXPECT_TRUE(Stored("h1").status().failed_over());
  EXPECT_EQ(membership_->BeginFencing("nope", "x").code(), absl::StatusCode::kNotFound);
}

TEST_F(MembershipTest, AfterTheCoordinatorWasAwayTheFirstInputExtendsEveryLeaseFirst) {
  membership_->EnableStallDetection(absl::Milliseconds(50), absl::Milliseconds(250));
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  ASSERT_TRUE(membership_->Register(Registration("h2", "inc1")).ok());
  // The whole process was stopped for 30 s (no pulse). Whichever input comes
  // first — here h1's heartbeat — finds it out before applying timeouts.
  clock_.Advance(absl::Seconds(30));
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h2").status().state(), v1::HOST_STATE_READY);
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "UNSPECIFIED->READY"));
  // Pulses regular again: h2, silent since, is UNREACHABLE one ttl later.
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(absl::Milliseconds(50));
    membership_->Pulse();
  }
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h2").status().state(), v1::HOST_STATE_UNREACHABLE);
}

TEST_F(MembershipTest, WithoutStallDetectionTimeIsJustTime) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
}

TEST_F(MembershipTest, MarkFencedIsAuditedAndRefusedForALiveHost) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  ASSERT_TRUE(membership_->Flush().ok());
  auto refused = membership_->MarkFenced("h1", "alice", "powered off");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(membership_->MarkFenced("h1", "alice", "").status().code(),
            absl::StatusCode::kInvalidArgument);

  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(membership_->Tick().ok());
  ASSERT_EQ(Stored("h1").status().state(), v1::HOST_STATE_UNREACHABLE);
  auto fenced = membership_->MarkFenced("h1", "alice", "powered off");
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_EQ(fenced->status().state(), v1::HOST_STATE_FENCED);
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);
  const v1::Event event = LastEvent();
  EXPECT_EQ(event.to_value(), "FENCED");
  EXPECT_THAT(event.reason(), HasSubstr("alice"));
  EXPECT_THAT(event.reason(), HasSubstr("powered off"));
}

TEST_F(MembershipTest, DrainAndUndrainArePersisted) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  auto drained = membership_->Drain("h1", "bob", "kernel upgrade");
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_DRAINING);
  EXPECT_THAT(LastEvent().reason(), HasSubstr("bob"));
  // A draining host still gets its lease.
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok());
  EXPECT_TRUE(beat->grant);
  ASSERT_TRUE(membership_->Undrain("h1", "bob", "").ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "READY->DRAINING",
                                         "DRAINING->READY"));
  auto counts = membership_->CountByState();
  EXPECT_EQ(counts[v1::HOST_STATE_READY], 1);
}

TEST_F(MembershipTest, ADrainHiddenBySuspectSurvivesACoordinatorRestart) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  ASSERT_TRUE(membership_->Drain("h1", "bob", "kernel upgrade").ok());
  clock_.Advance(absl::Milliseconds(800));  // silent: SUSPECT shows
  ASSERT_TRUE(membership_->Tick().ok());
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_SUSPECT);
  EXPECT_EQ(Stored("h1").status().admin(), v1::HOST_STATE_DRAINING);
  OpenAll();  // Coordinator restart over the same file.
  auto beat = membership_->Heartbeat("h1", {});
  ASSERT_TRUE(beat.ok()) << beat.status();
  // Still draining, not READY (placeable) as before HostStatus.admin.
  EXPECT_EQ(beat->state, v1::HOST_STATE_DRAINING);
  EXPECT_EQ(membership_->Get("h1")->status().state(), v1::HOST_STATE_DRAINING);
}

TEST_F(MembershipTest, BadInputsChangeNothing) {
  v1::Register no_incarnation = Registration("h1", "");
  EXPECT_EQ(membership_->Register(no_incarnation).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Register(Registration("../etc", "inc1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(membership_->Heartbeat("h1", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(membership_->Readmit("h1", "alice", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(membership_->Get("h1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(membership_->List()->empty());
  EXPECT_EQ(*store_->Revision(), 0);
}

// Runs `f` on a thread; fails the test (and releases `store`, so that the
// thread ends) if it does not return within 10 s.
template <typename F>
auto Promptly(testing::StallingStore& store, F f) -> decltype(f()) {
  absl::Notification done;
  std::optional<decltype(f())> result;
  std::thread thread([&] {
    result.emplace(f());
    done.Notify();
  });
  const bool prompt = done.WaitForNotificationWithTimeout(absl::Seconds(10));
  if (!prompt) store.Release();
  thread.join();
  EXPECT_TRUE(prompt) << "waited on the stalled store";
  return *std::move(result);
}

// The lease path never waits on the store: while every commit hangs (an
// operator's drain and the tick are stuck in one), registrations and
// heartbeats — one of them returning a SUSPECT host to READY — are answered
// at once from memory; reads show what is stored; and what was decided is
// written, in order, when the store answers again.
TEST_F(MembershipTest, LeasesAreAnsweredWhileTheStoreStallsACommit) {
  testing::StallingStore stalling(*store_);
  auto created = Membership::Create(stalling, Config(), clock_);
  ASSERT_TRUE(created.ok()) << created.status();
  Membership& membership = **created;
  ASSERT_TRUE(membership.Register(Registration("h1", "inc1")).ok());
  ASSERT_TRUE(membership.Register(Registration("h2", "inc1")).ok());
  ASSERT_TRUE(membership.Flush().ok());
  const int64_t commits = stalling.commits();

  stalling.Stall();
  absl::StatusOr<v1::Host> drained;
  std::thread drain([&] { drained = membership.Drain("h2", "bob", "kernel upgrade"); });
  ASSERT_TRUE(stalling.AwaitWaiting(1, absl::Seconds(10)));
  clock_.Advance(absl::Milliseconds(800));  // h1 silent: SUSPECT
  absl::Status ticked;
  std::thread tick([&] { ticked = membership.Tick(); });
  // The tick has judged h1 (queued beside h2) and waits for the store too.
  for (int i = 0; i < 1000 && membership.queued() < 2; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(membership.queued(), 2u);

  for (int i = 0; i < 5; ++i) {
    auto beat = Promptly(stalling, [&] { return membership.Heartbeat("h1", RunningJail("web")); });
    ASSERT_TRUE(beat.ok()) << beat.status();
    EXPECT_TRUE(beat->grant);
    EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
    clock_.Advance(absl::Milliseconds(500));
  }
  auto joined = Promptly(stalling, [&] { return membership.Register(Registration("h3", "inc1")); });
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_TRUE(joined->grant);
  // What is not stored is not acted on: h2 is not DRAINING yet, h3 unknown.
  auto listed = Promptly(stalling, [&] { return membership.List(); });
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[1].status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(membership.HostViews().count("h3"), 0u);
  EXPECT_EQ(stalling.commits(), commits);  // Nothing got through meanwhile.

  stalling.Release();
  drain.join();
  tick.join();
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->status().state(), v1::HOST_STATE_DRAINING);
  EXPECT_TRUE(ticked.ok()) << ticked;
  ASSERT_TRUE(membership.Flush().ok());
  // h2 was silent too: the tick found it SUSPECT (still draining).
  EXPECT_EQ(Stored("h2").status().state(), v1::HOST_STATE_SUSPECT);
  EXPECT_EQ(Stored("h2").status().admin(), v1::HOST_STATE_DRAINING);
  EXPECT_EQ(Stored("h3").status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(Stored("h1").status().observed().jails(0).name(), "web");
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "UNSPECIFIED->READY",
                                         "READY->DRAINING", "READY->SUSPECT", "SUSPECT->READY",
                                         "DRAINING->SUSPECT", "UNSPECIFIED->READY"));
  EXPECT_EQ(membership.queued(), 0u);
}

// With the persister running, what a heartbeat changed reaches the store
// without any other input.
TEST_F(MembershipTest, ThePersisterStoresWhatLeaseInputsChanged) {
  membership_->StartPersister(absl::Milliseconds(10));
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (membership_->queued() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(membership_->queued(), 0u);
  EXPECT_EQ(Stored("h1").status().state(), v1::HOST_STATE_READY);
  EXPECT_EQ(Stored("h1").agent_address(), "10.0.0.1:7420");
}

// Liveness is judged on when a heartbeat arrived: one that arrived within
// the ttl but is handled after it (a busy coordinator) does not make the
// host UNREACHABLE.
TEST_F(MembershipTest, AHeartbeatIsJudgedOnWhenItArrived) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  clock_.Advance(absl::Milliseconds(2900));
  const MonoTime arrived = clock_.MonotonicNow();
  clock_.Advance(absl::Seconds(2));  // Handled 4.9 s after the last renewal.
  auto beat = membership_->Heartbeat("h1", {}, arrived);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->state, v1::HOST_STATE_READY);
  ASSERT_TRUE(membership_->Flush().ok());
  EXPECT_THAT(Transitions(), ElementsAre("UNSPECIFIED->READY", "READY->SUSPECT", "SUSPECT->READY"));
  // Its lease runs from the arrival.
  EXPECT_EQ(common::FromProtoTimestamp(membership_->Get("h1")->status().lease_expires()),
            clock_.WallNow() - absl::Seconds(2) + absl::Seconds(3));
}

TEST_F(MembershipTest, CreateRefusesAnInvalidConfig) {
  HostTrackerConfig config = Config();
  config.renew_interval = absl::Seconds(5);  // longer than the ttl
  EXPECT_EQ(Membership::Create(*store_, config, clock_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace jailover::coordinator::cluster

namespace jailover::coordinator::cluster {
namespace {

TEST_F(MembershipTest, RemoveForgetsOnlyAGoneHostThatNothingUses) {
  ASSERT_TRUE(membership_->Register(Registration("h1", "inc1")).ok());
  // A live host is not removed.
  absl::Status removed = membership_->Remove("h1", "alice", "decommissioned");
  EXPECT_EQ(removed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(removed.message(), ::testing::HasSubstr("is READY"));
  clock_.Advance(absl::Seconds(14));
  ASSERT_TRUE(membership_->Tick().ok());
  ASSERT_EQ(Stored("h1").status().state(), v1::HOST_STATE_FENCED);

  // A jail names it as a standby: refused, nothing changes.
  v1::Jail jail;
  jail.set_name("web");
  jail.mutable_placement()->set_preferred_host("h2");
  jail.mutable_placement()->add_standbys("h1");
  store::Txn txn;
  txn.PutObject(jail);
  ASSERT_TRUE(store_->Commit(txn).ok());
  const int64_t revision = *store_->Revision();
  removed = membership_->Remove("h1", "alice", "decommissioned");
  EXPECT_EQ(removed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(removed.message(), ::testing::HasSubstr("jail web"));
  EXPECT_EQ(*store_->Revision(), revision);

  store::Txn drop;
  drop.Delete(store::ObjectKey<v1::Jail>("web"));
  ASSERT_TRUE(store_->Commit(drop).ok());
  ASSERT_TRUE(membership_->Remove("h1", "alice", "decommissioned").ok());
  EXPECT_EQ(membership_->Get("h1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store::GetObject<v1::Host>(*store_, "h1")->has_value());
  EXPECT_EQ(LastEvent().type(), "host.removed");
  EXPECT_THAT(LastEvent().reason(), ::testing::HasSubstr("removed by alice: decommissioned"));
  // Gone across a restart too.
  OpenAll();
  EXPECT_EQ(membership_->Get("h1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(membership_->Remove("nope", "alice", "").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace jailover::coordinator::cluster

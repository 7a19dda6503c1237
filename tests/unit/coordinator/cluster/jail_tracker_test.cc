#include "coordinator/cluster/jail_tracker.h"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/proto/time_util.h"
#include "coordinator/cluster/host_tracker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace jailover::coordinator::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Step = std::pair<v1::JailPhase, v1::JailPhase>;

constexpr v1::JailPhase kPending = v1::JAIL_PHASE_PENDING;
constexpr v1::JailPhase kStarting = v1::JAIL_PHASE_STARTING;
constexpr v1::JailPhase kRunning = v1::JAIL_PHASE_RUNNING;
constexpr v1::JailPhase kStopping = v1::JAIL_PHASE_STOPPING;
constexpr v1::JailPhase kStopped = v1::JAIL_PHASE_STOPPED;
constexpr v1::JailPhase kMigrating = v1::JAIL_PHASE_MIGRATING;
constexpr v1::JailPhase kFailingOver = v1::JAIL_PHASE_FAILING_OVER;
constexpr v1::JailPhase kError = v1::JAIL_PHASE_ERROR;

const absl::Duration kNs = absl::Nanoseconds(1);

std::vector<Step> Steps(const absl::StatusOr<std::vector<JailTransition>>& result) {
  EXPECT_TRUE(result.ok()) << result.status();
  std::vector<Step> steps;
  if (!result.ok()) return steps;
  for (const JailTransition& t : *result) steps.emplace_back(t.from, t.to);
  return steps;
}

v1::Jail Definition(v1::FailbackMode failback = v1::FAILBACK_MODE_UNSPECIFIED) {
  v1::Jail jail;
  jail.set_name("web");
  jail.mutable_placement()->set_preferred_host("h1");
  jail.mutable_placement()->add_standbys("h2");
  jail.mutable_placement()->add_standbys("h3");
  jail.mutable_policy()->set_failback(failback);
  return jail;
}

JailOperationStart Op(std::string id, v1::OperationKind kind, std::string to,
                      bool automatic = true) {
  return JailOperationStart{std::move(id), kind, std::move(to), automatic};
}

class JailTrackerTest : public ::testing::Test {
 protected:
  MonoTime Now() { return clock_.MonotonicNow(); }
  MonoTime At(absl::Duration d) { return start_ + absl::ToChronoNanoseconds(d); }
  void AdvanceTo(absl::Duration d) { clock_.Advance(absl::FromChrono(At(d) - Now())); }

  void SetHost(const std::string& name, v1::HostState state, MonoTime since) {
    hosts_[name] = HostView{state, since, state == v1::HOST_STATE_READY, std::nullopt};
  }
  JailUpdate Evaluate(JailTracker& jail) {
    absl::StatusOr<JailUpdate> update =
        jail.Evaluate(Now(), [this](absl::string_view name) -> std::optional<HostView> {
          auto it = hosts_.find(std::string(name));
          if (it == hosts_.end()) return std::nullopt;
          return it->second;
        });
    EXPECT_TRUE(update.ok()) << update.status();
    return update.ok() ? *std::move(update) : JailUpdate{};
  }
  JailTracker Create(const v1::Jail& definition = Definition()) {
    absl::StatusOr<JailTracker> jail = JailTracker::Create(definition, Now());
    EXPECT_TRUE(jail.ok()) << jail.status();
    return *std::move(jail);
  }
  // A jail started on h1 (all hosts READY) and RUNNING there.
  JailTracker Running(const v1::Jail& definition = Definition()) {
    for (const char* h : {"h1", "h2", "h3", "h4"}) SetHost(h, v1::HOST_STATE_READY, start_);
    JailTracker jail = Create(definition);
    EXPECT_THAT(Steps(jail.OperationStarted(Now(), Op("start-1", v1::OPERATION_KIND_START, "h1"))),
                ElementsAre(Step(kPending, kStarting)));
    EXPECT_THAT(Steps(jail.OperationFinished(Now(), "start-1", 1)),
                ElementsAre(Step(kStarting, kRunning)));
    return jail;
  }
  // Fails `jail` over from its fenced host to `to` as the automation would.
  void FailOver(JailTracker& jail, const std::string& to, const std::string& op) {
    SetHost(jail.host(), v1::HOST_STATE_FENCED, Now());
    JailUpdate update = Evaluate(jail);
    ASSERT_EQ(update.decision.action, JailAction::kFailover) << update.decision.reason;
    ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op(op, v1::OPERATION_KIND_FAILOVER, to))),
                ElementsAre(Step(kRunning, kFailingOver)));
    ASSERT_THAT(Steps(jail.OperationFinished(Now(), op, 0)),
                ElementsAre(Step(kFailingOver, kRunning)));
    ASSERT_EQ(jail.host(), to);
  }

  testing::FakeClock clock_;
  const MonoTime start_ = clock_.MonotonicNow();
  std::map<std::string, HostView> hosts_;
};

TEST(JailPolicyTest, DefaultsAndValidation) {
  absl::StatusOr<EffectivePolicy> defaults = ResolvePolicy(v1::JailPolicy());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->failback, v1::FAILBACK_MODE_NONE);
  EXPECT_EQ(defaults->failback_after, absl::Minutes(5));
  EXPECT_EQ(defaults->max_restarts, 3u);
  EXPECT_EQ(defaults->window, absl::Minutes(10));

  v1::JailPolicy policy;
  policy.mutable_window()->set_seconds(0);
  EXPECT_THAT(ResolvePolicy(policy).status().message(), HasSubstr("window must be positive"));
  policy.mutable_window()->set_seconds(60);
  policy.mutable_failback_after()->set_seconds(-1);
  EXPECT_EQ(ResolvePolicy(policy).status().code(), absl::StatusCode::kInvalidArgument);
  policy.mutable_failback_after()->set_seconds(0);
  policy.set_max_restarts(5);
  absl::StatusOr<EffectivePolicy> set = ResolvePolicy(policy);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->failback_after, absl::ZeroDuration());
  EXPECT_EQ(set->max_restarts, 5u);
  EXPECT_EQ(set->window, absl::Minutes(1));

  v1::Jail jail = Definition();
  *jail.mutable_policy() = policy;
  jail.mutable_policy()->mutable_window()->set_seconds(-5);
  absl::StatusOr<JailTracker> tracker = JailTracker::Create(jail, MonoTime());
  EXPECT_EQ(tracker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tracker.status().message(), HasSubstr("jail web"));
}

TEST_F(JailTrackerTest, NewJailIsStartedOnItsPreferredHostWhenUsable) {
  JailTracker jail = Create();
  EXPECT_EQ(jail.phase(), kPending);
  SetHost("h1", v1::HOST_STATE_READY, start_);
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kStart);
  EXPECT_EQ(update.decision.to_host, "h1");
  SetHost("h1", v1::HOST_STATE_SUSPECT, start_);
  update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kStart);
  EXPECT_EQ(update.decision.to_host, "");  // The planner picks.
  EXPECT_THAT(update.transitions, IsEmpty());
}

TEST_F(JailTrackerTest, OperationsDriveThePhasesOneAtATime) {
  JailTracker jail = Create();
  EXPECT_EQ(jail.OperationStarted(Now(), Op("", v1::OPERATION_KIND_START, "h1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jail.OperationStarted(Now(), Op("x", v1::OPERATION_KIND_START, "")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jail.OperationStarted(Now(), Op("x", v1::OPERATION_KIND_DRAIN, "h1")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jail.OperationStarted(Now(), Op("x", v1::OPERATION_KIND_MIGRATE, "h2")).status().code(),
            absl::StatusCode::kFailedPrecondition);  // Not RUNNING.

  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("op1", v1::OPERATION_KIND_START, "h1"))),
              ElementsAre(Step(kPending, kStarting)));
  EXPECT_EQ(jail.operation_id(), "op1");
  EXPECT_EQ(jail.host(), "h1");
  // A resumed operation is a no-op; another one is refused.
  EXPECT_THAT(Steps(jail.OperationStarted(Now(), Op("op1", v1::OPERATION_KIND_START, "h1"))),
              IsEmpty());
  auto busy = jail.OperationStarted(Now(), Op("op2", v1::OPERATION_KIND_STOP, ""));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.status().message(), HasSubstr("op1 (start) is still acting on it"));
  EXPECT_EQ(jail.OperationFinished(Now(), "op2", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  SetHost("h1", v1::HOST_STATE_READY, start_);
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);

  clock_.Advance(absl::Seconds(2));
  auto done = jail.OperationFinished(Now(), "op1", 7);
  ASSERT_THAT(Steps(done), ElementsAre(Step(kStarting, kRunning)));
  EXPECT_THAT((*done)[0].reason, HasSubstr("running on h1"));
  EXPECT_EQ(jail.epoch(), 7u);
  EXPECT_EQ(jail.operation_id(), "");

  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("op3", v1::OPERATION_KIND_MIGRATE, "h2",
                                                    /*automatic=*/false))),
              ElementsAre(Step(kRunning, kMigrating)));
  EXPECT_EQ(jail.host(), "h1");  // Still on the source while migrating.
  ASSERT_THAT(Steps(jail.OperationFinished(Now(), "op3", 8)),
              ElementsAre(Step(kMigrating, kRunning)));
  EXPECT_EQ(jail.host(), "h2");
  EXPECT_EQ(jail.BudgetUsed(Now()), 0);  // Migrations are not budgeted.

  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("op4", v1::OPERATION_KIND_STOP, "", false))),
              ElementsAre(Step(kRunning, kStopping)));
  ASSERT_THAT(Steps(jail.OperationFinished(Now(), "op4", 0)),
              ElementsAre(Step(kStopping, kStopped)));
  EXPECT_EQ(jail.host(), "");
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
}

// The failover of a jail whose host's lease expired starts at UNREACHABLE:
// its first step fences the host from the image at the storage host (the
// grant goes to the standby at epoch + 1), so nothing else moves unfenced.
TEST_F(JailTrackerTest, FailoverOnlyOnceTheLeaseExpired) {
  JailTracker jail = Running();
  for (v1::HostState state : {v1::HOST_STATE_READY, v1::HOST_STATE_SUSPECT,
                              v1::HOST_STATE_DRAINING, v1::HOST_STATE_MAINTENANCE}) {
    SetHost("h1", state, Now());
    JailUpdate update = Evaluate(jail);
    EXPECT_EQ(update.decision.action, JailAction::kNone) << HostStateName(state);
    EXPECT_FALSE(jail.NeedsFailover(state));
    EXPECT_THAT(update.transitions, IsEmpty());
  }
  SetHost("h1", v1::HOST_STATE_SUSPECT, Now());
  EXPECT_THAT(Evaluate(jail).decision.reason,
              HasSubstr("waiting: host h1 is SUSPECT; jails move only once its lease expired"));
  {
    SetHost("h1", v1::HOST_STATE_UNREACHABLE, Now());
    EXPECT_TRUE(jail.NeedsFailover(v1::HOST_STATE_UNREACHABLE));
    JailTracker copy = jail;
    JailUpdate update = Evaluate(copy);
    EXPECT_EQ(update.decision.action, JailAction::kFailover);
    EXPECT_THAT(update.decision.reason, HasSubstr("fences it from the image first"));
  }

  SetHost("h1", v1::HOST_STATE_FENCED, Now());
  EXPECT_TRUE(jail.NeedsFailover(v1::HOST_STATE_FENCED));
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kFailover);
  EXPECT_EQ(update.decision.from_host, "h1");
  EXPECT_EQ(update.decision.to_host, "");
  EXPECT_THAT(update.decision.reason, HasSubstr("host h1 is FENCED"));
  EXPECT_EQ(jail.phase(), kRunning);  // Deciding changes no phase.

  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("fo1", v1::OPERATION_KIND_FAILOVER, "h2"))),
              ElementsAre(Step(kRunning, kFailingOver)));
  EXPECT_FALSE(jail.NeedsFailover(v1::HOST_STATE_FENCED));  // Already moving.
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  EXPECT_EQ(jail.BudgetUsed(Now()), 1);
}

TEST_F(JailTrackerTest, LeaseExpiryLeadsToAFailoverDecisionAtTheTtl) {
  HostTrackerConfig config;
  config.safety_margin = absl::Seconds(2);
  HostTracker h1("h1", config, Now());
  ASSERT_TRUE(h1.Register(Now(), "inc").ok());
  ASSERT_TRUE(h1.Heartbeat(Now(), v1::ObservedState()).ok());
  JailTracker jail = Running();
  auto lookup = [&](absl::string_view name) -> std::optional<HostView> {
    if (name == "h1") return ViewOf(h1);
    return HostView{v1::HOST_STATE_READY, start_, true, std::nullopt};
  };
  for (absl::Duration t = absl::Milliseconds(100); t <= absl::Seconds(6);
       t += absl::Milliseconds(100)) {
    AdvanceTo(t);
    ASSERT_TRUE(h1.Tick(Now()).ok());
    absl::StatusOr<JailUpdate> update = jail.Evaluate(Now(), lookup);
    ASSERT_TRUE(update.ok());
    if (t < config.ttl) {
      ASSERT_EQ(update->decision.action, JailAction::kNone) << absl::FormatDuration(t);
    } else {
      ASSERT_EQ(h1.state(), t < config.ttl + config.safety_margin ? v1::HOST_STATE_UNREACHABLE
                                                                  : v1::HOST_STATE_FENCED);
      ASSERT_EQ(update->decision.action, JailAction::kFailover) << absl::FormatDuration(t);
    }
  }
}

TEST_F(JailTrackerTest, JitterUnderTheTtlNeverTriggersAMove) {
  HostTracker h1("h1", HostTrackerConfig(), Now());
  ASSERT_TRUE(h1.Register(Now(), "inc").ok());
  v1::ObservedState observed;
  observed.add_jails()->set_name("web");
  ASSERT_TRUE(h1.Heartbeat(Now(), observed).ok());
  JailTracker jail = Running();
  auto lookup = [&](absl::string_view name) -> std::optional<HostView> {
    if (name == "h1") return ViewOf(h1);
    return HostView{v1::HOST_STATE_READY, start_, true, std::nullopt};
  };
  uint32_t seed = 99;
  absl::Duration t = absl::ZeroDuration();
  int suspect_ticks = 0;
  for (int round = 0; round < 1000; ++round) {
    seed = seed * 1103515245u + 12345u;
    const absl::Duration next = t + absl::Milliseconds(200 + (seed >> 8) % 2790);
    for (absl::Duration tick = t + absl::Milliseconds(100); tick < next;
         tick += absl::Milliseconds(100)) {
      AdvanceTo(tick);
      ASSERT_TRUE(h1.Tick(Now()).ok());
      if (h1.state() == v1::HOST_STATE_SUSPECT) ++suspect_ticks;
      absl::StatusOr<JailUpdate> update = jail.Evaluate(Now(), lookup);
      ASSERT_TRUE(update.ok());
      ASSERT_EQ(update->decision.action, JailAction::kNone)
          << "round " << round << ": " << update->decision.reason;
      ASSERT_THAT(update->transitions, IsEmpty());
    }
    t = next;
    AdvanceTo(t);
    ASSERT_TRUE(h1.Heartbeat(Now(), observed).ok());
    ASSERT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true)), IsEmpty());
  }
  EXPECT_GT(suspect_ticks, 1000);     // The host was often SUSPECT...
  EXPECT_EQ(jail.phase(), kRunning);  // ...and the jail never moved.
  EXPECT_EQ(jail.host(), "h1");
  EXPECT_EQ(jail.BudgetUsed(Now()), 0);
}

TEST_F(JailTrackerTest, FailoverLimitPutsTheJailInErrorWithTheReason) {
  JailTracker jail = Running();
  FailOver(jail, "h2", "fo1");
  clock_.Advance(absl::Minutes(1));
  FailOver(jail, "h3", "fo2");
  clock_.Advance(absl::Minutes(1));
  FailOver(jail, "h4", "fo3");
  EXPECT_EQ(jail.BudgetUsed(Now()), 3);
  clock_.Advance(absl::Minutes(1));
  SetHost("h4", v1::HOST_STATE_FENCED, Now());
  // Started without asking: refused, nothing changes.
  EXPECT_EQ(
      jail.OperationStarted(Now(), Op("fo4", v1::OPERATION_KIND_FAILOVER, "h1")).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jail.phase(), kRunning);

  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kNone);
  ASSERT_EQ(update.transitions.size(), 1u);
  EXPECT_EQ(update.transitions[0].from, kRunning);
  EXPECT_EQ(update.transitions[0].to, kError);
  EXPECT_EQ(update.transitions[0].reason,
            "4 restarts/failovers in 10m, limit 3; wanted a failover: host h4 is FENCED");
  EXPECT_EQ(jail.phase(), kError);
  EXPECT_EQ(jail.reason(), update.transitions[0].reason);

  // Automation leaves it alone, even once the window has passed.
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  EXPECT_THAT(Evaluate(jail).decision.reason, HasSubstr("needs an operator"));
  EXPECT_EQ(
      jail.OperationStarted(Now(), Op("fo5", v1::OPERATION_KIND_FAILOVER, "h1")).status().code(),
      absl::StatusCode::kFailedPrecondition);
  // An operator's operation takes it out of ERROR.
  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("op-alice", v1::OPERATION_KIND_FAILOVER, "h1",
                                                    /*automatic=*/false))),
              ElementsAre(Step(kError, kFailingOver)));
  ASSERT_THAT(Steps(jail.OperationFinished(Now(), "op-alice", 0)),
              ElementsAre(Step(kFailingOver, kRunning)));
  EXPECT_EQ(jail.host(), "h1");
}

TEST_F(JailTrackerTest, TheBudgetIsASlidingWindow) {
  JailTracker jail = Running();
  FailOver(jail, "h2", "fo1");  // t = 0
  AdvanceTo(absl::Minutes(1));
  FailOver(jail, "h3", "fo2");
  AdvanceTo(absl::Minutes(2));
  FailOver(jail, "h4", "fo3");
  SetHost("h4", v1::HOST_STATE_FENCED, Now());
  AdvanceTo(absl::Minutes(10) - kNs);
  EXPECT_EQ(jail.BudgetUsed(Now()), 3);
  EXPECT_EQ(
      jail.OperationStarted(Now(), Op("fo4", v1::OPERATION_KIND_FAILOVER, "h1")).status().code(),
      absl::StatusCode::kFailedPrecondition);
  AdvanceTo(absl::Minutes(10));  // fo1 leaves the window.
  EXPECT_EQ(jail.BudgetUsed(Now()), 2);
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kFailover);
  EXPECT_THAT(update.transitions, IsEmpty());
  FailOver(jail, "h1", "fo4");
  EXPECT_EQ(jail.phase(), kRunning);
  EXPECT_EQ(jail.BudgetUsed(Now()), 3);
}

TEST_F(JailTrackerTest, CrashesAreRestartedUntilTheLimitThenError) {
  JailTracker jail = Running();
  // A report just after the start may predate it: ignored.
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", false)), IsEmpty());
  EXPECT_EQ(jail.phase(), kRunning);
  // Reports from other hosts do not matter.
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h2", false)), IsEmpty());

  for (int i = 1; i <= 3; ++i) {
    clock_.Advance(absl::Seconds(30));
    auto crashed = jail.ObservedOnHost(Now(), "h1", false);
    ASSERT_THAT(Steps(crashed), ElementsAre(Step(kRunning, kPending)));
    EXPECT_THAT((*crashed)[0].reason, HasSubstr("not running on h1"));
    JailUpdate update = Evaluate(jail);
    ASSERT_EQ(update.decision.action, JailAction::kRestart) << update.decision.reason;
    EXPECT_EQ(update.decision.to_host, "h1");
    const std::string op = "restart-" + std::to_string(i);
    ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op(op, v1::OPERATION_KIND_RESTART, "h1"))),
                ElementsAre(Step(kPending, kStarting)));
    ASSERT_THAT(Steps(jail.OperationFinished(Now(), op, 0)),
                ElementsAre(Step(kStarting, kRunning)));
  }
  clock_.Advance(absl::Seconds(30));
  ASSERT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", false)),
              ElementsAre(Step(kRunning, kPending)));
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kNone);
  ASSERT_EQ(update.transitions.size(), 1u);
  EXPECT_EQ(update.transitions[0].to, kError);
  EXPECT_EQ(update.transitions[0].reason,
            "4 restarts/failovers in 10m, limit 3; wanted a restart: not running on h1 (READY)");
}

TEST_F(JailTrackerTest, ALostStorageLeaseOnALiveHostAsksForAFailoverOfThatJail) {
  JailTracker jail = Running();
  AdvanceTo(absl::Seconds(2));  // Past the observe grace.
  // Running there, its storage lease fine: nothing to do.
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true, false)), IsEmpty());
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  // h1 reports it cannot renew the lease with the storage host.
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true, true)), IsEmpty());
  EXPECT_TRUE(jail.storage_lapsed());
  EXPECT_EQ(jail.phase(), kRunning);
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kFailover);
  EXPECT_EQ(update.decision.from_host, "h1");
  EXPECT_THAT(update.decision.reason, HasSubstr("lost its storage lease"));
  // A report from another host does not count; a good one from h1 clears it.
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h2", true, false)), IsEmpty());
  EXPECT_TRUE(jail.storage_lapsed());
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true, false)), IsEmpty());
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  // The failover's start clears it, and it counts against the budget.
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true, true)), IsEmpty());
  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("f-1", v1::OPERATION_KIND_FAILOVER, "h2"))),
              ElementsAre(Step(kRunning, kFailingOver)));
  EXPECT_FALSE(jail.storage_lapsed());
  EXPECT_EQ(jail.operation_target(), "h2");
  EXPECT_EQ(jail.BudgetUsed(Now()), 1);
}

TEST_F(JailTrackerTest, AReportOlderThanThePhaseIsIgnoredHoweverLateItIsJudged) {
  // The coordinator was frozen 9 s: the last report it holds from h1 was
  // taken before the jail started there; it must not read as a crash.
  JailTracker jail = Running();
  const MonoTime started = Now();
  AdvanceTo(absl::Seconds(9));
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", false, false, started)), IsEmpty());
  EXPECT_EQ(jail.phase(), kRunning);
  // A report that arrived after the grace counts.
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", false, false, Now())),
              ElementsAre(Step(kRunning, kPending)));
}

TEST_F(JailTrackerTest, AFailedFirstStartLeavesTheJailUnplaced) {
  JailTracker jail = Create();
  ASSERT_EQ(Evaluate(jail).decision.action, JailAction::kStart);
  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("s1", v1::OPERATION_KIND_START, "h1", false))),
              ElementsAre(Step(kPending, kStarting)));
  ASSERT_THAT(Steps(jail.OperationFailed(Now(), "s1", "mount failed")),
              ElementsAre(Step(kStarting, kPending)));
  EXPECT_EQ(jail.host(), "");
  // Started again from the beginning (not restarted where it never ran).
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kStart);
}

TEST_F(JailTrackerTest, AFailedOperationWaitsForTheHostToReport) {
  JailTracker jail = Running();
  clock_.Advance(absl::Minutes(1));
  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("r1", v1::OPERATION_KIND_RESTART, "h1"))),
              ElementsAre(Step(kRunning, kStarting)));
  auto failed = jail.OperationFailed(Now(), "r1", "agent h1: jail start: exit 1");
  ASSERT_THAT(Steps(failed), ElementsAre(Step(kStarting, kPending)));
  EXPECT_THAT((*failed)[0].reason, HasSubstr("restart failed (operation r1): agent h1"));
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kNone);
  EXPECT_THAT(update.decision.reason, HasSubstr("waiting for host h1 to report"));
  // The host reports it running after all.
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", true)), ElementsAre(Step(kPending, kRunning)));

  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(jail.OperationStarted(Now(), Op("r2", v1::OPERATION_KIND_RESTART, "h1")).ok());
  ASSERT_TRUE(jail.OperationFailed(Now(), "r2", "boom").ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(Steps(jail.ObservedOnHost(Now(), "h1", false)), IsEmpty());
  update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kRestart);
  // Down on a host in maintenance: moved away instead.
  SetHost("h1", v1::HOST_STATE_MAINTENANCE, Now());
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kFailover);
}

TEST_F(JailTrackerTest, AFailedFailoverIsRetriedFromTheFencedHost) {
  JailTracker jail = Running();
  SetHost("h1", v1::HOST_STATE_FENCED, Now());
  ASSERT_EQ(Evaluate(jail).decision.action, JailAction::kFailover);
  ASSERT_TRUE(jail.OperationStarted(Now(), Op("fo1", v1::OPERATION_KIND_FAILOVER, "h2")).ok());
  ASSERT_THAT(Steps(jail.OperationFailed(Now(), "fo1", "fsck failed")),
              ElementsAre(Step(kFailingOver, kPending)));
  EXPECT_EQ(jail.host(), "h1");
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kFailover);
  EXPECT_EQ(update.decision.from_host, "h1");
}

TEST_F(JailTrackerTest, AFailedStopIsAnError) {
  JailTracker jail = Running();
  ASSERT_TRUE(jail.OperationStarted(Now(), Op("s1", v1::OPERATION_KIND_STOP, "", false)).ok());
  auto failed = jail.OperationFailed(Now(), "s1", "timeout");
  ASSERT_THAT(Steps(failed), ElementsAre(Step(kStopping, kError)));
  EXPECT_THAT((*failed)[0].reason, HasSubstr("it may still run on h1"));
}

TEST_F(JailTrackerTest, FailbackNoneStaysWhereItIs) {
  JailTracker jail = Running();
  FailOver(jail, "h2", "fo1");
  SetHost("h1", v1::HOST_STATE_READY, Now());
  clock_.Advance(absl::Hours(24));
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kNone);
  EXPECT_EQ(update.decision.reason, "running on h2");
}

TEST_F(JailTrackerTest, FailbackAutoAfterThePreferredHostWasReadyForTheHealthyPeriod) {
  JailTracker jail = Running(Definition(v1::FAILBACK_MODE_AUTO));
  FailOver(jail, "h2", "fo1");
  // The preferred host comes back (readmitted) at T.
  AdvanceTo(absl::Minutes(1));
  SetHost("h1", v1::HOST_STATE_READY, Now());
  AdvanceTo(absl::Minutes(6) - kNs);
  JailUpdate update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kNone);
  EXPECT_THAT(update.decision.reason, HasSubstr("failback to h1 in"));
  // It flaps: the healthy period starts over.
  SetHost("h1", v1::HOST_STATE_SUSPECT, Now());
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  AdvanceTo(absl::Minutes(6));
  SetHost("h1", v1::HOST_STATE_READY, Now());
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  AdvanceTo(absl::Minutes(11) - kNs);
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  AdvanceTo(absl::Minutes(11));
  update = Evaluate(jail);
  EXPECT_EQ(update.decision.action, JailAction::kFailback);
  EXPECT_EQ(update.decision.from_host, "h2");
  EXPECT_EQ(update.decision.to_host, "h1");
  EXPECT_THAT(update.decision.reason, HasSubstr("preferred host h1 READY for 5m"));
  // A fenced (returned, not readmitted) preferred host is never a target.
  SetHost("h1", v1::HOST_STATE_FENCED, start_);
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  // The failback is a migration, outside the budget.
  SetHost("h1", v1::HOST_STATE_READY, start_);
  ASSERT_THAT(Steps(jail.OperationStarted(Now(), Op("fb1", v1::OPERATION_KIND_MIGRATE, "h1"))),
              ElementsAre(Step(kRunning, kMigrating)));
  ASSERT_TRUE(jail.OperationFinished(Now(), "fb1", 0).ok());
  EXPECT_EQ(jail.host(), "h1");
  EXPECT_EQ(Evaluate(jail).decision.action, JailAction::kNone);
  EXPECT_EQ(jail.BudgetUsed(Now()), 0);  // fo1 is 11m old; the migration did not count.
}

TEST_F(JailTrackerTest, RestoreResumesTheOperationAndKeepsTheBudget) {
  v1::JailStatus status;
  status.set_phase(kFailingOver);
  status.set_host("h1");
  status.set_operation_id("fo9");
  status.set_restarts_in_window(3);
  status.set_epoch(12);
  EXPECT_EQ(JailTracker::Restore(Definition(), status, nullptr, Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Operation op;
  op.set_id("fo9");
  op.set_kind(v1::OPERATION_KIND_FAILOVER);
  op.set_to_host("h2");
  absl::StatusOr<JailTracker> jail = JailTracker::Restore(Definition(), status, &op, Now());
  ASSERT_TRUE(jail.ok()) << jail.status();
  EXPECT_EQ(jail->phase(), kFailingOver);
  EXPECT_EQ(jail->BudgetUsed(Now()), 3);
  ASSERT_THAT(Steps(jail->OperationFinished(Now(), "fo9", 13)),
              ElementsAre(Step(kFailingOver, kRunning)));
  EXPECT_EQ(jail->host(), "h2");
  EXPECT_EQ(jail->epoch(), 13u);
  SetHost("h2", v1::HOST_STATE_FENCED, Now());
  EXPECT_EQ(Evaluate(*jail).transitions.size(), 1u);  // Budget spent: ERROR.
  EXPECT_EQ(jail->phase(), kError);
}

TEST_F(JailTrackerTest, TimeGoingBackIsRefused) {
  JailTracker jail = Running();
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(jail.ObservedOnHost(Now(), "h1", true).ok());
  EXPECT_EQ(jail.ObservedOnHost(At(absl::Seconds(1)), "h1", false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jail.OperationStarted(At(absl::Seconds(1)), Op("x", v1::OPERATION_KIND_STOP, ""))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(jail.phase(), kRunning);
  EXPECT_EQ(jail.operation_id(), "");
}

TEST_F(JailTrackerTest, ToStatusReportsPhaseHostBudgetAndSince) {
  JailTracker jail = Running();
  clock_.Advance(absl::Seconds(10));
  FailOver(jail, "h2", "fo1");
  v1::JailStatus status;
  const absl::Time wall = clock_.WallNow();
  jail.ToStatus(Now(), wall, &status);
  EXPECT_EQ(status.phase(), kRunning);
  EXPECT_EQ(status.host(), "h2");
  EXPECT_EQ(status.restarts_in_window(), 1u);
  EXPECT_EQ(status.epoch(), 1u);
  EXPECT_EQ(status.operation_id(), "");
  EXPECT_EQ(common::FromProtoTimestamp(status.since()), wall);
}

}  // namespace
}  // namespace jailover::coordinator::cluster

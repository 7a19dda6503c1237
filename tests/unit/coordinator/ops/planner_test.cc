#include "coordinator/ops/planner.h"

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace jailover::coordinator::ops {

// Readable failure messages for containers of steps.
void PrintTo(const Step& step, std::ostream* os) {
  *os << step.name << "@" << step.host << ": " << step.description;
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::Host MakeHost(const std::string& name, const std::string& address,
                  std::vector<v1::HostRole> roles, v1::HostState state = v1::HOST_STATE_READY) {
  v1::Host host;
  host.set_name(name);
  host.set_agent_address(address + ":50051");
  for (v1::HostRole role : roles) host.add_roles(role);
  host.mutable_status()->set_state(state);
  return host;
}

v1::Image MakeImage(const std::string& name, const std::string& grant_host,
                    const std::string& grant_address, uint64_t epoch, const std::string& endpoint) {
  v1::Image image;
  image.mutable_spec()->set_name(name);
  image.mutable_spec()->set_storage_host("st1");
  image.mutable_spec()->set_path("/var/jailover/images/" + name + ".img");
  image.mutable_spec()->set_filesystem(v1::FILESYSTEM_UFS);
  image.mutable_grant()->set_host(grant_host);
  image.mutable_grant()->set_host_address(grant_address);
  image.mutable_grant()->set_epoch(epoch);
  image.set_export_endpoint(endpoint);
  return image;
}

v1::VipSpec MakeVip(const std::string& name, const std::string& address, uint32_t vhid) {
  v1::VipSpec vip;
  vip.set_name(name);
  vip.set_address(address);
  vip.set_interface("em0");
  vip.set_vhid(vhid);
  vip.set_password("secret");
  vip.set_advbase(1);
  return vip;
}

v1::Jail MakeJail(const std::string& name, const std::string& host,
                  std::vector<std::string> standbys) {
  v1::Jail jail;
  jail.set_name(name);
  jail.set_image(name + "-img");
  jail.set_vip(name + "-vip");
  jail.mutable_placement()->set_preferred_host("h1");
  for (const std::string& s : standbys) jail.mutable_placement()->add_standbys(s);
  jail.mutable_status()->set_phase(v1::JAIL_PHASE_RUNNING);
  jail.mutable_status()->set_host(host);
  return jail;
}

// h1..h5 jail hosts, st1 storage; web (health port 80) and db run on h1,
// both with standbys h2, h3; images on st1 granted to h1.
ClusterView MakeView() {
  ClusterView view;
  for (int i = 1; i <= 5; ++i) {
    const std::string name = absl::StrCat("h", i);
    view.hosts[name] = MakeHost(name, absl::StrCat("10.0.0.", i), {v1::HOST_ROLE_JAIL});
  }
  view.hosts["st1"] = MakeHost("st1", "10.0.1.1", {v1::HOST_ROLE_STORAGE});
  view.images["web-img"] = MakeImage("web-img", "h1", "10.0.0.1", 7, "10.0.1.1:10809");
  view.images["db-img"] = MakeImage("db-img", "h1", "10.0.0.1", 3, "10.0.1.1:10810");
  view.vips["web-vip"] = MakeVip("web-vip", "192.0.2.10/32", 10);
  view.vips["db-vip"] = MakeVip("db-vip", "192.0.2.11/32", 11);
  view.jails["web"] = MakeJail("web", "h1", {"h2", "h3"});
  view.jails["web"].mutable_spec()->set_health_port(80);
  view.jails["db"] = MakeJail("db", "h1", {"h2", "h3"});
  view.jails["db"].mutable_spec()->set_mount_point("/srv/jails/db");
  return view;
}

// "kind jail step@host" per step, in order.
std::vector<std::string> StepList(const Plan& plan) {
  std::vector<std::string> out;
  for (const PlannedOperation& op : plan.operations) {
    for (const Step& step : op.steps) {
      std::string kind = op.kind == v1::OPERATION_KIND_FAILOVER  ? "failover"
                         : op.kind == v1::OPERATION_KIND_MIGRATE ? "migrate"
                                                                 : "restart";
      out.push_back(absl::StrCat(kind, " ", op.jail, " ", step.name, "@", step.host,
                                 step.best_effort ? " (best effort)" : ""));
    }
  }
  return out;
}

std::vector<std::string> Descriptions(const PlannedOperation& op) {
  std::vector<std::string> out;
  for (const Step& step : op.steps) out.push_back(step.description);
  return out;
}

std::vector<std::string> Messages(const Plan& plan, v1::Severity severity) {
  std::vector<std::string> out;
  for (const v1::PlanProblem& p : plan.problems) {
    if (p.severity() == severity) out.push_back(p.message());
  }
  return out;
}

std::string DescribeProblemsForTest(const Plan& plan) {
  std::string out;
  for (const v1::PlanProblem& p : plan.problems) absl::StrAppend(&out, p.message(), "; ");
  return out;
}

std::vector<std::string> Considered(const v1::PlacementChoice& choice) {
  return {choice.considered().begin(), choice.considered().end()};
}

const Step& FindStep(const PlannedOperation& op, const std::string& name) {
  for (const Step& step : op.steps) {
    if (step.name == name) return step;
  }
  ADD_FAILURE() << "no step " << name;
  static const Step kNone;
  return kNone;
}

TEST(PlannerTest, FailoverOfFencedHostFencesFirstWithEpochPlusOne) {
  ClusterView view = MakeView();
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  EXPECT_FALSE(plan->HasErrors());
  ASSERT_EQ(plan->operations.size(), 1u);
  const PlannedOperation& op = plan->operations[0];
  EXPECT_EQ(op.kind, v1::OPERATION_KIND_FAILOVER);
  EXPECT_EQ(op.from_host, "h1");
  EXPECT_EQ(op.to_host, "h2");
  EXPECT_EQ(op.old_epoch, 7u);
  EXPECT_EQ(op.new_epoch, 8u);
  EXPECT_FALSE(op.blocked);
  // The fenced host gets no calls; nothing before the fence.
  EXPECT_THAT(
      StepList(*plan),
      ElementsAre("failover web fence@st1", "failover web import@h2", "failover web fsck@h2",
                  "failover web mount@h2", "failover web create@h2", "failover web start@h2",
                  "failover web vip@h2", "failover web probe@h2", "failover web running@h2"));
  EXPECT_THAT(
      Descriptions(op),
      ElementsAre("ExportImage web-img to h2 (10.0.0.2) at epoch 8: revokes h1's grant (epoch 7) "
                  "and cuts every other connection",
                  "ImportImage web-img at epoch 8 from 10.0.1.1:10809 "
                  "(/var/jailover/images/web-img.img)",
                  "FsckImage web-img at epoch 8",
                  "MountImage web-img at epoch 8 on /var/jailover/jails/web",
                  "CreateJail web (image web-img, epoch 8, VIP web-vip)",
                  "StartJail web at epoch 8",
                  "ConfigureVip web-vip (vhid 10 on em0) advskew 0, claim: h2 becomes CARP "
                  "master now, not after CARP's master-down interval",
                  "jail web running on h2 and answering on 192.0.2.10:80",
                  "record web RUNNING on h2 at epoch 8"));
  // The arguments the engine passes.
  const Step& fence = op.steps[0];
  EXPECT_EQ(fence.action, StepAction::kExportImage);
  EXPECT_EQ(fence.image, "web-img");
  EXPECT_EQ(fence.epoch, 8u);
  EXPECT_EQ(fence.previous_epoch, 7u);
  EXPECT_EQ(fence.previous_grant_host, "h1");
  EXPECT_EQ(fence.grant_host, "h2");
  EXPECT_EQ(fence.grant_address, "10.0.0.2");
  const Step& import = FindStep(op, "import");
  EXPECT_EQ(import.action, StepAction::kImportImage);
  EXPECT_EQ(import.endpoint, "10.0.1.1:10809");
  EXPECT_EQ(import.remote_path, "/var/jailover/images/web-img.img");
  EXPECT_EQ(import.filesystem, v1::FILESYSTEM_UFS);
  for (const Step& step : op.steps) {
    EXPECT_EQ(step.epoch, 8u) << step.name;
    EXPECT_FALSE(step.best_effort) << step.name;
  }
  EXPECT_EQ(FindStep(op, "mount").mount_point, "/var/jailover/jails/web");
  EXPECT_EQ(FindStep(op, "vip").advskew, kMasterAdvskew);
  // Driven promotion: after the fence and the start, not CARP's timer.
  EXPECT_TRUE(FindStep(op, "vip").claim);
  EXPECT_EQ(FindStep(op, "running").phase, v1::JAIL_PHASE_RUNNING);
  ASSERT_EQ(plan->choices.size(), 1u);
  EXPECT_EQ(plan->choices[0].chosen_host(), "h2");
  EXPECT_THAT(Considered(plan->choices[0]), ElementsAre("h1: skipped, preferred host, current host",
                                                        "h2: chosen, standby #1, READY, 0 jails",
                                                        "h3: standby #2, READY, 0 jails"));
}

TEST(PlannerTest, AFailoverAfterAFailedOneClearsWhatTheFailedOneLeftOnItsTarget) {
  // The first failover of web (h1 -> h2) granted epoch 8 to h2, started the
  // jail there and failed at its probe: web is still placed on h1 (FENCED),
  // the image granted to h2. The next failover chooses h2 again; it must
  // first clear h2 (a jail running, an image mounted at epoch 8), else its
  // fsck finds the image mounted and fails for good.
  ClusterView view = MakeView();
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  view.images["web-img"] = MakeImage("web-img", "h2", "10.0.0.2", 8, "10.0.1.1:10809");
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->operations.size(), 1u);
  const PlannedOperation& op = plan->operations[0];
  EXPECT_EQ(op.to_host, "h2");
  EXPECT_EQ(op.old_epoch, 8u);
  EXPECT_EQ(op.new_epoch, 9u);
  EXPECT_THAT(
      StepList(*plan),
      ElementsAre("failover web stop@h2 (best effort)", "failover web destroy@h2 (best effort)", "failover web unmount@h2 (best effort)",
                  "failover web release@h2 (best effort)", "failover web fence@st1", "failover web import@h2",
                  "failover web fsck@h2", "failover web mount@h2", "failover web create@h2",
                  "failover web start@h2", "failover web vip@h2", "failover web probe@h2",
                  "failover web running@h2"));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(op.steps[i].best_effort) << op.steps[i].name;
    EXPECT_EQ(op.steps[i].epoch, 8u) << op.steps[i].name;
  }
  EXPECT_FALSE(FindStep(op, "fence").best_effort);

  // The failed attempt's target is not chosen this time (h2 not READY, but
  // reachable): it is cleared too, its VIP removed (it is no backup then).
  view.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(
      StepList(*plan),
      ElementsAre("failover web vip-remove@h2 (best effort)", "failover web stop@h2 (best effort)", "failover web destroy@h2 (best effort)",
                  "failover web unmount@h2 (best effort)", "failover web release@h2 (best effort)", "failover web fence@st1",
                  "failover web import@h3", "failover web fsck@h3", "failover web mount@h3",
                  "failover web create@h3", "failover web start@h3", "failover web vip@h3",
                  "failover web probe@h3", "failover web running@h3"));

  // Where the jail runs and the image is granted on one host, nothing is
  // cleared before the fence.
  view = MakeView();
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->operations[0].steps[0].name, "fence");
}

TEST(PlannerTest, ManualFailoverOfLiveHostCleansItUpBestEffortAfterTheFence) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanFailover(view, "db");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  EXPECT_THAT(
      StepList(*plan),
      ElementsAre("failover db fence@st1", "failover db import@h2", "failover db fsck@h2",
                  "failover db mount@h2", "failover db create@h2", "failover db start@h2",
                  "failover db vip-demote@h1 (best effort)", "failover db vip@h2",
                  "failover db stop@h1 (best effort)", "failover db destroy@h1 (best effort)",
                  "failover db unmount@h1 (best effort)", "failover db release@h1 (best effort)",
                  "failover db probe@h2", "failover db running@h2"));
  const PlannedOperation& op = plan->operations[0];
  // h1 gives the VIP up before h2 claims it: no moment with two holders.
  EXPECT_TRUE(FindStep(op, "vip").claim);
  // h1 is the preferred host: it keeps the VIP as the first backup.
  const Step& demote = FindStep(op, "vip-demote");
  EXPECT_EQ(demote.action, StepAction::kSetVipAdvskew);
  EXPECT_EQ(demote.advskew, kBackupAdvskewBase);
  EXPECT_TRUE(FindStep(op, "unmount").force);
  EXPECT_TRUE(FindStep(op, "release").force);
  EXPECT_EQ(FindStep(op, "release").epoch, 3u);
  EXPECT_EQ(FindStep(op, "mount").mount_point, "/srv/jails/db");
  EXPECT_EQ(FindStep(op, "probe").description, "jail db running on h2 (no health port)");
}

TEST(PlannerTest, MigrationHasNoFenceAndAGracefulOrderWithTheVipMovedAfterTheStart) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h3");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  EXPECT_EQ(plan->kind, v1::OPERATION_KIND_MIGRATE);
  EXPECT_THAT(
      StepList(*plan),
      ElementsAre("migrate web not-ready@h1", "migrate web stop@h1", "migrate web destroy@h1",
                  "migrate web unmount@h1", "migrate web release@h1", "migrate web grant@st1",
                  "migrate web import@h3", "migrate web fsck@h3", "migrate web mount@h3",
                  "migrate web create@h3", "migrate web start@h3", "migrate web vip@h3",
                  "migrate web vip-demote@h1", "migrate web vip-claim@h3", "migrate web probe@h3",
                  "migrate web running@h3"));
  const PlannedOperation& op = plan->operations[0];
  EXPECT_EQ(FindStep(op, "not-ready").phase, v1::JAIL_PHASE_MIGRATING);
  EXPECT_EQ(FindStep(op, "stop").epoch, 7u);
  EXPECT_EQ(FindStep(op, "release").epoch, 7u);
  EXPECT_FALSE(FindStep(op, "release").force);
  const Step& grant = FindStep(op, "grant");
  EXPECT_EQ(grant.action, StepAction::kExportImage);
  EXPECT_EQ(grant.grant_host, "h3");
  EXPECT_EQ(grant.epoch, 8u);
  EXPECT_EQ(grant.previous_epoch, 7u);
  EXPECT_EQ(FindStep(op, "start").epoch, 8u);
  for (const Step& step : op.steps) EXPECT_FALSE(step.best_effort) << step.name;
  EXPECT_EQ(FindStep(op, "vip-demote").advskew, 100u);
  // Once h1 gave the VIP up, h3 takes it at once (not after CARP's
  // master-down interval); only here: "vip" on h3 does not claim.
  const Step& claim = FindStep(op, "vip-claim");
  EXPECT_EQ(claim.action, StepAction::kConfigureVip);
  EXPECT_TRUE(claim.claim);
  EXPECT_EQ(claim.advskew, kMasterAdvskew);
  EXPECT_EQ(claim.vip, "web-vip");
  EXPECT_EQ(claim.epoch, 8u);
  EXPECT_FALSE(FindStep(op, "vip").claim);
  int claims = 0;
  for (const Step& step : op.steps) claims += step.claim ? 1 : 0;
  EXPECT_EQ(claims, 1);
  ASSERT_EQ(plan->choices.size(), 1u);
  EXPECT_THAT(Considered(plan->choices[0]),
              ElementsAre("h3: chosen, requested target, READY, 0 jails"));
}

TEST(PlannerTest, MigrationOffANonStandbyRemovesTheVipThere) {
  ClusterView view = MakeView();
  view.jails["web"].mutable_status()->set_host("h4");
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const Step& demote = FindStep(plan->operations[0], "vip-demote");
  EXPECT_EQ(demote.host, "h4");
  EXPECT_EQ(demote.action, StepAction::kRemoveVip);
  EXPECT_EQ(demote.description, "RemoveVip web-vip (h4 is not a standby of web)");
}

TEST(PlannerTest, MigrationWithoutTargetChoosesAStandby) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->operations[0].to_host, "h2");
  EXPECT_EQ(plan->title, "migrate web to (planner's choice)");
}

TEST(PlannerTest, DrainSendsTwoJailsToDifferentStandbysByLoad) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanDrain(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->kind, v1::OPERATION_KIND_DRAIN);
  EXPECT_THAT(plan->problems, IsEmpty());
  ASSERT_EQ(plan->operations.size(), 2u);
  // By name: db first takes h2 (tie, first standby), then web sees h2 loaded.
  EXPECT_EQ(plan->operations[0].jail, "db");
  EXPECT_EQ(plan->operations[0].to_host, "h2");
  EXPECT_EQ(plan->operations[1].jail, "web");
  EXPECT_EQ(plan->operations[1].to_host, "h3");
  EXPECT_EQ(plan->operations[0].kind, v1::OPERATION_KIND_MIGRATE);
  EXPECT_EQ(FindStep(plan->operations[0], "grant").epoch, 4u);
  EXPECT_EQ(FindStep(plan->operations[1], "grant").epoch, 8u);
  ASSERT_EQ(plan->choices.size(), 2u);
  EXPECT_THAT(Considered(plan->choices[1]), ElementsAre("h1: skipped, preferred host, current host",
                                                        "h2: standby #1, READY, 1 jail",
                                                        "h3: chosen, standby #2, READY, 0 jails"));
  // Same step shape as a migration, one operation after the other.
  EXPECT_EQ(StepList(*plan).size(), 32u);
  EXPECT_EQ(StepList(*plan)[16], "migrate web not-ready@h1");
}

TEST(PlannerTest, DrainCountsJailsAlreadyRunningOnTheStandbys) {
  ClusterView view = MakeView();
  view.jails["other"] = MakeJail("other", "h2", {});
  view.jails["other"].set_vip("");
  view.jails["other2"] = MakeJail("other2", "h2", {});
  view.jails["other2"].set_vip("");
  absl::StatusOr<Plan> plan = PlanDrain(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->operations.size(), 2u);
  // h2 runs 2, h3 none: db -> h3 (0), web -> h3 (1 < 2).
  EXPECT_EQ(plan->operations[0].to_host, "h3");
  EXPECT_EQ(plan->operations[1].to_host, "h3");
}

TEST(PlannerTest, HostFailureSkipsSuspectFencedAndDrainingStandbys) {
  ClusterView view = MakeView();
  view.jails.erase("db");
  view.jails["web"].mutable_placement()->clear_standbys();
  for (const char* h : {"h2", "h3", "h4", "h5"}) {
    view.jails["web"].mutable_placement()->add_standbys(h);
  }
  view.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  view.hosts["h3"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  view.hosts["h4"].mutable_status()->set_state(v1::HOST_STATE_DRAINING);
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  ASSERT_EQ(plan->choices.size(), 1u);
  EXPECT_EQ(plan->choices[0].chosen_host(), "h5");
  EXPECT_THAT(
      Considered(plan->choices[0]),
      ElementsAre("h1: skipped, preferred host, failing host", "h2: skipped, standby #1, SUSPECT",
                  "h3: skipped, standby #2, FENCED", "h4: skipped, standby #3, DRAINING",
                  "h5: chosen, standby #4, READY, 0 jails"));
  // The failed host gets no call at all (not even best effort).
  for (const Step& step : plan->operations[0].steps) EXPECT_NE(step.host, "h1") << step.name;
  EXPECT_EQ(plan->operations[0].steps[0].name, "fence");
}

// Chaos finding 12: a host whose agent cannot reach the image's storage host
// would wait in its import for the network; a failover picks another.
TEST(PlannerTest, AFailoverSkipsAStandbyThatCannotReachTheImagesStorageHost) {
  ClusterView view = MakeView();
  view.jails.erase("db");
  view.hosts["h2"].mutable_status()->mutable_observed()->add_unreachable_storage_hosts("st1");
  // A storage host the jail does not use changes nothing.
  view.hosts["h3"].mutable_status()->mutable_observed()->add_unreachable_storage_hosts("st9");
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  ASSERT_EQ(plan->choices.size(), 1u);
  EXPECT_EQ(plan->choices[0].chosen_host(), "h3");
  EXPECT_THAT(Considered(plan->choices[0]),
              ElementsAre("h1: skipped, preferred host, failing host",
                          "h2: skipped, standby #1, cannot reach storage host st1 (its agent "
                          "reports)",
                          "h3: chosen, standby #2, READY, 0 jails"));
  // With no standby left that reaches st1, a READY host that does (h4).
  view.hosts["h3"].mutable_status()->mutable_observed()->add_unreachable_storage_hosts("st1");
  plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->choices.size(), 1u);
  EXPECT_EQ(plan->choices[0].chosen_host(), "h4");
}

TEST(PlannerTest, HostFailureAccountsForTheLoadItAlreadyPlanned) {
  ClusterView view = MakeView();
  view.jails["zzz"] = MakeJail("zzz", "h1", {"h2", "h3"});
  view.jails["zzz"].set_vip("");
  view.jails["zzz"].set_image("db-img");  // Sharing is not checked here.
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->operations.size(), 3u);
  EXPECT_EQ(plan->operations[0].to_host, "h2");  // db
  EXPECT_EQ(plan->operations[1].to_host, "h3");  // web
  EXPECT_EQ(plan->operations[2].to_host, "h2");  // zzz: h2 1, h3 1 -> first
  for (const PlannedOperation& op : plan->operations) {
    EXPECT_EQ(op.kind, v1::OPERATION_KIND_FAILOVER);
    EXPECT_EQ(op.steps.front().name, "fence");
  }
}

TEST(PlannerTest, FallsBackToTheLeastLoadedReadyJailHostWhenNoStandbyIsReady) {
  ClusterView view = MakeView();
  view.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_UNREACHABLE);
  view.hosts["h3"].mutable_status()->set_state(v1::HOST_STATE_MAINTENANCE);
  view.hosts["h5"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  view.jails["x"] = MakeJail("x", "h4", {});
  view.jails["x"].set_vip("");
  view.hosts["h6"] = MakeHost("h6", "10.0.0.6", {v1::HOST_ROLE_JAIL});
  absl::StatusOr<StandbyChoice> choice =
      ChooseStandby(view, "web", {{"h1", "current host"}}, HostLoads(view));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->host, "h6");
  EXPECT_FALSE(choice->problem.has_value());
  EXPECT_THAT(
      choice->considered,
      ElementsAre("h1: skipped, preferred host, current host",
                  "h2: skipped, standby #1, UNREACHABLE", "h3: skipped, standby #2, MAINTENANCE",
                  "h4: not a standby, READY, 1 jail", "h5: skipped, not a standby, SUSPECT",
                  "h6: chosen, not a standby, least loaded, 0 jails"));
}

TEST(PlannerTest, RestartStopsAndStartsOnTheSameHostAndEpoch) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanRestart(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->problems, IsEmpty());
  EXPECT_THAT(StepList(*plan), ElementsAre("restart web stop@h1", "restart web destroy@h1",
                                           "restart web create@h1", "restart web start@h1",
                                           "restart web probe@h1", "restart web running@h1"));
  for (const Step& step : plan->operations[0].steps) EXPECT_EQ(step.epoch, 7u);
}

// --- Problems ------------------------------------------------------------------

TEST(PlannerProblemsTest, NoReadyStandbyLeavesTheJailDown) {
  ClusterView view = MakeView();
  for (const char* h : {"h2", "h3", "h4", "h5"}) {
    view.hosts[h].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  }
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->HasErrors());
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("no READY host with the jail role can take jail db: it stays down",
                          "no READY host with the jail role can take jail web: it stays down"));
  ASSERT_EQ(plan->operations.size(), 2u);
  for (const PlannedOperation& op : plan->operations) {
    EXPECT_TRUE(op.blocked);
    EXPECT_THAT(op.steps, IsEmpty());
    EXPECT_EQ(op.to_host, "");
  }
  EXPECT_EQ(plan->choices[0].chosen_host(), "");
}

TEST(PlannerProblemsTest, StorageHostNotReadyMeansTheFailoverWaits) {
  ClusterView view = MakeView();
  view.hosts["st1"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("storage host st1 of image web-img is SUSPECT: cannot fence the old "
                          "host from the image: the failover waits until it is READY"));
  ASSERT_EQ(plan->operations.size(), 1u);
  EXPECT_TRUE(plan->operations[0].blocked);
  // What would run once st1 is back is still shown.
  EXPECT_EQ(plan->operations[0].steps.front().name, "fence");
}

TEST(PlannerProblemsTest, ImageNotExportedIsAWarningAndTheImportUsesTheGrantsEndpoint) {
  ClusterView view = MakeView();
  view.images["web-img"].clear_export_endpoint();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->HasErrors());
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_WARNING),
              ElementsAre("image web-img is not exported by st1: the grant step starts the "
                          "export"));
  EXPECT_FALSE(plan->operations[0].blocked);
  EXPECT_EQ(FindStep(plan->operations[0], "import").endpoint, "");
  EXPECT_THAT(FindStep(plan->operations[0], "import").description,
              HasSubstr("from the endpoint the grant returns"));
}

TEST(PlannerProblemsTest, ImageGrantedElsewhereIsAWarning) {
  ClusterView view = MakeView();
  view.images["web-img"].mutable_grant()->set_host("h4");
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_WARNING),
              ElementsAre("image web-img is granted to h4 (epoch 7), not to web's host h1"));
  EXPECT_EQ(FindStep(plan->operations[0], "fence").previous_grant_host, "h4");
  // What an earlier attempt may have left on h4 is cleared first.
  EXPECT_EQ(plan->operations[0].steps[0].host, "h4");
  EXPECT_TRUE(plan->operations[0].steps[0].best_effort);
}

TEST(PlannerProblemsTest, TargetWithoutJailRole) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "st1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR), ElementsAre("host st1 lacks the jail role"));
  EXPECT_TRUE(plan->operations[0].blocked);
  EXPECT_THAT(plan->operations[0].steps, IsEmpty());
  EXPECT_THAT(Considered(plan->choices[0]),
              ElementsAre("st1: requested target, READY, 0 jails, unusable"));
}

TEST(PlannerProblemsTest, TargetIsTheCurrentHost) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR), ElementsAre("jail web already runs on h1"));
  EXPECT_THAT(plan->operations[0].steps, IsEmpty());
}

TEST(PlannerProblemsTest, TargetNotReady) {
  ClusterView view = MakeView();
  view.hosts["h3"].mutable_status()->set_state(v1::HOST_STATE_DRAINING);
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h3");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("host h3 is DRAINING: only a READY host takes jails"));
  EXPECT_THAT(plan->operations[0].steps, IsEmpty());
}

TEST(PlannerProblemsTest, TargetWithoutTheVipInterface) {
  ClusterView view = MakeView();
  view.hosts["h3"].mutable_status()->mutable_facts()->add_interfaces("igb0");
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h3");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("host h3 has no interface em0 for VIP web-vip of jail web"));
  EXPECT_TRUE(plan->operations[0].blocked);
}

TEST(PlannerProblemsTest, VipConflicts) {
  ClusterView view = MakeView();
  view.vips["db-vip"].set_vhid(10);                            // same vhid on em0 as web-vip
  view.vips["x-vip"] = MakeVip("x-vip", "192.0.2.10/24", 99);  // same address
  view.jails["twin"] = MakeJail("twin", "h4", {});             // same VIP as web
  view.jails["twin"].set_vip("web-vip");
  view.jails["twin"].set_image("db-img");
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("VIP conflict: web-vip and db-vip both use vhid 10 on em0",
                          "VIP conflict: web-vip and x-vip both use address 192.0.2.10",
                          "VIP conflict: jails web and twin both use VIP web-vip"));
  EXPECT_TRUE(plan->operations[0].blocked);
}

TEST(PlannerProblemsTest, JailInErrorOrAlreadyMoving) {
  ClusterView view = MakeView();
  view.jails["web"].mutable_status()->set_phase(v1::JAIL_PHASE_ERROR);
  view.jails["web"].mutable_status()->set_reason("4 restarts in 10m");
  view.jails["db"].mutable_status()->set_phase(v1::JAIL_PHASE_MIGRATING);
  view.jails["db"].mutable_status()->set_operation_id("op-1");
  absl::StatusOr<Plan> plan = PlanDrain(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("jail db is already moving (MIGRATING, operation op-1)",
                          "jail web is in ERROR (4 restarts in 10m): it needs an operator"));
  ASSERT_EQ(plan->operations.size(), 2u);
  EXPECT_TRUE(plan->operations[0].blocked);
  EXPECT_TRUE(plan->operations[1].blocked);
  // A restart is how an operator recovers a jail in ERROR: only a warning.
  absl::StatusOr<Plan> restart = PlanRestart(view, "web");
  ASSERT_TRUE(restart.ok()) << restart.status();
  EXPECT_FALSE(restart->HasErrors());
  EXPECT_THAT(Messages(*restart, v1::SEVERITY_WARNING), ElementsAre(HasSubstr("is in ERROR")));
}

TEST(PlannerProblemsTest, MigrationOffAFencedHostNeedsAFailover) {
  ClusterView view = MakeView();
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR),
              ElementsAre("host h1 of jail web is FENCED: a planned migration needs it alive; "
                          "use failover"));
  EXPECT_TRUE(plan->operations[0].blocked);
}

TEST(PlannerProblemsTest, FailureOfTheStorageHost) {
  ClusterView view = MakeView();
  view.hosts["st1"].add_roles(v1::HOST_ROLE_JAIL);
  view.jails["db"].mutable_status()->set_host("st1");
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "st1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(
      Messages(*plan, v1::SEVERITY_ERROR),
      ElementsAre("image db-img of jail db is stored on the failed host st1: no standby can "
                  "import it until st1 returns",
                  "jail web on h1 uses image web-img stored on st1: its disk I/O fails until st1 "
                  "returns"));
  ASSERT_EQ(plan->operations.size(), 1u);
  EXPECT_TRUE(plan->operations[0].blocked);
  EXPECT_THAT(plan->operations[0].steps, IsEmpty());
}

TEST(PlannerProblemsTest, UndefinedImageAndVipAndUnplacedJail) {
  ClusterView view = MakeView();
  view.jails["web"].set_image("nope-img");
  view.jails["web"].set_vip("nope-vip");
  view.jails["web"].mutable_status()->clear_host();
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(
      Messages(*plan, v1::SEVERITY_ERROR),
      ElementsAre("jail web is not placed on any host", "image nope-img of jail web is not defined",
                  "VIP nope-vip of jail web is not defined"));
  EXPECT_THAT(plan->operations[0].steps, IsEmpty());
}

// --- Invalid input ----------------------------------------------------------------

TEST(PlannerInputTest, UnknownOrBadNamesAreErrors) {
  const ClusterView view = MakeView();
  EXPECT_EQ(PlanFailover(view, "ghost").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(PlanFailover(view, "ghost").status().message()), HasSubstr("ghost"));
  EXPECT_EQ(PlanHostFailure(view, "h9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PlanDrain(view, "h9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PlanRestart(view, "ghost").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PlanMigration(view, "web", "h9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PlanMigration(view, "../web", "h2").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanDrain(view, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChooseStandby(view, "ghost", {}, {}).status().code(), absl::StatusCode::kNotFound);
}

TEST(PlannerInputTest, InconsistentViewIsInvalidArgument) {
  ClusterView view = MakeView();
  view.hosts["h2"].set_name("h7");
  absl::StatusOr<Plan> plan = PlanFailover(view, "web");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("\"h2\""));
}

// --- Purity, conversions, rendering ----------------------------------------------

template <typename Map>
void ExpectSameMap(const Map& a, const Map& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, value] : a) {
    ASSERT_EQ(b.count(key), 1u) << key;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(value, b.at(key))) << key;
  }
}

TEST(PlannerTest, PlansNeverChangeTheViewAndAreDeterministic) {
  ClusterView view = MakeView();
  view.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  const ClusterView before = view;
  std::vector<std::string> first;
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> rendered;
    for (const absl::StatusOr<Plan>& plan :
         {PlanFailover(view, "web"), PlanHostFailure(view, "h1"), PlanMigration(view, "db", ""),
          PlanMigration(view, "web", "h4"), PlanDrain(view, "h1"), PlanRestart(view, "db")}) {
      ASSERT_TRUE(plan.ok()) << plan.status();
      rendered.push_back(RenderPlan(*plan));
    }
    if (round == 0) first = rendered;
    EXPECT_EQ(rendered, first);
  }
  ExpectSameMap(view.hosts, before.hosts);
  ExpectSameMap(view.images, before.images);
  ExpectSameMap(view.jails, before.jails);
  ExpectSameMap(view.vips, before.vips);
  EXPECT_EQ(view.jail_root, before.jail_root);
}

TEST(PlannerTest, PlanResponseAndOperationCarryTheSameSteps) {
  ClusterView view = MakeView();
  view.hosts["st1"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  absl::StatusOr<Plan> plan = PlanFailover(view, "db");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const v1::PlanResponse response = ToPlanResponse(*plan);
  const PlannedOperation& op = plan->operations[0];
  ASSERT_EQ(response.steps_size(), static_cast<int>(op.steps.size()));
  EXPECT_EQ(response.steps(0).kind(), v1::OPERATION_KIND_FAILOVER);
  EXPECT_EQ(response.steps(0).jail(), "db");
  EXPECT_EQ(response.steps(0).step(), "fence");
  EXPECT_EQ(response.steps(0).host(), "st1");
  EXPECT_THAT(response.steps(8).detail(), HasSubstr("[best effort]"));
  ASSERT_EQ(response.choices_size(), 1u);
  EXPECT_EQ(response.choices(0).chosen_host(), "h2");
  ASSERT_EQ(response.problems_size(), 1);
  EXPECT_EQ(response.problems(0).severity(), v1::SEVERITY_ERROR);
  EXPECT_EQ(response.problems(0).host(), "st1");

  const v1::Operation operation = ToOperation(op);
  EXPECT_EQ(operation.kind(), v1::OPERATION_KIND_FAILOVER);
  EXPECT_EQ(operation.jail(), "db");
  EXPECT_EQ(operation.from_host(), "h1");
  EXPECT_EQ(operation.to_host(), "h2");
  EXPECT_EQ(operation.state(), v1::OPERATION_STATE_PENDING);
  ASSERT_EQ(operation.steps_size(), response.steps_size());
  for (int i = 0; i < operation.steps_size(); ++i) {
    EXPECT_EQ(operation.steps(i).name(), response.steps(i).step());
    EXPECT_EQ(operation.steps(i).host(), response.steps(i).host());
    EXPECT_EQ(operation.steps(i).state(), v1::OPERATION_STATE_PENDING);
  }
}

TEST(PlannerTest, RenderedHostFailurePlan) {
  ClusterView view = MakeView();
  view.hosts["h2"].mutable_status()->set_state(v1::HOST_STATE_SUSPECT);
  view.images["db-img"].clear_export_endpoint();
  view.jails["web"].mutable_placement()->add_standbys("h4");
  absl::StatusOr<Plan> plan = PlanHostFailure(view, "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(RenderPlan(*plan),
            R"(Plan: fail host h1

Steps:
  failover db: h1 -> h3, image db-img epoch 3 -> 4
    1. fence @ st1            ExportImage db-img to h3 (10.0.0.3) at epoch 4: revokes h1's grant (epoch 3) and cuts every other connection
    2. import @ h3            ImportImage db-img at epoch 4 from the endpoint the grant returns (/var/jailover/images/db-img.img)
    3. fsck @ h3              FsckImage db-img at epoch 4
    4. mount @ h3             MountImage db-img at epoch 4 on /srv/jails/db
    5. create @ h3            CreateJail db (image db-img, epoch 4, VIP db-vip)
    6. start @ h3             StartJail db at epoch 4
    7. vip @ h3               ConfigureVip db-vip (vhid 11 on em0) advskew 0, claim: h3 becomes CARP master now, not after CARP's master-down interval
    8. probe @ h3             jail db running on h3 (no health port)
    9. running @ h3           record db RUNNING on h3 at epoch 4
  failover web: h1 -> h4, image web-img epoch 7 -> 8
   10. fence @ st1            ExportImage web-img to h4 (10.0.0.4) at epoch 8: revokes h1's grant (epoch 7) and cuts every other connection
   11. import @ h4            ImportImage web-img at epoch 8 from 10.0.1.1:10809 (/var/jailover/images/web-img.img)
   12. fsck @ h4              FsckImage web-img at epoch 8
   13. mount @ h4             MountImage web-img at epoch 8 on /var/jailover/jails/web
   14. create @ h4            CreateJail web (image web-img, epoch 8, VIP web-vip)
   15. start @ h4             StartJail web at epoch 8
   16. vip @ h4               ConfigureVip web-vip (vhid 10 on em0) advskew 0, claim: h4 becomes CARP master now, not after CARP's master-down interval
   17. probe @ h4             jail web running on h4 and answering on 192.0.2.10:80
   18. running @ h4           record web RUNNING on h4 at epoch 8

Placement:
  db -> h3
    h1: skipped, preferred host, failing host
    h2: skipped, standby #1, SUSPECT
    h3: chosen, standby #2, READY, 0 jails
  web -> h4
    h1: skipped, preferred host, failing host
    h2: skipped, standby #1, SUSPECT
    h3: standby #2, READY, 1 jail
    h4: chosen, standby #3, READY, 0 jails

Problems:
  WARNING image db-img is not exported by st1: the grant step starts the export
)");
}

TEST(PlannerTest, RenderedBlockedPlanShowsNoStepsAndTheProblem) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanMigration(view, "web", "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(RenderPlan(*plan), R"(Plan: migrate web to h1

Steps:
  migrate web: h1 -> (none), image web-img epoch 7 -> 8  BLOCKED (see problems)
      (no steps)

Placement:
  web -> (none)
    h1: requested target, READY, 2 jails, unusable

Problems:
  ERROR   jail web already runs on h1
)");
}

}  // namespace
}  // namespace jailover::coordinator::ops

namespace jailover::coordinator::ops {
namespace {

TEST(PlanStartTest, FirstStartGrantsTheNextEpochAndKeepsTheStandbysAsCarpBackups) {
  ClusterView view = MakeView();
  v1::Jail& web = view.jails["web"];
  web.clear_status();
  web.mutable_status()->set_phase(v1::JAIL_PHASE_PENDING);
  view.images["web-img"].clear_grant();
  view.images["web-img"].clear_export_endpoint();
  view.jails.erase("db");
  absl::StatusOr<Plan> plan = PlanStart(view, "web", "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->operations.size(), 1u);
  const PlannedOperation& op = plan->operations[0];
  EXPECT_EQ(op.kind, v1::OPERATION_KIND_START);
  EXPECT_EQ(op.to_host, "h1");  // The preferred host.
  EXPECT_EQ(op.old_epoch, 0u);
  EXPECT_EQ(op.new_epoch, 1u);
  EXPECT_FALSE(op.blocked);
  std::vector<std::string> steps;
  for (const Step& step : op.steps) {
    steps.push_back(absl::StrCat(step.name, "@", step.host, step.best_effort ? " (best effort)" : "",
                                 step.advskew != 0 ? absl::StrCat(" ", step.advskew) : ""));
  }
  EXPECT_THAT(steps, ElementsAre("create-image@st1", "grant@st1", "import@h1", "fsck@h1",
                                 "mount@h1", "create@h1", "start@h1", "vip@h1",
                                 "vip-backup@h2 (best effort) 101", "vip-backup@h3 (best effort) 102",
                                 "probe@h1", "running@h1"));
  // Not exported yet: a warning, not an error.
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_WARNING), ElementsAre(HasSubstr("is not exported")));
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR), IsEmpty());

  // A requested target that is not READY blocks the start.
  view.hosts["h4"].mutable_status()->set_state(v1::HOST_STATE_FENCED);
  plan = PlanStart(view, "web", "h4");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->operations[0].blocked);
  EXPECT_THAT(Messages(*plan, v1::SEVERITY_ERROR), ElementsAre(HasSubstr("h4 is FENCED")));
  EXPECT_EQ(PlanStart(view, "web", "nosuch").status().code(), absl::StatusCode::kNotFound);
}

TEST(PlanStartTest, AStartAfterAFailedOneClearsWhatTheFirstLeftBeforeTheNewGrant) {
  ClusterView view = MakeView();
  v1::Jail& web = view.jails["web"];
  web.clear_status();
  web.mutable_status()->set_phase(v1::JAIL_PHASE_PENDING);
  view.jails.erase("db");
  // The failed start had granted epoch 1 to h1 (the preferred host).
  view.images["web-img"].mutable_grant()->set_host("h1");
  view.images["web-img"].mutable_grant()->set_epoch(1);
  auto names = [](const PlannedOperation& op) {
    std::vector<std::string> steps;
    for (const Step& step : op.steps) {
      steps.push_back(absl::StrCat(step.name, "@", step.host, " e", step.epoch,
                                   step.best_effort ? " (best effort)" : ""));
    }
    return steps;
  };
  absl::StatusOr<Plan> plan = PlanStart(view, "web", "");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const PlannedOperation& again = plan->operations[0];
  EXPECT_EQ(again.to_host, "h1");
  EXPECT_EQ(again.new_epoch, 2u);
  EXPECT_THAT(names(again),
              ::testing::IsSupersetOf({"stop@h1 e1 (best effort)", "destroy@h1 e1 (best effort)",
                                       "unmount@h1 e1 (best effort)", "release@h1 e1 (best effort)",
                                       "grant@st1 e2"}));
  const std::vector<std::string> steps = names(again);
  EXPECT_EQ(steps[1], "stop@h1 e1 (best effort)");  // Right after create-image,
  EXPECT_EQ(steps[5], "grant@st1 e2");              // before the new grant.
  EXPECT_TRUE(FindStep(again, "unmount").force);
  EXPECT_TRUE(FindStep(again, "release").force);

  // Left on h4, which is not a backup of web: its VIP is removed too (a
  // leftover advskew 0 would tie with the new host's).
  view.images["web-img"].mutable_grant()->set_host("h4");
  plan = PlanStart(view, "web", "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(names(plan->operations[0]),
              ::testing::IsSupersetOf({"vip-remove@h4 e1 (best effort)", "stop@h4 e1 (best effort)",
                                       "release@h4 e1 (best effort)"}));

  // h1 is a backup of web, but DRAINING: vip-backup skips it, so its VIP
  // is removed here.
  view.images["web-img"].mutable_grant()->set_host("h1");
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_DRAINING);
  plan = PlanStart(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(names(plan->operations[0]), ::testing::IsSupersetOf({"vip-remove@h1 e1 (best effort)",
                                                                   "stop@h1 e1 (best effort)"}));
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_READY);
  plan = PlanStart(view, "web", "h2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(names(plan->operations[0]),
              ::testing::Not(::testing::Contains("vip-remove@h1 e1 (best effort)")));
  view.images["web-img"].mutable_grant()->set_host("h4");

  // Nothing to clear: a host that is gone (the new grant cuts it), or a
  // jail that is placed (a stopped jail's stop released everything).
  view.hosts["h4"].mutable_status()->set_state(v1::HOST_STATE_UNREACHABLE);
  plan = PlanStart(view, "web", "h1");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(names(plan->operations[0])[1], "grant@st1 e2");
  view.hosts["h4"].mutable_status()->set_state(v1::HOST_STATE_READY);
  web.mutable_status()->set_host("h4");
  web.mutable_status()->set_phase(v1::JAIL_PHASE_STOPPED);
  plan = PlanStart(view, "web", "h1");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(names(plan->operations[0])[1], "grant@st1 e2");
}

TEST(PlanStartTest, ARestartInPlaceAfterAFenceClearsTheHostAndGrantsTheNextEpoch) {
  // web is placed on h1, whose agent fenced it (released its image); the
  // coordinator starts it there again at epoch + 1.
  ClusterView view = MakeView();
  view.jails["web"].mutable_status()->set_phase(v1::JAIL_PHASE_PENDING);
  absl::StatusOr<Plan> plan = PlanStart(view, "web", "h1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->HasErrors()) << DescribeProblemsForTest(*plan);
  const PlannedOperation& op = plan->operations[0];
  EXPECT_EQ(op.to_host, "h1");
  EXPECT_EQ(op.old_epoch, 7u);
  EXPECT_EQ(op.new_epoch, 8u);
  std::vector<std::string> steps;
  for (const Step& step : op.steps) {
    steps.push_back(absl::StrCat(step.name, "@", step.host, step.best_effort ? " (best effort)" : ""));
  }
  EXPECT_THAT(steps, ElementsAre("create-image@st1", "stop@h1 (best effort)",
                                 "destroy@h1 (best effort)", "unmount@h1 (best effort)",
                                 "release@h1 (best effort)", "grant@st1", "import@h1", "fsck@h1",
                                 "mount@h1", "create@h1", "start@h1", "vip@h1",
                                 "vip-backup@h2 (best effort)", "vip-backup@h3 (best effort)",
                                 "probe@h1", "running@h1"));
  // The grant waits for the previous holder (h1 itself, at epoch 7) to know.
  EXPECT_TRUE(FindStep(op, "grant").await_previous_holder);
}

TEST(PlannerTest, FencesWaitForTheOldHolderAndMarkFailedHostsMigrationsDoNot) {
  ClusterView view = MakeView();
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_UNREACHABLE);
  absl::StatusOr<Plan> failed = PlanHostFailure(view, "h1");
  ASSERT_TRUE(failed.ok()) << failed.status();
  for (const PlannedOperation& op : failed->operations) {
    EXPECT_TRUE(op.fences_host) << op.jail;
    EXPECT_TRUE(FindStep(op, "fence").await_previous_holder) << op.jail;
    EXPECT_TRUE(ToOperation(op).fences_host());
  }
  // A manual failover of a live host does not fence the host as a whole.
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_READY);
  absl::StatusOr<Plan> manual = PlanFailover(view, "web");
  ASSERT_TRUE(manual.ok());
  EXPECT_FALSE(manual->operations[0].fences_host);
  EXPECT_TRUE(FindStep(manual->operations[0], "fence").await_previous_holder);
  // A migration's old host released the image before the grant.
  absl::StatusOr<Plan> migration = PlanMigration(view, "web", "h2");
  ASSERT_TRUE(migration.ok());
  EXPECT_FALSE(migration->operations[0].fences_host);
  EXPECT_FALSE(FindStep(migration->operations[0], "grant").await_previous_holder);
}

TEST(PlanStopTest, StopsWhereItRunsAndRecordsStopped) {
  ClusterView view = MakeView();
  absl::StatusOr<Plan> plan = PlanStop(view, "web");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->operations.size(), 1u);
  std::vector<std::string> steps;
  for (const Step& step : plan->operations[0].steps) {
    steps.push_back(absl::StrCat(step.name, "@", step.host, step.best_effort ? " (best effort)" : ""));
    EXPECT_EQ(step.epoch, 7u);
  }
  EXPECT_THAT(steps, ElementsAre("vip-remove@h1 (best effort)", "stop@h1", "destroy@h1",
                                 "unmount@h1", "release@h1", "stopped@h1"));
  view.hosts["h1"].mutable_status()->set_state(v1::HOST_STATE_UNREACHABLE);
  plan = PlanStop(view, "web");
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->operations[0].blocked);
}

TEST(StepCallTest, EveryStepOfEveryPlanSurvivesThePersistedForm) {
  ClusterView view = MakeView();
  std::vector<Plan> plans;
  for (auto plan : {PlanFailover(view, "web"), PlanMigration(view, "db", "h4"),
                    PlanRestart(view, "web"), PlanHostFailure(view, "h1"), PlanStop(view, "db")}) {
    ASSERT_TRUE(plan.ok()) << plan.status();
    plans.push_back(*std::move(plan));
  }
  int checked = 0;
  for (const Plan& plan : plans) {
    for (const PlannedOperation& planned : plan.operations) {
      const v1::Operation op = ToOperation(planned);
      EXPECT_EQ(op.image(), planned.image);
      EXPECT_EQ(op.new_epoch(), planned.new_epoch);
      ASSERT_EQ(op.steps_size(), static_cast<int>(planned.steps.size()));
      for (int i = 0; i < op.steps_size(); ++i) {
        absl::StatusOr<Step> back = StepFromOperationStep(op.steps(i));
        ASSERT_TRUE(back.ok()) << back.status();
        const Step& want = planned.steps[i];
        EXPECT_EQ(back->action, want.action) << want.name;
        EXPECT_EQ(back->name, want.name);
        EXPECT_EQ(back->host, want.host);
        EXPECT_EQ(back->epoch, want.epoch);
        EXPECT_EQ(back->previous_epoch, want.previous_epoch);
        EXPECT_EQ(back->grant_host, want.grant_host);
        EXPECT_EQ(back->grant_address, want.grant_address);
        EXPECT_EQ(back->endpoint, want.endpoint);
        EXPECT_EQ(back->remote_path, want.remote_path);
        EXPECT_EQ(back->mount_point, want.mount_point);
        EXPECT_EQ(back->vip, want.vip);
        EXPECT_EQ(back->advskew, want.advskew);
        EXPECT_EQ(back->await_previous_holder, want.await_previous_holder) << want.name;
        EXPECT_EQ(back->claim, want.claim);
        EXPECT_EQ(back->force, want.force);
        EXPECT_EQ(back->phase, want.phase);
        EXPECT_EQ(back->best_effort, want.best_effort);
        EXPECT_EQ(back->description, want.description);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 30);
  v1::OperationStep unknown;
  unknown.set_name("mystery");
  EXPECT_EQ(StepFromOperationStep(unknown).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace jailover::coordinator::ops

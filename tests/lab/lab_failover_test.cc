// The whole system for real, on the lab (tests/lab/lab_cluster.h): the sample
// append-log jail on h1 with h2, h3 standbys and a client writing through the
// VIP throughout; every acknowledged record checked at the end, and the
// records' writers in order (no record of the old host after the first
// record of the new one).
//   - h1 dies (`kill-host`): the jail runs on a standby at epoch 2 with h1
//     FENCED (s1 grants the image to the standby only);
//   - a planned migration loses nothing;
//   - h1 cut from the coordinator only: the coordinator fences it at s1, h1
//     stops its jail on s1's word (MOVED), the jail moves; h1 stays FENCED
//     when its link returns (it was failed over: no automatic readmission);
//   - h1 cut from the coordinator and s1: it fences itself within the ttl,
//     the jail moves, and h1 stays FENCED when it returns;
//   - h1 cut from s1 only: its jail's ready turns 503 when the storage lease
//     lapses, h1 reports it, the coordinator moves the jail to a standby;
//   - a CARP split of h1 heals: c1 follows the VIP back to h1 at once;
//   - the primary's agent hung (SIGSTOP): its VIP guard releases the VIP, the
//     standby serves while the agent is still stopped;
//   - a drain, a storage-agent restart, a retried start;
// LabHaFailoverTest: the same with three coordinators on etcd, whose leader
// dies in the middle of the failover.
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "tests/lab/lab_cluster.h"

namespace jailover {
namespace {

class LabFailoverTest : public LabClusterTest {
 protected:
  // The detail of step `name` of the last failover operation ("" if none).
  std::string FailoverStepDetail(const std::string& name) {
    std::string detail;
    for (const nlohmann::json& op : Operations()) {
      if (op.value("kind", "") != "OPERATION_KIND_FAILOVER") continue;
      for (const nlohmann::json& step : op["steps"]) {
        if (step.value("name", "") == name) detail = step.value("detail", "");
      }
    }
    return detail;
  }
  // The time stamp (RFC 3339, UTC: ordered as text) of the last line of
  // `log` that contains `text`; "" if none.
  static std::string LastLogTime(const std::string& log, const std::string& text) {
    const size_t at = log.rfind(text);
    if (at == std::string::npos) return "";
    const size_t begin = log.rfind('\n', at);
    const size_t start = begin == std::string::npos ? 0 : begin + 1;
    return log.substr(start, log.find(' ', start) - start);
  }
};

TEST_F(LabFailoverTest, KilledPrimaryFailsOverWithNoAcknowledgedRecordLost) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));

  const common::CommandResult killed = Lab({"kill-host", "h1"}, absl::Seconds(60));
  ASSERT_EQ(killed.exit_code, 0) << killed.stdout_text << killed.stderr_text;
  // The jail moves to a standby at the next epoch.
  ASSERT_TRUE(WaitForJailOnAStandby())
      << Ctl({"op", "list"}).stdout_text << Ctl({"events", "--jail", "web"}).stdout_text;
  const std::string standby = Jail().host;
  EXPECT_EQ(HostState("h1"), "HOST_STATE_FENCED");
  // s1 serves the image only to the standby now: h1's grant is revoked.
  EXPECT_TRUE(
      testing::WaitUntil([&] { return StorageGrant() == standby + "@2"; }, absl::Seconds(10)))
      << StorageGrant();
  // The client keeps going through the VIP on the new host.
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  std::cout << Ctl({"op", "list", "--jail", "web"}).stdout_text;
  // h1's link back: s1's export refuses it (fenced), and still serves the
  // standby's address.
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  ASSERT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  const std::string export_uri = "nbd://198.18.0.21:10800/web-img";
  // (Once the link works again: the neighbour entries need a moment.)
  common::CommandResult from_h1;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        absl::StatusOr<common::CommandResult> r =
            lab_->Run("h1", {"nbdinfo", "--size", export_uri}, absl::Seconds(30));
        if (!r.ok()) return false;
        from_h1 = *r;
        return from_h1.exit_code == 0 || absl::StrContains(from_h1.stderr_text, "NBD_OPT_GO");
      },
      absl::Seconds(20), absl::Milliseconds(500)))
      << from_h1.stderr_text;
  EXPECT_NE(from_h1.exit_code, 0) << "h1 could still open the image: " << from_h1.stdout_text;
  EXPECT_THAT(from_h1.stderr_text, HasSubstr("NBD_OPT_GO"));
}

TEST_F(LabFailoverTest, PlannedMigrationWithTheClientRunningLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const common::CommandResult migrated =
      Ctl({"migrate", "web", "--to", "h3", "--reason", "lab test", "--wait"});
  ASSERT_EQ(migrated.exit_code, 0) << migrated.stdout_text << migrated.stderr_text;
  ASSERT_TRUE(WaitForJail("h3", 2, absl::Seconds(30)));
  EXPECT_EQ(HostState("h1"), "HOST_STATE_READY");  // A migration fences nobody.
  EXPECT_TRUE(testing::WaitUntil([&] { return StorageGrant() == "h3@2"; }, absl::Seconds(10)))
      << StorageGrant();
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

// h1 is cut from the coordinator only (it still reaches s1, the other hosts
// and the client): its coordinator lease lapses but its storage lease does
// not, so it keeps serving — until the coordinator, having found it
// UNREACHABLE, fences it at s1 (grant to a standby at epoch 2). h1 learns it
// from s1 (MOVED) and stops its jail then; the fence returned only once s1
// had told h1, and the standby started the jail after that. h1 never fenced
// itself as a host. Once healed it stays FENCED: it was failed over.
TEST_F(LabFailoverTest, PrimaryCutFromTheCoordinatorStopsOnTheStorageHostsWord) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const common::CommandResult cut = Lab({"partition", "h1", "from", "ctl"}, absl::Seconds(60));
  ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  ASSERT_TRUE(WaitForJailOnAStandby()) << Ctl({"events", "--jail", "web"}).stdout_text;
  const std::string standby = Jail().host;
  const std::string h1_log = AgentLog("h1");
  EXPECT_THAT(h1_log, HasSubstr("fence: image web-img: the storage host says image web-img's "
                                "grant moved (granted to " +
                                    standby + " at epoch 2)"));
  EXPECT_THAT(h1_log, HasSubstr("fence: jail web stopped"));
  EXPECT_THAT(h1_log, ::testing::Not(HasSubstr("SELF-FENCING")));
  // The fence waited until s1 had told h1.
  const std::string fence_detail = FailoverStepDetail("fence");
  EXPECT_THAT(fence_detail, HasSubstr("previous holder h1: told its grant moved")) << fence_detail;
  EXPECT_FALSE(ReadyOn("h1"));
  // Driven promotion: the failover's vip step claimed the VIP on the
  // standby instead of waiting for CARP's master-down timer, and h1 --
  // alive, its speaker advertising until then -- had dropped it before: on
  // s1's word, which the fence waited for. (One machine, one clock: the
  // agents' log times compare.)
  EXPECT_THAT(FailoverStepDetail("vip"), HasSubstr("claimed"));
  const std::string removed_at = LastLogTime(h1_log, "vip web-vip: removed");
  const std::string master_at =
      LastLogTime(AgentLog(standby), "carp: vip web-vip (vhid 10 on eth0) is now MASTER");
  ASSERT_FALSE(removed_at.empty()) << h1_log;
  ASSERT_FALSE(master_at.empty()) << AgentLog(standby);
  EXPECT_LT(removed_at, master_at);
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  EXPECT_THAT(writers_, HasSubstr("h1@1 ("));
  EXPECT_THAT(writers_, HasSubstr(standby + "@2 ("));
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  EXPECT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  absl::SleepFor(absl::Seconds(4));  // A few heartbeats of h1 past the heal.
  EXPECT_EQ(HostState("h1"), "HOST_STATE_FENCED");
  EXPECT_TRUE(Events("host.readmit", "h1").empty());
}

// h1 is cut from the coordinator and from s1: nothing vouches for it any
// more, so it fences itself (VIP removed, jail stopped — its disk I/O hangs
// on the lost link until the import is released — image released) within
// the ttl; the coordinator fails the jail over (its fence waits out h1's
// storage lease). Healed, h1 reports it fenced itself, but it was failed
// over: it stays FENCED, not readmitted automatically.
TEST_F(LabFailoverTest, PrimaryCutFromTheCoordinatorAndItsStorageFencesItselfAndStaysFenced) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const absl::Time cut_at = absl::Now();
  for (const char* from : {"ctl", "s1"}) {
    const common::CommandResult cut = Lab({"partition", "h1", "from", from}, absl::Seconds(60));
    ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  }
  ASSERT_TRUE(WaitForJailOnAStandby()) << Ctl({"events", "--jail", "web"}).stdout_text;
  const std::string standby = Jail().host;
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(AgentLog("h1"), "self-fenced; refusing work"); },
      absl::Seconds(30)))
      << AgentLog("h1");
  const std::string h1_log = AgentLog("h1");
  EXPECT_THAT(h1_log, HasSubstr("SELF-FENCING: no coordinator lease for"));
  EXPECT_THAT(h1_log, HasSubstr("self-fence: VIP web-vip"));
  EXPECT_THAT(h1_log, HasSubstr("self-fence: image web-img released"));
  // It stopped serving within the ttl (3 s) of being cut, give or take a
  // renew interval: its ready endpoint said so (checked from c1 once healed
  // below); here, the log line's time.
  const size_t at = h1_log.find("SELF-FENCING");
  const size_t line = h1_log.rfind('\n', at) + 1;
  absl::Time fenced_at;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ",
                              h1_log.substr(line, h1_log.find(' ', line) - line), &fenced_at,
                              &error))
      << error;
  EXPECT_LT(fenced_at - cut_at, absl::Seconds(4)) << "h1 fenced itself " << (fenced_at - cut_at)
                                                  << " after it was cut";
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  EXPECT_THAT(writers_, HasSubstr(standby + "@2 ("));
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  EXPECT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  absl::SleepFor(absl::Seconds(4));
  EXPECT_EQ(HostState("h1"), "HOST_STATE_FENCED");
  EXPECT_TRUE(Events("host.readmit", "h1").empty());
  EXPECT_FALSE(ReadyOn("h1"));
}

// h1 is cut from s1 only: its jail's disk I/O hangs (nbdfuse has no
// timeout) while its coordinator lease is fine. When its storage lease
// lapses, its ready endpoint turns 503 and its heartbeat says LAPSED; the
// coordinator moves the jail to a standby that reaches s1 (its fence cuts
// h1, which was cut anyway).
TEST_F(LabFailoverTest, PrimaryCutFromItsStorageIsNotReadyAndTheJailMoves) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_TRUE(ReadyOn("h1"));
  const common::CommandResult cut = Lab({"partition", "h1", "from", "s1"}, absl::Seconds(60));
  ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  const absl::Time cut_at = absl::Now();
  ASSERT_TRUE(testing::WaitUntil([&] { return !ReadyOn("h1"); }, absl::Seconds(10),
                                 absl::Milliseconds(100)));
  const absl::Duration not_ready_after = absl::Now() - cut_at;
  std::cout << "h1 not ready " << not_ready_after << " after it was cut from s1\n";
  EXPECT_LT(not_ready_after, absl::Seconds(5));
  EXPECT_EQ(HostState("h1"), "HOST_STATE_READY");  // Its coordinator lease is fine.
  ASSERT_TRUE(WaitForJailOnAStandby()) << Ctl({"events", "--jail", "web"}).stdout_text
                                       << Ctl({"host", "get", "h1", "-o", "json"}).stdout_text;
  const std::string standby = Jail().host;
  bool lapsed_reason = false;
  for (const nlohmann::json& op : Operations()) {
    lapsed_reason |= op.value("kind", "") == "OPERATION_KIND_FAILOVER" &&
                     absl::StrContains(op.value("reason", ""), "lost its storage lease");
  }
  EXPECT_TRUE(lapsed_reason) << Ctl({"op", "list", "--jail", "web"}).stdout_text;
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  EXPECT_THAT(writers_, HasSubstr(standby + "@2 ("));
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  EXPECT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  // A live host losing one jail is not fenced as a whole.
  EXPECT_TRUE(testing::WaitUntil([&] { return HostState("h1") == "HOST_STATE_READY"; },
                                 absl::Seconds(20)))
      << Ctl({"host", "get", "h1"}).stdout_text;
}

// Chaos finding 12: h2, the first standby, is cut from s1 (and holds no
// image there, so no lease of its own says so). Its agent's storage lease
// channel to s1 fails and it reports s1 unreachable; when h1 dies, the
// failover goes to h3, which can import the image, instead of h2, whose
// import would wait for the partition to heal.
TEST_F(LabFailoverTest, AFailoverAvoidsAStandbyCutFromTheStorageHost) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const common::CommandResult cut = Lab({"partition", "h2", "from", "s1"}, absl::Seconds(60));
  ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  auto unreachable = [&](const std::string& host) {
    const nlohmann::json j = CtlJson({"host", "get", host});
    if (!j.is_object() || !j.contains("host")) return nlohmann::json::array();
    return j["host"]
        .value("status", nlohmann::json::object())
        .value("observed", nlohmann::json::object())
        .value("unreachableStorageHosts", nlohmann::json::array());
  };
  ASSERT_TRUE(testing::WaitUntil([&] { return unreachable("h2") == nlohmann::json{"s1"}; },
                                 absl::Seconds(15), absl::Milliseconds(200)))
      << Ctl({"host", "get", "h2", "-o", "json"}).stdout_text;
  EXPECT_EQ(unreachable("h3"), nlohmann::json::array());
  EXPECT_EQ(HostState("h2"), "HOST_STATE_READY");  // Only its storage channel is cut.

  // h2 and h3 run nothing: without the report the failover takes the first
  // standby, h2 (PlannerTest.HostFailureSkipsSuspectFencedAndDrainingStandbys).
  const common::CommandResult killed = Lab({"kill-host", "h1"}, absl::Seconds(60));
  ASSERT_EQ(killed.exit_code, 0) << killed.stdout_text << killed.stderr_text;
  ASSERT_TRUE(WaitForJail("h3", 2, absl::Seconds(60)))
      << Ctl({"op", "list", "--jail", "web"}).stdout_text
      << Ctl({"events", "--jail", "web"}).stdout_text;
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  EXPECT_THAT(writers_, HasSubstr("h3@2 ("));
}

// Two jails on h1; draining h1 migrates both away (to the two standbys, one
// each: the least loaded first) and leaves nothing of them on h1.
TEST_F(LabFailoverTest, DrainMovesBothJailsOffTheHost) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail("web", kVip, 10));
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail("db", "198.18.0.101", 11));
  ASSERT_NO_FATAL_FAILURE(StartClient("198.18.0.101"));
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const common::CommandResult drained = Ctl({"host", "drain", "h1", "--reason", "lab test"});
  ASSERT_EQ(drained.exit_code, 0) << drained.stdout_text << drained.stderr_text;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const JailView web = Jail("web");
        const JailView db = Jail("db");
        return web.phase == "JAIL_PHASE_RUNNING" && db.phase == "JAIL_PHASE_RUNNING" &&
               web.host != "h1" && db.host != "h1" && web.epoch == 2 && db.epoch == 2;
      },
      absl::Seconds(90), absl::Milliseconds(200)))
      << Ctl({"op", "list"}).stdout_text;
  EXPECT_NE(Jail("web").host, Jail("db").host) << "both went to one standby";
  EXPECT_EQ(HostState("h1"), "HOST_STATE_DRAINING");
  // Nothing of them left on h1: no jail, no import.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const nlohmann::json j = CtlJson({"host", "get", "h1"});
        if (!j.is_object() || !j.contains("host")) return false;
        const nlohmann::json observed =
            j["host"]["status"].value("observed", nlohmann::json::object());
        return observed.value("jails", nlohmann::json::array()).empty() &&
               observed.value("imports", nlohmann::json::array()).empty();
      },
      absl::Seconds(10)))
      << Ctl({"host", "get", "h1"}).stdout_text;
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

// A CARP split while the standbys are cut from the coordinator (chaos cycle
// 142, docs/reliability.md): h1's advertisements are dropped on the switch
// and h2, h3 cannot reach the coordinator, everything else flows. A standby
// hears no master, takes the VIP and announces it, so c1 follows it there,
// where no jail runs; the coordinator cannot tell it to let go. When it all
// heals, h1's speaker (advskew 0), which never left MASTER and so had no
// reason of its own to announce anything, preempts the standby, and the
// standby's address goes. c1 must follow the VIP back to h1 within a few
// advertisement intervals, not when its REACHABLE entry for the standby's
// MAC times out (15-45 s, then 5 s delay and 3 probes): the Linux VIP driver
// repeats the gratuitous ARP every advbase while MASTER, as a FreeBSD CARP
// master's advertisements from the VIP's virtual MAC keep the switches
// right. The jail never moves: nothing failed but CARP's view.
TEST_F(LabFailoverTest, AfterACarpSplitHealsTheClientFollowsTheVipBack) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  absl::StatusOr<std::string> h1_mac = lab_->Mac("h1");
  ASSERT_TRUE(h1_mac.ok()) << h1_mac.status();
  auto c1_entry = [&] {
    absl::StatusOr<std::string> entry = lab_->Neighbour("c1", kVip);
    return entry.ok() ? *entry : std::string(entry.status().message());
  };
  EXPECT_THAT(c1_entry(), HasSubstr("lladdr " + *h1_mac));

  for (const std::string host : {"h2", "h3"}) {
    const common::CommandResult cut = Lab({"partition", host, "from", "ctl"}, absl::Seconds(60));
    ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  }
  const common::CommandResult split = Lab({"carp-split", "h1"}, absl::Seconds(60));
  ASSERT_EQ(split.exit_code, 0) << split.stdout_text << split.stderr_text;
  // A standby takes the VIP and announces it; c1's entry moves to it. (With
  // the refresh, h1 announces too, every second: c1's entry goes back and
  // forth for as long as the split lasts, as a switch's table would between
  // two FreeBSD CARP masters.)
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const std::string entry = c1_entry();
        return absl::StrContains(entry, "lladdr ") && !absl::StrContains(entry, *h1_mac);
      },
      absl::Seconds(30), absl::Milliseconds(20)))
      << c1_entry();
  // Long enough for c1, which keeps sending, to have confirmed that entry
  // (5 s delay, then a unicast probe the standby answers): REACHABLE, which
  // c1 trusts for 15-45 s.
  absl::SleepFor(absl::Seconds(8));
  std::cout << "during the split, c1: " << c1_entry() << "\n";

  for (const std::string host : {"h1", "h2", "h3"}) {
    const common::CommandResult healed = Lab({"heal", host}, absl::Seconds(60));
    ASSERT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  }
  const absl::Time heal = absl::Now();
  // Back to h1's MAC, and acknowledged again, within a few advbase (1 s):
  // 10 s is far below any ARP timeout of c1's (reachable 15-45 s, then
  // delay and probes).
  EXPECT_TRUE(testing::WaitUntil([&] { return absl::StrContains(c1_entry(), *h1_mac); },
                                 absl::Seconds(10), absl::Milliseconds(50)))
      << c1_entry();
  const int acked = Acked();
  EXPECT_TRUE(testing::WaitUntil([&] { return Acked() >= acked + 10; }, absl::Seconds(10),
                                 absl::Milliseconds(50)))
      << "acked " << Acked() << " (" << acked << " at the heal)";
  std::cout << "client acknowledged again " << absl::FormatDuration(absl::Now() - heal)
            << " after the heal\n";
  const JailView jail = Jail();
  EXPECT_EQ(jail.host, "h1");
  EXPECT_EQ(jail.epoch, 1u);
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

// The jail host's agent hangs (SIGSTOP; its jail, disk and ucarp run on):
// the coordinator fails the jail over (storage fence first), and the host's
// VIP guard — a process of its own, not stopped — removes the VIP once the
// agent's leases have run out, so the standby's speaker does not tie with a
// speaker whose agent cannot act (chaos etcd cycles 3, 60, 84, 107: clients
// kept reaching the hung host until its agent came back). The client is
// acknowledged by the standby while h1's agent is still stopped; resumed,
// the agent finds what the guard did and fences itself; nothing is lost.
TEST_F(LabFailoverTest, AHungAgentsVipIsReleasedByItsGuardAndTheStandbyServes) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  std::string state_dir;
  for (const lab::LabToolHost& host : state_.hosts) {
    if (host.name != "h1") continue;
    for (size_t i = 0; i + 1 < host.daemon.argv.size(); ++i) {
      if (host.daemon.argv[i] == "--state_dir") state_dir = host.daemon.argv[i + 1];
      if (absl::StartsWith(host.daemon.argv[i], "--state_dir=")) {
        state_dir = host.daemon.argv[i].substr(strlen("--state_dir="));
      }
    }
  }
  ASSERT_FALSE(state_dir.empty());
  const std::string guard = state_dir + "/vip-guard";
  EXPECT_THAT(testing::ReadFileOrEmpty(guard + "/guard.log"), HasSubstr("vip guard: watching"));
  const auto h1_has_vip = [&] {
    absl::StatusOr<common::CommandResult> shown =
        lab_->Run("h1", {"ip", "-4", "-o", "addr", "show", "dev", "eth0"});
    return shown.ok() && absl::StrContains(shown->stdout_text, absl::StrCat(" ", kVip, "/32 "));
  };
  ASSERT_TRUE(testing::WaitUntil(h1_has_vip, absl::Seconds(10)));

  const common::CommandResult paused = Lab({"pause", "h1"}, absl::Seconds(30));
  ASSERT_EQ(paused.exit_code, 0) << paused.stdout_text << paused.stderr_text;
  const absl::Time paused_at = absl::Now();
  // While h1's agent is stopped: the VIP leaves h1, the guard records it.
  EXPECT_TRUE(testing::WaitUntil([&] { return !h1_has_vip(); }, absl::Seconds(30)));
  std::cout << "h1's VIP gone " << (absl::Now() - paused_at) << " after its agent stopped\n";
  EXPECT_TRUE(testing::WaitUntil([&] { return std::filesystem::exists(guard + "/released.json"); },
                                 absl::Seconds(5)));
  EXPECT_THAT(testing::ReadFileOrEmpty(guard + "/guard.log"), HasSubstr("removed VIPs ["));
  ASSERT_TRUE(WaitForJailOnAStandby())
      << Ctl({"op", "list"}).stdout_text << Ctl({"events", "--jail", "web"}).stdout_text;
  // Served by the standby while h1's agent is still stopped.
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  std::cout << "acknowledged by " << Jail().host << " " << (absl::Now() - paused_at)
            << " after h1's agent stopped\n";

  const common::CommandResult resumed = Lab({"resume", "h1"}, absl::Seconds(30));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.stdout_text << resumed.stderr_text;
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(AgentLog("h1"), "the VIP guard released this host's VIPs"); },
      absl::Seconds(20)))
      << AgentLog("h1");
  EXPECT_TRUE(testing::WaitUntil([&] { return !std::filesystem::exists(guard + "/released.json"); },
                                 absl::Seconds(10)));
  EXPECT_EQ(HostState("h1"), "HOST_STATE_FENCED");
  EXPECT_FALSE(h1_has_vip());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(10));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

// The storage agent dies (SIGKILL, behind the lab tool's back, as a crash)
// while the jail serves: its export (nbd-server, a daemon of its own) keeps
// serving, the client keeps getting acknowledgements, the lab's keeper runs
// the agent again (as systemd would), the restarted agent finds its export
// again and the grant is unchanged; nothing is lost.
TEST_F(LabFailoverTest, StorageAgentRestartDuringServiceLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const lab::LabToolHost* s1 = nullptr;
  for (const lab::LabToolHost& host : state_.hosts) {
    if (host.name == "s1") s1 = &host;
  }
  ASSERT_NE(s1, nullptr);
  const pid_t agent = s1->daemon.pid;
  ASSERT_GT(agent, 0);
  ASSERT_THAT(s1->daemon.argv0, HasSubstr("jailover-agent"));
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  // Service goes on without the storage agent.
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(10));
  // The keeper runs it again (a new pid in the state file).
  pid_t restarted = 0;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        absl::StatusOr<lab::LabState> now = lab::ReadLabState(state_file_);
        if (!now.ok()) return false;
        for (const lab::LabToolHost& host : now->hosts) {
          if (host.name == "s1") restarted = host.daemon.pid;
        }
        return restarted != agent && restarted > 0 && ::kill(restarted, 0) == 0;
      },
      absl::Seconds(20)));
  EXPECT_THAT(testing::ReadFileOrEmpty(s1->daemon.log),
              HasSubstr("jailover-lab keeper: jailover-agent restarted"));
  ASSERT_TRUE(
      testing::WaitUntil([&] { return HostState("s1") == "HOST_STATE_READY"; }, absl::Seconds(30)));
  // The restarted agent reports the same export, granted to h1 at epoch 1.
  EXPECT_TRUE(testing::WaitUntil([&] { return StorageGrant() == "h1@1"; }, absl::Seconds(10)))
      << StorageGrant();
  const JailView jail = Jail();
  EXPECT_EQ(jail.phase, "JAIL_PHASE_RUNNING");
  EXPECT_EQ(jail.host, "h1");
  EXPECT_EQ(jail.epoch, 1u);
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

// A first start that fails after its grant (the probe times out: the jail
// runs but does not answer) leaves the image imported and mounted, the jail
// running and the VIP on h1. The retry clears that best effort at the old
// epoch before its new grant, and the jail then runs there at epoch 2.
class LabStartRetryTest : public LabFailoverTest {
 protected:
  std::vector<std::string> UpArgs() const override {
    return {"up", "--coordinator_arg=--probe_timeout=3s"};
  }
};

TEST_F(LabStartRetryTest, AStartThatFailedIsClearedBeforeTheNextAttempt) {
  // The first run only marks the disk and idles; later runs serve.
  const std::string command = absl::StrCat(
      "[\"/bin/sh\", \"-c\", \"if [ -e /data/tried ]; then exec /bin/jailover-applog-server "
      "--listen ",
      kVip, ":", kServicePort,
      " --file /data/applog.txt; fi; echo once > /data/tried; sync; exec sleep 3600\"]");
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail("web", kVip, 10, command));
  ASSERT_TRUE(WaitForJail("h1", 2, absl::Seconds(90)))
      << Ctl({"op", "list"}).stdout_text << Ctl({"events", "--jail", "web"}).stdout_text;

  // Two starts: the first FAILED at its probe, the second cleared h1 at
  // epoch 1 (before granting epoch 2) and succeeded.
  nlohmann::json ops;
  std::vector<nlohmann::json> starts;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        ops = CtlJson({"op", "list", "--jail", "web"});
        starts.clear();
        for (const nlohmann::json& op : ops.value("operations", nlohmann::json::array())) {
          if (op.value("kind", "") == "OPERATION_KIND_START") starts.push_back(op);
        }
        // Oldest first (the list is newest first).
        std::sort(starts.begin(), starts.end(),
                  [](const nlohmann::json& a, const nlohmann::json& b) {
                    return a.value("created", "") < b.value("created", "");
                  });
        return starts.size() == 2 && starts[1].value("state", "") == "OPERATION_STATE_SUCCEEDED";
      },
      absl::Seconds(30), absl::Milliseconds(200)))
      << ops.dump(1);
  ASSERT_EQ(starts.size(), 2u) << ops.dump(1);
  EXPECT_EQ(starts[0].value("state", ""), "OPERATION_STATE_FAILED") << starts[0].dump(1);
  EXPECT_THAT(starts[0].value("error", ""), HasSubstr("probe")) << starts[0].dump(1);
  std::vector<std::string> names;
  for (const nlohmann::json& step : starts[1].value("steps", nlohmann::json::array())) {
    names.push_back(absl::StrCat(step.value("name", ""), "@", step.value("host", ""), " ",
                                 step.value("state", "")));
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf({"stop@h1 OPERATION_STATE_SUCCEEDED",
                                              "unmount@h1 OPERATION_STATE_SUCCEEDED",
                                              "release@h1 OPERATION_STATE_SUCCEEDED"}))
      << starts[1].dump(1);
  // And the service answers through the VIP, its records on the disk.
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

class LabHaFailoverTest : public LabFailoverTest {
 protected:
  std::vector<std::string> UpArgs() const override {
    return {"up",   "--coordinators",
            "3",    "--store",
            "etcd", "--first_coordinator_arg=--crash_after_step_for_testing=failover:fsck"};
  }

  const lab::LabToolHost* Host(const std::string& name) const {
    for (const lab::LabToolHost& host : state_.hosts) {
      if (host.name == name) return &host;
    }
    return nullptr;
  }

  // Names of the jails host `host` reports running (its agent's heartbeat).
  std::vector<std::string> RunningOn(const std::string& host) {
    const nlohmann::json j = CtlJson({"host", "get", host});
    std::vector<std::string> names;
    if (!j.is_object() || !j.contains("host")) return names;
    const nlohmann::json observed = j["host"]
                                        .value("status", nlohmann::json::object())
                                        .value("observed", nlohmann::json::object());
    for (const nlohmann::json& jail : observed.value("jails", nlohmann::json::array())) {
      names.push_back(jail.value("name", ""));
    }
    return names;
  }
};

TEST_F(LabHaFailoverTest, LeaderKilledMidFailoverTheNewLeaderFinishesItNothingLost) {
  const lab::LabToolHost* ctl1 = Host("ctl1");
  ASSERT_NE(ctl1, nullptr);
  ASSERT_NE(Host("ctl3"), nullptr);
  nlohmann::json status = CtlJson({"status"});
  ASSERT_EQ(status.value("leader", nlohmann::json::object()).value("name", ""), "ctl1")
      << status.dump();
  const uint64_t old_term = std::strtoull(status.value("term", "0").c_str(), nullptr, 10);
  ASSERT_GT(old_term, 0u);

  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));

  const absl::Time h1_killed = absl::Now();
  const common::CommandResult killed = Lab({"kill-host", "h1"}, absl::Seconds(60));
  ASSERT_EQ(killed.exit_code, 0) << killed.stdout_text << killed.stderr_text;
  // The leader runs the failover's first steps and dies right after fsck
  // (before recording it); then its whole machine goes, etcd member too.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StrContains(testing::ReadFileOrEmpty(ctl1->daemon.log),
                                 "aborting as --crash_after_step_for_testing");
      },
      absl::Seconds(60), absl::Milliseconds(100)))
      << testing::ReadFileOrEmpty(ctl1->daemon.log);
  const absl::Time ctl1_died = absl::Now();
  const common::CommandResult killed_ctl = Lab({"kill-host", "ctl1"}, absl::Seconds(60));
  ASSERT_EQ(killed_ctl.exit_code, 0) << killed_ctl.stdout_text << killed_ctl.stderr_text;

  // A standby takes over and finishes the failover: the jail runs on one
  // standby at epoch 2.
  ASSERT_TRUE(WaitForJailOnAStandby())
      << Ctl({"status"}).stdout_text << Ctl({"op", "list"}).stdout_text
      << Ctl({"events", "--jail", "web"}).stdout_text;
  const std::string standby = Jail().host;
  std::cout << "h1 killed; ctl1 died mid-failover " << (ctl1_died - h1_killed)
            << " later; the jail ran on " << standby << " " << (absl::Now() - ctl1_died)
            << " after that\n";
  std::cout << Ctl({"events", "--jail", "web"}).stdout_text;
  status = CtlJson({"status"});
  const std::string leader = status.value("leader", nlohmann::json::object()).value("name", "");
  EXPECT_TRUE(leader == "ctl2" || leader == "ctl3") << status.dump();
  EXPECT_GT(std::strtoull(status.value("term", "0").c_str(), nullptr, 10), old_term);
  const std::string leader_log = testing::ReadFileOrEmpty(Host(leader)->daemon.log);
  EXPECT_THAT(leader_log, HasSubstr("now the leader, term"));
  EXPECT_THAT(leader_log, HasSubstr("resuming it"));

  // One failover operation, the one ctl1 started, finished by the new
  // leader; fsck was called again with its id (answered from h2's or h3's
  // record), every step succeeded.
  // The jail's phase is recorded by the operation's "running" step, before
  // the operation's own end: wait for that.
  nlohmann::json ops;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        ops = CtlJson({"op", "list", "--jail", "web"});
        for (const nlohmann::json& op : ops.value("operations", nlohmann::json::array())) {
          const std::string state = op.value("state", "");
          if (state == "OPERATION_STATE_PENDING" || state == "OPERATION_STATE_RUNNING") {
            return false;
          }
        }
        return true;
      },
      absl::Seconds(30), absl::Milliseconds(200)))
      << ops.dump();
  int failovers = 0;
  for (const nlohmann::json& op : ops.value("operations", nlohmann::json::array())) {
    if (op.value("kind", "") != "OPERATION_KIND_FAILOVER") continue;
    ++failovers;
    EXPECT_EQ(op.value("state", ""), "OPERATION_STATE_SUCCEEDED") << op.dump();
    for (const nlohmann::json& step : op.value("steps", nlohmann::json::array())) {
      EXPECT_THAT(step.value("state", ""),
                  ::testing::AnyOf("OPERATION_STATE_SUCCEEDED", "OPERATION_STATE_SKIPPED"))
          << step.dump();
    }
  }
  EXPECT_EQ(failovers, 1) << ops.dump();

  // The jail runs once: on the standby, nowhere else.
  const std::string other = standby == "h2" ? "h3" : "h2";
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        const std::vector<std::string> on_standby = RunningOn(standby);
        return std::count(on_standby.begin(), on_standby.end(), "web") == 1 &&
               RunningOn(other).empty();
      },
      absl::Seconds(10)))
      << standby << ": " << absl::StrJoin(RunningOn(standby), ",") << "; " << other << ": "
      << absl::StrJoin(RunningOn(other), ",");
  EXPECT_EQ(HostState("h1"), "HOST_STATE_FENCED");
  EXPECT_TRUE(
      testing::WaitUntil([&] { return StorageGrant() == standby + "@2"; }, absl::Seconds(10)))
      << StorageGrant();
  // The agents of the live hosts kept their leases through the change.
  for (const char* host : {"s1", "h2", "h3"})
    EXPECT_EQ(HostState(host), "HOST_STATE_READY") << host;

  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
}

}  // namespace
}  // namespace jailover

// A control-plane outage never stops a jail, on the lab (tests/lab/
// lab_cluster.h), with the sample jail on h1 and a client appending through
// its VIP throughout:
//   - the coordinator (SQLite) killed and started again 30 s later: the
//     client's longest gap stays under 200 ms, no host is fenced (none fences
//     itself, none is FENCED), no operation is started, every acknowledged
//     record is there;
//   - with three coordinators on etcd: every coordinator and every etcd
//     member stopped for 30 s, then started: the same;
//   - a host that fenced itself while nobody could fail it over (the
//     coordinator down and h1 cut from s1) is readmitted automatically when
//     both are back, and its jail is started again in place at epoch 2.
#include "tests/lab/lab_cluster.h"

namespace jailover {
namespace {

using ::testing::IsEmpty;

class LabOutageTest : public LabClusterTest {
 protected:
  // The daemons of the control plane: the coordinator host(s).
  virtual std::vector<std::string> ControlHosts() const { return {"ctl"}; }

  void StopControlPlane() {
    std::vector<std::string> args = {"stop"};
    for (const std::string& host : ControlHosts()) args.push_back(host);
    const common::CommandResult stopped = Lab(args, absl::Seconds(60));
    ASSERT_EQ(stopped.exit_code, 0) << stopped.stdout_text << stopped.stderr_text;
  }

  void StartControlPlane() {
    std::vector<std::string> args = {"start"};
    for (const std::string& host : ControlHosts()) args.push_back(host);
    const common::CommandResult started = Lab(args, absl::Seconds(120));
    ASSERT_EQ(started.exit_code, 0) << started.stdout_text << started.stderr_text;
  }

  // The outage of the control plane for 30 s stops nothing and moves
  // nothing (see the file comment).
  void ThirtySecondsWithoutTheControlPlaneStopNothing() {
    ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
    const size_t operations_before = Operations().size();
    ASSERT_NO_FATAL_FAILURE(StartClient());
    ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
    ASSERT_NO_FATAL_FAILURE(StopControlPlane());
    const absl::Time stopped = absl::Now();
    // The jail keeps serving the whole time: ready on h1, acknowledgements
    // going on.
    int probes = 0;
    while (absl::Now() - stopped < absl::Seconds(30)) {
      const int acked = Acked();
      EXPECT_TRUE(ReadyOn("h1")) << "h1 not ready " << (absl::Now() - stopped)
                                 << " into the outage\n"
                                 << AgentLog("h1");
      ++probes;
      absl::SleepFor(absl::Seconds(1));
      EXPECT_GT(Acked(), acked) << "no acknowledgement for a second, "
                                << (absl::Now() - stopped) << " into the outage";
    }
    EXPECT_GE(probes, 20);
    ASSERT_NO_FATAL_FAILURE(StartControlPlane());
    // Every host READY again, the jail where it was, nothing fenced.
    for (const char* host : {"s1", "h1", "h2", "h3"}) {
      EXPECT_TRUE(testing::WaitUntil([&] { return HostState(host) == "HOST_STATE_READY"; },
                                     absl::Seconds(30)))
          << host << ": " << Ctl({"host", "get", host}).stdout_text;
    }
    ASSERT_TRUE(WaitForJail("h1", 1, absl::Seconds(10)));
    ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
    EXPECT_EQ(Operations().size(), operations_before)
        << Ctl({"op", "list", "--jail", "web"}).stdout_text;
    for (const char* host : {"s1", "h1", "h2", "h3"}) {
      for (const nlohmann::json& event : Events("host.state", host)) {
        EXPECT_NE(event.value("toValue", ""), "FENCED") << host << ": " << event.dump();
        EXPECT_NE(event.value("toValue", ""), "UNREACHABLE") << host << ": " << event.dump();
      }
      EXPECT_THAT(AgentLog(host), ::testing::Not(HasSubstr("SELF-FENCING"))) << host;
      EXPECT_THAT(AgentLog(host), ::testing::Not(HasSubstr("fence: image"))) << host;
    }
    ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
    EXPECT_GE(longest_gap_ms_, 0);
    EXPECT_LT(longest_gap_ms_, 200) << "the client waited " << longest_gap_ms_
                                    << " ms for an acknowledgement";
    EXPECT_THAT(writers_, HasSubstr("writers in order: h1@1 ("));
  }
};

TEST_F(LabOutageTest, TheCoordinatorDownForThirtySecondsStopsNoJail) {
  ThirtySecondsWithoutTheControlPlaneStopNothing();
}

// The coordinator is down and h1 is cut from s1: nothing vouches for h1,
// which fences itself (its jail stopped; nobody can fail it over). When both
// are back, h1's first report says it fenced itself and no failover moved
// its jail: it is readmitted automatically (audited), and the jail starts on
// it again at epoch 2. Nothing acknowledged is lost, and the records'
// writers are h1@1 then h1@2.
TEST_F(LabOutageTest, AHostThatFencedItselfWhileTheCoordinatorWasDownIsReadmitted) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopControlPlane());
  const common::CommandResult cut = Lab({"partition", "h1", "from", "s1"}, absl::Seconds(60));
  ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(AgentLog("h1"), "self-fenced; refusing work"); },
      absl::Seconds(40)))
      << AgentLog("h1");
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  ASSERT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
  ASSERT_NO_FATAL_FAILURE(StartControlPlane());
  ASSERT_TRUE(WaitForJail("h1", 2, absl::Seconds(60)))
      << Ctl({"op", "list"}).stdout_text << Ctl({"events"}).stdout_text;
  EXPECT_EQ(HostState("h1"), "HOST_STATE_READY");
  const std::vector<nlohmann::json> readmissions = Events("host.readmit", "h1");
  ASSERT_EQ(readmissions.size(), 1u) << Ctl({"events", "--host", "h1"}).stdout_text;
  EXPECT_THAT(readmissions[0].value("reason", ""), HasSubstr("readmitted automatically"));
  EXPECT_THAT(AgentLog("h1"), HasSubstr("readmitted by the coordinator"));
  // No failover: the jail started again where it was.
  for (const nlohmann::json& op : Operations()) {
    EXPECT_NE(op.value("kind", ""), "OPERATION_KIND_FAILOVER") << op.dump();
  }
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  EXPECT_THAT(writers_, HasSubstr("h1@1 ("));
  EXPECT_THAT(writers_, HasSubstr("h1@2 ("));
}

class LabHaOutageTest : public LabOutageTest {
 protected:
  std::vector<std::string> UpArgs() const override {
    return {"up", "--coordinators", "3", "--store", "etcd"};
  }
  std::vector<std::string> ControlHosts() const override { return {"ctl1", "ctl2", "ctl3"}; }
};

TEST_F(LabHaOutageTest, EveryCoordinatorAndEtcdMemberDownForThirtySecondsStopsNoJail) {
  ThirtySecondsWithoutTheControlPlaneStopNothing();
}

}  // namespace
}  // namespace jailover

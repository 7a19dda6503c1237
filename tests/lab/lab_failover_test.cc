// The whole system for real: `jailover-lab up` (coordinator in ctl, storage
// agent in s1, Linux-driver jail agents in h1..h3, client c1), the sample
// append-log jail on a disk image served by s1, applied with h1 preferred
// and h2, h3 standbys; a client in c1 appends records through the VIP
// throughout. Then h1 dies (`kill-host`: every process and its link): the
// jail must run on a standby at epoch 2 with h1 FENCED (s1 grants the image
// to the standby only), and every record the client saw acknowledged must be
// in the log read back through the VIP. A planned migration with the client
// running loses nothing either. The lab is torn down by `down` on success and
// failure alike and leaves nothing behind.
//
// LabHaFailoverTest: the same lab with three coordinators (ctl1..ctl3, each
// with a member of a three-member etcd cluster); the leader ctl1 dies in the
// middle of the failover (right after its fsck step, then its whole host):
// a standby takes over, finishes that same operation, the jail runs once,
// on one standby, and no acknowledged record is lost.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/exec/command_runner.h"
#include "deploy/lab/lab_tool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::testing::HasSubstr;

constexpr char kVip[] = "198.18.0.100";
constexpr int kServicePort = 7000;

class LabFailoverTest : public ::testing::Test {
 protected:
  LabFailoverTest() : temp_("lab_failover_test") {}

  // `jailover-lab up` and its options.
  virtual std::vector<std::string> UpArgs() const { return {"up"}; }

  void SetUp() override {
    JAILOVER_REQUIRE_LAB();
    state_file_ = temp_.path() + "/lab.json";
    const common::CommandResult up = Lab(UpArgs(), absl::Seconds(120));
    ASSERT_EQ(up.exit_code, 0) << up.stdout_text << up.stderr_text;
    absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = *state;
    std::vector<testing::LabHost> hosts;
    for (const lab::LabToolHost& h : state_.hosts) hosts.push_back({h.name, h.address});
    auto attached = testing::LabNetwork::Attach(state_.prefix, hosts);
    ASSERT_TRUE(attached.ok()) << attached.status();
    lab_ = *std::move(attached);
    up_ = true;
  }

  void TearDown() override {
    if (client_pid_ > 0) {
      ::kill(client_pid_, SIGKILL);
      client_pid_ = 0;
    }
    lab_.reset();
    if (!up_) return;
    const common::CommandResult down = Lab({"down"}, absl::Seconds(120));
    EXPECT_EQ(down.exit_code, 0) << down.stdout_text << down.stderr_text;
    EXPECT_THAT(testing::LabLeftovers(state_.prefix), ::testing::IsEmpty());
  }

  common::CommandResult Lab(std::vector<std::string> args, absl::Duration timeout) {
    std::vector<std::string> argv = {JAILOVER_LAB_BIN, "--state_file", state_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    common::SubprocessCommandRunner runner;
    absl::StatusOr<common::CommandResult> result = runner.Run(argv, timeout);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::CommandResult();
  }

  // jailoverctl in c1.
  common::CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {JAILOVERCTL_BIN, "--coordinator", state_.coordinator,
                                     "--insecure"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<common::CommandResult> result = lab_->Run("c1", argv, absl::Seconds(60));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::CommandResult();
  }

  nlohmann::json CtlJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"-o", "json"});
    const common::CommandResult result = Ctl(args);
    if (result.exit_code != 0) return nlohmann::json();
    return nlohmann::json::parse(result.stdout_text, nullptr, /*allow_exceptions=*/false);
  }

  // The jail's phase, host and epoch ("" / 0 when unknown).
  struct JailView {
    std::string phase, host;
    uint64_t epoch = 0;
  };
  JailView Jail(const std::string& name = "web") {
    const nlohmann::json j = CtlJson({"jail", "get", name});
    JailView v;
    if (!j.is_object() || !j.contains("jail")) return v;
    const nlohmann::json& status = j["jail"].value("status", nlohmann::json::object());
    v.phase = status.value("phase", "");
    v.host = status.value("host", "");
    const std::string epoch = status.value("epoch", "0");
    v.epoch = std::strtoull(epoch.c_str(), nullptr, 10);
    return v;
  }

  bool WaitForJail(const std::string& host, uint64_t epoch, absl::Duration timeout,
                   const std::string& name = "web") {
    return testing::WaitUntil(
        [&] {
          const JailView v = Jail(name);
          return v.phase == "JAIL_PHASE_RUNNING" && v.host == host && v.epoch == epoch;
        },
        timeout, absl::Milliseconds(200));
  }

  // Waits until web runs on a standby (h2 or h3) at epoch 2: failed over.
  bool WaitForJailOnAStandby() {
    return testing::WaitUntil(
        [&] {
          const JailView v = Jail();
          return v.phase == "JAIL_PHASE_RUNNING" && (v.host == "h2" || v.host == "h3") &&
                 v.epoch == 2;
        },
        absl::Seconds(60), absl::Milliseconds(200));
  }

  std::string HostState(const std::string& host) {
    const nlohmann::json j = CtlJson({"host", "get", host});
    if (!j.is_object() || !j.contains("host")) return "";
    return j["host"].value("status", nlohmann::json::object()).value("state", "");
  }

  // The grant s1 itself reports for the image: "HOST@EPOCH".
  std::string StorageGrant() {
    const nlohmann::json j = CtlJson({"host", "get", "s1"});
    if (!j.is_object() || !j.contains("host")) return "";
    const nlohmann::json observed = j["host"]
                                        .value("status", nlohmann::json::object())
                                        .value("observed", nlohmann::json::object());
    for (const nlohmann::json& e : observed.value("exports", nlohmann::json::array())) {
      if (e.value("image", "") != "web-img") continue;
      const nlohmann::json grant = e.value("grant", nlohmann::json::object());
      return absl::StrCat(grant.value("host", ""), "@", grant.value("epoch", "0"));
    }
    return "";
  }

  // Builds the sample image of jail `name` on s1 and applies its image, VIP
  // (`vip` address, `vhid`) and the jail, h1 preferred, h2 and h3 standbys.
  // Defines the sample jail `name` and waits until it runs on h1 at epoch
  // 1. `exec_start`: the jail's command as a YAML flow list instead of the
  // append-log server's; then the caller waits for it.
  void ApplySampleJail(const std::string& name = "web", const std::string& vip = kVip,
                       int vhid = 10, const std::string& exec_start = "") {
    const std::string image = absl::StrCat(state_.dir, "/s1/images/", name, ".img");
    common::SubprocessCommandRunner runner;
    absl::StatusOr<common::CommandResult> made = runner.Run(
        {"/bin/bash", JAILOVER_SAMPLE_IMAGE_SCRIPT, image, "64", JAILOVER_APPLOG_SERVER_BIN},
        absl::Seconds(60));
    ASSERT_TRUE(made.ok() && made->exit_code == 0)
        << (made.ok() ? made->stdout_text + made->stderr_text : made.status().ToString());
    const std::string spec = absl::StrCat(temp_.path(), "/", name, ".yaml");
    std::ofstream(spec) << "kind: Image\nname: " << name
                        << "-img\nstorage_host: s1\npath: " << image
                        << "\nsize: 64M\nfilesystem: ext4\n---\n"
                        << "kind: Vip\nname: " << name << "-vip\naddress: " << vip
                        << "/24\ninterface: eth0\nvhid: " << vhid
                        << "\npassword: s3cret\nadvbase: 1\n---\n"
                        << "kind: Jail\nname: " << name << "\nimage: " << name
                        << "-img\nvip: " << name << "-vip\n"
                        << "placement:\n  preferred_host: h1\n  standbys: [h2, h3]\n"
                        << "spec:\n  exec_start: "
                        << (exec_start.empty() ? ServerCommand(vip) : exec_start) << "\n"
                        << "  health_port: " << kServicePort << "\n";
    const common::CommandResult applied = Ctl({"apply", "-f", spec});
    ASSERT_EQ(applied.exit_code, 0) << applied.stdout_text << applied.stderr_text;
    if (!exec_start.empty()) return;
    ASSERT_TRUE(WaitForJail("h1", 1, absl::Seconds(60), name)) << Ctl({"op", "list"}).stdout_text;
  }

  // The append-log server on its own VIP (jails share their host's network
  // namespace), as a YAML flow list.
  static std::string ServerCommand(const std::string& vip) {
    return absl::StrCat("[\"/bin/jailover-applog-server\", \"--listen\", \"", vip, ":",
                        kServicePort, "\", \"--file\", \"/data/applog.txt\"]");
  }

  // The client in c1, appending until stopped; acknowledged ids in acked_.
  void StartClient(const std::string& vip = kVip) {
    target_ = absl::StrCat(vip, ":", kServicePort);
    acked_ = temp_.path() + "/acked-" + vip + ".txt";
    absl::StatusOr<pid_t> pid =
        lab_->StartDetached("c1",
                            {JAILOVER_APPLOG_CLIENT_BIN, "write", "--target", target_,
                             "--run-until-signal", "--interval-ms", "20", "--acked", acked_},
                            temp_.path() + "/client.log");
    ASSERT_TRUE(pid.ok()) << pid.status();
    client_pid_ = *pid;
  }

  int Acked() {
    std::ifstream in(acked_);
    int lines = 0;
    for (std::string line; std::getline(in, line);) lines += !line.empty();
    return lines;
  }

  void WaitForMoreAcks(int more) {
    const int target = Acked() + more;
    ASSERT_TRUE(testing::WaitUntil([&] { return Acked() >= target; }, absl::Seconds(60),
                                   absl::Milliseconds(50)))
        << "acked " << Acked() << "\n"
        << testing::ReadFileOrEmpty(temp_.path() + "/client.log");
  }

  // Stops the client and checks every acknowledged record through the VIP.
  void StopClientAndCheck() {
    ::kill(client_pid_, SIGTERM);
    ASSERT_TRUE(testing::WaitUntil([&] { return ::kill(client_pid_, 0) != 0; }, absl::Seconds(15)));
    client_pid_ = 0;
    absl::StatusOr<common::CommandResult> checked = lab_->Run(
        "c1", {JAILOVER_APPLOG_CLIENT_BIN, "check", "--target", target_, "--acked", acked_},
        absl::Seconds(60));
    ASSERT_TRUE(checked.ok()) << checked.status();
    EXPECT_EQ(checked->exit_code, 0) << checked->stdout_text << checked->stderr_text;
    EXPECT_THAT(checked->stdout_text, HasSubstr("acknowledged records present"));
    std::cout << checked->stdout_text;
  }

  testing::ScopedTempDir temp_;
  std::string state_file_;
  lab::LabState state_;
  std::unique_ptr<testing::LabNetwork> lab_;
  bool up_ = false;
  std::string acked_;
  std::string target_;
  pid_t client_pid_ = 0;
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
// and the client): its agent loses its lease and fences itself (stops the
// jail, releases the disk, removes the VIP) within the ttl; the coordinator
// fences it at the storage host and starts the jail on a standby. h1 stopped
// serving before the standby started: its self-fence (in its agent's log)
// precedes the failover's start step (in the event log), and no acknowledged
// record is lost.
TEST_F(LabFailoverTest, PrimaryCutFromTheCoordinatorFencesItselfAndTheJailMoves) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  const common::CommandResult cut = Lab({"partition", "h1", "from", "ctl"}, absl::Seconds(60));
  ASSERT_EQ(cut.exit_code, 0) << cut.stdout_text << cut.stderr_text;
  ASSERT_TRUE(WaitForJailOnAStandby()) << Ctl({"events", "--jail", "web"}).stdout_text;
  const std::string standby = Jail().host;
  // h1's agent fenced itself: it says so on its health port (reachable from c1).
  absl::StatusOr<common::CommandResult> health =
      lab_->Run("c1", {"/bin/busybox", "wget", "-q", "-O", "-", "http://198.18.0.11:7421/healthz"});
  ASSERT_TRUE(health.ok());
  EXPECT_THAT(health->stdout_text, HasSubstr("self-fenced"));
  // When: the agent's log has the self-fence, the event log the start on the standby.
  const std::string h1_log = testing::ReadFileOrEmpty(state_.dir + "/h1/agent.log");
  const size_t fence_line = h1_log.find("self-fence: jail web stopped");
  ASSERT_NE(fence_line, std::string::npos) << h1_log;
  // The log line begins with its RFC 3339 UTC time ("...Z info [agent] ...").
  const size_t line_start = h1_log.rfind('\n', fence_line) + 1;
  absl::Time stopped_at;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ",
                              h1_log.substr(line_start, h1_log.find(' ', line_start) - line_start),
                              &stopped_at, &error))
      << error;
  absl::Time started_at = absl::InfinitePast();
  const std::string events =
      Ctl({"-o", "json", "events", "--jail", "web", "--type", "operation.step"}).stdout_text;
  for (absl::string_view line : absl::StrSplit(events, '\n')) {
    const nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
    if (e.is_object() && e.value("step", "") == "start" && e.value("host", "") == standby) {
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, e.value("time", ""), &started_at, &error))
          << error;
    }
  }
  ASSERT_NE(started_at, absl::InfinitePast()) << events;
  EXPECT_LT(stopped_at, started_at) << "h1 stopped its jail at " << stopped_at << ", " << standby
                                    << " started it at " << started_at;
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  ASSERT_NO_FATAL_FAILURE(StopClientAndCheck());
  const common::CommandResult healed = Lab({"heal", "h1"}, absl::Seconds(60));
  EXPECT_EQ(healed.exit_code, 0) << healed.stdout_text << healed.stderr_text;
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

// The storage agent dies and comes back while the jail serves: its export
// (nbd-server, a daemon of its own) keeps serving, the client keeps getting
// acknowledgements, the restarted agent finds its export again and the grant
// is unchanged; nothing is lost.
TEST_F(LabFailoverTest, StorageAgentRestartDuringServiceLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  pid_t agent = 0;
  for (const lab::LabToolHost& host : state_.hosts) {
    if (host.name == "s1") agent = host.daemon.pid;
  }
  ASSERT_GT(agent, 0);
  // Its command line, to start it again the same way.
  const std::string cmdline = testing::ReadFileOrEmpty(absl::StrCat("/proc/", agent, "/cmdline"));
  std::vector<std::string> argv = absl::StrSplit(cmdline, '\0', absl::SkipEmpty());
  ASSERT_FALSE(argv.empty());
  ASSERT_THAT(argv[0], HasSubstr("jailover-agent"));
  ASSERT_EQ(::kill(agent, SIGKILL), 0);
  // Service goes on without the storage agent.
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));
  absl::StatusOr<pid_t> restarted =
      lab_->StartDetached("s1", argv, state_.dir + "/s1/agent-restarted.log");
  ASSERT_TRUE(restarted.ok()) << restarted.status();
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

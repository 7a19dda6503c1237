// The lab cluster tool (deploy/lab, jailover-lab) end to end, as a user
// runs it: up -> 4 READY hosts -> stop/start the coordinator and an agent
// (the rest runs on; the coordinator sees the four READY again), the
// coordinator killed behind the tool's back and restarted by the keeper -> kill-host
// h3 (agent gone, link down) -> partition h2 from ctl and heal -> down with a
// stopped daemon -> nothing left; and a failed up (the coordinator refuses
// its flags) leaves nothing either; three coordinators on etcd: one etcd
// member alone stopped and started, every coordinator and etcd member
// stopped and started again in one command (one leads, the agents are READY
// on it), then kill-host of the leader, another takes over and the agents
// stay READY on it; the chaos run's faults (loss, CARP split, one-way
// partition, lease-channel delay through the lease proxies, pause, revive)
// and their heals. Each test uses its own state
// file, so a lab someone has up on this machine is not touched.
#include "deploy/lab/lab_tool.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover {
namespace {

using ::testing::Contains;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LabToolTest : public ::testing::Test {
 protected:
  void SetUp() override { state_file_ = dir_.path() + "/current.json"; }
  void TearDown() override {
    // Whatever happened, no lab of this test survives it.
    absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
    if (state.ok()) {
      Tool({"down"}, absl::Seconds(90));
      EXPECT_THAT(testing::LabLeftovers(state->prefix), IsEmpty());
    }
  }

  common::CommandResult Tool(std::vector<std::string> args,
                             absl::Duration timeout = absl::Seconds(30)) {
    std::vector<std::string> argv = {JAILOVER_LAB_BIN, "--state_file=" + state_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    common::SubprocessCommandRunner runner;
    absl::StatusOr<common::CommandResult> result = runner.Run(argv, timeout);
    EXPECT_TRUE(result.ok()) << common::FormatArgv(argv) << ": " << result.status();
    if (!result.ok()) return common::CommandResult{};
    std::cout << "$ jailover-lab " << common::FormatArgv(args) << "  -> exit " << result->exit_code
              << "\n"
              << result->stdout_text << result->stderr_text;
    return *result;
  }

  // Connects from `host` to ADDRESS:PORT (bash's /dev/tcp): true if the TCP
  // handshake completes.
  bool CanConnect(testing::LabNetwork& lab, const std::string& host, const std::string& address,
                  int port) {
    absl::StatusOr<common::CommandResult> result = lab.Run(
        host,
        {"timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/" + address + "/" + std::to_string(port)},
        absl::Seconds(10));
    return result.ok() && result->ok();
  }

  // The hosts the coordinator at `endpoint` reports READY (asked from c1);
  // with `since`, only those whose last heartbeat came after it (a restarted
  // coordinator restores hosts READY before they heartbeat).
  std::set<std::string> ReadyOn(testing::LabNetwork& lab, const lab::LabState& state,
                                const std::string& endpoint,
                                absl::Time since = absl::InfinitePast()) {
    absl::StatusOr<common::CommandResult> list = lab.Run(
        "c1", lab::CtlArgv(state, endpoint, {"--timeout", "2", "-o", "json", "host", "list"}));
    std::set<std::string> ready;
    if (!list.ok() || !list->ok()) return ready;
    const nlohmann::json json = nlohmann::json::parse(list->stdout_text, nullptr, false);
    if (json.is_discarded() || !json.contains("hosts")) return ready;
    for (const auto& host : json.at("hosts")) {
      if (host["status"]["state"] != "HOST_STATE_READY") continue;
      absl::Time heartbeat = absl::InfinitePast();
      std::string error;
      if (since != absl::InfinitePast() &&
          !absl::ParseTime(absl::RFC3339_full, host["status"].value("lastHeartbeat", ""),
                           &heartbeat, &error)) {
        continue;
      }
      if (heartbeat >= since) ready.insert(host["name"]);
    }
    return ready;
  }

  // True if the coordinator whose HTTP is at ADDRESS:7422 says it leads
  // (its /readyz answers 200 "leader, term N"; asked from c1).
  bool Leads(testing::LabNetwork& lab, const std::string& address) {
    absl::StatusOr<common::CommandResult> result = lab.Run(
        "c1",
        {"curl", "--silent", "--fail", "--max-time", "2", "http://" + address + ":7422/readyz"},
        absl::Seconds(5));
    return result.ok() && result->ok() && result->stdout_text.rfind("leader", 0) == 0;
  }

  // The coordinators' roles from `status`: its "coordinators" lines
  // ("  ctl1 198.18.0.2:7430   leader   leader, term 1").
  static std::map<std::string, std::string> Roles(const std::string& status) {
    std::map<std::string, std::string> roles;
    const std::regex line(" +(ctl[0-9]) +[0-9.]+:7430 +(leader|standby|down)( .*)?");
    for (absl::string_view piece : absl::StrSplit(status, '\n')) {
      const std::string text(piece);
      std::smatch match;
      if (std::regex_match(text, match, line)) roles[match[1]] = match[2];
    }
    return roles;
  }

  // The argv of process `pid` (its /proc/PID/cmdline).
  static std::vector<std::string> Cmdline(pid_t pid) {
    const std::string text = testing::ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/cmdline");
    return absl::StrSplit(text, '\0', absl::SkipEmpty());
  }

  // `pid` has exited and was reaped (a zombie until init reaps it).
  static bool Gone(pid_t pid) {
    return pid > 0 && testing::WaitUntil([&] { return ::kill(pid, 0) != 0; }, absl::Seconds(5));
  }

  static bool Running(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

  // Host `name` as the state file records it now.
  lab::LabToolHost Recorded(const std::string& name) {
    absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
    EXPECT_TRUE(state.ok()) << state.status();
    if (state.ok()) {
      for (const lab::LabToolHost& host : state->hosts) {
        if (host.name == name) return host;
      }
    }
    ADD_FAILURE() << "no host " << name << " in " << state_file_;
    return {};
  }

  std::string StateText() { return testing::ReadFileOrEmpty(state_file_); }

  testing::ScopedTempDir dir_{"lab_tool_test"};
  std::string state_file_;
};

TEST_F(LabToolTest, UpStatusKillPartitionHealDown) {
  JAILOVER_REQUIRE_LAB();
  common::CommandResult up = Tool({"up"}, absl::Seconds(150));
  ASSERT_EQ(up.exit_code, 0) << up.stderr_text;
  EXPECT_THAT(up.stdout_text, HasSubstr("is up"));
  absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->hosts.size(), 6u);
  std::vector<testing::LabHost> hosts;
  for (const lab::LabToolHost& host : state->hosts) hosts.push_back({host.name, host.address});
  absl::StatusOr<std::unique_ptr<testing::LabNetwork>> lab =
      testing::LabNetwork::Attach(state->prefix, hosts);
  ASSERT_TRUE(lab.ok()) << lab.status();

  // The coordinator sees the four agents READY (asked from c1).
  absl::StatusOr<common::CommandResult> list =
      (*lab)->Run("c1", lab::CtlArgv(*state, state->coordinator, {"-o", "json", "host", "list"}));
  ASSERT_TRUE(list.ok() && list->ok()) << (list.ok() ? list->stderr_text : "");
  std::set<std::string> ready;
  const nlohmann::json hosts_json = nlohmann::json::parse(list->stdout_text);
  for (const auto& host : hosts_json.at("hosts")) {
    if (host["status"]["state"] == "HOST_STATE_READY") ready.insert(host["name"]);
  }
  EXPECT_EQ(ready, (std::set<std::string>{"s1", "h1", "h2", "h3"}));
  common::CommandResult status = Tool({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_THAT(status.stdout_text, HasSubstr("READY"));
  EXPECT_THAT(status.stdout_text, HasSubstr(state->prefix));

  // Bad input: an unknown host changes nothing.
  common::CommandResult bad = Tool({"kill-host", "h9"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.stderr_text, HasSubstr("no host 'h9'"));

  // stop/start refused (exit 1, nothing changed): an unknown host, the
  // client (no daemon; h1 given with it is not stopped either), start of a
  // running host.
  const std::string recorded_before = StateText();
  const std::set<std::string> agents = {"s1", "h1", "h2", "h3"};
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"stop", "h9"}, {"start", "h9"}, {"stop", "h1", "c1"}, {"start", "ctl"}}) {
    common::CommandResult refused = Tool(args);
    EXPECT_EQ(refused.exit_code, 1) << common::FormatArgv(args);
    EXPECT_THAT(refused.stderr_text,
                HasSubstr(args[1] == "h9"     ? "no host 'h9'"
                          : args[0] == "stop" ? "c1: the lab runs no daemon"
                                              : "ctl's daemons are not stopped"))
        << common::FormatArgv(args);
  }
  EXPECT_EQ(StateText(), recorded_before);
  for (int i = 1; i <= 4; ++i) EXPECT_TRUE(Running(state->hosts[i].daemon.pid));

  // stop ctl: the coordinator is gone (SIGKILL), the agents run on, the
  // link stays up; recorded as stopped with its whole argv.
  const lab::LabToolHost ctl = state->hosts[0];
  ASSERT_EQ(ctl.name, "ctl");
  EXPECT_EQ(Cmdline(ctl.daemon.pid), ctl.daemon.argv);
  common::CommandResult stopped = Tool({"stop", "ctl"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.stderr_text;
  EXPECT_THAT(stopped.stdout_text,
              HasSubstr("jailover-coordinator pid " + std::to_string(ctl.daemon.pid) + " killed"));
  EXPECT_TRUE(Gone(ctl.daemon.pid));
  for (int i = 1; i <= 4; ++i) EXPECT_TRUE(Running(state->hosts[i].daemon.pid));
  EXPECT_TRUE(*(*lab)->LinkIsUp("ctl"));
  EXPECT_FALSE(CanConnect(**lab, "c1", "198.18.0.2", 7430));
  lab::LabToolHost now = Recorded("ctl");
  EXPECT_TRUE(now.daemon.stopped);
  EXPECT_EQ(now.daemon.pid, 0);
  EXPECT_EQ(now.daemon.argv, ctl.daemon.argv);
  status = Tool({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_THAT(status.stdout_text,
              ContainsRegex("ctl +198.18.0.2 +coordinator +coordinator stopped"));
  common::CommandResult again_stopped = Tool({"stop", "ctl"});
  EXPECT_EQ(again_stopped.exit_code, 1);
  EXPECT_THAT(again_stopped.stderr_text, HasSubstr("already stopped"));

  // start ctl: the same argv, appending to the same log; it answers in c1
  // and sees the four agents READY again.
  const absl::Time started_at = absl::Now();
  common::CommandResult started = Tool({"start", "ctl"}, absl::Seconds(60));
  EXPECT_EQ(started.exit_code, 0) << started.stderr_text;
  EXPECT_THAT(started.stdout_text, HasSubstr("jailover-coordinator answers"));
  now = Recorded("ctl");
  EXPECT_FALSE(now.daemon.stopped);
  EXPECT_TRUE(Running(now.daemon.pid));
  EXPECT_NE(now.daemon.pid, ctl.daemon.pid);
  EXPECT_EQ(Cmdline(now.daemon.pid), ctl.daemon.argv);
  EXPECT_EQ(now.daemon.log, ctl.daemon.log);
  EXPECT_THAT(testing::ReadFileOrEmpty(ctl.daemon.log), HasSubstr("started again"));
  absl::StatusOr<common::CommandResult> ctl_status =
      (*lab)->Run("c1", lab::CtlArgv(*state, state->coordinator, {"status"}));
  EXPECT_TRUE(ctl_status.ok() && ctl_status->ok())
      << (ctl_status.ok() ? ctl_status->stderr_text : "");
  std::set<std::string> ready_now;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        ready_now = ReadyOn(**lab, *state, state->coordinator, started_at);
        return ready_now == agents;
      },
      absl::Seconds(60)))
      << "READY with a heartbeat since start: " << ready_now.size();

  // The coordinator dies behind the tool's back (SIGKILL, as a crash or a
  // leader's exit on a lost etcd session): the keeper runs it again with the
  // same argv (systemd's Restart=always), says so in its log and the
  // coordinator's, records the restart; the agents are READY on it again.
  // A daemon the tool stopped is never restarted (ctl stayed stopped above).
  const pid_t crashed = now.daemon.pid;
  ASSERT_EQ(::kill(crashed, SIGKILL), 0);
  EXPECT_TRUE(Gone(crashed));
  const absl::Time crashed_at = absl::Now();
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        now = Recorded("ctl");
        return now.daemon.pid != crashed && Running(now.daemon.pid);
      },
      absl::Seconds(20)))
      << StateText();
  EXPECT_EQ(now.daemon.restarts, 1);
  EXPECT_FALSE(now.daemon.stopped);
  EXPECT_EQ(Cmdline(now.daemon.pid), ctl.daemon.argv);
  const std::string ctl_log = testing::ReadFileOrEmpty(ctl.daemon.log);
  EXPECT_THAT(ctl_log, HasSubstr("(pid " + std::to_string(crashed) + ") exited on its own"));
  EXPECT_THAT(ctl_log, HasSubstr("jailover-lab keeper: jailover-coordinator restarted"));
  EXPECT_THAT(
      testing::ReadFileOrEmpty(state->dir + "/keeper.log"),
      HasSubstr("jailover-coordinator in ctl restarted, pid " + std::to_string(now.daemon.pid)));
  status = Tool({"status"});
  EXPECT_THAT(status.stdout_text,
              ContainsRegex("ctl +198.18.0.2 +coordinator +coordinator [0-9]+ alive "
                            "\\(restarted 1x\\)"));
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        ready_now = ReadyOn(**lab, *state, state->coordinator, crashed_at);
        return ready_now == agents;
      },
      absl::Seconds(60)))
      << "READY with a heartbeat since the restart: " << ready_now.size();

  // stop h1 / start h1: the agent alone; a daemon of its own (in its own
  // session, as ucarp or nbdfuse) keeps running; h1 is READY again.
  const lab::LabToolHost h1 = state->hosts[2];
  ASSERT_EQ(h1.name, "h1");
  absl::StatusOr<pid_t> other =
      (*lab)->StartDetached("h1", {"sleep", "600"}, state->dir + "/h1/sleep.log");
  ASSERT_TRUE(other.ok()) << other.status();
  stopped = Tool({"stop", "h1"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.stderr_text;
  // (Its VIP guard too: a jailover-agent --vip_guard of its own.)
  EXPECT_THAT(stopped.stdout_text, HasSubstr("still running in h1: jailover-agent, sleep"));
  EXPECT_TRUE(Gone(h1.daemon.pid));
  EXPECT_TRUE(Running(*other));
  EXPECT_TRUE(Running(now.daemon.pid));  // the coordinator
  EXPECT_TRUE(Recorded("h1").daemon.stopped);
  const absl::Time h1_started_at = absl::Now();
  started = Tool({"start", "h1"}, absl::Seconds(60));
  EXPECT_EQ(started.exit_code, 0) << started.stderr_text;
  EXPECT_THAT(started.stdout_text, HasSubstr("jailover-agent answers"));
  now = Recorded("h1");
  EXPECT_TRUE(Running(now.daemon.pid));
  EXPECT_EQ(Cmdline(now.daemon.pid), h1.daemon.argv);
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return ReadyOn(**lab, *state, state->coordinator, h1_started_at).count("h1") == 1; },
      absl::Seconds(60)));
  state = lab::ReadLabState(state_file_);  // the new pids
  ASSERT_TRUE(state.ok()) << state.status();

  // kill-host h3: its agent and every other process gone, link down.
  const lab::LabToolHost& h3 = state->hosts[4];
  ASSERT_EQ(h3.name, "h3");
  ASSERT_EQ(::kill(h3.daemon.pid, 0), 0);
  common::CommandResult killed = Tool({"kill-host", "h3"});
  EXPECT_EQ(killed.exit_code, 0) << killed.stderr_text;
  EXPECT_THAT(killed.stdout_text, HasSubstr("jailover-agent"));
  EXPECT_TRUE(testing::WaitUntil([&] { return ::kill(h3.daemon.pid, 0) != 0; }, absl::Seconds(5)));
  EXPECT_THAT((*lab)->Pids("h3"), IsEmpty());
  absl::StatusOr<bool> h3_link = (*lab)->LinkIsUp("h3");
  ASSERT_TRUE(h3_link.ok()) << h3_link.status();
  EXPECT_FALSE(*h3_link);
  EXPECT_TRUE(lab::ReadLabState(state_file_)->hosts[4].killed);
  // The coordinator notices: h3 is no longer READY.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        absl::StatusOr<common::CommandResult> now = (*lab)->Run(
            "c1", lab::CtlArgv(*state, state->coordinator, {"-o", "json", "host", "get", "h3"}));
        return now.ok() && now->ok() &&
               now->stdout_text.find("HOST_STATE_READY") == std::string::npos;
      },
      absl::Seconds(20)));
  status = Tool({"status"});
  EXPECT_THAT(status.stdout_text, HasSubstr("DEAD"));
  // A killed host's daemons are neither stopped nor started.
  for (const char* command : {"stop", "start"}) {
    common::CommandResult refused = Tool({command, "h3"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.stderr_text, HasSubstr("killed by kill-host"));
  }

  // partition h2 from ctl: no TCP between them, h2 still reaches s1.
  ASSERT_TRUE(CanConnect(**lab, "h2", "198.18.0.2", 7430));
  common::CommandResult cut = Tool({"partition", "h2", "from", "ctl"});
  EXPECT_EQ(cut.exit_code, 0) << cut.stderr_text;
  EXPECT_THAT(*(*lab)->BlockedAddresses("h2"), ElementsAre("198.18.0.2"));
  EXPECT_THAT(*(*lab)->BlockedAddresses("ctl"), ElementsAre("198.18.0.12"));
  EXPECT_FALSE(CanConnect(**lab, "h2", "198.18.0.2", 7430));
  EXPECT_FALSE(CanConnect(**lab, "ctl", "198.18.0.12", 7420));
  EXPECT_TRUE(CanConnect(**lab, "h2", "198.18.0.21", 7420));
  EXPECT_EQ(Tool({"partition", "h2", "to", "ctl"}).exit_code, 2);  // usage
  common::CommandResult healed = Tool({"heal", "h2"});
  EXPECT_EQ(healed.exit_code, 0) << healed.stderr_text;
  EXPECT_THAT(*(*lab)->BlockedAddresses("h2"), IsEmpty());
  EXPECT_THAT(*(*lab)->BlockedAddresses("ctl"), IsEmpty());
  EXPECT_TRUE(CanConnect(**lab, "h2", "198.18.0.2", 7430));

  // partition h1 (link down) and heal; heal h3 brings its link back only.
  EXPECT_EQ(Tool({"partition", "h1"}).exit_code, 0);
  EXPECT_FALSE(*(*lab)->LinkIsUp("h1"));
  EXPECT_EQ(Tool({"heal", "h1"}).exit_code, 0);
  EXPECT_TRUE(*(*lab)->LinkIsUp("h1"));
  common::CommandResult heal_h3 = Tool({"heal", "h3"});
  EXPECT_THAT(heal_h3.stdout_text, HasSubstr("stay dead"));
  // No lease proxies in this lab: nothing to delay with.
  common::CommandResult no_proxy = Tool({"delay", "h1", "100"});
  EXPECT_EQ(no_proxy.exit_code, 1);
  EXPECT_THAT(no_proxy.stderr_text, HasSubstr("--lease_proxy"));
  EXPECT_TRUE(*(*lab)->LinkIsUp("h3"));
  EXPECT_THAT((*lab)->Pids("h3"), IsEmpty());

  // A second up is refused while this lab lives.
  common::CommandResult again = Tool({"up"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.stderr_text, HasSubstr("already up"));

  // down with a stopped daemon (h2's agent) and a restarted one (ctl).
  EXPECT_EQ(Tool({"stop", "h2"}).exit_code, 0);
  lab->reset();  // attached: tears nothing down
  EXPECT_TRUE(std::filesystem::exists(state->dir));
  common::CommandResult down = Tool({"down"}, absl::Seconds(90));
  EXPECT_EQ(down.exit_code, 0) << down.stderr_text;
  EXPECT_THAT(down.stdout_text, HasSubstr("nothing left behind"));
  EXPECT_THAT(testing::LabLeftovers(state->prefix), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(state_file_));
  // Exited (a zombie until init reaps it, so wait for that).
  EXPECT_TRUE(
      testing::WaitUntil([&] { return ::kill(state->keeper_pid, 0) != 0; }, absl::Seconds(10)));
  common::CommandResult down_again = Tool({"down"});
  EXPECT_EQ(down_again.exit_code, 0);
  EXPECT_THAT(down_again.stdout_text, HasSubstr("no lab is up"));
}

TEST_F(LabToolTest, FailedUpLeavesNothing) {
  JAILOVER_REQUIRE_LAB();
  common::CommandResult up =
      Tool({"--coordinator_arg=--no_such_flag_for_the_test", "up"}, absl::Seconds(120));
  EXPECT_EQ(up.exit_code, 1);
  EXPECT_THAT(up.stderr_text, HasSubstr("jailover-coordinator in ctl exited"));
  EXPECT_THAT(up.stderr_text, HasSubstr("no_such_flag_for_the_test"));  // its log's tail
  std::smatch match;
  ASSERT_TRUE(std::regex_search(up.stdout_text, match, std::regex("network (jl[0-9]+)")))
      << up.stdout_text;
  const std::string prefix = match[1];
  EXPECT_THAT(testing::LabLeftovers(prefix), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(state_file_));
  EXPECT_EQ(Tool({"status"}).exit_code, 3);  // no lab
  EXPECT_THAT(Tool({"down"}).stdout_text, HasSubstr("no lab is up"));
}

TEST_F(LabToolTest, DownAfterTheKeeperCrashedSweepsTheLab) {
  JAILOVER_REQUIRE_LAB();
  ASSERT_EQ(Tool({"up"}, absl::Seconds(150)).exit_code, 0);
  // A stopped daemon changes nothing to the sweep.
  EXPECT_EQ(Tool({"stop", "h1"}).exit_code, 0);
  absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(::kill(state->keeper_pid, SIGKILL), 0);
  ASSERT_TRUE(
      testing::WaitUntil([&] { return ::kill(state->keeper_pid, 0) != 0; }, absl::Seconds(10)));
  // The daemons still run in the orphaned lab.
  EXPECT_THAT(testing::LabLeftovers(state->prefix), Contains(HasSubstr("jailover-agent")));
  common::CommandResult status = Tool({"status"});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_THAT(status.stderr_text, HasSubstr("keeper (pid"));
  common::CommandResult down = Tool({"down"}, absl::Seconds(90));
  EXPECT_EQ(down.exit_code, 0) << down.stderr_text;
  EXPECT_THAT(down.stdout_text, HasSubstr("nothing left behind"));
  EXPECT_THAT(testing::LabLeftovers(state->prefix), IsEmpty());
}

TEST_F(LabToolTest, ThreeCoordinatorsOnEtcdSurviveTheLeadersDeath) {
  JAILOVER_REQUIRE_LAB();
  if (access("/usr/bin/etcd", X_OK) != 0 || access("/usr/bin/etcdctl", X_OK) != 0) {
    if (getenv("CI") != nullptr) FAIL() << "no /usr/bin/etcd or /usr/bin/etcdctl";
    GTEST_SKIP() << "no /usr/bin/etcd or /usr/bin/etcdctl";
  }
  common::CommandResult up = Tool({"up", "--coordinators", "3", "--store", "etcd",
                                   "--first_coordinator_arg=--probe_timeout=29s"},
                                  absl::Seconds(180));
  ASSERT_EQ(up.exit_code, 0) << up.stderr_text;
  absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->store, "etcd");
  EXPECT_EQ(state->coordinator, "198.18.0.2:7430,198.18.0.3:7430,198.18.0.4:7430");
  ASSERT_EQ(state->hosts.size(), 8u);
  std::vector<testing::LabHost> hosts;
  for (const lab::LabToolHost& host : state->hosts) hosts.push_back({host.name, host.address});
  for (int i = 0; i < 3; ++i) {
    const lab::LabToolHost& ctl = state->hosts[i];
    EXPECT_EQ(ctl.name, "ctl" + std::to_string(i + 1));
    EXPECT_EQ(ctl.role, "coordinator");
    EXPECT_EQ(ctl.address, "198.18.0." + std::to_string(i + 2));
    EXPECT_EQ(::kill(ctl.daemon.pid, 0), 0) << ctl.name;
    EXPECT_EQ(::kill(ctl.etcd.pid, 0), 0) << ctl.name << "'s etcd";
    EXPECT_THAT(ctl.etcd.argv0, HasSubstr("etcd"));
    // --first_coordinator_arg reaches ctl1 only.
    absl::StatusOr<std::string> cmdline =
        common::ReadFileToString("/proc/" + std::to_string(ctl.daemon.pid) + "/cmdline", 1 << 16);
    ASSERT_TRUE(cmdline.ok()) << cmdline.status();
    EXPECT_EQ(cmdline->find("--probe_timeout=29s") != std::string::npos, i == 0) << ctl.name;
    EXPECT_NE(cmdline->find("--store=etcd"), std::string::npos);
  }
  absl::StatusOr<std::unique_ptr<testing::LabNetwork>> lab =
      testing::LabNetwork::Attach(state->prefix, hosts);
  ASSERT_TRUE(lab.ok()) << lab.status();
  const std::set<std::string> agents = {"s1", "h1", "h2", "h3"};

  // ctl1 leads, ctl2 and ctl3 stand by; the four agents are READY on ctl1.
  common::CommandResult status = Tool({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(Roles(status.stdout_text),
            (std::map<std::string, std::string>{
                {"ctl1", "leader"}, {"ctl2", "standby"}, {"ctl3", "standby"}}));
  EXPECT_THAT(status.stdout_text, HasSubstr("the leader ctl1"));
  EXPECT_THAT(status.stdout_text, HasSubstr("READY"));
  EXPECT_EQ(ReadyOn(**lab, *state, "198.18.0.2:7430"), agents);

  // ctl3's etcd member alone (its coordinator runs on), and back.
  common::CommandResult not_ctl = Tool({"stop", "h1", "--etcd_only"});
  EXPECT_EQ(not_ctl.exit_code, 1);
  EXPECT_THAT(not_ctl.stderr_text, HasSubstr("h1 has no etcd member"));
  common::CommandResult member = Tool({"stop", "ctl3", "--etcd_only"});
  EXPECT_EQ(member.exit_code, 0) << member.stderr_text;
  EXPECT_THAT(member.stdout_text, HasSubstr("etcd pid"));
  EXPECT_TRUE(Gone(state->hosts[2].etcd.pid));
  EXPECT_EQ(::kill(state->hosts[2].daemon.pid, 0), 0) << "ctl3's coordinator was stopped too";
  EXPECT_TRUE(Recorded("ctl3").etcd.stopped);
  EXPECT_FALSE(Recorded("ctl3").daemon.stopped);
  common::CommandResult again = Tool({"stop", "ctl3", "--etcd_only"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.stderr_text, HasSubstr("already stopped"));
  common::CommandResult member_back = Tool({"start", "ctl3"}, absl::Seconds(60));
  EXPECT_EQ(member_back.exit_code, 0) << member_back.stderr_text;
  EXPECT_FALSE(Recorded("ctl3").etcd.stopped);
  EXPECT_EQ(Recorded("ctl3").daemon.pid, state->hosts[2].daemon.pid);
  // The agents stay READY on whichever coordinator leads.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        for (const char* leader : {"198.18.0.2:7430", "198.18.0.3:7430", "198.18.0.4:7430"}) {
          if (ReadyOn(**lab, *state, leader) == agents) return true;
        }
        return false;
      },
      absl::Seconds(30), absl::Milliseconds(500)))
      << Tool({"status"}).stdout_text;
  state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();

  // The whole control plane stopped: every coordinator and etcd member
  // (SIGKILL), the agents run on.
  common::CommandResult stopped = Tool({"stop", "ctl1", "ctl2", "ctl3"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.stderr_text;
  for (int i = 0; i < 3; ++i) {
    const lab::LabToolHost& ctl = state->hosts[i];
    EXPECT_TRUE(Gone(ctl.daemon.pid)) << ctl.name;
    EXPECT_TRUE(Gone(ctl.etcd.pid)) << ctl.name << "'s etcd";
    const lab::LabToolHost now = Recorded(ctl.name);
    EXPECT_TRUE(now.daemon.stopped && now.etcd.stopped) << ctl.name;
    EXPECT_EQ(now.etcd.argv, ctl.etcd.argv) << ctl.name;
  }
  for (const lab::LabToolHost& host : state->hosts) {
    if (agents.count(host.name)) {
      EXPECT_TRUE(Running(host.daemon.pid)) << host.name;
    }
  }
  status = Tool({"status"}, absl::Seconds(60));
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(Roles(status.stdout_text), (std::map<std::string, std::string>{
                                           {"ctl1", "down"}, {"ctl2", "down"}, {"ctl3", "down"}}));
  EXPECT_THAT(status.stdout_text, ContainsRegex("ctl2 .* coordinator stopped +up +etcd stopped"));

  // ... and started again in one command: the etcd members first (they need
  // a quorum), then the coordinators, each with its first argv; one leads
  // and the four agents are READY on it.
  const absl::Time start_at = absl::Now();
  common::CommandResult started = Tool({"start", "ctl1", "ctl2", "ctl3"}, absl::Seconds(120));
  EXPECT_EQ(started.exit_code, 0) << started.stderr_text;
  EXPECT_THAT(started.stdout_text, HasSubstr(" leads"));
  EXPECT_LT(started.stdout_text.rfind("etcd started again"),
            started.stdout_text.find("jailover-coordinator started again"));
  const lab::LabState before = *state;
  state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();
  for (int i = 0; i < 3; ++i) {
    const lab::LabToolHost& ctl = state->hosts[i];
    EXPECT_TRUE(Running(ctl.daemon.pid) && Running(ctl.etcd.pid)) << ctl.name;
    EXPECT_NE(ctl.daemon.pid, before.hosts[i].daemon.pid);
    EXPECT_EQ(Cmdline(ctl.daemon.pid), before.hosts[i].daemon.argv) << ctl.name;  // ctl1's flag too
    EXPECT_EQ(Cmdline(ctl.etcd.pid), before.hosts[i].etcd.argv) << ctl.name;
  }
  std::string first_leader;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        for (int i = 0; i < 3; ++i) {
          if (Leads(**lab, state->hosts[i].address)) first_leader = state->hosts[i].name;
        }
        return !first_leader.empty();
      },
      absl::Seconds(10)))
      << "no coordinator leads after start";
  int dead = 0;
  for (int i = 0; i < 3; ++i) {
    if (state->hosts[i].name == first_leader) dead = i;
  }
  const lab::LabToolHost& doomed = state->hosts[dead];
  std::set<std::string> ready;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        ready = ReadyOn(**lab, *state, doomed.address + ":7430", start_at);
        return ready == agents;
      },
      absl::Seconds(60)))
      << "READY on " << doomed.name << ": " << ready.size();
  std::cout << doomed.name << " leads, agents READY, " << absl::Now() - start_at
            << " after start\n";

  // The leader's machine dies: its coordinator and its etcd member.
  std::map<std::string, size_t> log_sizes;  // the agents' logs from here on
  for (const lab::LabToolHost& host : state->hosts) {
    if (agents.count(host.name))
      log_sizes[host.name] = testing::ReadFileOrEmpty(host.daemon.log).size();
  }
  common::CommandResult killed = Tool({"kill-host", doomed.name});
  const absl::Time killed_at = absl::Now();
  EXPECT_EQ(killed.exit_code, 0) << killed.stderr_text;
  EXPECT_THAT(killed.stdout_text, HasSubstr("jailover-coordinator"));
  EXPECT_THAT(killed.stdout_text, HasSubstr("etcd"));
  EXPECT_TRUE(Gone(doomed.daemon.pid));
  EXPECT_TRUE(Gone(doomed.etcd.pid));

  // A standby takes over within ~10 s.
  std::string leader, new_leader, standby;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        for (int i = 0; i < 3; ++i) {
          if (i != dead && Leads(**lab, state->hosts[i].address)) {
            leader = state->hosts[i].address;
            new_leader = state->hosts[i].name;
          }
        }
        return !leader.empty();
      },
      absl::Seconds(10)))
      << "no standby took over";
  std::cout << "new leader " << new_leader << " after " << absl::Now() - killed_at << "\n";
  for (int i = 0; i < 3; ++i) {
    if (i != dead && state->hosts[i].name != new_leader) standby = state->hosts[i].name;
  }

  // The agents stay READY on the new leader: none fenced itself.
  if (!leader.empty()) {
    EXPECT_TRUE(testing::WaitUntil(
        [&] {
          ready = ReadyOn(**lab, *state, leader + ":7430");
          return ready == agents;
        },
        absl::Seconds(10)))
        << "READY on " << new_leader << ": " << ready.size();
    // And still READY a whole lease ttl later: every agent heartbeats to
    // the new leader (a restored host is READY until its lease runs out).
    absl::SleepFor(absl::Seconds(3));
    EXPECT_EQ(ReadyOn(**lab, *state, leader + ":7430"), agents);
  }
  for (const lab::LabToolHost& host : state->hosts) {
    if (!agents.count(host.name)) continue;
    EXPECT_EQ(::kill(host.daemon.pid, 0), 0) << host.name;
    absl::StatusOr<std::string> log = common::ReadFileToString(host.daemon.log, 64 << 20);
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ(log->find("SELF-FENCING", log_sizes[host.name]), std::string::npos)
        << host.name << " fenced itself";
  }
  status = Tool({"status"}, absl::Seconds(60));
  EXPECT_EQ(status.exit_code, 0);
  std::map<std::string, std::string> roles = Roles(status.stdout_text);
  EXPECT_EQ(roles[doomed.name], "down");
  EXPECT_EQ(roles[new_leader], "leader");
  EXPECT_EQ(roles[standby], "standby");
  EXPECT_THAT(status.stdout_text, HasSubstr("the leader " + new_leader));

  if (HasFailure()) {
    // What the coordinators and an agent said, before `down` removes it.
    for (const lab::LabToolHost& host : state->hosts) {
      if (host.role != "coordinator" && host.name != "h1") continue;
      absl::StatusOr<std::string> log = common::ReadFileToString(host.daemon.log, 64 << 20);
      if (!log.ok()) continue;
      std::vector<std::string> lines = absl::StrSplit(*log, '\n', absl::SkipEmpty());
      std::cout << "--- end of " << host.daemon.log << "\n";
      for (size_t i = lines.size() > 45 ? lines.size() - 45 : 0; i < lines.size(); ++i) {
        std::cout << "  " << lines[i].substr(0, 300) << "\n";
      }
    }
  }
  lab->reset();
  common::CommandResult down = Tool({"down"}, absl::Seconds(90));
  EXPECT_EQ(down.exit_code, 0) << down.stderr_text;
  EXPECT_THAT(down.stdout_text, HasSubstr("nothing left behind"));
  EXPECT_THAT(testing::LabLeftovers(state->prefix), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(state_file_));
  EXPECT_FALSE(std::filesystem::exists(state->dir));
  for (const lab::LabToolHost& host : state->hosts) {
    for (pid_t pid : {host.daemon.pid, host.etcd.pid}) {
      if (pid <= 0) continue;
      EXPECT_TRUE(testing::WaitUntil([&] { return ::kill(pid, 0) != 0; }, absl::Seconds(10)))
          << host.name << " pid " << pid;
    }
  }
}

// The process state letter of `pid` (/proc/PID/stat: "T" when stopped).
char ProcessState(pid_t pid) {
  const std::string stat = testing::ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

TEST_F(LabToolTest, TheChaosRunsFaultsAndTheirHeals) {
  JAILOVER_REQUIRE_LAB();
  common::CommandResult up = Tool({"--lease_proxy", "up"}, absl::Seconds(150));
  ASSERT_EQ(up.exit_code, 0) << up.stderr_text;
  absl::StatusOr<lab::LabState> state = lab::ReadLabState(state_file_);
  ASSERT_TRUE(state.ok()) << state.status();
  std::vector<testing::LabHost> hosts;
  for (const lab::LabToolHost& host : state->hosts) hosts.push_back({host.name, host.address});
  absl::StatusOr<std::unique_ptr<testing::LabNetwork>> attached =
      testing::LabNetwork::Attach(state->prefix, hosts);
  ASSERT_TRUE(attached.ok()) << attached.status();
  testing::LabNetwork& lab = **attached;

  // Random loss on one host, undone by heal; a bad percent changes nothing.
  common::CommandResult bad_loss = Tool({"loss", "h1", "0"});
  EXPECT_NE(bad_loss.exit_code, 0);
  EXPECT_THAT(bad_loss.stderr_text, HasSubstr("not in range 1 to 100"));
  EXPECT_EQ(*lab.Loss("h1"), 0);
  common::CommandResult loss = Tool({"loss", "h1", "20"});
  EXPECT_EQ(loss.exit_code, 0) << loss.stderr_text;
  EXPECT_EQ(*lab.Loss("h1"), 20);
  EXPECT_EQ(Tool({"loss", "h1", "30"}).exit_code, 0);  // replaces it
  EXPECT_EQ(*lab.Loss("h1"), 30);
  EXPECT_EQ(*lab.Loss("h2"), 0);

  // A CARP split of h2 (on the switch), one-way traffic from h1 to ctl.
  EXPECT_EQ(Tool({"carp-split", "h2"}).exit_code, 0);
  EXPECT_TRUE(*lab.CarpBlocked("h2"));
  EXPECT_FALSE(*lab.CarpBlocked("h1"));
  common::CommandResult no_from = Tool({"partition", "h1", "--one-way"});
  EXPECT_EQ(no_from.exit_code, 1);
  EXPECT_THAT(no_from.stderr_text, HasSubstr("needs `from X`"));
  EXPECT_EQ(Tool({"partition", "h1", "from", "ctl", "--one-way"}).exit_code, 0);
  EXPECT_THAT(*lab.BlockedAddresses("h1"), ::testing::ElementsAre("198.18.0.2"));
  EXPECT_THAT(*lab.BlockedAddresses("ctl"), IsEmpty());
  EXPECT_FALSE(CanConnect(lab, "h1", "198.18.0.2", 7430));
  EXPECT_EQ(Tool({"heal", "h1"}).exit_code, 0);
  EXPECT_EQ(Tool({"heal", "h2"}).exit_code, 0);
  EXPECT_EQ(*lab.Loss("h1"), 0);
  EXPECT_FALSE(*lab.CarpBlocked("h2"));
  EXPECT_THAT(*lab.BlockedAddresses("h1"), IsEmpty());
  EXPECT_TRUE(CanConnect(lab, "h1", "198.18.0.2", 7430));

  // The lease channel of h1 through ctl's lease proxy: delayed past the ttl
  // (3 s) h1 is no longer READY; healed, it is readmitted.
  const lab::LabToolHost ctl = Recorded("ctl");
  ASSERT_TRUE(Running(ctl.proxy.pid));
  EXPECT_THAT(Cmdline(Recorded("h1").daemon.pid), Contains("--coordinators=198.18.0.2:7451"));
  common::CommandResult no_agent = Tool({"delay", "c1", "100"});
  EXPECT_EQ(no_agent.exit_code, 1);
  EXPECT_THAT(no_agent.stderr_text, HasSubstr("runs no agent"));
  common::CommandResult too_much_jitter = Tool({"delay", "h1", "100", "--jitter", "200"});
  EXPECT_EQ(too_much_jitter.exit_code, 1);
  EXPECT_THAT(too_much_jitter.stderr_text, HasSubstr("jitter <= delay"));
  common::CommandResult delayed = Tool({"delay", "h1", "4000", "--jitter", "500"});
  EXPECT_EQ(delayed.exit_code, 0) << delayed.stderr_text;
  EXPECT_THAT(Tool({"status"}).stdout_text, HasSubstr("lease channel delayed 4000+-500 ms"));
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return absl::StrContains(testing::ReadFileOrEmpty(ctl.proxy.log),
                                 "h1: 4000 +-500 ms each way");
      },
      absl::Seconds(5)));
  const auto h1_state = [&] {
    absl::StatusOr<common::CommandResult> got = lab.Run(
        "c1", lab::CtlArgv(*state, state->coordinator, {"-o", "json", "host", "get", "h1"}));
    if (!got.ok()) return std::string();
    const nlohmann::json json = nlohmann::json::parse(got->stdout_text, nullptr, false);
    if (json.is_discarded() || !json.contains("host")) return std::string();
    return json["host"]["status"].value("state", std::string());
  };
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        const std::string now = h1_state();
        return absl::StartsWith(now, "HOST_STATE_") && now != "HOST_STATE_READY";
      },
      absl::Seconds(20), absl::Milliseconds(200)))
      << h1_state();
  EXPECT_EQ(Tool({"heal", "h1"}).exit_code, 0);
  EXPECT_THAT(Tool({"status"}).stdout_text, ::testing::Not(HasSubstr("lease channel delayed")));
  EXPECT_TRUE(testing::WaitUntil([&] { return h1_state() == "HOST_STATE_READY"; },
                                 absl::Seconds(30), absl::Milliseconds(200)))
      << h1_state();

  // pause: the agent alone, or every process of the host; resume: all.
  const pid_t h2_agent = Recorded("h2").daemon.pid;
  EXPECT_EQ(Tool({"pause", "h2"}).exit_code, 0);
  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessState(h2_agent) == 'T'; }, absl::Seconds(5)));
  EXPECT_EQ(Tool({"resume", "h2"}).exit_code, 0);
  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessState(h2_agent) != 'T'; }, absl::Seconds(5)));
  EXPECT_EQ(Tool({"pause", "h3", "--all"}).exit_code, 0);
  const std::vector<pid_t> h3_pids = lab.Pids("h3");
  ASSERT_FALSE(h3_pids.empty());
  for (pid_t pid : h3_pids) {
    EXPECT_TRUE(testing::WaitUntil([&] { return ProcessState(pid) == 'T'; }, absl::Seconds(5)))
        << pid;
  }
  EXPECT_EQ(Tool({"resume", "h3"}).exit_code, 0);
  for (pid_t pid : h3_pids) {
    EXPECT_TRUE(testing::WaitUntil([&] { return ProcessState(pid) != 'T'; }, absl::Seconds(5)))
        << pid;
  }

  // revive: only a killed host; --fresh only a jail host.
  common::CommandResult alive = Tool({"revive", "h3"});
  EXPECT_EQ(alive.exit_code, 1);
  EXPECT_THAT(alive.stderr_text, HasSubstr("was not killed"));
  ASSERT_EQ(Tool({"kill-host", "s1"}).exit_code, 0);
  common::CommandResult storage = Tool({"revive", "s1", "--fresh"});
  EXPECT_EQ(storage.exit_code, 1);
  EXPECT_THAT(storage.stderr_text, HasSubstr("only a jail host can be replaced"));
  EXPECT_TRUE(Recorded("s1").killed);
  common::CommandResult rebooted = Tool({"revive", "s1"}, absl::Seconds(60));
  EXPECT_EQ(rebooted.exit_code, 0) << rebooted.stderr_text;
  EXPECT_FALSE(Recorded("s1").killed);
  EXPECT_TRUE(Running(Recorded("s1").daemon.pid));

  // A fresh h3: a new machine under the same name, its agent's state empty
  // (a file left there is gone), its link up, its agent READY again.
  const std::string state_dir = lab.host_dir("h3") + "/state";
  const std::string marker = state_dir + "/left-by-the-old-machine";
  ASSERT_TRUE(common::WriteFileAtomically(marker, "x").ok());
  ASSERT_EQ(Tool({"kill-host", "h3"}).exit_code, 0);
  EXPECT_FALSE(*lab.LinkIsUp("h3"));
  common::CommandResult fresh = Tool({"revive", "h3", "--fresh"}, absl::Seconds(60));
  EXPECT_EQ(fresh.exit_code, 0) << fresh.stderr_text;
  EXPECT_THAT(fresh.stdout_text, HasSubstr("h3 replaced by a fresh machine"));
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_TRUE(*lab.LinkIsUp("h3"));
  const lab::LabToolHost h3 = Recorded("h3");
  EXPECT_FALSE(h3.killed);
  EXPECT_FALSE(h3.daemon.stopped);
  EXPECT_TRUE(Running(h3.daemon.pid));
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return ReadyOn(lab, *state, state->coordinator).count("h3") == 1; },
      absl::Seconds(30)));
}

TEST_F(LabToolTest, CommandsWithoutALab) {
  JAILOVER_REQUIRE_LAB();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"kill-host", "h1"},
                                             {"stop", "h1"},
                                             {"start", "h1"},
                                             {"partition", "h1"},
                                             {"heal", "h1"},
                                             {"loss", "h1", "10"},
                                             {"carp-split", "h1"},
                                             {"pause", "h1"},
                                             {"resume", "h1"},
                                             {"revive", "h1"},
                                             {"exec", "c1", "--", "true"}}) {
    common::CommandResult result = Tool(args);
    EXPECT_EQ(result.exit_code, 1) << common::FormatArgv(args);
    EXPECT_THAT(result.stderr_text, HasSubstr("no lab is up"));
  }
}

}  // namespace
}  // namespace jailover

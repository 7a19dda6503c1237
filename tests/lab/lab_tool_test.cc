// The lab cluster tool (deploy/lab, jailover-lab) end to end, as a user
// runs it: up -> 4 READY hosts -> kill-host h3 (agent gone, link down) ->
// partition h2 from ctl and heal -> down -> nothing left; and a failed up
// (the coordinator refuses its flags) leaves nothing either; three
// coordinators on etcd: kill-host of the leader ctl1, another takes over and
// the agents stay READY on it. Each test uses
// its own state file, so a lab someone has up on this machine is not
// touched.
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

  // The hosts the coordinator at `endpoint` reports READY (asked from c1).
  std::set<std::string> ReadyOn(testing::LabNetwork& lab, const lab::LabState& state,
                                const std::string& endpoint) {
    absl::StatusOr<common::CommandResult> list =
        lab.Run("c1", {state.ctl_bin, "--coordinator", endpoint, "--insecure", "--timeout", "2",
                       "-o", "json", "host", "list"});
    std::set<std::string> ready;
    if (!list.ok() || !list->ok()) return ready;
    const nlohmann::json json = nlohmann::json::parse(list->stdout_text, nullptr, false);
    if (json.is_discarded() || !json.contains("hosts")) return ready;
    for (const auto& host : json.at("hosts")) {
      if (host["status"]["state"] == "HOST_STATE_READY") ready.insert(host["name"]);
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
      (*lab)->Run("c1", {state->ctl_bin, "--coordinator", state->coordinator, "--insecure", "-o",
                         "json", "host", "list"});
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
        absl::StatusOr<common::CommandResult> now =
            (*lab)->Run("c1", {state->ctl_bin, "--coordinator", state->coordinator, "--insecure",
                               "-o", "json", "host", "get", "h3"});
        return now.ok() && now->ok() &&
               now->stdout_text.find("HOST_STATE_READY") == std::string::npos;
      },
      absl::Seconds(20)));
  status = Tool({"status"});
  EXPECT_THAT(status.stdout_text, HasSubstr("DEAD"));

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
  EXPECT_TRUE(*(*lab)->LinkIsUp("h3"));
  EXPECT_THAT((*lab)->Pids("h3"), IsEmpty());

  // A second up is refused while this lab lives.
  common::CommandResult again = Tool({"up"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.stderr_text, HasSubstr("already up"));

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

  // The leader's machine dies: its coordinator and its etcd member.
  common::CommandResult killed = Tool({"kill-host", "ctl1"});
  const absl::Time killed_at = absl::Now();
  EXPECT_EQ(killed.exit_code, 0) << killed.stderr_text;
  EXPECT_THAT(killed.stdout_text, HasSubstr("jailover-coordinator"));
  EXPECT_THAT(killed.stdout_text, HasSubstr("etcd"));
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return ::kill(state->hosts[0].daemon.pid, 0) != 0 &&
               ::kill(state->hosts[0].etcd.pid, 0) != 0;
      },
      absl::Seconds(5)));

  // A standby takes over within ~10 s.
  std::string leader;
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        for (const std::string& address : {"198.18.0.3", "198.18.0.4"}) {
          if (Leads(**lab, address)) leader = address;
        }
        return !leader.empty();
      },
      absl::Seconds(10)))
      << "no standby took over";
  std::cout << "new leader " << leader << " after " << absl::Now() - killed_at << "\n";
  const std::string new_leader = leader == "198.18.0.4" ? "ctl3" : "ctl2";

  // The agents stay READY on the new leader: none fenced itself.
  std::set<std::string> ready;
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
    EXPECT_EQ(log->find("SELF-FENCING"), std::string::npos) << host.name << " fenced itself";
  }
  status = Tool({"status"}, absl::Seconds(60));
  EXPECT_EQ(status.exit_code, 0);
  std::map<std::string, std::string> roles = Roles(status.stdout_text);
  EXPECT_EQ(roles["ctl1"], "down");
  EXPECT_EQ(roles[new_leader], "leader");
  EXPECT_EQ(roles[new_leader == "ctl2" ? "ctl3" : "ctl2"], "standby");
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

TEST_F(LabToolTest, CommandsWithoutALab) {
  JAILOVER_REQUIRE_LAB();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"kill-host", "h1"},
                                             {"partition", "h1"},
                                             {"heal", "h1"},
                                             {"exec", "c1", "--", "true"}}) {
    common::CommandResult result = Tool(args);
    EXPECT_EQ(result.exit_code, 1) << common::FormatArgv(args);
    EXPECT_THAT(result.stderr_text, HasSubstr("no lab is up"));
  }
}

}  // namespace
}  // namespace jailover

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
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

  void SetUp() override {
    JAILOVER_REQUIRE_LAB();
    state_file_ = temp_.path() + "/lab.json";
    const common::CommandResult up = Lab({"up"}, absl::Seconds(120));
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
  JailView Jail() {
    const nlohmann::json j = CtlJson({"jail", "get", "web"});
    JailView v;
    if (!j.is_object() || !j.contains("jail")) return v;
    const nlohmann::json& status = j["jail"].value("status", nlohmann::json::object());
    v.phase = status.value("phase", "");
    v.host = status.value("host", "");
    const std::string epoch = status.value("epoch", "0");
    v.epoch = std::strtoull(epoch.c_str(), nullptr, 10);
    return v;
  }

  bool WaitForJail(const std::string& host, uint64_t epoch, absl::Duration timeout) {
    return testing::WaitUntil(
        [&] {
          const JailView v = Jail();
          return v.phase == "JAIL_PHASE_RUNNING" && v.host == host && v.epoch == epoch;
        },
        timeout, absl::Milliseconds(200));
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

  // Builds the sample image on s1 and applies image, VIP and jail.
  void ApplySampleJail() {
    const std::string image = state_.dir + "/s1/images/web.img";
    common::SubprocessCommandRunner runner;
    absl::StatusOr<common::CommandResult> made = runner.Run(
        {"/bin/bash", JAILOVER_SAMPLE_IMAGE_SCRIPT, image, "64", JAILOVER_APPLOG_SERVER_BIN},
        absl::Seconds(60));
    ASSERT_TRUE(made.ok() && made->exit_code == 0)
        << (made.ok() ? made->stdout_text + made->stderr_text : made.status().ToString());
    const std::string spec = temp_.path() + "/web.yaml";
    std::ofstream(spec) << "kind: Image\nname: web-img\nstorage_host: s1\npath: " << image
                        << "\nsize: 64M\nfilesystem: ext4\n---\n"
                        << "kind: Vip\nname: web-vip\naddress: " << kVip
                        << "/24\ninterface: eth0\nvhid: 10\npassword: s3cret\nadvbase: 1\n---\n"
                        << "kind: Jail\nname: web\nimage: web-img\nvip: web-vip\n"
                        << "placement:\n  preferred_host: h1\n  standbys: [h2, h3]\n"
                        << "spec:\n  exec_start: [\"/bin/jailover-applog-server\", \"--listen\", "
                           "\"0.0.0.0:"
                        << kServicePort << "\", \"--file\", \"/data/applog.txt\"]\n"
                        << "  health_port: " << kServicePort << "\n";
    const common::CommandResult applied = Ctl({"apply", "-f", spec});
    ASSERT_EQ(applied.exit_code, 0) << applied.stdout_text << applied.stderr_text;
    ASSERT_TRUE(WaitForJail("h1", 1, absl::Seconds(60))) << Ctl({"op", "list"}).stdout_text;
  }

  // The client in c1, appending until stopped; acknowledged ids in acked_.
  void StartClient() {
    acked_ = temp_.path() + "/acked.txt";
    absl::StatusOr<pid_t> pid = lab_->StartDetached(
        "c1",
        {JAILOVER_APPLOG_CLIENT_BIN, "write", "--target", absl::StrCat(kVip, ":", kServicePort),
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
    absl::StatusOr<common::CommandResult> checked =
        lab_->Run("c1",
                  {JAILOVER_APPLOG_CLIENT_BIN, "check", "--target",
                   absl::StrCat(kVip, ":", kServicePort), "--acked", acked_},
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
  pid_t client_pid_ = 0;
};

TEST_F(LabFailoverTest, KilledPrimaryFailsOverWithNoAcknowledgedRecordLost) {
  ASSERT_NO_FATAL_FAILURE(ApplySampleJail());
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_NO_FATAL_FAILURE(WaitForMoreAcks(30));

  const common::CommandResult killed = Lab({"kill-host", "h1"}, absl::Seconds(60));
  ASSERT_EQ(killed.exit_code, 0) << killed.stdout_text << killed.stderr_text;
  // The jail moves to a standby at the next epoch.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const JailView v = Jail();
        return v.phase == "JAIL_PHASE_RUNNING" && (v.host == "h2" || v.host == "h3") &&
               v.epoch == 2;
      },
      absl::Seconds(60), absl::Milliseconds(200)))
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

}  // namespace
}  // namespace jailover

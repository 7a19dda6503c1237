// LabClusterTest: the fixture of the lab tests that run the whole system for
// real — `jailover-lab up` (coordinator(s), storage agent s1, Linux-driver
// jail agents h1..h3, client c1), the sample append-log jail on a disk image
// served by s1 with h1 preferred and h2, h3 standbys, a client in c1 that
// appends through the VIP, and the checks: every acknowledged record present,
// and the records' writers (host@epoch) in order — no older writer after a
// newer one. The lab is torn down by `down` on success and failure alike and
// must leave nothing behind. Each test target that includes this defines the
// JAILOVER_*_BIN macros (tests/lab/CMakeLists.txt).
#pragma once

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
#include "absl/strings/numbers.h"
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

using ::testing::HasSubstr;

constexpr char kVip[] = "198.18.0.100";
constexpr int kServicePort = 7000;

class LabClusterTest : public ::testing::Test {
 protected:
  LabClusterTest() : temp_("lab_cluster_test") {}

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
    std::vector<std::string> argv = lab::CtlArgv(state_, state_.coordinator, args);
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

  // Stops the client and checks every acknowledged record through the VIP,
  // and that the records' writers (JAILOVER_HOST@JAILOVER_EPOCH of the jail
  // that stored them) are in order: no older writer after a newer one — no
  // record of the old host after the first record of the new one. Sets
  // writers_ ("writers in order: h1@1 (31 records), h2@2 (60 records)") and
  // longest_gap_ms_ (the client's longest wait between two acknowledgements).
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
    EXPECT_THAT(checked->stdout_text, HasSubstr("writers in order: "));
    std::cout << checked->stdout_text;
    writers_.clear();
    for (absl::string_view line : absl::StrSplit(checked->stdout_text, '\n')) {
      if (absl::StartsWith(line, "writers")) writers_ = std::string(line);
    }
    // "acknowledged N records, R retries, longest gap between acks G ms ..."
    const std::string log = testing::ReadFileOrEmpty(temp_.path() + "/client.log");
    const size_t at = log.rfind("longest gap between acks ");
    longest_gap_ms_ = -1;
    if (at != std::string::npos) {
      const size_t from = at + std::string("longest gap between acks ").size();
      (void)absl::SimpleAtoi(log.substr(from, log.find(' ', from) - from), &longest_gap_ms_);
    }
    std::cout << "client: longest gap between acknowledgements " << longest_gap_ms_ << " ms\n";
  }

  // GET /v1/jails/NAME/ready on `host`'s agent (port 7421), from c1: true
  // for 200 (busybox wget fails on any other status).
  bool ReadyOn(const std::string& host, const std::string& name = "web") {
    std::string address;
    for (const lab::LabToolHost& h : state_.hosts) {
      if (h.name == host) address = h.address;
    }
    absl::StatusOr<common::CommandResult> r =
        lab_->Run("c1",
                  {"/bin/busybox", "wget", "-q", "-O", "-",
                   absl::StrCat("http://", address, ":7421/v1/jails/", name, "/ready")},
                  absl::Seconds(10));
    return r.ok() && r->exit_code == 0;
  }

  // The events of `type` about `host`, as JSON objects, oldest first.
  std::vector<nlohmann::json> Events(const std::string& type, const std::string& host) {
    const std::string out =
        Ctl({"-o", "json", "events", "--host", host, "--type", type}).stdout_text;
    std::vector<nlohmann::json> events;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_object()) events.push_back(std::move(e));
    }
    return events;
  }

  // Every operation of jail `name`, newest first.
  std::vector<nlohmann::json> Operations(const std::string& name = "web") {
    const nlohmann::json ops = CtlJson({"op", "list", "--jail", name});
    std::vector<nlohmann::json> out;
    for (const nlohmann::json& op : ops.value("operations", nlohmann::json::array())) {
      out.push_back(op);
    }
    return out;
  }

  // The storage lease `host` reports for the image ("STORAGE_LEASE_STATE_...").
  std::string StorageLease(const std::string& host, const std::string& image = "web-img") {
    const nlohmann::json j = CtlJson({"host", "get", host});
    if (!j.is_object() || !j.contains("host")) return "";
    const nlohmann::json observed = j["host"]
                                        .value("status", nlohmann::json::object())
                                        .value("observed", nlohmann::json::object());
    for (const nlohmann::json& i : observed.value("imports", nlohmann::json::array())) {
      if (i.value("image", "") == image) return i.value("storageLease", "");
    }
    return "";
  }

  // The agent log of `host` (its daemon's log file).
  std::string AgentLog(const std::string& host) {
    for (const lab::LabToolHost& h : state_.hosts) {
      if (h.name == host) return testing::ReadFileOrEmpty(h.daemon.log);
    }
    return "";
  }

  testing::ScopedTempDir temp_;
  std::string state_file_;
  lab::LabState state_;
  std::unique_ptr<testing::LabNetwork> lab_;
  bool up_ = false;
  std::string acked_;
  std::string target_;
  pid_t client_pid_ = 0;
  std::string writers_;
  int64_t longest_gap_ms_ = -1;
};

}  // namespace jailover

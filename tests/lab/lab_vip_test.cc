// LinuxVipDriver with real ucarps in a lab of network namespaces: h1
// (advskew 0) and h2 (advskew 100) share VIP 198.18.0.100 (vhid 10, advbase
// 1); c1 is the client. h1 becomes MASTER and holds the address, c1 reaches
// the VIP through h1's MAC; h1 dies (cable pulled, every process killed) and
// h2 takes over within a bounded time, c1 now reaching the VIP through h2's
// MAC. Then Remove on both hosts leaves nothing: no ucarp, no address (h1's
// was left by its SIGKILLed ucarp: the driver deletes it), no files.
//
// The driver calls that must run inside a host (Prepare, Configure, Remove
// run ip and start ucarp in the host's namespaces) are DISABLED_ cases run
// there through LabNetwork::RunTestInHost. State and Watch only read files
// and /proc, so the parent test reads them directly.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/driver/linux/linux_vip_driver.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kVip[] = "198.18.0.100";
constexpr int kVhid = 10;
// CARP needs 3 * advbase to elect a MASTER; failover measured at ~4 s with
// deadratio 3 (linux-substrate.md). Generous bounds for a loaded machine.
constexpr absl::Duration kElection = absl::Seconds(20);

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

VipConfig Vip(int advskew) {
  VipConfig vip;
  vip.name = "web";
  vip.interface = "eth0";
  vip.address = kVip;
  vip.vhid = kVhid;
  vip.advbase = 1;
  vip.advskew = advskew;
  vip.password = "lab-s3cret";
  return vip;
}

LinuxDriverOptions HostOptions(const std::string& host_dir) {
  LinuxDriverOptions options;
  options.state_dir = host_dir + "/state";
  options.ucarp_deadratio = 3;
  return options;
}

// --- Steps run inside a host (JAILOVER_LAB_DIR, JAILOVER_LAB_HOST set). ---

TEST(LabVipHostStep, DISABLED_PrepareAndConfigure) {
  const std::string host_dir = Env("JAILOVER_LAB_DIR") + "/" + Env("JAILOVER_LAB_HOST");
  int advskew = -1;
  ASSERT_TRUE(absl::SimpleAtoi(Env("LAB_VIP_ADVSKEW"), &advskew));
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver driver(runner, clock, HostOptions(host_dir));
  absl::Status status = driver.Prepare();
  ASSERT_TRUE(status.ok()) << status;
  status = driver.Configure(Vip(advskew));
  ASSERT_TRUE(status.ok()) << status;
  // Idempotent: the same config again starts nothing new.
  status = driver.Configure(Vip(advskew));
  ASSERT_TRUE(status.ok()) << status;
}

TEST(LabVipHostStep, DISABLED_SetAdvskew) {
  const std::string host_dir = Env("JAILOVER_LAB_DIR") + "/" + Env("JAILOVER_LAB_HOST");
  int advskew = -1;
  ASSERT_TRUE(absl::SimpleAtoi(Env("LAB_VIP_ADVSKEW"), &advskew));
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver driver(runner, clock, HostOptions(host_dir));
  const absl::Status status = driver.SetAdvskew(Vip(0), advskew);
  ASSERT_TRUE(status.ok()) << status;
}

TEST(LabVipHostStep, DISABLED_Claim) {
  const std::string host_dir = Env("JAILOVER_LAB_DIR") + "/" + Env("JAILOVER_LAB_HOST");
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver driver(runner, clock, HostOptions(host_dir));
  const absl::Status status = driver.Claim(Vip(0));
  ASSERT_TRUE(status.ok()) << status;
}

TEST(LabVipHostStep, DISABLED_Remove) {
  const std::string host_dir = Env("JAILOVER_LAB_DIR") + "/" + Env("JAILOVER_LAB_HOST");
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver driver(runner, clock, HostOptions(host_dir));
  absl::Status status = driver.Remove(Vip(0));
  ASSERT_TRUE(status.ok()) << status;
  status = driver.Remove(Vip(0));  // idempotent
  ASSERT_TRUE(status.ok()) << status;
}

// --- The scenario. ---

class LabVipTest : public ::testing::Test {
 protected:
  void RunStep(const std::string& host, const std::string& step,
               const std::map<std::string, std::string>& env = {}) {
    absl::StatusOr<common::CommandResult> result =
        lab_->RunTestInHost(host, "LabVipHostStep.DISABLED_" + step, env);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->exit_code, 0) << step << " in " << host << ":\n"
                                    << result->stdout_text << result->stderr_text;
  }

  std::string Output(const std::string& host, const std::vector<std::string>& argv) {
    absl::StatusOr<common::CommandResult> result = lab_->Run(host, argv);
    if (!result.ok()) return "<" + std::string(result.status().message()) + ">";
    return result->stdout_text;
  }

  bool HasVip(const std::string& host) {
    return absl::StrContains(Output(host, {"ip", "-4", "-o", "addr", "show", "dev", "eth0"}),
                             absl::StrCat(" ", kVip, "/32 "));
  }

  // The MAC of `host`'s eth0 ("aa:bb:...").
  std::string Mac(const std::string& host) {
    absl::StatusOr<std::string> mac = lab_->Mac(host);
    return mac.ok() ? *mac : "<" + std::string(mac.status().message()) + ">";
  }

  // c1 pings the VIP once and its neighbour entry for the VIP has `mac`.
  bool ClientReachesVipVia(const std::string& mac) {
    absl::StatusOr<common::CommandResult> ping =
        lab_->Run("c1", {"busybox", "ping", "-c", "1", "-W", "1", kVip});
    if (!ping.ok() || !ping->ok()) return false;
    return absl::StrContains(ClientNeighbour(), absl::StrCat("lladdr ", mac));
  }

  // How often `host`'s ucarp logged becoming MASTER itself.
  int UcarpMasterLines(const std::string& host) {
    const std::string log = testing::ReadFileOrEmpty(lab_->host_dir(host) + "/state/vips/web.log");
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      lines += absl::StrContains(line, "Switching to state: MASTER") ? 1 : 0;
    }
    return lines;
  }

  // c1's neighbour entry for the VIP (no packet sent: only read).
  std::string ClientNeighbour() {
    absl::StatusOr<std::string> entry = lab_->Neighbour("c1", kVip);
    return entry.ok() ? *entry : "<" + std::string(entry.status().message()) + ">";
  }

  // A planned hand-over as a migration does it: `to`'s speaker at advskew
  // 0 (BACKUP: a tie with the live master), `from`'s restarted at
  // `from_advskew` (its address goes, it is silent), then `to` claims:
  // address, MASTER and gratuitous ARP at once, and its ucarp MASTER when
  // the claim returns (the claim's CARP advertisement, not its master-down
  // timer, which would take 3 s). c1's ARP entry moves to `to`'s MAC.
  void HandOver(const std::string& from, const std::string& to, int from_advskew,
                LinuxVipDriver& to_driver) {
    const std::string to_mac = Mac(to);
    RunStep(to, "SetAdvskew", {{"LAB_VIP_ADVSKEW", "0"}});
    RunStep(from, "SetAdvskew", {{"LAB_VIP_ADVSKEW", absl::StrCat(from_advskew)}});
    EXPECT_FALSE(HasVip(from));
    const int masters_before = UcarpMasterLines(to);
    RunStep(to, "Claim");
    EXPECT_TRUE(HasVip(to));
    EXPECT_EQ(Role(to_driver), CarpRole::kMaster);
    EXPECT_GT(UcarpMasterLines(to), masters_before)
        << to << "'s ucarp is not MASTER when the claim returns:\n"
        << testing::ReadFileOrEmpty(lab_->host_dir(to) + "/state/vips/web.log");
    EXPECT_TRUE(
        testing::WaitUntil([&] { return absl::StrContains(ClientNeighbour(), "lladdr " + to_mac); },
                           kElection, absl::Milliseconds(20)))
        << ClientNeighbour();
    EXPECT_TRUE(HasVip(to));
    EXPECT_FALSE(HasVip(from));
    EXPECT_EQ(Role(to_driver), CarpRole::kMaster);
    EXPECT_TRUE(ClientReachesVipVia(to_mac)) << ClientNeighbour();
  }

  CarpRole Role(LinuxVipDriver& driver) {
    absl::StatusOr<std::vector<CarpStatus>> state = driver.State("eth0");
    if (!state.ok() || state->size() != 1) return CarpRole::kInit;
    EXPECT_EQ((*state)[0].vhid, kVhid);
    return (*state)[0].role;
  }

  std::unique_ptr<testing::LabNetwork> lab_;
};

TEST_F(LabVipTest, UcarpFailoverMovesTheVipAndRemoveLeavesNothing) {
  JAILOVER_REQUIRE_LAB();
  auto lab = testing::LabNetwork::Create(
      {{"h1", "198.18.0.11"}, {"h2", "198.18.0.12"}, {"c1", "198.18.0.31"}});
  ASSERT_TRUE(lab.ok()) << lab.status();
  lab_ = *std::move(lab);

  RunStep("h1", "PrepareAndConfigure", {{"LAB_VIP_ADVSKEW", "0"}});
  RunStep("h2", "PrepareAndConfigure", {{"LAB_VIP_ADVSKEW", "100"}});

  // State and Watch read the hosts' files and /proc from here.
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver h1(runner, clock, HostOptions(lab_->host_dir("h1")));
  LinuxVipDriver h2(runner, clock, HostOptions(lab_->host_dir("h2")));
  absl::Mutex mu;
  std::vector<CarpTransition> h2_events;
  ASSERT_TRUE(h2.Watch([&](const CarpTransition& t) {
                  absl::MutexLock lock(&mu);
                  h2_events.push_back(t);
                }).ok());

  // h1 (advskew 0) wins the election; h2 stays BACKUP.
  ASSERT_TRUE(testing::WaitUntil([&] { return Role(h1) == CarpRole::kMaster; }, kElection,
                                 absl::Milliseconds(100)))
      << testing::ReadFileOrEmpty(lab_->host_dir("h1") + "/state/vips/web.log");
  EXPECT_TRUE(HasVip("h1"));
  EXPECT_EQ(Role(h2), CarpRole::kBackup);
  EXPECT_FALSE(HasVip("h2"));
  absl::StatusOr<std::vector<CarpStatus>> state = h1.State("eth0");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].advskew, 0);
  EXPECT_EQ((*state)[0].advbase, 1);

  // h1 demoted by a higher advskew (its ucarp restarted): h2 preempts;
  // back to 0: h1 preempts again (-P).
  RunStep("h1", "SetAdvskew", {{"LAB_VIP_ADVSKEW", "200"}});
  ASSERT_TRUE(testing::WaitUntil([&] { return Role(h2) == CarpRole::kMaster; }, kElection,
                                 absl::Milliseconds(100)));
  EXPECT_EQ(Role(h1), CarpRole::kBackup);
  EXPECT_FALSE(HasVip("h1"));
  RunStep("h1", "SetAdvskew", {{"LAB_VIP_ADVSKEW", "0"}});
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return Role(h1) == CarpRole::kMaster && Role(h2) == CarpRole::kBackup; }, kElection,
      absl::Milliseconds(100)));
  EXPECT_TRUE(HasVip("h1"));
  EXPECT_TRUE(testing::WaitUntil([&] { return !HasVip("h2"); }, absl::Seconds(5)));
  {
    // Watch saw h2 go MASTER and back to BACKUP (within its poll interval).
    EXPECT_TRUE(testing::WaitUntil(
        [&] {
          absl::MutexLock lock(&mu);
          return h2_events.size() >= 2 && h2_events.back().role == CarpRole::kBackup;
        },
        absl::Seconds(5)));
    absl::MutexLock lock(&mu);
    ASSERT_GE(h2_events.size(), 2u);
    EXPECT_EQ(h2_events[0].role, CarpRole::kMaster);
    EXPECT_EQ(h2_events.back().role, CarpRole::kBackup);
    h2_events.clear();
  }

  const std::string h1_mac = Mac("h1");
  const std::string h2_mac = Mac("h2");
  ASSERT_NE(h1_mac, h2_mac);
  EXPECT_TRUE(testing::WaitUntil([&] { return ClientReachesVipVia(h1_mac); }, kElection,
                                 absl::Milliseconds(200)))
      << Output("c1", {"ip", "neigh"});

  // Planned hand-overs h1 -> h2 and back (Claim), each moving c1 at once.
  ASSERT_NO_FATAL_FAILURE(HandOver("h1", "h2", 200, h2));
  EXPECT_EQ(Role(h1), CarpRole::kBackup);
  ASSERT_NO_FATAL_FAILURE(HandOver("h2", "h1", 100, h1));
  EXPECT_EQ(Role(h2), CarpRole::kBackup);
  {
    absl::MutexLock lock(&mu);
    h2_events.clear();
  }

  // h1 dies: cable pulled, every process in it killed (its ucarp gets no
  // chance to run the down script, so h1 keeps the address).
  const absl::Time died = absl::Now();
  ASSERT_TRUE(lab_->LinkDown("h1").ok());
  lab_->KillAll("h1");
  ASSERT_TRUE(testing::WaitUntil([&] { return Role(h2) == CarpRole::kMaster; }, kElection,
                                 absl::Milliseconds(50)))
      << testing::ReadFileOrEmpty(lab_->host_dir("h2") + "/state/vips/web.log");
  const absl::Duration takeover = absl::Now() - died;
  std::cout << "h2 MASTER " << absl::FormatDuration(takeover) << " after h1 died\n";
  EXPECT_LT(takeover, absl::Seconds(10));
  EXPECT_TRUE(HasVip("h2"));
  EXPECT_EQ(Role(h1), CarpRole::kInit);  // its ucarp is dead
  EXPECT_TRUE(HasVip("h1"));             // SIGKILL kept the VIP: only the cable saves us
  // c1's answer can only come from h2 now (h1's cable is out).
  EXPECT_TRUE(testing::WaitUntil([&] { return ClientReachesVipVia(h2_mac); }, kElection,
                                 absl::Milliseconds(200)))
      << Output("c1", {"ip", "neigh"});
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        absl::MutexLock lock(&mu);
        return !h2_events.empty();
      },
      absl::Seconds(5)));
  h2.StopWatching();
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(h2_events.back().role, CarpRole::kMaster);
    EXPECT_EQ(h2_events.back().vhid, kVhid);
    EXPECT_EQ(h2_events.back().interface, "eth0");
  }

  // Remove everywhere: h1's address (left by the killed ucarp) is deleted by
  // the driver, h2's ucarp stops.
  RunStep("h1", "Remove");
  RunStep("h2", "Remove");
  for (const std::string host : {"h1", "h2"}) {
    EXPECT_FALSE(HasVip(host)) << host;
    EXPECT_TRUE(lab_->Pids(host).empty()) << host << " still runs processes";
    EXPECT_FALSE(std::filesystem::exists(lab_->host_dir(host) + "/state/vips/web.run.json"));
    EXPECT_FALSE(std::filesystem::exists(lab_->host_dir(host) + "/state/vips/web.state"));
  }
  absl::StatusOr<std::vector<CarpStatus>> after = h2.State("eth0");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
}

// The failover's order: the old master (h1) gives the VIP up (restarted at
// a worse advskew: silent), and only about a second later the target (h2)
// gets its speaker at advskew 0 (a fresh ucarp, BACKUP) and claims. The
// other backup (h3, advskew 101) has counted CARP's master-down interval
// since h1's last advertisement, and h2's fresh speaker would count its
// own from its start, a second later: h3 would win and take the address
// from the host that runs the jail (the chaos run's etcd cycle 22: clients
// reset mid-read). The claim's advertisement makes h2's ucarp MASTER at
// once, so h3 keeps hearing a master and never takes over.
TEST_F(LabVipTest, AClaimedSpeakerAdvertisesAtOnceSoNoOtherBackupTakesOver) {
  JAILOVER_REQUIRE_LAB();
  auto lab = testing::LabNetwork::Create(
      {{"h1", "198.18.0.11"}, {"h2", "198.18.0.12"}, {"h3", "198.18.0.13"}, {"c1", "198.18.0.31"}});
  ASSERT_TRUE(lab.ok()) << lab.status();
  lab_ = *std::move(lab);
  RunStep("h1", "PrepareAndConfigure", {{"LAB_VIP_ADVSKEW", "0"}});
  RunStep("h2", "PrepareAndConfigure", {{"LAB_VIP_ADVSKEW", "100"}});
  RunStep("h3", "PrepareAndConfigure", {{"LAB_VIP_ADVSKEW", "101"}});
  common::SubprocessCommandRunner runner;
  common::RealClock clock;
  LinuxVipDriver h1(runner, clock, HostOptions(lab_->host_dir("h1")));
  LinuxVipDriver h2(runner, clock, HostOptions(lab_->host_dir("h2")));
  LinuxVipDriver h3(runner, clock, HostOptions(lab_->host_dir("h3")));
  ASSERT_TRUE(testing::WaitUntil([&] { return Role(h1) == CarpRole::kMaster; }, kElection,
                                 absl::Milliseconds(100)));
  ASSERT_EQ(UcarpMasterLines("h3"), 0);

  RunStep("h1", "SetAdvskew", {{"LAB_VIP_ADVSKEW", "200"}});
  absl::SleepFor(absl::Seconds(1));
  RunStep("h2", "SetAdvskew", {{"LAB_VIP_ADVSKEW", "0"}});
  RunStep("h2", "Claim");
  EXPECT_GT(UcarpMasterLines("h2"), 0)
      << testing::ReadFileOrEmpty(lab_->host_dir("h2") + "/state/vips/web.log");
  EXPECT_TRUE(HasVip("h2"));
  // Past every master-down timer that was running (h3's, h1's at 200, and
  // h2's own fresh one): h2 is master, nobody else ever was.
  absl::SleepFor(absl::Seconds(6));
  EXPECT_EQ(Role(h2), CarpRole::kMaster);
  EXPECT_TRUE(HasVip("h2"));
  EXPECT_EQ(UcarpMasterLines("h3"), 0)
      << testing::ReadFileOrEmpty(lab_->host_dir("h3") + "/state/vips/web.log");
  EXPECT_EQ(Role(h3), CarpRole::kBackup);
  EXPECT_FALSE(HasVip("h3"));
  EXPECT_EQ(Role(h1), CarpRole::kBackup);
  EXPECT_FALSE(HasVip("h1"));
  EXPECT_TRUE(ClientReachesVipVia(Mac("h2"))) << ClientNeighbour();
  for (const std::string host : {"h1", "h2", "h3"}) RunStep(host, "Remove");
}

}  // namespace
}  // namespace jailover::agent::linux_driver

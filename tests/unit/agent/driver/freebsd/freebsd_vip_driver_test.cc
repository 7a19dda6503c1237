// FreeBsdVipDriver against a scripted CommandRunner (the argv sequence is
// the contract with ifconfig/sysctl) and, for Watch, a real SOCK_SEQPACKET
// unix socket standing in for devd. Backoff waits run on a FakeClock.
#include "agent/driver/freebsd/freebsd_vip_driver.h"


#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/fake_devd.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(10);

const std::vector<std::string> kShow = {"ifconfig", "em0"};
const std::vector<std::string> kAdd = {"ifconfig", "em0",    "vhid", "10",
                                       "advbase",        "1",      "advskew", "100",
                                       "pass",           "s3cret", "alias", "10.0.0.50/32"};

constexpr char kHeader[] =
    "em0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500\n"
    "\tether 58:9c:fc:10:ff:c4\n"
    "\tinet 10.0.0.11 netmask 0xffffff00 broadcast 10.0.0.255\n";

// `ifconfig em0` with one CARP address (14.x format, with the peer line).
std::string IfconfigWith(const std::string& address, int vhid, int advbase, int advskew) {
  return absl::StrCat(kHeader, "\tinet ", address, " netmask 0xffffffff broadcast ", address,
                      " vhid ", vhid, "\n\tcarp: BACKUP vhid ", vhid, " advbase ", advbase,
                      " advskew ", advskew, "\n\t      peer 224.0.0.18 peer6 ff02::12\n",
                      "\tmedia: Ethernet autoselect (1000baseT <full-duplex>)\n");
}
std::string IfconfigWith(const std::string& address, int vhid, int advskew) {
  return IfconfigWith(address, vhid, 1, advskew);
}

VipConfig Vip() {
  VipConfig vip;
  vip.name = "web01";
  vip.interface = "em0";
  vip.address = "10.0.0.50";
  vip.vhid = 10;
  vip.advbase = 1;
  vip.advskew = 100;
  vip.password = "s3cret";
  return vip;
}

// Transitions delivered to the Watch callback.
class Recorder {
 public:
  std::function<void(const CarpTransition&)> Callback() {
    return [this](const CarpTransition& t) {
      absl::MutexLock lock(&mu_);
      got_.push_back(t);
    };
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return got_.size();
  }
  std::vector<CarpTransition> got() {
    absl::MutexLock lock(&mu_);
    return got_;
  }

 private:
  absl::Mutex mu_;
  std::vector<CarpTransition> got_ ABSL_GUARDED_BY(mu_);
};

class FreeBsdVipDriverTest : public ::testing::Test {
 protected:
  void TearDown() override { runner_.VerifyAllConsumed(); }

  // Polls `condition`, moving the FakeClock on a little between polls, so a
  // backoff wait in the watcher ends whenever it started.
  bool AdvanceUntil(const std::function<bool()>& condition) {
    return testing::WaitUntil(
        [&] {
          if (condition()) return true;
          clock_.Advance(absl::Milliseconds(250));
          return false;
        },
        kWait);
  }

  testing::FakeCommandRunner runner_;
  testing::FakeClock clock_;
  testing::ScopedTempDir dir_{"vipwatch"};
  FreeBsdDriverOptions options_ = [this] {
    FreeBsdDriverOptions options;
    options.devd_socket = dir_.path() + "/devd.seqpacket.pipe";
    return options;
  }();
  Recorder recorder_;  // outlives driver_, whose thread calls it
  FreeBsdVipDriver driver_{runner_, clock_, options_};
};

// ---------------------------------------------------------------------------
// Prepare.

TEST_F(FreeBsdVipDriverTest, PrepareTurnsPreemptionOn) {
  runner_.ExpectExit({"sysctl", "net.inet.carp.preempt=1"}, 0,
                     "net.inet.carp.preempt: 0 -> 1\n");
  EXPECT_TRUE(driver_.Prepare().ok());
}

TEST_F(FreeBsdVipDriverTest, PrepareWithoutCarpLoadedSaysSo) {
  runner_.ExpectExit({"sysctl", "net.inet.carp.preempt=1"}, 1, "",
                     "sysctl: unknown oid 'net.inet.carp.preempt'\n");
  const absl::Status status = driver_.Prepare();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("kldload carp"));
}

// ---------------------------------------------------------------------------
// Configure.

TEST_F(FreeBsdVipDriverTest, ConfigureAddsANewVhidWithThePasswordSecret) {
  runner_.ExpectExit(kShow, 0, absl::StrCat(kHeader, "\tstatus: active\n"));
  runner_.ExpectExit(kAdd, 0);
  ASSERT_TRUE(driver_.Configure(Vip()).ok());
  const std::vector<size_t> secret = runner_.last_options().secret_args;
  ASSERT_THAT(secret, ElementsAre(9u));
  EXPECT_EQ(runner_.calls().back()[secret[0]], "s3cret");
  EXPECT_THAT(runner_.options().front().secret_args, IsEmpty());
}

TEST_F(FreeBsdVipDriverTest, ConfigureFailureMasksThePassword) {
  runner_.ExpectExit(kShow, 0, kHeader);
  runner_.ExpectExit(kAdd, 1, "", "ifconfig: SIOCSVH: Invalid argument (key s3cret)\n");
  const absl::Status status = driver_.Configure(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("pass *** alias"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("SIOCSVH: Invalid argument"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("s3cret")));
}

TEST_F(FreeBsdVipDriverTest, ConfigureSameConfigIsANoOp) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 100));
  EXPECT_TRUE(driver_.Configure(Vip()).ok());
  EXPECT_EQ(runner_.calls().size(), 1u);
}

TEST_F(FreeBsdVipDriverTest, ConfigureAnotherAdvskewOnlyChangesTheSkew) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 200));
  runner_.ExpectExit({"ifconfig", "em0", "vhid", "10", "advskew", "100"}, 0);
  EXPECT_TRUE(driver_.Configure(Vip()).ok());
  EXPECT_THAT(runner_.last_options().secret_args, IsEmpty());
}

TEST_F(FreeBsdVipDriverTest, ConfigureAnotherAdvbaseSetsBoth) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 3, 100));
  runner_.ExpectExit(
      {"ifconfig", "em0", "vhid", "10", "advbase", "1", "advskew", "100"}, 0);
  EXPECT_TRUE(driver_.Configure(Vip()).ok());
}

TEST_F(FreeBsdVipDriverTest, ConfigureVhidCarryingAnotherAddressIsAConflict) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.99", 10, 100));
  const absl::Status status = driver_.Configure(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("vhid conflict"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("10.0.0.99"));
  EXPECT_EQ(runner_.calls().size(), 1u);
}

TEST_F(FreeBsdVipDriverTest, ConfigureAddressOnAnotherVhidIsRefused) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 7, 100));
  const absl::Status status = driver_.Configure(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("with vhid 7"));
}

TEST_F(FreeBsdVipDriverTest, ConfigureVhidWithoutAddressesAddsTheAddress) {
  runner_.ExpectExit(kShow, 0,
                     absl::StrCat(kHeader, "\tcarp: INIT vhid 10 advbase 1 advskew 0\n"));
  runner_.ExpectExit(kAdd, 0);
  EXPECT_TRUE(driver_.Configure(Vip()).ok());
}

TEST_F(FreeBsdVipDriverTest, ConfigureRefusesABadConfigBeforeRunningAnything) {
  VipConfig vip = Vip();
  vip.vhid = 0;
  EXPECT_EQ(driver_.Configure(vip).code(), absl::StatusCode::kInvalidArgument);
  vip = Vip();
  vip.password = "";
  EXPECT_EQ(driver_.Configure(vip).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(FreeBsdVipDriverTest, ConfigureOnAMissingInterfaceIsFailedPrecondition) {
  runner_.ExpectExit(kShow, 1, "", "ifconfig: interface em0 does not exist\n");
  const absl::Status status = driver_.Configure(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("vip web01: ifconfig em0: exit 1"));
}

// ---------------------------------------------------------------------------
// SetAdvskew.

TEST_F(FreeBsdVipDriverTest, SetAdvskewOnAMissingVhidIsFailedPrecondition) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.51", 11, 100));
  const absl::Status status = driver_.SetAdvskew(Vip(), 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("vhid 10 is not configured on em0"));
}

TEST_F(FreeBsdVipDriverTest, SetAdvskewChangesAndSkipsWhenEqual) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 100));
  runner_.ExpectExit({"ifconfig", "em0", "vhid", "10", "advskew", "0"}, 0);
  EXPECT_TRUE(driver_.SetAdvskew(Vip(), 0).ok());
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 0));
  EXPECT_TRUE(driver_.SetAdvskew(Vip(), 0).ok());
}

TEST_F(FreeBsdVipDriverTest, SetAdvskewRefusesAnotherVipsVhidAndBadValues) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.99", 10, 100));
  EXPECT_EQ(driver_.SetAdvskew(Vip(), 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(driver_.SetAdvskew(Vip(), 255).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_.SetAdvskew(Vip(), -1).code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Claim.

// `ifconfig em0` with the VIP on vhid 10 in `state`.
std::string IfconfigIn(const std::string& state) {
  std::string text = IfconfigWith("10.0.0.50", 10, 0);
  const size_t at = text.find("BACKUP");
  return text.replace(at, std::string("BACKUP").size(), state);
}

TEST_F(FreeBsdVipDriverTest, ClaimForcesABackupToMasterAndLeavesAMasterAlone) {
  runner_.ExpectExit(kShow, 0, IfconfigIn("BACKUP"));
  runner_.ExpectExit({"ifconfig", "em0", "vhid", "10", "state", "master"}, 0);
  const absl::Status claimed = driver_.Claim(Vip());
  EXPECT_TRUE(claimed.ok()) << claimed;
  runner_.ExpectExit(kShow, 0, IfconfigIn("MASTER"));
  EXPECT_TRUE(driver_.Claim(Vip()).ok());
}

TEST_F(FreeBsdVipDriverTest, ClaimRefusesInitMissingAndForeignVhids) {
  // carp(4) ignores a state change while INIT: said, not run.
  runner_.ExpectExit(kShow, 0, IfconfigIn("INIT"));
  const absl::Status init = driver_.Claim(Vip());
  EXPECT_EQ(init.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(init.message()), HasSubstr("is INIT"));
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.51", 11, 100));
  EXPECT_EQ(driver_.Claim(Vip()).code(), absl::StatusCode::kFailedPrecondition);
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.99", 10, 100));
  EXPECT_EQ(driver_.Claim(Vip()).code(), absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------
// Remove.

TEST_F(FreeBsdVipDriverTest, RemovePresentRunsIfconfigAlias) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 100));
  runner_.ExpectExit({"ifconfig", "em0", "inet", "10.0.0.50", "-alias"}, 0);
  EXPECT_TRUE(driver_.Remove(Vip()).ok());
}

TEST_F(FreeBsdVipDriverTest, RemoveAbsentIsOkWithoutChanges) {
  runner_.ExpectExit(kShow, 0, kHeader);
  EXPECT_TRUE(driver_.Remove(Vip()).ok());
  // The address under another vhid is not ours to remove.
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 7, 100));
  EXPECT_TRUE(driver_.Remove(Vip()).ok());
  // Nor is anything on an interface that is gone.
  runner_.ExpectExit(kShow, 1, "", "ifconfig: interface em0 does not exist\n");
  EXPECT_TRUE(driver_.Remove(Vip()).ok());
  EXPECT_EQ(runner_.calls().size(), 3u);
}

TEST_F(FreeBsdVipDriverTest, RemoveWithoutIfconfigIsAnErrorNotAnAbsentVip) {
  runner_.ExpectError(kShow, absl::NotFoundError("ifconfig: no such executable"));
  const absl::Status status = driver_.Remove(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no such executable"));
}

TEST_F(FreeBsdVipDriverTest, RemoveReportsAFailedIfconfig) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 100));
  runner_.ExpectExit({"ifconfig", "em0", "inet", "10.0.0.50", "-alias"}, 1, "",
                     "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n");
  EXPECT_EQ(driver_.Remove(Vip()).code(), absl::StatusCode::kFailedPrecondition);
}

// ---------------------------------------------------------------------------
// State.

TEST_F(FreeBsdVipDriverTest, StateParsesIfconfig) {
  runner_.ExpectExit(kShow, 0, IfconfigWith("10.0.0.50", 10, 100));
  auto state = driver_.State("em0");
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].interface, "em0");
  EXPECT_EQ((*state)[0].vhid, 10);
  EXPECT_EQ((*state)[0].role, CarpRole::kBackup);
  EXPECT_EQ((*state)[0].advskew, 100);
  EXPECT_THAT((*state)[0].addresses, ElementsAre("10.0.0.50"));
  EXPECT_EQ((*state)[0].peer, "224.0.0.18");
}

TEST_F(FreeBsdVipDriverTest, StateErrors) {
  runner_.ExpectExit(kShow, 0, absl::StrCat(kHeader, "\tcarp: MASTER vhid 1 adv"));
  EXPECT_EQ(driver_.State("em0").status().code(), absl::StatusCode::kInternal);
  runner_.ExpectExit(kShow, 1, "", "ifconfig: interface em0 does not exist\n");
  EXPECT_EQ(driver_.State("em0").status().code(), absl::StatusCode::kNotFound);
  runner_.ExpectError(kShow, absl::DeadlineExceededError("killed after 30s"));
  const absl::Status slow = driver_.State("em0").status();
  EXPECT_EQ(slow.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(slow.message()), HasSubstr("ifconfig em0: killed after 30s"));
  EXPECT_EQ(driver_.State("em0; reboot").status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Watch.

TEST_F(FreeBsdVipDriverTest, WatchDeliversCarpEventsOnlyAndReconnects) {
  testing::FakeDevd devd(options_.devd_socket);
  ASSERT_TRUE(devd.Listen());
  ASSERT_TRUE(driver_.Watch(recorder_.Callback()).ok());
  ASSERT_TRUE(devd.TryAccept(kWait));

  ASSERT_TRUE(devd.Send("!system=CARP subsystem=10@em0 type=MASTER"));
  ASSERT_TRUE(devd.Send("!system=IFNET subsystem=em0 type=LINK_UP\n"));
  ASSERT_TRUE(devd.Send("!system=CARP subsystem=999@em0 type=MASTER"));  // malformed: logged
  ASSERT_TRUE(testing::WaitUntil([&] { return recorder_.size() >= 1; }, kWait));
  // A marker after them: once it arrives, everything before it was handled.
  ASSERT_TRUE(devd.Send("!system=IFNET subsystem=em0 type=LINK_DOWN\n"
                        "!system=CARP subsystem=10@em0 type=BACKUP\n"));
  ASSERT_TRUE(testing::WaitUntil([&] { return recorder_.size() >= 2; }, kWait));
  std::vector<CarpTransition> got = recorder_.got();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].interface, "em0");
  EXPECT_EQ(got[0].vhid, 10);
  EXPECT_EQ(got[0].role, CarpRole::kMaster);
  EXPECT_EQ(got[0].time, clock_.WallNow());
  EXPECT_EQ(got[1].role, CarpRole::kBackup);

  // devd goes away: the driver reconnects after its (FakeClock) backoff.
  devd.CloseClient();
  ASSERT_TRUE(AdvanceUntil([&] { return devd.TryAccept(absl::Milliseconds(10)); }));
  ASSERT_TRUE(devd.Send("!system=CARP subsystem=10@em0 type=MASTER"));
  ASSERT_TRUE(testing::WaitUntil([&] { return recorder_.size() >= 3; }, kWait));
  EXPECT_EQ(recorder_.got()[2].role, CarpRole::kMaster);

  // StopWatching wakes the thread blocked on the connected socket.
  const absl::Time start = absl::Now();
  driver_.StopWatching();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(recorder_.size(), 3u);
}

TEST_F(FreeBsdVipDriverTest, WatchWithoutDevdReturnsOkAndConnectsLater) {
  ASSERT_TRUE(driver_.Watch(recorder_.Callback()).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return driver_.DevdConnectAttemptsForTest() >= 1; },
                                 kWait));
  testing::FakeDevd devd(options_.devd_socket);
  ASSERT_TRUE(devd.Listen());
  ASSERT_TRUE(AdvanceUntil([&] { return devd.TryAccept(absl::Milliseconds(10)); }));
  ASSERT_TRUE(devd.Send("!system=CARP subsystem=3@vlan10 type=INIT"));
  ASSERT_TRUE(testing::WaitUntil([&] { return recorder_.size() >= 1; }, kWait));
  // Counted before the watcher reads, so known by the time an event arrived.
  EXPECT_GE(driver_.DevdConnectAttemptsForTest(), 2);
  EXPECT_EQ(recorder_.got()[0].vhid, 3);
  EXPECT_EQ(recorder_.got()[0].interface, "vlan10");
  EXPECT_EQ(recorder_.got()[0].role, CarpRole::kInit);
}

TEST_F(FreeBsdVipDriverTest, StopWatchingWakesABackoffWaitPromptly) {
  // No devd: the first attempt fails and the watcher waits for a FakeClock
  // that never moves, so only StopWatching can end the wait.
  ASSERT_TRUE(driver_.Watch(recorder_.Callback()).ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return driver_.DevdConnectAttemptsForTest() >= 1; },
                                 kWait));
  const absl::Time start = absl::Now();
  driver_.StopWatching();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(driver_.DevdConnectAttemptsForTest(), 1);
  driver_.StopWatching();  // idempotent
}

TEST_F(FreeBsdVipDriverTest, WatchStateErrorsAndRestart) {
  EXPECT_EQ(driver_.Watch(nullptr).code(), absl::StatusCode::kInvalidArgument);
  driver_.StopWatching();  // not watching: no-op
  ASSERT_TRUE(driver_.Watch(recorder_.Callback()).ok());
  EXPECT_EQ(driver_.Watch(recorder_.Callback()).code(), absl::StatusCode::kFailedPrecondition);
  driver_.StopWatching();

  // Watching again after a stop works.
  testing::FakeDevd devd(options_.devd_socket);
  ASSERT_TRUE(devd.Listen());
  ASSERT_TRUE(driver_.Watch(recorder_.Callback()).ok());
  ASSERT_TRUE(devd.TryAccept(kWait));
  ASSERT_TRUE(devd.Send("!system=CARP subsystem=1@em0 type=MASTER"));
  ASSERT_TRUE(testing::WaitUntil([&] { return recorder_.size() >= 1; }, kWait));
}

TEST(FreeBsdVipDriverWatchTest, SocketPathThatDoesNotFitIsInvalid) {
  testing::FakeCommandRunner runner;
  testing::FakeClock clock;
  FreeBsdDriverOptions options;
  options.devd_socket = "/" + std::string(200, 'x');
  FreeBsdVipDriver driver(runner, clock, options);
  EXPECT_EQ(driver.Watch([](const CarpTransition&) {}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace jailover::agent::freebsd

// LinuxVipDriver against a scripted CommandRunner (the ucarp argv is the
// contract with ucarp), a fake /proc tree (the ucarps "running") and a
// FakeClock. Signals go to a test function that makes fake processes exit.
// The up/down scripts are checked as golden text and run for real with a
// fake `ip` first in PATH (no root needed).
#include "agent/driver/linux/linux_vip_driver.h"

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kToolPath[] = "/usr/sbin:/usr/bin:/sbin:/bin";

const std::vector<std::string> kSysctl = {"sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"};
const std::vector<std::string> kShowEth0 = {"ip", "-4", "-o", "addr", "show", "dev", "eth0"};
constexpr char kEth0Addresses[] =
    "2: eth0    inet 198.18.0.11/24 brd 198.18.0.255 scope global eth0\\       valid_lft "
    "forever preferred_lft forever\n";

// The golden scripts for tool_path kToolPath.
constexpr char kUpScript[] = R"sh(#!/bin/sh
# jailover ucarp up (becoming MASTER) script, written by the agent (LinuxVipDriver::Prepare); do not edit.
# ucarp runs it as: SCRIPT IFACE VIP STATE_FILE
PATH='/usr/sbin:/usr/bin:/sbin:/bin'
export PATH
umask 077
iface=$1
vip=$2
state=$3
# The driver has removed this VIP (or is removing it): leave it alone.
[ -e "$state" ] || exit 0
if ! out=$(ip addr add "$vip/32" dev "$iface" 2>&1); then
  # Already there (ucarp restarted while MASTER) is fine, nothing else is.
  if [ -z "$(ip -4 -o addr show dev "$iface" to "$vip/32")" ]; then
    echo "ucarp-up: ip addr add $vip/32 dev $iface: $out" >&2
    exit 1
  fi
fi
echo MASTER > "$state.tmp" && mv -f "$state.tmp" "$state"
)sh";

constexpr char kDownScript[] = R"sh(#!/bin/sh
# jailover ucarp down (becoming BACKUP, or exiting with -z) script, written by the agent (LinuxVipDriver::Prepare); do not edit.
# ucarp runs it as: SCRIPT IFACE VIP STATE_FILE
PATH='/usr/sbin:/usr/bin:/sbin:/bin'
export PATH
umask 077
iface=$1
vip=$2
state=$3
# BACKUP first: the role must never claim MASTER without the address.
if [ -e "$state" ]; then
  echo BACKUP > "$state.tmp" && mv -f "$state.tmp" "$state"
fi
if ! out=$(ip addr del "$vip/32" dev "$iface" 2>&1); then
  # Not there is fine; still there is not.
  if [ -n "$(ip -4 -o addr show dev "$iface" to "$vip/32")" ]; then
    echo "ucarp-down: ip addr del $vip/32 dev $iface: $out" >&2
    exit 1
  fi
fi
)sh";

VipConfig Vip() {
  VipConfig vip;
  vip.name = "web";
  vip.interface = "eth0";
  vip.address = "198.18.0.100";
  vip.vhid = 10;
  vip.advbase = 1;
  vip.advskew = 100;
  vip.password = "s3cret";
  return vip;
}

std::string ReadFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, 1 << 20);
  return text.ok() ? *text : "<" + std::string(text.status().message()) + ">";
}

class LinuxVipDriverTest : public ::testing::Test {
 protected:
  static LinuxDriverOptions MakeOptions(const std::string& dir) {
    LinuxDriverOptions options;
    options.state_dir = dir + "/state";
    options.proc_root = dir + "/proc";
    options.tool_path = kToolPath;
    options.ucarp_deadratio = 3;
    return options;
  }

  LinuxVipDriverTest() {
    std::filesystem::create_directories(options_.proc_root);
    driver_.SetSignalFunctionForTest([this](pid_t pid, int sig) {
      absl::MutexLock lock(&mu_);
      signals_.push_back({pid, sig});
      // A fake ucarp exits on SIGTERM (unless told to ignore it) and SIGKILL.
      if (sig == SIGKILL || (sig == SIGTERM && !ignore_term_)) {
        std::filesystem::remove_all(absl::StrCat(options_.proc_root, "/", pid));
      }
      return 0;
    });
    // Never a real packet from a unit test; a test that claims sets its own.
    driver_.SetAdvertiseFunctionForTest([this](const std::string&, const CarpAdvertisement&) {
      ADD_FAILURE() << "unexpected CARP advertisement";
      std::ofstream(Vips() + "/web.log", std::ios::app) << "Switching to state: MASTER\n";
      return absl::OkStatus();
    });
  }
  ~LinuxVipDriverTest() override { driver_.StopWatching(); }

  std::string Vips() const { return options_.state_dir + "/vips"; }
  std::string StateFile(const std::string& name = "web") const {
    return absl::StrCat(Vips(), "/", name, ".state");
  }

  // A running ucarp in the fake /proc with the given start time.
  void AddProcess(pid_t pid, uint64_t start_time, const std::vector<std::string>& argv) {
    const std::string dir = absl::StrCat(options_.proc_root, "/", pid);
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/stat") << pid << " (ucarp) S 1 " << pid << " " << pid
                                 << " 0 -1 4194560 177 0 0 0 0 0 0 0 20 0 1 0 " << start_time
                                 << " 3145728 200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 "
                                    "0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    std::ofstream(dir + "/status") << "Name:\tucarp\nNSpid:\t" << pid << "\n";
    std::string cmdline;
    for (const std::string& arg : argv) cmdline += arg + '\0';
    std::ofstream(dir + "/cmdline") << cmdline;
  }

  std::vector<std::string> UcarpArgv(const VipConfig& vip, const std::string& source,
                                     const std::string& name = "web") const {
    return {"ucarp",
            "-i",
            vip.interface,
            "-s",
            source,
            "-v",
            absl::StrCat(vip.vhid),
            "-o",
            Vips() + "/" + name + ".pass",
            "-a",
            vip.address,
            "-u",
            Vips() + "/ucarp-up",
            "-d",
            Vips() + "/ucarp-down",
            "-x",
            StateFile(name),
            "-b",
            absl::StrCat(vip.advbase),
            "-k",
            absl::StrCat(vip.advskew),
            "-r",
            "3",
            "-z",
            "-n",
            "-P"};
  }

  void Prepare() {
    runner_.ExpectExit(kSysctl, 0);
    ASSERT_TRUE(driver_.Prepare().ok());
  }

  // Configures `vip` from scratch as pid `pid` (start time 1000 + pid).
  void Start(const VipConfig& vip, pid_t pid, const std::string& name = "web") {
    runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
    runner_.ExpectDetached(UcarpArgv(vip, "198.18.0.11", name), pid);
    AddProcess(pid, 1000 + pid, UcarpArgv(vip, "198.18.0.11", name));
    const absl::Status status = driver_.Configure(vip);
    ASSERT_TRUE(status.ok()) << status;
  }

  std::vector<std::pair<pid_t, int>> signals() {
    absl::MutexLock lock(&mu_);
    return signals_;
  }

  testing::ScopedTempDir dir_{"linux_vip_driver_test"};
  const LinuxDriverOptions options_ = MakeOptions(dir_.path());
  testing::FakeCommandRunner runner_;
  testing::FakeClock clock_;
  LinuxVipDriver driver_{runner_, clock_, options_};
  absl::Mutex mu_;
  std::vector<std::pair<pid_t, int>> signals_ ABSL_GUARDED_BY(mu_);
  bool ignore_term_ = false;
};

TEST_F(LinuxVipDriverTest, PrepareWritesGoldenScriptsAndSetsNonlocalBind) {
  Prepare();
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(Vips() + "/ucarp-up"), kUpScript);
  EXPECT_EQ(ReadFile(Vips() + "/ucarp-down"), kDownScript);
  EXPECT_EQ(LinuxVipDriver::UpScript(kToolPath), kUpScript);
  EXPECT_EQ(LinuxVipDriver::DownScript(kToolPath), kDownScript);
  struct stat st;
  ASSERT_EQ(stat((Vips() + "/ucarp-up").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755);
  ASSERT_EQ(stat((Vips() + "/ucarp-down").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755);
  ASSERT_EQ(stat(Vips().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700);  // records hold passwords
  // Idempotent: a second Prepare only runs sysctl again.
  Prepare();
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(Vips() + "/ucarp-up"), kUpScript);
}

TEST_F(LinuxVipDriverTest, PrepareReportsSysctlFailure) {
  runner_.ExpectExit(kSysctl, 255, "", "sysctl: permission denied on key\n");
  const absl::Status status = driver_.Prepare();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("permission denied"));
}

TEST_F(LinuxVipDriverTest, RejectsBadConfigsAndChangesNothing) {
  Prepare();
  struct Case {
    const char* what;
    void (*mutate)(VipConfig&);
    const char* message;
  };
  const Case cases[] = {
      {"empty name", [](VipConfig& v) { v.name = ""; }, "vip name"},
      {"name with slash", [](VipConfig& v) { v.name = "a/b"; }, "vip name"},
      {"bad interface", [](VipConfig& v) { v.interface = "eth0;reboot"; }, "vip interface"},
      {"long interface", [](VipConfig& v) { v.interface = "abcdefghijklmnop"; }, "vip interface"},
      {"host name", [](VipConfig& v) { v.address = "www.example.com"; }, "vip address"},
      {"ipv6", [](VipConfig& v) { v.address = "fd00::1"; }, "IPv4"},
      {"prefix 24", [](VipConfig& v) { v.address = "198.18.0.100/24"; }, "/32"},
      {"vhid 0", [](VipConfig& v) { v.vhid = 0; }, "vhid"},
      {"vhid 256", [](VipConfig& v) { v.vhid = 256; }, "vhid"},
      {"advbase 0", [](VipConfig& v) { v.advbase = 0; }, "flaps"},
      {"advbase 256", [](VipConfig& v) { v.advbase = 256; }, "advbase"},
      {"advskew -1", [](VipConfig& v) { v.advskew = -1; }, "advskew"},
      {"advskew 255", [](VipConfig& v) { v.advskew = 255; }, "advskew"},
      {"no password", [](VipConfig& v) { v.password = ""; }, "password"},
      {"space in password", [](VipConfig& v) { v.password = "se cret"; }, "password"},
      {"control char", [](VipConfig& v) { v.password = "se\ncret"; }, "password"},
      {"long password", [](VipConfig& v) { v.password = std::string(20, 'x'); }, "password"},
  };
  for (const Case& c : cases) {
    VipConfig vip = Vip();
    vip.password = "Sup3rSecret";
    c.mutate(vip);
    const absl::Status status = driver_.Configure(vip);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.what;
    EXPECT_THAT(status.message(), Not(HasSubstr("Sup3rSecret"))) << c.what;
  }
  // Only Prepare's sysctl ran; no record, no state file.
  EXPECT_EQ(runner_.calls().size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(StateFile()));
  EXPECT_FALSE(std::filesystem::exists(Vips() + "/web.run.json"));
  // advskew of SetAdvskew is checked too.
  EXPECT_EQ(driver_.SetAdvskew(Vip(), 255).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxVipDriverTest, ConfigureStartsOneUcarpWithExactArgvAndThePasswordInAFile) {
  Prepare();
  VipConfig vip = Vip();
  vip.address = "198.18.0.100/32";  // accepted as the bare address
  VipConfig bare = Vip();
  Start(bare, 4242);
  // The /32 spelling is the same VIP: no second ucarp.
  const absl::Status again = driver_.Configure(vip);
  ASSERT_TRUE(again.ok()) << again;
  runner_.VerifyAllConsumed();
  EXPECT_EQ(runner_.calls().size(), 3u);  // sysctl, ip show, one ucarp

  const std::vector<common::DetachedOptions> detached = runner_.detached_options();
  ASSERT_EQ(detached.size(), 1u);
  // The password is in a file only root can read, never in argv.
  for (const std::string& arg : UcarpArgv(bare, "198.18.0.11")) EXPECT_NE(arg, "s3cret");
  EXPECT_EQ(ReadFile(Vips() + "/web.pass"), "s3cret");
  EXPECT_EQ(detached[0].log_path, Vips() + "/web.log");
  EXPECT_EQ(detached[0].env.at("PATH"), kToolPath);
  EXPECT_EQ(ReadFile(StateFile()), "BACKUP\n");
  EXPECT_THAT(ReadFile(Vips() + "/web.run.json"), HasSubstr("\"pid\": 4242"));
  EXPECT_THAT(signals(), IsEmpty());
}

TEST_F(LinuxVipDriverTest, ConfigureRefusesWithoutPrepareOrInterface) {
  EXPECT_EQ(driver_.Configure(Vip()).code(), absl::StatusCode::kFailedPrecondition);
  Prepare();
  runner_.ExpectExit(kShowEth0, 1, "", "Device \"eth0\" does not exist.\n");
  const absl::Status status = driver_.Configure(Vip());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("does not exist"));
  // An interface with only the VIP on it: no source address for ucarp.
  runner_.ExpectExit(kShowEth0, 0, "2: eth0    inet 198.18.0.100/32 scope global eth0\n");
  EXPECT_THAT(driver_.Configure(Vip()).message(), HasSubstr("no IPv4 address of this host"));
  // The VIP is this host's own address.
  runner_.ExpectExit(kShowEth0, 0, "2: eth0    inet 198.18.0.100/24 scope global eth0\n");
  EXPECT_THAT(driver_.Configure(Vip()).message(), HasSubstr("is an address of this host"));
  runner_.VerifyAllConsumed();
  EXPECT_TRUE(runner_.detached_options().empty());
}

TEST_F(LinuxVipDriverTest, ConfigureDeletesALeftoverAddressBeforeStarting) {
  Prepare();
  // A ucarp killed with SIGKILL left 198.18.0.100/32 behind.
  runner_.ExpectExit(kShowEth0, 0,
                     absl::StrCat(kEth0Addresses,
                                  "2: eth0    inet 198.18.0.100/32 scope global eth0\n"));
  runner_.ExpectExit({"ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"}, 0);
  runner_.ExpectDetached(UcarpArgv(Vip(), "198.18.0.11"), 4242);
  AddProcess(4242, 5, UcarpArgv(Vip(), "198.18.0.11"));
  ASSERT_TRUE(driver_.Configure(Vip()).ok());
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxVipDriverTest, ConflictsAreFailedPrecondition) {
  Prepare();
  Start(Vip(), 4242);
  VipConfig same_vhid = Vip();
  same_vhid.name = "db";
  same_vhid.address = "198.18.0.101";
  absl::Status status = driver_.Configure(same_vhid);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("vhid conflict"));
  VipConfig same_address = Vip();
  same_address.name = "db";
  same_address.vhid = 11;
  status = driver_.Configure(same_address);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("already vip web"));
  VipConfig moved = Vip();
  moved.address = "198.18.0.102";
  status = driver_.Configure(moved);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("remove it first"));
  runner_.VerifyAllConsumed();
  EXPECT_EQ(runner_.detached_options().size(), 1u);
  EXPECT_THAT(signals(), IsEmpty());
}

TEST_F(LinuxVipDriverTest, SetAdvskewRestartsUcarpWithNewSkew) {
  Prepare();
  Start(Vip(), 4242);
  // Same skew while running: nothing happens.
  ASSERT_TRUE(driver_.SetAdvskew(Vip(), 100).ok());
  EXPECT_THAT(signals(), IsEmpty());

  VipConfig demoted = Vip();
  demoted.advskew = 200;
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectDetached(UcarpArgv(demoted, "198.18.0.11"), 4343);
  AddProcess(4343, 77, UcarpArgv(demoted, "198.18.0.11"));
  const absl::Status status = driver_.SetAdvskew(Vip(), 200);
  ASSERT_TRUE(status.ok()) << status;
  runner_.VerifyAllConsumed();
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGTERM)));
  EXPECT_THAT(ReadFile(Vips() + "/web.run.json"), HasSubstr("\"advskew\": 200"));
  auto state = driver_.State("eth0");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].advskew, 200);

  // Configure with yet another advskew restarts too (as SetAdvskew).
  VipConfig back = Vip();
  back.advskew = 0;
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectDetached(UcarpArgv(back, "198.18.0.11"), 4444);
  AddProcess(4444, 78, UcarpArgv(back, "198.18.0.11"));
  ASSERT_TRUE(driver_.Configure(back).ok());
  runner_.VerifyAllConsumed();
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGTERM),
                                     std::make_pair(4343, SIGTERM)));
}

// A failover's promotion of the standby that CARP already made master
// (advskew 101 -> 0): ucarp reads -k only at start, but the address must not
// go for the restart (a second outage for the clients, issue 17). The old
// ucarp is killed without its down script and the new one starts holding it;
// a demotion or a promotion of a BACKUP releases first, as before.
TEST_F(LinuxVipDriverTest, PromotingAMasterKeepsItsAddressThroughTheRestart) {
  Prepare();
  VipConfig standby = Vip();
  standby.advskew = 101;
  Start(standby, 4242);
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "MASTER\n").ok());
  const std::string held =
      absl::StrCat(kEth0Addresses, "2: eth0    inet 198.18.0.100/32 scope global eth0\n");

  VipConfig master = Vip();
  master.advskew = 0;
  runner_.ExpectExit(kShowEth0, 0, held);  // no `ip addr del`
  runner_.ExpectDetached(UcarpArgv(master, "198.18.0.11"), 4343);
  AddProcess(4343, 77, UcarpArgv(master, "198.18.0.11"));
  absl::Status status = driver_.Configure(master);
  ASSERT_TRUE(status.ok()) << status;
  runner_.VerifyAllConsumed();
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGKILL)));
  EXPECT_EQ(ReadFile(StateFile()), "MASTER\n");
  auto state = driver_.State("eth0");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].role, CarpRole::kMaster);
  EXPECT_EQ((*state)[0].advskew, 0);

  // A demotion of the MASTER releases: SIGTERM (the down script), and what
  // is left of the address goes before the new ucarp starts as BACKUP.
  runner_.ExpectExit(kShowEth0, 0, held);
  runner_.ExpectExit({"ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"}, 0);
  runner_.ExpectDetached(UcarpArgv(Vip(), "198.18.0.11"), 4444);
  AddProcess(4444, 78, UcarpArgv(Vip(), "198.18.0.11"));
  status = driver_.SetAdvskew(master, 100);
  ASSERT_TRUE(status.ok()) << status;
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(StateFile()), "BACKUP\n");

  // A promotion of a BACKUP has nothing to keep: SIGTERM as any restart.
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectDetached(UcarpArgv(master, "198.18.0.11"), 4545);
  AddProcess(4545, 79, UcarpArgv(master, "198.18.0.11"));
  status = driver_.SetAdvskew(master, 0);
  ASSERT_TRUE(status.ok()) << status;
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(StateFile()), "BACKUP\n");
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGKILL), std::make_pair(4343, SIGTERM),
                                     std::make_pair(4444, SIGTERM)));
}

TEST_F(LinuxVipDriverTest, SetAdvskewOfUnknownVipFails) {
  Prepare();
  EXPECT_EQ(driver_.SetAdvskew(Vip(), 5).code(), absl::StatusCode::kFailedPrecondition);
  Start(Vip(), 4242);
  VipConfig other = Vip();
  other.vhid = 12;
  EXPECT_EQ(driver_.SetAdvskew(other, 5).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(signals(), IsEmpty());
}

TEST_F(LinuxVipDriverTest, DeadUcarpIsStartedAgain) {
  Prepare();
  Start(Vip(), 4242);
  // Same pid, other start time: the pid was reused; never signalled.
  AddProcess(4242, 1, {"sleep", "100"});
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectDetached(UcarpArgv(Vip(), "198.18.0.11"), 4545);
  AddProcess(4545, 9, UcarpArgv(Vip(), "198.18.0.11"));
  ASSERT_TRUE(driver_.Configure(Vip()).ok());
  runner_.VerifyAllConsumed();
  EXPECT_THAT(signals(), IsEmpty());
}

TEST_F(LinuxVipDriverTest, StateReadsStateFilesAndLiveness) {
  Prepare();
  Start(Vip(), 4242);
  VipConfig db = Vip();
  db.name = "db";
  db.address = "198.18.0.101";
  db.vhid = 7;
  db.advskew = 20;
  Start(db, 4343, "db");
  VipConfig mail = Vip();
  mail.name = "mail";
  mail.address = "198.18.0.102";
  mail.vhid = 30;
  Start(mail, 4444, "mail");
  ASSERT_TRUE(common::WriteFileAtomically(StateFile("web"), "MASTER\n").ok());
  // db stays BACKUP; mail's ucarp died (its state file still says MASTER).
  ASSERT_TRUE(common::WriteFileAtomically(StateFile("mail"), "MASTER\n").ok());
  std::filesystem::remove_all(options_.proc_root + "/4444");

  auto state = driver_.State("eth0");
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->size(), 3u);
  EXPECT_EQ((*state)[0].vhid, 7);
  EXPECT_EQ((*state)[0].role, CarpRole::kBackup);
  EXPECT_EQ((*state)[0].advskew, 20);
  EXPECT_THAT((*state)[0].addresses, ElementsAre("198.18.0.101"));
  EXPECT_EQ((*state)[1].vhid, 10);
  EXPECT_EQ((*state)[1].role, CarpRole::kMaster);
  EXPECT_EQ((*state)[1].advbase, 1);
  EXPECT_EQ((*state)[1].advskew, 100);
  EXPECT_EQ((*state)[1].interface, "eth0");
  EXPECT_EQ((*state)[2].vhid, 30);
  EXPECT_EQ((*state)[2].role, CarpRole::kInit);

  auto other = driver_.State("eth1");
  ASSERT_TRUE(other.ok());
  EXPECT_THAT(*other, IsEmpty());
  EXPECT_EQ(driver_.State("bad if").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LinuxVipDriverTest, WatchReportsTransitionsFromStateFiles) {
  Prepare();
  Start(Vip(), 4242);
  absl::Mutex mu;
  std::vector<CarpTransition> seen;
  ASSERT_TRUE(driver_
                  .Watch([&](const CarpTransition& t) {
                    absl::MutexLock lock(&mu);
                    seen.push_back(t);
                  })
                  .ok());
  EXPECT_EQ(driver_.Watch([](const CarpTransition&) {}).code(),
            absl::StatusCode::kFailedPrecondition);
  auto count = [&] {
    absl::MutexLock lock(&mu);
    return seen.size();
  };
  // What the up script does when ucarp becomes MASTER.
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "MASTER\n").ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return count() >= 1; }, kWait));
  // The ucarp dies: INIT.
  std::filesystem::remove_all(options_.proc_root + "/4242");
  ASSERT_TRUE(testing::WaitUntil([&] { return count() >= 2; }, kWait));
  driver_.StopWatching();
  driver_.StopWatching();  // idempotent
  absl::MutexLock lock(&mu);
  ASSERT_EQ(seen.size(), 2u);  // the BACKUP baseline was not reported
  EXPECT_EQ(seen[0].interface, "eth0");
  EXPECT_EQ(seen[0].vhid, 10);
  EXPECT_EQ(seen[0].role, CarpRole::kMaster);
  EXPECT_EQ(seen[0].time, clock_.WallNow());
  EXPECT_EQ(seen[1].role, CarpRole::kInit);
}

// With refresh_announcements (the agent's default), the watcher repeats the
// gratuitous ARP of every VIP that is MASTER here once per advbase: a client
// whose ARP entry followed another host during a CARP split comes back
// within advbase of the split's end (lab: LabFailoverTest.
// AfterACarpSplitHealsTheClientFollowsTheVipBack). Without it (the struct's
// default), nothing is announced however long the VIP is held.
TEST_F(LinuxVipDriverTest, WatchRepeatsTheAnnouncementOfAVipHeldHereEveryAdvbase) {
  Prepare();
  VipConfig slow = Vip();
  slow.advbase = 3;
  Start(slow, 4242);
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::string>> announced;
  absl::Status result = absl::OkStatus();
  auto announce = [&](const std::string& interface, const std::string& address) {
    absl::MutexLock lock(&mu);
    announced.emplace_back(interface, address);
    return result;
  };
  auto count = [&] {
    absl::MutexLock lock(&mu);
    return announced.size();
  };
  auto fail_with = [&](absl::Status status) {
    absl::MutexLock lock(&mu);
    result = std::move(status);
  };
  // The fixture's driver: refresh off.
  driver_.SetAnnounceFunctionForTest(announce);
  LinuxDriverOptions options = options_;
  options.refresh_announcements = true;
  LinuxVipDriver refreshing(runner_, clock_, options);
  refreshing.SetAnnounceFunctionForTest(announce);
  ASSERT_TRUE(driver_.Watch([](const CarpTransition&) {}).ok());
  ASSERT_TRUE(refreshing.Watch([](const CarpTransition&) {}).ok());
  // Several watch rounds (100 ms each, real time) with this much unchanged.
  auto settle = [] { absl::SleepFor(LinuxVipDriver::kWatchInterval * 4); };

  settle();
  EXPECT_EQ(count(), 0u) << "BACKUP: nothing to announce";
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "MASTER\n").ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return count() == 1; }, kWait));
  settle();
  EXPECT_EQ(count(), 1u) << "not again within advbase";
  clock_.Advance(absl::Seconds(2));
  settle();
  EXPECT_EQ(count(), 1u);
  clock_.Advance(absl::Seconds(1));  // advbase (3 s) since the first
  ASSERT_TRUE(testing::WaitUntil([&] { return count() == 2; }, kWait));
  // A failed announcement is retried after advbase, like any other.
  fail_with(absl::InternalError("sendto: Network is down"));
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(testing::WaitUntil([&] { return count() == 3; }, kWait));
  fail_with(absl::OkStatus());
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(testing::WaitUntil([&] { return count() == 4; }, kWait));
  // BACKUP: no more, however long.
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "BACKUP\n").ok());
  settle();
  clock_.Advance(absl::Seconds(30));
  settle();
  EXPECT_EQ(count(), 4u);
  // MASTER again: announced at once (the last one is forgotten).
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "MASTER\n").ok());
  ASSERT_TRUE(testing::WaitUntil([&] { return count() == 5; }, kWait));
  // Its ucarp dies (INIT): nothing announced for an address nobody keeps.
  std::filesystem::remove_all(options_.proc_root + "/4242");
  settle();
  clock_.Advance(absl::Seconds(30));
  settle();
  refreshing.StopWatching();
  driver_.StopWatching();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(announced.size(), 5u);
  for (const auto& [interface, address] : announced) {
    EXPECT_EQ(interface, "eth0");
    EXPECT_EQ(address, "198.18.0.100");
  }
}

TEST_F(LinuxVipDriverTest, RemoveStopsUcarpDeletesAddressAndFilesIdempotently) {
  Prepare();
  Start(Vip(), 4242);
  // ucarp ran its down script, but the driver checks anyway; here the
  // address is still there.
  runner_.ExpectExit(kShowEth0, 0,
                     absl::StrCat(kEth0Addresses,
                                  "2: eth0    inet 198.18.0.100/32 scope global eth0\n"));
  runner_.ExpectExit({"ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"}, 0);
  ASSERT_TRUE(driver_.Remove(Vip()).ok());
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGTERM)));
  EXPECT_FALSE(std::filesystem::exists(StateFile()));
  EXPECT_FALSE(std::filesystem::exists(Vips() + "/web.run.json"));
  EXPECT_FALSE(std::filesystem::exists(Vips() + "/web.log"));
  // Again: nothing to stop, the address is gone, nothing deleted.
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  ASSERT_TRUE(driver_.Remove(Vip()).ok());
  // Interface gone: still OK.
  runner_.ExpectExit(kShowEth0, 1, "", "Device \"eth0\" does not exist.\n");
  ASSERT_TRUE(driver_.Remove(Vip()).ok());
  runner_.VerifyAllConsumed();
  EXPECT_EQ(signals().size(), 1u);
  auto state = driver_.State("eth0");
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(*state, IsEmpty());
}

// The VIP guard's release: every VIP on record removed (each ucarp stopped,
// its files deleted), whatever the agent's state says; nothing left after.
TEST_F(LinuxVipDriverTest, RemoveAllRemovesEveryVipOnRecord) {
  Prepare();
  Start(Vip(), 4242);
  VipConfig db = Vip();
  db.name = "db";
  db.address = "198.18.0.101";
  db.vhid = 11;
  Start(db, 4343, "db");
  // Their down scripts deleted the addresses: the driver only checks.
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  absl::StatusOr<std::vector<std::string>> removed = driver_.RemoveAll();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, UnorderedElementsAre("web", "db"));
  EXPECT_THAT(signals(),
              UnorderedElementsAre(std::make_pair(4242, SIGTERM), std::make_pair(4343, SIGTERM)));
  EXPECT_FALSE(std::filesystem::exists(Vips() + "/web.run.json"));
  EXPECT_FALSE(std::filesystem::exists(Vips() + "/db.run.json"));
  runner_.VerifyAllConsumed();
  // Nothing on record: nothing to do.
  removed = driver_.RemoveAll();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, IsEmpty());
}

TEST_F(LinuxVipDriverTest, RemoveKillsAUcarpThatIgnoresTerm) {
  Prepare();
  Start(Vip(), 4242);
  ignore_term_ = true;
  std::thread advancer([&] {
    clock_.WaitForSleepers(1);
    clock_.Advance(LinuxVipDriver::kStopTimeout + absl::Seconds(1));
  });
  runner_.ExpectExit(kShowEth0, 0,
                     absl::StrCat(kEth0Addresses,
                                  "2: eth0    inet 198.18.0.100/32 scope global eth0\n"));
  runner_.ExpectExit({"ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"}, 0);
  const absl::Status status = driver_.Remove(Vip());
  advancer.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGTERM),
                                     std::make_pair(4242, SIGKILL)));
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxVipDriverTest, RemoveWithoutRecordDeletesOnlyAStrayVip) {
  Prepare();
  runner_.ExpectExit(kShowEth0, 0,
                     absl::StrCat(kEth0Addresses,
                                  "2: eth0    inet 198.18.0.100/32 scope global eth0\n"));
  runner_.ExpectExit({"ip", "addr", "del", "198.18.0.100/32", "dev", "eth0"}, 0);
  ASSERT_TRUE(driver_.Remove(Vip()).ok());
  // The host's own address is never deleted as a VIP.
  VipConfig own = Vip();
  own.address = "198.18.0.11";
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  ASSERT_TRUE(driver_.Remove(own).ok());
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxVipDriverTest, DemoteSendsSigusr2) {
  Prepare();
  EXPECT_EQ(driver_.Demote(Vip()).code(), absl::StatusCode::kFailedPrecondition);
  Start(Vip(), 4242);
  ASSERT_TRUE(driver_.Demote(Vip()).ok());
  EXPECT_THAT(signals(), ElementsAre(std::make_pair(4242, SIGUSR2)));
}

TEST_F(LinuxVipDriverTest, ClaimAddsTheAddressWritesMasterAndAnnouncesIt) {
  std::vector<std::pair<std::string, std::string>> announced;
  absl::Status announce_result = absl::OkStatus();
  driver_.SetAnnounceFunctionForTest([&](const std::string& interface, const std::string& address) {
    announced.emplace_back(interface, address);
    return announce_result;
  });
  // The fake ucarp switches to MASTER on the claim's advertisement and
  // logs it, as ucarp does.
  std::vector<CarpAdvertisement> advertised;
  driver_.SetAdvertiseFunctionForTest([&](const std::string& interface,
                                          const CarpAdvertisement& ad) {
    EXPECT_EQ(interface, "eth0");
    advertised.push_back(ad);
    std::ofstream(Vips() + "/web.log", std::ios::app) << "[WARNING] Switching to state: MASTER\n";
    return absl::OkStatus();
  });
  Prepare();
  // Not configured here: nothing runs.
  EXPECT_EQ(driver_.Claim(Vip()).code(), absl::StatusCode::kFailedPrecondition);
  Start(Vip(), 4242);
  VipConfig other = Vip();
  other.vhid = 12;
  EXPECT_EQ(driver_.Claim(other).code(), absl::StatusCode::kFailedPrecondition);
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(StateFile()), "BACKUP\n");

  // The address is not there: added, then the role, then the announcement.
  const std::vector<std::string> add = {"ip", "addr", "add", "198.18.0.100/32", "dev", "eth0"};
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectExit(add, 0);
  const absl::Status claimed = driver_.Claim(Vip());
  ASSERT_TRUE(claimed.ok()) << claimed;
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(StateFile()), "MASTER\n");
  EXPECT_THAT(announced,
              ElementsAre(std::make_pair(std::string("eth0"), std::string("198.18.0.100"))));
  // ucarp made MASTER by one advertisement a step slower than its own
  // advskew (100), from the VIP (ucarp ignores its own source address),
  // keyed with the VIP's password.
  ASSERT_EQ(advertised.size(), 1u);
  EXPECT_EQ(advertised[0].source, "198.18.0.100");
  EXPECT_EQ(advertised[0].address, "198.18.0.100");
  EXPECT_EQ(advertised[0].vhid, 10);
  EXPECT_EQ(advertised[0].advbase, 1);
  EXPECT_EQ(advertised[0].advskew, 101);
  EXPECT_EQ(advertised[0].password, "s3cret");
  auto state = driver_.State("eth0");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->size(), 1u);
  EXPECT_EQ((*state)[0].role, CarpRole::kMaster);
  // MASTER already (as after a restart that kept the address): no address,
  // no announcement; the advertisement still goes, so that ucarp speaks now.
  ASSERT_TRUE(driver_.Claim(Vip()).ok());
  runner_.VerifyAllConsumed();
  EXPECT_EQ(announced.size(), 1u);
  EXPECT_EQ(advertised.size(), 2u);
  // No signal ever reached ucarp.
  EXPECT_THAT(signals(), IsEmpty());

  // BACKUP again, with the address left in place (ucarp's up script may
  // have added it): not added twice; a failed announcement is no failure.
  ASSERT_TRUE(common::WriteFileAtomically(StateFile(), "BACKUP\n").ok());
  announce_result = absl::InternalError("sendto: no");
  runner_.ExpectExit(
      kShowEth0, 0,
      absl::StrCat(kEth0Addresses, "2: eth0    inet 198.18.0.100/32 scope global eth0\n"));
  ASSERT_TRUE(driver_.Claim(Vip()).ok());
  runner_.VerifyAllConsumed();
  EXPECT_EQ(ReadFile(StateFile()), "MASTER\n");
  EXPECT_EQ(announced.size(), 2u);
}

TEST_F(LinuxVipDriverTest, ClaimFailsWithoutUcarpOrWhenTheAddressCannotBeAdded) {
  int announced = 0;
  driver_.SetAnnounceFunctionForTest([&](const std::string&, const std::string&) {
    ++announced;
    return absl::OkStatus();
  });
  Prepare();
  Start(Vip(), 4242);
  runner_.ExpectExit(kShowEth0, 0, kEth0Addresses);
  runner_.ExpectExit({"ip", "addr", "add", "198.18.0.100/32", "dev", "eth0"}, 2, "",
                     "RTNETLINK answers: Operation not permitted");
  const absl::Status failed = driver_.Claim(Vip());
  EXPECT_EQ(failed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.message(), HasSubstr("Operation not permitted"));
  runner_.VerifyAllConsumed();
  // Never MASTER without the address.
  EXPECT_EQ(ReadFile(StateFile()), "BACKUP\n");
  EXPECT_EQ(announced, 0);

  // ucarp died: a claimed address would have nobody to keep it.
  std::filesystem::remove_all(options_.proc_root + "/4242");
  const absl::Status dead = driver_.Claim(Vip());
  EXPECT_EQ(dead.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dead.message(), HasSubstr("not running"));
  runner_.VerifyAllConsumed();
  EXPECT_EQ(announced, 0);
}

// The scripts run for real, with a fake `ip` first in PATH that logs its
// arguments and answers from files.
class ScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = dir_.path() + "/bin";
    std::filesystem::create_directories(bin_);
    // add/del exit with $dir/rc (default 0); show prints $dir/show.
    std::ofstream(bin_ + "/ip") << "#!/bin/sh\n"
                                << "d='" << dir_.path() << "'\n"
                                << "echo \"$*\" >> \"$d/ip.log\"\n"
                                << "case \" $* \" in\n"
                                << "  *' show '*) cat \"$d/show\" 2>/dev/null; exit 0 ;;\n"
                                << "esac\n"
                                << "[ -f \"$d/rc\" ] && { echo 'Error: from fake ip' >&2; exit "
                                   "$(cat \"$d/rc\"); }\n"
                                << "exit 0\n";
    ASSERT_EQ(chmod((bin_ + "/ip").c_str(), 0755), 0);
    const std::string path = bin_ + ":/usr/bin:/bin";
    std::ofstream(dir_.path() + "/up") << LinuxVipDriver::UpScript(path);
    std::ofstream(dir_.path() + "/down") << LinuxVipDriver::DownScript(path);
    state_ = dir_.path() + "/web.state";
  }
  common::CommandResult Run(const std::string& script) {
    absl::StatusOr<common::CommandResult> result = runner_.Run(
        {"/bin/sh", dir_.path() + "/" + script, "eth0", "198.18.0.100", state_}, kWait);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::CommandResult{};
  }
  void Write(const std::string& file, const std::string& text) {
    std::ofstream(dir_.path() + "/" + file) << text;
  }
  std::string IpLog() { return ReadFile(dir_.path() + "/ip.log"); }

  testing::ScopedTempDir dir_{"linux_vip_script_test"};
  common::SubprocessCommandRunner runner_;
  std::string bin_;
  std::string state_;
};

TEST_F(ScriptTest, UpAddsAddressThenWritesMaster) {
  Write("web.state", "BACKUP\n");
  EXPECT_EQ(Run("up").exit_code, 0);
  EXPECT_EQ(IpLog(), "addr add 198.18.0.100/32 dev eth0\n");
  EXPECT_EQ(ReadFile(state_), "MASTER\n");
  EXPECT_FALSE(std::filesystem::exists(state_ + ".tmp"));
}

TEST_F(ScriptTest, UpAcceptsAnExistingAddressButNotAFailure) {
  Write("web.state", "BACKUP\n");
  Write("rc", "2");
  Write("show", "2: eth0    inet 198.18.0.100/32 scope global eth0\n");
  EXPECT_EQ(Run("up").exit_code, 0);
  EXPECT_EQ(ReadFile(state_), "MASTER\n");
  // The add failed and the address is not there: no MASTER claimed.
  Write("web.state", "BACKUP\n");
  std::filesystem::remove(dir_.path() + "/show");
  const common::CommandResult failed = Run("up");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.stderr_text, HasSubstr("ucarp-up: ip addr add 198.18.0.100/32 dev eth0"));
  EXPECT_EQ(ReadFile(state_), "BACKUP\n");
}

TEST_F(ScriptTest, UpDoesNothingForARemovedVip) {
  EXPECT_EQ(Run("up").exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(state_));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/ip.log"));
}

TEST_F(ScriptTest, DownWritesBackupThenDeletesAddress) {
  Write("web.state", "MASTER\n");
  EXPECT_EQ(Run("down").exit_code, 0);
  EXPECT_EQ(IpLog(), "addr del 198.18.0.100/32 dev eth0\n");
  EXPECT_EQ(ReadFile(state_), "BACKUP\n");
  // Already gone: fine. Still there after a failed del: an error.
  Write("rc", "2");
  EXPECT_EQ(Run("down").exit_code, 0);
  Write("show", "2: eth0    inet 198.18.0.100/32 scope global eth0\n");
  EXPECT_EQ(Run("down").exit_code, 1);
  EXPECT_EQ(ReadFile(state_), "BACKUP\n");
}

}  // namespace
}  // namespace jailover::agent::linux_driver

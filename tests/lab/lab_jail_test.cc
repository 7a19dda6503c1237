// LinuxJailDriver for real (root): jails of a busybox-static root, started
// with unshare and jailover-jail-init inside a lab host (its network and
// mount namespaces, as the agent runs there). Each LabJailTest case runs one
// DISABLED_ case of LabJailInHost in host h1 through LabNetwork::RunTestInHost;
// the lab removes whatever a failing case leaves (it kills every process of
// the host's network namespace), and each case checks that a stopped jail
// leaves no process.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/driver/linux/linux_jail_driver.h"
#include "agent/driver/linux/proc_fs.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kBusybox[] = "/bin/busybox";
constexpr char kHost[] = "h1";

// Processes whose command line mentions `root` (unshare, the init: both get
// --root ROOT) or whose root directory is `root` (everything in the jail).
std::vector<pid_t> ProcessesOfRoot(const std::string& root) {
  std::vector<pid_t> found;
  absl::StatusOr<std::vector<pid_t>> pids = ListPids("/proc");
  if (!pids.ok()) return found;
  for (pid_t pid : *pids) {
    absl::StatusOr<ProcessInfo> info = ReadProcess("/proc", pid);
    if (!info.ok() || info->state == 'Z') continue;
    bool mentions = false;
    for (const std::string& arg : info->cmdline) mentions = mentions || arg == root;
    std::error_code ec;
    const fs::path dir = fs::read_symlink(absl::StrCat("/proc/", pid, "/root"), ec);
    if (mentions || (!ec && dir == root)) found.push_back(pid);
  }
  return found;
}

// A jail root from busybox-static: /bin/busybox and applet links, /proc,
// /tmp and a marker file that shows the jail sees this directory as /.
absl::Status BuildJailRoot(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root + "/bin", ec);
  if (ec) return absl::InternalError(absl::StrCat(root, ": ", ec.message()));
  for (const char* dir : {"/proc", "/tmp"}) fs::create_directories(root + dir, ec);
  fs::copy_file(kBusybox, root + "/bin/busybox", fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copy ", kBusybox, ": ", ec.message()));
  for (const char* applet :
       {"sh", "sleep", "hostname", "cat", "ls", "ps", "echo", "kill", "head", "wc"}) {
    fs::create_symlink("busybox", root + "/bin/" + applet, ec);
    if (ec && ec != std::errc::file_exists) {
      return absl::InternalError(absl::StrCat("link ", applet, ": ", ec.message()));
    }
  }
  std::ofstream(root + "/jail-root-marker") << "inside\n";
  return absl::OkStatus();
}

// The environment of a case running in a lab host; skips the case when it
// is run directly (it is DISABLED_ so a plain run does not pick it up).
#define JAILOVER_IN_LAB_HOST_OR_SKIP()                                         \
  do {                                                                         \
    if (std::getenv("JAILOVER_LAB_DIR") == nullptr) {                          \
      GTEST_SKIP() << "runs inside a lab host, started by a LabJailTest case"; \
    }                                                                          \
  } while (0)

class LabJailInHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("JAILOVER_LAB_DIR") == nullptr) return;
    const std::string host_dir = absl::StrCat(std::getenv("JAILOVER_LAB_DIR"), "/", kHost);
    options_.state_dir = host_dir + "/state";
    options_.jail_init_path = JAILOVER_JAIL_INIT_BIN;
    root_ = host_dir + "/jail-root";
    ASSERT_TRUE(BuildJailRoot(root_).ok());
    driver_ = std::make_unique<LinuxJailDriver>(runner_, clock_, options_);
  }

  void TearDown() override {
    if (driver_ == nullptr) return;
    // On failure: stop whatever the case left, so no process remains.
    absl::StatusOr<std::vector<JailInfo>> listed = driver_->List();
    if (listed.ok()) {
      for (const JailInfo& jail : *listed) (void)driver_->Stop(jail.name, absl::Seconds(1));
    }
    EXPECT_TRUE(
        testing::WaitUntil([&] { return ProcessesOfRoot(root_).empty(); }, absl::Seconds(10)))
        << "processes of the jail root left behind";
  }

  JailConfig Config(const std::string& name, std::vector<std::string> exec_start) const {
    JailConfig config;
    config.name = name;
    config.hostname = name + "-jail";
    config.path = root_;
    config.ip4_address = "198.18.0.100";
    config.exec_start = std::move(exec_start);
    config.env = {{"JAIL_MODE", "lab"}};
    return config;
  }

  std::string Exec(const std::string& name, const std::vector<std::string>& argv) {
    absl::StatusOr<common::CommandResult> result = driver_->Exec(name, argv, absl::Seconds(10));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return "";
    EXPECT_EQ(result->exit_code, 0) << result->stderr_text;
    return result->stdout_text;
  }

  LinuxDriverOptions options_;
  std::string root_;
  common::SubprocessCommandRunner runner_;
  common::RealClock clock_;
  std::unique_ptr<LinuxJailDriver> driver_;
};

TEST_F(LabJailInHost, DISABLED_StartListExecStop) {
  JAILOVER_IN_LAB_HOST_OR_SKIP();
  JailConfig config = Config("web01", {"/bin/sleep", "100000"});
  config.exec_stop = {"/bin/sh", "-c", "echo \"stop in $(hostname)\" > /tmp/exec-stop-ran"};
  ASSERT_TRUE(driver_->Define(config).ok());

  absl::StatusOr<JailInfo> started = driver_->Start("web01");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->hostname, "web01-jail");
  EXPECT_THAT(started->ip4_addresses, ElementsAre("198.18.0.100"));
  const pid_t init = static_cast<pid_t>(started->jid);
  absl::StatusOr<ProcessInfo> init_info = ReadProcess("/proc", init);
  ASSERT_TRUE(init_info.ok()) << init_info.status();
  EXPECT_EQ(init_info->nspid.back(), 1) << "jid must be the host pid of the jail's pid 1";
  EXPECT_EQ(init_info->cmdline[0], JAILOVER_JAIL_INIT_BIN);
  // Shares the host's network namespace, not its pid namespace.
  EXPECT_EQ(*NamespaceInode("/proc", init, "net"), *NamespaceInode("/proc", getpid(), "net"));
  EXPECT_NE(*NamespaceInode("/proc", init, "pid"), *NamespaceInode("/proc", getpid(), "pid"));

  absl::StatusOr<std::vector<JailInfo>> listed = driver_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "web01");
  EXPECT_EQ((*listed)[0].jid, started->jid);
  EXPECT_EQ(driver_->Start("web01").status().code(), absl::StatusCode::kAlreadyExists);

  // Inside: its own hostname, its own /proc with the init as pid 1, its
  // root as /, the config's environment.
  EXPECT_EQ(Exec("web01", {"hostname"}), "web01-jail\n");
  char host_name[256] = {};
  ASSERT_EQ(gethostname(host_name, sizeof(host_name) - 1), 0);
  EXPECT_NE(std::string(host_name), "web01-jail") << "the host's hostname must not change";
  EXPECT_THAT(Exec("web01", {"cat", "/proc/1/cmdline"}), HasSubstr("jailover-jail-init"));
  const std::string ps = Exec("web01", {"ps"});
  EXPECT_THAT(ps, HasSubstr("sleep 100000"));
  EXPECT_EQ(Exec("web01", {"cat", "/jail-root-marker"}), "inside\n");
  // A minimal /dev: the null device works, the host's disks are not there.
  EXPECT_EQ(Exec("web01", {"sh", "-c", "echo lost > /dev/null && head -c 4 /dev/zero | wc -c"}),
            "4\n");
  EXPECT_EQ(Exec("web01", {"sh", "-c", "ls /dev | wc -l"}), "5\n");
  EXPECT_THAT(Exec("web01", {"cat", "/proc/2/environ"}), HasSubstr("JAIL_MODE=lab"));
  absl::StatusOr<common::CommandResult> failing =
      driver_->Exec("web01", {"sh", "-c", "exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(failing.ok()) << failing.status();
  EXPECT_EQ(failing->exit_code, 3);

  const absl::Time began = absl::Now();
  absl::StatusOr<StopResult> stopped = driver_->Stop("web01", absl::Seconds(10));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->was_running);
  EXPECT_FALSE(stopped->killed) << "sleep dies of SIGTERM: no SIGKILL needed";
  EXPECT_LT(absl::Now() - began, absl::Seconds(5));
  std::ifstream ran(root_ + "/tmp/exec-stop-ran");
  std::string line;
  std::getline(ran, line);
  EXPECT_EQ(line, "stop in web01-jail") << "exec_stop must run inside the jail";

  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessesOfRoot(root_).empty(); }, absl::Seconds(5)));
  listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_EQ(driver_->Exec("web01", {"hostname"}, absl::Seconds(5)).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<StopResult> again = driver_->Stop("web01", absl::Seconds(1));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->was_running);
  EXPECT_TRUE(driver_->Undefine("web01").ok());
}

TEST_F(LabJailInHost, DISABLED_JailIgnoringSigtermIsKilledAfterGrace) {
  JAILOVER_IN_LAB_HOST_OR_SKIP();
  ASSERT_TRUE(
      driver_
          ->Define(Config("stubborn", {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"}))
          .ok());
  absl::StatusOr<JailInfo> started = driver_->Start("stubborn");
  ASSERT_TRUE(started.ok()) << started.status();
  // A process added from outside (Exec) dies with the jail too.
  common::DetachedOptions detached;
  detached.log_path = options_.state_dir + "/extra.log";
  absl::StatusOr<pid_t> extra = runner_.StartDetached(
      {"nsenter", "-t", absl::StrCat(started->jid), "--pid", "--mount", "--root", "--wd", "--",
       "/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"},
      detached);
  ASSERT_TRUE(extra.ok()) << extra.status();

  const absl::Time began = absl::Now();
  absl::StatusOr<StopResult> stopped = driver_->Stop("stubborn", absl::Seconds(1));
  const absl::Duration took = absl::Now() - began;
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->was_running);
  EXPECT_TRUE(stopped->killed);
  EXPECT_GE(took, absl::Seconds(1)) << "SIGKILL only after the grace";
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessesOfRoot(root_).empty(); }, absl::Seconds(5)))
      << "SIGKILL of the init must take every process of the jail";
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return !ReadProcess("/proc", *extra).ok() || ReadProcess("/proc", *extra)->state == 'Z';
      },
      absl::Seconds(5)));
  absl::StatusOr<std::vector<JailInfo>> listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_F(LabJailInHost, DISABLED_RestartedAgentFindsAndStopsTheJail) {
  JAILOVER_IN_LAB_HOST_OR_SKIP();
  ASSERT_TRUE(driver_->Define(Config("web02", {"/bin/sleep", "100000"})).ok());
  absl::StatusOr<JailInfo> started = driver_->Start("web02");
  ASSERT_TRUE(started.ok()) << started.status();

  // The agent restarts: a new driver over the same state directory.
  driver_ = std::make_unique<LinuxJailDriver>(runner_, clock_, options_);
  absl::StatusOr<std::vector<JailInfo>> listed = driver_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "web02");
  EXPECT_EQ((*listed)[0].jid, started->jid);
  EXPECT_EQ((*listed)[0].hostname, "web02-jail");
  EXPECT_EQ(Exec("web02", {"hostname"}), "web02-jail\n");
  EXPECT_EQ(driver_->Start("web02").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(driver_->Undefine("web02").code(), absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<StopResult> stopped = driver_->Stop("web02", absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_TRUE(stopped->was_running);
  EXPECT_FALSE(stopped->killed);
  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessesOfRoot(root_).empty(); }, absl::Seconds(5)));
  EXPECT_FALSE(fs::exists(options_.state_dir + "/jails/web02.run.json"));
}

TEST_F(LabJailInHost, DISABLED_CommandThatCannotRunFailsTheStart) {
  JAILOVER_IN_LAB_HOST_OR_SKIP();
  ASSERT_TRUE(driver_->Define(Config("broken", {"/bin/no-such-program"})).ok());
  absl::StatusOr<JailInfo> started = driver_->Start("broken");
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInternal) << started.status();
  EXPECT_THAT(started.status().message(),
              HasSubstr("jailover-jail-init: cannot run /bin/no-such-program"));
  absl::StatusOr<std::vector<JailInfo>> listed = driver_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_TRUE(testing::WaitUntil([&] { return ProcessesOfRoot(root_).empty(); }, absl::Seconds(5)));

  // A command that runs but gives up at once (found running, then gone).
  ASSERT_TRUE(
      driver_->Define(Config("quitter", {"/bin/sh", "-c", "sleep 0.03; echo quitting >&2; exit 1"}))
          .ok());
  started = driver_->Start("quitter");
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInternal) << started.status();
  EXPECT_THAT(started.status().message(), HasSubstr("quitting"));
  EXPECT_FALSE(fs::exists(options_.state_dir + "/jails/quitter.run.json"));

  // A root that is not there (image not mounted) is refused before unshare.
  JailConfig config = Config("unmounted", {"/bin/sleep", "1"});
  config.path = root_ + "-missing";
  ASSERT_TRUE(driver_->Define(config).ok());
  EXPECT_EQ(driver_->Start("unmounted").status().code(), absl::StatusCode::kFailedPrecondition);
}

// Runs each LabJailInHost case inside host h1 of one lab network.
class LabJailTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!testing::LabAvailable(&why)) return;
    absl::StatusOr<std::unique_ptr<testing::LabNetwork>> lab =
        testing::LabNetwork::Create({{kHost, "198.18.0.11"}});
    if (!lab.ok()) {
      create_error_ = new std::string(lab.status().ToString());
      return;
    }
    lab_ = lab->release();
  }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
    delete create_error_;
    create_error_ = nullptr;
  }

  void SetUp() override {
    std::string why;
    if (!testing::LabAvailable(&why)) GTEST_SKIP() << why;
    if (access(kBusybox, X_OK) != 0) GTEST_SKIP() << kBusybox << " (busybox-static) not found";
    ASSERT_EQ(create_error_, nullptr) << *create_error_;
    ASSERT_NE(lab_, nullptr);
  }

  void RunInHost(const std::string& test) {
    absl::StatusOr<common::CommandResult> run = lab_->RunTestInHost(kHost, "LabJailInHost." + test);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->exit_code, 0) << run->stdout_text << run->stderr_text;
    EXPECT_THAT(run->stdout_text, HasSubstr("[  PASSED  ] 1 test"))
        << run->stdout_text << run->stderr_text;
    EXPECT_THAT(lab_->Pids(kHost), IsEmpty()) << "a process was left in the host";
  }

  static testing::LabNetwork* lab_;
  static std::string* create_error_;
};

testing::LabNetwork* LabJailTest::lab_ = nullptr;
std::string* LabJailTest::create_error_ = nullptr;

TEST_F(LabJailTest, StartListExecStop) { RunInHost("DISABLED_StartListExecStop"); }

TEST_F(LabJailTest, JailIgnoringSigtermIsKilledAfterGrace) {
  RunInHost("DISABLED_JailIgnoringSigtermIsKilledAfterGrace");
}

TEST_F(LabJailTest, RestartedAgentFindsAndStopsTheJail) {
  RunInHost("DISABLED_RestartedAgentFindsAndStopsTheJail");
}

TEST_F(LabJailTest, CommandThatCannotRunFailsTheStart) {
  RunInHost("DISABLED_CommandThatCannotRunFailsTheStart");
}

}  // namespace
}  // namespace jailover::agent::linux_driver

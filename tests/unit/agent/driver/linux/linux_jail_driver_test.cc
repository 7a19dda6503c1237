// LinuxJailDriver without root: scripted commands (FakeCommandRunner), a fake
// /proc tree and a FakeClock. The pids of the fake tree are above the
// kernel's largest pid_max (2^22), so even a driver bug that signalled them
// could not reach a real process.
#include "agent/driver/linux/linux_jail_driver.h"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::linux_driver {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr pid_t kUnsharePid = 5000100;
constexpr pid_t kInitPid = 5000101;
constexpr uint64_t kInitStart = 777001;
constexpr char kInitPath[] = "/opt/jailover/libexec/jailover-jail-init";

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t Inode(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Advances a FakeClock while alive, so the driver's short waits (Start
// watches a new jail for a moment) pass without real sleeps.
class ClockPump {
 public:
  explicit ClockPump(testing::FakeClock& clock)
      : thread_([this, &clock] {
          while (!done_.load()) {
            clock.Advance(absl::Milliseconds(10));
            std::this_thread::yield();
          }
        }) {}
  ~ClockPump() {
    done_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class LinuxJailDriverTest : public ::testing::Test {
 protected:
  LinuxJailDriverTest() {
    std::filesystem::create_directories(options_.proc_root);
    std::filesystem::create_directories(root_);
  }

  // A process in the fake /proc.
  void AddProcess(pid_t pid, pid_t ppid, uint64_t start_time,
                  const std::vector<std::string>& cmdline, const std::vector<pid_t>& nspid,
                  char state = 'S') {
    const std::string dir = absl::StrCat(options_.proc_root, "/", pid);
    WriteFile(dir + "/stat", absl::StrCat(pid, " (proc name) ", std::string(1, state), " ", ppid,
                                          " 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 ", start_time,
                                          " 1000 100\n"));
    WriteFile(dir + "/status", absl::StrCat("Name:\tx\nState:\tS (sleeping)\nNSpid:\t",
                                            absl::StrJoin(nspid, "\t"), "\n"));
    WriteFile(dir + "/cmdline",
              absl::StrCat(absl::StrJoin(cmdline, std::string(1, '\0')), std::string(1, '\0')));
    // Stands for the nsfs inode of /proc/PID/ns/pid.
    WriteFile(dir + "/ns/pid", "");
  }

  // unshare and the jail's init below it, as after a successful start.
  void AddRunningJail(uint64_t init_start = kInitStart) {
    AddProcess(kUnsharePid, 1, init_start - 1, {"unshare", "--pid"}, {kUnsharePid});
    AddProcess(kInitPid, kUnsharePid, init_start, {kInitPath, "--hostname", "web01.example"},
               {kInitPid, 1});
  }

  JailConfig Config() const {
    JailConfig config;
    config.name = "web01";
    config.hostname = "web01.example";
    config.path = root_;
    config.ip4_address = "198.18.0.100";
    config.exec_start = {"/bin/sh", "/etc/rc", "start"};
    config.exec_stop = {"/bin/sh", "/etc/rc", "stop"};
    config.stop_timeout = absl::Seconds(7);
    config.env = {{"MODE", "prod"}};
    return config;
  }

  std::vector<std::string> UnshareArgv() const {
    return {"unshare",       "--pid",   "--fork", "--uts",   "--ipc",      "--mount",
            "--propagation", "private", "--",     kInitPath, "--hostname", "web01.example",
            "--root",        root_,     "--",     "/bin/sh", "/etc/rc",    "start"};
  }

  std::string JailFile(const std::string& file) const {
    return options_.state_dir + "/jails/" + file;
  }

  // Defines web01 and starts it against a fake /proc in which it runs.
  JailInfo DefineAndStart() {
    EXPECT_TRUE(driver_.Define(Config()).ok());
    AddRunningJail();
    runner_.ExpectDetached(UnshareArgv(), kUnsharePid);
    ClockPump pump(clock_);
    absl::StatusOr<JailInfo> info = driver_.Start("web01");
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : JailInfo();
  }

  testing::ScopedTempDir tmp_{"linux_jail_driver_test"};
  const std::string root_ = tmp_.path() + "/jails/web01";
  // Set before driver_ copies them.
  const LinuxDriverOptions options_ = [this] {
    LinuxDriverOptions options;
    options.state_dir = tmp_.path() + "/state";
    options.proc_root = tmp_.path() + "/proc";
    options.jail_init_path = kInitPath;
    return options;
  }();
  testing::FakeCommandRunner runner_;
  testing::FakeClock clock_;
  LinuxJailDriver driver_{runner_, clock_, options_};
};

TEST_F(LinuxJailDriverTest, DefineRejectsWhatLinuxCannotRunAndWritesNothing) {
  const std::vector<std::pair<std::string, std::function<void(JailConfig&)>>> cases = {
      {"jail name", [](JailConfig& c) { c.name = "../evil"; }},
      {"jail name", [](JailConfig& c) { c.name = ""; }},
      {"path", [](JailConfig& c) { c.path = "relative/root"; }},
      {"path", [](JailConfig& c) { c.path = "/"; }},
      {"path", [](JailConfig& c) { c.path = "/srv/../etc"; }},
      {"exec_start", [](JailConfig& c) { c.exec_start.clear(); }},
      {"exec_start", [](JailConfig& c) { c.exec_start = {""}; }},
      {"exec_stop", [](JailConfig& c) { c.exec_stop = {std::string("a\0b", 3)}; }},
      {"hostname", [](JailConfig& c) { c.hostname = "two words"; }},
      {"hostname", [](JailConfig& c) { c.hostname = std::string(65, 'h'); }},
      {"ip4_address", [](JailConfig& c) { c.ip4_address = "2001:db8::1"; }},
      {"ip4_address", [](JailConfig& c) { c.ip4_address = "198.18.0.100/24"; }},
      {"stop_timeout", [](JailConfig& c) { c.stop_timeout = absl::Seconds(-1); }},
      {"env", [](JailConfig& c) { c.env["A=B"] = "x"; }},
  };
  for (const auto& [field, mutate] : cases) {
    JailConfig config = Config();
    mutate(config);
    const absl::Status status = driver_.Define(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(field)) << status;
  }
  EXPECT_FALSE(Exists(options_.state_dir)) << "a rejected config must leave no file";
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(LinuxJailDriverTest, DefineIsIdempotentAndWritesChanges) {
  JailConfig config = Config();
  config.limits = {{"memoryuse", "deny", "1g"}};  // accepted, not enforced on Linux
  config.allow = {"raw_sockets"};
  ASSERT_TRUE(driver_.Define(config).ok());
  const std::string path = JailFile("web01.json");
  absl::StatusOr<std::string> first = common::ReadFileToString(path, 1 << 20);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(*first, HasSubstr("\"stop_timeout_ms\": 7000"));
  EXPECT_THAT(*first, HasSubstr("\"198.18.0.100\""));
  const uint64_t inode = Inode(path);

  ASSERT_TRUE(driver_.Define(config).ok());
  EXPECT_EQ(Inode(path), inode) << "an unchanged definition must not be rewritten";

  config.stop_timeout = absl::Seconds(3);
  ASSERT_TRUE(driver_.Define(config).ok());
  absl::StatusOr<std::string> second = common::ReadFileToString(path, 1 << 20);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(*second, HasSubstr("\"stop_timeout_ms\": 3000"));

  // The hostname defaults to the name.
  config.hostname.clear();
  ASSERT_TRUE(driver_.Define(config).ok());
  EXPECT_THAT(*common::ReadFileToString(path, 1 << 20), HasSubstr("\"hostname\": \"web01\""));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(LinuxJailDriverTest, StartRunsUnshareAndRecordsTheInit) {
  const JailInfo info = DefineAndStart();
  EXPECT_EQ(info.name, "web01");
  EXPECT_EQ(info.jid, kInitPid);
  EXPECT_EQ(info.hostname, "web01.example");
  EXPECT_EQ(info.path, root_);
  EXPECT_THAT(info.ip4_addresses, ElementsAre("198.18.0.100"));
  runner_.VerifyAllConsumed();

  ASSERT_EQ(runner_.detached_options().size(), 1u);
  const common::DetachedOptions detached = runner_.detached_options()[0];
  EXPECT_EQ(detached.log_path, JailFile("web01.log"));
  EXPECT_EQ(detached.env.at("MODE"), "prod");
  EXPECT_EQ(detached.env.at("PATH"), options_.tool_path);

  absl::StatusOr<std::string> run = common::ReadFileToString(JailFile("web01.run.json"), 1 << 16);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(*run, HasSubstr(absl::StrCat("\"init_pid\": ", kInitPid)));
  EXPECT_THAT(*run, HasSubstr(absl::StrCat("\"init_start_time\": ", kInitStart)));
  EXPECT_THAT(*run, HasSubstr(absl::StrCat("\"unshare_pid\": ", kUnsharePid)));

  absl::StatusOr<std::vector<JailInfo>> listed = driver_.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "web01");
  EXPECT_EQ((*listed)[0].jid, kInitPid);
  EXPECT_EQ((*listed)[0].hostname, "web01.example");
}

TEST_F(LinuxJailDriverTest, StartOfRunningJailIsAlreadyExistsAndRunsNothing) {
  DefineAndStart();
  const size_t calls = runner_.calls().size();
  absl::StatusOr<JailInfo> again = driver_.Start("web01");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr(absl::StrCat(kInitPid)));
  EXPECT_EQ(runner_.calls().size(), calls);

  // A driver made later (agent restart) over the same state finds it too.
  LinuxJailDriver restarted(runner_, clock_, options_);
  EXPECT_EQ(restarted.Start("web01").status().code(), absl::StatusCode::kAlreadyExists);
  absl::StatusOr<std::vector<JailInfo>> listed = restarted.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].jid, kInitPid);
}

TEST_F(LinuxJailDriverTest, StartRefusesUndefinedJailAndMissingRoot) {
  absl::StatusOr<JailInfo> undefined = driver_.Start("web01");
  EXPECT_EQ(undefined.status().code(), absl::StatusCode::kNotFound) << undefined.status();

  JailConfig config = Config();
  config.path = tmp_.path() + "/not-mounted";
  ASSERT_TRUE(driver_.Define(config).ok());
  absl::StatusOr<JailInfo> no_root = driver_.Start("web01");
  EXPECT_EQ(no_root.status().code(), absl::StatusCode::kFailedPrecondition) << no_root.status();
  EXPECT_THAT(no_root.status().message(), HasSubstr("not-mounted"));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(LinuxJailDriverTest, StartReportsAJailThatEndedAtOnce) {
  ASSERT_TRUE(driver_.Define(Config()).ok());
  // unshare has already exited: nothing of the jail is in /proc.
  runner_.ExpectDetached(UnshareArgv(), kUnsharePid);
  ClockPump pump(clock_);
  absl::StatusOr<JailInfo> info = driver_.Start("web01");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("web01.log"));
  EXPECT_FALSE(Exists(JailFile("web01.run.json")));
}

TEST_F(LinuxJailDriverTest, StartWaitsForTheInitToExec) {
  ASSERT_TRUE(driver_.Define(Config()).ok());
  // unshare's child has not exec'd the init yet: it must not be taken.
  AddProcess(kUnsharePid, 1, kInitStart - 1, {"unshare", "--pid"}, {kUnsharePid});
  AddProcess(kInitPid, kUnsharePid, kInitStart, {"unshare", "--pid"}, {kInitPid, 1});
  runner_.ExpectDetached(UnshareArgv(), kUnsharePid);
  ClockPump pump(clock_);
  absl::StatusOr<JailInfo> info = driver_.Start("web01");
  // Never exec'd within the bound: unshare is given up on (its fake pids
  // cannot be signalled: pidfd_open fails for them).
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("did not appear"));
  EXPECT_FALSE(Exists(JailFile("web01.run.json")));
}

TEST_F(LinuxJailDriverTest, ListDropsARunFileWhosePidNowBelongsToAnotherProcess) {
  DefineAndStart();
  // The init ended and its pid was reused by a process that started later.
  AddProcess(kInitPid, kUnsharePid, kInitStart + 500, {kInitPath, "--hostname", "web01.example"},
             {kInitPid, 1});
  absl::StatusOr<std::vector<JailInfo>> listed = driver_.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_FALSE(Exists(JailFile("web01.run.json"))) << "the stale run file must be removed";

  const size_t calls = runner_.calls().size();
  absl::StatusOr<StopResult> stopped = driver_.Stop("web01", absl::Seconds(1));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_FALSE(stopped->was_running);
  EXPECT_EQ(runner_.calls().size(), calls) << "no exec_stop for a jail that does not run";
}

TEST_F(LinuxJailDriverTest, ListDropsARunFileWhenThePidNamespaceChanged) {
  DefineAndStart();
  // Same pid, start time and argv, but another pid namespace: not ours.
  const std::string ns = absl::StrCat(options_.proc_root, "/", kInitPid, "/ns/pid");
  const std::string other = ns + ".other";
  WriteFile(other, "");
  std::filesystem::rename(other, ns);
  absl::StatusOr<std::vector<JailInfo>> listed = driver_.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed, IsEmpty());

  // A process that is no pid namespace init (NSpid not ending in 1) neither.
  DefineAndStart();
  AddProcess(kInitPid, kUnsharePid, kInitStart, {kInitPath, "--hostname", "web01.example"},
             {kInitPid});
  listed = driver_.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, IsEmpty());
}

TEST_F(LinuxJailDriverTest, StopOfAJailThatDoesNotRun) {
  ASSERT_TRUE(driver_.Define(Config()).ok());
  absl::StatusOr<StopResult> stopped = driver_.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_FALSE(stopped->was_running);
  EXPECT_FALSE(stopped->killed);
  // Never defined either: the same.
  stopped = driver_.Stop("other", absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_FALSE(stopped->was_running);
  EXPECT_EQ(driver_.Stop("../x", absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(LinuxJailDriverTest, StopRunsExecStopInTheJailAndKeepsTheRecordOfAJailThatWontDie) {
  DefineAndStart();
  runner_.ExpectExit({"nsenter", "-t", absl::StrCat(kInitPid), "--pid", "--uts", "--ipc", "--mount",
                      "--root", "--wd", "--", "/bin/sh", "/etc/rc", "stop"},
                     0);
  // The fake init cannot be signalled (no such pid in the kernel) and stays
  // in the fake /proc: a jail that outlives SIGKILL.
  absl::StatusOr<StopResult> stopped;
  {
    ClockPump pump(clock_);
    stopped = driver_.Stop("web01", absl::ZeroDuration());
  }
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kInternal) << stopped.status();
  EXPECT_THAT(stopped.status().message(), HasSubstr("after SIGKILL"));
  // Grace 0 = the definition's stop_timeout, also the limit of exec_stop.
  EXPECT_EQ(runner_.last_options().timeout, absl::Seconds(7));
  runner_.VerifyAllConsumed();
  EXPECT_TRUE(Exists(JailFile("web01.run.json"))) << "a jail that may still run stays known";
}

TEST_F(LinuxJailDriverTest, ExecEntersTheJailsNamespaces) {
  absl::StatusOr<common::CommandResult> missing =
      driver_.Exec("web01", {"hostname"}, absl::Seconds(5));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();

  DefineAndStart();
  EXPECT_EQ(driver_.Exec("web01", {}, absl::Seconds(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  runner_.ExpectExit({"nsenter", "-t", absl::StrCat(kInitPid), "--pid", "--uts", "--ipc", "--mount",
                      "--root", "--wd", "--", "hostname"},
                     0, "web01.example\n");
  absl::StatusOr<common::CommandResult> result =
      driver_.Exec("web01", {"hostname"}, absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "web01.example\n");
  EXPECT_EQ(runner_.last_options().timeout, absl::Seconds(5));
  runner_.VerifyAllConsumed();
}

TEST_F(LinuxJailDriverTest, UndefineRefusesARunningJail) {
  DefineAndStart();
  const absl::Status status = driver_.Undefine("web01");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_TRUE(Exists(JailFile("web01.json")));

  // Once the init is gone, the definition can go (twice is fine).
  std::filesystem::remove_all(absl::StrCat(options_.proc_root, "/", kInitPid));
  EXPECT_TRUE(driver_.Undefine("web01").ok());
  EXPECT_FALSE(Exists(JailFile("web01.json")));
  EXPECT_TRUE(driver_.Undefine("web01").ok());
  EXPECT_EQ(driver_.Start("web01").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace jailover::agent::linux_driver

// FreeBsdJailDriver against a scripted FakeCommandRunner: the exact argv
// sequence of each operation is our contract with jail(8), jls(8), jexec(8),
// rctl(8) and umount(8). The conf files go to a real temporary state_dir.
#include "agent/driver/freebsd/freebsd_jail_driver.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/driver/freebsd/jail_commands.h"
#include "common/file/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_runner.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::vector<std::string> kJls = {"jls", "--libxo", "json", "-v"};

// `jls --libxo json -v` listing `jails` (name, jid), compact libxo form.
std::string JlsOutput(const std::vector<std::pair<std::string, int>>& jails) {
  std::string list;
  for (const auto& [name, jid] : jails) {
    if (!list.empty()) list += ", ";
    absl::StrAppend(&list, "{\"jid\":", jid, ",\"hostname\":\"", name,
                    ".example.org\",\"path\":\"/var/jailover/jails/", name, "\",\"name\":\"",
                    name, "\",\"state\":\"ACTIVE\",\"cpusetid\":3, \"ipv4_addrs\": [\"198.18.0.",
                    jid, "\"]}");
  }
  return absl::StrCat("{\"__version\": \"2\", \"jail-information\": {\"jail\": [", list,
                      "]}\n}\n");
}

JailConfig Web01() {
  JailConfig config;
  config.name = "web01";
  config.hostname = "web01.example.org";
  config.path = "/var/jailover/jails/web01";
  config.ip4_address = "198.18.0.7";
  config.exec_start = {"/bin/sh", "/etc/rc"};
  config.exec_stop = {"/bin/sh", "/etc/rc.shutdown", "jail"};
  config.stop_timeout = absl::Seconds(30);
  config.limits = {{"memoryuse", "deny", "1g"}, {"maxproc", "deny", "200"}};
  return config;
}

FreeBsdDriverOptions TestOptions(const std::string& dir) {
  FreeBsdDriverOptions options;
  options.state_dir = dir + "/state";  // created by Define
  options.command_timeout = absl::Seconds(120);
  return options;
}

class JailDriverTest : public ::testing::Test {
 protected:
  void TearDown() override { runner_.VerifyAllConsumed(); }

  std::string ConfPath(const std::string& name = "web01") const {
    return options_.state_dir + "/jails/" + name + ".conf";
  }

  // Defines web01 (or `config`); Define runs no command.
  void DefineWeb01(const JailConfig& config = Web01()) {
    ASSERT_TRUE(driver.Define(config).ok());
    ASSERT_THAT(runner_.calls(), IsEmpty());
  }

  testing::ScopedTempDir dir_{"jail_driver"};
  const FreeBsdDriverOptions options_ = TestOptions(dir_.path());
  testing::FakeCommandRunner runner_;
  testing::FakeClock clock_;
  FreeBsdJailDriver driver{runner_, clock_, options_};
};

ino_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST_F(JailDriverTest, DefineWritesTheConfInAPrivateDirAndIsIdempotent) {
  DefineWeb01();
  const absl::StatusOr<std::string> written = common::ReadFileToString(ConfPath(), 1 << 20);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, *RenderJailConf(Web01(), options_));
  struct stat st {};
  ASSERT_EQ(::stat((options_.state_dir + "/jails").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // Same config: the file is not replaced.
  const ino_t before = Inode(ConfPath());
  ASSERT_TRUE(driver.Define(Web01()).ok());
  EXPECT_EQ(Inode(ConfPath()), before);

  // Changed config: replaced atomically (new inode, new contents).
  JailConfig changed = Web01();
  changed.securelevel = 3;
  ASSERT_TRUE(driver.Define(changed).ok());
  EXPECT_NE(Inode(ConfPath()), before);
  EXPECT_EQ(*common::ReadFileToString(ConfPath(), 1 << 20), *RenderJailConf(changed, options_));
  EXPECT_FALSE(std::filesystem::exists(ConfPath() + ".tmp"));
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

TEST_F(JailDriverTest, DefineRefusesABadConfigAndWritesNothing) {
  JailConfig config = Web01();
  config.params = {{"ip4.addr", "10.0.0.1"}};
  const absl::Status status = driver.Define(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("params \"ip4.addr\""));
  EXPECT_FALSE(std::filesystem::exists(ConfPath()));
}

TEST_F(JailDriverTest, DefineThenStartCreatesTheJailAndAppliesRctlLimits) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  runner_.ExpectExit({"jail", "-i", "-f", ConfPath(), "-c", "web01"}, 0, "7\n");
  runner_.ExpectExit({"rctl", "-a", "jail:web01:memoryuse:deny=1g"}, 0);
  runner_.ExpectExit({"rctl", "-a", "jail:web01:maxproc:deny=200"}, 0);
  runner_.ExpectExit(kJls, 0, JlsOutput({{"db1", 3}, {"web01", 7}}));

  const absl::StatusOr<JailInfo> info = driver.Start("web01");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "web01");
  EXPECT_EQ(info->jid, 7);
  EXPECT_EQ(info->path, "/var/jailover/jails/web01");
  EXPECT_THAT(info->ip4_addresses, ElementsAre("198.18.0.7"));
  ASSERT_EQ(runner_.options().size(), 5u);
  EXPECT_EQ(runner_.options()[1].timeout, options_.command_timeout);
}

TEST_F(JailDriverTest, StartOfAnUndefinedJailIsNotFound) {
  const absl::StatusOr<JailInfo> info = driver.Start("web01");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("web01"));
}

TEST_F(JailDriverTest, StartWhenRunningIsAlreadyExists) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  const absl::StatusOr<JailInfo> info = driver.Start("web01");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(JailDriverTest, StartRacingAnotherCreateIsAlreadyExists) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  runner_.ExpectExit({"jail", "-i", "-f", ConfPath(), "-c", "web01"}, 1, "",
                     "jail: \"web01\" already exists\n");
  EXPECT_EQ(driver.Start("web01").status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(JailDriverTest, StartFailureSurfacesJailStderrAndRunsNothingElse) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  // jail(8) unwinds a failed create itself (reference 1.5).
  runner_.ExpectExit({"jail", "-i", "-f", ConfPath(), "-c", "web01"}, 1, "",
                     "jail: web01: path /var/jailover/jails/web01: No such file or directory\n");
  const absl::StatusOr<JailInfo> info = driver.Start("web01");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("jail: web01: path /var/jailover/jails/web01: No such file or directory"));
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("exit 1"));
}

TEST_F(JailDriverTest, StartWithAFailingRctlStopsTheJailAgain) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  runner_.ExpectExit({"jail", "-i", "-f", ConfPath(), "-c", "web01"}, 0, "7\n");
  runner_.ExpectExit({"rctl", "-a", "jail:web01:memoryuse:deny=1g"}, 1, "",
                     "rctl: RACCT/RCTL present, but disabled; enable using kern.racct.enable=1 "
                     "tunable\n");
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 0);
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 0);

  const absl::StatusOr<JailInfo> info = driver.Start("web01");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("kern.racct.enable=1"));
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("stopped again"));
}

TEST_F(JailDriverTest, StartWhoseJailToolIsKilledRemovesWhatItLeft) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  runner_.ExpectError({"jail", "-i", "-f", ConfPath(), "-c", "web01"},
                      absl::DeadlineExceededError("killed after 2m"));
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  runner_.ExpectExit({"jail", "-R", "web01"}, 0);
  runner_.ExpectExit({"umount", "-f", "/var/jailover/jails/web01/dev"}, 0);
  EXPECT_EQ(driver.Start("web01").status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(JailDriverTest, StopRunsJailRemoveWithGracePlusStopTimeoutThenRctl) {
  DefineWeb01();
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 0);
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
  EXPECT_FALSE(result->killed);
  // grace 5 s + stop.timeout 30 s + 10 s margin.
  EXPECT_EQ(runner_.options()[0].timeout, absl::Seconds(45));
}

TEST_F(JailDriverTest, StopWithoutLimitsRunsNoRctl) {
  JailConfig config = Web01();
  config.limits.clear();
  DefineWeb01(config);
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
}

TEST_F(JailDriverTest, StopOfAJailThatIsNotRunningIsANoOp) {
  DefineWeb01();
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 1, "",
                     "jail: \"web01\" not found\n");
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->was_running);
  EXPECT_FALSE(result->killed);
}

TEST_F(JailDriverTest, StopThatTimesOutEscalatesToJailDashR) {
  DefineWeb01();
  runner_.ExpectError({"jail", "-f", ConfPath(), "-r", "web01"},
                      absl::DeadlineExceededError("killed after 45s"));
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  runner_.ExpectExit({"jail", "-R", "web01"}, 0);
  runner_.ExpectExit({"umount", "-f", "/var/jailover/jails/web01/dev"}, 0);
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
  EXPECT_TRUE(result->killed);
}

TEST_F(JailDriverTest, StopWhoseExecStopFailsEscalatesToJailDashR) {
  DefineWeb01();
  // jail(8) gives up after a failed exec.stop and leaves the jail running.
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 1, "",
                     "jail: web01: /bin/sh /etc/rc.shutdown jail: failed\n");
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  runner_.ExpectExit({"jail", "-R", "web01"}, 0);
  runner_.ExpectExit({"umount", "-f", "/var/jailover/jails/web01/dev"}, 1, "",
                     "umount: /var/jailover/jails/web01/dev: not a file system root directory\n");
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->killed);
}

TEST_F(JailDriverTest, StopThatFailsAfterTheJailIsGoneDoesNotKill) {
  DefineWeb01();
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 1, "",
                     "jail: web01: /sbin/umount /var/jailover/jails/web01/dev: failed\n");
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  runner_.ExpectExit({"umount", "-f", "/var/jailover/jails/web01/dev"}, 0);
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
  EXPECT_FALSE(result->killed);
}

TEST_F(JailDriverTest, StopReportsAFailingJailDashR) {
  DefineWeb01();
  runner_.ExpectError({"jail", "-f", ConfPath(), "-r", "web01"},
                      absl::DeadlineExceededError("killed"));
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  runner_.ExpectExit({"jail", "-R", "web01"}, 1, "", "jail: jail_remove: EPERM\n");
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("jail_remove: EPERM"));
}

TEST_F(JailDriverTest, StopWhenJlsFailsAfterATimeoutIsAnError) {
  DefineWeb01();
  runner_.ExpectError({"jail", "-f", ConfPath(), "-r", "web01"},
                      absl::DeadlineExceededError("killed"));
  runner_.ExpectExit(kJls, 1, "", "jls: unknown parameter\n");
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("cannot tell"));
}

TEST_F(JailDriverTest, AFailingRctlRemoveIsOnlyAWarning) {
  DefineWeb01();
  runner_.ExpectExit({"jail", "-f", ConfPath(), "-r", "web01"}, 0);
  runner_.ExpectExit({"rctl", "-r", "jail:web01"}, 1, "",
                     "rctl: failed to remove rule: No such process\n");
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
}

TEST_F(JailDriverTest, StopWithoutAConfFileStopsByName) {
  runner_.ExpectExit({"jail", "-r", "web01"}, 0);
  const absl::StatusOr<StopResult> result = driver.Stop("web01", absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->was_running);
  // grace 5 s + jail(8)'s default stop.timeout 10 s + 10 s margin.
  EXPECT_EQ(runner_.options()[0].timeout, absl::Seconds(25));
}

TEST_F(JailDriverTest, UndefineWhileRunningIsRefused) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  const absl::Status status = driver.Undefine("web01");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(ConfPath()));
}

TEST_F(JailDriverTest, UndefineRemovesTheConfAndAMissingOneIsFine) {
  DefineWeb01();
  runner_.ExpectExit(kJls, 0, JlsOutput({{"db1", 3}}));
  ASSERT_TRUE(driver.Undefine("web01").ok());
  EXPECT_FALSE(std::filesystem::exists(ConfPath()));
  runner_.ExpectExit(kJls, 0, JlsOutput({}));
  EXPECT_TRUE(driver.Undefine("web01").ok());
  // And Start now finds no definition.
  EXPECT_EQ(driver.Start("web01").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JailDriverTest, ListReturnsEveryJail) {
  runner_.ExpectExit(kJls, 0, JlsOutput({{"db1", 3}, {"web01", 7}, {"other", 12}}));
  const absl::StatusOr<std::vector<JailInfo>> jails = driver.List();
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 3u);
  EXPECT_EQ((*jails)[2].name, "other");
  EXPECT_EQ((*jails)[2].jid, 12);
}

TEST_F(JailDriverTest, ListSurfacesJlsFailures) {
  runner_.ExpectExit(kJls, 1, "", "jls: jail_get: Operation not permitted\n");
  const absl::StatusOr<std::vector<JailInfo>> jails = driver.List();
  EXPECT_EQ(jails.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(jails.status().message()), HasSubstr("Operation not permitted"));

  runner_.ExpectExit(kJls, 0, "{\"__version\": \"2\", \"jail-inf");
  EXPECT_EQ(driver.List().status().code(), absl::StatusCode::kInternal);
}

TEST_F(JailDriverTest, ExecOnAMissingJailIsNotFound) {
  runner_.ExpectExit(kJls, 0, JlsOutput({{"db1", 3}}));
  const absl::StatusOr<common::CommandResult> result =
      driver.Exec("web01", {"/usr/sbin/service", "nginx", "status"}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JailDriverTest, ExecRunsJexecByJidAndReturnsTheExitCode) {
  runner_.ExpectExit(kJls, 0, JlsOutput({{"web01", 7}}));
  runner_.ExpectExit({"jexec", "-l", "7", "/usr/sbin/service", "nginx", "status"}, 3,
                     "nginx is not running.\n");
  const absl::StatusOr<common::CommandResult> result =
      driver.Exec("web01", {"/usr/sbin/service", "nginx", "status"}, absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stdout_text, "nginx is not running.\n");
  EXPECT_EQ(runner_.last_options().timeout, absl::Seconds(5));
}

TEST_F(JailDriverTest, BadNamesAndArgvAreRefusedWithoutRunningAnything) {
  EXPECT_EQ(driver.Start("web.01").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver.Stop("../x", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver.Undefine("7").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver.Exec("web01", {}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner_.calls(), IsEmpty());
}

}  // namespace
}  // namespace jailover::agent::freebsd

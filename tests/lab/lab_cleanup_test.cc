// Lab harness checks (root): LabNetwork builds an isolated segment whose
// hosts reach each other and nothing else, runs a test case inside a host,
// and leaves nothing behind — when the test fails midway (destructors run)
// and, through SweepLabLeftovers, when it crashes (they do not).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/exec/command_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/lab_network.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kTest[] = "LabCleanupTest.";

std::vector<LabHost> TwoHosts() { return {{"h1", "198.18.0.11"}, {"h2", "198.18.0.12"}}; }

// Value of the first "KEY=value" line of `text`, or "".
std::string ValueOf(const std::string& text, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, key + "=")) return std::string(line.substr(key.size() + 1));
  }
  return "";
}

// True if `pid` exists and is not a zombie.
bool Running(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

// True once `check` holds, within a few seconds: a detached loop device is
// freed only when its last opener (udev probing a new device, say) closes
// it, so teardown's effects may lag a moment under load.
bool Eventually(const std::function<bool()>& check) {
  return testing::WaitUntil(check, absl::Seconds(10), absl::Milliseconds(50));
}

// Runs one case of this binary as a plain child (not in a lab host).
absl::StatusOr<common::CommandResult> RunSelf(const std::string& test) {
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return absl::InternalError("cannot read /proc/self/exe");
  common::SubprocessCommandRunner runner;
  return runner.Run(
      {exe, "--gtest_filter=" + std::string(kTest) + test, "--gtest_also_run_disabled_tests"},
      absl::Seconds(120));
}

// Sweeps lab `prefix` when the test ends, whatever happened (no-op when
// the harness already cleaned up).
class SweepAtExit {
 public:
  void Set(std::string prefix) { prefix_ = std::move(prefix); }
  ~SweepAtExit() {
    if (!prefix_.empty() && !LabLeftovers(prefix_).empty()) SweepLabLeftovers(prefix_);
  }

 private:
  std::string prefix_;
};

// True while loop device `device` (/dev/loopN) is bound to a file.
bool LoopBound(const std::string& device) {
  return std::filesystem::exists("/sys/block/" + device.substr(device.rfind('/') + 1) + "/loop");
}

// In lab host h1: a tmpfs under the lab directory, a loop device over a
// file in the lab directory, one over a file in that tmpfs, a detached
// `sleep 600`. Checks they exist and prints PREFIX=, LOOP=, LOOP2=, SLEEP=
// and MESS=ok.
void MakeMess(LabNetwork& lab) {
  const std::string tmp = lab.host_dir("h1") + "/tmp";
  std::filesystem::create_directories(tmp);
  absl::StatusOr<common::CommandResult> mount =
      lab.Run("h1", {"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp});
  ASSERT_TRUE(mount.ok() && mount->ok()) << (mount.ok() ? mount->stderr_text : "");
  absl::StatusOr<common::CommandResult> mounts = lab.Run("h1", {"findmnt", "-rn", "-o", "TARGET"});
  ASSERT_TRUE(mounts.ok() && mounts->ok());
  ASSERT_THAT(mounts->stdout_text, HasSubstr(tmp + "\n"));

  const std::string image = lab.host_dir("h1") + "/disk.img";
  {
    std::ofstream out(image);
    ASSERT_TRUE(out.good());
  }
  std::filesystem::resize_file(image, 4 << 20);
  absl::StatusOr<common::CommandResult> loop = lab.Run("h1", {"losetup", "-f", "--show", image});
  ASSERT_TRUE(loop.ok() && loop->ok()) << (loop.ok() ? loop->stderr_text : "");
  const std::string device(absl::StripTrailingAsciiWhitespace(loop->stdout_text));
  ASSERT_TRUE(absl::StartsWith(device, "/dev/loop")) << device;

  // A loop device over a file that exists only in h1's mount namespace (as
  // with an nbdfuse import): from the root namespace its backing file shows
  // as "/", so only a look from inside h1 finds it.
  const std::string inner = tmp + "/inner.img";
  absl::StatusOr<common::CommandResult> made = lab.Run("h1", {"truncate", "-s", "4M", inner});
  ASSERT_TRUE(made.ok() && made->ok());
  absl::StatusOr<common::CommandResult> loop2 = lab.Run("h1", {"losetup", "-f", "--show", inner});
  ASSERT_TRUE(loop2.ok() && loop2->ok()) << (loop2.ok() ? loop2->stderr_text : "");
  const std::string device2(absl::StripTrailingAsciiWhitespace(loop2->stdout_text));
  ASSERT_TRUE(LoopBound(device2)) << device2;

  absl::StatusOr<pid_t> sleeper =
      lab.StartDetached("h1", {"sleep", "600"}, lab.host_dir("h1") + "/sleep.log");
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  ASSERT_THAT(lab.Pids("h1"), ::testing::Contains(*sleeper));

  std::cout << "PREFIX=" << lab.prefix() << "\nLOOP=" << device << "\nLOOP2=" << device2
            << "\nSLEEP=" << *sleeper
            << "\nMESS=ok" << std::endl;
}

TEST(LabCleanupTest, HostsReachEachOtherOnlyAndRunTestsInside) {
  JAILOVER_REQUIRE_LAB();
  absl::StatusOr<std::unique_ptr<LabNetwork>> lab = LabNetwork::Create(TwoHosts());
  ASSERT_TRUE(lab.ok()) << lab.status();
  const std::string prefix = (*lab)->prefix();
  EXPECT_EQ(prefix, absl::StrCat("jl", getpid()));

  auto ping = [&](const std::string& from, const std::string& to) {
    absl::StatusOr<common::CommandResult> r =
        (*lab)->Run(from, {"/bin/busybox", "ping", "-c", "1", "-W", "2", to});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->ok();
  };
  EXPECT_TRUE(ping("h1", "198.18.0.12"));
  EXPECT_TRUE(ping("h2", "198.18.0.11"));
  // No route out of the segment.
  absl::StatusOr<common::CommandResult> out =
      (*lab)->Run("h1", {"/bin/busybox", "ping", "-c", "1", "-W", "2", "10.0.0.1"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(out->exit_code, 0);
  EXPECT_THAT(out->stderr_text, HasSubstr("unreachable"));

  // A pulled cable cuts h1 off; plugging it back restores it.
  ASSERT_TRUE((*lab)->LinkDown("h1").ok());
  EXPECT_FALSE(ping("h2", "198.18.0.11"));
  ASSERT_TRUE((*lab)->LinkUp("h1").ok());
  EXPECT_TRUE(ping("h2", "198.18.0.11"));

  // Mounts made in a host persist there, and only there.
  const std::string tmp = (*lab)->host_dir("h1") + "/persist";
  std::filesystem::create_directories(tmp);
  absl::StatusOr<common::CommandResult> mount =
      (*lab)->Run("h1", {"mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp});
  ASSERT_TRUE(mount.ok() && mount->ok());
  absl::StatusOr<common::CommandResult> in_h1 = (*lab)->Run("h1", {"mountpoint", "-q", tmp});
  absl::StatusOr<common::CommandResult> in_h2 = (*lab)->Run("h2", {"mountpoint", "-q", tmp});
  ASSERT_TRUE(in_h1.ok() && in_h2.ok());
  EXPECT_EQ(in_h1->exit_code, 0);
  EXPECT_NE(in_h2->exit_code, 0);

  // RunTestInHost runs the case inside the host: passes in h1, and the same
  // check fails in h2 (it is not vacuous).
  const std::map<std::string, std::string> env = {{"JAILOVER_TEST_ADDRESS", "198.18.0.11"}};
  absl::StatusOr<common::CommandResult> run =
      (*lab)->RunTestInHost("h1", std::string(kTest) + "DISABLED_RunsInHost", env);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0) << run->stdout_text << run->stderr_text;
  EXPECT_THAT(run->stdout_text, HasSubstr("[  PASSED  ] 1 test"));
  run = (*lab)->RunTestInHost("h2", std::string(kTest) + "DISABLED_RunsInHost", env);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->exit_code, 0) << run->stdout_text;

  lab->reset();
  EXPECT_THAT(LabLeftovers(prefix), IsEmpty());
}

TEST(LabCleanupTest, DISABLED_RunsInHost) {
  const char* host = getenv("JAILOVER_LAB_HOST");
  const char* dir = getenv("JAILOVER_LAB_DIR");
  const char* address = getenv("JAILOVER_TEST_ADDRESS");
  ASSERT_NE(host, nullptr);
  ASSERT_NE(dir, nullptr);
  ASSERT_NE(address, nullptr);
  common::SubprocessCommandRunner runner;
  absl::StatusOr<common::CommandResult> addr =
      runner.Run({"ip", "-o", "-4", "addr", "show", "dev", "eth0"}, absl::Seconds(10));
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_THAT(addr->stdout_text, HasSubstr(absl::StrCat(" ", address, "/24")));
  EXPECT_TRUE(std::filesystem::is_directory(absl::StrCat(dir, "/", host)));
}

TEST(LabCleanupTest, RejectsBadHostsAndLeavesNothing) {
  JAILOVER_REQUIRE_LAB();
  const std::string prefix = absl::StrCat("jl", getpid());
  for (const std::vector<LabHost>& hosts :
       std::vector<std::vector<LabHost>>{{},
                                         {{"h1", "10.0.0.1"}},
                                         {{"H1", "198.18.0.11"}},
                                         {{"sw", "198.18.0.11"}},
                                         {{"ns", "198.18.0.11"}},
                                         {{"h1", "198.20.0.11"}},
                                         {{"h1", "198.18.0.255"}},
                                         {{"averyveryverylongname", "198.18.0.11"}},
                                         {{"h1", "198.18.0.11"}, {"h2", "198.18.0.11"}},
                                         {{"h1", "198.18.0.11"}, {"h1", "198.18.0.12"}}}) {
    absl::StatusOr<std::unique_ptr<LabNetwork>> lab = LabNetwork::Create(hosts);
    EXPECT_EQ(lab.status().code(), absl::StatusCode::kInvalidArgument) << lab.status();
    EXPECT_THAT(LabLeftovers(prefix), IsEmpty());
  }
}

TEST(LabCleanupTest, FailureMidwayLeavesNothing) {
  JAILOVER_REQUIRE_LAB();
  SweepAtExit sweep;
  absl::StatusOr<common::CommandResult> child = RunSelf("DISABLED_FailsMidway");
  ASSERT_TRUE(child.ok()) << child.status();
  const std::string prefix = ValueOf(child->stdout_text, "PREFIX");
  sweep.Set(prefix);
  EXPECT_EQ(child->exit_code, 1) << child->stdout_text << child->stderr_text;
  EXPECT_THAT(child->stdout_text, HasSubstr("failing on purpose midway"));
  ASSERT_EQ(ValueOf(child->stdout_text, "MESS"), "ok") << child->stdout_text;
  ASSERT_TRUE(absl::StartsWith(prefix, "jl")) << child->stdout_text;
  EXPECT_TRUE(Eventually([&] { return LabLeftovers(prefix).empty(); }))
      << absl::StrJoin(LabLeftovers(prefix), "\n");
  EXPECT_TRUE(Eventually([&] { return !LoopBound(ValueOf(child->stdout_text, "LOOP")); }));
  EXPECT_TRUE(Eventually([&] { return !LoopBound(ValueOf(child->stdout_text, "LOOP2")); }));
  pid_t sleeper = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ValueOf(child->stdout_text, "SLEEP"), &sleeper));
  EXPECT_FALSE(Running(sleeper));
}

TEST(LabCleanupTest, DISABLED_FailsMidway) {
  JAILOVER_REQUIRE_LAB();
  absl::StatusOr<std::unique_ptr<LabNetwork>> lab = LabNetwork::Create(TwoHosts());
  ASSERT_TRUE(lab.ok()) << lab.status();
  MakeMess(**lab);
  if (HasFatalFailure()) return;
  ADD_FAILURE() << "failing on purpose midway";
  return;  // ~LabNetwork cleans up
}

TEST(LabCleanupTest, CrashLeavesLeftoversThatSweepRemoves) {
  JAILOVER_REQUIRE_LAB();
  SweepAtExit sweep;
  absl::StatusOr<common::CommandResult> child = RunSelf("DISABLED_Crashes");
  ASSERT_TRUE(child.ok()) << child.status();
  const std::string prefix = ValueOf(child->stdout_text, "PREFIX");
  sweep.Set(prefix);
  EXPECT_EQ(child->term_signal, SIGABRT) << child->stdout_text << child->stderr_text;
  ASSERT_EQ(ValueOf(child->stdout_text, "MESS"), "ok") << child->stdout_text;
  ASSERT_TRUE(absl::StartsWith(prefix, "jl")) << child->stdout_text;
  pid_t sleeper = 0;
  ASSERT_TRUE(absl::SimpleAtoi(ValueOf(child->stdout_text, "SLEEP"), &sleeper));
  const std::string loop = ValueOf(child->stdout_text, "LOOP");

  // The abort skipped the destructor: everything is still there (the child
  // made this process a holder, so no concurrent sweep removed it yet).
  const std::vector<std::string> left = LabLeftovers(prefix);
  const std::string all = absl::StrJoin(left, "\n");
  EXPECT_THAT(all, HasSubstr("network namespace " + prefix + "-h1"));
  EXPECT_THAT(all, HasSubstr("network namespace " + prefix + "-sw"));
  EXPECT_THAT(all, HasSubstr("loop device " + loop + " "));
  EXPECT_THAT(all, HasSubstr(absl::StrCat("process ", sleeper, " ")));
  EXPECT_THAT(all, HasSubstr("mount /run/jailover-lab/" + prefix + "/ns/h1"));
  EXPECT_TRUE(Running(sleeper));
  // Held by this live process: not reported as a dead lab's leftovers.
  EXPECT_THAT(absl::StrJoin(LabLeftovers(), "\n"), Not(HasSubstr(prefix)));

  ReleaseLab(prefix);
  const std::vector<std::string> removed = SweepLabLeftovers();
  std::cout << "swept:\n" << absl::StrJoin(removed, "\n") << std::endl;
  EXPECT_TRUE(Eventually([&] { return LabLeftovers(prefix).empty(); }))
      << absl::StrJoin(LabLeftovers(prefix), "\n");
  EXPECT_TRUE(Eventually([&] { return !LoopBound(loop); }));
  EXPECT_TRUE(Eventually([&] { return !LoopBound(ValueOf(child->stdout_text, "LOOP2")); }));
  EXPECT_FALSE(Running(sleeper));
  EXPECT_THAT(absl::StrJoin(LabLeftovers(), "\n"), Not(HasSubstr(prefix)));
}

TEST(LabCleanupTest, DISABLED_Crashes) {
  JAILOVER_REQUIRE_LAB();
  absl::StatusOr<std::unique_ptr<LabNetwork>> lab = LabNetwork::Create(TwoHosts());
  ASSERT_TRUE(lab.ok()) << lab.status();
  MakeMess(**lab);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(HoldLab((*lab)->prefix(), getppid()).ok());
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  std::cout.flush();
  abort();
}

}  // namespace
}  // namespace jailover::testing

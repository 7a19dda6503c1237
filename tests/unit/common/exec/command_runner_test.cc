#include "common/exec/command_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteExecutable(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// True once `pid` no longer exists. The test process is a child subreaper on
// Linux (see SetUpTestSuite), so a killed orphan becomes our child and is
// reaped here; otherwise init reaps it.
bool ProcessGone(pid_t pid) {
  int status;
  ::waitpid(pid, &status, WNOHANG);
  return ::kill(pid, 0) == -1 && errno == ESRCH;
}

// Waits a few seconds for `pid` to be gone; kills it if it is not, so that a
// failing test leaves nothing running.
bool WaitUntilGone(pid_t pid) {
  if (pid <= 1) {
    ADD_FAILURE() << "bad pid " << pid;
    return false;
  }
  if (jailover::testing::WaitUntil([pid] { return ProcessGone(pid); }, absl::Seconds(5))) {
    return true;
  }
  ::kill(pid, SIGKILL);
  return false;
}

// Pids written by the child to `path`, one per whitespace-separated word.
std::vector<pid_t> ReadPids(const std::string& path) {
  std::vector<pid_t> pids;
  for (absl::string_view word :
       absl::StrSplit(ReadFile(path), absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    pids.push_back(static_cast<pid_t>(std::atoi(std::string(word).c_str())));
  }
  return pids;
}

class CommandRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
#if defined(__linux__)
    // Orphaned grandchildren killed by a test become our children, so we can
    // reap them: some container inits (PID 1) never reap zombies, and a
    // zombie still answers kill(pid, 0).
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
  }

  // A new directory under testing::TempDir(), removed after the test.
  std::string MakeTempDir(const std::string& prefix) {
    temp_dirs_.push_back(jailover::testing::MakeTempDir(prefix));
    return temp_dirs_.back();
  }

  // Reaps the orphans this process adopted as subreaper (a killed `sleep`
  // whose shell died first), so no test leaves even a zombie behind.
  void TearDown() override {
    EXPECT_TRUE(jailover::testing::WaitUntil(
        [] {
          int status;
          pid_t r;
          do {
            r = ::waitpid(-1, &status, WNOHANG);
          } while (r > 0);
          return r == -1 && errno == ECHILD;
        },
        absl::Seconds(5)))
        << "a child process outlived the test";
    for (const std::string& dir : temp_dirs_) {
      std::error_code error;
      std::filesystem::remove_all(dir, error);
    }
  }

  SubprocessCommandRunner runner_;
  std::vector<std::string> temp_dirs_;
};

TEST_F(CommandRunnerTest, ExitCodeZero) {
  absl::StatusOr<CommandResult> result = runner_.Run({"true"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->term_signal, 0);
  EXPECT_TRUE(result->ok());
  EXPECT_GT(result->elapsed, absl::ZeroDuration());
}

TEST_F(CommandRunnerTest, NonZeroExitCodeIsAResultNotAnError) {
  absl::StatusOr<CommandResult> result = runner_.Run({"sh", "-c", "exit 3"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->term_signal, 0);
  EXPECT_FALSE(result->ok());
}

TEST_F(CommandRunnerTest, KilledBySignal) {
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "kill -KILL $$"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_EQ(result->term_signal, SIGKILL);
  EXPECT_FALSE(result->ok());
}

TEST_F(CommandRunnerTest, CapturesStdoutAndStderrSeparately) {
  absl::StatusOr<CommandResult> result = runner_.Run(
      {"sh", "-c", "echo to-out; echo to-err >&2; echo more-out; exit 1"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "to-out\nmore-out\n");
  EXPECT_EQ(result->stderr_text, "to-err\n");
  EXPECT_FALSE(result->stdout_truncated);
  EXPECT_FALSE(result->stderr_truncated);
  EXPECT_EQ(result->exit_code, 1);
}

TEST_F(CommandRunnerTest, StdinIsDevNull) {
  // cat would wait forever on an inherited terminal or pipe.
  absl::StatusOr<CommandResult> result = runner_.Run({"cat"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->stdout_text, "");
}

TEST_F(CommandRunnerTest, TimeoutKillsTheWholeProcessGroupPromptly) {
  const std::string dir = MakeTempDir("runner_timeout");
  const std::string pid_file = dir + "/pids";
  // The shell and a background sleep, both in the child's process group and
  // both holding the output pipes.
  const absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> result = runner_.Run(
      {"sh", "-c", "sleep 100 & echo $$ $! > " + pid_file + "; sleep 100"}, absl::Seconds(2));
  const absl::Duration took = absl::Now() - start;

  ASSERT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("timed out after 2s"));
  EXPECT_THAT(result.status().message(), HasSubstr("killed process group"));
  EXPECT_GE(took, absl::Seconds(2));
  EXPECT_LT(took, absl::Seconds(20));

  const std::vector<pid_t> pids = ReadPids(pid_file);
  ASSERT_EQ(pids.size(), 2u) << ReadFile(pid_file);
  for (pid_t pid : pids) {
    EXPECT_TRUE(WaitUntilGone(pid)) << "pid " << pid << " survived the timeout";
  }
}

TEST_F(CommandRunnerTest, GrandchildHoldingThePipeAfterChildExitedIsKilledAtDeadline) {
  const std::string dir = MakeTempDir("runner_grandchild");
  const std::string pid_file = dir + "/pid";
  const absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "sleep 100 & echo $! > " + pid_file + "; echo started; exit 0"},
                  absl::Seconds(1));
  const absl::Duration took = absl::Now() - start;

  ASSERT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_LT(took, absl::Seconds(20));
  const std::vector<pid_t> pids = ReadPids(pid_file);
  ASSERT_EQ(pids.size(), 1u) << ReadFile(pid_file);
  EXPECT_TRUE(WaitUntilGone(pids[0])) << "background pid " << pids[0] << " survived the timeout";
}

TEST_F(CommandRunnerTest, EndlessOutputIsKilledAtDeadline) {
  // The pipes are always readable; the deadline must still be noticed.
  const absl::Time start = absl::Now();
  absl::StatusOr<CommandResult> result = runner_.Run({"yes"}, absl::Milliseconds(500));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST_F(CommandRunnerTest, ChildThatClosesItsOutputIsStillWaitedFor) {
  // The pipes reach EOF long before the child exits; its exit code counts.
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "exec >/dev/null 2>&1; sleep 0.3; exit 7"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_GE(result->elapsed, absl::Milliseconds(250));
}

TEST_F(CommandRunnerTest, ChildThatClosesItsOutputIsKilledAtDeadline) {
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "exec >/dev/null 2>&1; sleep 100"}, absl::Milliseconds(500));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
}

TEST_F(CommandRunnerTest, OutputIsCappedWithoutBlockingTheChild) {
  CommandOptions options;
  options.timeout = absl::Seconds(30);
  options.max_output_bytes = 1000;
  absl::StatusOr<CommandResult> result = runner_.Run(
      {"sh", "-c", "head -c 5000000 /dev/zero; head -c 3000000 /dev/zero >&2; echo done >&2"},
      options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->stdout_text.size(), 1000u);
  EXPECT_EQ(result->stdout_text, std::string(1000, '\0'));
  EXPECT_TRUE(result->stdout_truncated);
  EXPECT_EQ(result->stderr_text.size(), 1000u);
  EXPECT_TRUE(result->stderr_truncated);
}

TEST_F(CommandRunnerTest, OutputExactlyAtTheCapIsNotTruncated) {
  CommandOptions options;
  options.max_output_bytes = 5;
  absl::StatusOr<CommandResult> result = runner_.Run({"printf", "12345"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "12345");
  EXPECT_FALSE(result->stdout_truncated);
}

TEST_F(CommandRunnerTest, MissingProgramIsNotFound) {
  absl::StatusOr<CommandResult> result =
      runner_.Run({"jailover-no-such-program", "x"}, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  EXPECT_EQ(result.status().message(), absl::StrCat("jailover-no-such-program: not found in PATH (",
                                                    kDefaultCommandPath, ")"));
}

TEST_F(CommandRunnerTest, MissingAbsolutePathIsNotFound) {
  absl::StatusOr<CommandResult> result =
      runner_.Run({"/nonexistent/jailover/prog"}, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  EXPECT_EQ(result.status().message(), "/nonexistent/jailover/prog: no such file");
}

TEST_F(CommandRunnerTest, NonExecutableFileIsNotFound) {
  const std::string dir = MakeTempDir("runner_noexec");
  const std::string path = dir + "/script";
  WriteExecutable(path, "#!/bin/sh\necho hi\n");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  absl::StatusOr<CommandResult> result = runner_.Run({path}, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
  EXPECT_EQ(result.status().message(), path + ": not executable");

  result = runner_.Run({dir}, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
}

TEST_F(CommandRunnerTest, RelativeNameIsFoundViaPathInOptions) {
  const std::string dir = MakeTempDir("runner_path");
  WriteExecutable(dir + "/jailover-test-prog", "#!/bin/sh\necho \"hello $1\"\n");

  // Not in the default PATH.
  absl::StatusOr<CommandResult> result =
      runner_.Run({"jailover-test-prog", "world"}, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();

  CommandOptions options;
  options.env["PATH"] = "/nonexistent:" + dir + ":/bin:/usr/bin";
  result = runner_.Run({"jailover-test-prog", "world"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->stdout_text, "hello world\n");
}

TEST_F(CommandRunnerTest, ArgumentsAreNotInterpretedByAShell) {
  const std::string dir = MakeTempDir("runner_argv");
  const std::string marker = dir + "/pwned";
  const std::vector<std::string> args = {
      "a;b",
      "$(touch " + marker + ")",
      "`touch " + marker + "`",
      "two words",
      "*",
      "'quoted'",
      "\"double\"",
      "x && touch " + marker,
      "> out",
      "$HOME",
      "",
  };
  std::vector<std::string> argv = {"printf", "%s\\n"};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<CommandResult> result = runner_.Run(argv, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->stdout_text, absl::StrJoin(args, "\n") + "\n");
  EXPECT_FALSE(FileExists(marker));
}

TEST_F(CommandRunnerTest, DefaultEnvironmentHasOnlyPathAndLocale) {
  ASSERT_EQ(::setenv("JAILOVER_TEST_INHERITED", "from-parent", 1), 0);
  absl::StatusOr<CommandResult> result = runner_.Run({"env"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<std::string> lines = Lines(result->stdout_text);
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines, ElementsAre("LC_ALL=C", absl::StrCat("PATH=", kDefaultCommandPath)));
  ::unsetenv("JAILOVER_TEST_INHERITED");
}

TEST_F(CommandRunnerTest, EnvEntriesAreAddedAndOverrideDefaults) {
  CommandOptions options;
  options.env["LC_ALL"] = "POSIX";
  options.env["JAILOVER_X"] = "a b;c";
  absl::StatusOr<CommandResult> result = runner_.Run({"env"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<std::string> lines = Lines(result->stdout_text);
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines, ElementsAre("JAILOVER_X=a b;c", "LC_ALL=POSIX",
                                 absl::StrCat("PATH=", kDefaultCommandPath)));
}

TEST_F(CommandRunnerTest, InheritEnvironment) {
  ASSERT_EQ(::setenv("JAILOVER_TEST_INHERITED", "from-parent", 1), 0);
  ASSERT_EQ(::setenv("JAILOVER_TEST_OVERRIDDEN", "from-parent", 1), 0);
  CommandOptions options;
  options.inherit_environment = true;
  options.env["JAILOVER_TEST_OVERRIDDEN"] = "from-options";
  absl::StatusOr<CommandResult> result = runner_.Run({"env"}, options);
  ::unsetenv("JAILOVER_TEST_INHERITED");
  ::unsetenv("JAILOVER_TEST_OVERRIDDEN");
  ASSERT_TRUE(result.ok()) << result.status();
  const std::vector<std::string> lines = Lines(result->stdout_text);
  EXPECT_THAT(lines, ::testing::Contains("JAILOVER_TEST_INHERITED=from-parent"));
  EXPECT_THAT(lines, ::testing::Contains("JAILOVER_TEST_OVERRIDDEN=from-options"));
  EXPECT_THAT(lines, Not(::testing::Contains("JAILOVER_TEST_OVERRIDDEN=from-parent")));
}

TEST_F(CommandRunnerTest, EnvironmentRunnerAddsItsEntriesUnlessTheCallerSetsThem) {
  EnvironmentCommandRunner tools(runner_, {{"PATH", "/usr/bin:/bin"}, {"JAILOVER_FIXED", "1"}});
  absl::StatusOr<CommandResult> result = tools.Run({"env"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<std::string> lines = Lines(result->stdout_text);
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines, ElementsAre("JAILOVER_FIXED=1", "LC_ALL=C", "PATH=/usr/bin:/bin"));

  CommandOptions options;
  options.env["JAILOVER_FIXED"] = "caller";
  result = tools.Run({"env"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(Lines(result->stdout_text), ::testing::Contains("JAILOVER_FIXED=caller"));

  // Its PATH is where argv[0] is looked up.
  EnvironmentCommandRunner nowhere(runner_, {{"PATH", "/nonexistent-jailover-dir"}});
  EXPECT_EQ(nowhere.Run({"env"}, absl::Seconds(10)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CommandRunnerTest, StartDetachedRunsADaemonInItsOwnSessionLoggingToItsFile) {
  const std::string dir = MakeTempDir("runner_detached");
  const std::string script = dir + "/daemon.sh";
  WriteExecutable(script, "#!/bin/sh\necho \"started $JAILOVER_X\"\nexec sleep 60\n");
  DetachedOptions options;
  options.log_path = dir + "/daemon.log";
  options.env["JAILOVER_X"] = "with env";
  absl::StatusOr<pid_t> pid = runner_.StartDetached({script}, options);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return ReadFile(options.log_path) == "started with env\n"; }, absl::Seconds(10)))
      << ReadFile(options.log_path);
  EXPECT_EQ(::getsid(*pid), *pid);     // leads its own session
  EXPECT_EQ(::getpgid(*pid), *pid);    // and its own process group
  char target[256] = {};
  ASSERT_GT(::readlink(absl::StrCat("/proc/", *pid, "/fd/0").c_str(), target, sizeof(target) - 1),
            0);
  EXPECT_STREQ(target, "/dev/null");
  // The pid is the program's own (the script execs `sleep` right after its
  // echo), not a starter's.
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        return ReadFile(absl::StrCat("/proc/", *pid, "/cmdline")).find("sleep") !=
               std::string::npos;
      },
      absl::Seconds(10)));
  ::kill(*pid, SIGKILL);
  EXPECT_TRUE(WaitUntilGone(*pid));
}

TEST_F(CommandRunnerTest, StartDetachedErrors) {
  const std::string dir = MakeTempDir("runner_detached_errors");
  DetachedOptions options;
  options.log_path = dir + "/daemon.log";
  EXPECT_EQ(runner_.StartDetached({"jailover-no-such-program"}, options).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(runner_.StartDetached({}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A script whose interpreter is missing passes the checks but cannot exec.
  const std::string bad = dir + "/bad.sh";
  WriteExecutable(bad, "#!/nonexistent/interpreter\n");
  const absl::Status not_started = runner_.StartDetached({bad}, options).status();
  EXPECT_EQ(not_started.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(not_started.message(), HasSubstr("not started"));
  DetachedOptions relative;
  relative.log_path = "daemon.log";
  EXPECT_EQ(runner_.StartDetached({"sleep", "1"}, relative).status().code(),
            absl::StatusCode::kInvalidArgument);
  relative.log_path = dir + "/no/such/dir/daemon.log";
  EXPECT_EQ(runner_.StartDetached({"sleep", "1"}, relative).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandRunnerTest, InvalidEnvNameIsInvalidArgument) {
  CommandOptions options;
  options.env["A=B"] = "x";
  EXPECT_EQ(runner_.Run({"true"}, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandRunnerTest, ChildSignalMaskIsEmptyWhenCallerBlocksSigterm) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigset_t old_mask;
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  // With SIGTERM blocked in the child the shell would sleep and exit 0.
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "kill -TERM $$; sleep 5"}, absl::Seconds(10));
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->term_signal, SIGTERM);
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_LT(result->elapsed, absl::Seconds(4));
}

TEST_F(CommandRunnerTest, ChildSignalDispositionsAreDefaultWhenCallerIgnoresSighup) {
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction old_action;
  ASSERT_EQ(::sigaction(SIGHUP, &ignore, &old_action), 0);
  // A shell cannot un-ignore a signal ignored on entry; it must not inherit it.
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "kill -HUP $$; sleep 5"}, absl::Seconds(10));
  ASSERT_EQ(::sigaction(SIGHUP, &old_action, nullptr), 0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->term_signal, SIGHUP);
}

TEST_F(CommandRunnerTest, ChildIsLeaderOfItsOwnProcessGroup) {
  absl::StatusOr<CommandResult> result =
      runner_.Run({"sh", "-c", "command -v ps >/dev/null || exit 127; ps -o pgid= -p $$; echo $$"},
                  absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  if (result->exit_code == 127) GTEST_SKIP() << "no ps(1): " << result->stderr_text;
  const std::vector<std::string> lines = Lines(result->stdout_text);
  ASSERT_EQ(lines.size(), 2u) << result->stdout_text << result->stderr_text;
  EXPECT_EQ(std::atoi(lines[0].c_str()), std::atoi(lines[1].c_str()));
  EXPECT_NE(std::atoi(lines[0].c_str()), static_cast<int>(::getpgrp()));
}

TEST_F(CommandRunnerTest, InheritedDescriptorsAreClosed) {
  // A descriptor without FD_CLOEXEC, as a careless library might leave one.
  const int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  if (fd > 9) {
    ::close(fd);
    GTEST_SKIP() << "sh redirections only take descriptors 0-9";
  }
  absl::StatusOr<CommandResult> result = runner_.Run(
      {"sh", "-c", absl::StrCat("if true <&", fd, "; then echo open; else echo closed; fi")},
      absl::Seconds(10));
  ::close(fd);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "closed\n");
}

TEST_F(CommandRunnerTest, WorkingDir) {
  const std::string dir = MakeTempDir("runner_cwd");
  char* real = ::realpath(dir.c_str(), nullptr);
  ASSERT_NE(real, nullptr);
  const std::string real_dir = real;
  ::free(real);
  WriteExecutable(dir + "/local-prog", "#!/bin/sh\necho local\n");

  CommandOptions options;
  options.working_dir = dir;
  absl::StatusOr<CommandResult> result = runner_.Run({"pwd", "-P"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, real_dir + "\n");

  // A relative argv[0] with a '/' is relative to the working directory.
  result = runner_.Run({"./local-prog"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "local\n");

  options.working_dir = dir + "/missing";
  result = runner_.Run({"pwd"}, options);
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr(dir + "/missing"));
}

TEST_F(CommandRunnerTest, EmptyArgvIsInvalidArgument) {
  EXPECT_EQ(runner_.Run({}, absl::Seconds(10)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandRunnerTest, NulByteIsInvalidArgument) {
  EXPECT_EQ(runner_.Run({"echo", std::string("a\0b", 3)}, absl::Seconds(10)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandRunnerTest, ConcurrentRunsKeepTheirOutputApart) {
  constexpr int kThreads = 8;
  constexpr int kRunsPerThread = 5;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &failures] {
      for (int i = 0; i < kRunsPerThread; ++i) {
        const std::string word = absl::StrCat("thread", t, "-run", i);
        absl::StatusOr<CommandResult> result =
            runner_.Run({"sh", "-c", "echo \"$0\"; echo \"$0\" >&2", word}, absl::Seconds(30));
        if (!result.ok() || result->stdout_text != word + "\n" ||
            result->stderr_text != word + "\n" || result->exit_code != 0) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, ::testing::Each(0));
}

TEST(FormatArgvTest, PlainWordsAreJoinedBySpaces) {
  EXPECT_EQ(FormatArgv({"jail", "-c", "name=web01", "path=/jails/web01"}),
            "jail -c name=web01 path=/jails/web01");
  EXPECT_EQ(FormatArgv({"ifconfig", "em0", "inet", "192.0.2.1/24", "alias"}),
            "ifconfig em0 inet 192.0.2.1/24 alias");
  EXPECT_EQ(FormatArgv({"a_b.c:d=e@f%g+h,i-j"}), "a_b.c:d=e@f%g+h,i-j");
}

TEST(FormatArgvTest, EmptyArgv) { EXPECT_EQ(FormatArgv({}), ""); }

TEST(FormatArgvTest, QuotesEmptyAndSpecialElements) {
  EXPECT_EQ(FormatArgv({"echo", ""}), "echo ''");
  EXPECT_EQ(FormatArgv({"echo", "two words"}), "echo 'two words'");
  EXPECT_EQ(FormatArgv({"a;b", "$(x)", "`y`", "*", "~", "a\tb"}),
            "'a;b' '$(x)' '`y`' '*' '~' 'a\tb'");
}

TEST(FormatArgvTest, EscapesSingleQuotes) {
  EXPECT_EQ(FormatArgv({"it's"}), "'it'\\''s'");
  EXPECT_EQ(FormatArgv({"'"}), "''\\'''");
}

TEST(SingleQuoteForShellTest, QuotesAlwaysAndEscapesQuotes) {
  EXPECT_EQ(SingleQuoteForShell(""), "''");
  EXPECT_EQ(SingleQuoteForShell("plain"), "'plain'");
  EXPECT_EQ(SingleQuoteForShell("a b$(x)"), "'a b$(x)'");
  EXPECT_EQ(SingleQuoteForShell("it's"), "'it'\\''s'");
}

TEST(FormatArgvTest, SecretArgumentsAreMasked) {
  EXPECT_EQ(FormatArgv({"ifconfig", "em0", "vhid", "1", "pass", "s3cret", "alias", "10.0.0.5/32"},
                       {5}),
            "ifconfig em0 vhid 1 pass *** alias 10.0.0.5/32");
}

TEST(CommandRunnerSecretTest, TimeoutErrorDoesNotShowTheSecret) {
  SubprocessCommandRunner runner;
  CommandOptions options;
  options.timeout = absl::Milliseconds(100);
  options.secret_args = {3};
  // sh gets the secret as $0 and ignores it.
  const auto result = runner.Run({"sh", "-c", "sleep 5", "hunter2"}, options);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(result.status().message()),
              ::testing::Not(::testing::HasSubstr("hunter2")));
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("sh -c 'sleep 5' ***"));
}

}  // namespace
}  // namespace jailover::common

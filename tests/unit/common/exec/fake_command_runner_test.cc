#include "tests/testing/fake_command_runner.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace jailover::testing {
namespace {

using common::CommandOptions;
using common::CommandResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Argv = std::vector<std::string>;

TEST(FakeCommandRunnerTest, ReturnsScriptedResultsInOrder) {
  FakeCommandRunner runner;
  runner.ExpectExit({"jail", "-c", "name=web01"}, 0, "created\n");
  runner.ExpectExit({"jls", "-j", "web01"}, 1, "", "jls: jail \"web01\" not found\n");
  EXPECT_FALSE(runner.AllConsumed());

  absl::StatusOr<CommandResult> first = runner.Run({"jail", "-c", "name=web01"}, absl::Seconds(5));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->exit_code, 0);
  EXPECT_EQ(first->stdout_text, "created\n");

  absl::StatusOr<CommandResult> second = runner.Run({"jls", "-j", "web01"}, absl::Seconds(5));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit_code, 1);
  EXPECT_EQ(second->stderr_text, "jls: jail \"web01\" not found\n");

  EXPECT_TRUE(runner.AllConsumed());
  runner.VerifyAllConsumed();
  EXPECT_THAT(runner.calls(),
              ElementsAre(Argv{"jail", "-c", "name=web01"}, Argv{"jls", "-j", "web01"}));
}

TEST(FakeCommandRunnerTest, ExpectReturnsTheFullResult) {
  FakeCommandRunner runner;
  CommandResult killed;
  killed.term_signal = 9;
  killed.stdout_truncated = true;
  runner.Expect({"mkfs", "/dev/md0"}, killed);
  absl::StatusOr<CommandResult> result = runner.Run({"mkfs", "/dev/md0"}, absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, -1);
  EXPECT_EQ(result->term_signal, 9);
  EXPECT_TRUE(result->stdout_truncated);
}

TEST(FakeCommandRunnerTest, ExpectErrorReturnsTheStatus) {
  FakeCommandRunner runner;
  runner.ExpectError({"jail", "-r", "web01"}, absl::DeadlineExceededError("timed out after 30s"));
  absl::StatusOr<CommandResult> result = runner.Run({"jail", "-r", "web01"}, absl::Seconds(30));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(result.status().message(), "timed out after 30s");
  EXPECT_TRUE(runner.AllConsumed());
}

TEST(FakeCommandRunnerTest, UnexpectedArgvFailsTheTest) {
  FakeCommandRunner runner;
  runner.ExpectExit({"jail", "-c", "name=web01"}, 0);
  absl::StatusOr<CommandResult> result;
  EXPECT_NONFATAL_FAILURE((result = runner.Run({"jail", "-c", "name=web02"}, absl::Seconds(5))),
                          "expected: jail -c name=web01\n  actual:   jail -c name=web02");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  // The expectation is still pending.
  EXPECT_FALSE(runner.AllConsumed());
}

TEST(FakeCommandRunnerTest, ArgvDifferingOnlyInQuotingIsUnexpected) {
  FakeCommandRunner runner;
  runner.ExpectExit({"sh", "-c", "a b"}, 0);
  absl::StatusOr<CommandResult> result;
  EXPECT_NONFATAL_FAILURE((result = runner.Run({"sh", "-c", "a", "b"}, absl::Seconds(5))),
                          "expected: sh -c 'a b'\n  actual:   sh -c a b");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
}

TEST(FakeCommandRunnerTest, CallWithNoExpectationLeftFailsTheTest) {
  FakeCommandRunner runner;
  absl::StatusOr<CommandResult> result;
  EXPECT_NONFATAL_FAILURE((result = runner.Run({"ifconfig", "em0"}, absl::Seconds(5))),
                          "no more expected");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("ifconfig em0"));
}

TEST(FakeCommandRunnerTest, OutOfOrderCallFailsTheTest) {
  FakeCommandRunner runner;
  runner.ExpectExit({"mdconfig", "-a"}, 0);
  runner.ExpectExit({"mount", "/dev/md0", "/jails/web01"}, 0);
  absl::StatusOr<CommandResult> result;
  EXPECT_NONFATAL_FAILURE(
      (result = runner.Run({"mount", "/dev/md0", "/jails/web01"}, absl::Seconds(5))),
      "out of order: matches expected command #2");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
}

TEST(FakeCommandRunnerTest, VerifyAllConsumedListsLeftovers) {
  FakeCommandRunner runner;
  runner.ExpectExit({"jail", "-c", "name=web01"}, 0);
  runner.ExpectExit({"ifconfig", "em0", "alias", "192.0.2.1/32"}, 0);
  ASSERT_TRUE(runner.Run({"jail", "-c", "name=web01"}, absl::Seconds(5)).ok());
  EXPECT_FALSE(runner.AllConsumed());
  EXPECT_NONFATAL_FAILURE(runner.VerifyAllConsumed(), "#2: ifconfig em0 alias 192.0.2.1/32");
}

TEST(FakeCommandRunnerTest, RecordsOptions) {
  FakeCommandRunner runner;
  runner.ExpectExit({"zfs", "list"}, 0);
  runner.ExpectExit({"zpool", "status"}, 0);
  CommandOptions options;
  options.timeout = absl::Seconds(7);
  options.env["LC_ALL"] = "POSIX";
  options.working_dir = "/var/empty";
  ASSERT_TRUE(runner.Run({"zfs", "list"}, options).ok());
  ASSERT_TRUE(runner.Run({"zpool", "status"}, absl::Seconds(3)).ok());

  const std::vector<CommandOptions> recorded = runner.options();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].timeout, absl::Seconds(7));
  EXPECT_EQ(recorded[0].env.at("LC_ALL"), "POSIX");
  EXPECT_EQ(recorded[0].working_dir, "/var/empty");
  EXPECT_EQ(runner.last_options().timeout, absl::Seconds(3));
}

TEST(FakeCommandRunnerTest, LastOptionsWithoutCallsFailsTheTest) {
  FakeCommandRunner runner;
  EXPECT_NONFATAL_FAILURE(runner.last_options(), "no command was run");
}

TEST(FakeCommandRunnerTest, IsThreadSafe) {
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 50;
  FakeCommandRunner runner;
  for (int i = 0; i < kThreads * kCallsPerThread; ++i) runner.ExpectExit({"true"}, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&runner] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        EXPECT_TRUE(runner.Run({"true"}, absl::Seconds(1)).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(runner.AllConsumed());
  EXPECT_EQ(runner.calls().size(), static_cast<size_t>(kThreads * kCallsPerThread));
}

TEST(FaultInjectingCommandRunnerTest, DelegatesWhenNoFault) {
  FakeCommandRunner base;
  base.ExpectExit({"jls"}, 0, "web01\n");
  FaultInjectingCommandRunner runner(base);
  absl::StatusOr<CommandResult> result = runner.Run({"jls"}, absl::Seconds(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_text, "web01\n");
  EXPECT_EQ(runner.call_count(), 1);
  EXPECT_EQ(runner.injected_count(), 0);
  base.VerifyAllConsumed();
}

TEST(FaultInjectingCommandRunnerTest, FailsTheNthCallOnly) {
  FakeCommandRunner base;
  base.ExpectExit({"a"}, 0);
  base.ExpectExit({"c"}, 0);  // "b" never reaches the base.
  FaultInjectingCommandRunner runner(base);
  runner.FailNthCall(2, absl::UnavailableError("injected"));

  EXPECT_TRUE(runner.Run({"a"}, absl::Seconds(5)).ok());
  absl::StatusOr<CommandResult> second = runner.Run({"b"}, absl::Seconds(5));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(second.status().message(), "injected");
  EXPECT_TRUE(runner.Run({"c"}, absl::Seconds(5)).ok());

  EXPECT_EQ(runner.call_count(), 3);
  EXPECT_EQ(runner.injected_count(), 1);
  base.VerifyAllConsumed();
}

TEST(FaultInjectingCommandRunnerTest, FailsEveryCallOfAProgramUntilCleared) {
  FakeCommandRunner base;
  base.ExpectExit({"jail", "-c", "name=web01"}, 0);
  base.ExpectExit({"ifconfig", "em0"}, 0);
  FaultInjectingCommandRunner runner(base);
  runner.FailProgram("ifconfig", absl::DeadlineExceededError("timed out after 30s: ifconfig"));

  EXPECT_TRUE(runner.Run({"jail", "-c", "name=web01"}, absl::Seconds(5)).ok());
  EXPECT_EQ(runner.Run({"ifconfig", "em0"}, absl::Seconds(5)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(runner.Run({"ifconfig", "em1"}, absl::Seconds(5)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(runner.injected_count(), 2);

  runner.ClearFaults();
  EXPECT_TRUE(runner.Run({"ifconfig", "em0"}, absl::Seconds(5)).ok());
  base.VerifyAllConsumed();
}

TEST(FaultInjectingCommandRunnerTest, ProgramMatchIsOnArgv0Exactly) {
  FakeCommandRunner base;
  base.ExpectExit({"/sbin/ifconfig", "em0"}, 0);
  base.ExpectExit({"route", "ifconfig"}, 0);
  FaultInjectingCommandRunner runner(base);
  runner.FailProgram("ifconfig", absl::InternalError("injected"));
  EXPECT_TRUE(runner.Run({"/sbin/ifconfig", "em0"}, absl::Seconds(5)).ok());
  EXPECT_TRUE(runner.Run({"route", "ifconfig"}, absl::Seconds(5)).ok());
  EXPECT_EQ(runner.injected_count(), 0);
  base.VerifyAllConsumed();
}

TEST(FaultInjectingCommandRunnerTest, OkStatusIsRejected) {
  FakeCommandRunner base;
  FaultInjectingCommandRunner runner(base);
  EXPECT_NONFATAL_FAILURE(runner.FailNthCall(1, absl::OkStatus()), "not an error");
}

}  // namespace
}  // namespace jailover::testing

namespace jailover::testing {
namespace {

TEST(FakeCommandRunnerDetachedTest, DetachedAndRunExpectationsDoNotMix) {
  FakeCommandRunner runner;
  runner.ExpectDetached({"ucarp", "-i", "eth0"}, 4242);
  runner.ExpectExit({"ip", "addr"}, 0);
  common::DetachedOptions options;
  options.log_path = "/var/log/ucarp.log";
  auto pid = runner.StartDetached({"ucarp", "-i", "eth0"}, options);
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(*pid, 4242);
  // A StartDetached where a Run is expected fails the test.
  absl::Status wrong;
  EXPECT_NONFATAL_FAILURE(wrong = runner.StartDetached({"ip", "addr"}, options).status(),
                          "(detached) ip addr");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInternal);
  ASSERT_EQ(runner.detached_options().size(), 2u);
  EXPECT_EQ(runner.detached_options()[0].log_path, "/var/log/ucarp.log");
  EXPECT_TRUE(runner.Run({"ip", "addr"}, absl::Seconds(1)).ok());
  runner.VerifyAllConsumed();
}

}  // namespace
}  // namespace jailover::testing

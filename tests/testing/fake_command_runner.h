// Test doubles for common::CommandRunner.
//
// FakeCommandRunner is scripted: a test lists the commands it expects, in
// order, each with the result (or error) to return. The argv is our contract
// with jail(8), ifconfig(8) and friends, so a call whose argv differs from
// the next expectation, or a call after the script has run out, fails the
// test (ADD_FAILURE with both argvs) and returns Internal. Nothing is run.
//
//   FakeCommandRunner runner;
//   runner.ExpectExit({"jail", "-r", "web01"}, 0);
//   runner.ExpectError({"jls", "--libxo", "json"}, absl::DeadlineExceededError("slow"));
//   ... exercise the code under test ...
//   runner.VerifyAllConsumed();
//
// FaultInjectingCommandRunner wraps another runner (leveldb EnvWrapper style)
// and makes chosen calls fail with a given status: the Nth call, or every
// call of a given program. All other calls go to the wrapped runner.
//
// Both classes are thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/exec/command_runner.h"

namespace jailover::testing {

class FakeCommandRunner final : public common::CommandRunner {
 public:
  FakeCommandRunner() = default;
  FakeCommandRunner(const FakeCommandRunner&) = delete;
  FakeCommandRunner& operator=(const FakeCommandRunner&) = delete;

  // Appends an expectation: the next unconsumed call must have exactly
  // `argv`; it returns `result`.
  void Expect(std::vector<std::string> argv, common::CommandResult result);
  // Like Expect, with a result that exited normally with `exit_code`.
  void ExpectExit(std::vector<std::string> argv, int exit_code, std::string stdout_text = "",
                  std::string stderr_text = "");
  // Like Expect, but the call returns `status`, which must not be OK (e.g.
  // DeadlineExceeded, NotFound).
  void ExpectError(std::vector<std::string> argv, absl::Status status);
  // Appends an expectation for StartDetached with exactly `argv`; it returns
  // `pid` (or its error). A Run call does not match it, nor the reverse.
  void ExpectDetached(std::vector<std::string> argv, absl::StatusOr<pid_t> pid);

  // True when every expectation has been consumed.
  bool AllConsumed() const;
  // Fails the test (ADD_FAILURE) listing the expectations not yet consumed.
  void VerifyAllConsumed() const;

  // The argv of every call received, matched or not, in order.
  std::vector<std::vector<std::string>> calls() const;
  // The options of every call received, in the same order as calls().
  std::vector<common::CommandOptions> options() const;
  // The options of the most recent call. Fails the test if there was none.
  common::CommandOptions last_options() const;

  // CommandRunner
  using common::CommandRunner::Run;
  absl::StatusOr<common::CommandResult> Run(const std::vector<std::string>& argv,
                                            const common::CommandOptions& options) override;
  // Recorded in calls() like Run; options() gets the daemon's env.
  absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                      const common::DetachedOptions& options) override;
  // The options of every StartDetached call, in order.
  std::vector<common::DetachedOptions> detached_options() const;

 private:
  struct Expectation {
    std::vector<std::string> argv;
    absl::StatusOr<common::CommandResult> result;
    bool detached = false;
    absl::StatusOr<pid_t> pid = 0;
  };
  // Matches `argv` against the next expectation (of kind `detached`);
  // returns its index or Internal after ADD_FAILURE.
  absl::StatusOr<size_t> Consume(const std::vector<std::string>& argv, bool detached)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Every expectation in order; those from index next_ on are unconsumed.
  std::vector<Expectation> expected_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::vector<std::string>> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<common::CommandOptions> options_ ABSL_GUARDED_BY(mu_);
  std::vector<common::DetachedOptions> detached_options_ ABSL_GUARDED_BY(mu_);
};

class FaultInjectingCommandRunner final : public common::CommandRunner {
 public:
  // `base` is not owned and must outlive this object.
  explicit FaultInjectingCommandRunner(common::CommandRunner& base);
  FaultInjectingCommandRunner(const FaultInjectingCommandRunner&) = delete;
  FaultInjectingCommandRunner& operator=(const FaultInjectingCommandRunner&) = delete;

  // Makes call number `n` (1-based, counting every call made through this
  // runner since construction) return `status` instead of running. `status`
  // must not be OK.
  void FailNthCall(int n, absl::Status status);
  // Makes every call whose argv[0] equals `program` return `status` instead
  // of running, until ClearFaults(). `status` must not be OK.
  void FailProgram(std::string program, absl::Status status);
  // Removes all faults; later calls all go to the wrapped runner.
  void ClearFaults();

  // Calls made through this runner, failed or delegated.
  int call_count() const;
  // Calls answered with an injected fault.
  int injected_count() const;

  // CommandRunner
  using common::CommandRunner::Run;
  absl::StatusOr<common::CommandResult> Run(const std::vector<std::string>& argv,
                                            const common::CommandOptions& options) override;
  absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                      const common::DetachedOptions& options) override;

 private:
  // The fault for this call, if any (counts the call).
  std::optional<absl::Status> NextFault(const std::vector<std::string>& argv);

  common::CommandRunner& base_;  // Not owned.
  mutable absl::Mutex mu_;
  std::map<int, absl::Status> nth_faults_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> program_faults_ ABSL_GUARDED_BY(mu_);
  int call_count_ ABSL_GUARDED_BY(mu_) = 0;
  int injected_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jailover::testing

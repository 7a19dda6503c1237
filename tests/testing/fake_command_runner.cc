#include "tests/testing/fake_command_runner.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace jailover::testing {
namespace {

// An OK status cannot stand for an error; tests that pass one get a failure
// and the call returns Internal instead.
absl::Status CheckIsError(absl::Status status, absl::string_view caller) {
  if (!status.ok()) return status;
  ADD_FAILURE() << caller << ": an OK status is not an error";
  return absl::InternalError(absl::StrCat(caller, " was given an OK status"));
}

}  // namespace

void FakeCommandRunner::Expect(std::vector<std::string> argv, common::CommandResult result) {
  absl::MutexLock lock(&mu_);
  expected_.push_back(Expectation{std::move(argv), std::move(result)});
}

void FakeCommandRunner::ExpectExit(std::vector<std::string> argv, int exit_code,
                                   std::string stdout_text, std::string stderr_text) {
  common::CommandResult result;
  result.exit_code = exit_code;
  result.stdout_text = std::move(stdout_text);
  result.stderr_text = std::move(stderr_text);
  Expect(std::move(argv), std::move(result));
}

void FakeCommandRunner::ExpectError(std::vector<std::string> argv, absl::Status status) {
  status = CheckIsError(std::move(status), "FakeCommandRunner::ExpectError");
  absl::MutexLock lock(&mu_);
  expected_.push_back(Expectation{std::move(argv), std::move(status)});
}

bool FakeCommandRunner::AllConsumed() const {
  absl::MutexLock lock(&mu_);
  return next_ == expected_.size();
}

void FakeCommandRunner::VerifyAllConsumed() const {
  std::string leftovers;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = next_; i < expected_.size(); ++i) {
      absl::StrAppend(&leftovers, "\n  #", i + 1, ": ", common::FormatArgv(expected_[i].argv));
    }
  }
  if (!leftovers.empty()) {
    ADD_FAILURE() << "FakeCommandRunner: expected commands were never run:" << leftovers;
  }
}

std::vector<std::vector<std::string>> FakeCommandRunner::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<common::CommandOptions> FakeCommandRunner::options() const {
  absl::MutexLock lock(&mu_);
  return options_;
}

common::CommandOptions FakeCommandRunner::last_options() const {
  absl::MutexLock lock(&mu_);
  if (options_.empty()) {
    ADD_FAILURE() << "FakeCommandRunner::last_options: no command was run";
    return common::CommandOptions();
  }
  return options_.back();
}

absl::StatusOr<size_t> FakeCommandRunner::Consume(const std::vector<std::string>& argv,
                                                  bool detached) {
  const std::string actual = absl::StrCat(detached ? "(detached) " : "", common::FormatArgv(argv));
  std::string failure;
  if (next_ == expected_.size()) {
    failure = absl::StrCat("FakeCommandRunner: unexpected command (no more expected)\n",
                           "  actual:   ", actual);
  } else if (expected_[next_].argv != argv || expected_[next_].detached != detached) {
    failure = absl::StrCat("FakeCommandRunner: unexpected command #", next_ + 1, "\n",
                           "  expected: ", expected_[next_].detached ? "(detached) " : "",
                           common::FormatArgv(expected_[next_].argv), "\n", "  actual:   ",
                           actual);
    for (size_t i = next_ + 1; i < expected_.size(); ++i) {
      if (expected_[i].argv == argv && expected_[i].detached == detached) {
        absl::StrAppend(&failure, "\n  (out of order: matches expected command #", i + 1, ")");
        break;
      }
    }
  } else {
    return next_++;
  }
  ADD_FAILURE() << failure;
  return absl::InternalError(failure);
}

absl::StatusOr<common::CommandResult> FakeCommandRunner::Run(
    const std::vector<std::string>& argv, const common::CommandOptions& options) {
  absl::MutexLock lock(&mu_);
  calls_.push_back(argv);
  options_.push_back(options);
  absl::StatusOr<size_t> index = Consume(argv, false);
  if (!index.ok()) return index.status();
  return expected_[*index].result;
}

void FakeCommandRunner::ExpectDetached(std::vector<std::string> argv,
                                       absl::StatusOr<pid_t> pid) {
  absl::MutexLock lock(&mu_);
  Expectation expectation{std::move(argv), common::CommandResult()};
  expectation.detached = true;
  expectation.pid = std::move(pid);
  expected_.push_back(std::move(expectation));
}

absl::StatusOr<pid_t> FakeCommandRunner::StartDetached(const std::vector<std::string>& argv,
                                                       const common::DetachedOptions& options) {
  absl::MutexLock lock(&mu_);
  calls_.push_back(argv);
  common::CommandOptions as_run;
  as_run.inherit_environment = options.inherit_environment;
  as_run.env = options.env;
  as_run.working_dir = options.working_dir;
  as_run.secret_args = options.secret_args;
  options_.push_back(std::move(as_run));
  detached_options_.push_back(options);
  absl::StatusOr<size_t> index = Consume(argv, true);
  if (!index.ok()) return index.status();
  return expected_[*index].pid;
}

std::vector<common::DetachedOptions> FakeCommandRunner::detached_options() const {
  absl::MutexLock lock(&mu_);
  return detached_options_;
}

FaultInjectingCommandRunner::FaultInjectingCommandRunner(common::CommandRunner& base)
    : base_(base) {}

void FaultInjectingCommandRunner::FailNthCall(int n, absl::Status status) {
  status = CheckIsError(std::move(status), "FaultInjectingCommandRunner::FailNthCall");
  absl::MutexLock lock(&mu_);
  nth_faults_[n] = std::move(status);
}

void FaultInjectingCommandRunner::FailProgram(std::string program, absl::Status status) {
  status = CheckIsError(std::move(status), "FaultInjectingCommandRunner::FailProgram");
  absl::MutexLock lock(&mu_);
  program_faults_[std::move(program)] = std::move(status);
}

void FaultInjectingCommandRunner::ClearFaults() {
  absl::MutexLock lock(&mu_);
  nth_faults_.clear();
  program_faults_.clear();
}

int FaultInjectingCommandRunner::call_count() const {
  absl::MutexLock lock(&mu_);
  return call_count_;
}

int FaultInjectingCommandRunner::injected_count() const {
  absl::MutexLock lock(&mu_);
  return injected_count_;
}

std::optional<absl::Status> FaultInjectingCommandRunner::NextFault(
    const std::vector<std::string>& argv) {
  std::optional<absl::Status> fault;
  {
    absl::MutexLock lock(&mu_);
    const int call = ++call_count_;
    if (auto it = nth_faults_.find(call); it != nth_faults_.end()) {
      fault = it->second;
      nth_faults_.erase(it);
    } else if (!argv.empty()) {
      if (auto it = program_faults_.find(argv[0]); it != program_faults_.end()) {
        fault = it->second;
      }
    }
    if (fault.has_value()) ++injected_count_;
  }
  return fault;
}

absl::StatusOr<common::CommandResult> FaultInjectingCommandRunner::Run(
    const std::vector<std::string>& argv, const common::CommandOptions& options) {
  if (std::optional<absl::Status> fault = NextFault(argv); fault.has_value()) return *fault;
  // Outside the lock: the wrapped runner may block for the command's duration.
  return base_.Run(argv, options);
}

absl::StatusOr<pid_t> FaultInjectingCommandRunner::StartDetached(
    const std::vector<std::string>& argv, const common::DetachedOptions& options) {
  if (std::optional<absl::Status> fault = NextFault(argv); fault.has_value()) return *fault;
  return base_.StartDetached(argv, options);
}

}  // namespace jailover::testing

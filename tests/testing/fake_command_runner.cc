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

absl::StatusOr<common::CommandResult> FakeCommandRunner::Run(
    const std::vector<std::string>& argv, const common::CommandOptions& options) {
  std::string failure;
  absl::StatusOr<common::CommandResult> result;
  {
    absl::MutexLock lock(&mu_);
    calls_.push_back(argv);
    options_.push_back(options);
    const std::string actual = common::FormatArgv(argv);
    if (next_ == expected_.size()) {
      failure = absl::StrCat("FakeCommandRunner: unexpected command (no more expected)\n",
                             "  actual:   ", actual);
    } else if (expected_[next_].argv != argv) {
      failure = absl::StrCat("FakeCommandRunner: unexpected command #", next_ + 1, "\n",
                             "  expected: ", common::FormatArgv(expected_[next_].argv), "\n",
                             "  actual:   ", actual);
      for (size_t i = next_ + 1; i < expected_.size(); ++i) {
        if (expected_[i].argv == argv) {
          absl::StrAppend(&failure, "\n  (out of order: matches expected command #", i + 1, ")");
          break;
        }
      }
    } else {
      result = expected_[next_++].result;
    }
  }
  if (!failure.empty()) {
    ADD_FAILURE() << failure;
    return absl::InternalError(failure);
  }
  return result;
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

absl::StatusOr<common::CommandResult> FaultInjectingCommandRunner::Run(
    const std::vector<std::string>& argv, const common::CommandOptions& options) {
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
  if (fault.has_value()) return *std::move(fault);
  // Outside the lock: the wrapped runner may block for the command's duration.
  return base_.Run(argv, options);
}

}  // namespace jailover::testing

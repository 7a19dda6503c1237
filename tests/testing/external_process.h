// ExternalProcess: a long-running program started by a test (a daemon built
// by this project), with its stdout and stderr in a log file. RAII: the
// destructor kills the process's whole group and reaps it, so a failing test
// leaves nothing running. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jailover::testing {

class ExternalProcess {
 public:
  // Starts argv[0] (a path) in a new process group with stdin on /dev/null
  // and stdout+stderr appended to `log_path`.
  static absl::StatusOr<std::unique_ptr<ExternalProcess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path);

  ~ExternalProcess();
  ExternalProcess(const ExternalProcess&) = delete;
  ExternalProcess& operator=(const ExternalProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The log file's contents so far (for failure messages).
  std::string ReadLog() const;

  // Sends `signal` to the process (not its group).
  void Signal(int signal);
  // Waits up to `timeout` for the process to exit and returns its raw wait
  // status (use WIFEXITED/WEXITSTATUS); DeadlineExceeded if still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // True until the process has been reaped by Wait.
  bool running() const { return !reaped_; }

 private:
  ExternalProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
};

}  // namespace jailover::testing

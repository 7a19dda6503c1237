// A CommandRunner executes external programs without a shell. It is the only
// way jailover code may start a short-lived process (jail, ifconfig, mkfs, ...).
// Arguments are passed as argv, one element each, so `;`, `$()` or spaces in
// an argument are never interpreted. Implementations are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jailover::common {

// The PATH a child gets unless the caller sets one: the system directories of
// FreeBSD and Linux, base system first.
inline constexpr char kDefaultCommandPath[] =
    "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

struct CommandOptions {
  // The command and all its descendants are killed after this long.
  absl::Duration timeout = absl::Seconds(30);
  // The child's environment. With inherit_environment = false (the default)
  // the child gets only PATH=kDefaultCommandPath and LC_ALL=C (so tool output
  // is parsed in one known locale) plus `env`. With true it gets this
  // process's environment with `env` applied on top. An entry in `env`
  // overrides a variable of the same name, PATH included; PATH also decides
  // where argv[0] is looked up when it has no '/'.
  bool inherit_environment = false;
  std::map<std::string, std::string> env;
  // Working directory of the child; empty = the caller's.
  std::string working_dir;
  // Bytes kept of stdout and of stderr, each; the rest is read and dropped
  // (so the child never blocks on a full pipe) and *_truncated is set.
  size_t max_output_bytes = 1 << 20;
  // Indices of argv elements that are secrets (a CARP password): shown as
  // '***' in logs and error messages, passed to the child unchanged.
  std::vector<size_t> secret_args;
};

// How CommandRunner::StartDetached starts a daemon.
struct DetachedOptions {
  // stdout and stderr are appended to this file (created mode 0600).
  // Required: a daemon's output must go somewhere an operator can read.
  std::string log_path;
  // Environment and working directory, as in CommandOptions.
  bool inherit_environment = false;
  std::map<std::string, std::string> env;
  std::string working_dir;
  // argv indices shown as *** in logs and errors.
  std::vector<size_t> secret_args;
};

struct CommandResult {
  // Exit status when the child exited normally, else -1.
  int exit_code = -1;
  // Signal that ended the child, else 0.
  int term_signal = 0;
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  absl::Duration elapsed;

  bool ok() const { return exit_code == 0; }
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs argv[0] with arguments argv[1..] and waits for it and for the end
  // of its output. A non-zero exit code or a signal is returned in
  // CommandResult, not as an error. Errors:
  //   InvalidArgument   empty argv, or an element containing a NUL byte;
  //   NotFound          argv[0] is not an executable file (searched in PATH);
  //   DeadlineExceeded  `options.timeout` passed: the child's whole process
  //                     group was killed with SIGKILL;
  //   Internal          the process could not be started (fork/pipe failure).
  virtual absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                            const CommandOptions& options) = 0;

  // Starts argv[0] as a daemon the caller keeps (ucarp, nbd-server, nbdfuse,
  // a Linux jail's init): in a new session (its own process group, no
  // controlling terminal), stdin on /dev/null, stdout and stderr appended to
  // options.log_path, default signal dispositions and an empty signal mask,
  // and not a child of this process (double fork), so it outlives the caller
  // and is never left a zombie. Returns its pid once it has exec'd. Errors:
  // InvalidArgument (bad argv, env or log path), NotFound (argv[0] is not an
  // executable, searched in PATH), Internal (fork/exec failure). Runners
  // that cannot start daemons return Unimplemented.
  virtual absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                              const DetachedOptions& options);

  // Run with default options and the given timeout.
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    absl::Duration timeout) {
    CommandOptions options;
    options.timeout = timeout;
    return Run(argv, options);
  }
};

// Runs commands with posix_spawn. Each child is the leader of a new process
// group, starts with default signal dispositions and an empty signal mask
// (daemons block SIGTERM in every thread), has stdin on /dev/null, and is
// killed with its whole group on timeout.
class SubprocessCommandRunner final : public CommandRunner {
 public:
  using CommandRunner::Run;
  // CommandRunner
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const CommandOptions& options) override;
  absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                      const DetachedOptions& options) override;
};

// Runs every command through another runner with fixed environment entries
// added where the caller did not set the same variable: a driver whose tools
// are found through its own PATH (FreeBSD: the base system directories, or a
// test's fake userland first). Thread-safe if `base` is.
class EnvironmentCommandRunner final : public CommandRunner {
 public:
  // `base` is not owned and must outlive this runner.
  EnvironmentCommandRunner(CommandRunner& base, std::map<std::string, std::string> env)
      : base_(base), env_(std::move(env)) {}

  using CommandRunner::Run;
  // CommandRunner
  absl::StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                                    const CommandOptions& options) override;
  absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                      const DetachedOptions& options) override;

 private:
  CommandRunner& base_;
  const std::map<std::string, std::string> env_;
};

// `word` in POSIX sh single quotes: '...' with each ' written as '\''.
// Always quotes; callers decide which words need it.
std::string SingleQuoteForShell(absl::string_view word);

// Formats argv for logs and error messages: elements joined by spaces, an
// element quoted with '' when it is empty or holds characters a reader could
// misread (space, quote, shell metacharacters), the elements at
// `secret_args` replaced by ***. Display only, never executed.
std::string FormatArgv(const std::vector<std::string>& argv,
                       const std::vector<size_t>& secret_args = {});

}  // namespace jailover::common

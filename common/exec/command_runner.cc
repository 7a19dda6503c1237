#include "common/exec/command_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__FreeBSD__)
#include <sys/param.h>  // __FreeBSD_version
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file/unique_fd.h"
#include "common/log/log.h"

// Not declared by <unistd.h> on FreeBSD; harmless to repeat on glibc.
extern char** environ;

// posix_spawn_file_actions_addchdir_np: glibc 2.29, FreeBSD 13.1.
// posix_spawn_file_actions_addclosefrom_np: glibc 2.34, FreeBSD 13.1.
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 29)
#define JAILOVER_HAVE_SPAWN_ADDCHDIR 1
#endif
#if __GLIBC_PREREQ(2, 34)
#define JAILOVER_HAVE_SPAWN_ADDCLOSEFROM 1
#endif
#elif defined(__FreeBSD__) && defined(__FreeBSD_version)
#if __FreeBSD_version >= 1301000
#define JAILOVER_HAVE_SPAWN_ADDCHDIR 1
#define JAILOVER_HAVE_SPAWN_ADDCLOSEFROM 1
#endif
#endif

namespace jailover::common {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Bytes read per read(2) call.
constexpr size_t kReadChunk = 64 * 1024;
// Longest pause between two waitpid(WNOHANG) checks once the child has
// closed its output but not yet exited.
constexpr auto kMaxReapInterval = std::chrono::milliseconds(20);

// The read end and write end of one pipe(2).
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

// Owns a posix_spawnattr_t.
class SpawnAttr {
 public:
  SpawnAttr() { ok_ = posix_spawnattr_init(&attr_) == 0; }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;
  ~SpawnAttr() {
    if (ok_) posix_spawnattr_destroy(&attr_);
  }
  bool ok() const { return ok_; }
  posix_spawnattr_t* get() { return &attr_; }

 private:
  posix_spawnattr_t attr_;
  bool ok_ = false;
};

// Owns a posix_spawn_file_actions_t.
class SpawnFileActions {
 public:
  SpawnFileActions() { ok_ = posix_spawn_file_actions_init(&actions_) == 0; }
  SpawnFileActions(const SpawnFileActions&) = delete;
  SpawnFileActions& operator=(const SpawnFileActions&) = delete;
  ~SpawnFileActions() {
    if (ok_) posix_spawn_file_actions_destroy(&actions_);
  }
  bool ok() const { return ok_; }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
  bool ok_ = false;
};

// One captured output stream of the child.
struct Stream {
  UniqueFd fd;
  std::string* text = nullptr;
  bool* truncated = nullptr;
};

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status InternalErrno(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", ErrnoText(err)));
}

bool IsUnquotedArgvChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::strchr("_./:=@%+,-", c) != nullptr;
}

absl::Status ValidateArgv(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i].find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("argv[", i, "] of ", argv[0].substr(0, argv[0].find('\0')),
                       " contains a NUL byte"));
    }
  }
  return absl::OkStatus();
}

// Builds the child's environment as "NAME=value" strings (see CommandOptions).
absl::StatusOr<std::vector<std::string>> BuildEnvironment(const CommandOptions& options) {
  for (const auto& [name, value] : options.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid environment variable ", FormatArgv({name})));
    }
  }
  std::vector<std::string> result;
  if (options.inherit_environment) {
    // Reading `environ` races with setenv() in other threads; jailover code
    // does not modify its environment after startup.
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
      absl::string_view text(*entry);
      const absl::string_view name = text.substr(0, text.find('='));
      if (options.env.count(std::string(name)) == 0) result.emplace_back(text);
    }
  } else {
    if (options.env.count("PATH") == 0) {
      result.push_back(absl::StrCat("PATH=", kDefaultCommandPath));
    }
    if (options.env.count("LC_ALL") == 0) result.push_back("LC_ALL=C");
  }
  for (const auto& [name, value] : options.env) {
    result.push_back(absl::StrCat(name, "=", value));
  }
  return result;
}

// The value of PATH in `env`, if set.
std::optional<std::string> FindPath(const std::vector<std::string>& env) {
  for (const std::string& entry : env) {
    if (absl::StartsWith(entry, "PATH=")) return entry.substr(5);
  }
  return std::nullopt;
}

// OK if `path` names an executable regular file, else NotFound whose
// message says why ("no such file", "not executable").
absl::Status CheckExecutable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError("no such file");
    return absl::NotFoundError(ErrnoText(err));
  }
  if (!S_ISREG(st.st_mode) || ::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0) {
    return absl::NotFoundError("not executable");
  }
  return absl::OkStatus();
}

// Returns the path to pass to posix_spawn for `program` (argv[0]).
// A name with a '/' is used as is (relative to `working_dir` when set, as the
// child will see it). A bare name is searched in `search_path`; empty and
// relative PATH entries are skipped, so a daemon never runs a program from
// whatever its current directory happens to be.
absl::StatusOr<std::string> ResolveProgram(const std::string& program,
                                           const std::string& search_path,
                                           const std::string& working_dir) {
  if (program.empty()) return absl::NotFoundError("argv[0] is empty");
  if (program.find('/') != std::string::npos) {
    const bool in_working_dir = program[0] != '/' && !working_dir.empty();
    const std::string checked = in_working_dir ? absl::StrCat(working_dir, "/", program) : program;
    if (absl::Status status = CheckExecutable(checked); !status.ok()) {
      return absl::NotFoundError(
          absl::StrCat(program, ": ", status.message(),
                       in_working_dir ? absl::StrCat(" (in working_dir ", working_dir, ")") : ""));
    }
    return program;
  }
  std::string not_executable;
  for (absl::string_view dir : absl::StrSplit(search_path, ':')) {
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = absl::StrCat(dir, dir.back() == '/' ? "" : "/", program);
    struct stat st;
    if (::stat(candidate.c_str(), &st) != 0) continue;
    if (CheckExecutable(candidate).ok()) return candidate;
    if (not_executable.empty()) not_executable = candidate;
  }
  std::string message = absl::StrCat(program, ": not found in PATH (", search_path, ")");
  if (!not_executable.empty()) {
    absl::StrAppend(&message, "; ", not_executable, " is not executable");
  }
  return absl::NotFoundError(message);
}

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return InternalErrno("pipe2", errno);
  Pipe pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
  // Only our end is non-blocking; the child's end is a separate open file
  // description and stays blocking.
  const int flags = ::fcntl(pipe.read_end.get(), F_GETFL);
  if (flags < 0 || ::fcntl(pipe.read_end.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return InternalErrno("fcntl(O_NONBLOCK)", errno);
  }
  return pipe;
}

// Sets up `attr` and `actions` for the child: own process group, empty
// signal mask, default signal dispositions, stdin on /dev/null, stdout and
// stderr on the pipes, other descriptors closed, working directory.
absl::Status PrepareSpawn(SpawnAttr& attr, SpawnFileActions& actions, int stdout_fd, int stderr_fd,
                          const std::string& working_dir) {
  if (!attr.ok() || !actions.ok()) return absl::InternalError("posix_spawn init failed");
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  sigdelset(&all_signals, SIGKILL);
  sigdelset(&all_signals, SIGSTOP);
  int err = posix_spawnattr_setflags(
      attr.get(), POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (err == 0) err = posix_spawnattr_setpgroup(attr.get(), 0);
  if (err == 0) err = posix_spawnattr_setsigmask(attr.get(), &empty_mask);
  if (err == 0) err = posix_spawnattr_setsigdefault(attr.get(), &all_signals);
  if (err != 0) return InternalErrno("posix_spawnattr", err);

  err = posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (err == 0) err = posix_spawn_file_actions_adddup2(actions.get(), stdout_fd, STDOUT_FILENO);
  if (err == 0) err = posix_spawn_file_actions_adddup2(actions.get(), stderr_fd, STDERR_FILENO);
#ifdef JAILOVER_HAVE_SPAWN_ADDCLOSEFROM
  if (err == 0) err = posix_spawn_file_actions_addclosefrom_np(actions.get(), STDERR_FILENO + 1);
#endif
  if (err != 0) return InternalErrno("posix_spawn_file_actions", err);

  if (!working_dir.empty()) {
#ifdef JAILOVER_HAVE_SPAWN_ADDCHDIR
    err = posix_spawn_file_actions_addchdir_np(actions.get(), working_dir.c_str());
    if (err != 0) return InternalErrno("posix_spawn_file_actions_addchdir_np", err);
#else
    return absl::UnimplementedError(
        "CommandOptions.working_dir needs posix_spawn_file_actions_addchdir_np");
#endif
  }
  return absl::OkStatus();
}

// Milliseconds until `deadline` for poll(2), rounded up, in [0, INT_MAX].
int PollTimeoutMs(SteadyClock::time_point deadline) {
  const auto now = SteadyClock::now();
  if (now >= deadline) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
}

// Reads what is available from `stream` into its text (up to `cap` bytes,
// the rest dropped). Returns false at EOF or on a read error.
bool ReadAvailable(Stream& stream, size_t cap) {
  char buf[kReadChunk];
  while (true) {
    const ssize_t n = ::read(stream.fd.get(), buf, sizeof(buf));
    if (n > 0) {
      const size_t room = cap - std::min(cap, stream.text->size());
      const size_t keep = std::min(room, static_cast<size_t>(n));
      stream.text->append(buf, keep);
      if (keep < static_cast<size_t>(n)) *stream.truncated = true;
      return true;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    spdlog::warn("command output: read failed: {}", ErrnoText(errno));
    return false;
  }
}

// waitpid(pid, options) retried on EINTR. Returns pid, 0 (WNOHANG, still
// running) or -1 with errno set.
pid_t WaitPid(pid_t pid, int* status, int options) {
  while (true) {
    const pid_t r = ::waitpid(pid, status, options);
    if (r >= 0 || errno != EINTR) return r;
  }
}

absl::Duration ToAbsl(SteadyClock::duration d) {
  return absl::FromChrono(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
}

// Kills the child's whole process group and reaps the child. The child is not
// reaped before this, so its pid (= the group id) cannot have been reused.
void KillGroupAndReap(pid_t pid, int* wait_status) {
  if (::kill(-pid, SIGKILL) != 0) ::kill(pid, SIGKILL);
  WaitPid(pid, wait_status, 0);
}

}  // namespace

std::string SingleQuoteForShell(absl::string_view word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string FormatArgv(const std::vector<std::string>& argv,
                       const std::vector<size_t>& secret_args) {
  std::string out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0) out += ' ';
    if (std::find(secret_args.begin(), secret_args.end(), i) != secret_args.end()) {
      out += "***";
      continue;
    }
    const std::string& arg = argv[i];
    if (!arg.empty() && std::all_of(arg.begin(), arg.end(), IsUnquotedArgvChar)) {
      out += arg;
    } else {
      out += SingleQuoteForShell(arg);
    }
  }
  return out;
}

absl::StatusOr<CommandResult> SubprocessCommandRunner::Run(const std::vector<std::string>& argv,
                                                           const CommandOptions& options) {
  if (absl::Status status = ValidateArgv(argv); !status.ok()) return status;
  // argv as logs and errors show it, secrets masked.
  const std::string shown = FormatArgv(argv, options.secret_args);
  absl::StatusOr<std::vector<std::string>> env = BuildEnvironment(options);
  if (!env.ok()) return env.status();
  // With no PATH in the child's environment, look where the default would.
  const std::string search_path = FindPath(*env).value_or(kDefaultCommandPath);
  absl::StatusOr<std::string> program = ResolveProgram(argv[0], search_path, options.working_dir);
  if (!program.ok()) {
    spdlog::debug("{}: not started: {}", shown, program.status().ToString());
    return program.status();
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError(absl::StrCat("timed out after ",
                                                    absl::FormatDuration(options.timeout), ": ",
                                                    shown, " (not started)"));
  }

  absl::StatusOr<Pipe> out_pipe = MakePipe();
  if (!out_pipe.ok()) return out_pipe.status();
  absl::StatusOr<Pipe> err_pipe = MakePipe();
  if (!err_pipe.ok()) return err_pipe.status();

  SpawnAttr attr;
  SpawnFileActions actions;
  if (absl::Status status = PrepareSpawn(attr, actions, out_pipe->write_end.get(),
                                         err_pipe->write_end.get(), options.working_dir);
      !status.ok()) {
    return status;
  }

  std::vector<char*> child_argv;
  child_argv.reserve(argv.size() + 1);
  for (const std::string& arg : argv) child_argv.push_back(const_cast<char*>(arg.c_str()));
  child_argv.push_back(nullptr);
  std::vector<char*> child_env;
  child_env.reserve(env->size() + 1);
  for (const std::string& entry : *env) child_env.push_back(const_cast<char*>(entry.c_str()));
  child_env.push_back(nullptr);

  const SteadyClock::time_point start = SteadyClock::now();
  const auto budget = absl::ToChronoNanoseconds(options.timeout);
  const SteadyClock::time_point deadline = budget >= SteadyClock::time_point::max() - start
                                               ? SteadyClock::time_point::max()
                                               : start + budget;
  pid_t pid = -1;
  const int spawn_err = posix_spawn(&pid, program->c_str(), actions.get(), attr.get(),
                                    child_argv.data(), child_env.data());
  if (spawn_err != 0) {
    spdlog::debug("{}: posix_spawn failed: {}", shown, ErrnoText(spawn_err));
    // Exec errors: the file changed since ResolveProgram, or is not a format
    // the kernel runs (posix_spawn does not fall back to /bin/sh).
    if (spawn_err == ENOENT || spawn_err == EACCES || spawn_err == ENOEXEC ||
        spawn_err == ENOTDIR) {
      std::string message =
          absl::StrCat(shown, ": cannot start: ", ErrnoText(spawn_err));
      if (!options.working_dir.empty()) {
        absl::StrAppend(&message, " (working_dir ", options.working_dir, ")");
      }
      return absl::NotFoundError(message);
    }
    return InternalErrno(absl::StrCat(shown, ": posix_spawn"), spawn_err);
  }
  // The child has its own copies; ours would keep the pipes from reaching EOF.
  out_pipe->write_end.Reset();
  err_pipe->write_end.Reset();

  CommandResult result;
  Stream streams[2] = {
      {std::move(out_pipe->read_end), &result.stdout_text, &result.stdout_truncated},
      {std::move(err_pipe->read_end), &result.stderr_text, &result.stderr_truncated},
  };
  const size_t cap = options.max_output_bytes;
  bool timed_out = false;
  int wait_status = 0;

  // Phase 1: read both pipes until EOF. The child is not reaped here, so
  // that its pid stays reserved for the kill(-pgid) on timeout, even when it
  // has exited and a grandchild still holds the pipes.
  while (streams[0].fd.valid() || streams[1].fd.valid()) {
    if (SteadyClock::now() >= deadline) {
      timed_out = true;
      break;
    }
    pollfd fds[2];
    Stream* polled[2];
    nfds_t nfds = 0;
    for (Stream& stream : streams) {
      if (!stream.fd.valid()) continue;
      fds[nfds] = {stream.fd.get(), POLLIN, 0};
      polled[nfds++] = &stream;
    }
    const int ready = ::poll(fds, nfds, PollTimeoutMs(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      KillGroupAndReap(pid, &wait_status);
      return InternalErrno(absl::StrCat(shown, ": poll"), err);
    }
    for (nfds_t i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      if (!ReadAvailable(*polled[i], cap)) polled[i]->fd.Reset();
    }
  }

  // Phase 2: both pipes are at EOF; wait for the child to exit.
  auto interval = std::chrono::microseconds(250);
  while (!timed_out) {
    const pid_t r = WaitPid(pid, &wait_status, WNOHANG);
    if (r == pid) break;
    if (r < 0) {
      // ECHILD: someone else reaped our child (SIGCHLD set to SIG_IGN?).
      const int err = errno;
      return InternalErrno(absl::StrCat(shown, ": waitpid"), err);
    }
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    absl::SleepFor(ToAbsl(std::min<SteadyClock::duration>(interval, deadline - now)));
    interval = std::min<std::chrono::microseconds>(interval * 2, kMaxReapInterval);
  }

  if (timed_out) {
    KillGroupAndReap(pid, &wait_status);
    const absl::Duration elapsed = ToAbsl(SteadyClock::now() - start);
    const std::string message =
        absl::StrCat("timed out after ", absl::FormatDuration(options.timeout), ": ",
                     shown, " (killed process group ", pid, ")");
    spdlog::warn("{} after {} ms", message, absl::ToInt64Milliseconds(elapsed));
    return absl::DeadlineExceededError(message);
  }

  result.elapsed = ToAbsl(SteadyClock::now() - start);
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.term_signal = WTERMSIG(wait_status);
  }
  spdlog::debug("{}: exit code {}, signal {}, {} ms", shown, result.exit_code,
                result.term_signal, absl::ToInt64Milliseconds(result.elapsed));
  return result;
}

absl::StatusOr<CommandResult> EnvironmentCommandRunner::Run(const std::vector<std::string>& argv,
                                                           const CommandOptions& options) {
  CommandOptions with_env = options;
  for (const auto& [name, value] : env_) with_env.env.emplace(name, value);  // caller's wins
  return base_.Run(argv, with_env);
}

absl::StatusOr<pid_t> CommandRunner::StartDetached(const std::vector<std::string>& argv,
                                                   const DetachedOptions& options) {
  return absl::UnimplementedError(absl::StrCat("this runner cannot start daemons: ",
                                               FormatArgv(argv, options.secret_args)));
}

namespace {

// Reads exactly sizeof(int) bytes; false on EOF before that.
bool ReadInt(int fd, int* value) {
  char buffer[sizeof(int)];
  size_t got = 0;
  while (got < sizeof(buffer)) {
    const ssize_t n = ::read(fd, buffer + got, sizeof(buffer) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  std::memcpy(value, buffer, sizeof(int));
  return true;
}

// Async-signal-safe write of one int (in the forked children).
void WriteInt(int fd, int value) {
  const char* data = reinterpret_cast<const char*>(&value);
  size_t done = 0;
  while (done < sizeof(int)) {
    const ssize_t n = ::write(fd, data + done, sizeof(int) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

absl::StatusOr<pid_t> SubprocessCommandRunner::StartDetached(
    const std::vector<std::string>& argv, const DetachedOptions& options) {
  if (absl::Status status = ValidateArgv(argv); !status.ok()) return status;
  const std::string shown = FormatArgv(argv, options.secret_args);
  if (options.log_path.empty() || options.log_path[0] != '/' ||
      options.log_path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, ": a daemon needs an absolute log path, got ",
                     FormatArgv({options.log_path})));
  }
  CommandOptions env_options;
  env_options.inherit_environment = options.inherit_environment;
  env_options.env = options.env;
  absl::StatusOr<std::vector<std::string>> env = BuildEnvironment(env_options);
  if (!env.ok()) return env.status();
  const std::string search_path = FindPath(*env).value_or(kDefaultCommandPath);
  absl::StatusOr<std::string> program = ResolveProgram(argv[0], search_path, options.working_dir);
  if (!program.ok()) return program.status();

  UniqueFd log_fd(::open(options.log_path.c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600));
  if (!log_fd.valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat(shown, ": log ", options.log_path, ": ", ErrnoText(errno)));
  }
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return InternalErrno("pipe2", errno);
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);

  // Everything the children need is built before fork: after it, in a
  // multithreaded process, only async-signal-safe calls are allowed.
  std::vector<char*> child_argv;
  for (const std::string& arg : argv) child_argv.push_back(const_cast<char*>(arg.c_str()));
  child_argv.push_back(nullptr);
  std::vector<char*> child_env;
  for (const std::string& entry : *env) child_env.push_back(const_cast<char*>(entry.c_str()));
  child_env.push_back(nullptr);
  const char* path = program->c_str();
  const char* dir = options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  const int out = log_fd.get();
  const int status_fd = report_write.get();
  const long max_fd = std::min<long>(std::max<long>(::sysconf(_SC_OPEN_MAX), 1024), 65536);

  const pid_t middle = ::fork();
  if (middle < 0) return InternalErrno("fork", errno);
  if (middle == 0) {
    // Middle child: forks the daemon and exits at once, so the daemon is
    // reparented and never our zombie.
    const pid_t daemon = ::fork();
    if (daemon < 0) {
      WriteInt(status_fd, -errno);
      ::_exit(1);
    }
    if (daemon > 0) {
      WriteInt(status_fd, daemon);
      ::_exit(0);
    }
    // The daemon: leader of a new session and process group of its own.
    ::setsid();
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    struct sigaction default_action;
    std::memset(&default_action, 0, sizeof(default_action));
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &default_action, nullptr);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
        ::dup2(out, STDERR_FILENO) < 0 || (dir != nullptr && ::chdir(dir) != 0)) {
      WriteInt(status_fd, errno);
      ::_exit(127);
    }
    // Every other descriptor but the report pipe (close-on-exec) goes.
    for (int fd = STDERR_FILENO + 1; fd < max_fd; ++fd) {
      if (fd != status_fd) ::close(fd);
    }
    ::execve(path, child_argv.data(), child_env.data());
    WriteInt(status_fd, errno);
    ::_exit(127);
  }
  report_write.Reset();
  int wait_status = 0;
  while (::waitpid(middle, &wait_status, 0) < 0 && errno == EINTR) {
  }
  int daemon_pid = 0;
  if (!ReadInt(report_read.get(), &daemon_pid)) {
    return absl::InternalError(absl::StrCat(shown, ": the forked starter died"));
  }
  if (daemon_pid <= 0) return InternalErrno(absl::StrCat(shown, ": fork"), -daemon_pid);
  int exec_errno = 0;
  if (ReadInt(report_read.get(), &exec_errno)) {
    // The daemon wrote an errno before exec (or instead of it).
    return absl::InternalError(
        absl::StrCat(shown, ": not started: ", ErrnoText(exec_errno)));
  }
  spdlog::debug("{}: started detached, pid {}, log {}", shown, daemon_pid, options.log_path);
  return static_cast<pid_t>(daemon_pid);
}

absl::StatusOr<pid_t> EnvironmentCommandRunner::StartDetached(
    const std::vector<std::string>& argv, const DetachedOptions& options) {
  DetachedOptions with_env = options;
  for (const auto& [name, value] : env_) with_env.env.emplace(name, value);  // caller's wins
  return base_.StartDetached(argv, with_env);
}

}  // namespace jailover::common

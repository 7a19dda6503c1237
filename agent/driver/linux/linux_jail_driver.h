// LinuxJailDriver: jails as namespace containers on Linux (development, CI
// and the lab). A jail is a pid, UTS, IPC and mount namespace whose pid 1 is
// jailover-jail-init (jail_init_main.cc), chrooted into the jail's root (the
// mount point of its image), with its own hostname and /proc. It shares the
// host's network namespace and binds its VIP there (the VIP driver or the lab
// sets net.ipv4.ip_nonlocal_bind=1, so it can bind before CARP holds it).
//
// Files, under STATE_DIR/jails:
//   NAME.json      the definition (Define), the JailConfig fields that mean
//                  something on Linux;
//   NAME.run.json  the running jail: host pids and start times of its init
//                  and of the unshare(1) process above it, the init's pid
//                  namespace inode; written by Start, removed by Stop;
//   NAME.log       the jail's console (stdout and stderr of everything in it).
// The driver keeps no jail state in memory: a restarted agent finds the jails
// it started through the run files, each checked against /proc (start time,
// argv0, NSpid ending in 1, pid namespace inode), so a reused pid is never
// taken for a jail and never signalled.
//
// rctl limits, securelevel, devfs_ruleset, enforce_statfs, allow.* and
// params have no Linux meaning: Define accepts them and logs that they are
// not enforced.
//
// Thread-safe for calls on different jails; the caller serialises calls on
// the same jail.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/driver/jail_driver.h"
#include "agent/driver/linux/linux_options.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::linux_driver {

// What NAME.run.json records about a started jail.
struct JailRunRecord {
  std::string name;
  std::string hostname;
  std::string path;
  std::string ip4_address;
  // The jail's init in the host's pid namespace, and what identifies it.
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;
  std::string init_argv0;
  // Inode of /proc/INIT/ns/pid.
  uint64_t pid_ns_inode = 0;
  // unshare(1), the init's parent (exits by itself when the init dies).
  pid_t unshare_pid = 0;
  uint64_t unshare_start_time = 0;
};

class LinuxJailDriver final : public JailDriver {
 public:
  // `runner` and `clock` are not owned and must outlive the driver.
  LinuxJailDriver(common::CommandRunner& runner, common::Clock& clock,
                  const LinuxDriverOptions& options);

  // JailDriver
  //
  // Validates the config (InvalidArgument naming the field: name as
  // common::ValidateName, absolute path other than /, non-empty exec_start,
  // hostname of at most 64 bytes, IPv4 address, env names) and writes
  // NAME.json atomically, creating STATE_DIR/jails (mode 0700) if missing;
  // identical contents are not rewritten. A changed definition of a running
  // jail takes effect at its next Start; Stop uses the file as it is then.
  absl::Status Define(const JailConfig& config) override;
  // Starts the jail through runner.StartDetached:
  //   unshare --pid --fork --uts --ipc --mount --propagation private --
  //     JAIL_INIT --hostname HOSTNAME --root PATH -- EXEC_START...
  // with its output appended to NAME.log and the config's env (PATH is
  // options.tool_path unless env sets it). Then finds the init (the child of
  // unshare whose NSpid ends in 1) in /proc, writes NAME.run.json and checks
  // that the jail is still alive a moment later. NotFound if not defined;
  // AlreadyExists if it runs; FailedPrecondition if PATH is not a directory;
  // Internal with the end of the jail's log if it died at once (nothing is
  // left running then). JailInfo.jid is the init's host pid.
  absl::StatusOr<JailInfo> Start(const std::string& name) override;
  // exec_stop (if defined) inside the jail through nsenter, with `grace` as
  // its timeout; then SIGTERM to the init (which sends SIGTERM to every
  // process of the jail) and up to `grace` for the jail to end; then SIGKILL
  // to the init, which makes the kernel kill the whole pid namespace
  // (killed = true). `grace` <= 0 means the definition's stop_timeout.
  // Removes NAME.run.json. was_running = false if the jail did not run.
  // Internal if the init outlives SIGKILL (processes stuck in the kernel);
  // the run file is kept then.
  absl::StatusOr<StopResult> Stop(const std::string& name, absl::Duration grace) override;
  // FailedPrecondition if the jail runs; otherwise removes NAME.json (a
  // missing one is OK). The log is kept.
  absl::Status Undefine(const std::string& name) override;
  // The jails this driver started that still run (run files whose init is
  // still the same process), sorted by name. Stale run files are removed.
  // Namespace containers started by anything else are not listed.
  absl::StatusOr<std::vector<JailInfo>> List() override;
  // Runs argv inside the jail:
  //   nsenter -t INIT --pid --uts --ipc --mount --root --wd -- ARGV...
  // with `timeout`; the command's exit status is in the result. NotFound if
  // the jail does not run; InvalidArgument for an empty argv.
  absl::StatusOr<common::CommandResult> Exec(const std::string& name,
                                             const std::vector<std::string>& argv,
                                             absl::Duration timeout) override;

 private:
  std::string JailsDir() const;
  std::string ConfigPath(const std::string& name) const;
  std::string RunPath(const std::string& name) const;
  std::string LogPath(const std::string& name) const;

  // NAME.json parsed; nullopt if there is none.
  absl::StatusOr<std::optional<JailConfig>> ReadConfig(const std::string& name) const;
  // NAME.run.json parsed; nullopt if there is none.
  absl::StatusOr<std::optional<JailRunRecord>> ReadRunRecord(const std::string& name) const;
  // True if `record`'s init is still that process and a pid namespace init.
  bool IsRunning(const JailRunRecord& record) const;
  // The run record of `name` if the jail runs; a stale run file is removed.
  absl::StatusOr<std::optional<JailRunRecord>> FindRunning(const std::string& name)
      ABSL_LOCKS_EXCLUDED(run_files_mu_);
  absl::Status WriteRunRecord(const JailRunRecord& record) ABSL_LOCKS_EXCLUDED(run_files_mu_);
  // Removes NAME.run.json if it still holds `record`; logged with `why`, at
  // info if the jail ended without the driver (`stale`), else at debug.
  void RemoveRunRecord(const JailRunRecord& record, const std::string& why, bool stale)
      ABSL_LOCKS_EXCLUDED(run_files_mu_);

  // Finds the init below the unshare process `unshare_pid`, polling /proc
  // for a bounded time. Fills the init fields of `record`.
  absl::Status FindInit(const std::string& name, pid_t unshare_pid, JailRunRecord* record);
  // Sends `signal` to the recorded init if it still is that process (a
  // pidfd keeps the check and the signal about the same process). False if
  // it was gone.
  bool SignalInit(const JailRunRecord& record, int signal) const;
  // SIGKILL to the process if it still is (pid, start_time, argv0); true if
  // the signal was sent.
  bool KillVerified(pid_t pid, uint64_t start_time, const std::string& argv0) const;
  // Polls until the init is gone or `timeout` passed; true if gone.
  bool WaitGone(const JailRunRecord& record, absl::Duration timeout);
  // What the jail wrote to its log since byte `offset`, for an error message.
  std::string LogTail(const std::string& name, uint64_t offset) const;
  // nsenter argv into the jail's namespaces.
  std::vector<std::string> NsenterArgv(const JailRunRecord& record,
                                       const std::vector<std::string>& argv) const;
  // Options of commands run through nsenter.
  common::CommandOptions ToolOptions(absl::Duration timeout) const;
  absl::Status MakeJailsDir() const;

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const LinuxDriverOptions options_;
  // Serialises writing and removing run files (List removes stale ones of
  // any jail while Start may write one).
  mutable absl::Mutex run_files_mu_;
};

}  // namespace jailover::agent::linux_driver

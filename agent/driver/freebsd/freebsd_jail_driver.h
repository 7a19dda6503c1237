// FreeBsdJailDriver: jails defined by one agent-owned jail.conf(5) file each
// (STATE_DIR/jails/NAME.conf, see jail_commands.h), started and stopped with
// jail(8), listed with jls(8), entered with jexec(8), limited with rctl(8).
// It keeps no state in memory: the conf files and the kernel are the truth,
// so a restarted agent carries on. Thread-safe for calls on different jails
// (each touches only its own files); the caller serialises calls on one jail.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/freebsd/jail_commands.h"
#include "agent/driver/jail_driver.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::freebsd {

class FreeBsdJailDriver final : public JailDriver {
 public:
  // `runner` and `clock` are not owned and must outlive the driver.
  FreeBsdJailDriver(common::CommandRunner& runner, common::Clock& clock,
                    const FreeBsdDriverOptions& options);

  // JailDriver
  //
  // Renders the conf file (RenderJailConf: InvalidArgument naming the field)
  // and writes it atomically, creating STATE_DIR/jails with mode 0700 if
  // missing; identical contents are not rewritten. The rctl limits are kept
  // in the file as "# rctl:" comment lines. A changed definition of a
  // running jail takes effect at its next Start; Stop uses the file as it is
  // then (its exec.stop, stop.timeout and limits).
  absl::Status Define(const JailConfig& config) override;
  // jls, then `jail -i -f CONF -c NAME` (runner timeout
  // options.command_timeout), then `rctl -a` per limit, then jls for the
  // JailInfo. NotFound without a conf file; AlreadyExists if jls lists the
  // jail or jail(8) says it exists; Internal with jail(8)'s stderr if the
  // create failed (jail(8) unwinds a failed create itself); a failing rctl
  // stops the jail again (`jail -r`, `rctl -r`) and returns Internal with
  // rctl's message. If jail(8) itself times out, a jail it left behind is
  // removed with `jail -R`, its devfs unmounted, and DeadlineExceeded
  // returned.
  absl::StatusOr<JailInfo> Start(const std::string& name) override;
  // `jail -f CONF -r NAME` (or `jail -r NAME` without a conf file) with a
  // runner timeout of grace + the conf's stop.timeout + 10 s. jail(8)'s
  // `"NAME" not found` gives was_running = false and nothing else is run.
  // If jail -r times out or fails and jls still lists the jail, `jail -R
  // NAME` removes it (killed = true). After a jail -r that did not succeed,
  // the devfs at PATH/dev is unmounted with `umount -f` (jail -R does not
  // unmount; a failure is logged at warn). Then `rctl -r jail:NAME` when the
  // conf lists limits (a failure is logged at warn). Internal if jail -R
  // fails or jls cannot tell whether the jail still runs.
  absl::StatusOr<StopResult> Stop(const std::string& name, absl::Duration grace) override;
  // FailedPrecondition if jls lists the jail; otherwise removes the conf
  // file (a missing one is OK). The console log is kept.
  absl::Status Undefine(const std::string& name) override;
  // `jls --libxo json -v`: every live jail on the host.
  absl::StatusOr<std::vector<JailInfo>> List() override;
  // `jexec -l JID ARGV...` with `timeout`; the command's exit status is in
  // the result, not an error. NotFound if jls does not list the jail;
  // InvalidArgument for an empty argv.
  absl::StatusOr<common::CommandResult> Exec(const std::string& name,
                                             const std::vector<std::string>& argv,
                                             absl::Duration timeout) override;

 private:
  std::string ConfPath(const std::string& name) const;
  // Timeout of the short tools (jls, rctl, jail -R, umount).
  absl::Duration ToolTimeout() const;
  // The conf file of `name` parsed, nullopt if there is none.
  absl::StatusOr<std::optional<JailConfSummary>> ReadConf(const std::string& name);
  absl::StatusOr<std::vector<JailInfo>> RunJls();
  // The running jail called `name`, nullopt if jls does not list it.
  absl::StatusOr<std::optional<JailInfo>> FindJail(const std::string& name);
  // Stop without the argument checks; `conf` is null without a conf file.
  absl::StatusOr<StopResult> StopJail(const std::string& name, const JailConfSummary* conf,
                                      absl::Duration grace);
  // `jail -R NAME`. True if it removed the jail, false if it was gone.
  absl::StatusOr<bool> ForceRemove(const std::string& name);
  // `umount -f PATH/dev`, failures logged at warn.
  void UnmountDevfs(const std::string& name, const std::string& path);
  // `rctl -r jail:NAME`, failures logged at warn.
  void RemoveRctlRules(const std::string& name);
  // After jail(8) was killed during `jail -c`: removes what it left.
  void CleanUpAfterKilledCreate(const std::string& name, const JailConfSummary& conf);

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const FreeBsdDriverOptions options_;
};

}  // namespace jailover::agent::freebsd

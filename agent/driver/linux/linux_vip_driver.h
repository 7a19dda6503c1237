// LinuxVipDriver: the VipDriver of a Linux host (development, CI and the
// lab). Linux has no CARP in the kernel, so each VIP gets its own ucarp(8)
// daemon (VRRP-like, compatible timing model): one ucarp per VIP, started
// through CommandRunner::StartDetached with `-b ADVBASE -k ADVSKEW -z -n -P`.
// ucarp runs two scripts written by Prepare, which add or delete the address
// and record the role in a state file; that file is the only reliable way to
// ask ucarp for its state (SIGUSR1 only logs to syslog).
//
// Files, all under options.state_dir/vips (mode 0700, it holds passwords):
//   ucarp-up, ucarp-down   the scripts (ucarp calls them as SCRIPT IF VIP STATE)
//   NAME.state             "MASTER" or "BACKUP", written by the scripts
//   NAME.run.json          the ucarp of VIP NAME: pid, start time, argv0 and
//                          the configuration it was started with
//   NAME.log               ucarp's (and the scripts') stdout and stderr
//
// A ucarp is ours only if its pid, start time and argv0 match NAME.run.json
// (IsSameProcess), so the driver finds the daemons again after an agent
// restart and never signals a reused pid.
//
// Thread-safe: Configure, SetAdvskew, Remove and Demote are serialized (each
// reads the records, decides and acts); State reads files that are only ever
// replaced atomically; Watch/StopWatching are serialized with each other.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/driver/linux/garp.h"
#include "agent/driver/linux/linux_options.h"
#include "agent/driver/vip_driver.h"
#include "agent/driver/watch_thread.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::linux_driver {

class LinuxVipDriver final : public VipDriver {
 public:
  // How long a ucarp gets to exit after SIGTERM (it runs the down script
  // first) before SIGKILL, and after SIGKILL before giving up. On the Clock.
  static constexpr absl::Duration kStopTimeout = absl::Seconds(5);
  // How often the watcher thread reads the state files (real time).
  static constexpr absl::Duration kWatchInterval = absl::Milliseconds(100);
  // Time limit of one ip or sysctl run (options.command_timeout if shorter).
  static constexpr absl::Duration kToolTimeout = absl::Seconds(30);
  // Claim's advertisements: one every kClaimAdvertiseInterval until ucarp's
  // log says it switched to MASTER (checked every kClaimPollInterval), for
  // at most kClaimWait. ucarp's capture hands it packets in batches, up to
  // ~1 s late; each advertisement meanwhile also holds off the other
  // backups' master-down timers.
  static constexpr absl::Duration kClaimWait = absl::Seconds(2);
  static constexpr absl::Duration kClaimAdvertiseInterval = absl::Milliseconds(250);
  static constexpr absl::Duration kClaimPollInterval = absl::Milliseconds(25);
  // Longest password accepted: FreeBSD's carp(4) limit, so a VipConfig that
  // works in the lab also works on a FreeBSD host.
  static constexpr size_t kMaxPasswordBytes = 19;

  // `runner` and `clock` are not owned and must outlive this object. No I/O.
  LinuxVipDriver(common::CommandRunner& runner, common::Clock& clock,
                 const LinuxDriverOptions& options);
  // Calls StopWatching. ucarps keep running (they outlive the agent).
  ~LinuxVipDriver() override;

  LinuxVipDriver(const LinuxVipDriver&) = delete;
  LinuxVipDriver& operator=(const LinuxVipDriver&) = delete;

  // The scripts Prepare writes (fixed content for a given tool_path), for
  // golden tests. Arguments: IFACE VIP STATE_FILE.
  static std::string UpScript(const std::string& tool_path);
  static std::string DownScript(const std::string& tool_path);

  // VipDriver
  //
  // Errors common to the methods: InvalidArgument for a bad VipConfig
  // (naming the field, never quoting the password); FailedPrecondition when
  // a tool exits non-zero (its stderr in the message) or is not installed,
  // or the interface does not exist; the runner's other errors with the
  // command prepended; Internal for file I/O errors.

  // Creates state_dir/vips, writes ucarp-up and ucarp-down (mode 0755,
  // replaced atomically, only if their content changed) and sets
  // net.ipv4.ip_nonlocal_bind=1 (per network namespace), so a jail can bind
  // its VIP before CARP makes this host MASTER. Idempotent.
  absl::Status Prepare() override;
  // Starts a ucarp for the VIP (state file BACKUP first; the address is
  // added only when ucarp becomes MASTER). If its ucarp already runs with
  // the same settings: OK, nothing done. With another advskew, advbase or
  // password: restarted with the new ones. FailedPrecondition if another
  // VIP already uses this vhid or address on the interface, if a VIP of
  // this name is configured with another interface, address or vhid
  // (Remove it first), if Prepare has not run, or if the interface has no
  // IPv4 address of its own (ucarp's -s). The address may be given bare or
  // as ADDRESS/32.
  absl::Status Configure(const VipConfig& vip) override;
  // Restarts the VIP's ucarp with `-k advskew`: ucarp reads -k only at
  // start and has no way to change it at run time (Restart: a MASTER made
  // more preferred keeps the address; any other restart runs the down
  // script, so a demoted MASTER gives the VIP up and the peer with the
  // lowest advskew takes it by preemption). OK without doing anything if the
  // ucarp runs with that advskew already. FailedPrecondition if the VIP is
  // not configured, or configured with another interface, address or vhid.
  absl::Status SetAdvskew(const VipConfig& vip, int advskew) override;
  // Stops the VIP's ucarp (SIGTERM; SIGKILL after kStopTimeout), then makes
  // sure the address is gone from the interface (ucarp killed by SIGKILL
  // leaves it: split brain) and deletes the VIP's files. Without a record,
  // only a stray ADDRESS/32 is deleted. Idempotent; OK if the interface is
  // gone.
  absl::Status Remove(const VipConfig& vip) override;
  // Remove of every VIP on record here (each from its NAME.run.json): what
  // the VIP guard does when the agent's leases ran out while it could not
  // act (vip_guard.h). Tries every one; returns the names removed, or the
  // first error.
  absl::StatusOr<std::vector<std::string>> RemoveAll();
  // ucarp cannot be told to become MASTER, and a BACKUP waits advbase x
  // deadratio of silence first; so the driver takes over that part: adds
  // ADDRESS/32 (if missing), writes the state file MASTER, broadcasts
  // gratuitous ARP (so that neighbours stop sending to the previous
  // master's MAC) -- all three skipped if the state is MASTER already --
  // and then makes the VIP's ucarp MASTER at once (MakeUcarpMaster), so that
  // it advertises from now on and no other backup's master-down timer
  // fires meanwhile (found by the chaos run: a standby took the address
  // from a claimed host whose fresh ucarp was still silent). The VIP's
  // ucarp must run. FailedPrecondition if the VIP is not configured as
  // `vip` or its ucarp does not run. A failed announcement or advertisement
  // is logged, not returned (the address is in place; neighbours learn it
  // within their ARP timeouts, ucarp becomes MASTER on its own timer).
  absl::Status Claim(const VipConfig& vip) override;
  // One CarpStatus per configured VIP on `interface`, ordered by vhid: role
  // from the state file while its ucarp runs, INIT when it does not;
  // addresses = the VIP (as on FreeBSD, where a BACKUP's vhid also carries
  // it); peer = ucarp's multicast group. Empty if nothing is configured
  // there. InvalidArgument for a bad interface name.
  absl::StatusOr<std::vector<CarpStatus>> State(const std::string& interface) override;
  // Starts a thread that reads every VIP's role each kWatchInterval and
  // calls `callback` (on that thread, one call at a time, time from the
  // Clock) when it changes, or when a VIP configured after Watch started
  // shows up. Roles at the time of Watch are the baseline (not reported).
  // A ucarp that dies is reported as INIT. With
  // options.refresh_announcements, the thread also announces every VIP
  // that is MASTER here (gratuitous ARP, as Claim) once per its advbase on
  // the Clock; a failed announcement is logged once until one succeeds.
  // InvalidArgument for an empty callback; FailedPrecondition if already
  // watching; Internal if the wake-up pipe cannot be made. `callback` must not call Watch or
  // StopWatching.
  absl::Status Watch(std::function<void(const CarpTransition&)> callback) override;
  // Wakes the thread, joins it. Idempotent.
  void StopWatching() override;

  // Sends SIGUSR2 to the VIP's ucarp: it becomes BACKUP (runs the down
  // script) and stays quiet for 3 s, so a peer takes over; with -P it takes
  // the VIP back afterwards if its advskew is lowest. For a lasting demotion
  // use SetAdvskew. FailedPrecondition if the VIP's ucarp does not run.
  absl::Status Demote(const VipConfig& vip);

  // Replaces the way signals are sent (default: pidfd_open +
  // pidfd_send_signal after IsSameProcess). For unit tests with a fake
  // /proc, whose pids are not real processes. Call before anything else.
  void SetSignalFunctionForTest(std::function<int(pid_t pid, int sig)> fn) {
    signal_for_test_ = std::move(fn);
  }
  // Replaces the gratuitous ARP of Claim (default: SendGratuitousArp, which
  // needs CAP_NET_RAW and a real interface). Call before anything else.
  void SetAnnounceFunctionForTest(
      std::function<absl::Status(const std::string& interface, const std::string& address)> fn) {
    announce_ = std::move(fn);
  }
  // Replaces the CARP advertisement of Claim (default:
  // SendCarpAdvertisement). Call before anything else.
  void SetAdvertiseFunctionForTest(
      std::function<absl::Status(const std::string& interface, const CarpAdvertisement& ad)> fn) {
    advertise_ = std::move(fn);
  }

 private:
  // What NAME.run.json records.
  struct RunRecord {
    std::string name;
    std::string interface;
    std::string address;
    std::string source;  // -s: this host's own address on the interface
    int vhid = 0;
    int advbase = 0;
    int advskew = 0;
    int deadratio = 0;
    std::string password;
    pid_t pid = 0;
    uint64_t start_time = 0;
    std::string argv0;
  };

  std::string VipsDir() const;
  std::string RunPath(const std::string& name) const;
  std::string StatePath(const std::string& name) const;
  std::string LogPath(const std::string& name) const;
  std::string PassPath(const std::string& name) const;
  std::string UpPath() const;
  std::string DownPath() const;

  // Runs a tool with PATH = options.tool_path and returns the result;
  // missing tool -> FailedPrecondition; other runner errors annotated.
  absl::StatusOr<common::CommandResult> RunTool(const std::vector<std::string>& argv);
  // `ip -4 -o addr show dev IF` parsed to ADDRESS/PREFIX strings.
  // NotFound if the interface does not exist.
  absl::StatusOr<std::vector<std::string>> InterfaceAddresses(const std::string& interface);
  // Deletes every `address` (any prefix) from `interface` that `present`
  // lists. `only_host_route`: delete only ADDRESS/32.
  absl::Status DeleteAddress(const std::string& name, const std::string& interface,
                             const std::string& address, const std::vector<std::string>& present,
                             bool only_host_route);

  absl::StatusOr<std::optional<RunRecord>> LoadRecord(const std::string& name) const;
  // Every record in VipsDir (unreadable ones are skipped with a warning).
  std::vector<RunRecord> LoadAllRecords() const;
  absl::Status SaveRecord(const RunRecord& record) const;
  bool Alive(const RunRecord& record) const;
  // Role of a record: INIT if its ucarp is not alive, else its state file.
  CarpRole RoleOf(const RunRecord& record) const;

  std::vector<std::string> UcarpArgv(const RunRecord& record) const;
  // Removes a leftover address, writes the state file BACKUP, starts ucarp
  // and saves the record (pid and start time filled in). With `holding`
  // (Restart of a MASTER made more preferred) and the address in `present`,
  // the address stays and the state file says MASTER: ucarp (-n) starts
  // without running the down script and becomes MASTER itself after its
  // master-down timer, its up script finding the address there.
  absl::Status StartUcarp(RunRecord record, const std::vector<std::string>& present,
                          bool holding = false);
  // Finds ucarp's source address on the interface (its first address that
  // is no VIP), then StartUcarp. FailedPrecondition if the interface is
  // missing, has no such address, or carries the VIP as a host address.
  absl::Status StartFresh(RunRecord wanted, bool holding = false);
  // SIGTERM, wait; SIGKILL, wait. OK if it is not running.
  absl::Status StopUcarp(const RunRecord& record);
  // SIGKILL, wait (no down script runs). OK if it is not running.
  absl::Status KillUcarp(const RunRecord& record);
  // Sends `sig` if the record's process still is the same one; false if
  // it is gone.
  absl::StatusOr<bool> Signal(const RunRecord& record, int sig);
  // Waits up to `timeout` (Clock) for the process to be gone.
  bool WaitGone(const RunRecord& record, absl::Duration timeout);
  // The record of `vip`, which must be configured here with vip's
  // interface, vhid and address; FailedPrecondition otherwise.
  absl::StatusOr<RunRecord> ConfiguredRecord(const VipConfig& vip) const;
  // Makes the VIP's ucarp MASTER now (Claim): sends, from the VIP's
  // address, a CARP advertisement one advskew step slower than this
  // host's; ucarp (-P) preempts a slower master at once, so it becomes
  // MASTER, runs its up script and advertises. Every other speaker of the
  // vhid hears the same advertisement: a backup at a higher advskew starts
  // its master-down interval again (the advertiser is not slower than it),
  // a master at a higher advskew steps down. Repeated until ucarp's log
  // says it switched (kClaimWait). Failures are logged, not returned: the
  // address is in place and ucarp catches up on its own timer.
  void MakeUcarpMaster(const RunRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_);
  // Restarts the ucarp of `record` as `updated`. A MASTER whose advskew
  // goes down (a failover's promotion of the standby that CARP already made
  // master) keeps the address: its ucarp is killed without the down script
  // and the new one starts holding it (StartUcarp), so the clients see no
  // second outage after the failover's first. Any other restart releases
  // the address first (SIGTERM runs the down script), so a demoted master
  // lets its peers take over.
  absl::Status Restart(const RunRecord& record, RunRecord updated, const char* why);

  // Role of every configured VIP, by name.
  struct WatchedRole {
    std::string interface;
    int vhid = 0;
    CarpRole role = CarpRole::kInit;
    std::string address;
    int advbase = 0;
  };
  // When each VIP that is MASTER was last announced (a failed announcement
  // counts: it is retried after advbase too), and whether the last failed.
  struct Announced {
    std::chrono::steady_clock::time_point at;
    bool failed = false;
  };
  // Announces every VIP of `roles` that is MASTER and was last announced
  // advbase ago or more; forgets the others.
  void RefreshAnnouncements(const std::map<std::string, WatchedRole>& roles,
                            std::map<std::string, Announced>& announced);
  std::map<std::string, WatchedRole> Snapshot() const;
  // The watcher thread's body: compares Snapshot() with `seen` each
  // kWatchInterval until `stop_fd` is readable.
  void WatchLoop(int stop_fd, std::map<std::string, WatchedRole> seen,
                 const std::function<void(const CarpTransition&)>& callback);

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const LinuxDriverOptions options_;
  std::function<int(pid_t, int)> signal_for_test_;
  std::function<absl::Status(const std::string&, const std::string&)> announce_;
  std::function<absl::Status(const std::string&, const CarpAdvertisement&)> advertise_;

  // Serializes Configure, SetAdvskew, Remove, Claim and Demote.
  absl::Mutex config_mu_;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(config_mu_);

  // Last member: destroyed (stopped) first.
  WatchThread watcher_;
};

}  // namespace jailover::agent::linux_driver

// FreeBsdVipDriver: the VipDriver of a FreeBSD host. It configures CARP with
// ifconfig(8) and sysctl(8) through a CommandRunner (so it is unit-tested on
// Linux with a fake runner) and learns CARP transitions from devd(8)'s
// SOCK_SEQPACKET socket. Thread-safe: configuration calls are serialized
// inside the driver, so each one's read-check-change of `ifconfig IF` is not
// interleaved with another's.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/driver/watch_thread.h"
#include "agent/driver/freebsd/freebsd_options.h"
#include "agent/driver/vip_driver.h"
#include "common/exec/command_runner.h"
#include "common/time/clock.h"

namespace jailover::agent::freebsd {

class FreeBsdVipDriver final : public VipDriver {
 public:
  // Reconnect delays for the devd socket, measured on the Clock: the first
  // retry waits kDevdInitialBackoff, each failed attempt doubles the wait up
  // to kDevdMaxBackoff, and a successful connection resets it.
  static constexpr absl::Duration kDevdInitialBackoff = absl::Seconds(1);
  static constexpr absl::Duration kDevdMaxBackoff = absl::Seconds(30);
  // Time limit of one ifconfig or sysctl run (options.command_timeout if
  // that is shorter).
  static constexpr absl::Duration kToolTimeout = absl::Seconds(30);

  // `runner` and `clock` are not owned and must outlive this object. No I/O.
  FreeBsdVipDriver(common::CommandRunner& runner, common::Clock& clock,
                   const FreeBsdDriverOptions& options);
  // Calls StopWatching.
  ~FreeBsdVipDriver() override;

  FreeBsdVipDriver(const FreeBsdVipDriver&) = delete;
  FreeBsdVipDriver& operator=(const FreeBsdVipDriver&) = delete;

  // VipDriver
  //
  // Errors common to the methods that run tools: InvalidArgument for a bad
  // VipConfig (ValidateVipConfig, naming the field); FailedPrecondition when
  // the interface does not exist, carp(4) is not loaded, or a tool exits
  // non-zero (its stderr in the message, the password masked) or is not
  // installed; the runner's other errors (DeadlineExceeded, Internal) with
  // the command prepended; Internal for `ifconfig IF` output that does not
  // parse.

  // Runs `sysctl net.inet.carp.preempt=1`, so a BACKUP with a lower advskew
  // takes over from the MASTER and the VIP follows the jail. Idempotent.
  absl::Status Prepare() override;
  // Reads `ifconfig IF`, then: the vhid already carries vip.address -> OK,
  // after changing advskew (and advbase) if they differ; the vhid carries
  // other addresses -> FailedPrecondition (vhid conflict); vip.address is on
  // another vhid -> FailedPrecondition; else adds the VIP (ifconfig IF vhid N
  // advbase B advskew K pass P alias ADDR/32, password in secret_args).
  // A changed password is NOT detected on an existing vhid (ifconfig shows
  // keys only with -k): remove and configure again to change it.
  absl::Status Configure(const VipConfig& vip) override;
  // Sets advskew (0..254) of vip.vhid on vip.interface; OK without running
  // anything if it already has it. FailedPrecondition if the vhid is not
  // configured there, or carries addresses but not vip.address. Only
  // interface, vhid, address and name of `vip` are used.
  absl::Status SetAdvskew(const VipConfig& vip, int advskew) override;
  // Removes vip.address from vip.vhid (ifconfig IF inet ADDR -alias); the
  // kernel drops the vhid with its last address. OK without running
  // anything if the address is not on that vhid or the interface does not
  // exist; if the address is on another vhid it is left alone (warning).
  absl::Status Remove(const VipConfig& vip) override;
  // ifconfig IF vhid N state master, unless the vhid is MASTER already.
  // FailedPrecondition as SetAdvskew, and when the vhid is INIT (carp(4)
  // ignores the state change then).
  absl::Status Claim(const VipConfig& vip) override;
  // Parses `ifconfig IF`: one CarpStatus per vhid, ordered by vhid.
  // InvalidArgument for a bad interface name; NotFound if the interface
  // does not exist.
  absl::StatusOr<std::vector<CarpStatus>> State(const std::string& interface) override;

  // Starts a thread that reads devd events from options.devd_socket and
  // calls `callback` (on that thread, one call at a time, time from the
  // Clock) for each CARP transition; other events are ignored and malformed
  // CARP events are logged. Unlike the VipDriver comment says, an
  // unreachable socket is NOT an error: Watch returns OK at once and the
  // thread connects in the background, logging a warning on each failed
  // attempt or lost connection and retrying with kDevdInitialBackoff ..
  // kDevdMaxBackoff (devd may be restarting; the agent must still start).
  // Transitions while disconnected are lost; callers re-read State.
  // InvalidArgument for an empty callback or a socket path that does not
  // fit sockaddr_un; FailedPrecondition if already watching; Internal if
  // the wake-up pipe cannot be made. `callback` must not call Watch or
  // StopWatching.
  absl::Status Watch(std::function<void(const CarpTransition&)> callback) override;
  // Wakes the thread (also from a backoff wait or a blocked read), joins
  // it and returns. Idempotent; no-op if not watching. Must not be called
  // from the callback.
  void StopWatching() override;

  // Connection attempts to the devd socket so far, successful or not
  // (counted when the attempt is over). For tests that must know the
  // watcher has tried before they advance a FakeClock.
  int DevdConnectAttemptsForTest() const { return devd_connect_attempts_.load(); }

 private:
  // Runs a tool and returns its stdout. Non-zero exit or a missing tool ->
  // FailedPrecondition, except NotFound when ifconfig says the interface
  // does not exist; the argv (secrets masked) and stderr in the message.
  absl::StatusOr<std::string> RunTool(const std::vector<std::string>& argv,
                                      const std::vector<size_t>& secret_args = {});
  // The vhid of `vip` as `ifconfig` shows it. FailedPrecondition if it is
  // not configured on vip.interface, or carries addresses but not
  // vip.address; InvalidArgument for a bad interface or vhid.
  absl::StatusOr<CarpStatus> ExistingVhid(const VipConfig& vip)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_);
  // The watcher thread's body; returns once `stop_fd` is readable.
  void WatchLoop(int stop_fd, const std::function<void(const CarpTransition&)>& callback);
  // Reads packets from a connected devd socket and hands them to
  // HandlePacket. Returns why it stopped reading, for the warning, or ""
  // when stop was requested.
  std::string ReadEvents(int fd, int stop_fd,
                         const std::function<void(const CarpTransition&)>& callback);
  void HandlePacket(absl::string_view packet,
                    const std::function<void(const CarpTransition&)>& callback);
  // Waits `d` of Clock time; false if stop was requested first.
  bool SleepUnlessStopped(int stop_fd, absl::Duration d);

  common::CommandRunner& runner_;  // Not owned.
  common::Clock& clock_;           // Not owned.
  const FreeBsdDriverOptions options_;

  // Serializes Configure, SetAdvskew, Remove and Claim (each reads, decides,
  // acts).
  absl::Mutex config_mu_;

  std::atomic<int> devd_connect_attempts_{0};
  // Last member: destroyed (stopped) first.
  WatchThread watcher_;
};

}  // namespace jailover::agent::freebsd

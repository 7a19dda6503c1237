// LabNetwork: an isolated L2 segment in network namespaces for lab tests
// (root only). A bridge lives in its own namespace PREFIX-sw, connected to
// nothing real; each host is a network namespace PREFIX-NAME with eth0
// (198.18.0.0/15 address given by the test) on that bridge, plus a
// persistent mount namespace of its own, so FUSE mounts and mounts made in
// the host stay visible to later commands in it (`ip netns exec` would give
// each command a fresh one).
//
// PREFIX is unique per test process ("jl" + pid), so lab tests can run in
// parallel. RAII: the destructor kills every process whose network
// namespace is a lab host's (by pid, found through /proc/PID/ns/net),
// unmounts what is mounted under the lab directory in each host, detaches
// loop devices backed by files under it, drops the mount namespaces and
// deletes the network namespaces — on success and on failure alike.
// SweepLabLeftovers removes what a crashed lab test left (its own
// namespaces only, recognised by the "jl" prefix and the lab directory).
//
// Ownership: a lab jl<PID> belongs to process PID; LabLeftovers() and
// SweepLabLeftovers() only look at labs whose owner is dead (checked by pid
// and start time recorded in /run/jailover-lab/jl<PID>.owner, so a reused
// pid does not keep a dead lab alive), so lab tests running in parallel
// (ctest -j) never see or sweep each other's live labs. A process other than
// the owner (the lab tool's commands) operates on a live lab through
// Attach, which owns nothing. Not thread-safe: one LabNetwork is used by
// one thread.
#pragma once

#include <sys/types.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/exec/command_runner.h"

namespace jailover::testing {

// True if lab tests can run here: root (euid 0) and ip, nsenter, unshare,
// findmnt and losetup present. Otherwise false with the reason in *why_not.
// It never fails by itself: the caller decides (JAILOVER_REQUIRE_LAB skips,
// or fails when the environment variable CI is set, where lab tests must run).
bool LabAvailable(std::string* why_not);

// First statement of every lab test: skips it when the lab is not available,
// except under CI (env CI set), where it fails.
#define JAILOVER_REQUIRE_LAB()                                        \
  do {                                                                \
    std::string jailover_lab_why_not_;                                \
    if (!::jailover::testing::LabAvailable(&jailover_lab_why_not_)) { \
      if (getenv("CI") != nullptr) FAIL() << jailover_lab_why_not_;   \
      GTEST_SKIP() << jailover_lab_why_not_;                          \
    }                                                                 \
  } while (0)

struct LabHost {
  std::string name;     // "h1"
  std::string address;  // "198.18.0.11"
};

class LabNetwork {
 public:
  // Builds the segment and hosts (addresses /24 on eth0, lo up,
  // net.ipv4.ip_nonlocal_bind=1 in each host). Host names: 1-12 of [a-z0-9]
  // starting with a letter, not "sw" or "ns"; addresses in 198.18.0.0/15,
  // all distinct (InvalidArgument otherwise, nothing created).
  // FailedPrecondition without root/tools or when this process already has
  // a LabNetwork (one per process: the prefix is per process). If building
  // fails halfway, what was made is removed before the error returns.
  static absl::StatusOr<std::unique_ptr<LabNetwork>> Create(const std::vector<LabHost>& hosts);
  // A handle on the live lab `prefix` ("jl1234") that another process owns
  // (the lab tool's keeper), for operating on it from a second process: its
  // destructor tears nothing down. `hosts` are the lab's hosts as created.
  // InvalidArgument for a bad prefix or host; NotFound if the lab's bridge
  // or one of the hosts' network or mount namespaces does not exist.
  static absl::StatusOr<std::unique_ptr<LabNetwork>> Attach(const std::string& prefix,
                                                            const std::vector<LabHost>& hosts);
  // Tears the lab down if this object created it (Create), not if attached.
  ~LabNetwork();
  LabNetwork(const LabNetwork&) = delete;
  LabNetwork& operator=(const LabNetwork&) = delete;

  const std::string& prefix() const { return prefix_; }
  // Scratch directory of this lab (under /run/jailover-lab/PREFIX), on a
  // private mount; per-host subdirectories DIR/NAME exist.
  const std::string& dir() const { return dir_; }
  std::string host_dir(const std::string& host) const { return dir_ + "/" + host; }
  // /run/netns/PREFIX-NAME and the host's mount namespace file.
  std::string netns_path(const std::string& host) const;
  std::string mountns_path(const std::string& host) const;

  // argv run inside `host` (its net and mount namespaces), via nsenter.
  std::vector<std::string> InHost(const std::string& host,
                                  const std::vector<std::string>& argv) const;
  // Runs `argv` in `host` and waits (CommandRunner semantics, PATH default).
  absl::StatusOr<common::CommandResult> Run(const std::string& host,
                                            const std::vector<std::string>& argv,
                                            absl::Duration timeout = absl::Seconds(30));
  // Starts a daemon in `host` (CommandRunner::StartDetached through nsenter;
  // the returned pid is nsenter's, which execs the program in place). Waits
  // (up to 5 s) until that pid is in the host and runs argv[0], so Pids()
  // and /proc/PID/cmdline show the program when it returns.
  absl::StatusOr<pid_t> StartDetached(const std::string& host, const std::vector<std::string>& argv,
                                      const std::string& log_path);

  // Runs one gtest case of this very test binary inside `host` (its net and
  // mount namespaces, so FUSE mounts and daemons the case makes stay in the
  // host, as with an agent running there): /proc/self/exe
  // --gtest_filter=TEST --gtest_also_run_disabled_tests through nsenter,
  // with `env` plus JAILOVER_LAB_DIR=dir() and JAILOVER_LAB_HOST=host in its
  // environment. Name such cases DISABLED_... so a normal run skips them.
  // Returns the run (exit 0 = the case passed; stdout has gtest's report).
  absl::StatusOr<common::CommandResult> RunTestInHost(
      const std::string& host, const std::string& test,
      const std::map<std::string, std::string>& env = {},
      absl::Duration timeout = absl::Seconds(120));

  // The bridge port of `host` down/up: a pulled cable.
  absl::Status LinkDown(const std::string& host);
  absl::Status LinkUp(const std::string& host);
  // Whether the bridge port of `host` is up (administratively).
  absl::StatusOr<bool> LinkIsUp(const std::string& host);
  // The Ethernet address of `host`'s eth0 ("aa:bb:cc:dd:ee:ff").
  absl::StatusOr<std::string> Mac(const std::string& host);
  // `host`'s neighbour (ARP) entry for `address` as `ip neigh show ADDRESS`
  // prints it ("198.18.0.100 dev eth0 lladdr aa:... STALE"); "" if none.
  // Only reads: sends nothing.
  absl::StatusOr<std::string> Neighbour(const std::string& host, const std::string& address);
  // Drops all IP traffic between hosts `a` and `b` and nothing else: a
  // blackhole route to the other's address in each of the two (so TCP
  // fails both ways, UDP too; L2 and every other host are unaffected).
  // Idempotent. InvalidArgument for an unknown host or a == b.
  absl::Status BlockTraffic(const std::string& a, const std::string& b);
  // Drops what `a` sends to `b` only: a blackhole route in `a` alone, so `b`
  // still reaches `a` (its packets arrive; `a`'s answers do not leave).
  // Idempotent. InvalidArgument for an unknown host or a == b.
  absl::Status BlockTrafficOneWay(const std::string& a, const std::string& b);
  // Removes every block BlockTraffic made that involves `host` (its own
  // blackhole routes and the others' routes to its address). Idempotent.
  absl::Status UnblockTraffic(const std::string& host);
  // Drops `percent` (1..100) of the IP packets `host` sends and receives, at
  // random: an nftables table (`kLossTable`) in the host's network
  // namespace, `numgen random mod 100 < percent drop` on input and output.
  // Replaces an earlier loss. InvalidArgument for an unknown host or a bad
  // percent; FailedPrecondition without nft.
  absl::Status SetLoss(const std::string& host, int percent);
  // `host` neither sends nor receives CARP/VRRP advertisements (IP protocol
  // 112): a bridge table (`kCarpTable`_HOST) on the lab's switch dropping
  // them to and from its port. Its speakers and the others' then each
  // believe they are alone: a CARP split.
  absl::Status BlockCarp(const std::string& host);
  // Removes SetLoss's and BlockCarp's tables of `host`. Idempotent.
  absl::Status ClearFilters(const std::string& host);
  // The loss SetLoss put on `host`, in percent (0: none).
  absl::StatusOr<int> Loss(const std::string& host);
  // Whether BlockCarp holds for `host`.
  absl::StatusOr<bool> CarpBlocked(const std::string& host);
  // After KillAll: what a reboot of `host` would leave of it, nothing —
  // every mount made in its mount namespace under dir() (lazily unmounted)
  // and every loop device over a file in it detached. Its network
  // namespace, mount namespace and directory stay. Returns what it removed.
  std::vector<std::string> ClearHostMounts(const std::string& host);
  // The addresses `host` has blackhole routes to (BlockTraffic), sorted.
  absl::StatusOr<std::vector<std::string>> BlockedAddresses(const std::string& host);
  const std::vector<LabHost>& hosts() const { return hosts_; }
  // Every process in `host`'s network namespace.
  std::vector<pid_t> Pids(const std::string& host) const;
  // SIGKILL every process in `host` (host death; pair with LinkDown).
  void KillAll(const std::string& host);

  common::CommandRunner& runner() { return runner_; }

 private:
  LabNetwork(std::string prefix, bool owner);
  absl::Status Build(const std::vector<LabHost>& hosts);
  absl::Status AddHost(const LabHost& host);
  // The host named `name`, or nullptr.
  const LabHost* FindHost(const std::string& name) const;
  // Replaces `table` (family inet) in `host` with one dropping what `rule`
  // matches on input and output.
  absl::Status ApplyDropTable(const std::string& host, const std::string& table,
                              const std::string& rule);
  // Writes `script` to `file` and applies it atomically with `nft -f` in
  // `host`'s (or the switch's, "sw") network namespace.
  absl::Status ApplyNftScript(const std::string& host, const std::string& file,
                              const std::string& script);
  // Whether `host` (or the switch, "sw") has `table` of `family`
  // (FailedPrecondition without nft).
  absl::StatusOr<bool> HasTable(const std::string& host, const std::string& family,
                                const std::string& table, std::string* listing);

  std::string prefix_;
  // Created (tears down on destruction) rather than attached.
  bool owner_ = true;
  std::string dir_;
  std::vector<LabHost> hosts_;
  common::SubprocessCommandRunner runner_;
};

// Root of all lab directories.
inline constexpr char kLabRoot[] = "/run/jailover-lab";
// The nftables tables LabNetwork::SetLoss (family inet, in the host) and
// BlockCarp (family bridge, on the switch, with "_HOST" appended) make.
inline constexpr char kLossTable[] = "jailover_lab_loss";
inline constexpr char kCarpTable[] = "jailover_lab_carp";

// What lab tests whose owner process is dead left behind, for the cleanup
// checks: network namespaces named jl<PID>-*, the directory
// /run/jailover-lab/jl<PID> and mounts under it, loop devices backed by
// files under it, processes in those network namespaces or in the hosts'
// mount namespaces. One human-readable line each; empty = clean.
std::vector<std::string> LabLeftovers();
// The same for one lab prefix ("jl1234"), whether its owner lives or not.
std::vector<std::string> LabLeftovers(const std::string& prefix);
// Removes all of it (kills those processes by pid, unmounts in each host's
// mount namespace, detaches the loop devices, deletes the namespaces and the
// directory), with the teardown steps of ~LabNetwork. Returns what it
// removed. Sweeps are serialised by a lock file; safe to call while other
// labs are live (they are not touched).
std::vector<std::string> SweepLabLeftovers();
// The same for one prefix, whether its owner lives or not (never call it on
// a lab some live LabNetwork still uses).
std::vector<std::string> SweepLabLeftovers(const std::string& prefix);

// Makes lab `prefix` count as owned also by the live process `holder` (pid
// and start time appended to its .owner file): LabLeftovers() and
// SweepLabLeftovers() leave it alone while `holder` lives. For a test that
// crashes a lab's owner on purpose and inspects what it left before a
// concurrent sweep could remove it. ReleaseLab drops the extra holders.
absl::Status HoldLab(const std::string& prefix, pid_t holder);
void ReleaseLab(const std::string& prefix);

}  // namespace jailover::testing

// jailover-lab: a real jailover cluster in network namespaces on one Linux
// machine (root), for the demo, the lab tests and the failover benchmark.
//
// Built on the lab harness of the tests (tests/testing/lab_network.h), not
// beside it: `up` starts a long-lived keeper process (its own session) that
// owns a LabNetwork (prefix "jl<keeper pid>") with the hosts ctl (the
// coordinator), s1 (storage agent), h1 h2 h3 (jail agents on the Linux
// driver) and c1 (client), starts the daemons in them, waits until the
// coordinator sees the four agents READY, records the lab in a state file
// (/run/jailover-lab/current.json) and stays until `down` sends it SIGTERM:
// meanwhile it supervises the daemons as systemd's Restart=always would (a
// daemon that exits on its own, not by `stop` or `kill-host`, is run again
// with its argv after 1 s, doubling to 16 s while it keeps exiting soon);
// at SIGTERM it stops the daemons (as the state file records them then: `stop`
// and `start` change them) and ~LabNetwork removes everything (processes,
// mounts, loop devices, namespaces, the lab directory). A crashed keeper's
// lab is what LabLeftovers()/SweepLabLeftovers() already find and remove.
//
// The other commands work on the live lab from another process through
// LabNetwork::Attach (which owns nothing): status, kill-host, stop, start,
// partition, heal, exec. One lab per state file; not thread-safe (one
// command = one process).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jailover::lab {

// Everything `up` needs; the other commands use state_file only (and
// `start` etcdctl_bin if the state file does not name one).
struct LabToolOptions {
  std::string agent_bin;
  std::string coordinator_bin;
  std::string ctl_bin;
  // Where the live lab is recorded.
  std::string state_file = "/run/jailover-lab/current.json";
  // Lease settings of the coordinator and the agents.
  absl::Duration lease_ttl = absl::Seconds(3);
  absl::Duration lease_renew_interval = absl::Milliseconds(500);
  absl::Duration lease_safety_margin = absl::Seconds(2);
  // How long `up` waits for the four agents to be READY.
  absl::Duration ready_timeout = absl::Seconds(60);
  // Extra flags for the coordinator(s) and for every agent.
  std::vector<std::string> coordinator_args;
  std::vector<std::string> agent_args;
  // How many coordinators (1..3) and their store: "sqlite" (one
  // coordinator, host ctl) or "etcd" (hosts ctl1..ctlN, an etcd member in
  // each).
  int coordinators = 1;
  std::string store = "sqlite";
  // Extra flags for the first coordinator only (ctl1, or ctl), after
  // coordinator_args.
  std::vector<std::string> first_coordinator_args;
  // etcd 3.4 (server and client) for --store etcd.
  std::string etcd_bin = "/usr/bin/etcd";
  std::string etcdctl_bin = "/usr/bin/etcdctl";
  // etcd's leadership lease of the coordinators (--store etcd).
  absl::Duration election_ttl = absl::Seconds(1);
  // Every agent's lease channel goes through a delaying TCP proxy in each
  // coordinator host (`lease-proxy`, testing::DelayProxy), one listener per
  // agent host, so that `delay H MS` adds latency and jitter to H's lease
  // channel alone (this kernel has no netem).
  bool lease_proxy = false;
};

// A process the lab started, recorded as pid, start time and argv[0], so a
// reused pid is never taken for it, with the whole argv it was started with
// (`start` runs it again with exactly that).
struct LabToolDaemon {
  pid_t pid = 0;  // 0: none (never started, or stopped)
  uint64_t start_time = 0;
  std::string argv0;
  std::string log;
  std::vector<std::string> argv;
  // Killed by `stop` (pid and start_time 0; argv0, argv and log kept) until
  // `start` runs it again.
  bool stopped = false;
  // How many times the keeper ran it again after it exited on its own.
  int restarts = 0;

  // The lab started this daemon (it may be stopped, or have died since).
  bool recorded() const { return !argv0.empty(); }
};

// One host of the lab as recorded in the state file.
struct LabToolHost {
  std::string name;     // "h1"
  std::string address;  // "198.18.0.11"
  std::string role;     // "coordinator", "storage", "jail" or "client"
  // The daemon started in it: coordinator or agent (none for the client).
  LabToolDaemon daemon;
  bool killed = false;  // by kill-host
  // The etcd member of a coordinator host (--store etcd); pid 0 otherwise.
  LabToolDaemon etcd;
  // The lease proxy of a coordinator host (up --lease_proxy); none otherwise.
  LabToolDaemon proxy;
};

struct LabState {
  std::string prefix;  // "jl1234"
  std::string dir;     // /run/jailover-lab/jl1234
  pid_t keeper_pid = 0;
  uint64_t keeper_start_time = 0;
  std::string keeper_argv0;
  // The coordinators' gRPC and HTTP endpoints, comma-separated:
  // "198.18.0.2:7430" (sqlite), "198.18.0.2:7430,198.18.0.3:7430,..." (etcd).
  std::string coordinator;
  std::string coordinator_http;
  std::string store = "sqlite";
  std::string ctl_bin;
  // --store etcd: the etcdctl `start` checks restarted members with.
  std::string etcdctl_bin;
  std::vector<LabToolHost> hosts;
};

// The operator identity jailoverctl uses in the lab (operator/lab).
inline constexpr char kLabOperator[] = "lab";

// jailoverctl (state.ctl_bin) against `endpoint` on the lab's mTLS, as
// operator/lab, then `args`: run it in c1 (LabNetwork::Run).
std::vector<std::string> CtlArgv(const LabState& state, const std::string& endpoint,
                                 const std::vector<std::string>& args = {});

// The state file as JSON, and back (InvalidArgument for a malformed file).
std::string LabStateToJson(const LabState& state);
absl::StatusOr<LabState> LabStateFromJson(const std::string& json);
// Reads `path`: NotFound when no lab is recorded there.
absl::StatusOr<LabState> ReadLabState(const std::string& path);

// The commands. Each prints its own progress on stdout and returns the
// process exit code (0 = done; 1 = failed, with the reason on stderr).
int Up(const LabToolOptions& options);
int Down(const LabToolOptions& options);
int Status(const LabToolOptions& options);
int KillHost(const LabToolOptions& options, const std::string& host);
// SIGKILLs the daemons the lab started in each host (its coordinator or
// agent, and its etcd member) and records them as stopped; every other
// process of the host (jails, ucarp, nbd-server, nbdfuse) keeps running and
// the link stays up, as when the daemons crash. Every host is checked
// first: an unknown, killed (kill-host) or daemon-less host, or one whose
// daemons are already stopped, fails the command and changes nothing.
// `etcd_only`: only the etcd member of each host (a coordinator host of an
// etcd lab; refused for any other), its coordinator keeps running.
int Stop(const LabToolOptions& options, const std::vector<std::string>& hosts,
         bool etcd_only = false);
// Starts the stopped daemons of each host again with the argv they were
// first started with, appending to the same log files, and waits until each
// answers: first the etcd members of all the hosts (started together, as
// they need a quorum), then the coordinators, then the agents. A host whose
// daemons are not stopped is refused (nothing started).
int Start(const LabToolOptions& options, const std::vector<std::string>& hosts);
// `from` empty: the host's link down; else traffic between host and `from`
// (one_way: only what host sends to `from`).
int Partition(const LabToolOptions& options, const std::string& host, const std::string& from,
              bool one_way = false);
// Every chunk of `host`'s lease channel (an agent host's; both ways) is
// held `delay_ms` (0: none) plus a random -jitter_ms..+jitter_ms drawn anew
// every 100 ms (never below 0; order kept) by the coordinator hosts' lease
// proxies. FailedPrecondition (exit 1) if the lab was not brought up with
// --lease_proxy; InvalidArgument for a host without an agent or values
// outside 0..60000 (jitter at most the delay).
int Delay(const LabToolOptions& options, const std::string& host, int delay_ms, int jitter_ms);
// The lease proxy process (`jailover-lab lease-proxy`, started by `up
// --lease_proxy` in each coordinator host): for each "LISTEN_IP:PORT=HOST"
// of `routes`, a DelayProxy listening there and forwarding to `upstream`,
// its delay read every 100 ms from CONTROL_DIR/HOST ("DELAY_MS JITTER_MS";
// none: no delay). Writes its pid to `ready_file` once listening; runs until
// SIGTERM or SIGINT.
int LeaseProxy(const std::string& upstream, const std::vector<std::string>& routes,
               const std::string& control_dir, const std::string& ready_file);
// Undoes Partition, Loss, CarpSplit and Delay.
int Heal(const LabToolOptions& options, const std::string& host);
// `host` drops `percent` (1..100) of the packets it sends and receives.
int Loss(const LabToolOptions& options, const std::string& host, int percent);
// `host` drops every CARP/VRRP advertisement it would send or receive.
int CarpSplit(const LabToolOptions& options, const std::string& host);
// SIGSTOP to the host's daemon (all: to every process of the host: agent,
// jails, nbdfuse, ucarp), or, resume, SIGCONT to every process of the host.
int Pause(const LabToolOptions& options, const std::string& host, bool all, bool resume);
// A host killed by kill-host boots again: its processes, mounts, loop
// devices and extra addresses gone, its link up, its daemons started with
// their recorded argv (Start). fresh (jail hosts only): a new machine under
// the same name, with the agent's state directory empty.
int Revive(const LabToolOptions& options, const std::string& host, bool fresh);
// Replaces this process with argv run inside `host` (its network and mount
// namespaces); returns only on failure.
int Exec(const LabToolOptions& options, const std::string& host,
         const std::vector<std::string>& argv);
// The keeper (hidden subcommand `keep`, started by Up): builds the lab,
// reports progress on `progress_fd`, keeps the lab until SIGTERM.
int Keep(const LabToolOptions& options, int progress_fd);

}  // namespace jailover::lab

#include "deploy/lab/lab_tool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <system_error>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/driver/linux/proc_fs.h"
#include "common/daemon/signals.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "common/log/log.h"
#include "common/status/status_macros.h"
#include "common/tls/x509.h"
#include "coordinator/cluster/host_tracker.h"
#include "tests/testing/delay_proxy.h"
#include "tests/testing/lab_network.h"

namespace jailover::lab {
namespace {

namespace fs = std::filesystem;
using agent::linux_driver::IsSameProcess;
using agent::linux_driver::ReadProcess;
using testing::LabHost;
using testing::LabNetwork;

constexpr char kCoordinatorAddress[] = "198.18.0.2";
// --store etcd: the coordinator hosts ctl1..ctl3.
constexpr const char* kEtcdCoordinatorAddresses[] = {"198.18.0.2", "198.18.0.3", "198.18.0.4"};
constexpr int kMaxCoordinators = 3;
constexpr int kEtcdClientPort = 2379;
constexpr int kEtcdPeerPort = 2380;
constexpr absl::Duration kEtcdReadyTimeout = absl::Seconds(30);
constexpr absl::Duration kLeaderTimeout = absl::Seconds(30);
constexpr int kCoordinatorPort = 7430;
constexpr int kCoordinatorHttpPort = 7422;
constexpr int kAgentPort = 7420;
constexpr int kAgentHttpPort = 7421;
// up --lease_proxy: the lease proxy of each coordinator host listens for the
// agent host with index K (in the state's order) on port kLeaseProxyPort + K.
constexpr int kLeaseProxyPort = 7450;
constexpr absl::Duration kDaemonStopTimeout = absl::Seconds(10);
// `start`: how long an agent or the SQLite coordinator may take to answer.
constexpr absl::Duration kDaemonStartTimeout = absl::Seconds(30);
constexpr absl::Duration kKeeperStopTimeout = absl::Seconds(30);
constexpr size_t kMaxStateBytes = 1 << 20;

// The lab's hosts: name, address, role. One coordinator host "ctl" with
// the SQLite store; ctl1..ctlN with etcd.
std::vector<LabToolHost> LabLayout(const LabToolOptions& options) {
  std::vector<std::tuple<std::string, std::string, std::string>> layout;
  if (options.store == "etcd") {
    for (int i = 0; i < options.coordinators && i < kMaxCoordinators; ++i) {
      layout.emplace_back(absl::StrCat("ctl", i + 1), kEtcdCoordinatorAddresses[i], "coordinator");
    }
  } else {
    layout.emplace_back("ctl", kCoordinatorAddress, "coordinator");
  }
  for (const auto& host : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"s1", "198.18.0.21", "storage"},
           {"h1", "198.18.0.11", "jail"},
           {"h2", "198.18.0.12", "jail"},
           {"h3", "198.18.0.13", "jail"},
           {"c1", "198.18.0.31", "client"}}) {
    layout.push_back(host);
  }
  std::vector<LabToolHost> hosts;
  for (const auto& [name, address, role] : layout) {
    LabToolHost host;
    host.name = name;
    host.address = address;
    host.role = role;
    hosts.push_back(host);
  }
  return hosts;
}

std::vector<const LabToolHost*> CoordinatorHosts(const LabState& state) {
  std::vector<const LabToolHost*> out;
  for (const LabToolHost& host : state.hosts) {
    if (host.role == "coordinator") out.push_back(&host);
  }
  return out;
}

std::string GrpcEndpoint(const LabToolHost& host) {
  return absl::StrCat(host.address, ":", kCoordinatorPort);
}

std::string HttpEndpoint(const LabToolHost& host) {
  return absl::StrCat(host.address, ":", kCoordinatorHttpPort);
}

std::vector<LabHost> NetworkHosts(const std::vector<LabToolHost>& hosts) {
  std::vector<LabHost> out;
  for (const LabToolHost& host : hosts) out.push_back({host.name, host.address});
  return out;
}

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d)); }

std::string DurationFlag(absl::Duration d) { return absl::FormatDuration(d); }

void Fail(const absl::Status& status) { std::cerr << "jailover-lab: " << status.message() << "\n"; }

// A process recorded as (pid, start time, argv0) still runs.
bool Alive(pid_t pid, uint64_t start_time, const std::string& argv0) {
  return pid > 0 && IsSameProcess("/proc", pid, start_time, argv0);
}

bool Alive(const LabToolDaemon& daemon) {
  return Alive(daemon.pid, daemon.start_time, daemon.argv0);
}

// A daemon of the lab and the host it runs in.
struct HostDaemon {
  std::string host;
  LabToolDaemon daemon;
};

// The daemons of the lab: the hosts' own ones, and (with `etcd`) the etcd
// members.
std::vector<HostDaemon> Daemons(const LabState& state, bool main, bool etcd) {
  std::vector<HostDaemon> out;
  for (const LabToolHost& host : state.hosts) {
    if (main && host.daemon.pid > 0) out.push_back({host.name, host.daemon});
    if (main && host.proxy.pid > 0) out.push_back({host.name, host.proxy});
    if (etcd && host.etcd.pid > 0) out.push_back({host.name, host.etcd});
  }
  return out;
}

bool KeeperAlive(const LabState& state) {
  return Alive(state.keeper_pid, state.keeper_start_time, state.keeper_argv0);
}

// Last `lines` lines of a log file, each prefixed for display.
std::string LogTail(const std::string& path, size_t lines) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, 16 << 20);
  if (!text.ok()) return "";
  std::vector<std::string> all = absl::StrSplit(*text, '\n', absl::SkipEmpty());
  const size_t first = all.size() > lines ? all.size() - lines : 0;
  std::string out;
  for (size_t i = first; i < all.size(); ++i) absl::StrAppend(&out, "    | ", all[i], "\n");
  return out;
}

// Holds an exclusive flock on STATE_FILE.lock (serialises up/down and the
// commands that change the state file).
// With `wait` false it does not wait for a lock held elsewhere: held()
// says whether it got it (the keeper's supervision skips a round rather
// than wait on `down`, which holds the lock while it waits for the keeper).
class StateLock {
 public:
  explicit StateLock(const std::string& state_file, bool wait = true) {
    std::error_code ec;
    fs::create_directories(fs::path(state_file).parent_path(), ec);
    fd_ = open((state_file + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return;
    int rc;
    while ((rc = flock(fd_, wait ? LOCK_EX : LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
    }
    held_ = rc == 0;
  }
  ~StateLock() {
    if (fd_ >= 0) close(fd_);
  }
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

// The live lab: its state and an attached (non-owning) LabNetwork.
struct LiveLab {
  LabState state;
  std::unique_ptr<LabNetwork> network;
};

absl::StatusOr<LiveLab> AttachLab(const LabToolOptions& options) {
  LiveLab lab;
  absl::StatusOr<LabState> state = ReadLabState(options.state_file);
  if (absl::IsNotFound(state.status())) {
    return absl::FailedPreconditionError("no lab is up (run `jailover-lab up`)");
  }
  RETURN_IF_ERROR(state.status());
  lab.state = *std::move(state);
  if (!KeeperAlive(lab.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("lab ", lab.state.prefix, ": its keeper (pid ", lab.state.keeper_pid,
                     ") is gone; run `jailover-lab down` to remove what is left"));
  }
  ASSIGN_OR_RETURN(lab.network,
                   LabNetwork::Attach(lab.state.prefix, NetworkHosts(lab.state.hosts)));
  return lab;
}

LabToolHost* FindHost(LabState& state, const std::string& name) {
  for (LabToolHost& host : state.hosts) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

absl::Status CheckHost(const LabState& state, const std::string& name) {
  for (const LabToolHost& host : state.hosts) {
    if (host.name == name) return absl::OkStatus();
  }
  std::vector<std::string> names;
  for (const LabToolHost& host : state.hosts) names.push_back(host.name);
  return absl::InvalidArgumentError(
      absl::StrCat("no host '", name, "' in the lab (hosts: ", absl::StrJoin(names, " "), ")"));
}

// The program of `pid`: argv[0]'s file name, else (a zombie, or a process
// that exited meanwhile) the kernel's command name from /proc/PID/comm.
std::string ProcessName(pid_t pid) {
  absl::StatusOr<agent::linux_driver::ProcessInfo> info = ReadProcess("/proc", pid);
  if (info.ok() && !info->cmdline.empty()) return fs::path(info->cmdline[0]).filename().string();
  absl::StatusOr<std::string> comm =
      common::ReadFileToString(absl::StrCat("/proc/", pid, "/comm"), 64);
  std::string name = comm.ok() ? std::string(absl::StripAsciiWhitespace(*comm)) : "";
  if (name.empty()) return absl::StrCat("pid ", pid, " (gone)");
  if (info.ok() && info->state == 'Z') absl::StrAppend(&name, " (zombie)");
  return name;
}

// --- the keeper ----------------------------------------------------------------

// Progress lines to the `up` command: "step TEXT", "info TEXT", then "ok"
// or "fail TEXT". Writes to a closed pipe (the `up` command interrupted)
// are ignored (SIGPIPE is ignored in the keeper).
class Progress {
 public:
  explicit Progress(int fd) : fd_(fd), start_(absl::Now()) {}
  ~Progress() { Close(); }
  void Step(const std::string& text) {
    Line(absl::StrFormat("step [%5.1fs] %s", absl::ToDoubleSeconds(absl::Now() - start_), text));
  }
  void Info(const std::string& text) { Line("info " + text); }
  void Ok() { Line("ok"); }
  // First line "fail ...", further lines "more ...".
  void FailWith(const std::string& text) {
    std::string kind = "fail ";
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      Line(kind + std::string(line));
      kind = "more ";
    }
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  absl::Duration elapsed() const { return absl::Now() - start_; }

 private:
  void Line(std::string line) {
    if (fd_ < 0) return;
    std::replace(line.begin(), line.end(), '\n', ' ');
    line.push_back('\n');
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  int fd_;
  absl::Time start_;
};

// SIGTERM, SIGINT and SIGHUP are blocked in the keeper (children get an
// empty mask from CommandRunner): a pending one means "stop".
sigset_t StopSignals() { return common::ShutdownSignalSet(); }

bool StopRequested() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT) ||
         sigismember(&pending, SIGHUP);
}

absl::Status DaemonDied(const std::string& host, const std::string& what, const std::string& log) {
  return absl::UnavailableError(
      absl::StrCat(what, " in ", host, " exited; end of ", log, ":\n", LogTail(log, 15)));
}

// Starts `argv` in `host` logging to daemon->log and records it in *daemon.
absl::Status StartProcess(LabNetwork& network, const std::string& host,
                          const std::vector<std::string>& argv, LabToolDaemon* daemon) {
  ASSIGN_OR_RETURN(pid_t pid, network.StartDetached(host, argv, daemon->log));
  daemon->pid = pid;
  daemon->argv0 = argv[0];
  daemon->argv = argv;
  daemon->stopped = false;
  absl::StatusOr<agent::linux_driver::ProcessInfo> info = ReadProcess("/proc", pid);
  if (!info.ok() || info->state == 'Z') return DaemonDied(host, argv[0], daemon->log);
  daemon->start_time = info->start_time;
  return absl::OkStatus();
}

// Starts the daemon `argv` in `host` and records it (host.daemon.log set).
absl::Status StartDaemon(LabNetwork& network, LabToolHost& host,
                         const std::vector<std::string>& argv) {
  return StartProcess(network, host.name, argv, &host.daemon);
}

// Waits for `done` (polled every 100 ms) while `daemons` live and no stop
// is requested.
absl::Status WaitFor(const std::function<bool()>& done, absl::Duration timeout,
                     const std::vector<HostDaemon>& daemons, const std::string& what) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (done()) return absl::OkStatus();
    for (const HostDaemon& daemon : daemons) {
      if (!Alive(daemon.daemon)) {
        return DaemonDied(daemon.host, fs::path(daemon.daemon.argv0).filename().string(),
                          daemon.daemon.log);
      }
    }
    if (StopRequested()) return absl::CancelledError("interrupted");
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out after ", Seconds(timeout), " waiting for ", what));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

// The lab's certificates (docs/security.md): a CA of its own, made at `up`
// in DIR/pki, a certificate per coordinator and per agent carrying its
// identity and its address (agents dial coordinators, jailoverctl dials
// them, by address; coordinators dial agents by host name), and one for the
// operator "lab" that jailoverctl in c1 uses.
std::string PkiDir(const LabState& state) { return state.dir + "/pki"; }

// --tls_cert/--tls_key/--tls_ca of PkiDir/BASE.{pem,key}.
std::vector<std::string> TlsFlags(const LabState& state, const std::string& base) {
  const std::string pki = PkiDir(state);
  return {"--tls_cert=" + pki + "/" + base + ".pem", "--tls_key=" + pki + "/" + base + ".key",
          "--tls_ca=" + pki + "/ca.pem"};
}

std::string CertBase(common::Role role, const std::string& name) {
  return absl::StrCat(common::RoleName(role), "-", name);
}

absl::Status MakeLabPki(const LabState& state) {
  const std::string pki = PkiDir(state);
  std::error_code ec;
  fs::create_directories(pki, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", pki));
  fs::permissions(pki, fs::perms::owner_all, ec);
  const absl::Time now = absl::Now();
  ASSIGN_OR_RETURN(common::KeyAndCertificate ca,
                   common::MakeCa(state.prefix, now, absl::Hours(24 * 30)));
  RETURN_IF_ERROR(common::WriteKeyAndCertificate(pki + "/ca", ca, /*replace=*/true));
  auto issue = [&](common::Role role, const std::string& name,
                   std::vector<std::string> ips) -> absl::Status {
    common::IssueOptions options;
    options.identity = common::Identity{role, name};
    options.ips = std::move(ips);
    options.validity = absl::Hours(24 * 30);
    ASSIGN_OR_RETURN(common::KeyAndCertificate pair, common::IssueCertificate(ca, options, now));
    return common::WriteKeyAndCertificate(pki + "/" + CertBase(role, name), pair,
                                          /*replace=*/true);
  };
  for (const LabToolHost& host : state.hosts) {
    if (host.role == "coordinator") {
      RETURN_IF_ERROR(issue(common::Role::kCoordinator, host.name, {host.address}));
    } else if (host.role == "storage" || host.role == "jail") {
      RETURN_IF_ERROR(issue(common::Role::kAgent, host.name, {host.address}));
    }
  }
  return issue(common::Role::kOperator, kLabOperator, {});
}

// Hosts (by name) the coordinator at `endpoint` reports READY, from
// `jailoverctl -o json host list` run in `from`.
absl::StatusOr<std::set<std::string>> ReadyHosts(LabNetwork& network, const LabState& state,
                                                 const std::string& from,
                                                 const std::string& endpoint) {
  ASSIGN_OR_RETURN(
      common::CommandResult result,
      network.Run(from, CtlArgv(state, endpoint, {"--timeout", "2", "-o", "json", "host", "list"}),
                  absl::Seconds(10)));
  if (!result.ok()) {
    return absl::UnavailableError(
        absl::StrCat("jailoverctl host list: ", absl::StripAsciiWhitespace(result.stderr_text)));
  }
  std::set<std::string> ready;
  nlohmann::json json = nlohmann::json::parse(result.stdout_text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InternalError("jailoverctl host list: not JSON: " + result.stdout_text);
  }
  for (const auto& host : json.value("hosts", nlohmann::json::array())) {
    if (!host.is_object() || !host.contains("status")) continue;
    if (host["status"].value("state", "") == "HOST_STATE_READY") {
      ready.insert(host.value("name", ""));
    }
  }
  return ready;
}

// A coordinator's role from its /readyz (curl in `from`): "leader" (200),
// "standby" (503, a standby's answer) or "down" (no answer, or another
// one); `detail` is the answer or the error.
struct CoordinatorRole {
  std::string role;
  std::string detail;
};

CoordinatorRole ProbeRole(LabNetwork& network, const std::string& from,
                          const LabToolHost& coordinator) {
  absl::StatusOr<common::CommandResult> result = network.Run(
      from,
      {"curl", "--silent", "--show-error", "--connect-timeout", "1", "--max-time", "2", "--output",
       "-", "--write-out", "\n%{http_code}", "http://" + HttpEndpoint(coordinator) + "/readyz"},
      absl::Seconds(5));
  if (!result.ok()) return {"down", std::string(result.status().message())};
  const std::string& out = result->stdout_text;
  const size_t newline = out.rfind('\n');
  const std::string code = newline == std::string::npos ? out : out.substr(newline + 1);
  const std::string body = std::string(
      absl::StripAsciiWhitespace(newline == std::string::npos ? "" : out.substr(0, newline)));
  if (!result->ok() || code == "000") {
    return {"down", std::string(absl::StripAsciiWhitespace(result->stderr_text))};
  }
  if (code == "200" && absl::StartsWith(body, "leader")) return {"leader", body};
  if (code == "503" && absl::StrContains(body, "standby")) return {"standby", body};
  return {"down", absl::StrCat("HTTP ", code, ": ", body)};
}

// The coordinator host that says it leads (the first one if, for a moment,
// two do), or nullptr.
const LabToolHost* FindLeader(LabNetwork& network, const LabState& state, const std::string& from,
                              std::string* why_none) {
  std::vector<std::string> answers;
  for (const LabToolHost* host : CoordinatorHosts(state)) {
    const CoordinatorRole role = ProbeRole(network, from, *host);
    if (role.role == "leader") return host;
    answers.push_back(absl::StrCat(host->name, ": ", role.role, " (", role.detail, ")"));
  }
  if (why_none != nullptr) *why_none = "no leader: " + absl::StrJoin(answers, "; ");
  return nullptr;
}

// Where the keeper asks the coordinator: in ctl itself (SQLite), from c1
// (etcd: the leader may change).
std::string AskFrom(const LabState& state) { return state.store == "etcd" ? "c1" : "ctl"; }

// The coordinator flags of host `ctl` (the usual ones, plus etcd's).
std::vector<std::string> CoordinatorArgv(const LabToolOptions& options, LabNetwork& network,
                                         const LabState& state, const LabToolHost& ctl,
                                         const std::string& port_file, bool first) {
  const std::string host_dir = network.host_dir(ctl.name);
  std::vector<std::string> argv = {
      options.coordinator_bin,
      "--name=" + ctl.name,
      "--listen=" + GrpcEndpoint(ctl),
      "--http_listen=" + HttpEndpoint(ctl),
      "--data_dir=" + host_dir + "/data",
      "--jail_root=" + state.dir + "/jails",
      absl::StrCat("--lease_ttl=", DurationFlag(options.lease_ttl)),
      absl::StrCat("--lease_renew_interval=", DurationFlag(options.lease_renew_interval)),
      "--lease_safety_margin=" + DurationFlag(options.lease_safety_margin),
      "--port_file=" + port_file};
  for (const std::string& flag : TlsFlags(state, CertBase(common::Role::kCoordinator, ctl.name))) {
    argv.push_back(flag);
  }
  if (state.store == "etcd") {
    // Every member, its own host's first (as co-located etcd is deployed):
    // the client starts on the first endpoint, and a dead machine's member
    // must not be every coordinator's current one.
    std::vector<std::string> etcd = {absl::StrCat(ctl.address, ":", kEtcdClientPort)};
    for (const LabToolHost* host : CoordinatorHosts(state)) {
      if (host->name != ctl.name) etcd.push_back(absl::StrCat(host->address, ":", kEtcdClientPort));
    }
    argv.insert(argv.end(),
                {"--store=etcd", "--etcd_endpoints=" + absl::StrJoin(etcd, ","),
                 "--etcd_prefix=/jailover/", "--election_ttl=" + DurationFlag(options.election_ttl),
                 "--advertise_address=" + GrpcEndpoint(ctl)});
  }
  argv.insert(argv.end(), options.coordinator_args.begin(), options.coordinator_args.end());
  if (first) {
    argv.insert(argv.end(), options.first_coordinator_args.begin(),
                options.first_coordinator_args.end());
  }
  return argv;
}

// --store etcd: starts an etcd member in every coordinator host and waits
// until the cluster is healthy (etcdctl endpoint health in the first one).
absl::Status StartEtcd(const LabToolOptions& options, LabNetwork& network, LabState& state,
                       Progress& progress) {
  std::vector<std::string> initial, clients, pids;
  for (const LabToolHost* host : CoordinatorHosts(state)) {
    initial.push_back(absl::StrCat(host->name, "=http://", host->address, ":", kEtcdPeerPort));
    clients.push_back(absl::StrCat("http://", host->address, ":", kEtcdClientPort));
  }
  for (LabToolHost& host : state.hosts) {
    if (host.role != "coordinator") continue;
    const std::string client_url = absl::StrCat("http://", host.address, ":", kEtcdClientPort);
    const std::string peer_url = absl::StrCat("http://", host.address, ":", kEtcdPeerPort);
    const std::vector<std::string> argv = {options.etcd_bin,
                                           "--name",
                                           host.name,
                                           "--data-dir",
                                           state.dir + "/etcd-" + host.name,
                                           "--listen-client-urls",
                                           client_url,
                                           "--advertise-client-urls",
                                           client_url,
                                           "--listen-peer-urls",
                                           peer_url,
                                           "--initial-advertise-peer-urls",
                                           peer_url,
                                           "--initial-cluster",
                                           absl::StrJoin(initial, ","),
                                           "--initial-cluster-state",
                                           "new",
                                           "--initial-cluster-token",
                                           state.prefix,
                                           "--heartbeat-interval",
                                           "50",
                                           "--election-timeout",
                                           "500",
                                           "--logger",
                                           "zap",
                                           "--log-outputs",
                                           "stderr",
                                           "--enable-v2=false"};
    host.etcd.log = network.host_dir(host.name) + "/etcd.log";
    RETURN_IF_ERROR(StartProcess(network, host.name, argv, &host.etcd));
    pids.push_back(absl::StrCat(host.name, " ", host.etcd.pid));
  }
  const std::string first = CoordinatorHosts(state).front()->name;
  std::string last_error;
  const absl::Status healthy = WaitFor(
      [&] {
        absl::StatusOr<common::CommandResult> health =
            network.Run(first,
                        {options.etcdctl_bin, "--endpoints", absl::StrJoin(clients, ","),
                         "--dial-timeout", "1s", "--command-timeout", "2s", "endpoint", "health"},
                        absl::Seconds(10));
        if (health.ok() && health->ok()) return true;
        last_error = health.ok() ? std::string(absl::StripAsciiWhitespace(
                                       health->stderr_text + " " + health->stdout_text))
                                 : std::string(health.status().message());
        return false;
      },
      kEtcdReadyTimeout, Daemons(state, false, true), "the etcd cluster to be healthy");
  if (!healthy.ok()) return common::Annotate(healthy, "last answer: " + last_error);
  progress.Step(absl::StrCat("etcd cluster of ", clients.size(),
                             " healthy: ", absl::StrJoin(clients, ","),
                             " (pids: ", absl::StrJoin(pids, ", "), ")"));
  return absl::OkStatus();
}

// --store etcd: starts the coordinators one by one: the first until its
// /readyz says leader, each other until it says standby.
absl::Status StartEtcdCoordinators(const LabToolOptions& options, LabNetwork& network,
                                   LabState& state, Progress& progress) {
  bool first = true;
  for (LabToolHost& ctl : state.hosts) {
    if (ctl.role != "coordinator") continue;
    const std::string port_file = network.host_dir(ctl.name) + "/coordinator.port";
    ctl.daemon.log = network.host_dir(ctl.name) + "/coordinator.log";
    RETURN_IF_ERROR(
        StartDaemon(network, ctl, CoordinatorArgv(options, network, state, ctl, port_file, first)));
    std::vector<HostDaemon> watched = Daemons(state, true, true);
    const std::string want = first ? "leader" : "standby";
    CoordinatorRole role;
    const absl::Status waited = WaitFor(
        [&] {
          if (!fs::exists(port_file)) return false;
          role = ProbeRole(network, "c1", ctl);
          return role.role == want;
        },
        kLeaderTimeout, watched, absl::StrCat("coordinator ", ctl.name, " to be the ", want));
    if (absl::IsDeadlineExceeded(waited) && !role.role.empty()) {
      return common::Annotate(waited,
                              absl::StrCat("last /readyz: ", role.role, " (", role.detail, ")"));
    }
    RETURN_IF_ERROR(waited);
    progress.Step(absl::StrCat("coordinator in ", ctl.name, ": grpc ", GrpcEndpoint(ctl), ", http ",
                               HttpEndpoint(ctl), " (pid ", ctl.daemon.pid, "): ", role.detail));
    first = false;
  }
  return absl::OkStatus();
}

// The value of `--flag=VALUE` in argv, or "".
std::string FlagValue(const std::vector<std::string>& argv, const std::string& flag) {
  const std::string prefix = flag + "=";
  for (const std::string& arg : argv) {
    if (absl::StartsWith(arg, prefix)) return arg.substr(prefix.size());
  }
  return "";
}

// Where `delay` writes, and the lease proxies read, each host's delay.
std::string LeaseDelayDir(const LabState& state) { return state.dir + "/lease-delay"; }

// The delay `delay` put on a host's lease channel: CONTROL_DIR/HOST holds
// "DELAY_MS JITTER_MS"; no (or an unreadable) file is no delay.
struct LeaseDelay {
  int delay_ms = 0;
  int jitter_ms = 0;
  bool operator==(const LeaseDelay&) const = default;
};
LeaseDelay ReadLeaseDelay(const std::string& control_dir, const std::string& host) {
  absl::StatusOr<std::string> text = common::ReadFileToString(control_dir + "/" + host, 64);
  if (!text.ok()) return {};
  std::vector<std::string> values =
      absl::StrSplit(absl::StripAsciiWhitespace(*text), ' ', absl::SkipWhitespace());
  LeaseDelay delay;
  if (values.size() != 2 || !absl::SimpleAtoi(values[0], &delay.delay_ms) ||
      !absl::SimpleAtoi(values[1], &delay.jitter_ms)) {
    return {};
  }
  return delay;
}

// Whether the lease proxy `daemon` listens: its ready file holds its pid.
bool LeaseProxyReady(const LabToolDaemon& daemon) {
  absl::StatusOr<std::string> text =
      common::ReadFileToString(FlagValue(daemon.argv, "--ready_file"), 64);
  return text.ok() && absl::StripAsciiWhitespace(*text) == absl::StrCat(daemon.pid);
}

// up --lease_proxy: a lease proxy in each coordinator host, listening for
// each agent host on its own port; sets coordinators_of[agent host] to those
// listeners.
absl::Status StartLeaseProxies(LabNetwork& network, LabState& state,
                               std::map<std::string, std::string>& coordinators_of,
                               Progress& progress) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::InternalError("cannot read /proc/self/exe: " + ec.message());
  fs::create_directories(LeaseDelayDir(state), ec);
  if (ec) return absl::InternalError("cannot create " + LeaseDelayDir(state));
  std::map<std::string, std::vector<std::string>> listeners;
  std::vector<std::string> proxies;
  for (LabToolHost& ctl : state.hosts) {
    if (ctl.role != "coordinator") continue;
    const std::string ready_file = network.host_dir(ctl.name) + "/lease-proxy.ready";
    fs::remove(ready_file, ec);
    std::vector<std::string> argv = {
        self.string(), "lease-proxy", "--upstream=" + GrpcEndpoint(ctl),
        "--control_dir=" + LeaseDelayDir(state), "--ready_file=" + ready_file};
    int index = 0;
    for (const LabToolHost& agent : state.hosts) {
      if (agent.role != "storage" && agent.role != "jail") continue;
      const std::string listen = absl::StrCat(ctl.address, ":", kLeaseProxyPort + index++);
      argv.push_back("--route=" + listen + "=" + agent.name);
      listeners[agent.name].push_back(listen);
    }
    ctl.proxy.log = network.host_dir(ctl.name) + "/lease-proxy.log";
    RETURN_IF_ERROR(StartProcess(network, ctl.name, argv, &ctl.proxy));
    RETURN_IF_ERROR(WaitFor([&] { return LeaseProxyReady(ctl.proxy); }, absl::Seconds(10),
                            {{ctl.name, ctl.proxy}}, "the lease proxy in " + ctl.name));
    proxies.push_back(absl::StrCat(ctl.name, " (pid ", ctl.proxy.pid, ")"));
  }
  for (auto& [agent, endpoints] : listeners) coordinators_of[agent] = absl::StrJoin(endpoints, ",");
  progress.Step("lease proxies: " + absl::StrJoin(proxies, ", ") +
                "; agents dial them (`jailover-lab delay H MS`)");
  return absl::OkStatus();
}

// Starts the coordinator(s) and the agents and waits for the agents to be
// READY; fills state->hosts' daemons as they start.
absl::Status BringUp(const LabToolOptions& options, LabNetwork& network, LabState& state,
                     Progress& progress) {
  const std::string& dir = state.dir;
  std::error_code ec;
  fs::create_directories(dir + "/jails", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, "/jails"));
  RETURN_IF_ERROR(MakeLabPki(state));
  progress.Step(absl::StrCat("mTLS: CA and certificates in ", PkiDir(state)));
  const std::string lease = absl::StrCat("--lease_ttl=", DurationFlag(options.lease_ttl));
  const std::string renew =
      absl::StrCat("--lease_renew_interval=", DurationFlag(options.lease_renew_interval));

  if (state.store == "etcd") {
    RETURN_IF_ERROR(StartEtcd(options, network, state, progress));
    RETURN_IF_ERROR(StartEtcdCoordinators(options, network, state, progress));
  } else {
    LabToolHost* ctl = FindHost(state, "ctl");
    const std::string port_file = network.host_dir("ctl") + "/coordinator.port";
    ctl->daemon.log = network.host_dir("ctl") + "/coordinator.log";
    RETURN_IF_ERROR(StartDaemon(network, *ctl,
                                CoordinatorArgv(options, network, state, *ctl, port_file, true)));
    RETURN_IF_ERROR(WaitFor([&] { return fs::exists(port_file); }, absl::Seconds(20),
                            {{ctl->name, ctl->daemon}}, "the coordinator to listen"));
    progress.Step(absl::StrCat("coordinator in ctl: grpc ", state.coordinator, ", http ",
                               state.coordinator_http, " (pid ", ctl->daemon.pid, ")"));
  }

  // The coordinator endpoints each agent dials: the coordinators
  // themselves, or (--lease_proxy) the proxy listener for that agent in
  // each coordinator host.
  std::map<std::string, std::string> coordinators_of;
  for (const LabToolHost& host : state.hosts) {
    if (host.role == "storage" || host.role == "jail") {
      coordinators_of[host.name] = state.coordinator;
    }
  }
  if (options.lease_proxy) {
    RETURN_IF_ERROR(StartLeaseProxies(network, state, coordinators_of, progress));
  }

  std::set<std::string> agents;
  std::vector<std::string> started;
  for (LabToolHost& host : state.hosts) {
    if (host.role != "storage" && host.role != "jail") continue;
    const std::string host_dir = network.host_dir(host.name);
    std::vector<std::string> agent = {
        options.agent_bin,
        "--host_name=" + host.name,
        "--driver=linux",
        "--roles=" + host.role,
        absl::StrCat("--listen=", host.address, ":", kAgentPort),
        absl::StrCat("--http_listen=", host.address, ":", kAgentHttpPort),
        "--coordinators=" + coordinators_of[host.name],
        "--state_dir=" + host_dir + "/state",
        "--image_root=" + host_dir + "/images",
        "--jail_root=" + dir + "/jails",
        "--storage_address=" + host.address,
        lease,
        renew};
    for (const std::string& flag : TlsFlags(state, CertBase(common::Role::kAgent, host.name))) {
      agent.push_back(flag);
    }
    agent.insert(agent.end(), options.agent_args.begin(), options.agent_args.end());
    fs::create_directories(host_dir + "/images", ec);
    host.daemon.log = host_dir + "/agent.log";
    RETURN_IF_ERROR(StartDaemon(network, host, agent));
    agents.insert(host.name);
    started.push_back(host.name);
  }
  progress.Step(absl::StrCat("agents started (Linux driver): ", absl::StrJoin(started, " ")));

  // Asks the leader (with etcd: whichever coordinator says it leads now).
  std::set<std::string> ready;
  std::string last_error;
  absl::Status waited = WaitFor(
      [&] {
        std::string endpoint = state.coordinator;
        if (state.store == "etcd") {
          const LabToolHost* leader = FindLeader(network, state, AskFrom(state), &last_error);
          if (leader == nullptr) return false;
          endpoint = GrpcEndpoint(*leader);
        }
        absl::StatusOr<std::set<std::string>> now =
            ReadyHosts(network, state, AskFrom(state), endpoint);
        if (!now.ok()) {
          last_error = std::string(now.status().message());
          return false;
        }
        for (const std::string& name : *now) {
          if (agents.count(name) && ready.insert(name).second) {
            progress.Step(absl::StrCat(name, " READY"));
          }
        }
        return std::includes(ready.begin(), ready.end(), agents.begin(), agents.end());
      },
      options.ready_timeout, Daemons(state, true, true), "the agents to be READY");
  if (!waited.ok() && !last_error.empty()) {
    return common::Annotate(waited, "last answer: " + last_error);
  }
  return waited;
}

// SIGTERM to `daemons` still running, SIGKILL after kDaemonStopTimeout.
void StopAll(const std::vector<HostDaemon>& daemons) {
  std::vector<const HostDaemon*> running;
  for (const HostDaemon& daemon : daemons) {
    if (Alive(daemon.daemon)) {
      kill(daemon.daemon.pid, SIGTERM);
      running.push_back(&daemon);
    }
  }
  const absl::Time deadline = absl::Now() + kDaemonStopTimeout;
  while (absl::Now() < deadline) {
    bool any = false;
    for (const HostDaemon* daemon : running) any = any || Alive(daemon->daemon);
    if (!any) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (const HostDaemon* daemon : running) {
    if (Alive(daemon->daemon)) {
      spdlog::warn("{} in {} (pid {}) ignored SIGTERM for {}: SIGKILL", daemon->daemon.argv0,
                   daemon->host, daemon->daemon.pid, Seconds(kDaemonStopTimeout));
      kill(daemon->daemon.pid, SIGKILL);
    }
  }
}

// The daemons still running: agents and coordinators, then the etcd
// members (which the coordinators need until they stop).
void StopDaemons(const LabState& state) {
  StopAll(Daemons(state, true, false));
  StopAll(Daemons(state, false, true));
}

// SIGKILL to `daemon` if it is still the process the lab started. A pidfd
// pins the process between that check and the signal, so a pid reused
// meanwhile is never hit. False if it was not running (or the signal
// failed).
bool KillVerified(const LabToolDaemon& daemon) {
  if (daemon.pid <= 0) return false;
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, daemon.pid, 0));
  if (fd < 0 && errno == ESRCH) return false;
  if (!Alive(daemon)) {
    if (fd >= 0) close(fd);
    return false;
  }
  int rc;
  if (fd >= 0) {
    rc = static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0));
    close(fd);
  } else {
    rc = kill(daemon.pid, SIGKILL);  // no pidfd (old kernel): checked just above
  }
  return rc == 0;
}

// "jailover-agent", "etcd": the program of a daemon.
std::string ProgramName(const LabToolDaemon& daemon) {
  return fs::path(daemon.argv0).filename().string();
}

// Appends one line to `path` (a daemon's log, to mark a restart in it).
void AppendLine(const std::string& path, const std::string& line) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) return;
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
}

// The hosts named in a stop/start command, each once, in order; every name
// must be a host of the lab.
absl::StatusOr<std::vector<LabToolHost*>> NamedHosts(LabState& state,
                                                     const std::vector<std::string>& names) {
  std::vector<LabToolHost*> hosts;
  for (const std::string& name : names) {
    RETURN_IF_ERROR(CheckHost(state, name));
    LabToolHost* host = FindHost(state, name);
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
  }
  if (hosts.empty()) return absl::InvalidArgumentError("no host given");
  return hosts;
}

// A host's daemons as (what, daemon): its coordinator or agent, then its
// etcd member; only those the lab started.
std::vector<std::pair<std::string, LabToolDaemon*>> HostDaemons(LabToolHost& host) {
  std::vector<std::pair<std::string, LabToolDaemon*>> out;
  if (host.daemon.recorded()) out.emplace_back(ProgramName(host.daemon), &host.daemon);
  if (host.etcd.recorded()) out.emplace_back("etcd", &host.etcd);
  if (host.proxy.recorded()) out.emplace_back("lease-proxy", &host.proxy);
  return out;
}

// Runs `daemon` of `host` again with its recorded argv, after appending
// `line` to its log (`start`, and the keeper's restarts). A coordinator's
// port file is removed first: a fresh one says the new process listens.
absl::Status RunAgain(LabNetwork& network, const LabToolHost& host, LabToolDaemon* daemon,
                      const std::string& line) {
  if (host.role == "coordinator" && daemon == &host.daemon) {
    const std::string port_file = FlagValue(daemon->argv, "--port_file");
    std::error_code ec;
    if (!port_file.empty()) fs::remove(port_file, ec);
  }
  AppendLine(daemon->log, line);
  const std::vector<std::string> argv = daemon->argv;
  return StartProcess(network, host.name, argv, daemon);
}

// "agent 123 alive", "etcd stopped": a daemon's state (`status`).
std::string DaemonState(const std::string& what, const LabToolDaemon& daemon) {
  if (daemon.stopped) return what + " stopped";
  return absl::StrCat(
      what, " ", daemon.pid, Alive(daemon) ? " alive" : " DEAD",
      daemon.restarts > 0 ? absl::StrCat(" (restarted ", daemon.restarts, "x)") : "");
}

// Why `host` cannot be stopped or started (killed, or no daemon at all).
absl::Status CheckHasDaemons(const LabToolHost& host, const std::string& command) {
  if (host.killed) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot ", command, " ", host.name,
                     ": it was killed by kill-host (a dead machine stays "
                     "dead until `jailover-lab revive` or `down`)"));
  }
  if (!host.daemon.recorded() && !host.etcd.recorded()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot ", command, " ", host.name, ": the lab runs no daemon in it (", host.role, ")"));
  }
  return absl::OkStatus();
}

// The wall time, for the lines stop and start append to the daemons' logs.
std::string WallTimeText() {
  return absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::LocalTimeZone());
}

// "[  1.2s]": the time since `start`, for progress lines.
std::string Elapsed(absl::Time start) {
  return absl::StrFormat("[%5.1fs]", absl::ToDoubleSeconds(absl::Now() - start));
}

// Output of a command of the lab, indented, or why it failed.
std::string Indented(const std::string& text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace

// --- state file ------------------------------------------------------------------

// A daemon's fields in `json` (an object; the host's own are beside its
// name, an etcd member's under "etcd").
void PutDaemon(const LabToolDaemon& daemon, nlohmann::json& json) {
  json["pid"] = daemon.pid;
  json["start_time"] = daemon.start_time;
  json["argv0"] = daemon.argv0;
  json["log"] = daemon.log;
  if (!daemon.argv.empty()) json["argv"] = daemon.argv;
  if (daemon.recorded()) json["stopped"] = daemon.stopped;
  if (daemon.restarts > 0) json["restarts"] = daemon.restarts;
}

// Throws nlohmann::json::exception for a missing or mistyped field.
LabToolDaemon GetDaemon(const nlohmann::json& json) {
  LabToolDaemon daemon;
  daemon.pid = json.at("pid").get<pid_t>();
  daemon.start_time = json.at("start_time").get<uint64_t>();
  daemon.argv0 = json.at("argv0").get<std::string>();
  daemon.log = json.at("log").get<std::string>();
  // Older state files have neither.
  if (json.contains("argv")) daemon.argv = json.at("argv").get<std::vector<std::string>>();
  if (json.contains("stopped")) daemon.stopped = json.at("stopped").get<bool>();
  if (json.contains("restarts")) daemon.restarts = json.at("restarts").get<int>();
  return daemon;
}

std::vector<std::string> CtlArgv(const LabState& state, const std::string& endpoint,
                                 const std::vector<std::string>& args) {
  std::vector<std::string> argv = {state.ctl_bin, "--coordinator", endpoint};
  for (const std::string& flag : TlsFlags(state, CertBase(common::Role::kOperator, kLabOperator))) {
    argv.push_back(flag);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string LabStateToJson(const LabState& state) {
  nlohmann::json json;
  json["prefix"] = state.prefix;
  json["dir"] = state.dir;
  json["keeper"] = {{"pid", state.keeper_pid},
                    {"start_time", state.keeper_start_time},
                    {"argv0", state.keeper_argv0}};
  json["coordinator"] = state.coordinator;
  json["coordinator_http"] = state.coordinator_http;
  if (state.store != "sqlite") json["store"] = state.store;
  json["ctl_bin"] = state.ctl_bin;
  if (!state.etcdctl_bin.empty()) json["etcdctl_bin"] = state.etcdctl_bin;
  json["hosts"] = nlohmann::json::array();
  for (const LabToolHost& host : state.hosts) {
    nlohmann::json item = {{"name", host.name}, {"address", host.address}, {"role", host.role}};
    PutDaemon(host.daemon, item);
    item["killed"] = host.killed;
    if (host.etcd.recorded()) PutDaemon(host.etcd, item["etcd"]);
    if (host.proxy.recorded()) PutDaemon(host.proxy, item["proxy"]);
    json["hosts"].push_back(std::move(item));
  }
  return json.dump(2) + "\n";
}

absl::StatusOr<LabState> LabStateFromJson(const std::string& text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError("lab state: not a JSON object");
  }
  try {
    LabState state;
    state.prefix = json.at("prefix").get<std::string>();
    state.dir = json.at("dir").get<std::string>();
    state.keeper_pid = json.at("keeper").at("pid").get<pid_t>();
    state.keeper_start_time = json.at("keeper").at("start_time").get<uint64_t>();
    state.keeper_argv0 = json.at("keeper").at("argv0").get<std::string>();
    state.coordinator = json.at("coordinator").get<std::string>();
    state.coordinator_http = json.at("coordinator_http").get<std::string>();
    if (json.contains("store")) state.store = json.at("store").get<std::string>();
    state.ctl_bin = json.at("ctl_bin").get<std::string>();
    if (json.contains("etcdctl_bin")) state.etcdctl_bin = json.at("etcdctl_bin").get<std::string>();
    for (const auto& item : json.at("hosts")) {
      LabToolHost host;
      host.name = item.at("name").get<std::string>();
      host.address = item.at("address").get<std::string>();
      host.role = item.at("role").get<std::string>();
      host.daemon = GetDaemon(item);
      host.killed = item.at("killed").get<bool>();
      if (item.contains("etcd")) host.etcd = GetDaemon(item.at("etcd"));
      if (item.contains("proxy")) host.proxy = GetDaemon(item.at("proxy"));
      state.hosts.push_back(std::move(host));
    }
    return state;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("lab state: ", e.what()));
  }
}

absl::StatusOr<LabState> ReadLabState(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, common::ReadFileToString(path, kMaxStateBytes));
  absl::StatusOr<LabState> state = LabStateFromJson(text);
  if (!state.ok()) return common::Annotate(state.status(), path);
  return state;
}

// --- the keeper's supervision -----------------------------------------------------

namespace {

// As systemd's Restart=always (rc.d: daemon(8) -r): a daemon that exits on
// its own is run again, as every production deployment of jailover does
// (a leader coordinator that loses its etcd session exits on purpose and
// counts on it). The first restart waits kRestartDelay; each exit within
// kSteadyRun of the keeper seeing it alive doubles that, up to
// kMaxRestartDelay (a daemon that cannot start, say a coordinator whose
// etcd has no quorum, is tried again every 16 s, not in a tight loop).
constexpr absl::Duration kSupervisePoll = absl::Milliseconds(250);
constexpr absl::Duration kRestartDelay = absl::Seconds(1);
constexpr absl::Duration kMaxRestartDelay = absl::Seconds(16);
constexpr absl::Duration kSteadyRun = absl::Seconds(30);

// What the keeper remembers of one daemon between rounds.
struct Supervised {
  pid_t pid = 0;                                   // the process last looked at
  absl::Time alive_since;                          // when the keeper first saw `pid` alive
  absl::Time restart_at = absl::InfiniteFuture();  // `pid` exited: when to run it again
  int quick_exits = 0;                             // exits within kSteadyRun of a start, in a row
};

absl::Duration RestartDelay(int quick_exits) {
  return std::min(kMaxRestartDelay, kRestartDelay * (1 << std::min(quick_exits, 8)));
}

// One round: every daemon recorded running (not stopped, its host not
// killed) that is gone is noticed, then run again when its delay is over.
// Skipped while a command holds the state lock (it changes the lab: `stop`
// and `kill-host` record what they kill under it, so a daemon they killed is
// never taken for one that exited).
void Supervise(const LabToolOptions& options, LabNetwork& network, const std::string& prefix,
               std::map<std::string, Supervised>& seen) {
  StateLock lock(options.state_file, /*wait=*/false);
  if (!lock.held()) return;
  absl::StatusOr<LabState> state = ReadLabState(options.state_file);
  if (!state.ok() || state->prefix != prefix) return;
  const absl::Time now = absl::Now();
  bool changed = false;
  for (LabToolHost& host : state->hosts) {
    if (host.killed) continue;  // a dead machine's daemons stay dead
    for (const auto& [what, daemon] : HostDaemons(host)) {
      if (daemon->stopped || daemon->pid <= 0) continue;
      Supervised& s = seen[host.name + " " + what];
      if (Alive(*daemon)) {
        if (s.pid != daemon->pid) {
          s.pid = daemon->pid;
          s.alive_since = now;
          s.restart_at = absl::InfiniteFuture();
        }
        if (now - s.alive_since >= kSteadyRun) s.quick_exits = 0;
        continue;
      }
      if (s.pid != daemon->pid || s.restart_at == absl::InfiniteFuture()) {
        if (s.pid == daemon->pid && now - s.alive_since >= kSteadyRun) s.quick_exits = 0;
        s.pid = daemon->pid;
        s.restart_at = now + RestartDelay(s.quick_exits);
        const std::string line =
            absl::StrCat(what, " in ", host.name, " (pid ", daemon->pid, ") exited on its own at ",
                         WallTimeText(), "; the keeper runs it again in ",
                         absl::FormatDuration(s.restart_at - now));
        spdlog::warn("lab {}: {}", prefix, line);
        AppendLine(daemon->log, "--- jailover-lab keeper: " + line + " ---");
      }
      if (now < s.restart_at) continue;
      ++s.quick_exits;
      ++daemon->restarts;
      changed = true;
      const absl::Status started =
          RunAgain(network, host, daemon,
                   absl::StrCat("--- jailover-lab keeper: ", what, " restarted at ", WallTimeText(),
                                " (restart ", daemon->restarts, ") ---"));
      s.pid = daemon->pid;
      s.alive_since = now;
      if (started.ok()) {
        s.restart_at = absl::InfiniteFuture();
        spdlog::warn("lab {}: {} in {} restarted, pid {} (restart {})", prefix, what, host.name,
                     daemon->pid, daemon->restarts);
      } else {
        s.restart_at = now + RestartDelay(s.quick_exits);
        spdlog::error("lab {}: restarting {} in {}: {}; trying again in {}", prefix, what,
                      host.name, started.ToString(), absl::FormatDuration(s.restart_at - now));
      }
    }
  }
  if (!changed) return;
  if (absl::Status saved = common::WriteFileAtomically(options.state_file, LabStateToJson(*state));
      !saved.ok()) {
    spdlog::error("lab {}: recording the restarts: {}", prefix, saved.ToString());
  }
}

}  // namespace

// --- commands --------------------------------------------------------------------

int Keep(const LabToolOptions& options, int progress_fd) {
  const sigset_t stop = StopSignals();
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);
  fcntl(progress_fd, F_SETFD, FD_CLOEXEC);
  Progress progress(progress_fd);

  LabState state;
  state.keeper_pid = getpid();
  {
    absl::StatusOr<agent::linux_driver::ProcessInfo> self = ReadProcess("/proc", getpid());
    if (!self.ok() || self->cmdline.empty()) {
      progress.FailWith("cannot read /proc/self");
      return 1;
    }
    state.keeper_start_time = self->start_time;
    state.keeper_argv0 = self->cmdline[0];
  }
  state.store = options.store;
  state.ctl_bin = options.ctl_bin;
  if (options.store == "etcd") state.etcdctl_bin = options.etcdctl_bin;
  state.hosts = LabLayout(options);
  {
    std::vector<std::string> grpc, http;
    for (const LabToolHost* host : CoordinatorHosts(state)) {
      grpc.push_back(GrpcEndpoint(*host));
      http.push_back(HttpEndpoint(*host));
    }
    state.coordinator = absl::StrJoin(grpc, ",");
    state.coordinator_http = absl::StrJoin(http, ",");
  }
  progress.Info(absl::StrCat("keeper pid ", getpid()));

  absl::StatusOr<std::unique_ptr<LabNetwork>> network =
      LabNetwork::Create(NetworkHosts(state.hosts));
  if (!network.ok()) {
    progress.FailWith(std::string(network.status().message()));
    return 1;
  }
  state.prefix = (*network)->prefix();
  state.dir = (*network)->dir();
  // From here on, the keeper's own log (LabNetwork's teardown, warnings)
  // goes to the lab directory.
  const std::string keeper_log = state.dir + "/keeper.log";
  const int log_fd = open(keeper_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd >= 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    close(log_fd);
  }
  std::vector<std::string> names;
  for (const LabToolHost& host : state.hosts) names.push_back(host.name);
  progress.Step(absl::StrCat("network ", state.prefix, ": bridge + ", state.hosts.size(),
                             " hosts (", absl::StrJoin(names, " "), ") on 198.18.0.0/24, dir ",
                             state.dir));

  absl::Status status = BringUp(options, **network, state, progress);
  if (status.ok()) {
    status = common::WriteFileAtomically(options.state_file, LabStateToJson(state));
  }
  if (!status.ok()) {
    progress.FailWith(std::string(status.message()));
    StopDaemons(state);
    network->reset();
    const std::vector<std::string> left = testing::LabLeftovers(state.prefix);
    if (!left.empty()) progress.Info("left behind: " + absl::StrJoin(left, "; "));
    return 1;
  }
  progress.Ok();
  progress.Close();
  spdlog::info("lab {} up; supervising its daemons until SIGTERM", state.prefix);

  std::map<std::string, Supervised> supervised;
  const timespec poll = absl::ToTimespec(kSupervisePoll);
  int signo = 0;
  while ((signo = sigtimedwait(&stop, nullptr, &poll)) <= 0) {
    Supervise(options, **network, state.prefix, supervised);
  }
  spdlog::info("lab {}: signal {}: stopping the daemons", state.prefix, signo);
  // The state file names this lab only while it lives; it has the daemons'
  // pids as they are now (`stop` and `start` change them).
  absl::StatusOr<LabState> recorded = ReadLabState(options.state_file);
  const bool ours = recorded.ok() && recorded->prefix == state.prefix;
  StopDaemons(ours ? *recorded : state);
  if (ours) {
    std::error_code ec;
    fs::remove(options.state_file, ec);
  }
  network->reset();
  return 0;
}

int Up(const LabToolOptions& options) {
  if (geteuid() != 0) {
    Fail(absl::FailedPreconditionError("the lab needs root (network namespaces, mounts)"));
    return 1;
  }
  for (const std::string& bin : {options.agent_bin, options.coordinator_bin, options.ctl_bin}) {
    if (access(bin.c_str(), X_OK) != 0) {
      Fail(absl::FailedPreconditionError(
          absl::StrCat(bin, " is not an executable (build it first)")));
      return 1;
    }
  }
  if (options.lease_renew_interval <= absl::ZeroDuration() ||
      options.lease_ttl < 2 * options.lease_renew_interval) {
    Fail(absl::InvalidArgumentError(
        "--lease_ttl must be at least twice --lease_renew_interval, which must be positive"));
    return 1;
  }
  if (options.store != "sqlite" && options.store != "etcd") {
    Fail(absl::InvalidArgumentError(
        absl::StrCat("--store must be sqlite or etcd, got '", options.store, "'")));
    return 1;
  }
  if (options.coordinators < 1 || options.coordinators > kMaxCoordinators) {
    Fail(absl::InvalidArgumentError(absl::StrCat("--coordinators must be 1..", kMaxCoordinators,
                                                 ", got ", options.coordinators)));
    return 1;
  }
  if (options.coordinators > 1 && options.store != "etcd") {
    Fail(absl::InvalidArgumentError(
        "--coordinators above 1 needs --store etcd (SQLite serves one coordinator)"));
    return 1;
  }
  if (options.store == "etcd") {
    for (const std::string& bin : {options.etcd_bin, options.etcdctl_bin}) {
      if (access(bin.c_str(), X_OK) != 0) {
        Fail(absl::FailedPreconditionError(
            absl::StrCat(bin, " is not an executable (--store etcd needs etcd 3.4)")));
        return 1;
      }
    }
    coordinator::cluster::HostTrackerConfig lease;
    lease.ttl = options.lease_ttl;
    lease.renew_interval = options.lease_renew_interval;
    absl::Status fits = options.election_ttl < absl::Seconds(1)
                            ? absl::InvalidArgumentError("--election_ttl must be at least 1s")
                            : lease.CheckTakeoverFits(options.election_ttl);
    if (!fits.ok()) {
      Fail(fits);
      return 1;
    }
  }
  StateLock lock(options.state_file);
  absl::StatusOr<LabState> existing = ReadLabState(options.state_file);
  if (existing.ok()) {
    if (KeeperAlive(*existing)) {
      Fail(absl::FailedPreconditionError(
          absl::StrCat("lab ", existing->prefix, " is already up (keeper pid ",
                       existing->keeper_pid, "); run `jailover-lab down` first")));
      return 1;
    }
    std::cout << "lab " << existing->prefix << ": its keeper is gone; removing what it left\n";
    testing::SweepLabLeftovers(existing->prefix);
    std::error_code ec;
    fs::remove(options.state_file, ec);
  } else if (!absl::IsNotFound(existing.status())) {
    Fail(existing.status());
    return 1;
  }

  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    Fail(absl::InternalError("cannot read /proc/self/exe: " + ec.message()));
    return 1;
  }
  std::vector<std::string> args = {
      self.string(),
      "--agent_bin=" + options.agent_bin,
      "--coordinator_bin=" + options.coordinator_bin,
      "--ctl_bin=" + options.ctl_bin,
      "--state_file=" + options.state_file,
      "--lease_ttl=" + DurationFlag(options.lease_ttl),
      "--lease_renew_interval=" + DurationFlag(options.lease_renew_interval),
      "--lease_safety_margin=" + DurationFlag(options.lease_safety_margin),
      "--ready_timeout=" + DurationFlag(options.ready_timeout)};
  for (const std::string& arg : options.coordinator_args)
    args.push_back("--coordinator_arg=" + arg);
  for (const std::string& arg : options.agent_args) args.push_back("--agent_arg=" + arg);
  if (options.store != "sqlite" || options.coordinators != 1) {
    args.push_back(absl::StrCat("--coordinators=", options.coordinators));
    args.push_back("--store=" + options.store);
    args.push_back("--etcd_bin=" + options.etcd_bin);
    args.push_back("--etcdctl_bin=" + options.etcdctl_bin);
    args.push_back("--election_ttl=" + DurationFlag(options.election_ttl));
  }
  for (const std::string& arg : options.first_coordinator_args) {
    args.push_back("--first_coordinator_arg=" + arg);
  }
  if (options.lease_proxy) args.push_back("--lease_proxy");
  args.push_back("keep");
  args.push_back("--progress_fd=3");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    Fail(absl::InternalError(absl::StrCat("pipe2: ", strerror(errno))));
    return 1;
  }
  if (options.store == "etcd") {
    std::vector<std::string> endpoints;
    for (const LabToolHost& host : LabLayout(options)) {
      if (host.role == "coordinator") endpoints.push_back(GrpcEndpoint(host));
    }
    std::cout << "jailover-lab up: building the lab (" << options.coordinators
              << " coordinator(s) on etcd: " << absl::StrJoin(endpoints, ",") << ", lease ttl "
              << DurationFlag(options.lease_ttl) << ", election ttl "
              << DurationFlag(options.election_ttl) << ")\n"
              << std::flush;
  } else {
    std::cout << "jailover-lab up: building the lab (coordinator " << kCoordinatorAddress << ":"
              << kCoordinatorPort << ", lease ttl " << DurationFlag(options.lease_ttl) << ")\n"
              << std::flush;
  }
  // The keeper: a grandchild in its own session (double fork: never our
  // zombie, and it outlives this command), stdio on /dev/null, progress on
  // fd 3.
  const pid_t child = fork();
  if (child < 0) {
    Fail(absl::InternalError(absl::StrCat("fork: ", strerror(errno))));
    return 1;
  }
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (fds[1] == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(fds[1], 3);  // dup2 clears FD_CLOEXEC on 3
    }
    if (chdir("/") != 0) _exit(127);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  int child_status = 0;
  while (waitpid(child, &child_status, 0) < 0 && errno == EINTR) {
  }

  // Ctrl-C while building: the keeper stops and tears down.
  static volatile sig_atomic_t interrupted = 0;
  struct sigaction on_int = {};
  on_int.sa_handler = [](int) { interrupted = 1; };
  sigaction(SIGINT, &on_int, nullptr);
  sigaction(SIGTERM, &on_int, nullptr);

  pid_t keeper = 0;
  bool ok = false;
  bool forwarded = false;
  std::string buffer;
  std::vector<std::string> failure;
  size_t detail_at = 0;
  while (true) {
    if (interrupted && keeper > 0 && !forwarded) {
      std::cout << "interrupted: the keeper tears the lab down\n" << std::flush;
      kill(keeper, SIGTERM);
      forwarded = true;
    }
    pollfd pfd = {fds[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, 200);
    if (ready <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the keeper is done (up or torn down)
    buffer.append(chunk, static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (absl::StartsWith(line, "step ")) {
        std::cout << "  " << line.substr(5) << "\n" << std::flush;
      } else if (absl::StartsWith(line, "info keeper pid ")) {
        (void)absl::SimpleAtoi(line.substr(16), &keeper);
      } else if (absl::StartsWith(line, "info ")) {
        failure.push_back(line.substr(5));
      } else if (line == "ok") {
        ok = true;
      } else if (absl::StartsWith(line, "fail ")) {
        failure.insert(failure.begin(), line.substr(5));
        detail_at = 1;
      } else if (absl::StartsWith(line, "more ")) {
        failure.insert(failure.begin() + std::min(detail_at++, failure.size()), line.substr(5));
      }
    }
  }
  close(fds[0]);
  if (!ok) {
    if (failure.empty()) failure.push_back("the keeper exited without a word");
    std::cerr << "jailover-lab up FAILED: " << absl::StrJoin(failure, "\n  ") << "\n";
    std::cerr << "jailover-lab: the lab was torn down\n";
    return 1;
  }
  absl::StatusOr<LabState> state = ReadLabState(options.state_file);
  if (!state.ok()) {
    Fail(state.status());
    return 1;
  }
  std::cout << "lab " << state->prefix << " is up (keeper pid " << state->keeper_pid
            << "; state in " << options.state_file << "):\n";
  for (const LabToolHost& host : state->hosts) {
    std::string what = host.role == "coordinator" ? "jailover-coordinator"
                       : host.role == "client"    ? "client"
                                                  : "jailover-agent --roles=" + host.role;
    std::string pids = host.daemon.pid > 0 ? absl::StrCat("pid ", host.daemon.pid) : "";
    if (host.etcd.pid > 0) {
      what += " + etcd";
      absl::StrAppend(&pids, ", etcd pid ", host.etcd.pid);
    }
    std::cout << absl::StrFormat("  %-4s %-12s %-34s %s\n", host.name, host.address, what, pids);
  }
  std::cout << "  jailoverctl: jailover-lab exec c1 -- "
            << absl::StrJoin(CtlArgv(*state, state->coordinator, {"status"}), " ") << "\n";
  return 0;
}

int Down(const LabToolOptions& options) {
  const absl::Time start = absl::Now();
  StateLock lock(options.state_file);
  absl::StatusOr<LabState> state = ReadLabState(options.state_file);
  if (absl::IsNotFound(state.status())) {
    std::cout << "no lab is up (no " << options.state_file << ")\n";
    return 0;
  }
  if (!state.ok()) {
    Fail(state.status());
    return 1;
  }
  if (KeeperAlive(*state)) {
    std::cout << "lab " << state->prefix << ": stopping the daemons and tearing down (keeper pid "
              << state->keeper_pid << ")\n"
              << std::flush;
    kill(state->keeper_pid, SIGTERM);
    const absl::Time deadline = absl::Now() + kKeeperStopTimeout;
    while (KeeperAlive(*state) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    if (KeeperAlive(*state)) {
      std::cout << "lab " << state->prefix << ": the keeper did not finish in "
                << Seconds(kKeeperStopTimeout) << "; killing it and sweeping\n";
      kill(state->keeper_pid, SIGKILL);
      while (KeeperAlive(*state)) absl::SleepFor(absl::Milliseconds(20));
    }
  } else {
    std::cout << "lab " << state->prefix << ": its keeper (pid " << state->keeper_pid
              << ") is gone; sweeping what it left\n";
  }
  std::vector<std::string> left = testing::LabLeftovers(state->prefix);
  if (!left.empty()) {
    const std::vector<std::string> removed = testing::SweepLabLeftovers(state->prefix);
    std::cout << "lab " << state->prefix << ": swept " << removed.size() << " leftover(s)\n";
    left = testing::LabLeftovers(state->prefix);
  }
  std::error_code ec;
  fs::remove(options.state_file, ec);
  if (!left.empty()) {
    std::cerr << "jailover-lab down: left behind:\n  " << absl::StrJoin(left, "\n  ") << "\n";
    return 1;
  }
  std::cout << "lab " << state->prefix << " is down in " << Seconds(absl::Now() - start)
            << ": nothing left behind (no namespace, mount, loop device or process)\n";
  return 0;
}

int Status(const LabToolOptions& options) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  if (!lab.ok()) {
    Fail(lab.status());
    return absl::IsFailedPrecondition(lab.status()) ? 3 : 1;
  }
  const LabState& state = lab->state;
  std::cout << "lab " << state.prefix << " (keeper pid " << state.keeper_pid << ", dir "
            << state.dir << ")\n";
  std::cout << absl::StrFormat("  %-4s %-12s %-11s %-24s %-5s %s\n", "HOST", "ADDRESS", "ROLE",
                               "DAEMON", "LINK", "NOTES");
  for (const LabToolHost& host : state.hosts) {
    std::string daemon = "-";
    if (host.daemon.recorded()) {
      daemon =
          DaemonState(ProgramName(host.daemon) == "jailover-coordinator" ? "coordinator" : "agent",
                      host.daemon);
    }
    absl::StatusOr<bool> up = lab->network->LinkIsUp(host.name);
    std::vector<std::string> notes;
    if (host.killed) notes.push_back("killed");
    if (host.etcd.recorded()) notes.push_back(DaemonState("etcd", host.etcd));
    if (host.proxy.recorded()) notes.push_back(DaemonState("lease-proxy", host.proxy));
    const LeaseDelay delay = ReadLeaseDelay(LeaseDelayDir(state), host.name);
    if (delay.delay_ms > 0) {
      notes.push_back(
          absl::StrCat("lease channel delayed ", delay.delay_ms, "+-", delay.jitter_ms, " ms"));
    }
    absl::StatusOr<std::vector<std::string>> blocked = lab->network->BlockedAddresses(host.name);
    if (blocked.ok() && !blocked->empty()) {
      std::vector<std::string> peers;
      for (const std::string& address : *blocked) {
        std::string peer = address;
        for (const LabToolHost& other : state.hosts) {
          if (other.address == address) peer = other.name;
        }
        peers.push_back(peer);
      }
      notes.push_back("partitioned from " + absl::StrJoin(peers, ","));
    }
    notes.push_back(absl::StrCat(lab->network->Pids(host.name).size(), " process(es)"));
    std::cout << absl::StrFormat("  %-4s %-12s %-11s %-24s %-5s %s\n", host.name, host.address,
                                 host.role, daemon, up.ok() ? (*up ? "up" : "DOWN") : "?",
                                 absl::StrJoin(notes, "; "));
  }
  std::string endpoint = state.coordinator;
  std::string asked = "in c1";
  if (state.store == "etcd") {
    // Each coordinator's role, from its /readyz; jailoverctl asks the leader.
    std::cout << "coordinators (/readyz, from c1):\n";
    const LabToolHost* leader = nullptr;
    for (const LabToolHost* host : CoordinatorHosts(state)) {
      const CoordinatorRole role =
          host->daemon.stopped
              ? CoordinatorRole{"down", "stopped (jailover-lab start " + host->name + ")"}
              : ProbeRole(*lab->network, "c1", *host);
      if (role.role == "leader" && leader == nullptr) leader = host;
      std::cout << absl::StrFormat("  %-4s %-16s %-8s %s\n", host->name, GrpcEndpoint(*host),
                                   role.role, role.detail);
    }
    const LabToolHost* ask = leader != nullptr ? leader : CoordinatorHosts(state).front();
    endpoint = GrpcEndpoint(*ask);
    asked = absl::StrCat("in c1, ", leader != nullptr ? "the leader " : "no leader: asking ",
                         ask->name);
  }
  std::cout << "logs:\n";
  for (const LabToolHost& host : state.hosts) {
    if (!host.daemon.log.empty()) std::cout << "  " << host.name << ": " << host.daemon.log << "\n";
    if (!host.etcd.log.empty()) std::cout << "  " << host.name << ": " << host.etcd.log << "\n";
  }
  std::cout << "  keeper: " << state.dir << "/keeper.log\n";
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"status"}, {"host", "list"}}) {
    std::vector<std::string> argv = CtlArgv(state, endpoint, {"--timeout", "3"});
    argv.insert(argv.end(), command.begin(), command.end());
    std::cout << "\n$ jailoverctl " << absl::StrJoin(command, " ") << "   (" << asked << ")\n";
    absl::StatusOr<common::CommandResult> result = lab->network->Run("c1", argv, absl::Seconds(10));
    if (!result.ok()) {
      std::cout << "  " << result.status().message() << "\n";
    } else {
      std::cout << Indented(result->stdout_text) << Indented(result->stderr_text);
    }
  }
  return 0;
}

int KillHost(const LabToolOptions& options, const std::string& host) {
  StateLock lock(options.state_file);
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  const absl::Time start = absl::Now();
  std::map<std::string, int> names;
  for (pid_t pid : lab->network->Pids(host)) ++names[ProcessName(pid)];
  std::vector<std::string> killed;
  for (const auto& [name, count] : names) {
    killed.push_back(count > 1 ? absl::StrCat(name, " x", count) : name);
  }
  status = lab->network->LinkDown(host);
  lab->network->KillAll(host);
  if (status.ok()) {
    FindHost(lab->state, host)->killed = true;
    status = common::WriteFileAtomically(options.state_file, LabStateToJson(lab->state));
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  const std::vector<pid_t> left = lab->network->Pids(host);
  std::cout << host << " is dead (" << Seconds(absl::Now() - start) << "): link down, killed "
            << (killed.empty() ? "nothing (no process was running)" : absl::StrJoin(killed, ", "))
            << "\n";
  if (!left.empty()) {
    std::cerr << "jailover-lab: " << left.size() << " process(es) of " << host
              << " survived SIGKILL (D state?)\n";
    return 1;
  }
  return 0;
}

int Stop(const LabToolOptions& options, const std::vector<std::string>& names, bool etcd_only) {
  StateLock lock(options.state_file);
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  if (!lab.ok()) {
    Fail(lab.status());
    return 1;
  }
  absl::StatusOr<std::vector<LabToolHost*>> hosts = NamedHosts(lab->state, names);
  absl::Status status = hosts.status();
  for (size_t i = 0; status.ok() && i < hosts->size(); ++i) {
    LabToolHost& host = *(*hosts)[i];
    status = CheckHasDaemons(host, "stop");
    if (!status.ok()) break;
    if (etcd_only && !host.etcd.recorded()) {
      status = absl::FailedPreconditionError(
          absl::StrCat(host.name,
                       " has no etcd member (only the coordinator hosts of a "
                       "`up --store etcd` lab do)"));
      break;
    }
    if (etcd_only && host.etcd.stopped) {
      status = absl::FailedPreconditionError(
          absl::StrCat(host.name, "'s etcd member is already stopped (`jailover-lab start ",
                       host.name, "` starts it again)"));
      break;
    }
    bool running = false;
    for (const auto& [what, daemon] : HostDaemons(host)) running = running || !daemon->stopped;
    if (!running) {
      status = absl::FailedPreconditionError(
          absl::StrCat(host.name, "'s daemons are already stopped (`jailover-lab start ", host.name,
                       "` starts them again)"));
    }
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }

  // SIGKILL, as a crash: the agents' own daemons (jails, ucarp, nbd-server,
  // nbdfuse: sessions of their own) are not signalled.
  const absl::Time start = absl::Now();
  struct Stopping {
    const LabToolHost* host;
    std::string what;
    LabToolDaemon* daemon;
    pid_t pid;
    bool killed;
  };
  std::vector<Stopping> stopping;
  for (LabToolHost* host : *hosts) {
    for (const auto& [what, daemon] : HostDaemons(*host)) {
      if (etcd_only && daemon != &host->etcd) continue;
      if (!daemon->stopped) {
        stopping.push_back({host, what, daemon, daemon->pid, KillVerified(*daemon)});
      }
    }
  }
  const absl::Time deadline = absl::Now() + kDaemonStopTimeout;
  const auto any_alive = [&] {
    return std::any_of(stopping.begin(), stopping.end(),
                       [](const Stopping& item) { return Alive(*item.daemon); });
  };
  while (any_alive() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  std::vector<std::string> survivors;
  for (Stopping& item : stopping) {
    if (Alive(*item.daemon)) {
      survivors.push_back(
          absl::StrCat(item.what, " in ", item.host->name, " (pid ", item.pid, ")"));
      continue;
    }
    item.daemon->pid = 0;
    item.daemon->start_time = 0;
    item.daemon->stopped = true;
    AppendLine(item.daemon->log, absl::StrCat("--- jailover-lab stop: ", item.what,
                                              item.killed ? " killed (SIGKILL)" : " had exited",
                                              " at ", WallTimeText(), " ---"));
  }
  status = common::WriteFileAtomically(options.state_file, LabStateToJson(lab->state));
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  const std::string took = Seconds(absl::Now() - start);
  for (const LabToolHost* host : *hosts) {
    std::vector<std::string> killed;
    for (const Stopping& item : stopping) {
      if (item.host != host) continue;
      killed.push_back(absl::StrCat(item.what, " pid ", item.pid,
                                    item.killed ? " killed" : " had exited already"));
    }
    std::map<std::string, int> left;
    for (pid_t pid : lab->network->Pids(host->name)) ++left[ProcessName(pid)];
    std::vector<std::string> running;
    for (const auto& [name, count] : left) {
      running.push_back(count > 1 ? absl::StrCat(name, " x", count) : name);
    }
    std::cout << host->name << " stopped (" << took << ", SIGKILL): " << absl::StrJoin(killed, ", ")
              << "; still running in " << host->name << ": "
              << (running.empty() ? "nothing" : absl::StrJoin(running, ", "))
              << "; link untouched\n";
  }
  if (!survivors.empty()) {
    std::cerr << "jailover-lab: survived SIGKILL for " << Seconds(kDaemonStopTimeout)
              << " (D state?), still recorded running: " << absl::StrJoin(survivors, ", ") << "\n";
    return 1;
  }
  return 0;
}

namespace {

// A stopped daemon `start` runs again.
struct Starting {
  LabToolHost* host;
  std::string what;  // "etcd", "jailover-coordinator", "jailover-agent"
  LabToolDaemon* daemon;
  bool answers = false;
};

// Whether a restarted daemon answers: an etcd member when `etcdctl
// endpoint health` passes for it, a coordinator when it wrote its port file
// and its /readyz says leader or standby, an agent when its /healthz answers
// (its HTTP starts after its gRPC). Asked inside its own host; *detail says
// what it answered.
bool Answers(LabNetwork& network, const LabState& state, const LabToolOptions& options,
             const Starting& item, std::string* detail) {
  const LabToolHost& host = *item.host;
  if (item.daemon == &host.proxy) {
    const bool ready = LeaseProxyReady(host.proxy);
    *detail = ready ? "listening" : "not listening yet";
    return ready;
  }
  if (item.daemon == &host.etcd) {
    const std::string etcdctl = state.etcdctl_bin.empty() ? options.etcdctl_bin : state.etcdctl_bin;
    absl::StatusOr<common::CommandResult> health = network.Run(
        host.name,
        {etcdctl, "--endpoints", absl::StrCat("http://", host.address, ":", kEtcdClientPort),
         "--dial-timeout", "1s", "--command-timeout", "2s", "endpoint", "health"},
        absl::Seconds(10));
    if (!health.ok()) {
      *detail = std::string(health.status().message());
      return false;
    }
    // etcdctl 3.4 reports health on stderr.
    *detail =
        std::string(absl::StripAsciiWhitespace(health->stdout_text + " " + health->stderr_text));
    return health->ok();
  }
  if (host.role == "coordinator") {
    const std::string port_file = FlagValue(item.daemon->argv, "--port_file");
    if (!port_file.empty() && !fs::exists(port_file)) {
      *detail = "no port file " + port_file + " yet";
      return false;
    }
    const CoordinatorRole role = ProbeRole(network, host.name, host);
    *detail = absl::StrCat("/readyz: ", role.role, " (", role.detail, ")");
    return role.role == "leader" || role.role == "standby";
  }
  std::string http = FlagValue(item.daemon->argv, "--http_listen");
  if (http.empty()) http = absl::StrCat(host.address, ":", kAgentHttpPort);
  absl::StatusOr<common::CommandResult> health =
      network.Run(host.name,
                  {"curl", "--silent", "--show-error", "--fail", "--connect-timeout", "1",
                   "--max-time", "2", "http://" + http + "/healthz"},
                  absl::Seconds(5));
  if (!health.ok()) {
    *detail = std::string(health.status().message());
    return false;
  }
  *detail = absl::StrCat(
      "/healthz: ",
      absl::StripAsciiWhitespace(health->ok() ? health->stdout_text : health->stderr_text));
  return health->ok();
}

}  // namespace

int Start(const LabToolOptions& options, const std::vector<std::string>& names) {
  StateLock lock(options.state_file);
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  if (!lab.ok()) {
    Fail(lab.status());
    return 1;
  }
  LabState& state = lab->state;
  absl::StatusOr<std::vector<LabToolHost*>> hosts = NamedHosts(state, names);
  absl::Status status = hosts.status();
  // In start order: every etcd member, then the coordinators, then the
  // agents.
  std::vector<std::vector<Starting>> phases(3);
  for (size_t i = 0; status.ok() && i < hosts->size(); ++i) {
    LabToolHost& host = *(*hosts)[i];
    status = CheckHasDaemons(host, "start");
    if (!status.ok()) break;
    std::vector<std::string> running;
    bool any = false;
    for (const auto& [what, daemon] : HostDaemons(host)) {
      if (!daemon->stopped) {
        running.push_back(
            absl::StrCat(what, " pid ", daemon->pid, Alive(*daemon) ? " alive" : " DEAD"));
        continue;
      }
      if (daemon->argv.empty()) {
        status = absl::FailedPreconditionError(
            absl::StrCat("cannot start ", what, " in ", host.name,
                         ": the state file has no argv for it (a lab of an older jailover-lab)"));
        break;
      }
      any = true;
      // (A lease proxy with the coordinators: it needs nothing before it.)
      const size_t phase = daemon == &host.etcd ? 0 : host.role == "coordinator" ? 1 : 2;
      phases[phase].push_back({&host, what, daemon});
    }
    if (status.ok() && !any) {
      status = absl::FailedPreconditionError(
          absl::StrCat(host.name, "'s daemons are not stopped (", absl::StrJoin(running, ", "),
                       "): nothing to start; `jailover-lab stop ", host.name, "` first"));
    }
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  // The daemons get the keeper's working directory, never the caller's.
  if (chdir("/") != 0) {
    Fail(absl::InternalError(absl::StrCat("chdir /: ", strerror(errno))));
    return 1;
  }

  const absl::Time start = absl::Now();
  const auto save = [&] {
    return common::WriteFileAtomically(options.state_file, LabStateToJson(state));
  };
  const std::vector<absl::Duration> timeouts = {kEtcdReadyTimeout, kLeaderTimeout,
                                                kDaemonStartTimeout};
  std::vector<Starting*> coordinators;
  for (size_t phase = 0; phase < phases.size(); ++phase) {
    if (phases[phase].empty()) continue;
    // Start them all, then wait: etcd members need each other's quorum.
    for (Starting& item : phases[phase]) {
      if (phase == 1 && item.daemon == &item.host->daemon) coordinators.push_back(&item);
      status = RunAgain(*lab->network, *item.host, item.daemon,
                        absl::StrCat("--- jailover-lab start: ", item.what, " started again at ",
                                     WallTimeText(), " ---"));
      if (!status.ok()) {
        // Not running: still stopped, `start` can be tried again.
        item.daemon->pid = 0;
        item.daemon->start_time = 0;
        item.daemon->stopped = true;
        (void)save();
        Fail(status);
        return 1;
      }
      status = save();
      if (!status.ok()) {
        Fail(status);
        return 1;
      }
      std::cout << Elapsed(start) << " " << item.host->name << ": " << item.what
                << " started again (pid " << item.daemon->pid << ", log " << item.daemon->log
                << ")\n"
                << std::flush;
    }
    std::vector<HostDaemon> watched;
    for (const Starting& item : phases[phase]) watched.push_back({item.host->name, *item.daemon});
    std::string last;
    const absl::Status waited = WaitFor(
        [&] {
          bool all = true;
          for (Starting& item : phases[phase]) {
            if (item.answers) continue;
            std::string detail;
            item.answers = Answers(*lab->network, state, options, item, &detail);
            if (item.answers) {
              std::cout << Elapsed(start) << " " << item.host->name << ": " << item.what
                        << " answers: " << detail << "\n"
                        << std::flush;
            } else {
              all = false;
              last = absl::StrCat(item.host->name, ": ", detail);
            }
          }
          return all;
        },
        timeouts[phase], watched,
        phase == 0 ? "the etcd members to be healthy"
                   : (phase == 1 ? "the coordinators to answer" : "the agents to answer"));
    if (!waited.ok()) {
      Fail(absl::Status(
          waited.code(),
          absl::StrCat(waited.message(), last.empty() ? "" : "\nlast answer: " + last,
                       "\n(`jailover-lab stop HOST` then `start HOST` to try again)")));
      return 1;
    }
  }
  // etcd: one of the coordinators leads again (the ones started just now
  // may all stand by at first).
  if (state.store == "etcd" && !coordinators.empty()) {
    std::vector<HostDaemon> watched;
    for (const Starting* item : coordinators) watched.push_back({item->host->name, *item->daemon});
    const LabToolHost* leader = nullptr;
    std::string why;
    const absl::Status waited = WaitFor(
        [&] {
          leader = FindLeader(*lab->network, state, coordinators.front()->host->name, &why);
          return leader != nullptr;
        },
        kLeaderTimeout, watched, "a coordinator to lead");
    if (!waited.ok()) {
      Fail(common::Annotate(waited, why));
      return 1;
    }
    std::cout << Elapsed(start) << " " << leader->name << " leads\n";
  }
  std::vector<std::string> started;
  for (const LabToolHost* host : *hosts) started.push_back(host->name);
  std::cout << absl::StrJoin(started, " ") << " started in " << Seconds(absl::Now() - start)
            << "\n";
  return 0;
}

int Revive(const LabToolOptions& options, const std::string& name, bool fresh) {
  {
    StateLock lock(options.state_file);
    absl::StatusOr<LiveLab> lab = AttachLab(options);
    absl::Status status = lab.ok() ? CheckHost(lab->state, name) : lab.status();
    LabToolHost* host = status.ok() ? FindHost(lab->state, name) : nullptr;
    if (status.ok() && !host->killed) {
      status = absl::FailedPreconditionError(
          absl::StrCat("cannot revive ", name, ": it was not killed by kill-host"));
    }
    if (status.ok() && fresh && host->role != "jail") {
      status = absl::InvalidArgumentError(absl::StrCat(
          "cannot revive ", name, " --fresh: only a jail host can be replaced by a new machine (",
          name, " is the ", host->role, " host; its disk holds the cluster's data)"));
    }
    if (status.ok() && !host->daemon.recorded()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("cannot revive ", name, ": the lab runs no daemon in it"));
    }
    if (!status.ok()) {
      Fail(status);
      return 1;
    }
    // What a reboot leaves: no process (kill-host), no mount, no loop
    // device, no address but the host's own (a killed ucarp never took its
    // VIP down).
    lab->network->KillAll(name);
    std::vector<std::string> cleared = lab->network->ClearHostMounts(name);
    absl::StatusOr<common::CommandResult> addresses =
        lab->network->Run(name, {"ip", "-4", "-o", "addr", "show", "dev", "eth0"});
    if (addresses.ok() && addresses->ok()) {
      // "2: eth0    inet 198.18.0.100/24 scope global secondary eth0 ..."
      for (absl::string_view line :
           absl::StrSplit(addresses->stdout_text, '\n', absl::SkipEmpty())) {
        std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
        auto inet = std::find(words.begin(), words.end(), "inet");
        if (inet == words.end() || inet + 1 == words.end()) continue;
        const std::string cidr = *(inet + 1);
        if (cidr.substr(0, cidr.find('/')) == host->address) continue;
        absl::StatusOr<common::CommandResult> del =
            lab->network->Run(name, {"ip", "addr", "del", cidr, "dev", "eth0"});
        if (del.ok() && del->ok()) cleared.push_back("address " + cidr);
      }
    }
    if (fresh) {
      // A new machine: the agent's state directory is empty.
      const std::string state_dir = FlagValue(host->daemon.argv, "--state_dir");
      std::error_code ec;
      if (!state_dir.empty()) {
        fs::remove_all(state_dir, ec);
        fs::create_directories(state_dir, ec);
        cleared.push_back("the agent's state " + state_dir);
      }
    }
    status = lab->network->ClearFilters(name);
    if (status.ok()) status = lab->network->UnblockTraffic(name);
    if (status.ok()) status = lab->network->LinkUp(name);
    if (!status.ok()) {
      Fail(status);
      return 1;
    }
    host->killed = false;
    for (const auto& [what, daemon] : HostDaemons(*host)) {
      daemon->pid = 0;
      daemon->start_time = 0;
      daemon->stopped = true;
    }
    status = common::WriteFileAtomically(options.state_file, LabStateToJson(lab->state));
    if (!status.ok()) {
      Fail(status);
      return 1;
    }
    std::cout << name << (fresh ? " replaced by a fresh machine" : " rebooted")
              << ": link up; cleared "
              << (cleared.empty() ? std::string("nothing") : absl::StrJoin(cleared, ", "))
              << "\n"
              << std::flush;
  }
  return Start(options, {name});
}

int Pause(const LabToolOptions& options, const std::string& name, bool all, bool resume) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, name) : lab.status();
  LabToolHost* host = status.ok() ? FindHost(lab->state, name) : nullptr;
  if (status.ok() && host->killed) {
    status = absl::FailedPreconditionError(absl::StrCat(name, " was killed by kill-host"));
  }
  if (status.ok() && !resume && !all && !Alive(host->daemon)) {
    status = absl::FailedPreconditionError(
        absl::StrCat("cannot pause ", name, ": the lab runs no live daemon in it"));
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  // Resume: every process of the host (SIGCONT to a running one is
  // harmless), whatever was paused.
  std::vector<pid_t> pids;
  if (all || resume) {
    pids = lab->network->Pids(name);
  } else {
    pids.push_back(host->daemon.pid);
  }
  const int signal = resume ? SIGCONT : SIGSTOP;
  int sent = 0;
  for (pid_t pid : pids) {
    if (::kill(pid, signal) == 0) ++sent;
  }
  std::cout << name << ": " << (resume ? "resumed " : "paused ") << sent << " process(es)"
            << (resume || all ? "" : " (its " + ProgramName(host->daemon) + ")") << "\n";
  return 0;
}

int Loss(const LabToolOptions& options, const std::string& host, int percent) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok()) status = lab->network->SetLoss(host, percent);
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  std::cout << host << " drops " << percent
            << "% of the packets it sends and receives, at random (nftables)\n";
  return 0;
}

int CarpSplit(const LabToolOptions& options, const std::string& host) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok()) status = lab->network->BlockCarp(host);
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  std::cout << host
            << " neither sends nor hears CARP advertisements (IP protocol 112 dropped; "
               "nftables): its speakers and the others' each believe they are alone\n";
  return 0;
}

int Partition(const LabToolOptions& options, const std::string& host, const std::string& from,
              bool one_way) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok() && !from.empty()) {
    status = from == host ? absl::InvalidArgumentError("cannot partition a host from itself")
                          : CheckHost(lab->state, from);
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  if (one_way && from.empty()) {
    status = absl::InvalidArgumentError("partition --one-way needs `from X`");
  } else if (from.empty()) {
    status = lab->network->LinkDown(host);
    if (status.ok()) std::cout << host << " partitioned from every host (link down)\n";
  } else if (one_way) {
    status = lab->network->BlockTrafficOneWay(host, from);
    if (status.ok()) {
      std::cout << "what " << host << " sends to " << from
                << " is dropped (a blackhole route in " << host << "; " << from
                << " still reaches it)\n";
    }
  } else {
    status = lab->network->BlockTraffic(host, from);
    if (status.ok()) {
      std::cout << host << " partitioned from " << from
                << " (all IP traffic between them dropped both ways; blackhole routes)\n";
    }
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  return 0;
}

int Heal(const LabToolOptions& options, const std::string& host) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok()) status = lab->network->LinkUp(host);
  if (status.ok()) status = lab->network->UnblockTraffic(host);
  if (status.ok()) status = lab->network->ClearFilters(host);
  if (status.ok()) {
    std::error_code ec;
    fs::remove(LeaseDelayDir(lab->state) + "/" + host, ec);
    if (ec) status = absl::InternalError("cannot remove the lease delay of " + host);
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  std::cout << host
            << " healed: link up, no traffic dropped, no packet loss, CARP heard, no lease "
               "delay\n";
  if (FindHost(lab->state, host)->killed) {
    std::cout << "note: " << host
              << " was killed by kill-host; its processes stay dead (only its link is back; "
                 "`jailover-lab revive` starts it again)\n";
  }
  return 0;
}

int Delay(const LabToolOptions& options, const std::string& host, int delay_ms, int jitter_ms) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok()) {
    const LabToolHost& target = *FindHost(lab->state, host);
    if (target.role != "jail" && target.role != "storage") {
      status = absl::InvalidArgumentError(
          absl::StrCat(host, " runs no agent: only agents' lease channels can be delayed"));
    } else if (delay_ms < 0 || delay_ms > 60000 || jitter_ms < 0 || jitter_ms > delay_ms) {
      status =
          absl::InvalidArgumentError(absl::StrCat("delay ", delay_ms, " ms, jitter ", jitter_ms,
                                                  " ms: need 0 <= jitter <= delay <= 60000"));
    } else if (std::none_of(lab->state.hosts.begin(), lab->state.hosts.end(),
                            [](const LabToolHost& h) { return h.proxy.recorded(); })) {
      status = absl::FailedPreconditionError(
          "this lab has no lease proxies: bring it up with `jailover-lab --lease_proxy up`");
    }
  }
  const std::string file = lab.ok() ? LeaseDelayDir(lab->state) + "/" + host : "";
  if (status.ok()) {
    if (delay_ms == 0) {
      std::error_code ec;
      fs::remove(file, ec);
      if (ec) {
        status = absl::InternalError(absl::StrCat("cannot remove ", file, ": ", ec.message()));
      }
    } else {
      status = common::WriteFileAtomically(file, absl::StrCat(delay_ms, " ", jitter_ms, "\n"));
    }
  }
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  if (delay_ms == 0) {
    std::cout << host << "'s lease channel: no delay\n";
  } else {
    std::cout << host << "'s lease channel: every chunk held " << delay_ms << " ms";
    if (jitter_ms > 0) std::cout << " +-" << jitter_ms << " ms (drawn every 100 ms)";
    std::cout << " each way, by the lease proxies (within 100 ms)\n";
  }
  return 0;
}

int LeaseProxy(const std::string& upstream, const std::vector<std::string>& routes,
               const std::string& control_dir, const std::string& ready_file) {
  const absl::Status blocked = common::BlockShutdownSignals();
  if (!blocked.ok()) {
    Fail(blocked);
    return 1;
  }
  struct Route {
    std::string host;
    std::unique_ptr<testing::DelayProxy> proxy;
    LeaseDelay setting;  // the last one applied
  };
  std::vector<Route> proxies;
  for (const std::string& route : routes) {
    const size_t equals = route.find('=');
    if (equals == std::string::npos || equals + 1 == route.size()) {
      Fail(absl::InvalidArgumentError("lease-proxy: --route " + route + " is not LISTEN=HOST"));
      return 2;
    }
    absl::StatusOr<std::unique_ptr<testing::DelayProxy>> proxy = testing::DelayProxy::Start(
        upstream, testing::DelayProxy::kDefaultMaxBufferedBytes, route.substr(0, equals));
    if (!proxy.ok()) {
      Fail(proxy.status());
      return 1;
    }
    std::cout << "lease-proxy: " << (*proxy)->address() << " -> " << upstream << " for "
              << route.substr(equals + 1) << "\n";
    proxies.push_back({route.substr(equals + 1), *std::move(proxy), {}});
  }
  const absl::Status ready = common::WriteFileAtomically(ready_file, absl::StrCat(getpid(), "\n"));
  if (!ready.ok()) {
    Fail(ready);
    return 1;
  }
  std::cout << std::flush;
  std::mt19937_64 random(static_cast<uint64_t>(getpid()) ^
                         static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  const sigset_t stop = common::ShutdownSignalSet();
  const timespec tick = {0, 100 * 1000 * 1000};
  while (sigtimedwait(&stop, nullptr, &tick) < 0) {
    for (Route& route : proxies) {
      const LeaseDelay setting = ReadLeaseDelay(control_dir, route.host);
      if (setting != route.setting) {
        std::cout << WallTimeText() << " lease-proxy: " << route.host << ": "
                  << (setting.delay_ms == 0 ? std::string("no delay")
                                            : absl::StrCat(setting.delay_ms, " +-",
                                                           setting.jitter_ms, " ms each way"))
                  << "\n"
                  << std::flush;
      }
      // Unchanged and without jitter: nothing to set again.
      if (setting == route.setting && setting.jitter_ms == 0) continue;
      route.setting = setting;
      int64_t ms = setting.delay_ms;
      if (setting.jitter_ms > 0) {
        ms += std::uniform_int_distribution<int64_t>(-setting.jitter_ms, setting.jitter_ms)(random);
      }
      const absl::Duration delay = absl::Milliseconds(std::max<int64_t>(ms, 0));
      route.proxy->SetDelay(testing::DelayProxy::kToUpstream, delay);
      route.proxy->SetDelay(testing::DelayProxy::kToClient, delay);
    }
  }
  std::cout << WallTimeText() << " lease-proxy: stopping\n" << std::flush;
  for (Route& route : proxies) route.proxy->Shutdown();
  return 0;
}

int Exec(const LabToolOptions& options, const std::string& host,
         const std::vector<std::string>& argv) {
  absl::StatusOr<LiveLab> lab = AttachLab(options);
  absl::Status status = lab.ok() ? CheckHost(lab->state, host) : lab.status();
  if (status.ok() && argv.empty()) status = absl::InvalidArgumentError("exec: no command");
  if (!status.ok()) {
    Fail(status);
    return 1;
  }
  std::vector<std::string> full = lab->network->InHost(host, argv);
  std::vector<char*> args;
  for (std::string& arg : full) args.push_back(arg.data());
  args.push_back(nullptr);
  execvp(args[0], args.data());
  Fail(absl::InternalError(absl::StrCat("exec ", full[0], ": ", strerror(errno))));
  return 127;
}

}  // namespace jailover::lab

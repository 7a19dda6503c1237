// jailover-lab: a real jailover cluster in network namespaces (see
// lab_tool.h). Usage: jailover-lab [OPTIONS] up|down|status|kill-host H|
// stop H... [--etcd_only]|start H...|partition H [from X [--one-way]]|heal H|
// loss H PCT|carp-split H|delay H MS [--jitter MS]|pause H [--all]|resume H|
// revive H [--fresh]|exec H -- CMD...
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log/log.h"
#include "deploy/lab/lab_tool.h"

namespace {

// "3s", "500ms" -> Duration; false with a message if it does not parse.
bool ParseDurationFlag(const std::string& name, const std::string& text, absl::Duration* out) {
  if (!absl::ParseDuration(text, out) || *out < absl::ZeroDuration()) {
    std::cerr << "jailover-lab: " << name << ": bad duration '" << text << "' (e.g. 3s, 500ms)\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  jailover::lab::LabToolOptions options;
  options.agent_bin = JAILOVER_AGENT_BIN;
  options.coordinator_bin = JAILOVER_COORDINATOR_BIN;
  options.ctl_bin = JAILOVER_CTL_BIN;
  std::string lease_ttl = "3s", renew = "500ms", margin = "2s", ready_timeout = "60s";
  std::string election_ttl = "1s";
  bool verbose = false;

  CLI::App app{
      "jailover-lab: a jailover cluster in network namespaces on this machine (root): ctl "
      "(coordinator, 198.18.0.2), s1 (storage agent, .21), h1 h2 h3 (jail agents, .11-.13), c1 "
      "(client, .31) on an isolated bridge. With --store etcd: ctl1..ctlN (.2-.4), each an etcd "
      "member and a coordinator."};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--agent_bin", options.agent_bin, "jailover-agent to run")->capture_default_str();
  app.add_option("--coordinator_bin", options.coordinator_bin, "jailover-coordinator to run")
      ->capture_default_str();
  app.add_option("--ctl_bin", options.ctl_bin, "jailoverctl to use")->capture_default_str();
  app.add_option("--state_file", options.state_file, "Where the live lab is recorded")
      ->capture_default_str();
  app.add_option("--lease_ttl", lease_ttl,
                 "Lease time to live (coordinator and agents); 5s by default with --store etcd")
      ->capture_default_str();
  app.add_option("--lease_renew_interval", renew, "Heartbeat interval")->capture_default_str();
  app.add_option("--lease_safety_margin", margin, "Coordinator: FENCED after ttl + this")
      ->capture_default_str();
  app.add_option("--ready_timeout", ready_timeout, "up: how long to wait for READY agents")
      ->capture_default_str();
  app.add_option("--coordinator_arg", options.coordinator_args,
                 "up: an extra flag for the coordinator (repeatable)")
      ->take_all();
  app.add_option("--agent_arg", options.agent_args,
                 "up: an extra flag for every agent (repeatable)")
      ->take_all();
  app.add_option("--coordinators", options.coordinators,
                 "up: how many coordinators, 1..3 (more than 1 needs --store etcd)")
      ->capture_default_str();
  app.add_option("--store", options.store,
                 "up: the coordinators' store: sqlite (host ctl) or etcd (hosts ctl1..ctlN, an "
                 "etcd member in each; ctl1 leads first)")
      ->check(CLI::IsMember({"sqlite", "etcd"}))
      ->capture_default_str();
  app.add_option("--first_coordinator_arg", options.first_coordinator_args,
                 "up: an extra flag for the first coordinator only (ctl1 or ctl; repeatable; "
                 "write --first_coordinator_arg=--FLAG)")
      ->take_all();
  app.add_option("--election_ttl", election_ttl,
                 "up, --store etcd: the coordinators' leadership lease")
      ->capture_default_str();
  app.add_option("--etcd_bin", options.etcd_bin, "up, --store etcd: etcd 3.4 to run")
      ->capture_default_str();
  app.add_option("--etcdctl_bin", options.etcdctl_bin, "up, --store etcd: etcdctl to use")
      ->capture_default_str();
  app.add_flag("--lease_proxy", options.lease_proxy,
               "up: every agent's lease channel through a delaying proxy in each coordinator "
               "host, for `delay`");
  app.add_flag("-v,--verbose", verbose, "Log what the lab harness does");

  std::string host, from_word, from;
  std::vector<std::string> command, hosts;
  int progress_fd = -1;
  CLI::App* up = app.add_subcommand("up", "Build the lab and start the cluster; wait for READY");
  CLI::App* down = app.add_subcommand("down", "Stop the cluster and remove everything of the lab");
  CLI::App* status = app.add_subcommand("status", "Hosts, daemons, links, the coordinator's view");
  CLI::App* kill_host =
      app.add_subcommand("kill-host", "A dead machine: kill all its processes, link down");
  kill_host->add_option("HOST", host, "Host name")->required();
  CLI::App* stop = app.add_subcommand(
      "stop",
      "HOST...: kill the lab's daemons in each host (coordinator or agent, etcd); jails, "
      "ucarp and nbd keep running, the link stays up");
  stop->add_option("HOST", hosts, "Host names")->required();
  bool etcd_only = false;
  stop->add_flag("--etcd_only", etcd_only,
                 "Only the etcd member of each (coordinator) host; its coordinator keeps running");
  CLI::App* start = app.add_subcommand(
      "start", "HOST...: start the stopped daemons of each host again (same argv, same log)");
  start->add_option("HOST", hosts, "Host names")->required();
  CLI::App* partition = app.add_subcommand(
      "partition", "HOST [from X]: HOST's link down, or only traffic HOST <-> X dropped");
  partition->add_option("HOST", host, "Host name")->required();
  partition->add_option("from", from_word, "the word 'from'");
  partition->add_option("X", from, "The other host");
  bool one_way = false, all = false, fresh = false;
  int percent = 0;
  partition->add_flag("--one-way", one_way,
                      "Only what HOST sends to X is dropped (X still reaches HOST)");
  CLI::App* heal = app.add_subcommand(
      "heal", "Undo partition, loss, carp-split and delay (a killed host stays dead)");
  heal->add_option("HOST", host, "Host name")->required();
  CLI::App* loss = app.add_subcommand(
      "loss", "HOST PERCENT: HOST drops PERCENT of its packets (in and out) at random");
  loss->add_option("HOST", host, "Host name")->required();
  loss->add_option("PERCENT", percent, "1..100")->required()->check(CLI::Range(1, 100));
  int delay_ms = 0, jitter_ms = 0;
  CLI::App* delay = app.add_subcommand(
      "delay",
      "HOST MS [--jitter MS]: HOST's lease channel held MS (0: none) each way, +-jitter "
      "(a lab brought up with --lease_proxy)");
  delay->add_option("HOST", host, "Host name (an agent's)")->required();
  delay->add_option("MS", delay_ms, "0..60000")->required()->check(CLI::Range(0, 60000));
  delay->add_option("--jitter", jitter_ms, "0..MS: a random -jitter..+jitter every 100 ms")
      ->check(CLI::Range(0, 60000));
  std::string upstream, control_dir, ready_file;
  std::vector<std::string> routes;
  CLI::App* lease_proxy = app.add_subcommand("lease-proxy", "");  // internal: started by up
  lease_proxy->group("");
  lease_proxy->add_option("--upstream", upstream)->required();
  lease_proxy->add_option("--route", routes)->required();
  lease_proxy->add_option("--control_dir", control_dir)->required();
  lease_proxy->add_option("--ready_file", ready_file)->required();
  CLI::App* carp_split = app.add_subcommand(
      "carp-split", "HOST: HOST neither sends nor hears CARP advertisements (IP protocol 112)");
  carp_split->add_option("HOST", host, "Host name")->required();
  CLI::App* pause = app.add_subcommand(
      "pause", "HOST: SIGSTOP the host's daemon (--all: every process of the host)");
  pause->add_option("HOST", host, "Host name")->required();
  pause->add_flag("--all", all, "Every process of the host (agent, jails, nbdfuse, ucarp)");
  CLI::App* resume =
      app.add_subcommand("resume", "HOST: SIGCONT to every process of the host");
  resume->add_option("HOST", host, "Host name")->required();
  CLI::App* revive = app.add_subcommand(
      "revive",
      "HOST: a host killed by kill-host boots again (no process, mount or VIP left; link up; "
      "its daemons started)");
  revive->add_option("HOST", host, "Host name")->required();
  revive->add_flag("--fresh", fresh,
                   "A new machine under the same name: the agent's state is empty (jail hosts)");
  CLI::App* exec = app.add_subcommand("exec", "HOST -- CMD...: run CMD inside HOST");
  exec->add_option("HOST", host, "Host name")->required();
  exec->add_option("CMD", command, "Command and arguments (after --)")->required();
  CLI::App* keep = app.add_subcommand("keep", "");  // internal: the keeper
  keep->group("");
  keep->add_option("--progress_fd", progress_fd)->required();
  CLI11_PARSE(app, argc, argv);

  // Coordinators on etcd: agents' leases must outlast a takeover (see
  // HostTrackerConfig::CheckTakeoverFits): 5 s unless given.
  if (options.store == "etcd" && app.count("--lease_ttl") == 0) lease_ttl = "5s";
  if (!ParseDurationFlag("--lease_ttl", lease_ttl, &options.lease_ttl) ||
      !ParseDurationFlag("--lease_renew_interval", renew, &options.lease_renew_interval) ||
      !ParseDurationFlag("--lease_safety_margin", margin, &options.lease_safety_margin) ||
      !ParseDurationFlag("--ready_timeout", ready_timeout, &options.ready_timeout) ||
      !ParseDurationFlag("--election_ttl", election_ttl, &options.election_ttl)) {
    return 2;
  }
  // The harness logs each step at info; a demo wants only the tool's lines.
  spdlog::set_level(verbose || keep->parsed() ? spdlog::level::info : spdlog::level::warn);

  // Absolute: `start` and the keeper run in /.
  if (!options.state_file.empty()) {
    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::absolute(options.state_file, ec);
    if (!ec) options.state_file = absolute.string();
  }
  namespace lab = jailover::lab;
  if (up->parsed()) return lab::Up(options);
  if (down->parsed()) return lab::Down(options);
  if (status->parsed()) return lab::Status(options);
  if (kill_host->parsed()) return lab::KillHost(options, host);
  if (stop->parsed()) return lab::Stop(options, hosts, etcd_only);
  if (start->parsed()) return lab::Start(options, hosts);
  if (partition->parsed()) {
    if (!from_word.empty() && (from_word != "from" || from.empty())) {
      std::cerr << "jailover-lab: usage: partition HOST [from X]\n";
      return 2;
    }
    return lab::Partition(options, host, from, one_way);
  }
  if (heal->parsed()) return lab::Heal(options, host);
  if (loss->parsed()) return lab::Loss(options, host, percent);
  if (carp_split->parsed()) return lab::CarpSplit(options, host);
  if (delay->parsed()) return lab::Delay(options, host, delay_ms, jitter_ms);
  if (lease_proxy->parsed()) return lab::LeaseProxy(upstream, routes, control_dir, ready_file);
  if (pause->parsed()) return lab::Pause(options, host, all, /*resume=*/false);
  if (resume->parsed()) return lab::Pause(options, host, /*all=*/true, /*resume=*/true);
  if (revive->parsed()) return lab::Revive(options, host, fresh);
  if (exec->parsed()) return lab::Exec(options, host, command);
  if (keep->parsed()) return lab::Keep(options, progress_fd);
  return 2;
}

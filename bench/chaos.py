#!/usr/bin/env python3
"""jailover's nemesis: randomized faults on the lab, checked against a history.

Run through bench/chaos.sh (root; the lab of deploy/lab). One lab for the
whole run: three jails (web1 on h1, web2 on h2, web3 on h3, each with the
other two jail hosts as standbys, images on s1, VIPs 198.18.0.100-.102), a
client per jail in c1 appending through its VIP for the whole run, and a
sampler that records which hosts hold each VIP every 100 ms.

Each cycle picks one fault, or two overlapping ones on different hosts,
from the seed (random.Random(SEED): the same seed gives the same faults,
holds and order), holds it 0.5 s .. 3 x the lease ttl (a pause: past the
ttl), heals it, and waits until the cluster converges: every jail host READY
(a host whose jails were failed over is readmitted, as an operator would),
every jail RUNNING on a READY host and answering its client. Then the
checker (jailover-applog-client check) proves, per jail, on the whole history
so far: every acknowledged record stored; no record of an older writer
(HOST@EPOCH) stored after a newer one's; no acknowledgement from an older
writer after a newer one's. The cycle also fails when a fault of the control
plane alone (coordinators, etcd members) gave a client a gap over 1 s, or
when the cluster did not converge within 30 s of the heal.

A failing cycle keeps the lab's logs, the event log and the clients' records
in OUT/cycle-N (and the run stops at the first safety violation: what follows
would be judged on a broken history). Prints a line per cycle and a summary;
exit 0 only when every cycle passed.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

JAIL_HOSTS = ["h1", "h2", "h3"]
JAILS = [  # name, primary, standbys, VIP, vhid
    ("web1", "h1", ["h2", "h3"], "198.18.0.100", 10),
    ("web2", "h2", ["h3", "h1"], "198.18.0.101", 11),
    ("web3", "h3", ["h1", "h2"], "198.18.0.102", 12),
]
PORT = 7000
CONVERGE_BOUND_S = 30.0
RECOVERY_TARGET_S = 15.0
CONTROL_PLANE_GAP_MS = 1000


def now():
    return time.time()


class Lab:
    """The jailover-lab tool and jailoverctl against one lab."""

    def __init__(self, build, state, store, ttl):
        self.build = build
        self.state_file = state
        self.store = store
        self.ttl = ttl
        self.lab_bin = os.path.join(build, "deploy/lab/jailover-lab")
        self.ctl_bin = os.path.join(build, "coordinator/cli/jailoverctl")
        self.client_bin = os.path.join(build, "tools/jailover-applog-client")
        self.server_bin = os.path.join(build, "tools/jailover-applog-server")
        self.state = None

    def run(self, *args, timeout=180, check=True):
        argv = [self.lab_bin, "--state_file", self.state_file] + list(args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("jailover-lab %s failed (%d): %s%s" %
                               (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def load(self):
        with open(self.state_file) as f:
            self.state = json.load(f)
        return self.state

    def ctl(self, *args, timeout=20, check=False):
        # The lab's mTLS, as operator/lab (jailover-lab up makes DIR/pki).
        pki = self.state["dir"] + "/pki"
        argv = [self.lab_bin, "--state_file", self.state_file, "exec", "c1", "--",
                self.ctl_bin, "--coordinator", self.state["coordinator"],
                "--tls_cert", pki + "/operator-lab.pem", "--tls_key", pki + "/operator-lab.key",
                "--tls_ca", pki + "/ca.pem", "--timeout", "5"] + list(args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("jailoverctl %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def ctl_json(self, *args):
        try:
            r = self.ctl("-o", "json", *args)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def netns(self, host):
        return "%s-%s" % (self.state["prefix"], host)

    def coordinator_hosts(self):
        return [h["name"] for h in self.state["hosts"] if h["role"] == "coordinator"]


class VipSampler(threading.Thread):
    """Every 100 ms: which jail hosts hold each VIP on an up link."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab = lab
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.samples = []  # (t, {vip: [hosts]})

    def links_up(self):
        r = subprocess.run(["ip", "-n", self.lab.netns("sw"), "-o", "link", "show"],
                           capture_output=True, text=True, timeout=5)
        up = set()
        for line in r.stdout.splitlines():
            # "7: v-h1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> ..."
            name = line.split(":")[1].strip().split("@")[0]
            flags = line[line.find("<") + 1:line.find(">")].split(",")
            if name.startswith("v-") and "UP" in flags:
                up.add(name[2:])
        return up

    def run(self):
        vips = [j[3] for j in JAILS]
        while not self.stop_event.wait(0.1):
            t = now()
            held = {v: [] for v in vips}
            try:
                up = self.links_up()
                for host in JAIL_HOSTS:
                    if host not in up:
                        continue
                    r = subprocess.run(["ip", "-n", self.lab.netns(host), "-o", "-4", "addr",
                                        "show", "dev", "eth0"],
                                       capture_output=True, text=True, timeout=5)
                    for line in r.stdout.split():
                        address = line.split("/")[0]
                        if address in held:
                            held[address].append(host)
            except (subprocess.SubprocessError, OSError, IndexError):
                continue
            with self.lock:
                self.samples.append((t, held))

    def dual_ms(self, start, end):
        """Milliseconds in [start, end) during which a VIP had two holders."""
        total = 0.0
        with self.lock:
            samples = [s for s in self.samples if start <= s[0] < end]
        for i, (t, held) in enumerate(samples):
            if any(len(hosts) > 1 for hosts in held.values()):
                nxt = samples[i + 1][0] if i + 1 < len(samples) else min(end, t + 0.1)
                total += (nxt - t) * 1000
        return int(total)

    def dual_moments(self, start, end):
        with self.lock:
            return [(t, {v: h for v, h in held.items() if len(h) > 1})
                    for t, held in self.samples
                    if start <= t < end and any(len(h) > 1 for h in held.values())]


class Client:
    """jailover-applog-client write in c1, through one VIP, for the whole run."""

    def __init__(self, lab, jail, vip, work):
        self.lab = lab
        self.jail = jail
        self.target = "%s:%d" % (vip, PORT)
        self.acked = os.path.join(work, "acked-" + jail)
        self.log = os.path.join(work, "client-%s.log" % jail)
        self.proc = None

    def start(self):
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [lab_bin_of(self.lab), "--state_file", self.lab.state_file, "exec", "c1", "--",
                 self.lab.client_bin, "write", "--target", self.target, "--run-until-signal",
                 "--interval-ms", "20", "--timeout-ms", "1000", "--acked", self.acked],
                stdout=log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def acks(self):
        """[(id, unix ms, writer)] so far (an unfinished last line skipped)."""
        out = []
        try:
            with open(self.acked) as f:
                text = f.read()
        except OSError:
            return out
        for line in text.split("\n")[:-1]:
            parts = line.split(" ")
            if len(parts) >= 2:
                out.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
        return out

    def check(self):
        r = subprocess.run(
            [lab_bin_of(self.lab), "--state_file", self.lab.state_file, "exec", "c1", "--",
             self.lab.client_bin, "check", "--target", self.target, "--acked", self.acked],
            capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout + r.stderr


def lab_bin_of(lab):
    return lab.lab_bin


# --- faults -------------------------------------------------------------------------------

class Fault:
    """One fault: apply() and heal() on the lab; `control_plane` when it
    touches nothing but coordinators and etcd members; `hosts` it occupies;
    `blocks_moves` when no jail can move until it heals (the storage agent
    down: no fence; the only coordinator down: nobody to decide)."""

    control_plane = False
    blocks_moves = False

    def __init__(self, lab, rng):
        self.lab = lab
        self.rng = rng
        self.hosts = set()
        self.note = ""

    def describe(self):
        return self.name

    def min_hold(self):
        return 0.5


class KillHost(Fault):
    def __init__(self, lab, rng, host):
        super().__init__(lab, rng)
        self.host = host
        self.hosts = {host}
        self.fresh = rng.random() < 0.5
        self.name = "kill %s, %s" % (host, "fresh machine" if self.fresh else "reboot")

    def apply(self):
        self.lab.run("kill-host", self.host)

    def heal(self):
        args = ["revive", self.host] + (["--fresh"] if self.fresh else [])
        self.lab.run(*args, timeout=120)


class Partition(Fault):
    def __init__(self, lab, rng, host, others, label, one_way=False):
        super().__init__(lab, rng)
        self.host = host
        self.others = others
        self.one_way = one_way
        self.hosts = {host}
        self.name = "partition %s from %s%s" % (host, label, " (one way)" if one_way else "")

    def apply(self):
        for other in self.others:
            self.lab.run("partition", self.host, "from", other,
                         *(["--one-way"] if self.one_way else []))

    def heal(self):
        self.lab.run("heal", self.host)


class LinkDown(Fault):
    def __init__(self, lab, rng, host):
        super().__init__(lab, rng)
        self.host = host
        self.hosts = {host}
        self.name = "partition %s from everyone (link down)" % host

    def apply(self):
        self.lab.run("partition", self.host)

    def heal(self):
        self.lab.run("heal", self.host)


class Loss(Fault):
    def __init__(self, lab, rng, host):
        super().__init__(lab, rng)
        self.host = host
        self.hosts = {host}
        self.percent = rng.choice([5, 10, 20, 30])
        self.name = "%d%% packet loss on %s" % (self.percent, host)

    def apply(self):
        self.lab.run("loss", self.host, str(self.percent))

    def heal(self):
        self.lab.run("heal", self.host)


class Delay(Fault):
    """HOST's lease channel (both ways, through the coordinator hosts' lease
    proxies) held DELAY ms +- JITTER ms: slow grants and late heartbeats,
    past the ttl for the longest delays."""

    def __init__(self, lab, rng, host):
        super().__init__(lab, rng)
        self.host = host
        self.hosts = {host}
        self.delay = rng.choice([100, 300, 1000, 2500])
        self.jitter = self.delay // 2
        self.name = "delay %s's lease channel %d+-%d ms" % (host, self.delay, self.jitter)

    def apply(self):
        self.lab.run("delay", self.host, str(self.delay), "--jitter", str(self.jitter))

    def heal(self):
        self.lab.run("heal", self.host)


class CarpSplit(Fault):
    """HOST neither sends nor hears CARP advertisements; with `ctls`, it is
    also cut from the coordinator(s): alive, serving its clients, believing
    itself the VIP's only master while the coordinator moves its jails."""

    def __init__(self, lab, rng, host, ctls=()):
        super().__init__(lab, rng)
        self.host = host
        self.ctls = list(ctls)
        self.hosts = {host}
        self.name = ("CARP split of %s" % host if not ctls else
                     "partition %s from the coordinator(s) and CARP" % host)

    def apply(self):
        for other in self.ctls:
            self.lab.run("partition", self.host, "from", other)
        self.lab.run("carp-split", self.host)

    def heal(self):
        self.lab.run("heal", self.host)


class Pause(Fault):
    def __init__(self, lab, rng, host, everything):
        super().__init__(lab, rng)
        self.host = host
        self.everything = everything
        self.hosts = {host}
        self.name = "pause %s's %s past the ttl" % (host, "every process" if everything else "agent")

    def min_hold(self):
        return self.lab.ttl + 1.0

    def apply(self):
        self.lab.run("pause", self.host, *(["--all"] if self.everything else []))

    def heal(self):
        self.lab.run("resume", self.host)


class RestartDaemons(Fault):
    """SIGKILL the daemons of HOSTS (agent; coordinator and etcd member),
    start them again at the heal."""

    def __init__(self, lab, rng, hosts, name, control_plane=False, etcd_only=False):
        super().__init__(lab, rng)
        self.targets = hosts
        self.hosts = set(hosts)
        self.name = name
        self.control_plane = control_plane
        self.etcd_only = etcd_only

    def apply(self):
        self.lab.run("stop", *self.targets, *(["--etcd_only"] if self.etcd_only else []))

    def heal(self):
        self.lab.run("start", *self.targets, timeout=120)


def process_start_time(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot), None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def dead_daemons(lab):
    """The lab's daemons recorded running (not stopped, host not killed)
    that are not: the keeper restarts them; until then the cluster has not
    converged (finding 6: a coordinator that exited was never replaced)."""
    state = lab.load()
    dead = []
    for h in state["hosts"]:
        if h.get("killed"):
            continue
        for what, d in (("daemon", h), ("etcd", h.get("etcd")), ("proxy", h.get("proxy"))):
            if not d or not d.get("argv0") or d.get("stopped") or d.get("pid", 0) <= 0:
                continue
            if process_start_time(d["pid"]) != d["start_time"]:
                dead.append("%s %s (pid %d)" % (h["name"], what, d["pid"]))
    return dead


def coordinators_not_serving(lab):
    """etcd: the coordinators that are neither leader nor standby (each
    must be back after the heal; status lists what the leader knows)."""
    if lab.store != "etcd":
        return []
    status = lab.ctl_json("status")
    if not isinstance(status, dict):
        return ["(no status)"]
    campaigning = {c.get("name") for c in [status.get("leader", {})] + status.get("followers", [])}
    return [c for c in lab.coordinator_hosts() if c not in campaigning]


def leader(lab):
    """The leader coordinator's name (status: "leader", then "followers"),
    None when there is none or the coordinators do not answer."""
    status = lab.ctl_json("status")
    if not isinstance(status, dict):
        return None
    return status.get("leader", {}).get("name") or None


FAULT_KINDS = ["kill", "partition-ctl", "partition-storage", "partition-clients", "one-way",
               "link-down", "loss", "delay", "carp-split", "isolate", "pause-agent", "pause-all",
               "restart-agent", "restart-storage", "kill-coordinator", "kill-etcd"]


def pick_fault(lab, rng, busy, allowed=None):
    """One fault on hosts not in `busy` (of the kinds `allowed`, if given)."""
    free = [h for h in JAIL_HOSTS if h not in busy]
    kinds = []
    if free:
        kinds += ["kill", "partition-ctl", "partition-storage", "partition-clients", "one-way",
                  "link-down", "loss", "delay", "carp-split", "isolate", "pause-agent",
                  "pause-all", "restart-agent"]
    if "s1" not in busy:
        kinds += ["restart-storage"]
    ctls = lab.coordinator_hosts()
    if not any(c in busy for c in ctls):
        kinds += ["kill-coordinator", "kill-coordinator"]
        if len(ctls) > 1:
            kinds += ["kill-etcd"]
    if allowed:
        kinds = [k for k in kinds if k in allowed] or [k for k in allowed if k in kinds]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    host = rng.choice(free) if free else None
    if kind == "kill":
        return KillHost(lab, rng, host)
    if kind == "partition-ctl":
        return Partition(lab, rng, host, ctls, "the coordinator(s)")
    if kind == "partition-storage":
        return Partition(lab, rng, host, ["s1"], "the storage host")
    if kind == "partition-clients":
        return Partition(lab, rng, host, ["c1"], "the clients")
    if kind == "one-way":
        other = rng.choice(ctls[:1] + ["s1", "c1"] + [h for h in JAIL_HOSTS if h != host])
        return Partition(lab, rng, host, [other], other, one_way=True)
    if kind == "link-down":
        return LinkDown(lab, rng, host)
    if kind == "loss":
        return Loss(lab, rng, host)
    if kind == "delay":
        return Delay(lab, rng, host)
    if kind == "carp-split":
        return CarpSplit(lab, rng, host)
    if kind == "isolate":
        return CarpSplit(lab, rng, host, ctls)
    if kind == "pause-agent":
        return Pause(lab, rng, host, everything=False)
    if kind == "pause-all":
        return Pause(lab, rng, host, everything=True)
    if kind == "restart-agent":
        return RestartDaemons(lab, rng, [host], "restart %s's agent (SIGKILL)" % host)
    if kind == "restart-storage":
        fault = RestartDaemons(lab, rng, ["s1"], "restart the storage agent (SIGKILL)")
        fault.blocks_moves = True
        return fault
    # The control plane.
    if kind == "kill-etcd":
        member = rng.choice(ctls)
        fault = RestartDaemons(lab, rng, [member],
                               "kill %s's etcd member alone, restart it" % member,
                               control_plane=True, etcd_only=True)
        fault.hosts = set(ctls)
        return fault
    if len(ctls) == 1:
        fault = RestartDaemons(lab, rng, ctls, "kill the only coordinator, restart it",
                               control_plane=True)
        fault.blocks_moves = True
        return fault
    target = rng.choice(["leader", "member"])
    if target == "leader":
        # Resolved when applied: whoever leads then.
        fault = RestartDaemons(lab, rng, [], "kill the leader coordinator and its etcd member",
                               control_plane=True)
        fault.hosts = set(ctls)
        orig_apply = fault.apply

        def apply_leader():
            fault.targets = [leader(lab) or ctls[0]]
            fault.name += " (%s)" % fault.targets[0]
            orig_apply()
        fault.apply = apply_leader
        return fault
    member = rng.choice(ctls)
    fault = RestartDaemons(lab, rng, [member],
                           "kill %s (a coordinator and its etcd member)" % member,
                           control_plane=True)
    fault.hosts = set(ctls)
    return fault


def source_commit():
    """The commit of this source tree (with "+changes" if it has any), or "?"."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if head.returncode != 0:
        return "?"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def plan_cycle(lab, rng, allowed, overlap, ttl):
    """A cycle's faults (one, or two on different hosts), how long they are
    held and when the second starts: all from `rng` (the seed)."""
    faults = [pick_fault(lab, rng, set(), allowed)]
    if rng.random() < overlap:
        second = pick_fault(lab, rng, set(faults[0].hosts) |
                            (set(lab.coordinator_hosts()) if faults[0].control_plane else set()),
                            allowed)
        if second is not None and not (second.hosts & faults[0].hosts):
            faults.append(second)
    hold = max(rng.uniform(0.5, 3 * ttl), max(f.min_hold() for f in faults))
    offset = rng.uniform(0, hold / 2) if len(faults) > 1 else 0
    return faults, hold, offset


# --- convergence and checks ---------------------------------------------------------------

def jails_view(lab):
    listed = lab.ctl_json("jail", "list")
    if listed is None:
        return None
    out = {}
    for j in listed.get("jails", []):
        status = j.get("status", {})
        out[j["name"]] = (status.get("phase", "-"), status.get("host", "-"),
                          int(status.get("epoch", "0") or 0))
    return out


def hosts_view(lab):
    listed = lab.ctl_json("host", "list")
    if listed is None:
        return None
    return {h["name"]: h.get("status", {}).get("state", "-") for h in listed.get("hosts", [])}


def converge(lab, clients, healed_at, deadline, log):
    """Until every jail host is READY (FENCED ones readmitted), every jail
    RUNNING on a READY host and its client acknowledging after the heal.
    Returns (converged, seconds, what was not, readmitted hosts)."""
    readmitted = set()
    refused = {}
    why = ""
    next_note = now() + 5
    while now() < deadline:
        if why and now() >= next_note:
            log("      (still converging after %.0f s: %s)" % (now() - healed_at, why), quiet=True)
            next_note = now() + 5
        hosts = hosts_view(lab)
        jails = jails_view(lab)
        if hosts is None or jails is None:
            why = "the coordinator did not answer"
            time.sleep(0.3)
            continue
        for h in JAIL_HOSTS:
            # As an operator would: readmit a FENCED host once it is back
            # (refused while it still runs something or a failover is
            # fencing it: tried again).
            if hosts.get(h, "").endswith("FENCED"):
                r = lab.ctl("host", "readmit", h, "--reason", "chaos: healed")
                if r.returncode == 0:
                    readmitted.add(h)
                else:
                    refused[h] = r.stderr.strip()
        not_ready = [h for h in JAIL_HOSTS + ["s1"] if not hosts.get(h, "").endswith("READY")]
        bad_jails = [n for n, (phase, host, _) in jails.items()
                     if not phase.endswith("RUNNING") or not hosts.get(host, "").endswith("READY")]
        quiet = [c.jail for c in clients if not any(a[1] / 1000.0 > healed_at for a in c.acks()[-5:])]
        dead = dead_daemons(lab)
        idle = coordinators_not_serving(lab)
        if not not_ready and not bad_jails and not quiet and not dead and not idle:
            return True, now() - healed_at, "", readmitted
        why = "hosts not READY: %s; jails not running on a READY host: %s; clients without an " \
              "acknowledgement since the heal: %s; daemons dead: %s; coordinators neither " \
              "leader nor standby: %s%s" % (
                  " ".join("%s=%s" % (h, hosts.get(h, "?")) for h in not_ready) or "-",
                  " ".join("%s=%s" % (n, jails[n]) for n in bad_jails) or "-",
                  " ".join(quiet) or "-", ", ".join(dead) or "-", " ".join(idle) or "-",
                  "".join("; readmit %s refused: %s" % (h, e) for h, e in refused.items()
                          if h in not_ready))
        time.sleep(0.3)
    return False, now() - healed_at, why, readmitted


def gaps_in(acks, start_ms, end_ms):
    """(longest gap ms, its start ms, its end ms) among the gaps between
    acknowledgements that began in [start, end]: start is where the cycle
    before ended (its checks done, its clients acknowledging again), so a
    gap that opened just before this cycle's fault is this cycle's."""
    best = (0, 0, 0)
    for (_, t1, _), (_, t2, _) in zip(acks, acks[1:]):
        if t1 < start_ms or t1 > end_ms:
            continue
        if t2 - t1 > best[0]:
            best = (t2 - t1, t1, t2)
    return best


def recovery_ms(acks, since_ms, start_ms, heal_ms, end_ms, moves_from_ms=None):
    """How long the jail took to answer again in this cycle: if it moved
    (its acknowledgements name a new writer), from the fault to the first
    acknowledgement by the new writer -- or, when a fault that blocks every
    move (`moves_from_ms`: its heal) held it until then, from that heal; else
    from the heal to the end of a gap still open at the heal, or the longest
    gap (0 when none over 200 ms)."""
    before = [w for _, t, w in acks if t < start_ms]
    during = [(t, w) for _, t, w in acks if start_ms <= t <= end_ms]
    if before and during and during[-1][1] != before[-1]:
        last = during[-1][1]
        first_new = next(t for t, w in during if w == last)
        if moves_from_ms is not None and first_new > moves_from_ms:
            return first_new - moves_from_ms
        return first_new - start_ms
    gap, t1, t2 = gaps_in(acks, since_ms, end_ms)
    if t1 < heal_ms < t2:
        return t2 - heal_ms
    return gap if gap > 200 else 0


def save_evidence(lab, work, out_dir, cycle, clients, sampler, start):
    d = os.path.join(out_dir, "cycle-%d" % cycle)
    os.makedirs(d, exist_ok=True)
    lab_dir = lab.state["dir"]
    for root, _, files in os.walk(lab_dir):
        if "/ns" in root[len(lab_dir):]:
            continue
        for f in files:
            if f.endswith(".log"):
                rel = os.path.relpath(os.path.join(root, f), lab_dir)
                dest = os.path.join(d, "lab", rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                try:
                    shutil.copy(os.path.join(root, f), dest)
                except OSError:
                    pass
    r = lab.ctl("events", timeout=60)
    with open(os.path.join(d, "events.txt"), "w") as f:
        f.write(r.stdout + r.stderr)
    for c in clients:
        for p in (c.acked, c.log):
            try:
                shutil.copy(p, d)
            except OSError:
                pass
    with open(os.path.join(d, "dual-vip.txt"), "w") as f:
        for t, held in sampler.dual_moments(start, now()):
            f.write("%.3f %s\n" % (t, held))
    return d


# --- the run --------------------------------------------------------------------------------

def apply_jails(lab, work):
    lab_dir = lab.state["dir"]
    docs = []
    here = os.path.dirname(os.path.abspath(__file__))
    make_image = os.path.join(here, "..", "deploy", "lab", "make-sample-image.sh")
    for name, primary, standbys, vip, vhid in JAILS:
        image = os.path.join(lab_dir, "s1", "images", name + ".img")
        subprocess.run([make_image, image, "64", lab.server_bin], check=True,
                       capture_output=True, timeout=120)
        docs.append("""kind: Image
name: {name}-img
storage_host: s1
path: {image}
size: 64M
filesystem: ext4
---
kind: Vip
name: {name}-vip
address: {vip}/24
interface: eth0
vhid: {vhid}
password: chaos-secret
advbase: 1
---
kind: Jail
name: {name}
image: {name}-img
vip: {name}-vip
placement:
  preferred_host: {primary}
  standbys: [{standbys}]
# A chaos run fails jails over far more often than the default flap guard
# (3 per 10 minutes, then ERROR for an operator) allows.
policy:
  max_restarts: 1000
spec:
  exec_start: ["/bin/jailover-applog-server", "--listen", "{vip}:{port}", "--file", "/data/applog.txt"]
  health_port: {port}
""".format(name=name, image=image, vip=vip, vhid=vhid, primary=primary,
           standbys=", ".join(standbys), port=PORT))
    spec = os.path.join(work, "jails.yaml")
    with open(spec, "w") as f:
        f.write("---\n".join(docs))
    shutil.copy(spec, os.path.join(lab_dir, "chaos-jails.yaml"))
    lab.ctl("apply", "-f", os.path.join(lab_dir, "chaos-jails.yaml"), check=True, timeout=60)
    deadline = now() + 120
    while now() < deadline:
        jails = jails_view(lab) or {}
        if all(jails.get(n, ("",))[0].endswith("RUNNING") and jails[n][1] == p
               for n, p, _, _, _ in JAILS):
            return
        time.sleep(0.5)
    raise RuntimeError("the three jails never ran on their primaries: %s" % jails_view(lab))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cycles", type=int)
    p.add_argument("seed", type=int, nargs="?")
    p.add_argument("--build", required=True)
    p.add_argument("--store", choices=["sqlite", "etcd"], default="sqlite")
    p.add_argument("--out", help="where failing cycles keep their evidence")
    p.add_argument("--overlap", type=float, default=0.3,
                   help="probability that a cycle has two overlapping faults")
    p.add_argument("--lab_arg", action="append", default=[],
                   help="an extra flag for `jailover-lab up` (repeatable)")
    p.add_argument("--keep_all", action="store_true",
                   help="keep every cycle's evidence, not only a failing one's")
    p.add_argument("--faults", help="only these kinds, comma-separated: " + ",".join(FAULT_KINDS))
    p.add_argument("--from_cycle", type=int, default=1,
                   help="start at this cycle of the seed's sequence (the earlier cycles' faults "
                        "are drawn, not applied): to go on after a run that stopped")
    p.add_argument("--dry_run", action="store_true",
                   help="print each cycle's faults and hold (what SEED picks), run nothing")
    p.add_argument("--expect_violation", action="store_true",
                   help="a test of the checker: exit 0 only if a cycle reports a dual writer "
                        "or a stale acknowledgement")
    a = p.parse_args()
    if a.cycles < 1:
        p.error("CYCLES must be >= 1")
    allowed = a.faults.split(",") if a.faults else None
    for kind in allowed or []:
        if kind not in FAULT_KINDS:
            p.error("--faults: unknown kind %r (kinds: %s)" % (kind, ", ".join(FAULT_KINDS)))
    seed = a.seed if a.seed is not None else int(time.time()) % 1000000
    rng = random.Random(seed)
    work = os.path.abspath(a.out or "/tmp/jailover-chaos-%d" % seed)
    state = os.path.join(work, "lab.json")
    ttl = 5.0 if a.store == "etcd" else 3.0
    lab = Lab(os.path.abspath(a.build), state, a.store, ttl)
    if a.dry_run:
        lab.state = {"hosts": [{"name": n, "role": "coordinator"} for n in
                               (["ctl1", "ctl2", "ctl3"] if a.store == "etcd" else ["ctl"])]}
        for cycle in range(1, a.cycles + 1):
            faults, hold, offset = plan_cycle(lab, rng, allowed, a.overlap, ttl)
            if cycle < a.from_cycle:
                continue
            print("%-5d %-70s hold %4.1fs%s" % (cycle, " + ".join(f.describe() for f in faults),
                                                hold, " (second after %.1fs)" % offset
                                                if len(faults) > 1 else ""))
        return 0
    # A fresh history: what an earlier run left in the directory goes
    # (never a live lab's state file: `up` refuses to start over one).
    os.makedirs(work, exist_ok=True)
    for name in os.listdir(work):
        path = os.path.join(work, name)
        if name.startswith(("acked-", "client-", "cycle-")) or name in (
                "results.json", "chaos.log", "jails.yaml"):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    logf = open(os.path.join(work, "chaos.log"), "a")

    def log(line, quiet=False):
        if not quiet:
            print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    clients = []
    sampler = None
    up = False

    def cleanup(*_):
        for c in clients:
            c.stop()
        if sampler is not None:
            sampler.stop_event.set()
        if up:
            down = lab.run("down", check=False, timeout=180)
            if down.returncode != 0:
                print("chaos: `jailover-lab down` failed: %s%s" % (down.stdout, down.stderr),
                      flush=True)
                return False
        return True

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    exit_code = 1
    try:
        up_args = ["up", "--lease_proxy"] + (["--coordinators", "3", "--store", "etcd"]
                                             if a.store == "etcd" else [])
        up_args += a.lab_arg
        up = True
        lab.run(*up_args, timeout=240)
        lab.load()
        log("chaos: seed %d, %d cycles%s, %s lab (%s), lease ttl %.0f s; work %s" %
            (seed, a.cycles, " from cycle %d" % a.from_cycle if a.from_cycle > 1 else "", a.store,
             ", ".join(lab.coordinator_hosts()), ttl, work))
        log("machine: %d CPUs, kernel %s; jailover %s (a seed replays the faults of this "
            "version of bench/chaos.py)" % (os.cpu_count(), os.uname().release, source_commit()))
        apply_jails(lab, work)
        sampler = VipSampler(lab)
        sampler.start()
        clients = [Client(lab, n, vip, work) for n, _, _, vip, _ in JAILS]
        for c in clients:
            c.start()
        time.sleep(2)
        log("%-5s %-62s %6s %7s %8s %8s %6s %5s %5s %7s  %s" %
            ("cycle", "fault", "hold", "conv", "gap", "recov", "acked", "lost", "dual",
             "dualvip", "result"))
        stop_run = False
        previous_end = now()
        for cycle in range(1, a.cycles + 1):
            faults, hold, offset = plan_cycle(lab, rng, allowed, a.overlap, ttl)
            if cycle < a.from_cycle:
                continue
            control_plane = all(f.control_plane for f in faults)
            before = {c.jail: len(c.acks()) for c in clients}
            since = previous_end
            start = now()
            error = ""
            try:
                faults[0].apply()
                if len(faults) > 1:
                    time.sleep(offset)
                    faults[1].apply()
                time.sleep(max(0, hold - offset))
                heal_start = now()
                for f in faults:
                    f.heal()
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                error = "fault tool failed: %s" % e
                heal_start = now()
            healed = now()
            ok, conv, why, readmitted = converge(lab, clients, healed, healed + CONVERGE_BOUND_S,
                                                 log)
            end = now()
            # The checker, on the whole history so far.
            lost = 0
            dual = 0
            problems = []
            if error:
                problems.append(error)
            if not ok:
                problems.append("did not converge within %d s: %s" % (CONVERGE_BOUND_S, why))
            longest = (0, 0, 0)
            recovery = 0
            raw_recovery = 0
            blocked = any(f.blocks_moves for f in faults)
            for c in clients:
                code, text = c.check()
                if code != 0:
                    if "MISSING" in text:
                        lost += 1
                    if "after a newer one" in text or "same epoch" in text:
                        dual += 1
                    problems.append("%s: %s" % (c.jail, text.strip().replace("\n", "; ")))
                acks = c.acks()
                g = gaps_in(acks, int(since * 1000), int(end * 1000))
                if g[0] > longest[0]:
                    longest = g
                args = (acks, int(since * 1000), int(start * 1000), int(heal_start * 1000),
                        int(end * 1000))
                raw_recovery = max(raw_recovery, recovery_ms(*args))
                recovery = max(recovery, recovery_ms(
                    *args, moves_from_ms=int(heal_start * 1000) if blocked else None))
            if control_plane and longest[0] > CONTROL_PLANE_GAP_MS:
                problems.append("a control-plane fault alone gave a client a gap of %d ms" %
                                longest[0])
            acked = sum(len(c.acks()) - before[c.jail] for c in clients)
            dvip = sampler.dual_ms(start, end)
            recovered = ok and recovery <= RECOVERY_TARGET_S * 1000
            recovered_from_fault = ok and raw_recovery <= RECOVERY_TARGET_S * 1000
            result = "ok" if not problems else "FAIL"
            name = " + ".join(f.describe() for f in faults)
            log("%-5d %-62s %5.1fs %6.1fs %6dms %6dms %6d %5s %5s %5dms  %s%s" %
                (cycle, name[:62], hold, conv, longest[0], recovery, acked,
                 "yes" if lost else "0", "yes" if dual else "0", dvip, result,
                 " (readmitted %s)" % " ".join(sorted(readmitted)) if readmitted else ""))
            results.append({"cycle": cycle, "fault": name, "hold": hold, "converged": ok,
                            "converge_s": conv, "gap_ms": longest[0], "recovery_ms": recovery,
                            "recovery_from_fault_ms": raw_recovery,
                            "recovered_from_fault": recovered_from_fault,
                            "acked": acked,
                            "lost": lost, "dual": dual, "dual_vip_ms": dvip,
                            "recovered": recovered, "problems": problems,
                            "readmitted": sorted(readmitted)})
            if (a.keep_all or not recovered) and not problems:
                # A slow cycle keeps its logs too: where did the time go?
                save_evidence(lab, work, work, cycle, clients, sampler, start)
            if problems:
                d = save_evidence(lab, work, work, cycle, clients, sampler, start)
                for line in problems:
                    log("      %s" % line)
                log("      evidence in %s; replay: bench/chaos.sh %d %d%s (or from this cycle on: "
                    "bench/chaos.sh %d %d%s --from_cycle %d)" %
                    (d, cycle, seed, " --store etcd" if a.store == "etcd" else "",
                     a.cycles, seed, " --store etcd" if a.store == "etcd" else "", cycle))
                if lost or dual or not ok:
                    stop_run = True
            if stop_run:
                break
            previous_end = now()
        # The summary.
        n = len(results)
        failed = [r for r in results if r["problems"]]
        lost_runs = sum(1 for r in results if r["lost"])
        dual_runs = sum(1 for r in results if r["dual"])
        within = sum(1 for r in results if r["recovered"])
        within_raw = sum(1 for r in results if r["recovered_from_fault"])
        log("summary: seed %d%s, %d of %d cycles run, %d failed; acknowledged %d records; cycles "
            "with lost records %d, with a dual writer or stale acknowledgement %d; recovered "
            "within %d s: %d of %d (%.1f%%; counting moves held by a storage or only-coordinator "
            "outage from the fault, not its heal: %d, %.1f%%); dual-VIP time %d ms in total" %
            (seed, " from cycle %d" % a.from_cycle if a.from_cycle > 1 else "", n,
             a.cycles - a.from_cycle + 1, len(failed), sum(len(c.acks()) for c in clients), lost_runs,
             dual_runs, RECOVERY_TARGET_S, within, n, 100.0 * within / max(n, 1), within_raw,
             100.0 * within_raw / max(n, 1), sum(r["dual_vip_ms"] for r in results)))
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump({"seed": seed, "store": a.store, "cycles": results}, f, indent=1)
        if a.expect_violation:
            exit_code = 0 if dual_runs or lost_runs else 1
            log("checker test: %s" % ("a violation was reported, as it must be" if exit_code == 0
                                      else "NO violation reported"))
        else:
            exit_code = 0 if not failed and n == a.cycles else 1
    finally:
        if not cleanup():
            exit_code = 1
        logf.close()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

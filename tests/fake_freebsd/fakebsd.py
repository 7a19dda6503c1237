#!/usr/bin/python3
"""A fake FreeBSD userland for tests on Linux.

One script answers to the names of the tools the FreeBSD driver runs: jail,
jls, jexec, rctl, mdconfig, newfs, ggated, ggatec, fsck_ufs, mount, umount,
ifconfig and sysctl. A test makes a directory ROOT/bin with a symlink per
tool name pointing here and puts ROOT/bin first in the agent's tool PATH
(--freebsd_tool_path). The script takes its state from ROOT/state/world.json
(ROOT is found from the path it was run by), so it needs no environment
variable: the agent gives tools a clean environment.

Outputs, messages and exit codes follow ../shared/freebsd-reference.md
(built from FreeBSD's sources). What this fake does NOT do: run exec.start
inside a jail, move any real block, or talk CARP on a wire. It keeps the
bookkeeping the real tools show: jails and jids, md units, ggatec providers,
mounts, CARP vhids and states, and one real daemon per ggated with a locked
pidfile in its own process group, so the driver's fencing (stop the group,
rewrite the exports file, start again) runs for real.

Extra commands for tests, run as `fakebsd.py ROOT COMMAND ...`:
  carp-state IF VHID MASTER|BACKUP|INIT   set the CARP state ifconfig shows
  ggated-pids                             print the pid of every live ggated
  show                                    print world.json
Every tool run is appended to ROOT/state/calls.log, one argv per line.
"""

import errno
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

MAGIC = b"FAKEUFS2"  # written by newfs at offset 0, checked by fsck_ufs
BASE_MOUNTS = [
    ["/dev/ada0p2", "/", "ufs", "rw", "1", "1"],
    ["devfs", "/dev", "devfs", "rw,multilabel", "0", "0"],
]
DEFAULT_WORLD = {
    "next_jid": 1,
    "jails": {},
    "rctl": {},
    "md": {},
    "ggate": {},
    "ggated": {},
    "mounts": [],
    # This host's own address: the one ggated's exports file must name for
    # ggatec create to be let in.
    "host_address": "198.18.0.11",
    "interfaces": {"em0": {"inet": "198.18.0.11", "vhids": {}}},
    "sysctl": {"net.inet.carp.preempt": "0", "net.inet.carp.allow": "1"},
}


class Fail(Exception):
    """Ends the tool: stderr text (may be empty), exit code, optional stdout."""

    def __init__(self, code, stderr="", stdout=""):
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


class World:
    """world.json under an exclusive lock for the whole tool run."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.lock_fd = os.open(os.path.join(state_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.path = os.path.join(state_dir, "world.json")
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = json.loads(json.dumps(DEFAULT_WORLD))

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def unlock(self):
        os.close(self.lock_fd)


def pidfile_locked(path):
    """True when some process holds pidfile(3)'s exclusive lock on `path`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def humanize(size):
    """humanize_number(6, HN_AUTOSCALE, HN_B|HN_NOSPACE|HN_DECIMAL), base 1024."""
    units = ["B", "K", "M", "G", "T", "P"]
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if unit > 0 and value < 10:
        text = "%.1f%s" % (value, units[unit])
    else:
        text = "%d%s" % (round(value), units[unit])
    return "%6s" % text


def need(args, count, usage):
    if len(args) < count:
        raise Fail(64, "usage: %s\n" % usage)


# ---------------------------------------------------------------------------
# jail, jls, jexec, rctl

CONF_VALUE = re.compile(r'^\s*([A-Za-z0-9_.]+)\s*=\s*"((?:[^"\\]|\\.)*)";\s*$')
CONF_FLAG = re.compile(r"^\s*([A-Za-z0-9_.]+);\s*$")


def parse_conf(path, name):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise Fail(1, "jail: %s: %s\n" % (path, e.strerror))
    params = {}
    inside = False
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not inside:
            if stripped == name + " {":
                inside = True
            continue
        if stripped == "}":
            return params
        m = CONF_VALUE.match(line)
        if m:
            params[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(2))
            continue
        m = CONF_FLAG.match(line)
        if m:
            params[m.group(1)] = True
            continue
        raise Fail(1, "jail: %s: syntax error near \"%s\"\n" % (path, stripped))
    raise Fail(1, 'jail: "%s" not found\n' % name)


def jail_by_name(world, name):
    return world.data["jails"].get(name)


def tool_jail(world, args):
    conf = None
    create = remove = force = print_jid = False
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-f":
            need(args, i + 2, "jail [-f file] -c|-r|-R name")
            conf = args[i + 1]
            i += 2
            continue
        if a.startswith("-") and len(a) > 1:
            for c in a[1:]:
                if c == "c":
                    create = True
                elif c == "r":
                    remove = True
                elif c == "R":
                    force = True
                elif c == "i":
                    print_jid = True
                else:
                    raise Fail(1, "jail: illegal option -- %s\n" % c)
            i += 1
            continue
        rest.append(a)
        i += 1
    if len(rest) != 1 or (create + remove + force) != 1:
        raise Fail(1, "usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]\n")
    name = rest[0]
    jails = world.data["jails"]
    if create:
        params = parse_conf(conf or "/etc/jail.conf", name)
        if name in jails:
            raise Fail(1, 'jail: "%s" already exists\n' % name)
        path = params.get("path", "")
        if not path or not os.path.isdir(path):
            raise Fail(1, "jail: %s: path %s: No such file or directory\n" % (name, path))
        jid = world.data["next_jid"]
        world.data["next_jid"] = jid + 1
        ip4 = params.get("ip4.addr", "")
        jails[name] = {
            "jid": jid,
            "path": path,
            "hostname": params.get("host.hostname", ""),
            "ip4": [a.strip() for a in ip4.split(",") if a.strip()],
            "conf": conf,
            "exec_start": params.get("exec.start", ""),
        }
        if params.get("mount.devfs") is True:
            world.data["mounts"].append(
                ["devfs", os.path.join(path, "dev"), "devfs", "rw,multilabel", "0", "0"])
        return ("%d\n" % jid) if print_jid else ""
    if name not in jails:
        raise Fail(1, 'jail: "%s" not found\n' % name)
    path = jails[name]["path"]
    del jails[name]
    if remove:  # jail -r unmounts what mount.devfs mounted; -R does not
        dev = os.path.join(path, "dev")
        world.data["mounts"] = [m for m in world.data["mounts"] if m[1] != dev]
    return ""


def tool_jls(world, args):
    if args != ["--libxo", "json", "-v"]:
        raise Fail(1, "fake jls: only 'jls --libxo json -v' is implemented, got %s\n" % args)
    items = []
    for name in sorted(world.data["jails"], key=lambda n: world.data["jails"][n]["jid"]):
        j = world.data["jails"][name]
        items.append('{"jid":%d,"hostname":%s,"path":%s,"name":%s,"state":"ACTIVE","cpusetid":%d, '
                     '"ipv4_addrs": [%s]}' % (j["jid"], json.dumps(j["hostname"]),
                                             json.dumps(j["path"]), json.dumps(name),
                                             j["jid"] + 2, ",".join(json.dumps(a) for a in j["ip4"])))
    return '{"__version": "2", "jail-information": {"jail": [%s]}\n}\n' % ", ".join(items)


def tool_jexec(world, args):
    if args and args[0] == "-l":
        args = args[1:]
    need(args, 2, "jexec [-l] [-u username | -U username] jail [command ...]")
    target = args[0]
    found = None
    for name, j in world.data["jails"].items():
        if str(j["jid"]) == target or name == target:
            found = j
    if found is None:
        raise Fail(1, 'jexec: jail "%s" not found\n' % target)
    world.unlock()  # the command may run long; it does not touch the world
    try:
        done = subprocess.run(args[1:], cwd=found["path"], capture_output=True, timeout=600)
    except FileNotFoundError:
        raise Fail(1, "jexec: execvp: %s: No such file or directory\n" % args[1])
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    raise Fail(done.returncode)


def tool_rctl(world, args):
    need(args, 2, "rctl [-h] [-a rule | -l filter | -r filter | -u filter]")
    flag, rule = args[0], args[1]
    parts = rule.split(":")
    if len(parts) < 2 or parts[0] != "jail":
        raise Fail(1, "rctl: malformed rule '%s'\n" % rule)
    rules = world.data["rctl"].setdefault(parts[1], [])
    if flag == "-a":
        if len(parts) != 4:
            raise Fail(1, "rctl: malformed rule '%s'\n" % rule)
        rules.append(rule)
    elif flag == "-r":
        world.data["rctl"].pop(parts[1], None)
    else:
        raise Fail(1, "fake rctl: only -a and -r are implemented\n")
    return ""


# ---------------------------------------------------------------------------
# mdconfig, newfs, fsck_ufs

def md_line(unit, path):
    size = os.path.getsize(path) if os.path.exists(path) else 0
    return "md%s\tvnode\t%s\t%s\t\n" % (unit, humanize(size), path)


def tool_mdconfig(world, args):
    opts = {}
    flags = set()
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-t", "-f", "-u"):
            need(args, i + 2, "mdconfig -a -t vnode -f file [-u unit]")
            opts[a] = args[i + 1]
            i += 2
        elif a in ("-a", "-d", "-l", "-v"):
            flags.add(a)
            i += 1
        else:
            raise Fail(1, "mdconfig: illegal option -- %s\n" % a.lstrip("-"))
    md = world.data["md"]
    if "-a" in flags:
        if opts.get("-t") != "vnode" or "-f" not in opts or "-u" not in opts:
            raise Fail(1, "fake mdconfig: only -a -t vnode -f FILE -u N is implemented\n")
        unit = opts["-u"]
        if unit in md:
            raise Fail(1, "mdconfig: ioctl(/dev/mdctl): File exists\n")
        if not os.path.isfile(opts["-f"]):
            raise Fail(1, "mdconfig: %s: No such file or directory\n" % opts["-f"])
        md[unit] = os.path.realpath(opts["-f"])
        return ""  # -u N prints nothing
    if "-d" in flags:
        unit = opts.get("-u")
        if unit is None:
            raise Fail(1, "mdconfig: -d requires -u\n")
        if unit not in md:
            raise Fail(1, "mdconfig: ioctl(/dev/mdctl): No such file or directory\n")
        if any(m[0] == "/dev/md" + unit for m in world.data["mounts"]):
            raise Fail(1, "mdconfig: ioctl(/dev/mdctl): Device busy\n")
        del md[unit]
        return ""
    if "-l" in flags:
        if "-u" in opts:
            unit = opts["-u"]
            if unit not in md:
                raise Fail(255)
            return md_line(unit, md[unit])
        if "-f" in opts:
            want = os.path.realpath(opts["-f"])
            units = [u for u, p in md.items() if p == want]
            if not units:
                raise Fail(255)
            if "-v" in flags:
                return "".join(md_line(u, md[u]) for u in units)
            return "".join("md%s " % u for u in units) + "\n"
        if "-v" in flags:
            return "".join(md_line(u, md[u]) for u in sorted(md, key=int))
        return ("".join("md%s " % u for u in sorted(md, key=int)) + "\n") if md else ""
    raise Fail(1, "usage: mdconfig -a -t type ... | -d -u unit | -l [-v] [-u unit]\n")


def device_file(world, device):
    """The file behind /dev/mdN or /dev/ggateN, or None."""
    m = re.match(r"^/dev/md(\d+)$", device)
    if m:
        return world.data["md"].get(m.group(1))
    m = re.match(r"^/dev/ggate(\d+)$", device)
    if m and m.group(1) in world.data["ggate"]:
        g = world.data["ggate"][m.group(1)]
        return g["path"]
    return None


def tool_newfs(world, args):
    if len(args) != 2 or args[0] != "-U":
        raise Fail(1, "fake newfs: only 'newfs -U DEVICE' is implemented\n")
    path = device_file(world, args[1])
    if path is None:
        raise Fail(1, "newfs: %s: No such file or directory\n" % args[1])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.write(MAGIC)
    return ("%s: %.1fMB (%d sectors) block size 32768, fragment size 4096\n"
            "\tusing 4 cylinder groups of 16.00MB, 512 blks, 2048 inodes.\n"
            "\twith soft updates\n"
            "super-block backups (for fsck_ffs -b #) at:\n 192, 32960, 65728, 98496\n"
            % (args[1], size / 1048576.0, size // 512))


def tool_fsck_ufs(world, args):
    if len(args) != 2 or args[0] not in ("-p", "-y"):
        raise Fail(1, "fake fsck_ufs: only 'fsck_ufs -p|-y DEVICE' is implemented\n")
    device = args[1]
    path = device_file(world, device)
    if path is None:
        raise Fail(8, "fsck_ufs: Can't open %s: No such file or directory\n" % device)
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise Fail(8, "", "%s: BAD SUPER BLOCK: MAGIC NUMBER WRONG\n" % device)
    if args[0] == "-p":
        return "%s: FILE SYSTEM CLEAN; SKIPPING CHECKS\n%s: clean\n" % (device, device)
    return ("** %s\n** Phase 1 - Check Blocks and Sizes\n** Phase 2 - Check Pathnames\n"
            "** Phase 3 - Check Connectivity\n** Phase 4 - Check Reference Counts\n"
            "** Phase 5 - Check Cyl groups\n" % device)


# ---------------------------------------------------------------------------
# ggated, ggatec

def parse_exports(path):
    entries = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 3 or fields[1] not in ("RO", "WO", "RW"):
                raise ValueError("invalid line: %s" % line)
            entries.append(fields)
    return entries


def tool_ggated(world, args):
    pidfile = None
    port = "3080"
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a in ("-a", "-F", "-p", "-q", "-R", "-S"):
            need(args, i + 2, "ggated [-nv] [-a address] [-F pidfile] [-p port] [exports file]")
            if a == "-F":
                pidfile = args[i + 1]
            elif a == "-p":
                port = args[i + 1]
            i += 2
        else:
            raise Fail(1, "usage: ggated [-nv] [-a address] [-F pidfile] [-p port] [exports file]\n")
    exports = args[i] if i < len(args) else "/etc/gg.exports"
    pidfile = pidfile or "/var/run/ggated.pid"
    try:
        parse_exports(exports)
    except (OSError, ValueError) as e:
        # The real ggated logs this to syslog only.
        raise Fail(1, "")
    # pidfile_open(3): open and lock before daemon(3).
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise Fail(1, "")  # "Daemon already running" to syslog
    os.ftruncate(fd, 0)
    for other in world.data["ggated"].values():
        # (our own pidfile is locked by us now: flock locks per open file)
        if (other["pidfile"] != pidfile and other["port"] == port
                and pidfile_locked(other["pidfile"])):
            os.close(fd)
            raise Fail(1, "")  # bind: Address already in use (syslog)
    world.data["ggated"][pidfile] = {"port": port, "exports": exports, "pidfile": pidfile}
    world.save()
    world.unlock()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() != 0:
        os._exit(0)  # daemon(3): the parent exits 0
    os.setsid()  # the daemon leads its own process group, as with daemon(3)
    null = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.write(fd, b"%d\n" % os.getpid())  # pidfile_write(3)
    # Serve until SIGTERM/SIGKILL; the lock on the pidfile goes with us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        signal.pause()


def ggated_for_port(world, port):
    """The live ggated record listening on `port`, or None."""
    for record in world.data["ggated"].values():
        if record["port"] == port and pidfile_locked(record["pidfile"]):
            return record
    return None


def ggate_block(unit, g):
    size = os.path.getsize(g["path"]) if os.path.exists(g["path"]) else 0
    return ("       NAME: ggate%s\n       info: %s:%s %s\n     access: read-write\n"
            "    timeout: %s\nqueue_count: 0\n queue_size: 1024\n references: 2\n"
            "  mediasize: %d (%s)\n sectorsize: 512\n       mode: r1w1e1\n\n"
            % (unit, g["host"], g["port"], g["remote"], g["timeout"], size,
               humanize(size).strip()))


def tool_ggatec(world, args):
    need(args, 1, "ggatec create|rescue|destroy|list ...")
    command = args[0].lower()
    opts = {}
    flags = set()
    rest = []
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("-o", "-p", "-q", "-R", "-S", "-s", "-t", "-u"):
            need(args, i + 2, "ggatec ...")
            opts[a] = args[i + 1]
            i += 2
        elif a in ("-f", "-n", "-v"):
            flags.add(a)
            i += 1
        else:
            rest.append(a)
            i += 1
    ggate = world.data["ggate"]
    if command == "list":
        units = [opts["-u"]] if "-u" in opts else sorted(ggate, key=int)
        units = [u for u in units if u in ggate]
        if "-v" in flags:
            return "".join(ggate_block(u, ggate[u]) for u in units)
        return "".join("ggate%s\n" % u for u in units)
    if command == "destroy":
        unit = opts.get("-u")
        if unit is None:
            raise Fail(1, "Required unit number.\n")
        if unit not in ggate:
            raise Fail(1, "", "error: ggatec: ioctl(/dev/ggctl): No such file or directory.\n"
                              "error: Exiting.\n")
        busy = any(m[0] == "/dev/ggate" + unit for m in world.data["mounts"])
        if busy and "-f" not in flags:
            raise Fail(1, "", "error: ggatec: ioctl(/dev/ggctl): Device busy.\nerror: Exiting.\n")
        del ggate[unit]
        return ""
    if command in ("create", "rescue"):
        if len(rest) != 2:
            raise Fail(1, "usage: ggatec %s ... host path\n" % command)
        host, remote = rest
        port = opts.get("-p", "3080")
        unit = opts.get("-u")
        if command == "rescue":
            if unit not in ggate:
                raise Fail(1, "")
            return ""
        if unit is None:
            unit = str(max([int(u) for u in ggate] + [-1]) + 1)
        if unit in ggate:
            raise Fail(1, "")  # EEXIST, logged to syslog only
        server = ggated_for_port(world, port)
        if server is None:
            raise Fail(1, "")  # Cannot connect: Connection refused (syslog)
        try:
            entries = parse_exports(server["exports"])
        except (OSError, ValueError):
            raise Fail(1, "")
        me = world.data["host_address"]
        if not any(e[0] == me and e[1] == "RW" and e[2] == remote for e in entries):
            raise Fail(1, "")  # the server refuses us (EPERM), syslog only
        ggate[unit] = {"host": host, "port": port, "remote": remote, "path": remote,
                       "timeout": opts.get("-t", "0")}
        return "" if "-u" in opts else "ggate%s\n" % unit
    raise Fail(1, "usage: ggatec create|rescue|destroy|list ...\n")


# ---------------------------------------------------------------------------
# mount, umount

def tool_mount(world, args):
    if args == ["-p"]:
        out = []
        for m in BASE_MOUNTS + world.data["mounts"]:
            out.append("%s\t\t%s\t\t%s\t%s\t\t%s %s\n" % (
                m[0], m[1].replace(" ", "\\040"), m[2], m[3], m[4], m[5]))
        return "".join(out)
    if len(args) == 4 and args[0] == "-t" and args[1] == "ufs":
        device, point = args[2], args[3]
        if device_file(world, device) is None:
            raise Fail(1, "mount: %s: No such file or directory\n" % device)
        if not os.path.isdir(point):
            raise Fail(1, "mount: %s: No such file or directory\n" % point)
        if any(m[0] == device for m in world.data["mounts"]):
            raise Fail(1, "mount: %s: Device busy\n" % device)
        world.data["mounts"].append([device, point, "ufs", "rw", "2", "2"])
        return ""
    raise Fail(1, "fake mount: only 'mount -p' and 'mount -t ufs DEV DIR' are implemented\n")


def tool_umount(world, args):
    force = "-f" in args
    points = [a for a in args if a != "-f"]
    if len(points) != 1:
        raise Fail(1, "usage: umount [-fv] special ... | node ...\n")
    point = points[0]
    mounts = world.data["mounts"]
    for index in range(len(mounts) - 1, -1, -1):
        if mounts[index][1] == point:
            below = [m for m in mounts if m[1].startswith(point.rstrip("/") + "/")]
            if below and not force:
                raise Fail(1, "umount: unmount of %s failed: Device busy\n" % point)
            del mounts[index]
            return ""
    raise Fail(1, "umount: %s: not a file system root directory\n" % point)


# ---------------------------------------------------------------------------
# ifconfig, sysctl

def show_interface(name, iface):
    out = ["%s: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> metric 0 mtu 1500\n"
           % name,
           "\tether 58:9c:fc:10:ff:c4\n",
           "\tinet %s netmask 0xfffe0000 broadcast 198.19.255.255\n" % iface["inet"]]
    vhids = sorted(iface["vhids"], key=int)
    for vhid in vhids:
        for address in iface["vhids"][vhid]["addresses"]:
            out.append("\tinet %s netmask 0xffffffff broadcast %s vhid %s\n"
                       % (address, address, vhid))
    for vhid in vhids:
        v = iface["vhids"][vhid]
        out.append("\tcarp: %s vhid %s advbase %s advskew %s\n"
                   % (v["state"], vhid, v["advbase"], v["advskew"]))
        out.append("\t      peer 224.0.0.18 peer6 ff02::12\n")
    out.append("\tmedia: Ethernet autoselect (1000baseT <full-duplex>)\n\tstatus: active\n")
    return "".join(out)


def tool_ifconfig(world, args):
    need(args, 1, "ifconfig interface ...")
    name = args[0]
    iface = world.data["interfaces"].get(name)
    if iface is None:
        raise Fail(1, "ifconfig: interface %s does not exist\n" % name)
    if len(args) == 1:
        return show_interface(name, iface)
    rest = args[1:]
    if len(rest) == 3 and rest[0] == "inet" and rest[2] == "-alias":
        for vhid, v in list(iface["vhids"].items()):
            if rest[1] in v["addresses"]:
                v["addresses"].remove(rest[1])
                if not v["addresses"]:
                    del iface["vhids"][vhid]  # the last address takes the vhid with it
                return ""
        raise Fail(1, "ifconfig: ioctl (SIOCDIFADDR): Can't assign requested address\n")
    if rest[0] != "vhid" or len(rest) < 2:
        raise Fail(1, "fake ifconfig: unsupported arguments %s\n" % shlex.join(rest))
    vhid = rest[1]
    v = iface["vhids"].get(vhid)
    settings = {}
    address = None
    i = 2
    while i < len(rest):
        key = rest[i]
        if key in ("advbase", "advskew", "pass") and i + 1 < len(rest):
            settings[key] = rest[i + 1]
            i += 2
        elif key == "alias" and i + 1 < len(rest):
            address = rest[i + 1].split("/")[0]
            i += 2
        elif key == "state" and i + 1 < len(rest):
            # ifcarp.c: matched case-insensitively against the state names.
            if rest[i + 1].upper() not in ("INIT", "BACKUP", "MASTER"):
                raise Fail(1, "ifconfig: unknown state\n")
            settings[key] = rest[i + 1].upper()
            i += 2
        else:
            raise Fail(1, "ifconfig: %s: bad value\n" % key)
    if v is None:
        v = {"advbase": "1", "advskew": "0", "pass": "", "addresses": [], "state": "MASTER"}
        iface["vhids"][vhid] = v
    for key, value in settings.items():
        if key == "state":
            # carp(4) ignores a state change while the vhid is INIT.
            if v["state"] != "INIT":
                v["state"] = value
            continue
        v[key] = value
    if address is not None:
        for other, ov in iface["vhids"].items():
            if other != vhid and address in ov["addresses"]:
                raise Fail(1, "ifconfig: ioctl (SIOCAIFADDR): File exists\n")
        if address not in v["addresses"]:
            v["addresses"].append(address)
    return ""


def tool_sysctl(world, args):
    out = []
    for arg in args:
        name, _, value = arg.partition("=")
        if name not in world.data["sysctl"]:
            raise Fail(1, "sysctl: unknown oid '%s'\n" % name)
        old = world.data["sysctl"][name]
        if value:
            world.data["sysctl"][name] = value
            out.append("%s: %s -> %s\n" % (name, old, value))
        else:
            out.append("%s: %s\n" % (name, old))
    return "".join(out)


TOOLS = {
    "jail": tool_jail, "jls": tool_jls, "jexec": tool_jexec, "rctl": tool_rctl,
    "mdconfig": tool_mdconfig, "newfs": tool_newfs, "fsck_ufs": tool_fsck_ufs,
    "ggated": tool_ggated, "ggatec": tool_ggatec, "mount": tool_mount, "umount": tool_umount,
    "ifconfig": tool_ifconfig, "sysctl": tool_sysctl,
}


def admin(root, args):
    world = World(os.path.join(root, "state"))
    if args[:1] == ["carp-state"] and len(args) == 4:
        iface = world.data["interfaces"].get(args[1])
        if iface is None or args[2] not in iface["vhids"]:
            print("no vhid %s on %s" % (args[2], args[1]), file=sys.stderr)
            return 1
        iface["vhids"][args[2]]["state"] = args[3]
        world.save()
        return 0
    if args == ["ggated-pids"]:
        for record in world.data["ggated"].values():
            if pidfile_locked(record["pidfile"]):
                with open(record["pidfile"]) as f:
                    print(f.read().strip())
        return 0
    if args == ["show"]:
        print(json.dumps(world.data, indent=1, sort_keys=True))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


def main():
    invoked = os.path.abspath(sys.argv[0])
    tool = os.path.basename(invoked)
    if tool not in TOOLS:
        if len(sys.argv) < 3:
            print(__doc__, file=sys.stderr)
            return 2
        return admin(sys.argv[1], sys.argv[2:])
    root = os.path.dirname(os.path.dirname(invoked))
    world = World(os.path.join(root, "state"))
    with open(os.path.join(world.state_dir, "calls.log"), "a") as log:
        log.write(shlex.join([tool] + sys.argv[1:]) + "\n")
    try:
        out = TOOLS[tool](world, sys.argv[1:])
        world.save()
        sys.stdout.write(out)
        return 0
    except Fail as f:
        sys.stdout.write(f.stdout)
        sys.stderr.write(f.stderr)
        return f.code


if __name__ == "__main__":
    sys.exit(main())

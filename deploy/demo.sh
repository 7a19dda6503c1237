#!/usr/bin/env bash
# The demo: a real jailover cluster in network namespaces on this machine
# (root), the sample append-log jail on h1 with h2 and h3 as standbys, a
# client writing through the VIP, then h1 dies (every process and its link)
# and the jail fails over. Prints the failover timeline from the event log
# and checks that every acknowledged record survived. Leaves nothing behind.
#
#   deploy/demo.sh [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
who=demo
build_dir=${1:-}
not_built_hint="; run deploy/quickstart.sh demo"
# shellcheck source=deploy/lab/env.sh
source "$here/lab/env.sh"

work=$(mktemp -d /tmp/jailover-demo.XXXXXX)
state=$work/lab.json
client_pid=""
cleanup() {
  set +e
  [[ -n "$client_pid" ]] && kill -TERM "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
  if [[ -s "$state" ]]; then
    printf '\n==> tearing the lab down\n'
    "$lab_bin" --state_file "$state" down | sed 's/^/    /'
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
now_ms() { date +%s%3N; }
wait_for() {  # SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || { echo "demo: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}
running_on() { [[ $(jail_state) == "JAIL_PHASE_RUNNING $1 $2" ]]; }
running_on_standby() { [[ $(jail_state) =~ ^JAIL_PHASE_RUNNING\ (h2|h3)\ 2$ ]]; }
acked_at_least() { (($(acked) >= $1)); }

step "1/6 building the lab: coordinator, storage s1, jail hosts h1-h3, client c1 (198.18.0.0/24, an isolated bridge)"
lab up | sed 's/^/    /'
echo "    every gRPC call on mutual TLS: the lab's CA in $(lab_pki); agents take orders only from"
echo "    the coordinator's certificate, jailoverctl here is operator/lab (docs/security.md)"

step "2/6 the sample jail: an append-log service on an ext4 disk image served by s1"
"$here/lab/sample-jail.sh" "$state" "$build" | sed 's/^/    /'
wait_for 60 "the jail to run on h1" running_on h1 1
ctl jail list | sed 's/^/    /'

step "3/6 a client in c1 appends records to 198.18.0.100:7000 (each acknowledged only once fsync'd)"
lab exec c1 -- "$client_bin" write --target 198.18.0.100:7000 --run-until-signal \
  --interval-ms 20 --acked "$work/acked" >"$work/client.log" 2>&1 &
client_pid=$!
wait_for 30 "the first acknowledgements" acked_at_least 50
echo "    $(acked) records acknowledged so far; the service answers on the VIP from h1"

step "4/6 killing h1: every process on it (agent, jail, disk client, CARP) and its network link"
killed_ms=$(now_ms)
lab kill-host h1 | sed 's/^/    /'
wait_for 60 "the jail to run on a standby" running_on_standby
read -r _ standby epoch <<<"$(jail_state)"
acked_before=$(acked)
wait_for 30 "acknowledgements after the failover" acked_at_least $((acked_before + 50))
echo "    jail web runs on $standby at epoch $epoch; h1 is $(ctl -o json host get h1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["host"]["status"]["state"])')"

step "5/6 the failover, from the event log (times from the kill of h1)"
ctl -o json events --jail web >"$work/events.jsonl"
ctl -o json events --host h1 --type host.state >>"$work/events.jsonl"
python3 - "$killed_ms" "$work/events.jsonl" "$work/acked" <<'PY'
import json, re, sys
from datetime import datetime
killed = int(sys.argv[1]) / 1000.0
def t(event):
    # RFC 3339 with up to nanoseconds; datetime takes microseconds.
    text = re.sub(r"(\.\d{6})\d*", r"\1", event["time"]).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()
events = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
failover = next(e["operationId"] for e in events
                if e.get("type") == "operation.state" and "failover" in e.get("reason", "")
                and e.get("toValue") == "PENDING")
rows = []
for e in events:
    if e.get("type") == "host.state" and e.get("toValue") == "UNREACHABLE":
        rows.append((t(e), "detected: h1's lease expired (UNREACHABLE)"))
    if e.get("operationId") == failover and e.get("type") == "operation.step":
        label = {"fence": "fenced: s1 grants the disk to the standby only (new epoch)",
                 "import": "imported: the standby attached the disk",
                 "fsck": "checked: fsck", "mount": "mounted",
                 "start": "started: the jail runs on the standby",
                 "vip": "VIP: the standby took the lowest CARP advskew",
                 "probe": "ready: the jail runs and the standby is CARP master"}.get(e.get("step"))
        if label:
            rows.append((t(e), label))
acks = [int(line.split()[1]) / 1000.0 for line in open(sys.argv[3]) if line.strip()]
# The outage ends with the first acknowledgement after the long gap (a record
# in flight as h1 was killed may still have been acknowledged by h1).
resumed = [b for a, b in zip(acks, acks[1:]) if b > killed and b - a > 0.5]
if resumed:
    rows.append((resumed[0], "first good answer: the client's records are acknowledged again"))
for when, label in sorted(rows):
    print(f"    +{when - killed:6.2f} s  {label}")
PY
lab exec c1 -- "$client_bin" outage --acked "$work/acked" | sed 's/^/    client saw a /'

step "6/6 every acknowledged record must still be there"
kill -TERM "$client_pid" && wait "$client_pid" || true
client_pid=""
lab exec c1 -- "$client_bin" check --target 198.18.0.100:7000 --acked "$work/acked" | sed 's/^/    /'

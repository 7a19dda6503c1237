#!/usr/bin/env bash
# The failover benchmark (root; the lab of deploy/lab). In one run, N rounds
# (default 10), each alternating three kinds, each in a fresh lab:
#   a  bare ucarp IP failover: an append-log server on h1 and h2 behind a
#      ucarp VIP (h1 advskew 0, h2 100, advbase 1, deadratio 3, preempt, the
#      flags jailover's Linux driver uses), h1 killed; outage = the longest
#      gap between two acknowledgements the client saw.
#   b  jailover failover: the sample jail on h1 (h2, h3 standbys), h1 killed;
#      outage = the client's longest gap, and every acknowledged record must
#      be present afterwards.
#   c  planned migration h1 -> h2 with the client writing; outage the same.
# Prints min/median/p95/max per kind and the ratios b/a.
#
#   bench/failover.sh [ROUNDS] [BUILD_DIR]
set -euo pipefail

rounds=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${2:-$root/build}" && pwd)
lab_bin=$build/deploy/lab/jailover-lab
ctl_bin=$build/coordinator/cli/jailoverctl
server_bin=$build/tools/jailover-applog-server
client_bin=$build/tools/jailover-applog-client
for b in "$lab_bin" "$ctl_bin" "$server_bin" "$client_bin"; do
  [[ -x "$b" ]] || { echo "bench: $b not built" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root" >&2; exit 1; }
[[ "$rounds" =~ ^[0-9]+$ && "$rounds" -ge 1 ]] || { echo "bench: ROUNDS must be >= 1" >&2; exit 2; }

work=$(mktemp -d /tmp/jailover-bench.XXXXXX)
state=$work/lab.json
client_pid=""
cleanup() {
  set +e
  [[ -n "$client_pid" ]] && kill -TERM "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
  [[ -s "$state" ]] && "$lab_bin" --state_file "$state" down >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

lab() { "$lab_bin" --state_file "$state" "$@"; }
ctl() { lab exec c1 -- "$ctl_bin" --coordinator 198.18.0.2:7430 --insecure "$@"; }
acked() { [[ -f "$work/acked" ]] && wc -l <"$work/acked" || echo 0; }
wait_acks() {  # N: until N more acknowledgements (60 s at most)
  local target=$(($(acked) + $1)) deadline=$((SECONDS + 60))
  until (($(acked) >= target)); do
    ((SECONDS < deadline)) || { echo "bench: no acknowledgements" >&2; exit 1; }
    sleep 0.05
  done
}
jail_is() {  # PATTERN: the jail's "PHASE HOST EPOCH" matches
  local s
  s=$(ctl -o json jail get web 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["jail"].get("status", {})
print(s.get("phase", "-"), s.get("host", "-"), s.get("epoch", "0"))' 2>/dev/null) || return 1
  [[ "$s" =~ $1 ]]
}
wait_jail() {  # PATTERN
  local deadline=$((SECONDS + 90))
  until jail_is "$1"; do
    ((SECONDS < deadline)) || { echo "bench: jail never matched $1" >&2; exit 1; }
    sleep 0.1
  done
}
start_client() {  # TARGET
  rm -f "$work/acked"
  lab exec c1 -- "$client_bin" write --target "$1" --run-until-signal --interval-ms 10 \
    --acked "$work/acked" >"$work/client.log" 2>&1 &
  client_pid=$!
}
stop_client() {
  kill -TERM "$client_pid" 2>/dev/null || true
  wait "$client_pid" 2>/dev/null || true
  client_pid=""
}
# The longest gap between two acknowledgements, in ms.
outage() {
  python3 -c '
import sys
ms = [int(line.split()[1]) for line in open(sys.argv[1]) if line.strip()]
print(max(b - a for a, b in zip(ms, ms[1:])))' "$work/acked"
}
lab_dir() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"])' "$state"; }

apply_sample_jail() {
  "$root/deploy/lab/sample-jail.sh" "$state" "$build" >/dev/null
  wait_jail "^JAIL_PHASE_RUNNING h1 1$"
}

# a: ucarp alone, as the Linux driver runs it.
round_bare() {
  lab up >/dev/null
  local dir
  dir=$(lab_dir)
  printf '#!/bin/sh\nip addr add "$2/32" dev "$1"\n' >"$work/up.sh"
  printf '#!/bin/sh\nip addr del "$2/32" dev "$1"\n' >"$work/down.sh"
  printf 'bench' >"$work/pass"
  chmod 755 "$work/up.sh" "$work/down.sh"
  local host address skew
  for host in h1 h2; do
    address=198.18.0.1${host#h}
    skew=$([[ $host == h1 ]] && echo 0 || echo 100)
    lab exec "$host" -- "$server_bin" --listen 198.18.0.120:7000 --file "$dir/$host/bare.log" \
      >/dev/null 2>&1 &
    lab exec "$host" -- ucarp -i eth0 -s "$address" -v 20 -o "$work/pass" -a 198.18.0.120 \
      -u "$work/up.sh" -d "$work/down.sh" -b 1 -k "$skew" -r 3 -z -P >/dev/null 2>&1 &
  done
  start_client 198.18.0.120:7000
  wait_acks 100
  lab kill-host h1 >/dev/null
  wait_acks 100
  stop_client
  outage
  lab down >/dev/null
}

# b: jailover's failover of a killed host.
round_failover() {
  lab up >/dev/null
  apply_sample_jail
  start_client 198.18.0.100:7000
  wait_acks 100
  lab kill-host h1 >/dev/null
  wait_jail "^JAIL_PHASE_RUNNING h[23] 2$"
  wait_acks 100
  stop_client
  lab exec c1 -- "$client_bin" check --target 198.18.0.100:7000 --acked "$work/acked" >&2
  outage
  lab down >/dev/null
}

# c: a planned migration with the client writing.
round_migration() {
  lab up >/dev/null
  apply_sample_jail
  start_client 198.18.0.100:7000
  wait_acks 100
  ctl migrate web --to h2 --reason bench --wait >/dev/null
  wait_acks 100
  stop_client
  lab exec c1 -- "$client_bin" check --target 198.18.0.100:7000 --acked "$work/acked" >&2
  outage
  lab down >/dev/null
}

echo "jailover failover benchmark: $rounds rounds of (a) bare ucarp, (b) jailover failover, (c) planned migration"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
: >"$work/results"
for round in $(seq "$rounds"); do
  a=$(round_bare)
  b=$(round_failover)
  c=$(round_migration)
  printf '  round %2d: a %5d ms   b %5d ms   c %5d ms\n' "$round" "$a" "$b" "$c"
  printf 'a %s\nb %s\nc %s\n' "$a" "$b" "$c" >>"$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
values = {"a": [], "b": [], "c": []}
for line in open(sys.argv[1]):
    kind, ms = line.split()
    values[kind].append(int(ms))
def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
names = {"a": "bare ucarp IP failover", "b": "jailover failover", "c": "planned migration"}
print("\nclient-observed outage (ms)      min  median     p95     max")
for kind in "abc":
    xs = values[kind]
    print(f"  ({kind}) {names[kind]:<24} {min(xs):6d} {statistics.median(xs):7.0f} {p95(xs):7d} {max(xs):7d}")
a, b = values["a"], values["b"]
print(f"\nratio b/a: median {statistics.median(b) / statistics.median(a):.2f}, p95 {p95(b) / p95(a):.2f}"
      "   (targets: median <= 1.5, p95 <= 2.0; planned migration median <= 1000 ms)")
PY

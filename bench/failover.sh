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
build_arg=${2:-}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

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
  check_records 198.18.0.100:7000
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
  check_records 198.18.0.100:7000
  outage
  lab down >/dev/null
}

echo "jailover failover benchmark: $rounds rounds of (a) bare ucarp, (b) jailover failover, (c) planned migration"
print_machine
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

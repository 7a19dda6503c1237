# Shared by the lab benchmarks (bench/failover.sh, bench/takeover.sh): source
# it after setting `rounds` and `build_arg` (the BUILD_DIR argument, may be
# empty) and, optionally, `coordinators` (jailoverctl's --coordinator; default
# the single-coordinator lab's). It checks the binaries, root and ROUNDS,
# makes the work directory with a trap that stops the client and takes the
# lab down on any exit, and defines the helpers below.

who=bench
build_dir=$build_arg
# shellcheck source=deploy/lab/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/lab/env.sh"
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

lab_dir() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"])' "$state"; }
wait_acks() {  # N: until N more acknowledgements (60 s at most)
  local target=$(($(acked) + $1)) deadline=$((SECONDS + 60))
  until (($(acked) >= target)); do
    ((SECONDS < deadline)) || { echo "bench: no acknowledgements" >&2; exit 1; }
    sleep 0.05
  done
}
jail_is() { [[ "$(jail_state)" =~ $1 ]]; }  # PATTERN: the jail's "PHASE HOST EPOCH" matches
wait_jail() {  # PATTERN
  local deadline=$((SECONDS + 90))
  until jail_is "$1"; do
    ((SECONDS < deadline)) || { echo "bench: jail never matched $1" >&2; exit 1; }
    sleep 0.1
  done
}
start_client() {  # TARGET: the client in c1 appends every 10 ms until stopped
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
check_records() {  # TARGET: every acknowledged record is in the log (to stderr)
  lab exec c1 -- "$client_bin" check --target "$1" --acked "$work/acked" >&2
}
# The longest gap between two acknowledgements, in ms.
outage() {
  python3 -c '
import sys
ms = [int(line.split()[1]) for line in open(sys.argv[1]) if line.strip()]
print(max(b - a for a, b in zip(ms, ms[1:])))' "$work/acked"
}
apply_sample_jail() {  # the sample jail (deploy/lab/sample-jail.sh), until it runs on h1
  "$lab_root/deploy/lab/sample-jail.sh" "$state" "$build" >/dev/null
  wait_jail "^JAIL_PHASE_RUNNING h1 1$"
}
print_machine() {
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
}

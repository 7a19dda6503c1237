#!/usr/bin/env bash
# The coordinator takeover benchmark (root; the lab of deploy/lab with three
# coordinators on a three-member etcd cluster). Each round in a fresh lab:
# the sample jail runs on h1 with a client appending through its VIP; the
# leader's whole machine (ctl1: its coordinator and its etcd member) is
# killed. Measured: the time until a standby's /readyz says it leads, and
# the longest gap between two acknowledgements the client saw meanwhile (a
# coordinator takeover must not touch the data path). Checked: no agent
# fenced itself (all four READY on the new leader a lease ttl later) and
# every acknowledged record is present.
#
#   bench/takeover.sh [ROUNDS] [BUILD_DIR]
set -euo pipefail

rounds=${1:-5}
build_arg=${2:-}
coordinators=198.18.0.2:7430,198.18.0.3:7430,198.18.0.4:7430
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

leads() {  # IP: that coordinator's /readyz says it leads
  lab exec c1 -- curl --silent --fail --max-time 1 "http://$1:7422/readyz" 2>/dev/null |
    grep -q '^leader'
}
ready_hosts() {  # READY hosts in the leader's view
  ctl -o json host list 2>/dev/null | python3 -c '
import json, sys
print(sum(h.get("status", {}).get("state") == "HOST_STATE_READY" for h in json.load(sys.stdin)["hosts"]))'
}
round() {
  lab up --coordinators 3 --store etcd >/dev/null
  apply_sample_jail
  start_client 198.18.0.100:7000
  wait_acks 100
  local start end deadline leader=""
  start=$(date +%s%N)
  lab kill-host ctl1 >/dev/null
  deadline=$((SECONDS + 30))
  until [[ -n "$leader" ]]; do
    ((SECONDS < deadline)) || { echo "bench: no standby took over" >&2; exit 1; }
    for ip in 198.18.0.3 198.18.0.4; do leads "$ip" && leader=$ip; done
  done
  end=$(date +%s%N)
  sleep 6  # a whole agent lease (5 s in the etcd lab) and then some
  local ready
  ready=$(ready_hosts)
  [[ "$ready" == 4 ]] || { echo "bench: only $ready of 4 hosts READY after the takeover" >&2; exit 1; }
  if grep -l SELF-FENCING "$(lab_dir)"/*/agent.log >&2; then
    echo "bench: an agent fenced itself" >&2; exit 1
  fi
  wait_acks 100
  stop_client
  check_records 198.18.0.100:7000
  echo "$(((end - start) / 1000000)) $(outage)"
  lab down >/dev/null
}

echo "jailover coordinator takeover benchmark: $rounds rounds, 3 coordinators on 3-member etcd"
print_machine
: >"$work/results"
for r in $(seq "$rounds"); do
  round >"$work/round"
  read -r takeover gap <"$work/round"
  printf '  round %2d: takeover %5d ms   client gap %5d ms\n' "$r" "$takeover" "$gap"
  echo "$takeover $gap" >>"$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [tuple(map(int, line.split())) for line in open(sys.argv[1]) if line.strip()]
take = [r[0] for r in rows]
gaps = [r[1] for r in rows]
print("\n(ms)                                     min  median     max")
print(f"  leader's machine killed -> new leader {min(take):6d} {statistics.median(take):7.0f} {max(take):7d}")
print(f"  client's longest gap meanwhile        {min(gaps):6d} {statistics.median(gaps):7.0f} {max(gaps):7d}")
PY

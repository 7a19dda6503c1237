#!/usr/bin/env bash
# The chaos run (root; the lab of deploy/lab): CYCLES randomized faults, or
# pairs of overlapping ones, from SEED (default: from the clock; printed, so
# a run can be replayed), on one lab with three jails and a client writing to
# each, every acknowledged record and the writers' order checked after each
# cycle. See bench/chaos.py and docs/reliability.md.
#
#   bench/chaos.sh CYCLES [SEED] [--store sqlite|etcd] [--out DIR] [--build BUILD_DIR]
#                  [--overlap P] [--faults KIND,...] [--keep_all] [--dry_run] [--from_cycle N]
#                  [--lab_arg=--FLAG ...] [--expect_violation]
#
# Prints a line per cycle (fault, hold, heal, convergence, the longest client
# gap, records acknowledged, lost, dual writer, dual-VIP time) and a summary;
# a failing cycle's evidence (lab logs, event log, acknowledgements) stays in
# OUT/cycle-N. Exit 0 only when every cycle passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
args=()
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --build=*) build=${1#--build=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "chaos: run as root (network namespaces)" >&2
  # 77: skipped (ctest), except in CI, where the lab must run.
  [[ -n "${CI:-}" ]] && exit 1 || exit 77
fi
command -v nft >/dev/null || { echo "chaos: nft not found (deploy/install-deps.sh installs nftables)" >&2; exit 1; }
exec python3 "$here/chaos.py" --build "$build" "${args[@]}"

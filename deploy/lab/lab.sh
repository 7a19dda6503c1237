#!/usr/bin/env bash
# The lab cluster: a real jailover cluster in network namespaces on this
# machine (root). A thin wrapper around the built jailover-lab:
#
#   deploy/lab/lab.sh up | down | status
#   deploy/lab/lab.sh up --coordinators 3 --store etcd  # ctl1..ctl3, etcd + coordinator each
#   deploy/lab/lab.sh kill-host H          # all of H's processes killed, link down
#   deploy/lab/lab.sh stop H [H...]        # H's daemons killed (jails, ucarp, nbd keep running)
#   deploy/lab/lab.sh start H [H...]       # H's stopped daemons started again, same argv
#   deploy/lab/lab.sh partition H [from X] # H's link down, or only H <-> X dropped
#   deploy/lab/lab.sh heal H               # undo partition (a killed host stays dead)
#   deploy/lab/lab.sh exec H -- CMD...     # run CMD inside host H
#
# Hosts: ctl 198.18.0.2 (coordinator), s1 .21 (storage agent), h1 h2 h3
# .11-.13 (jail agents), c1 .31 (client). The build directory is
# JAILOVER_BUILD_DIR, else build/ at the top of the repository. Options of
# jailover-lab (--lease_ttl=..., --help) go before the command.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${JAILOVER_BUILD_DIR:-$top/build}
tool=$build/deploy/lab/jailover-lab
if [[ ! -x "$tool" ]]; then
  echo "lab: $tool is not built; build it with:" >&2
  echo "  cmake --build $build --target jailover_lab" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "lab: needs root (network namespaces, mounts, loop devices)" >&2
  exit 1
fi
exec "$tool" \
  --agent_bin="$build/agent/jailover-agent" \
  --coordinator_bin="$build/coordinator/jailover-coordinator" \
  --ctl_bin="$build/coordinator/cli/jailoverctl" \
  "$@"

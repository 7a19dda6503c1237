#!/usr/bin/env bash
# The demo, for now: start a coordinator and one agent on loopback, show
# their health and `jailoverctl status`, stop them. (The lab cluster with a
# real failover replaces this once deploy/lab exists.)
#
#   deploy/demo.sh [BUILD_DIR]
set -euo pipefail

build=${1:-$(cd "$(dirname "$0")/.." && pwd)/build}
bin_agent=$build/agent/jailover-agent
bin_coordinator=$build/coordinator/jailover-coordinator
bin_ctl=$build/coordinator/cli/jailoverctl
for b in "$bin_agent" "$bin_coordinator" "$bin_ctl"; do
  [[ -x "$b" ]] || { echo "demo: $b not built; run deploy/quickstart.sh demo" >&2; exit 1; }
done

work=$(mktemp -d /tmp/jailover-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {  # FILE PID: wait up to 20 s for a daemon's port file
  for _ in $(seq 200); do
    [[ -s "$1" ]] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo: daemon did not start; its log:" >&2
  cat "${1%.port}.log" >&2
  return 1
}

echo "==> starting jailover-coordinator (loopback, no TLS: demo only)"
"$bin_coordinator" --listen=127.0.0.1:0 --port_file="$work/coordinator.port" --insecure \
  --data_dir="$work/coordinator-data" --http_listen=127.0.0.1:0 --name=demo-ctl >"$work/coordinator.log" 2>&1 &
pids+=($!)
coordinator_port=$(wait_port "$work/coordinator.port" "${pids[-1]}")

echo "==> starting jailover-agent as host h1"
# The sim driver: the Linux driver and the lab cluster replace it later.
"$bin_agent" --listen=127.0.0.1:0 --port_file="$work/agent.port" --insecure --host_name=h1 \
  --driver=sim --state_dir="$work/agent-state" --http_listen=127.0.0.1:0 \
  --http_port_file="$work/agent-http.port" >"$work/agent.log" 2>&1 &
pids+=($!)
agent_port=$(wait_port "$work/agent.port" "${pids[-1]}")
http_port=$(cat "$work/agent-http.port")
echo "    coordinator on 127.0.0.1:$coordinator_port, agent on 127.0.0.1:$agent_port (health http :$http_port)"

echo
echo "==> jailoverctl version"
"$bin_ctl" --coordinator "127.0.0.1:$coordinator_port" --insecure version
echo
echo "==> jailoverctl status"
"$bin_ctl" --coordinator "127.0.0.1:$coordinator_port" --insecure status

echo
echo "==> stopping both with SIGTERM"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid"; done
pids=()
echo "    agent log:"
sed 's/^/      /' "$work/agent.log"
echo "    coordinator log:"
sed 's/^/      /' "$work/coordinator.log"
echo
echo "demo: done"

# Shared by deploy/demo.sh and the lab benchmarks (bench/lib.sh). Source it
# with `who` (the prefix of its messages), `build_dir` (BUILD_DIR, may be
# empty: the tree's build/) and optionally `not_built_hint` set. It finds
# and checks the lab's binaries and root, and defines helpers over the lab
# recorded in $state and the client's acknowledgements in $work/acked (both
# set by the caller before they are used).

lab_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "${build_dir:-$lab_root/build}" && pwd)
lab_bin=$build/deploy/lab/jailover-lab
ctl_bin=$build/coordinator/cli/jailoverctl
server_bin=$build/tools/jailover-applog-server
client_bin=$build/tools/jailover-applog-client
for b in "$lab_bin" "$ctl_bin" "$server_bin" "$client_bin"; do
  [[ -x "$b" ]] || { echo "$who: $b not built${not_built_hint:-}" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "$who: run as root (network namespaces)" >&2; exit 1; }

lab() { "$lab_bin" --state_file "$state" "$@"; }
# The lab's certificates (jailover-lab up makes them in the lab's dir/pki).
lab_pki() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"] + "/pki")' "$state"
}
# jailoverctl in c1, on mTLS as operator/lab, against $coordinators (default:
# the single-coordinator lab's).
ctl() {
  local pki
  pki=$(lab_pki)
  lab exec c1 -- "$ctl_bin" --coordinator "${coordinators:-198.18.0.2:7430}" \
    --tls_cert "$pki/operator-lab.pem" --tls_key "$pki/operator-lab.key" --tls_ca "$pki/ca.pem" "$@"
}
# The sample jail's "PHASE HOST EPOCH" ("- - 0" when unknown).
jail_state() {
  ctl -o json jail get web 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["jail"].get("status", {})
print(s.get("phase", "-"), s.get("host", "-"), s.get("epoch", "0"))' 2>/dev/null || echo "- - 0"
}
# How many records the client has had acknowledged.
acked() { [[ -f "$work/acked" ]] && wc -l <"$work/acked" || echo 0; }

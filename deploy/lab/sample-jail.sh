#!/usr/bin/env bash
# Puts the sample jail on a running lab: builds its disk image on s1
# (make-sample-image.sh) and applies image, VIP (198.18.0.100/24, vhid 10)
# and jail "web" (h1 preferred, h2 and h3 standbys) through jailoverctl in c1.
# The coordinator then starts it on h1.
#
#   deploy/lab/sample-jail.sh STATE_FILE BUILD_DIR
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 STATE_FILE BUILD_DIR" >&2; exit 2; }
state=$1
build=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lab_dir=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dir"])' "$state")
# The lab's coordinator endpoints (several with --store etcd).
coordinator=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["coordinator"])' "$state")
image=$lab_dir/s1/images/web.img
"$here/make-sample-image.sh" "$image" 64 "$build/tools/jailover-applog-server"
spec=$(mktemp /tmp/jailover-sample-jail.XXXXXX.yaml)
trap 'rm -f "$spec"' EXIT
cat >"$spec" <<YAML
kind: Image
name: web-img
storage_host: s1
path: $image
size: 64M
filesystem: ext4
---
kind: Vip
name: web-vip
address: 198.18.0.100/24
interface: eth0
vhid: 10
password: sample-secret
advbase: 1
---
kind: Jail
name: web
image: web-img
vip: web-vip
placement:
  preferred_host: h1
  standbys: [h2, h3]
spec:
  # On its own VIP: jails share their host's network namespace.
  exec_start: ["/bin/jailover-applog-server", "--listen", "198.18.0.100:7000", "--file", "/data/applog.txt"]
  health_port: 7000
YAML
# On the lab's mTLS, as operator/lab.
pki=$lab_dir/pki
"$build/deploy/lab/jailover-lab" --state_file "$state" exec c1 -- \
  "$build/coordinator/cli/jailoverctl" --coordinator "$coordinator" --tls_cert "$pki/operator-lab.pem" \
  --tls_key "$pki/operator-lab.key" --tls_ca "$pki/ca.pem" apply -f "$spec"

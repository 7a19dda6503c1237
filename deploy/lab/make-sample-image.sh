#!/usr/bin/env bash
# Builds the lab's sample jail disk: an ext4 image whose root holds busybox
# (static), the append-log server and an empty /data, made with mkfs.ext4 -d
# (no mount, no loop device).
#
#   deploy/lab/make-sample-image.sh IMAGE SIZE_MB SERVER_BINARY
#
# The jail runs: /bin/jailover-applog-server --listen 0.0.0.0:7000 --file /data/applog.txt
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 IMAGE SIZE_MB SERVER_BINARY" >&2
  exit 2
fi
image=$1
size_mb=$2
server=$3
[[ "$size_mb" =~ ^[0-9]+$ && "$size_mb" -ge 8 ]] || { echo "$0: SIZE_MB must be a number >= 8" >&2; exit 2; }
[[ -x "$server" ]] || { echo "$0: $server is not an executable" >&2; exit 1; }
busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || { echo "$0: busybox not found (install busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$0: $busybox is dynamically linked; the jail needs busybox-static" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,data,dev,etc,proc,tmp}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh ls cat echo sleep date ps wc tail; do ln -s busybox "$root/bin/$applet"; done
cp "$server" "$root/bin/jailover-applog-server"
cat >"$root/etc/rc" <<'RC'
#!/bin/sh
exec /bin/jailover-applog-server --listen 0.0.0.0:7000 --file /data/applog.txt
RC
chmod 755 "$root/etc/rc"
mkdir -p "$(dirname "$image")"
mkfs.ext4 -q -F -d "$root" "$image" "${size_mb}M"
echo "sample image $image (${size_mb} MiB): busybox, jailover-applog-server, /data"

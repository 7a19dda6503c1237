#!/usr/bin/env bash
# Builds the lab's sample jail disk (docs/lab-sample.md): an ext4 image whose
# root holds busybox (static) with a few applet links, the statically linked
# append-log server, /etc/rc to start it, and empty /data /tmp /proc /dev.
# Made with mkfs.ext4 -d from a temporary directory: no mount, no loop device.
#
#   deploy/lab/make-sample-image.sh IMAGE SIZE_MB SERVER_BINARY
#
# IMAGE is written as IMAGE.tmp and renamed into place only once complete, so
# a failed run never leaves a half-made image (and a process that still has
# the old image open keeps reading the old one). The jail runs (exec_start):
#   /bin/jailover-applog-server --listen 0.0.0.0:7000 --file /data/applog.txt
# or, the same, /bin/sh /etc/rc.
set -euo pipefail

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }
usage() { echo "usage: $prog IMAGE SIZE_MB SERVER_BINARY" >&2; exit 2; }

[[ $# -eq 3 ]] || usage
image=$1
size_mb=$2
server=$3

[[ "$size_mb" =~ ^[0-9]+$ ]] || die "SIZE_MB must be a whole number of MiB, got '$size_mb'"
(( size_mb >= 8 && size_mb <= 65536 )) || die "SIZE_MB must be 8 to 65536, got $size_mb"
[[ -f "$server" && -x "$server" ]] || die "$server is not an executable file"
[[ ! -e "$image" || -f "$image" ]] ||
  die "$image exists and is not a regular file; refusing to overwrite it"
[[ -d "$(dirname "$image")" ]] || die "directory $(dirname "$image") does not exist"

# The jail holds no shared libraries: both binaries must be static.
# An ELF file that ldd (libc-bin, always there) calls "not a dynamic executable".
is_static() {
  [[ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" == '177ELF' ]] && ! ldd "$1" >/dev/null 2>&1
}
busybox=""
for candidate in /bin/busybox /usr/bin/busybox "$(command -v busybox || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]] && is_static "$candidate"; then
    busybox=$candidate
    break
  fi
done
[[ -n "$busybox" ]] || die "no statically linked busybox found (apt-get install busybox-static)"
is_static "$server" ||
  die "$server is dynamically linked; the jail has no libraries (use jailover-applog-server," \
    "which is linked with -static)"

mkfs=$(PATH="$PATH:/sbin:/usr/sbin" command -v mkfs.ext4 || true)
[[ -n "$mkfs" ]] || die "mkfs.ext4 not found (apt-get install e2fsprogs)"
e2fsck=$(PATH="$PATH:/sbin:/usr/sbin" command -v e2fsck || true)

root=$(mktemp -d "${TMPDIR:-/tmp}/jailover-sample-root.XXXXXX")
tmp_image="$image.tmp"
cleanup() { rm -rf "$root"; rm -f "$tmp_image"; }
trap cleanup EXIT

mkdir -p "$root"/{bin,data,dev,etc,proc,tmp}
chmod 0755 "$root" "$root"/{bin,data,dev,etc,proc}
chmod 1777 "$root/tmp"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in sh ash cat echo ls ps sleep date wc tail head kill mkdir rm sync df mount; do
  ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$server" "$root/bin/jailover-applog-server"
cat >"$root/etc/rc" <<'RC'
#!/bin/sh
# The sample jail's service: the append-log server on port 7000 of every
# address of the host (Linux jails share the host's network namespace; the
# VIP is one of its addresses), storing its records on the jail's disk.
exec /bin/jailover-applog-server --listen 0.0.0.0:7000 --file /data/applog.txt
RC
chmod 0755 "$root/etc/rc"

: >"$tmp_image"  # an existing file: mkfs.ext4 does not announce creating it
"$mkfs" -q -F -L jailover-sample -d "$root" "$tmp_image" "${size_mb}M" ||
  die "mkfs.ext4 -d failed for $tmp_image (e2fsprogs 1.43 or later is needed for -d)"
if [[ -n "$e2fsck" ]]; then
  "$e2fsck" -fn "$tmp_image" >/dev/null 2>&1 ||
    die "e2fsck found errors in the new image $tmp_image"
fi
mv -f "$tmp_image" "$image"
echo "sample image $image (${size_mb} MiB): busybox, /bin/jailover-applog-server, /etc/rc, /data"

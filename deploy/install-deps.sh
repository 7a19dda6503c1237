#!/usr/bin/env bash
# Installs everything jailover needs to build, test and run. Idempotent: a
# second run installs nothing new. Run as root.
#
#   deploy/install-deps.sh            install (Debian 12 with apt, FreeBSD with pkg)
#   deploy/install-deps.sh --print    only print the packages it would install
#
# The package lists below are the single source of truth; docs/dependencies.md
# says why each library was chosen.
set -euo pipefail

# Build toolchain and libraries (Debian 12 "bookworm" package names).
DEBIAN_BUILD=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev openssl libssl-dev
  libsqlite3-dev libcli11-dev libyaml-cpp-dev libcpp-httplib-dev nlohmann-json3-dev
)
# Runtime tools of the Linux driver and the lab, and the etcd store's server.
DEBIAN_RUNTIME=(
  iproute2 procps ucarp nbd-server libnbd-bin fuse3 e2fsprogs util-linux
  busybox-static etcd-server etcd-client curl nftables
)
# Tests only: python3 runs the fake FreeBSD userland (tests/fake_freebsd).
DEBIAN_TEST=(python3)
# FreeBSD: the base system has jail(8), ggated/ggatec, mdconfig, ifconfig/CARP.
FREEBSD_PKGS=(
  cmake ninja pkgconf git grpc protobuf abseil spdlog googletest benchmark
  sqlite3 cli11 yaml-cpp cpp-httplib nlohmann-json etcd
)

print_only=0
[[ "${1:-}" == "--print" ]] && print_only=1

os=$(uname -s)
if [[ "$os" == "FreeBSD" ]]; then
  if (( print_only )); then echo "pkg install -y ${FREEBSD_PKGS[*]}"; exit 0; fi
  pkg install -y "${FREEBSD_PKGS[@]}"
  exit 0
fi

if [[ ! -r /etc/debian_version ]]; then
  echo "install-deps: unsupported system ($os); install by hand: ${DEBIAN_BUILD[*]} ${DEBIAN_RUNTIME[*]} ${DEBIAN_TEST[*]}" >&2
  exit 1
fi

all=("${DEBIAN_BUILD[@]}" "${DEBIAN_RUNTIME[@]}" "${DEBIAN_TEST[@]}")
if (( print_only )); then echo "apt-get install -y ${all[*]}"; exit 0; fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (apt-get install needs it)" >&2
  exit 1
fi

# Only the packages not installed yet, so a second run is quick and offline.
missing=()
for p in "${all[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#all[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
# etcd-server and nbd-server ship services that would start on install; the
# tests start their own instances, so keep the packaged ones from starting.
# policy-rc.d is the Debian mechanism for this; ours is removed afterwards.
own_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
cleanup() { if (( own_policy )); then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"

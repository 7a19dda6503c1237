#!/usr/bin/env bash
# The README's two commands.
#
#   deploy/quickstart.sh demo   install dependencies, build, run the demo
#   deploy/quickstart.sh test   install dependencies, build, run every test
#
# Run as root on Debian 12 (the lab tests need root for network namespaces).
# The build goes to ./build; JAILOVER_BUILD_DIR overrides it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${JAILOVER_BUILD_DIR:-$root/build}
mode=${1:-}

case "$mode" in
  demo|test) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
"$root/deploy/install-deps.sh"

step "building in $build"
# Warnings are errors here, so the tree stays warning-free.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJAILOVER_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"

if [[ "$mode" == demo ]]; then
  step "running the demo"
  exec "$root/deploy/demo.sh" "$build"
fi

step "running all tests (unit, integration, lab)"
# Each ctest test has its own timeout (jailover_add_test); this bounds the whole run.
exec ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 600

#!/usr/bin/env bash
# Runs the crate's test suite for another architecture under emulation:
#   scripts/test-cross.sh <target>        e.g. aarch64, cortex-m4
# Each target is a script in scripts/cross/<target>.sh that installs what it needs
# (apt-get) when missing, builds, runs, and prints which kernels ran and which were skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:-}"
if [ -z "$target" ] || [ ! -f "$here/cross/$target.sh" ]; then
    echo "usage: $0 <target>; targets:" $(cd "$here/cross" && ls *.sh 2>/dev/null | sed 's/\.sh$//') >&2
    exit 2
fi
shift
exec bash "$here/cross/$target.sh" "$@"

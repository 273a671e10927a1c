#!/usr/bin/env bash
# Every test of the project, as CI runs it (.ci/run calls exactly this):
#   1. the host test suite (unit, API, kernel battery over every kernel this CPU runs);
#   2. the kernel battery through the no-`std` and no-`alloc` driver paths (built for the
#      host CPU, since without std the kernels are chosen from target features);
#   3. every cross-architecture target in scripts/cross/ (under QEMU).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

echo "== host: cargo test (default features)"
cargo test --quiet

echo "== host: kernel battery and workspace API without std (alloc only), and without alloc"
CARGO_TARGET_DIR=target/nostd RUSTFLAGS="-C target-cpu=native" \
    cargo test --quiet --no-default-features --features alloc --test kernel_battery --test workspace --test qworkspace
CARGO_TARGET_DIR=target/nostd RUSTFLAGS="-C target-cpu=native" \
    cargo test --quiet --no-default-features --test kernel_battery --test workspace --test qworkspace

for t in scripts/cross/*.sh; do
    [ -e "$t" ] || continue
    name="$(basename "$t" .sh)"
    echo "== cross: $name"
    scripts/test-cross.sh "$name"
done
echo "== all tests passed"

#!/usr/bin/env bash
# The crate's whole test suite for aarch64-unknown-linux-gnu, run under qemu-aarch64 on two
# emulated CPUs:
#   -cpu max         every extension QEMU emulates (NEON, dotprod, i8mm, ...);
#   -cpu cortex-a53  plain ARMv8.0 (NEON only), so the fallbacks of the dotprod/i8mm kernels
#                    run and those kernels are reported as skipped.
# Then the kernel battery once more through the no-`std` (alloc only) and no-`alloc` driver
# paths, as scripts/test-all.sh does on the host (kernels chosen from target features there):
# on cortex-a53 with the baseline features, and (alloc only, the AArch64 int8 kernels) on
# max built with `-C target-feature=+dotprod,+i8mm`, so the sdot and smmla kernels run
# through those paths too.
#
# Called as `scripts/test-cross.sh aarch64`. Installs what it needs when missing (apt-get, as
# root or through sudo), builds with Debian's toolchain (rustc-web + its library source,
# -Zbuild-std), and ends with which kernels ran and which were skipped on each CPU.
#
# Environment:
#   AARCH64_CPUS           the QEMU CPUs to run on (default: "max cortex-a53")
#   EDGEMM_PROPTEST_CASES  random cases per kernel in the battery (the battery's default)
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
read -r -a cpus <<<"${AARCH64_CPUS:-max cortex-a53}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$SECONDS

# ---- tools -------------------------------------------------------------------------------
pkgs=(rustc-web cargo-web rust-web-src qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "aarch64: installing ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "aarch64: need root (or sudo) to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    # Another apt run on the machine may hold the lock: wait for it rather than fail.
    apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=900)
    aptlog="$(mktemp)"
    if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${missing[@]}"; } \
        >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        echo "aarch64: apt-get failed" >&2
        exit 1
    fi
    rm -f "$aptlog"
fi
for tool in /usr/bin/rustc /usr/bin/rustdoc /usr/bin/cargo qemu-aarch64 aarch64-linux-gnu-gcc; do
    command -v "$tool" >/dev/null || { echo "aarch64: $tool missing after install" >&2; exit 1; }
done
echo "aarch64: $(/usr/bin/rustc --version); $(qemu-aarch64 --version | head -n1)"

# ---- build -------------------------------------------------------------------------------
# Debian's toolchain, not the host's rustup one: it ships the library source -Zbuild-std
# needs. Everything is passed by environment (no .cargo/config.toml), so host builds are
# untouched, and the target directory is separate.
unset RUSTUP_TOOLCHAIN
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$root/target/cross-aarch64"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# No debug info: the library is rebuilt from source here, and this halves its build and link
# time (panic messages still name file and line).
export CARGO_PROFILE_TEST_DEBUG=0
cargo=(/usr/bin/cargo test --target "$TARGET" -Zbuild-std=std,panic_unwind)
nostd_alloc=(--no-default-features --features alloc --test kernel_battery)
nostd_none=(--no-default-features --test kernel_battery)
# The no-std build with the extensions on at compile time: only this crate's units for the
# target get the flag (a workspace wrapper; RUSTFLAGS would rebuild std), and they get their
# own artifact hashes, so the builds do not overwrite each other.
ext_features=+dotprod,+i8mm
with_ext=(env RUSTC_WORKSPACE_WRAPPER="$root/scripts/lib/rustc-target-features.sh"
          EDGEMM_WRAP_TARGET="$TARGET" EDGEMM_WRAP_FEATURES="$ext_features")
run_ext=0
for cpu in "${cpus[@]}"; do [ "$cpu" = max ] && run_ext=1; done

echo "aarch64: building the tests"
"${cargo[@]}" --quiet --no-run
"${cargo[@]}" --quiet --no-run "${nostd_alloc[@]}"
"${cargo[@]}" --quiet --no-run "${nostd_none[@]}"
if [ $run_ext = 1 ]; then
    "${with_ext[@]}" "${cargo[@]}" --quiet --no-run "${nostd_alloc[@]}"
fi
built=$SECONDS

# ---- run ---------------------------------------------------------------------------------
logdir="$CARGO_TARGET_DIR/logs"
mkdir -p "$logdir"
declare -A summary

# run [env NAME=value...] <cpu> <log name> <cargo test args...>: runs under
# `qemu-aarch64 -cpu <cpu>`, output to the terminal and the log; stops the script on failure.
run() {
    local pre=()
    if [ "$1" = env ]; then
        pre=(env)
        shift
        while [[ "$1" == *=* ]]; do pre+=("$1"); shift; done
    fi
    local cpu="$1" name="$2"
    shift 2
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT -cpu $cpu"
    # Tests that start a copy of themselves need the emulator too (no binfmt_misc needed).
    export EDGEMM_TEST_RUNNER="$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
    local log="$logdir/$name.log" t0=$SECONDS
    if ! "${pre[@]}" "${cargo[@]}" "$@" 2>&1 | tee "$log"; then
        echo "aarch64: FAILED: cargo test $* under -cpu $cpu (log: $log)" >&2
        exit 1
    fi
    local lines passed
    lines="$(grep -E '^kernel battery — CPU features|^kernel .* (ok:|SKIPPED)' "$log" || true)"
    if grep -q '^test result: ok\.' "$log"; then
        passed=$(awk '/^test result: ok\./ { s += $4 } END { print s }' "$log")
        lines+=$'\n'"libtest tests (unit, API, doc): $passed passed"
    fi
    summary[$name]="$lines"$'\n'"($((SECONDS - t0)) s)"
    names+=("$name")
}

names=()
for cpu in "${cpus[@]}"; do
    echo "== aarch64: cargo test under qemu-aarch64 -cpu $cpu"
    run "$cpu" "$cpu"
done
# Without std, kernels are chosen from the build's target features (the baseline here), so
# one CPU serves: the plain ARMv8.0 one.
last="${cpus[${#cpus[@]}-1]}"
echo "== aarch64: kernel battery without std (alloc only), -cpu $last"
run "$last" "$last-nostd-alloc" "${nostd_alloc[@]}"
echo "== aarch64: kernel battery without alloc, -cpu $last"
run "$last" "$last-noalloc" "${nostd_none[@]}"
if [ $run_ext = 1 ]; then
    # Only the AArch64 int8 kernels: the others do not depend on these features and already
    # ran without std above.
    echo "== aarch64: int8 kernel battery without std (alloc only), built with $ext_features," \
        "-cpu max"
    run "${with_ext[@]}" max max-nostd-alloc-dotprod-i8mm "${nostd_alloc[@]}" -- qgemm_i8_neon
fi

echo "== aarch64 summary (build $((built - start)) s, total $((SECONDS - start)) s)"
for name in "${names[@]}"; do
    echo "$name:"
    sed 's/^/  /' <<<"${summary[$name]}"
done

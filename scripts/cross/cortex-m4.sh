#!/usr/bin/env bash
# Cortex-M4 (run as `scripts/test-cross.sh cortex-m4`):
#   1. the library builds no_std, with and without `alloc`, for thumbv7em-none-eabihf
#      (Cortex-M4F: assembly kernels), thumbv7m-none-eabi and thumbv6m-none-eabi (no DSP, no
#      FPU: the portable kernels), warnings denied;
#   2. the firmware battery (firmware/src/bin/battery.rs: every kernel against the reference,
#      through the plain and the caller-provided-workspace entry points) runs on an emulated
#      Cortex-M4F (qemu-system-arm -M mps2-an386, semihosting), once with edgemm built
#      without `alloc` (the no-allocation driver) and once with it. A failing case, a fault,
#      a panic, a hang (timeout) or a missing assembly kernel fails this script.
# Installs what it needs (apt-get) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/cortex-m4.sh

m4_install
echo "toolchain: $(/usr/bin/rustc --version); $(qemu-system-arm --version | head -1)"

start=$SECONDS
for t in thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi; do
    echo "-- build: $t (no_std, without and with alloc)"
    RUSTFLAGS="-D warnings" m4_cargo build --quiet --lib --no-default-features \
        --target "$t" -Zbuild-std=core
    RUSTFLAGS="-D warnings" m4_cargo build --quiet --lib --no-default-features \
        --features alloc --target "$t" -Zbuild-std=core,alloc
done

# The kernels this target must have compiled in and passing.
export EDGEMM_FW_REQUIRE=sgemm_vfp4_4x4,qgemm_s16_m4dsp_16x4
for variant in no-alloc alloc; do
    features=()
    [ "$variant" = alloc ] && features=(--features alloc)
    echo "-- firmware battery on the emulated Cortex-M4 (edgemm $variant)"
    elf=$(m4_build_firmware battery release "${features[@]}")
    log="$M4_TARGET_DIR/battery-$variant.log"
    t0=$SECONDS
    status=0
    m4_run "$elf" | tee "$log" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "FAILED: firmware battery (edgemm $variant) exited with status $status" >&2
        exit 1
    fi
    if ! grep -q '^firmware battery: .* cases passed' "$log"; then
        echo "FAILED: firmware battery (edgemm $variant) printed no summary line" >&2
        exit 1
    fi
    echo "   (ran in $((SECONDS - t0)) s under QEMU)"
done
echo "cortex-m4: all passed in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Cortex-M4 (run as `scripts/test-cross.sh cortex-m4`):
#   1. the library builds no_std, with and without `alloc`, for thumbv7em-none-eabihf
#      (Cortex-M4F: assembly kernels), thumbv7m-none-eabi and thumbv6m-none-eabi (no DSP, no
#      FPU: the portable kernels), warnings denied;
#   2. the firmware battery (firmware/src/bin/battery.rs: every kernel against the reference,
#      through the plain and the caller-provided-workspace entry points) runs on an emulated
#      Cortex-M4F (qemu-system-arm -M mps2-an386, semihosting), once with edgemm built
#      without `alloc` (the no-allocation driver) and once with it. A failing case, a fault,
#      a panic, a hang (timeout) or a missing assembly kernel fails this script;
#   3. the model battery (firmware/src/bin/models.rs, edgemm without `alloc`): every int8
#      fixture of tests/models/ converted for the M4 by the host's `edgemm convert --target
#      cortex-m4` and `--target portable`, run from one static arena on the emulated M4,
#      outputs compared byte for byte with TFLite's reference kernels; a blob packed for the
#      host must be refused. A failing model, a fault or a hang fails it.
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
echo "-- model battery: every int8 fixture of tests/models/, converted for the Cortex-M4"
t0=$SECONDS
# The host's edgemm as `cargo test` builds it (debug: scripts/test-all.sh has built it by now).
cargo build --quiet --bin edgemm
edgemm_bin="$PWD/target/debug/edgemm"
mdir="$M4_TARGET_DIR/models"
rm -rf "$mdir"
mkdir -p "$mdir"
list="$mdir/models.list"
: >"$list"
# Each int8 fixture three times: packed for the M4 in both weight layouts (--target cortex-m4:
# i8 weights; cortex-m4-i16: i16 pairs) and portable (plain int8 weights, scratch sized for
# every build). MANIFEST lines: <name> dtype=<dtype of input 0> inputs=<N> outputs=<M> ...
grep -v '^#' tests/models/MANIFEST | awk '$2 == "dtype=int8" { sub("inputs=", "", $3); sub("outputs=", "", $4); print $1, $3, $4 }' |
    while read -r name n_in n_out; do
        for target in cortex-m4 cortex-m4-i16 portable; do
            blob="$mdir/$name.$target.egm"
            "$edgemm_bin" convert "tests/models/$name.tflite" --target "$target" --no-names \
                -o "$blob" 2>/dev/null ||
                { echo "FAILED: edgemm convert --target $target tests/models/$name.tflite" >&2; exit 1; }
            line="$name/$target $blob $n_in"
            for ((j = 0; j < n_in; j++)); do line="$line $PWD/tests/models/$name.in$j.bin"; done
            line="$line $n_out"
            for ((j = 0; j < n_out; j++)); do line="$line $PWD/tests/models/$name.out$j.bin"; done
            echo "$line" >>"$list"
        done
    done
# A blob packed for this host must be refused on the M4, by an error naming both targets.
"$edgemm_bin" convert tests/models/dscnn_int8.tflite --no-names -o "$mdir/dscnn_int8.host.egm" 2>/dev/null
echo "dscnn_int8/host $mdir/dscnn_int8.host.egm refused" >>"$list"
nlisted=$(wc -l <"$list")
elf=$(EDGEMM_FW_MODELS_LIST="$list" m4_build_firmware models release)
log="$M4_TARGET_DIR/models.log"
t1=$SECONDS
status=0
M4_TIMEOUT="${M4_MODELS_TIMEOUT:-300}" m4_run "$elf" >"$log" || status=$?
grep -v '^ok ' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "FAILED: model battery exited with status $status (log: $log)" >&2
    exit 1
fi
if ! grep -q "^model battery: $nlisted models passed, 0 failed" "$log"; then
    echo "FAILED: model battery: expected $nlisted models passed (log: $log)" >&2
    exit 1
fi
echo "   ($nlisted models; converted and built in $((t1 - t0)) s, ran in $((SECONDS - t1)) s under QEMU)"
# Keyword spotting end to end: WAVs in flash -> frontend -> model, answers equal to the host's.
echo "-- keyword spotting firmware (tests/kws WAVs), compared with the host's example"
scripts/kws-cortex-m4.sh --check
echo "cortex-m4: all passed in $((SECONDS - start)) s"

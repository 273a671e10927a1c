#!/usr/bin/env bash
# One model on an emulated Cortex-M4 (QEMU mps2-an386), measured:
#   scripts/bench-cortex-m4-model.sh MODEL.tflite [INPUT.bin] [--profile] [--target T]
#       [--device-validation]
# 1. converts MODEL with the host's `edgemm convert --target T --rust` (T: cortex-m4, the
#    default, int8 weights; or cortex-m4-i16, the direct convolutions' weights as i16 pairs;
#    arena planned for its build, the operator set emitted);
# 2. builds firmware/src/bin/bench_model.rs with that blob embedded (include_bytes!, 16-byte
#    aligned), the arena a static of the emitted size and only those operators linked (edgemm
#    without alloc, with its feature terse-errors, and without its f32 operator forms unless
#    the model has f32 tensors; profile `measure`), and the empty firmware (startup and
#    semihosting); the blob is validated at build time (`VALIDATED_CRC` of the source:
#    the firmware checks its header and CRC only) when convert could validate it for the
#    target, else, or with --device-validation, on the device (`from_bytes_with_forms`);
# 3. runs it under qemu-system-arm with ../shared/tools/qemu-insncount counting the
#    instructions of one inference (the region between bench_begin() and bench_end() around
#    Session::run_with), and compares its output bytes with the host runtime's
#    (`edgemm run MODEL --output`, same input);
# and prints one line:
#   model=<name> macs=<N> instructions=<N> instr_per_mac=<x> est_cycles=<N> arena_bytes=<N>
#   stack_bytes=<N> text_bytes=<N> weights_bytes=<N> output_ok=<true|false>
# est_cycles: the cost model of scripts/bench-cortex-m4.sh (published Cortex-M4 timings, zero
# wait states: flash wait states, bus contention and the FPU are not modelled).
# stack_bytes: the high-water mark of a painted stack over the inference (main's frame
# included). text_bytes: code size as DESIGN.md defines it, the firmware's text + rodata minus
# the blob minus the empty firmware's text + rodata. weights_bytes: the blob's constant
# tensors (packed weights, biases, multipliers, tables). Without INPUT.bin the inputs are
# seeded random bytes (the same on both sides). --profile adds one line per operator:
#   op=<i> <NAME> instructions=<N> est_cycles=<N> share=<%>
# Exits non-zero when the outputs differ. Installs what it needs (apt-get) on a fresh machine;
# needs ../shared/tools/qemu-insncount next to the repository.
set -euo pipefail
model="" input="" profile=0 target=cortex-m4 device=0
while [ $# -gt 0 ]; do
    a="$1"
    shift
    case "$a" in
    --profile) profile=1 ;;
    --device-validation) device=1 ;;
    --target)
        case "${1:-}" in
        cortex-m4 | cortex-m4-i16) target="$1" ;;
        *)
            echo "error: --target takes cortex-m4 or cortex-m4-i16" >&2
            exit 2
            ;;
        esac
        shift
        ;;
    -h | --help)
        sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "error: unknown option $a (see --help)" >&2
        exit 2
        ;;
    *)
        if [ -z "$model" ]; then model=$(realpath "$a"); elif [ -z "$input" ]; then input=$(realpath "$a"); else
            echo "error: more than MODEL and INPUT given" >&2
            exit 2
        fi
        ;;
    esac
done
[ -n "$model" ] || { echo "usage: $0 MODEL.tflite [INPUT.bin] [--profile] [--target T]" >&2; exit 2; }
cd "$(dirname "$0")/.."
. scripts/lib/cortex-m4.sh

tool="../shared/tools/qemu-insncount"
if [ ! -f "$tool/build.sh" ] || [ ! -f "$tool/insncount.c" ]; then
    echo "error: the instruction-count plugin is missing: expected $tool/build.sh (next to the repository root $(pwd))" >&2
    exit 1
fi
m4_install
if ! command -v cc >/dev/null; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends gcc libc6-dev >/dev/null
fi
mkdir -p "$M4_TARGET_DIR"
so=$(bash "$tool/build.sh" "$M4_TARGET_DIR/qemu-insncount")
cargo build --quiet --release --bin edgemm
edgemm_bin="$PWD/target/release/edgemm"

name=$(basename "$model")
name=${name%.tflite}
out="$M4_TARGET_DIR/bench-model/$name"
rm -rf "$out"
mkdir -p "$out"
"$edgemm_bin" convert "$model" --target "$target" --no-names -o "$out/model.egm" \
    --rust "$out/model.rs" 2>"$out/convert.log" || { cat "$out/convert.log" >&2; exit 1; }
const() { sed -n "s/^pub const $1: [^=]* = \(.*\);\$/\1/p" "$out/model.rs"; }
macs=$(const MACS)
read -r -a in_bytes <<<"$(const INPUT_BYTES | tr -d '&[],' )"
read -r -a out_bytes <<<"$(const OUTPUT_BYTES | tr -d '&[],' )"

# Inputs: INPUT.bin for a one-input model, else seeded random bytes.
run_args=()
for j in "${!in_bytes[@]}"; do
    # in<j>.bin, j as two hex digits (the firmware's names).
    f="$out/in$(printf %02x "$j").bin"
    if [ -n "$input" ] && [ "${#in_bytes[@]}" -eq 1 ]; then
        cp "$input" "$f"
    else
        LC_ALL=C awk -v n="${in_bytes[$j]}" -v seed=$((j + 1)) \
            'BEGIN { srand(seed); for (i = 0; i < n; i++) printf "%c", int(rand() * 256) }' >"$f"
    fi
    run_args+=(--input "$f")
done
for j in "${!out_bytes[@]}"; do run_args+=(--output "$out/host.out$j.bin"); done
"$edgemm_bin" run "$model" "${run_args[@]}" >"$out/host.log" 2>&1 || { cat "$out/host.log" >&2; exit 1; }

# edgemm's f32 operator forms only for a model with f32 tensors; errors without their
# messages (the firmware reports a failure by stage; the host's run of the model names it).
features=(--features terse-errors)
[ "$(const F32)" = true ] && features=(--features terse-errors,f32)
[ "$device" -eq 1 ] && features=("${features[@]}" --features device-validation)
elf=$(EDGEMM_FW_MODEL_RS="$out/model.rs" m4_build_firmware bench_model measure "${features[@]}")
cp "$elf" "$out/bench_model.elf"
elf="$out/bench_model.elf"
empty=$(m4_build_firmware empty measure)
sym() { arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
beg=$(sym bench_begin)
end=$(sym bench_end)
[ "$profile" -eq 1 ] && : >"$out/profile.flag"
status=0
(cd "$out" && m4_run "$elf" -plugin "$so,begin=$beg,end=$end,dir=$out" -d plugin \
    -D "$out/plugin.log" >"$out/firmware.log" 2>&1) || status=$?
if [ "$status" -ne 0 ] || ! grep -q '^bench done' "$out/firmware.log"; then
    cat "$out/firmware.log" >&2
    echo "FAILED: the model firmware exited with status $status" >&2
    exit 1
fi
insns=$(awk '$1 == "PLUGIN" && $2 == "region" && $3 == 0 { print $5 }' "$out/plugin.log")
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$out/firmware.log" | head -1; }

arm-none-eabi-objdump -d --no-show-raw-insn "$elf" >"$out/disasm.txt"
arm-none-eabi-nm -S -C --defined-only "$elf" | awk 'NF >= 4 && $3 ~ /^[TtWw]$/' >"$out/syms.txt"
cycles() {
    awk -v name=x -v macs="$((macs > 0 ? macs : 1))" -v insns="$2" -f scripts/lib/cortex-m4-cycles.awk \
        "$out/syms.txt" "$out/disasm.txt" "$out/region_$1.txt" | sed -n 's/.*est_cycles=\([0-9]*\).*/\1/p'
}
est=$(cycles 0 "$insns")

# Code size: text + rodata (and the vector table) minus the blob, minus the empty firmware's.
flash() { arm-none-eabi-size -A "$1" | awk '$1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { s += $2 } END { print s }'; }
blob_bytes=$(stat -c %s "$out/model.egm")
text=$(($(flash "$elf") - blob_bytes - $(flash "$empty")))

ok=true
for j in "${!out_bytes[@]}"; do
    got=$(awk -v j="$j" '$1 == "output" && $2 == j { printf "%s", $3 }' "$out/firmware.log")
    want=$(od -An -v -tx1 "$out/host.out$j.bin" | tr -d ' \n')
    [ "$got" = "$want" ] || ok=false
done
# The blob's figures from the host (the firmware prints only what the device measures).
"$edgemm_bin" inspect "$out/model.egm" >"$out/inspect.txt"
weights=$(sed -n 's/^weights *\([0-9]*\) bytes.*/\1/p' "$out/inspect.txt")
awk -v m="$name" -v macs="$macs" -v insns="$insns" -v est="$est" -v arena="$(const ARENA_SIZE)" \
    -v stack="$(field stack_bytes)" -v text="$text" -v w="$weights" -v ok="$ok" \
    'BEGIN { printf "model=%s macs=%d instructions=%d instr_per_mac=%.3f est_cycles=%d arena_bytes=%d stack_bytes=%d text_bytes=%d weights_bytes=%d output_ok=%s\n",
             m, macs, insns, macs ? insns / macs : 0, est, arena, stack, text, w, ok }'
if [ "$profile" -eq 1 ]; then
    # Region i + 1 is operator i (execution order), named by the host's inspect.
    sed -n 's/^ *\([0-9][0-9]*\)  \([A-Z0-9_]*\) (code [0-9]*).*/\1 \2/p' "$out/inspect.txt" >"$out/op-names.txt"
    while read -r i opname; do
        r=$((i + 1))
        n=$(awk -v r="$r" '$1 == "PLUGIN" && $2 == "region" && $3 == r { print $5 }' "$out/plugin.log")
        c=$(cycles "$r" "$n")
        awk -v i="$i" -v op="$opname" -v n="$n" -v c="$c" -v t="$est" \
            'BEGIN { printf "op=%d %s instructions=%d est_cycles=%d share=%.1f%%\n", i, op, n, c, 100 * c / t }'
    done <"$out/op-names.txt"
fi
[ "$ok" = true ]

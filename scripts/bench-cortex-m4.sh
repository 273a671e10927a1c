#!/usr/bin/env bash
# Instruction counts of int8 layers on an emulated Cortex-M4 (QEMU mps2-an386), exact, with
# ../shared/tools/qemu-insncount (a QEMU TCG plugin; QEMU has no cycle counter):
#   scripts/bench-cortex-m4.sh
# Builds the bench firmware (firmware/src/bin/bench.rs, profile `measure`: release without
# debug assertions), runs it once with the plugin counting the instructions between
# bench_begin() and bench_end() around each layer, and prints per case
#   <case> macs=<N> instructions=<N> instr_per_mac=<X>
# The counted region is one call of qgemm (prepacked weights, requantized output, the
# caller's workspace in its Context) with the weights already packed (see bench.rs): argument
# checks, column terms, packing of the activations, the kernel and requantization to i8,
# nothing else. The firmware checks every output
# against edgemm::reference (bit-exact) and fails the run otherwise.
#
# Then, from the per-address histogram the plugin writes and the disassembly, an estimate of
# Cortex-M4 cycles from its published timings (Cortex-M4 TRM, table 3-1, zero wait states):
# 1 cycle for data processing, multiplies (smlad, smull, smmulr, mla), saturation and
# packing; LDR 2, or 1 when it directly follows another single load or store (pipelined);
# STR 1 (buffered); LDRD/STRD 3 (1 + 2, never pipelined); LDM/STM/PUSH/POP 1 + registers;
# a taken branch 1 + P with P = 2 (the TRM gives 1 to 3), not taken 1 (taken = executions of
# the branch minus executions of the next instruction); TBB 6; UDIV/SDIV 7 (2 to 12). Flash
# wait states, bus contention and the FPU are not modelled. Also the hot loop of each case,
# and the code size of the kernels (arm-none-eabi-size) and of the code each case ran.
#
# Installs what it needs (apt-get) on a fresh machine; needs ../shared/tools/qemu-insncount
# next to the repository (it is not installable).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cortex-m4.sh

tool="../shared/tools/qemu-insncount"
if [ ! -f "$tool/build.sh" ] || [ ! -f "$tool/insncount.c" ]; then
    echo "error: the instruction-count plugin is missing: expected $tool/build.sh and" \
        "$tool/insncount.c (../shared/tools/qemu-insncount, next to the repository root" \
        "$(pwd))" >&2
    exit 1
fi
m4_install
if ! command -v cc >/dev/null; then
    echo "installing: gcc (host C compiler for the QEMU plugin)"
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends gcc libc6-dev >/dev/null
fi
mkdir -p "$M4_TARGET_DIR"
so=$(bash "$tool/build.sh" "$M4_TARGET_DIR/qemu-insncount")
elf=$(m4_build_firmware bench measure)
sym() { arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
beg=$(sym bench_begin)
end=$(sym bench_end)
if [ -z "$beg" ] || [ -z "$end" ] || [ "$beg" = "$end" ]; then
    echo "error: bench_begin/bench_end not found (or folded into one) in $elf" >&2
    exit 1
fi
out="$M4_TARGET_DIR/bench"
rm -rf "$out"
mkdir -p "$out"
status=0
m4_run "$elf" -plugin "$so,begin=$beg,end=$end,dir=$out" -d plugin -D "$out/plugin.log" \
    >"$out/firmware.log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || ! grep -q '^bench done' "$out/firmware.log"; then
    cat "$out/firmware.log" >&2
    echo "FAILED: the bench firmware exited with status $status" >&2
    exit 1
fi
ncase=$(grep -c '^case ' "$out/firmware.log")
nreg=$(grep -c '^PLUGIN region ' "$out/plugin.log" || true)
if [ "$ncase" -ne "$nreg" ] || [ "$ncase" -eq 0 ]; then
    echo "FAILED: $ncase cases but $nreg measured regions" >&2
    exit 1
fi

echo "Cortex-M4 int8 instruction counts ($(qemu-system-arm --version | head -1); $(grep -m1 '^case' "$out/firmware.log" | sed 's/.*kernel=//'))"
# case lines: "case <name> m=.. n=.. k=.. macs=<N> kernel=<k>"; region lines: "PLUGIN region <i> insns <N>".
paste -d' ' <(grep '^case ' "$out/firmware.log" | awk '{ sub("macs=", "", $6); print $2, $6 }') \
    <(grep '^PLUGIN region ' "$out/plugin.log" | awk '{ print $5 }') >"$out/counts.txt"
awk '{ printf "%s macs=%d instructions=%d instr_per_mac=%.3f\n", $1, $2, $3, $3 / $2 }' \
    "$out/counts.txt"

# ---- cycle estimate, hot loop, code footprint ------------------------------------------------
arm-none-eabi-objdump -d --no-show-raw-insn "$elf" >"$out/disasm.txt"
arm-none-eabi-nm -S -C --defined-only "$elf" | awk 'NF >= 4 && $3 ~ /^[TtWw]$/' >"$out/syms.txt"
echo
echo "Estimated Cortex-M4 cycles (published timings; see the header of this script):"
i=0
while read -r name macs insns; do
    awk -v name="$name" -v macs="$macs" -v insns="$insns" -f scripts/lib/cortex-m4-cycles.awk \
        "$out/syms.txt" "$out/disasm.txt" "$out/region_$i.txt" | sed 's/,$//'
    i=$((i + 1))
done <"$out/counts.txt"

echo
echo "Code size of the kernels (arm-none-eabi-size):"
lib=$(ls -t "$M4_TARGET_DIR/$M4_TARGET/measure/build/"edgemm-*/out/libedgemm_kernels.a 2>/dev/null | head -1)
if [ -n "$lib" ]; then
    arm-none-eabi-size "$lib" | sed 's/ (ex .*//; s|[^ ]*-\([a-z0-9_]*\.o\)|\1|'
else
    echo "  (libedgemm_kernels.a not found)"
fi
echo "Symbols of the int8 path in the bench firmware (bytes, from arm-none-eabi-nm -S):"
arm-none-eabi-nm -S -C --defined-only --size-sort "$elf" |
    grep -E 'qgemm_s16_m4dsp|requantize_m4dsp|quant::(driver|pack|packed|workspace)' |
    awk '{ s = 0; for (k = 1; k <= length($2); k++) s = s * 16 + index("0123456789abcdef", tolower(substr($2, k, 1))) - 1;
           name = $4; for (k = 5; k <= NF; k++) name = name " " $k; printf "  %6d  %s\n", s, name }'

#!/usr/bin/env bash
# Keyword spotting end to end on an emulated Cortex-M4F (QEMU mps2-an386):
#   scripts/kws-cortex-m4.sh [--check]
# 1. converts tests/kws/kws_int8.tflite with the host's `edgemm convert --target cortex-m4
#    --rust` (weights packed for the M4, arena planned for its build, operator set emitted);
# 2. builds firmware/src/bin/kws.rs (edgemm without alloc, profile `measure`): the test WAVs
#    of tests/kws/ in flash, the streaming frontend on the FPU, the features quantized into
#    the model's input, the model, the keyword printed over semihosting;
# 3. runs it under qemu-system-arm with ../shared/tools/qemu-insncount counting the
#    instructions of the frontend and of the network separately, per clip;
# 4. compares each clip's line (keyword, score, the 12 int8 scores, a hash of the 490 MFCCs'
#    bits) with the host's (`cargo run --release --example kws -- FILE --raw`).
# Prints per clip
#   file=<wav> keyword=<label> score=<s> output=<hex> features=<hash>
#   frontend_instructions=<N> frontend_est_cycles=<N> network_instructions=<N>
#   network_est_cycles=<N> host_equal=<true|false>
# then the RAM line of the firmware (frontend state, model arena, stack high-water mark).
# est_cycles: the cost model of scripts/lib/cortex-m4-cycles.awk (published Cortex-M4
# timings, zero wait states) plus the Cortex-M4F FPU's published timings (Cortex-M4 TRM,
# "FPU instruction timing"): VDIV/VSQRT 14 cycles, VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/
# VFNMS 3, VLDR/VSTR 2, VLDM/VSTM/VPUSH/VPOP 1 + registers, the others 1 (the base model
# already counts 1 for each).
# --check (what the README's test command runs): steps 1, 2 and 4 only, no instruction counts
# (no QEMU plugin needed); prints `file=<wav> ... host_equal=<true|false>` per clip.
# Exits non-zero when the firmware fails or any line differs from the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cortex-m4.sh

count=true
[ "${1:-}" = "--check" ] && count=false
tool="../shared/tools/qemu-insncount"
if [ "$count" = true ] && [ ! -f "$tool/build.sh" ]; then
    echo "error: the instruction-count plugin is missing: expected $tool/build.sh" >&2
    exit 1
fi
m4_install
mkdir -p "$M4_TARGET_DIR"
[ "$count" = true ] && so=$(bash "$tool/build.sh" "$M4_TARGET_DIR/qemu-insncount")
cargo build --quiet --release --bin edgemm --example kws
out="$M4_TARGET_DIR/kws"
rm -rf "$out"
mkdir -p "$out"
target/release/edgemm convert tests/kws/kws_int8.tflite --target cortex-m4 --no-names \
    -o "$out/model.egm" --rust "$out/model.rs" 2>"$out/convert.log" || { cat "$out/convert.log" >&2; exit 1; }
elf=$(EDGEMM_FW_MODEL_RS="$out/model.rs" m4_build_firmware kws measure)
cp "$elf" "$out/kws.elf"
elf="$out/kws.elf"
sym() { arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s { print "0x" $1 }'; }
status=0
if [ "$count" = true ]; then
    (cd "$out" && m4_run "$elf" -plugin "$so,begin=$(sym bench_begin),end=$(sym bench_end),dir=$out" \
        -d plugin -D "$out/plugin.log" >"$out/firmware.log" 2>&1) || status=$?
else
    (cd "$out" && m4_run "$elf" >"$out/firmware.log" 2>&1) || status=$?
fi
if [ "$status" -ne 0 ] || ! grep -q '^kws done' "$out/firmware.log"; then
    cat "$out/firmware.log" >&2
    echo "FAILED: the keyword firmware exited with status $status" >&2
    exit 1
fi
arm-none-eabi-objdump -d --no-show-raw-insn "$elf" >"$out/disasm.txt"
arm-none-eabi-nm -S -C --defined-only "$elf" | awk 'NF >= 4 && $3 ~ /^[TtWw]$/' >"$out/syms.txt"
insns() { awk -v r="$1" '$1 == "PLUGIN" && $2 == "region" && $3 == r { print $5 }' "$out/plugin.log"; }
# The integer cost model, plus the FPU's cycles beyond the 1 it counts per instruction.
cycles() {
    local base fpu
    base=$(awk -v name=x -v macs=1 -v insns="$2" -f scripts/lib/cortex-m4-cycles.awk \
        "$out/syms.txt" "$out/disasm.txt" "$out/region_$1.txt" | sed -n 's/.*est_cycles=\([0-9]*\).*/\1/p')
    fpu=$(awk '
        function hex(s,    n, k, c) {
            n = 0; s = tolower(s); gsub(/ /, "", s)
            for (k = 1; k <= length(s); k++) { c = index("0123456789abcdef", substr(s, k, 1)); if (c == 0) return -1; n = n * 16 + c - 1 }
            return n
        }
        FILENAME == ARGV[1] {
            if ($0 !~ /^ *[0-9a-f]+:\t/) next
            split($0, f, "\t"); a = hex(substr(f[1], 1, index(f[1], ":") - 1))
            m = f[2]; sub(/\.(f32|f64|32|64|s32|u32|f32\.s32|s32\.f32)+$/, "", m); sub(/\.[nw]$/, "", m)
            extra = 0
            if (m ~ /^v(div|sqrt)/) extra = 13
            else if (m ~ /^v(n?ml[as]|f?n?fm[as])$/) extra = 2
            else if (m ~ /^v(ldr|str)/) extra = 1
            else if (m ~ /^v(ldm|stm|push|pop)/) {   # 1 + words moved (a d register is 2)
                r = f[3]; gsub(/[^{]*\{|\}.*/, "", r); n = split(r, x, ","); extra = 0
                for (k = 1; k <= n; k++) {
                    w = (x[k] ~ /d/) ? 2 : 1
                    if (split(x[k], ab, "-") == 2) { gsub(/[^0-9]/, "", ab[1]); gsub(/[^0-9]/, "", ab[2]); extra += w * (ab[2] - ab[1] + 1) }
                    else extra += w
                }
            }
            if (extra) cost[a] = extra
            next
        }
        /^#/ { next }
        { a = hex($1); if (a in cost) s += cost[a] * $2 }
        END { print s + 0 }' "$out/disasm.txt" "$out/region_$1.txt")
    echo $((base + fpu))
}
ok=true
i=0
while read -r line; do
    file=${line#file=}
    file=${file%% *}
    host=$(target/release/examples/kws "tests/kws/$file" --raw)
    same=false
    [ "${line#file=$file }" = "$host" ] && same=true
    [ "$same" = true ] || ok=false
    if [ "$count" = false ]; then
        echo "$line host_equal=$same"
        [ "$same" = true ] || echo "  host: $host" >&2
        continue
    fi
    fe=$(insns $((2 * i)))
    nn=$(insns $((2 * i + 1)))
    echo "$line frontend_instructions=$fe frontend_est_cycles=$(cycles $((2 * i)) "$fe")" \
        "network_instructions=$nn network_est_cycles=$(cycles $((2 * i + 1)) "$nn")" \
        "host_equal=$same"
    [ "$same" = true ] || echo "  host: $host" >&2
    i=$((i + 1))
done < <(grep '^file=' "$out/firmware.log")
grep '^ram ' "$out/firmware.log"
[ "$ok" = true ]

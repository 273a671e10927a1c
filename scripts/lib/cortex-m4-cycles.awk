# The Cortex-M4 cycle estimate of one measured region (scripts/bench-cortex-m4.sh and
# scripts/bench-cortex-m4-model.sh; the cost model is described in bench-cortex-m4.sh's
# header): from the symbols (arm-none-eabi-nm -S -C), the disassembly (objdump -d) and the
# region's per-address histogram (qemu-insncount's region_<n>.txt). Variables: name, macs,
# insns. Prints "<name> est_cycles=<N> cycles_per_mac=<x>", then the hot loop and the code
# the region ran (two indented lines).
function hex(s,    n, k, c) {
    n = 0; s = tolower(s); gsub(/ /, "", s)
    for (k = 1; k <= length(s); k++) { c = index("0123456789abcdef", substr(s, k, 1)); if (c == 0) return -1; n = n * 16 + c - 1 }
    return n
}
function short(s) {                        # a demangled Rust path, without generics
    gsub(/<[^<>]*>/, "", s); gsub(/<[^<>]*>/, "", s); sub(/::\{closure#0\}/, "", s)
    n = split(s, parts, "::"); return n >= 2 ? parts[n - 1] "::" parts[n] : s
}
FILENAME == ARGV[1] {                      # symbols: addr size type name...
    ns++; sa[ns] = hex($1); ss[ns] = hex($2)
    nm = $4; for (k = 5; k <= NF; k++) nm = nm " " $k
    sn[ns] = short(nm); next
}
FILENAME == ARGV[2] {                      # disassembly: "  addr:\tmnemonic\toperands"
    if ($0 !~ /^ *[0-9a-f]+:\t/) next
    split($0, f, "\t"); a = hex(substr(f[1], 1, index(f[1], ":") - 1))
    if (a < 0 || f[2] ~ /^\./) next        # data (.word/.short/.byte) is not code
    mn[a] = f[2]; op[a] = f[3]; order[++no] = a
    next
}
/^#/ { next }                              # histogram: "addr count"
{ cnt[hex($1)] = $2 + 0 }
END {
    for (x = 1; x < no; x++) { nx[order[x]] = order[x + 1]; len[order[x]] = order[x + 1] - order[x] }
    cycles = 0; prevmem = 0
    for (x = 1; x <= no; x++) {
        a = order[x]; c = cnt[a] + 0
        m = mn[a]; sub(/\.[nw]$/, "", m)
        base = m; sub(/(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le)$/, "", base)
        cost = 1; single = 0; cy = -1
        if (m ~ /^(ldr|ldrb|ldrh|ldrsb|ldrsh)(eq|ne|cs|hs|cc|lo|mi|pl|hi|ls|ge|lt|gt|le)?$/) { cost = prevmem ? 1 : 2; single = 1 }
        else if (m ~ /^(str|strb|strh)(eq|ne|cs|hs|cc|lo|mi|pl|hi|ls|ge|lt|gt|le)?$/) { cost = 1; single = 1 }
        else if (m ~ /^(ldrd|strd)/) cost = 3
        else if (m ~ /^(ldm|stm|push|pop)/) {
            regs = op[a]; gsub(/[^{]*\{|\}.*/, "", regs); nreg = split(regs, rr, ",")
            for (r in rr) if (rr[r] ~ /-/) { split(rr[r], ab, "-"); sub(/^ *r/, "", ab[1]); sub(/^ *r/, "", ab[2]); if (ab[1] ~ /^[0-9]+$/ && ab[2] ~ /^[0-9]+$/) nreg += ab[2] - ab[1] }
            cost = 1 + nreg
            if (op[a] ~ /pc/) cost += 2
        }
        else if (m ~ /^tb[bh]/) cost = 6
        else if (m ~ /^[su]div/) cost = 7
        else if (m ~ /^(b|bl|blx|bx)$/) cost = 3
        else if (m ~ /^(cbz|cbnz)$/ || (m ~ /^b/ && base == "b")) {
            taken = c - (cnt[nx[a]] + 0); if (taken < 0) taken = 0
            cy = c + 2 * taken
        }
        if (cy < 0) cy = c * cost
        cyc[a] = cy; cycles += cy
        prevmem = single && c > 0
        if (c > 0) for (s = 1; s <= ns; s++) if (a >= sa[s] && a < sa[s] + ss[s]) { fn[a] = sn[s]; foot[sn[s]] += len[a]; break }
    }
    printf "%s est_cycles=%d cycles_per_mac=%.3f\n", name, cycles, cycles / macs
    # The hot loop: the run of consecutive instructions with one execution count that
    # executes the most instructions in all.
    best = 0; bx = 0; bl = 0
    for (x = 1; x <= no; x++) {
        c = cnt[order[x]] + 0; if (c == 0) continue
        y = x; while (y + 1 <= no && cnt[order[y + 1]] + 0 == c) y++
        if (c * (y - x + 1) > best) { best = c * (y - x + 1); bx = x; bl = y - x + 1 }
        x = y
    }
    sm = 0; hc = 0; ld = ""; split("", lds)
    for (x = bx; x < bx + bl; x++) {
        a = order[x]; m = mn[a]; sub(/\.[nw]$/, "", m); hc += cyc[a]
        if (m == "smlad") sm++
        else if (m ~ /^(ldr|ldm)/) lds[m]++
    }
    for (m in lds) ld = ld ", " lds[m] " " m
    top = cnt[order[bx]]
    printf "  hot loop (%s): %d instructions x %d passes = %.0f%% of the count; per pass %d smlad (%d multiply-adds)%s, %.0f cycles = %.3f cycles/MAC\n", \
        fn[order[bx]], bl, top, 100 * best / insns, sm, 2 * sm, ld, hc / top, sm ? hc / top / (2 * sm) : 0
    tot = 0; list = ""
    for (g in foot) { tot += foot[g]; if (foot[g] >= 64) list = list sprintf(" %s %d,", g, foot[g]) }
    printf "  code run by this case: %d bytes;%s\n", tot, list
}

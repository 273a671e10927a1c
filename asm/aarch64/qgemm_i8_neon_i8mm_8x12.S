/* qgemm_i8_neon_i8mm_8x12 — int8 GEMM micro-kernel, AArch64 NEON + int8 matrix multiply
 * (ARMv8.6 FEAT_I8MM: `smmla`), tile MR×NR = 8×12, packing format I8x8.
 *
 * Contract (src/kernels/int8.rs, struct QgemmArgs; strides in BYTES, any sign):
 *   void kernel(const QgemmArgs *args)        AAPCS64: x0 = args
 *     C[i, j] (+)= Σ_q Σ_{t<8} A'[i, 8q+t]·B'[8q+t, j] + row_off[i] + col_off[j]
 *   for i < m, j < n (i32, wrapping; "+=" when flags & 1 (ACCUMULATE), else "=" and C is
 *   never read). A' (i8) row i, k-group q: the 8 bytes at a + i*a_rs + q*a_ks (packed:
 *   a_rs = 8, a_ks = 64, so rows 2p and 2p+1 are one 16-byte `smmla` operand). B' (i8)
 *   k-group q: b + q*b_ks holds [12 columns][8 bytes] (packed b_ks = 96; columns 2c and
 *   2c+1 are one operand). row_off: m i32, col_off: 12 i32. C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 8, 1 <= n <= 12, k_groups >= 0 (other m or n: returns without doing anything).
 *   Exact: `smmla` adds eight i8·i8 products into each i32 lane (no 16-bit intermediate).
 *   Reads: exactly the 8·m bytes of rows 0..m of A' per k-group (an odd last row is an 8-byte
 *   load; the other half of its operand is zero), the 96 bytes of B' per k-group,
 *   row_off[0..m), col_off[0..12), and with ACCUMULATE exactly the m×n tile of C — nothing
 *   else (no over-read). Writes: exactly the m×n tile of C.
 *   Hints: prfm pstl1keep at the 1st and the NR-th i32 of C rows 0..m before the k loop
 *   (prefetches never fault).
 *
 * `smmla vD.4s, vA.16b, vB.16b`: vA = rows r, r+1 (8 k each), vB = columns c, c+1; vD +=
 *   [A_r·B_c, A_r·B_c+1, A_r+1·B_c, A_r+1·B_c+1] (32 multiply-adds).
 * Inner loop, per k-group: 24 `smmla` (4 row pairs × 6 column pairs, 768 multiply-adds),
 *   the A' group (packed: 2 ldp q for m = 8; exactly 8·m bytes for other m; otherwise per
 *   row pair one 8-byte load and one lane load), and B' in three ldp q (v4-v7 rotate:
 *   column pairs 0-3, then 4-5 into v4-v5 once pairs 0-1 are consumed). Unrolled by 2.
 *   Each m = 1..8 has its own loop with only its row pairs' smmla and loads.
 * Epilogue: accumulator (p, c) holds a 2×2 block; zip1/zip2 on 64-bit lanes of column pairs
 *   (c, c+1) give rows 2p and 2p+1 as 4 consecutive columns (see UNZIP).
 *
 * Registers:
 *   v8-v31  accumulators: row pair p (rows 2p, 2p+1), column pair c in v(8+6p+c).
 *           v8-v15 are callee-saved (d8-d15): saved on entry, restored on exit.
 *   v0-v3   the A' group, row pair p in v(p); v4-v7 the B' column pairs.
 *   x1 A' (a_rs == 8) | x9-x16 A' row pointers (other a_rs), x2 B', x3 b_ks, x4 a_ks,
 *   x5 k-group counter, x6 a_rs then n, x17 m; epilogue: see qgemm_neon.h (v7 also holds
 *   an unzipped row there).
 * Clobbers: x1-x17, v0-v7, v16-v31, the upper halves of v8-v15, flags. Saves/restores
 *   x29, x30 (frame record), d8-d15 (80 bytes of stack). Leaf as far as the caller can tell.
 */
#include "common.h"
#include "aarch64/qgemm_neon.h"

        .arch armv8.2-a+i8mm
        .text

/* One column pair (B' operand in v\vb): acc(p) += A'(pair p) × B' for the P row pairs. */
.macro MMLA P, vb, r0, r1, r2, r3
        smmla v\r0\().4s, v0.16b, v\vb\().16b
 .if \P > 1
        smmla v\r1\().4s, v1.16b, v\vb\().16b
 .endif
 .if \P > 2
        smmla v\r2\().4s, v2.16b, v\vb\().16b
 .endif
 .if \P > 3
        smmla v\r3\().4s, v3.16b, v\vb\().16b
 .endif
.endm

/* The A' group when a_rs == 8 (or m == 1): exactly the 8·m bytes at x1, then x1 += a_ks.
 * An 8-byte load zeroes the upper half of its register (the missing odd row). */
.macro LOAD_A_C m
 .if \m == 1
        ldr d0, [x1]
 .elseif \m == 2
        ldr q0, [x1]
 .elseif \m == 3
        ldr q0, [x1]
        ldr d1, [x1, #16]
 .elseif \m == 4
        ldp q0, q1, [x1]
 .elseif \m == 5
        ldp q0, q1, [x1]
        ldr d2, [x1, #32]
 .elseif \m == 6
        ldp q0, q1, [x1]
        ldr q2, [x1, #32]
 .elseif \m == 7
        ldp q0, q1, [x1]
        ldr q2, [x1, #32]
        ldr d3, [x1, #48]
 .else
        ldp q0, q1, [x1]
        ldp q2, q3, [x1, #32]
 .endif
        add x1, x1, x4
.endm

/* Row pair p for any a_rs: row 2p from x(9+2p) into the low half of v\p, row 2p+1 (when it
 * exists) from x(10+2p) into the high half; pointers advanced by a_ks. */
.macro LOAD_PAIR_G m, p, even, odd
 .if 2 * \p < \m
        ldr d\p, [x\even]
        add x\even, x\even, x4
 .endif
 .if 2 * \p + 1 < \m
        ld1 {v\p\().d}[1], [x\odd], x4
 .endif
.endm

.macro LOAD_A_G m
        LOAD_PAIR_G \m, 0, 9, 10
        LOAD_PAIR_G \m, 1, 11, 12
        LOAD_PAIR_G \m, 2, 13, 14
        LOAD_PAIR_G \m, 3, 15, 16
.endm

/* One k-group for m rows (P = ceil(m/2) row pairs). */
.macro KSTEP mode, m, P
        LOAD_A_\mode \m
        ldp q4, q5, [x2]
        ldp q6, q7, [x2, #32]
        MMLA \P, 4, 8, 14, 20, 26
        MMLA \P, 5, 9, 15, 21, 27
        ldp q4, q5, [x2, #64]
        add x2, x2, x3
        MMLA \P, 6, 10, 16, 22, 28
        MMLA \P, 7, 11, 17, 23, 29
        MMLA \P, 4, 12, 18, 24, 30
        MMLA \P, 5, 13, 19, 25, 31
.endm

.macro Z6 r0, r1, r2, r3, r4, r5
        movi v\r0\().16b, #0
        movi v\r1\().16b, #0
        movi v\r2\().16b, #0
        movi v\r3\().16b, #0
        movi v\r4\().16b, #0
        movi v\r5\().16b, #0
.endm

/* Clear the accumulators of the P row pairs. */
.macro ZERO P
        Z6 8, 9, 10, 11, 12, 13
 .if \P > 1
        Z6 14, 15, 16, 17, 18, 19
 .endif
 .if \P > 2
        Z6 20, 21, 22, 23, 24, 25
 .endif
 .if \P > 3
        Z6 26, 27, 28, 29, 30, 31
 .endif
.endm

/* The k loop of one (mode, m), then the epilogue entered at row m-1. */
.macro VARIANT mode, m, P
.L\mode\m:
        ZERO \P
        cmp x5, #2
        b.lo 2f
        .p2align 4
1:      KSTEP \mode, \m, \P
        KSTEP \mode, \m, \P
        sub x5, x5, #2
        cmp x5, #2
        b.hs 1b
2:      cbz x5, 3f
        KSTEP \mode, \m, \P
3:      QG_EPILOGUE_SETUP \m, 3, 12
.endm

        .globl EDGEMM_SYM(qgemm_i8_neon_i8mm_8x12)
        .type EDGEMM_SYM(qgemm_i8_neon_i8mm_8x12), %function
        .p2align 4
EDGEMM_SYM(qgemm_i8_neon_i8mm_8x12):
        QG_PROLOGUE
        QG_CHECK_MN 8, 12, .Ldone
        ldr x1, [x0, #ARG_A]
        ldr x2, [x0, #ARG_B]
        ldr x3, [x0, #ARG_B_KS]
        ldr x4, [x0, #ARG_A_KS]
        ldr x5, [x0, #ARG_KG]
        ldr x6, [x0, #ARG_A_RS]
        ldr x7, [x0, #ARG_C]
        ldr x8, [x0, #ARG_C_RS]
        ldr x17, [x0, #ARG_M]
        QG_PREFETCH_C 12
        /* Mode: row pairs contiguous (a_rs == 8, or a single row) or strided rows. */
        cmp x17, #1
        b.eq .Lcont
        cmp x6, #8
        b.eq .Lcont
        mov x9, x1
        add x10, x9, x6
        add x11, x10, x6
        add x12, x11, x6
        add x13, x12, x6
        add x14, x13, x6
        add x15, x14, x6
        add x16, x15, x6
        cmp x17, #8
        b.eq .LG8
        cmp x17, #7
        b.eq .LG7
        cmp x17, #6
        b.eq .LG6
        cmp x17, #5
        b.eq .LG5
        cmp x17, #4
        b.eq .LG4
        cmp x17, #3
        b.eq .LG3
        b .LG2
.Lcont:
        cmp x17, #8
        b.eq .LC8
        cmp x17, #7
        b.eq .LC7
        cmp x17, #6
        b.eq .LC6
        cmp x17, #5
        b.eq .LC5
        cmp x17, #4
        b.eq .LC4
        cmp x17, #3
        b.eq .LC3
        cmp x17, #2
        b.eq .LC2
        b .LC1

        VARIANT C, 8, 4
        VARIANT C, 7, 4
        VARIANT C, 6, 3
        VARIANT C, 5, 3
        VARIANT C, 4, 2
        VARIANT C, 3, 2
        VARIANT C, 2, 1
        VARIANT C, 1, 1
        VARIANT G, 8, 4
        VARIANT G, 7, 4
        VARIANT G, 6, 3
        VARIANT G, 5, 3
        VARIANT G, 4, 2
        VARIANT G, 3, 2
        VARIANT G, 2, 1

/* The six accumulators a0..a5 of a row pair (column pairs 0..5) to rows: even row (2p)
 * columns 0-3, 4-7, 8-11 in v7, a1, a3; odd row (2p+1) in a0, a2, a4. zip1/zip2 on 64-bit
 * lanes: (a_c, a_c+1) → [row 2p: c·2 .. c·2+3] and [row 2p+1: same columns]. Each register
 * is read before it is overwritten. */
.macro UNZIP a0, a1, a2, a3, a4, a5
        zip1 v7.2d, v\a0\().2d, v\a1\().2d
        zip2 v\a0\().2d, v\a0\().2d, v\a1\().2d
        zip1 v\a1\().2d, v\a2\().2d, v\a3\().2d
        zip2 v\a2\().2d, v\a2\().2d, v\a3\().2d
        zip1 v\a3\().2d, v\a4\().2d, v\a5\().2d
        zip2 v\a4\().2d, v\a4\().2d, v\a5\().2d
.endm

/* Row pair p: entered at .L<name>_<modd> when m = 2p+2 (rows 2p+1 then 2p) or at
 * .L<name>_<meven> when m = 2p+1 (row 2p only); falls through to pair p-1. */
.macro PAIR name, acc, full, modd, meven, a0, a1, a2, a3, a4, a5
.L\name\()_\modd:
        UNZIP \a0, \a1, \a2, \a3, \a4, \a5
        QG_ROW 3, \acc, \full, \a0, \a2, \a4
        b 1f
.L\name\()_\meven:
        UNZIP \a0, \a1, \a2, \a3, \a4, \a5
1:      QG_ROW 3, \acc, \full, 7, \a1, \a3
.endm

.macro ROWS name, acc, full
        PAIR \name, \acc, \full, 8, 7, 26, 27, 28, 29, 30, 31
        PAIR \name, \acc, \full, 6, 5, 20, 21, 22, 23, 24, 25
        PAIR \name, \acc, \full, 4, 3, 14, 15, 16, 17, 18, 19
        PAIR \name, \acc, \full, 2, 1, 8, 9, 10, 11, 12, 13
        b .Ldone
.endm

        ROWS stf, 0, 1
        ROWS acf, 1, 1
        ROWS stp, 0, 0
        ROWS acp, 1, 0

.Ldone:
        QG_RETURN

        QG_N_SUBROUTINES
        .size EDGEMM_SYM(qgemm_i8_neon_i8mm_8x12), . - EDGEMM_SYM(qgemm_i8_neon_i8mm_8x12)

        .section .note.GNU-stack, "", %progbits

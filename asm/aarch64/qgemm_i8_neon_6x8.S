/* qgemm_i8_neon_6x8 — int8 GEMM micro-kernel for plain ARMv8.0 Advanced SIMD (no dot
 * product: Cortex-A53/A57/A72 class), tile MR×NR = 6×8, packing format I8x4 (the same as
 * the sdot kernel).
 *
 * Contract (src/kernels/int8.rs, struct QgemmArgs; strides in BYTES, any sign):
 *   void kernel(const QgemmArgs *args)        AAPCS64: x0 = args
 *     C[i, j] (+)= Σ_q Σ_{t<4} A'[i, 4q+t]·B'[4q+t, j] + row_off[i] + col_off[j]
 *   for i < m, j < n (i32, wrapping; "+=" when flags & 1 (ACCUMULATE), else "=" and C is
 *   never read). A' (i8) row i, k-group q: the 4 bytes at a + i*a_rs + q*a_ks (packed:
 *   a_rs = 4, a_ks = 24; any strides work). B' (i8) k-group q: b + q*b_ks holds
 *   [8 columns][4 bytes] (packed b_ks = 32). row_off: m i32, col_off: 8 i32.
 *   C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 6, 1 <= n <= 8, k_groups >= 0 (other m or n: returns without doing anything).
 *   Reads: exactly the 4 bytes of each row 0..m of A' per k-group, the 32 bytes of B' per
 *   k-group, row_off[0..m), col_off[0..8), and with ACCUMULATE exactly the m×n tile of C —
 *   nothing else (no over-read). Writes: exactly the m×n tile of C.
 *   Hints: prfm pstl1keep at the 1st and the NR-th i32 of C rows 0..m before the k loop
 *   (prefetches never fault).
 *
 * Exactness for the whole int8 range: `smull` (i8 × i8 → i16) keeps ONE product per 16-bit
 *   lane (|a·b| <= 128·128 = 16384 < 2^15), and `sadalp` (i16 pairs → i32, accumulate)
 *   widens both halves of a pair before adding them. No two products are ever summed in 16
 *   bits: the `smull` + `smlal` (or `smlal2`) pair trick would, and −128·−128·2 = 32768
 *   overflows i16.
 *
 * Per k-group and row i: `ld1r` replicates the row's 4 bytes [a0 a1 a2 a3] to all four
 *   32-bit lanes; B' is [c0: 4 k][c1: 4 k]... so `smull`/`smull2` against the low/high
 *   halves of the two B' registers give, per 16-bit lane, a_t·b[t, c] for 2 columns × 4 k;
 *   four `sadalp` add adjacent pairs into the row's accumulators:
 *     acc(i, h) lanes = [c(2h)·(t0+t1), c(2h)·(t2+t3), c(2h+1)·(t0+t1), c(2h+1)·(t2+t3)]
 *   (h = 0..3 for columns 0-1, 2-3, 4-5, 6-7), so each accumulator holds two partial sums
 *   per column; the epilogue's `addp` of acc(i, 0), acc(i, 1) gives columns 0-3, of
 *   acc(i, 2), acc(i, 3) columns 4-7. Per k-group: 1 ldp q (B'), m ld1r, 4m smull/smull2
 *   (8 multiplies each) and 4m sadalp. Unrolled by 2. Each m = 1..6 has its own loop with
 *   only its rows; rows come from their own pointers (any a_rs).
 *
 * Registers:
 *   v8-v31  accumulators: row i in v(8+4i) .. v(11+4i) (columns 0-1, 2-3, 4-5, 6-7).
 *           v8-v15 are callee-saved (d8-d15): saved on entry, restored on exit.
 *   v0, v1  B' (columns 0-3, 4-7); v2, v3 the replicated A' row (alternating); v4-v7 the
 *           products. x9-x14 A' row pointers, x2 B', x3 b_ks, x4 a_ks, x5 k-group counter,
 *           x17 m; epilogue: see qgemm_neon.h.
 * Clobbers: x2-x17, v0-v7, v16-v31, the upper halves of v8-v15, flags. Saves/restores
 *   x29, x30 (frame record), d8-d15 (80 bytes of stack). Leaf as far as the caller can tell.
 */
#include "common.h"
#include "aarch64/qgemm_neon.h"

        .arch armv8-a
        .text

/* One row of one k-group: A' row from x\pa (then += a_ks) into v\va, products, accumulate. */
.macro KROW pa, va, c0, c1, c2, c3
        ld1r {v\va\().4s}, [x\pa], x4
        smull v4.8h, v0.8b, v\va\().8b
        smull2 v5.8h, v0.16b, v\va\().16b
        smull v6.8h, v1.8b, v\va\().8b
        smull2 v7.8h, v1.16b, v\va\().16b
        sadalp v\c0\().4s, v4.8h
        sadalp v\c1\().4s, v5.8h
        sadalp v\c2\().4s, v6.8h
        sadalp v\c3\().4s, v7.8h
.endm

.macro KSTEP m
        ldp q0, q1, [x2]
        add x2, x2, x3
        KROW 9, 2, 8, 9, 10, 11
 .if \m > 1
        KROW 10, 3, 12, 13, 14, 15
 .endif
 .if \m > 2
        KROW 11, 2, 16, 17, 18, 19
 .endif
 .if \m > 3
        KROW 12, 3, 20, 21, 22, 23
 .endif
 .if \m > 4
        KROW 13, 2, 24, 25, 26, 27
 .endif
 .if \m > 5
        KROW 14, 3, 28, 29, 30, 31
 .endif
.endm

.macro Z4 r0, r1, r2, r3
        movi v\r0\().16b, #0
        movi v\r1\().16b, #0
        movi v\r2\().16b, #0
        movi v\r3\().16b, #0
.endm

.macro ZERO m
        Z4 8, 9, 10, 11
 .if \m > 1
        Z4 12, 13, 14, 15
 .endif
 .if \m > 2
        Z4 16, 17, 18, 19
 .endif
 .if \m > 3
        Z4 20, 21, 22, 23
 .endif
 .if \m > 4
        Z4 24, 25, 26, 27
 .endif
 .if \m > 5
        Z4 28, 29, 30, 31
 .endif
.endm

/* The k loop for m rows, then the epilogue entered at row m-1. */
.macro VARIANT m
.Lm\m:
        ZERO \m
        cmp x5, #2
        b.lo 2f
        .p2align 4
1:      KSTEP \m
        KSTEP \m
        sub x5, x5, #2
        cmp x5, #2
        b.hs 1b
2:      cbz x5, 3f
        KSTEP \m
3:      QG_EPILOGUE_SETUP \m, 2, 8
.endm

        .globl EDGEMM_SYM(qgemm_i8_neon_6x8)
        .type EDGEMM_SYM(qgemm_i8_neon_6x8), %function
        .p2align 4
EDGEMM_SYM(qgemm_i8_neon_6x8):
        QG_PROLOGUE
        QG_CHECK_MN 6, 8, .Ldone
        ldr x2, [x0, #ARG_B]
        ldr x3, [x0, #ARG_B_KS]
        ldr x4, [x0, #ARG_A_KS]
        ldr x5, [x0, #ARG_KG]
        ldr x6, [x0, #ARG_A_RS]
        ldr x7, [x0, #ARG_C]
        ldr x8, [x0, #ARG_C_RS]
        ldr x17, [x0, #ARG_M]
        QG_PREFETCH_C 8
        /* Row pointers (only rows < m are ever dereferenced). */
        ldr x9, [x0, #ARG_A]
        add x10, x9, x6
        add x11, x10, x6
        add x12, x11, x6
        add x13, x12, x6
        add x14, x13, x6
        cmp x17, #6
        b.eq .Lm6
        cmp x17, #5
        b.eq .Lm5
        cmp x17, #4
        b.eq .Lm4
        cmp x17, #3
        b.eq .Lm3
        cmp x17, #2
        b.eq .Lm2
        b .Lm1

        VARIANT 6
        VARIANT 5
        VARIANT 4
        VARIANT 3
        VARIANT 2
        VARIANT 1

/* Row i: fold the two partial sums per column (addp), then the common row output. */
.macro ROW acc, full, a0, a1, a2, a3
        addp v\a0\().4s, v\a0\().4s, v\a1\().4s
        addp v\a2\().4s, v\a2\().4s, v\a3\().4s
        QG_ROW 2, \acc, \full, \a0, \a2, -
.endm

.macro ROWS name, acc, full
.L\name\()_6: ROW \acc, \full, 28, 29, 30, 31
.L\name\()_5: ROW \acc, \full, 24, 25, 26, 27
.L\name\()_4: ROW \acc, \full, 20, 21, 22, 23
.L\name\()_3: ROW \acc, \full, 16, 17, 18, 19
.L\name\()_2: ROW \acc, \full, 12, 13, 14, 15
.L\name\()_1: ROW \acc, \full, 8, 9, 10, 11
        b .Ldone
.endm

        ROWS stf, 0, 1
        ROWS acf, 1, 1
        ROWS stp, 0, 0
        ROWS acp, 1, 0

.Ldone:
        QG_RETURN

        QG_N_SUBROUTINES
        .size EDGEMM_SYM(qgemm_i8_neon_6x8), . - EDGEMM_SYM(qgemm_i8_neon_6x8)

        .section .note.GNU-stack, "", %progbits

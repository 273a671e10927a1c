/* qgemm_i8_neon_dot_8x12 — int8 GEMM micro-kernel, AArch64 NEON + dot product (ARMv8.2
 * FEAT_DotProd: `sdot`), tile MR×NR = 8×12, packing format I8x4.
 *
 * Contract (src/kernels/int8.rs, struct QgemmArgs; strides in BYTES, any sign):
 *   void kernel(const QgemmArgs *args)        AAPCS64: x0 = args
 *     C[i, j] (+)= Σ_q Σ_{t<4} A'[i, 4q+t]·B'[4q+t, j] + row_off[i] + col_off[j]
 *   for i < m, j < n (i32, wrapping; "+=" when flags & 1 (ACCUMULATE), else "=" and C is
 *   never read). A' (i8) row i, k-group q: the 4 bytes at a + i*a_rs + q*a_ks (packed:
 *   a_rs = 4, a_ks = 32). B' (i8) k-group q: b + q*b_ks holds [12 columns][4 bytes] (packed
 *   b_ks = 48). row_off: m i32, col_off: 12 i32. C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 8, 1 <= n <= 12, k_groups >= 0 (other m or n: returns without doing anything).
 *   Exact: every `sdot` lane adds four i8·i8 products into an i32 (no 16-bit intermediate).
 *   Reads: exactly the 4·m bytes of rows 0..m of A' per k-group (any a_rs), the 48 bytes of
 *   B' per k-group, row_off[0..m), col_off[0..12), and with ACCUMULATE exactly the m×n tile
 *   of C — nothing else (no over-read). Writes: exactly the m×n tile of C.
 *   Hints: prfm pstl1keep at the 1st and the NR-th i32 of C rows 0..m before the k loop
 *   (prefetches never fault).
 *
 * Inner loop, per k-group: 24 `sdot vC.4s, vB.16b, vA.4b[lane]` (8 rows × 3 vectors of 4
 *   columns, 16 multiply-adds each), one 3-register ld1 of B' (48 bytes), and the A' column:
 *   with a_rs == 4 (packed) one ldp q for m = 8 and exact loads of 4·m bytes otherwise (two
 *   loads for 4 < m < 8; for m = 7 an ldur q ending at row 6 overlaps the first); otherwise
 *   one lane load per row. Unrolled by 2 k-groups, the B' group alternating between v2-v4
 *   and v5-v7. Each m = 1..8 has its own loop with only its rows' sdots and loads.
 *
 * Registers:
 *   v8-v31  accumulators: row i in v(8+3i), v(9+3i), v(10+3i) (columns 0-3, 4-7, 8-11).
 *           v8-v15 are callee-saved (d8-d15): saved on entry, restored on exit.
 *   v0, v1  the A' column (row i in a 32-bit lane, see AMAP_*); v2-v4, v5-v7 the B' group.
 *   x1 A' (a_rs == 4) | x9-x16 A' row pointers (other a_rs), x2 B', x3 b_ks, x4 a_ks,
 *   x5 k-group counter, x6 a_rs then n, x17 m; epilogue: see qgemm_neon.h.
 * Clobbers: x1-x17, v0-v7, v16-v31, the upper halves of v8-v15, flags. Saves/restores
 *   x29, x30 (frame record), d8-d15 (80 bytes of stack). Leaf as far as the caller can tell
 *   (the partial-row loads/stores are local bl subroutines).
 */
#include "common.h"
#include "aarch64/qgemm_neon.h"

        .arch armv8.2-a+dotprod
        .text

/* One column block: acc c_i += B(vb) · A row i for rows i < m. */
.macro COL m, vb, c0, c1, c2, c3, c4, c5, c6, c7, a0, a1, a2, a3, a4, a5, a6, a7
        sdot v\c0\().4s, v\vb\().16b, \a0
 .if \m > 1
        sdot v\c1\().4s, v\vb\().16b, \a1
 .endif
 .if \m > 2
        sdot v\c2\().4s, v\vb\().16b, \a2
 .endif
 .if \m > 3
        sdot v\c3\().4s, v\vb\().16b, \a3
 .endif
 .if \m > 4
        sdot v\c4\().4s, v\vb\().16b, \a4
 .endif
 .if \m > 5
        sdot v\c5\().4s, v\vb\().16b, \a5
 .endif
 .if \m > 6
        sdot v\c6\().4s, v\vb\().16b, \a6
 .endif
 .if \m > 7
        sdot v\c7\().4s, v\vb\().16b, \a7
 .endif
.endm

.macro DOTS m, vb0, vb1, vb2, a0, a1, a2, a3, a4, a5, a6, a7
        COL \m, \vb0, 8, 11, 14, 17, 20, 23, 26, 29, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
        COL \m, \vb1, 9, 12, 15, 18, 21, 24, 27, 30, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
        COL \m, \vb2, 10, 13, 16, 19, 22, 25, 28, 31, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
.endm

/* Where row i of A' sits after the loads (a 32-bit lane of v0 or v1). */
#define AMAP_STD  v0.4b[0], v0.4b[1], v0.4b[2], v0.4b[3], v1.4b[0], v1.4b[1], v1.4b[2], v1.4b[3]
#define AMAP_C3   v0.4b[0], v0.4b[1], v1.4b[0], -, -, -, -, -
#define AMAP_C7   v0.4b[0], v0.4b[1], v0.4b[2], v0.4b[3], v1.4b[1], v1.4b[2], v1.4b[3], -

/* The A' column when a_rs == 4 (or m == 1): exactly the 4·m bytes at x1, then x1 += a_ks. */
.macro LOAD_A_C m
 .if \m == 1
        ldr s0, [x1]
 .elseif \m == 2
        ldr d0, [x1]
 .elseif \m == 3
        ldr d0, [x1]
        ldr s1, [x1, #8]
 .elseif \m == 4
        ldr q0, [x1]
 .elseif \m == 5
        ldr q0, [x1]
        ldr s1, [x1, #16]
 .elseif \m == 6
        ldr q0, [x1]
        ldr d1, [x1, #16]
 .elseif \m == 7
        ldr q0, [x1]
        ldur q1, [x1, #12]              /* rows 3-6: row 4 in lane 1 (AMAP_C7) */
 .else
        ldp q0, q1, [x1]
 .endif
        add x1, x1, x4
.endm

/* The A' column for any a_rs: row i from its pointer x(9+i), each advanced by a_ks. Lane 0
 * of each vector is a plain scalar load (no dependence on the register's old value). */
.macro LOAD_A_G m
        ldr s0, [x9]
        add x9, x9, x4
        ld1 {v0.s}[1], [x10], x4
 .if \m > 2
        ld1 {v0.s}[2], [x11], x4
 .endif
 .if \m > 3
        ld1 {v0.s}[3], [x12], x4
 .endif
 .if \m > 4
        ldr s1, [x13]
        add x13, x13, x4
 .endif
 .if \m > 5
        ld1 {v1.s}[1], [x14], x4
 .endif
 .if \m > 6
        ld1 {v1.s}[2], [x15], x4
 .endif
 .if \m > 7
        ld1 {v1.s}[3], [x16], x4
 .endif
.endm

/* One k-group. mode: C (a_rs == 4) or G (any a_rs); B' into vb0-vb2. */
.macro KSTEP mode, m, vb0, vb1, vb2, amap:vararg
        LOAD_A_\mode \m
        ld1 {v\vb0\().16b, v\vb1\().16b, v\vb2\().16b}, [x2], x3
        DOTS \m, \vb0, \vb1, \vb2, \amap
.endm

.macro ZROW r0, r1, r2
        movi v\r0\().16b, #0
        movi v\r1\().16b, #0
        movi v\r2\().16b, #0
.endm

.macro ZERO m
        ZROW 8, 9, 10
 .if \m > 1
        ZROW 11, 12, 13
 .endif
 .if \m > 2
        ZROW 14, 15, 16
 .endif
 .if \m > 3
        ZROW 17, 18, 19
 .endif
 .if \m > 4
        ZROW 20, 21, 22
 .endif
 .if \m > 5
        ZROW 23, 24, 25
 .endif
 .if \m > 6
        ZROW 26, 27, 28
 .endif
 .if \m > 7
        ZROW 29, 30, 31
 .endif
.endm

/* The k loop of one (mode, m), then the epilogue entered at row m-1. */
.macro VARIANT mode, m, amap:vararg
.L\mode\m:
        ZERO \m
        cmp x5, #2
        b.lo 2f
        .p2align 4
1:      KSTEP \mode, \m, 2, 3, 4, \amap
        KSTEP \mode, \m, 5, 6, 7, \amap
        sub x5, x5, #2
        cmp x5, #2
        b.hs 1b
2:      cbz x5, 3f
        KSTEP \mode, \m, 2, 3, 4, \amap
3:      QG_EPILOGUE_SETUP \m, 3, 12
.endm

        .globl EDGEMM_SYM(qgemm_i8_neon_dot_8x12)
        .type EDGEMM_SYM(qgemm_i8_neon_dot_8x12), %function
        .p2align 4
EDGEMM_SYM(qgemm_i8_neon_dot_8x12):
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
        /* Mode: A' column contiguous (a_rs == 4, or a single row) or strided rows. */
        cmp x17, #1
        b.eq .Lcont
        cmp x6, #4
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

        VARIANT C, 8, AMAP_STD
        VARIANT C, 7, AMAP_C7
        VARIANT C, 6, AMAP_STD
        VARIANT C, 5, AMAP_STD
        VARIANT C, 4, AMAP_STD
        VARIANT C, 3, AMAP_C3
        VARIANT C, 2, AMAP_STD
        VARIANT C, 1, AMAP_STD
        VARIANT G, 8, AMAP_STD
        VARIANT G, 7, AMAP_STD
        VARIANT G, 6, AMAP_STD
        VARIANT G, 5, AMAP_STD
        VARIANT G, 4, AMAP_STD
        VARIANT G, 3, AMAP_STD
        VARIANT G, 2, AMAP_STD

/* Rows m-1 down to 0: each variant enters at its m. */
.macro ROWS name, acc, full
.L\name\()_8: QG_ROW 3, \acc, \full, 29, 30, 31
.L\name\()_7: QG_ROW 3, \acc, \full, 26, 27, 28
.L\name\()_6: QG_ROW 3, \acc, \full, 23, 24, 25
.L\name\()_5: QG_ROW 3, \acc, \full, 20, 21, 22
.L\name\()_4: QG_ROW 3, \acc, \full, 17, 18, 19
.L\name\()_3: QG_ROW 3, \acc, \full, 14, 15, 16
.L\name\()_2: QG_ROW 3, \acc, \full, 11, 12, 13
.L\name\()_1: QG_ROW 3, \acc, \full, 8, 9, 10
        b .Ldone
.endm

        ROWS stf, 0, 1
        ROWS acf, 1, 1
        ROWS stp, 0, 0
        ROWS acp, 1, 0

.Ldone:
        QG_RETURN

        QG_N_SUBROUTINES
        .size EDGEMM_SYM(qgemm_i8_neon_dot_8x12), . - EDGEMM_SYM(qgemm_i8_neon_dot_8x12)

        .section .note.GNU-stack, "", %progbits

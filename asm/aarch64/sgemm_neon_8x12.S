/* sgemm_neon_8x12 — f32 GEMM micro-kernel, AArch64 Advanced SIMD (NEON), tile MR×NR = 8×12.
 *
 * Contract (see src/kernels/f32.rs, struct SgemmArgs; all strides in BYTES, any sign):
 *   void kernel(const SgemmArgs *args)        AAPCS64: x0 = args
 *     C[i, j] = alpha * Σ_p A[i, p]·B[p, j] + beta * C[i, j]   for i < m, j < n
 *   A[i, p] at a + i*a_rs + p*a_ks   (packed MR-slivers: a_rs = 4, a_ks = 32; any strides)
 *   B[p, j] at b + p*b_ks + 4*j      (columns unit-stride; packed NR-slivers: b_ks = 48)
 *   C[i, j] at c + i*c_rs + 4*j      (columns unit-stride)
 *   1 <= m <= 8, 1 <= n <= 12, k >= 0 (other m: returns without doing anything).
 *   beta == 0 (either sign): C is never read (it may hold NaN).
 *   Reads: exactly rows 0..m of A for k steps, and the 12 columns of B at every k step,
 *   whatever n (the contract's NR-columns rule) — nothing else. Writes: exactly the m×n tile.
 *   b_pf: after loading B row p, prefetches (prfm: a hint, never faults) the address of
 *   row p+1 plus b_pf, i.e. the same row of the next micro-panel.
 *
 * Inner loop, per k step: 24 `fmla vC.4s, vB.4s, vA.s[lane]` (8 rows × 3 vectors of 4
 *   columns), one 3-register ld1 of the B row (12 floats), and the A column: with a_rs == 4
 *   (packed, or a column-major A read in place) one ldp q for m = 8 (for 4 < m < 8 a q load
 *   plus an overlapping ldur q ending at row m-1; for m <= 4 a q/d/s load), otherwise
 *   (rows of A strided) one load per row into the lanes. Unrolled by 4 k steps; the B row
 *   alternates between v2-v4 and v5-v7, so a B load never waits for the FMAs of the previous
 *   step. Each m = 1..8 has its own loop with only the m rows' FMAs, loads and accumulators.
 *
 * Registers:
 *   v8-v31  accumulators: row i of the tile in v(8+3i), v(9+3i), v(10+3i) (columns 0-3,
 *           4-7, 8-11). v8-v15 are callee-saved (d8-d15): saved on entry, restored on exit.
 *   v0, v1  the A column (row i in a lane of v0 or v1, see AMAP_* below);
 *   v2-v4, v5-v7  the B row (alternating); in the epilogue v0.s[0] = alpha, v0.s[1] = beta,
 *           v1-v3 a row of C (beta != 0) or the row being stored when n < 12.
 *   x1 A (a_rs == 4) | x9-x16 A row pointers (other a_rs), x2 B, x3 b_ks, x4 a_ks,
 *   x5 k counter, x6 a_rs then m then n (epilogue), x7 C row, x8 c_rs, x17 m then b_pf,
 *   x9 temporary in the epilogue.
 * Clobbers: x1-x17, v0-v7, v16-v31, the upper halves of v8-v15 (not preserved under
 *   AAPCS64), flags. Saves/restores x29, x30 (a frame record), d8-d15 (80 bytes of
 *   stack, 16-byte aligned frame). Leaf as far as the caller can tell (the partial-row
 *   loads/stores are local bl subroutines, covered by the saved x30).
 */
#include "common.h"

        .text

#define ARG_A     0
#define ARG_B     8
#define ARG_C     16
#define ARG_K     24
#define ARG_A_RS  32
#define ARG_A_KS  40
#define ARG_B_KS  48
#define ARG_C_RS  56
#define ARG_M     64
#define ARG_N     72
#define ARG_ALPHA 80
#define ARG_BETA  84
#define ARG_B_PF  88

/* ---- the k step ----------------------------------------------------------------------- */

/* One column block j of the tile: acc(i, j) += B(vb) * A[i] for rows i < m.
 * c0..c7: the row accumulators of this column block; a0..a7: where row i's A value is. */
.macro COL m, vb, c0, c1, c2, c3, c4, c5, c6, c7, a0, a1, a2, a3, a4, a5, a6, a7
        fmla v\c0\().4s, v\vb\().4s, \a0
 .if \m > 1
        fmla v\c1\().4s, v\vb\().4s, \a1
 .endif
 .if \m > 2
        fmla v\c2\().4s, v\vb\().4s, \a2
 .endif
 .if \m > 3
        fmla v\c3\().4s, v\vb\().4s, \a3
 .endif
 .if \m > 4
        fmla v\c4\().4s, v\vb\().4s, \a4
 .endif
 .if \m > 5
        fmla v\c5\().4s, v\vb\().4s, \a5
 .endif
 .if \m > 6
        fmla v\c6\().4s, v\vb\().4s, \a6
 .endif
 .if \m > 7
        fmla v\c7\().4s, v\vb\().4s, \a7
 .endif
.endm

/* The 3·m FMAs of one k step, B row in vb0-vb2, A rows where a0..a7 say. */
.macro FMAS m, vb0, vb1, vb2, a0, a1, a2, a3, a4, a5, a6, a7
        COL \m, \vb0, 8, 11, 14, 17, 20, 23, 26, 29, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
        COL \m, \vb1, 9, 12, 15, 18, 21, 24, 27, 30, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
        COL \m, \vb2, 10, 13, 16, 19, 22, 25, 28, 31, \a0, \a1, \a2, \a3, \a4, \a5, \a6, \a7
.endm

/* Where row i of A sits after the loads. Lanes 0-3 of v0 and v1 in order, except for the
 * contiguous loads of m = 3, 5, 6, 7, which load exactly m floats (see LOAD_A_C). */
#define AMAP_STD  v0.s[0], v0.s[1], v0.s[2], v0.s[3], v1.s[0], v1.s[1], v1.s[2], v1.s[3]
#define AMAP_C3   v0.s[0], v0.s[1], v1.s[0], -, -, -, -, -
#define AMAP_C5   v0.s[0], v0.s[1], v0.s[2], v0.s[3], v1.s[3], -, -, -
#define AMAP_C6   v0.s[0], v0.s[1], v0.s[2], v0.s[3], v1.s[2], v1.s[3], -, -
#define AMAP_C7   v0.s[0], v0.s[1], v0.s[2], v0.s[3], v1.s[1], v1.s[2], v1.s[3], -

/* The A column when a_rs == 4: exactly m contiguous floats at x1, then x1 += a_ks.
 * For 4 < m < 8 the second load is the q ending at row m-1 (it overlaps the first). */
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
 .elseif \m == 8
        ldp q0, q1, [x1]
 .else
        ldr q0, [x1]
        ldur q1, [x1, #(4 * (\m - 4))]
 .endif
        add x1, x1, x4
.endm

/* The A column for any a_rs: row i from its own pointer x(9+i), each advanced by a_ks.
 * Lane 0 of each vector is a plain scalar load (no dependence on the old register). */
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

/* One k step. mode: C (a_rs == 4) or G (any a_rs); B row into vb0-vb2. */
.macro KSTEP mode, m, vb0, vb1, vb2, amap:vararg
        LOAD_A_\mode \m
        ld1 {v\vb0\().4s, v\vb1\().4s, v\vb2\().4s}, [x2], x3
        prfm pldl1keep, [x2, x17]
        FMAS \m, \vb0, \vb1, \vb2, \amap
.endm

/* ---- one variant per (mode, m) -------------------------------------------------------- */

/* Clear the accumulators of rows 0..m. */
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

.macro VARIANT mode, m, amap:vararg
.L\mode\m:
        ZERO \m
        cmp x5, #4
        b.lo 2f
        .p2align 4
1:      KSTEP \mode, \m, 2, 3, 4, \amap
        KSTEP \mode, \m, 5, 6, 7, \amap
        KSTEP \mode, \m, 2, 3, 4, \amap
        KSTEP \mode, \m, 5, 6, 7, \amap
        sub x5, x5, #4
        cmp x5, #4
        b.hs 1b
2:      cbz x5, 4f
3:      KSTEP \mode, \m, 2, 3, 4, \amap
        subs x5, x5, #1
        b.ne 3b
4:      /* Epilogue: C row m-1 first, then down to row 0 (see ROWS). */
 .if \m > 1
        mov x9, #(\m - 1)
        madd x7, x9, x8, x7
 .endif
        ldr d0, [x0, #ARG_ALPHA]        /* v0.s[0] = alpha, v0.s[1] = beta */
        ldr w9, [x0, #ARG_BETA]
        ldr x6, [x0, #ARG_N]
        lsl w9, w9, #1                  /* drop the sign: zero iff beta == ±0 */
        cmp x6, #12
        b.ne 5f
        cbz w9, .Lb0f_\m
        b .Lbxf_\m
5:      cbz w9, .Lb0p_\m
        b .Lbxp_\m
.endm

/* ---- entry ---------------------------------------------------------------------------- */

        .globl EDGEMM_SYM(sgemm_neon_8x12)
        .type EDGEMM_SYM(sgemm_neon_8x12), %function
        .p2align 4
EDGEMM_SYM(sgemm_neon_8x12):
        stp x29, x30, [sp, #-80]!
        mov x29, sp
        stp d8, d9, [sp, #16]
        stp d10, d11, [sp, #32]
        stp d12, d13, [sp, #48]
        stp d14, d15, [sp, #64]
        ldr x1, [x0, #ARG_A]
        ldr x2, [x0, #ARG_B]
        ldr x3, [x0, #ARG_B_KS]
        ldr x4, [x0, #ARG_A_KS]
        ldr x5, [x0, #ARG_K]
        ldr x6, [x0, #ARG_A_RS]
        ldr x7, [x0, #ARG_C]
        ldr x8, [x0, #ARG_C_RS]
        ldr x17, [x0, #ARG_M]
        sub x9, x17, #1
        cmp x9, #7
        b.hi .Ldone                     /* m == 0 or m > 8: nothing to do */
        /* Prefetch the C tile for writing while the loop runs (hints: never fault). */
        mov x9, x7
        mov x10, x17
0:      prfm pstl1keep, [x9]
        prfm pstl1keep, [x9, #44]
        add x9, x9, x8
        subs x10, x10, #1
        b.ne 0b
        /* Mode: A column contiguous (a_rs == 4, or a single row) or strided rows. */
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
        mov x6, x17
        ldr x17, [x0, #ARG_B_PF]
        cmp x6, #8
        b.eq .LG8
        cmp x6, #7
        b.eq .LG7
        cmp x6, #6
        b.eq .LG6
        cmp x6, #5
        b.eq .LG5
        cmp x6, #4
        b.eq .LG4
        cmp x6, #3
        b.eq .LG3
        b .LG2
.Lcont:
        mov x6, x17
        ldr x17, [x0, #ARG_B_PF]
        cmp x6, #8
        b.eq .LC8
        cmp x6, #7
        b.eq .LC7
        cmp x6, #6
        b.eq .LC6
        cmp x6, #5
        b.eq .LC5
        cmp x6, #4
        b.eq .LC4
        cmp x6, #3
        b.eq .LC3
        cmp x6, #2
        b.eq .LC2
        b .LC1

        VARIANT C, 8, AMAP_STD
        VARIANT C, 7, AMAP_C7
        VARIANT C, 6, AMAP_C6
        VARIANT C, 5, AMAP_C5
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

/* ---- epilogue: scale, add beta·C, store; x7 = C row, x8 = c_rs, x6 = n ----------------- */

/* One row of the tile in v\r0, v\r1, v\r2 (consecutive registers).
 * full: n == 12 (whole-vector loads/stores); otherwise exactly n floats via .Lload_n and
 * .Lstore_n. beta0: C is not read. */
.macro ROW r0, r1, r2, beta0, full
        fmul v\r0\().4s, v\r0\().4s, v0.s[0]
        fmul v\r1\().4s, v\r1\().4s, v0.s[0]
        fmul v\r2\().4s, v\r2\().4s, v0.s[0]
 .if \beta0 == 0
  .if \full
        ld1 {v1.4s, v2.4s, v3.4s}, [x7]
  .else
        bl .Lload_n
  .endif
        fmla v\r0\().4s, v1.4s, v0.s[1]
        fmla v\r1\().4s, v2.4s, v0.s[1]
        fmla v\r2\().4s, v3.4s, v0.s[1]
 .endif
 .if \full
        st1 {v\r0\().4s, v\r1\().4s, v\r2\().4s}, [x7]
 .else
        mov v1.16b, v\r0\().16b
        mov v2.16b, v\r1\().16b
        mov v3.16b, v\r2\().16b
        bl .Lstore_n
 .endif
        sub x7, x7, x8
.endm

/* Rows m-1 down to 0: each variant enters at its m. */
.macro ROWS name, beta0, full
.L\name\()_8: ROW 29, 30, 31, \beta0, \full
.L\name\()_7: ROW 26, 27, 28, \beta0, \full
.L\name\()_6: ROW 23, 24, 25, \beta0, \full
.L\name\()_5: ROW 20, 21, 22, \beta0, \full
.L\name\()_4: ROW 17, 18, 19, \beta0, \full
.L\name\()_3: ROW 14, 15, 16, \beta0, \full
.L\name\()_2: ROW 11, 12, 13, \beta0, \full
.L\name\()_1: ROW 8, 9, 10, \beta0, \full
        b .Ldone
.endm

        ROWS b0f, 1, 1
        ROWS bxf, 0, 1
        ROWS b0p, 1, 0
        ROWS bxp, 0, 0

.Ldone:
        ldp d8, d9, [sp, #16]
        ldp d10, d11, [sp, #32]
        ldp d12, d13, [sp, #48]
        ldp d14, d15, [sp, #64]
        ldp x29, x30, [sp], #80
        ret

/* n % 4 floats at x9 into lanes 0.. of v\r (nothing when n % 4 == 0). */
.macro LOAD_REM r
        tbz x6, #1, 8f
        ldr d\r, [x9], #8
        tbz x6, #0, 9f
        ld1 {v\r\().s}[2], [x9]
        b 9f
8:      tbz x6, #0, 9f
        ldr s\r, [x9]
9:
.endm

/* Lanes 0.. of v\r to n % 4 floats at x9. */
.macro STORE_REM r
        tbz x6, #1, 8f
        str d\r, [x9], #8
        tbz x6, #0, 9f
        st1 {v\r\().s}[2], [x9]
        b 9f
8:      tbz x6, #0, 9f
        str s\r, [x9]
9:
.endm

/* C[0..n) at x7 into v1, v2, v3 (1 <= n <= 11; lanes past n are left undefined, never
 * stored). Reads exactly n floats. Clobbers x9. */
.Lload_n:
        mov x9, x7
        cmp x6, #4
        b.lo 3f
        ldr q1, [x9], #16
        cmp x6, #8
        b.lo 2f
        ldr q2, [x9], #16
        LOAD_REM 3
        ret
2:      LOAD_REM 2
        ret
3:      LOAD_REM 1
        ret

/* v1, v2, v3 to C[0..n) at x7 (1 <= n <= 11). Writes exactly n floats. Clobbers x9. */
.Lstore_n:
        mov x9, x7
        cmp x6, #4
        b.lo 3f
        str q1, [x9], #16
        cmp x6, #8
        b.lo 2f
        str q2, [x9], #16
        STORE_REM 3
        ret
2:      STORE_REM 2
        ret
3:      STORE_REM 1
        ret
        .size EDGEMM_SYM(sgemm_neon_8x12), . - EDGEMM_SYM(sgemm_neon_8x12)

        .section .note.GNU-stack, "", %progbits

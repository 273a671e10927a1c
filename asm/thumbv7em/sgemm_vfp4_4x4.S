/* sgemm_vfp4_4x4 — f32 GEMM micro-kernel for the Cortex-M4F (ARMv7E-M, FPv4-SP: vfma.f32),
 * tile MR×NR = 4×4. Also runs on any M-profile core with FPv5 (Cortex-M7, M33).
 *
 * Contract (see src/kernels/f32.rs, struct SgemmArgs; all strides in BYTES; on this 32-bit
 * target every field is 4 bytes: a 0, b 4, c 8, k 12, a_rs 16, a_ks 20, b_ks 24, c_rs 28,
 * m 32, n 36, alpha 40, beta 44, b_pf 48):
 *   void kernel(const SgemmArgs *args)        AAPCS: r0 = args
 *     C[i, j] = alpha * Σ_p A[i, p]·B[p, j] + beta * C[i, j]   for i < m, j < n
 *   A[i, p] at a + i*a_rs + p*a_ks   (any strides, negative too; word-aligned)
 *   B[p, j] at b + p*b_ks + 4*j      (columns unit-stride)
 *   C[i, j] at c + i*c_rs + 4*j      (columns unit-stride)
 *   1 <= m <= 4, 1 <= n <= 4, k >= 0.
 *   beta == 0 (either sign): C is never read (it may hold NaN).
 *   Reads: rows 0..m of A for k steps (rows m..3 of the tile are computed from row 0 again
 *   and thrown away, so nothing past row m-1 is read); all 4 columns of B for every k step,
 *   whatever n (the contract: the driver zero-pads or reads B in place) — no other
 *   over-read. Writes: only the m×n tile of C. b_pf (prefetch hint) is ignored: the M4 has
 *   no data cache.
 *
 * Loops, chosen at entry from the strides (the M4 has no vector unit, so what matters is how
 * few load instructions feed the 16 vfma of one k step):
 *   .Lrow  a_ks == 4 (A row-major in place, the no-allocation driver path): two k steps per
 *          iteration, one vldmia of 2 per row of A; B rows with one vldm each (one vldmia of
 *          8 for both when b_ks == 16: a packed sliver or a 4-column B). 39–42 instructions
 *          per 32 multiply-adds.
 *   .Lcol  m == 4 and a_rs == 4 (packed A, or A column-major): one vldm of 4 per k step.
 *   .Lgen  anything else: one vldr per row and k step.
 *
 * Registers: s16–s31 accumulators (C[i, j] in s(16 + 4i + j)); s0–s7 A (row i in s(2i), and
 *   s(2i+1) for the second k step of .Lrow; .Lcol uses s0–s3 = rows 0–3); s8–s11 and s12–s15
 *   two rows of B. r0 = args throughout, r1 = B, r2 = b_ks, r3 = k, r4–r7 the four A row
 *   pointers, r8 = a_ks, r9 loop counter; the epilogue uses r9–r12 and lr.
 * Saves r4–r11, lr and s16–s31 (AAPCS callee-saved), 100 bytes of stack; a leaf function.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

#define ARG_A     0
#define ARG_B     4
#define ARG_C     8
#define ARG_K     12
#define ARG_A_RS  16
#define ARG_A_KS  20
#define ARG_B_KS  24
#define ARG_C_RS  28
#define ARG_M     32
#define ARG_N     36
#define ARG_ALPHA 40
#define ARG_BETA  44

/* Accumulator rows of C, and the two B rows. */
#define ROW0 16, 17, 18, 19
#define ROW1 20, 21, 22, 23
#define ROW2 24, 25, 26, 27
#define ROW3 28, 29, 30, 31
#define BP 8, 9, 10, 11
#define BQ 12, 13, 14, 15

/* C row (c0..c3) += A value a × B row (b0..b3). */
.macro ROWFMA c0, c1, c2, c3, a, b0, b1, b2, b3
        vfma.f32 s\c0, s\a, s\b0
        vfma.f32 s\c1, s\a, s\b1
        vfma.f32 s\c2, s\a, s\b2
        vfma.f32 s\c3, s\a, s\b3
.endm

/* One k step over the whole tile: A rows in a0..a3, the B row in BP or BQ. */
.macro TILEFMA a0, a1, a2, a3, b0, b1, b2, b3
        ROWFMA ROW0, \a0, \b0, \b1, \b2, \b3
        ROWFMA ROW1, \a1, \b0, \b1, \b2, \b3
        ROWFMA ROW2, \a2, \b0, \b1, \b2, \b3
        ROWFMA ROW3, \a3, \b0, \b1, \b2, \b3
.endm

/* Two k steps of .Lrow once B rows p, p+1 are in BP, BQ: the A loads are spread between the
 * multiply-adds so each is issued well before its first use. */
.macro ROW2STEPS
        vldmia  r4!, {s0-s1}
        ROWFMA  ROW0, 0, BP
        vldmia  r5!, {s2-s3}
        ROWFMA  ROW0, 1, BQ
        ROWFMA  ROW1, 2, BP
        vldmia  r6!, {s4-s5}
        ROWFMA  ROW1, 3, BQ
        ROWFMA  ROW2, 4, BP
        vldmia  r7!, {s6-s7}
        ROWFMA  ROW2, 5, BQ
        ROWFMA  ROW3, 6, BP
        ROWFMA  ROW3, 7, BQ
.endm

/* Epilogue, one row of C at r9 (accumulators already scaled by alpha, beta in s1, n in r12).
 * Full rows (n == 4) use one vldm/vstm; partial rows test n with IT blocks, so nothing past
 * column n-1 is read or written. */
.macro ST_FULL_B0 c0, c1, c2, c3
        vstm    r9, {s\c0-s\c3}
.endm
.macro ST_FULL_BX c0, c1, c2, c3
        vldm    r9, {s8-s11}
        vfma.f32 s\c0, s8, s1
        vfma.f32 s\c1, s9, s1
        vfma.f32 s\c2, s10, s1
        vfma.f32 s\c3, s11, s1
        vstm    r9, {s\c0-s\c3}
.endm
.macro ST_PART_B0 c0, c1, c2, c3
        vstr    s\c0, [r9]
        cmp     r12, #2
        it      hs
        vstrhs  s\c1, [r9, #4]
        cmp     r12, #3
        it      hs
        vstrhs  s\c2, [r9, #8]
.endm
.macro ST_PART_BX c0, c1, c2, c3
        vldr    s8, [r9]
        vfma.f32 s\c0, s8, s1
        vstr    s\c0, [r9]
        cmp     r12, #2
        ittt    hs
        vldrhs  s9, [r9, #4]
        vfmahs.f32 s\c1, s9, s1
        vstrhs  s\c1, [r9, #4]
        cmp     r12, #3
        ittt    hs
        vldrhs  s10, [r9, #8]
        vfmahs.f32 s\c2, s10, s1
        vstrhs  s\c2, [r9, #8]
.endm

/* Stores rows 0..m-1 (m in r11, c_rs in r10) with one of the ST_* macros, then returns. */
.macro STROWS st
        \st     ROW0
        cmp     r11, #2
        blo     .Ldone
        add     r9, r10
        \st     ROW1
        cmp     r11, #3
        blo     .Ldone
        add     r9, r10
        \st     ROW2
        cmp     r11, #4
        blo     .Ldone
        add     r9, r10
        \st     ROW3
        b       .Ldone
.endm

        .globl  EDGEMM_SYM(sgemm_vfp4_4x4)
        .type   EDGEMM_SYM(sgemm_vfp4_4x4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(sgemm_vfp4_4x4):
        push    {r4-r11, lr}
        vpush   {s16-s31}
        movs    r9, #0
        vmov    s16, s17, r9, r9
        vmov    s18, s19, r9, r9
        vmov    s20, s21, r9, r9
        vmov    s22, s23, r9, r9
        vmov    s24, s25, r9, r9
        vmov    s26, s27, r9, r9
        vmov    s28, s29, r9, r9
        vmov    s30, s31, r9, r9
        ldr     r1, [r0, #ARG_B]
        ldr     r2, [r0, #ARG_B_KS]
        ldr     r3, [r0, #ARG_K]
        ldr     r4, [r0, #ARG_A]
        ldr     r8, [r0, #ARG_A_KS]
        ldr     r9, [r0, #ARG_A_RS]
        ldr     r10, [r0, #ARG_M]
        /* Row pointers; rows at or past m read row 0 (computed, never stored). */
        mov     r5, r4
        mov     r6, r4
        mov     r7, r4
        cmp     r10, #2
        it      hs
        addhs   r5, r4, r9
        cmp     r10, #3
        it      hs
        addhs   r6, r5, r9
        cmp     r10, #4
        it      hs
        addhs   r7, r6, r9
        cmp     r3, #0
        beq     .Lepilogue
        cmp     r8, #4
        beq     .Lrow
        cmp     r10, #4
        bne     .Lgen
        cmp     r9, #4
        beq     .Lcol

/* ---- general strides: one k step per iteration ---------------------------------------- */
.Lgen:
        vldm    r1, {s8-s11}
        add     r1, r2
        vldr    s0, [r4]
        add     r4, r8
        vldr    s2, [r5]
        add     r5, r8
        vldr    s4, [r6]
        add     r6, r8
        vldr    s6, [r7]
        add     r7, r8
        TILEFMA 0, 2, 4, 6, BP
        subs    r3, #1
        bne     .Lgen
        b       .Lepilogue

/* ---- A columns contiguous (a_rs == 4, m == 4): one vldm of the 4 rows per k step -------- */
.Lcol:
        vldm    r4, {s0-s3}
        add     r4, r8
        vldm    r1, {s8-s11}
        add     r1, r2
        TILEFMA 0, 1, 2, 3, BP
        subs    r3, #1
        bne     .Lcol
        b       .Lepilogue

/* ---- A rows contiguous (a_ks == 4): two k steps per iteration --------------------------- */
.Lrow:
        lsrs    r9, r3, #1
        beq     .Lrow_tail
        cmp     r2, #16
        beq     .Lrow16
.Lrow_loop:
        vldm    r1, {s8-s11}
        add     r1, r2
        vldm    r1, {s12-s15}
        add     r1, r2
        ROW2STEPS
        subs    r9, #1
        bne     .Lrow_loop
        b       .Lrow_tail
.Lrow16:                        /* b_ks == 16: rows p and p+1 of B are 8 adjacent floats */
        vldmia  r1!, {s8-s15}
        ROW2STEPS
        subs    r9, #1
        bne     .Lrow16
.Lrow_tail:                     /* odd k: one more step (the pointers are already there) */
        tst     r3, #1
        beq     .Lepilogue
        vldm    r1, {s8-s11}
        vldr    s0, [r4]
        vldr    s2, [r5]
        vldr    s4, [r6]
        vldr    s6, [r7]
        TILEFMA 0, 2, 4, 6, BP

/* ---- C = alpha·acc (+ beta·C) ------------------------------------------------------------ */
.Lepilogue:
        ldr     r9, [r0, #ARG_C]
        ldr     r10, [r0, #ARG_C_RS]
        ldr     r11, [r0, #ARG_M]
        ldr     r12, [r0, #ARG_N]
        ldr     lr, [r0, #ARG_BETA]
        vldr    s0, [r0, #ARG_ALPHA]
        vldr    s1, [r0, #ARG_BETA]
        .irp    r, 16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        vmul.f32 s\r, s\r, s0
        .endr
        lsls    lr, lr, #1              /* Z: beta is +0 or -0, so C is not read */
        beq     .Lbeta0
        cmp     r12, #4
        bne     .Lbx_part
        STROWS  ST_FULL_BX
.Lbx_part:
        STROWS  ST_PART_BX
.Lbeta0:
        cmp     r12, #4
        bne     .Lb0_part
        STROWS  ST_FULL_B0
.Lb0_part:
        STROWS  ST_PART_B0

.Ldone:
        vpop    {s16-s31}
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(sgemm_vfp4_4x4), . - EDGEMM_SYM(sgemm_vfp4_4x4)

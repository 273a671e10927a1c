/* fft_radix4_vfp4 — one decimation-in-time radix-4 stage of the audio frontend's 256-point
 * complex FFT (src/audio/fft.rs, radix4_stage) for the Cortex-M4F (FPv4-SP). The same
 * operations in the same order as the Rust, each rounded once (VMUL, VADD, VSUB: no fused or
 * chained multiply-add), so the results are the same bits as the portable path's.
 *
 * Contract (AAPCS):
 *   void kernel(float *z, unsigned blocks, unsigned quarter, const float *tw)
 *   z: blocks·4·quarter complex points (re, im), word-aligned, transformed in place;
 *   quarter >= 1; tw: quarter rows of 6 floats (w1, w2, w3 as (re, im)), row k the twiddles
 *   of point k of each quarter (row 0, all ones, is not read).
 *   For each block and k < quarter: a, b, c, d = points k, k + Q, k + 2Q, k + 3Q;
 *   b' = w1·b, c' = w2·c, d' = w3·d (k > 0; (wr·xr − wi·xi, wr·xi + wi·xr));
 *   t0 = a + c', t1 = a − c', t2 = b' + d', t3 = b' − d';
 *   a, b, c, d ← t0 + t2, (t1r + t3i, t1i − t3r), t0 − t2, (t1r − t3i, t1i + t3r).
 *
 * Why assembly: the compiler loads each float with its own VLDR (2 cycles) and forms VMLA/VMLS
 * (3 cycles); here each point is one VLDM/VSTM of 2 (3 cycles) and the twiddle row one VLDM
 * of 6 (7 cycles), and the products are VMUL + VADD (1 + 1). 69 estimated cycles a butterfly
 * against 92.
 *
 * Registers: r1 blocks left, r4–r7 the four quarters' point k (loaded in place, stored with
 *   write-back: after a block r7 is the next block's start), r8 the twiddle row, r9 points
 *   left in the block, r10 the bytes of a quarter; s0–s7 a, b, c, d, s8–s13 the twiddles,
 *   s14–s21 products and sums. Saves r4–r10, lr and s16–s21 (32 + 24 bytes of stack).
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* The 4-point DFT of a (s0, s1), b (s2, s3), c (s4, s5), d (s6, s7) in place; stores the
 * four points with write-back. */
.macro DFT4_STORE
        vadd.f32 s14, s0, s4            @ t0
        vadd.f32 s15, s1, s5
        vsub.f32 s16, s0, s4            @ t1
        vsub.f32 s17, s1, s5
        vadd.f32 s18, s2, s6            @ t2
        vadd.f32 s19, s3, s7
        vsub.f32 s20, s2, s6            @ t3
        vsub.f32 s21, s3, s7
        vadd.f32 s0, s14, s18           @ t0 + t2
        vadd.f32 s1, s15, s19
        vadd.f32 s2, s16, s21           @ (t1r + t3i, t1i − t3r)
        vsub.f32 s3, s17, s20
        vsub.f32 s4, s14, s18           @ t0 − t2
        vsub.f32 s5, s15, s19
        vsub.f32 s6, s16, s21           @ (t1r − t3i, t1i + t3r)
        vadd.f32 s7, s17, s20
        vstmia  r4!, {s0-s1}
        vstmia  r5!, {s2-s3}
        vstmia  r6!, {s4-s5}
        vstmia  r7!, {s6-s7}
.endm

/* (xr, xi) ← (wr·xr − wi·xi, wr·xi + wi·xr), products in s14–s17. */
.macro CMUL xr, xi, wr, wi
        vmul.f32 s14, s\wr, s\xr
        vmul.f32 s15, s\wi, s\xi
        vmul.f32 s16, s\wr, s\xi
        vmul.f32 s17, s\wi, s\xr
        vsub.f32 s\xr, s14, s15
        vadd.f32 s\xi, s16, s17
.endm

        .globl  EDGEMM_SYM(fft_radix4_vfp4)
        .type   EDGEMM_SYM(fft_radix4_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_radix4_vfp4):
        push    {r4-r10, lr}
        vpush   {s16-s21}
        lsl     r10, r2, #3             @ bytes of a quarter
        mov     r4, r0
.Lblock:
        add     r5, r4, r10
        add     r6, r5, r10
        add     r7, r6, r10
        /* Point 0: the twiddles are all 1. */
        vldmia  r4, {s0-s1}
        vldmia  r5, {s2-s3}
        vldmia  r6, {s4-s5}
        vldmia  r7, {s6-s7}
        DFT4_STORE
        subs    r9, r2, #1
        beq     .Lnext
        add     r8, r3, #24             @ twiddle row 1
.Lpoint:
        vldmia  r8!, {s8-s13}
        vldmia  r4, {s0-s1}
        vldmia  r5, {s2-s3}
        vldmia  r6, {s4-s5}
        vldmia  r7, {s6-s7}
        CMUL    2, 3, 8, 9
        CMUL    4, 5, 10, 11
        CMUL    6, 7, 12, 13
        DFT4_STORE
        subs    r9, r9, #1
        bne     .Lpoint
.Lnext:
        /* r7 is now the end of the block's fourth quarter: the next block's start. */
        mov     r4, r7
        subs    r1, r1, #1
        bne     .Lblock
        vpop    {s16-s21}
        pop     {r4-r10, pc}
        .size   EDGEMM_SYM(fft_radix4_vfp4), . - EDGEMM_SYM(fft_radix4_vfp4)

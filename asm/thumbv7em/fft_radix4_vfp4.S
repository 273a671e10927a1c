/* fft_radix4_vfp4 — one decimation-in-time radix-4 stage of the audio frontend's 256-point
 * complex FFT (src/audio/fft.rs, radix4_stage) for the Cortex-M4F (FPv4-SP). The same
 * operations in the same order as the Rust, each rounded once (VMUL, VADD, VSUB: no fused or
 * chained multiply-add), so the results are the same bits as the portable path's.
 *
 * Contract (AAPCS):
 *   void kernel(float *z, unsigned blocks, unsigned quarter, const float *tw)
 *   z: blocks·4·quarter complex points (re, im), word-aligned, transformed in place;
 *   quarter even, >= 2; tw: quarter rows of 6 floats (w1, w2, w3 as (re, im)), row k the twiddles
 *   of point k of each quarter (row 0, all ones, is not read).
 *   For each block and k < quarter: a, b, c, d = points k, k + Q, k + 2Q, k + 3Q;
 *   b' = w1·b, c' = w2·c, d' = w3·d (k > 0; (wr·xr − wi·xi, wr·xi + wi·xr));
 *   t0 = a + c', t1 = a − c', t2 = b' + d', t3 = b' − d';
 *   a, b, c, d ← t0 + t2, (t1r + t3i, t1i − t3r), t0 − t2, (t1r − t3i, t1i + t3r).
 *
 * Why assembly: the compiler loads each float with its own VLDR (2 cycles) and forms VMLA/VMLS
 * (3 cycles); here the points go by one VLDM/VSTM per quarter and the twiddle row by one VLDM
 * of 6 (7 cycles), and the products are VMUL + VADD (1 + 1). The twiddled points go two at a
 * time (points k and k + 1 of a quarter are one VLDM/VSTM of 4: 5 cycles for two points
 * against 6, and one loop branch for two butterflies), point 0 (no twiddles) with point 1:
 * about 63 estimated cycles a butterfly, against 69 one at a time and 92 compiled.
 *
 * Registers: r1 blocks left, r4–r7 the four quarters' point k (loaded in place, stored with
 *   write-back: after a block r7 is the next block's start), r8 the twiddle row, r9 points
 *   left in the block, r10 the bytes of a quarter; s0–s15 the points (k and k + 1 of a in
 *   s0–s3, of b in s4–s7, of c in s8–s11, of d in s12–s15), s16–s21 the twiddles, s22–s29 products and sums. Saves r4–r10, lr and s16–s29
 *   (32 + 56 bytes of stack).
 */
#include "common.h"
#include "fft_vfp4.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text


        .globl  EDGEMM_SYM(fft_radix4_vfp4)
        .type   EDGEMM_SYM(fft_radix4_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_radix4_vfp4):
        push    {r4-r10, lr}
        vpush   {s16-s29}
        lsl     r10, r2, #3             @ bytes of a quarter
        mov     r4, r0
.Lblock:
        add     r5, r4, r10
        add     r6, r5, r10
        add     r7, r6, r10
        /* Points 0 and 1; point 0's twiddles are all 1. */
        vldmia  r4, {s0-s3}
        vldmia  r5, {s4-s7}
        vldmia  r6, {s8-s11}
        vldmia  r7, {s12-s15}
        add     r8, r3, #24
        vldmia  r8!, {s16-s21}          @ row 1
        CMUL    6, 7, 16, 17
        CMUL    10, 11, 18, 19
        CMUL    14, 15, 20, 21
        DFT4    0, 1, 4, 5, 8, 9, 12, 13
        DFT4    2, 3, 6, 7, 10, 11, 14, 15
        vstmia  r4!, {s0-s3}
        vstmia  r5!, {s4-s7}
        vstmia  r6!, {s8-s11}
        vstmia  r7!, {s12-s15}
        subs    r9, r2, #2
        beq     .Lnext
.Lpair:
        /* Points k and k + 1 of each quarter. */
        vldmia  r4, {s0-s3}
        vldmia  r5, {s4-s7}
        vldmia  r6, {s8-s11}
        vldmia  r7, {s12-s15}
        vldmia  r8!, {s16-s21}          @ row k
        CMUL    4, 5, 16, 17
        CMUL    8, 9, 18, 19
        CMUL    12, 13, 20, 21
        vldmia  r8!, {s16-s21}          @ row k + 1
        CMUL    6, 7, 16, 17
        CMUL    10, 11, 18, 19
        CMUL    14, 15, 20, 21
        DFT4    0, 1, 4, 5, 8, 9, 12, 13
        DFT4    2, 3, 6, 7, 10, 11, 14, 15
        vstmia  r4!, {s0-s3}
        vstmia  r5!, {s4-s7}
        vstmia  r6!, {s8-s11}
        vstmia  r7!, {s12-s15}
        subs    r9, r9, #2
        bne     .Lpair
.Lnext:
        /* r7 is now the end of the block's fourth quarter: the next block's start. */
        mov     r4, r7
        subs    r1, r1, #1
        bne     .Lblock
        vpop    {s16-s29}
        pop     {r4-r10, pc}
        .size   EDGEMM_SYM(fft_radix4_vfp4), . - EDGEMM_SYM(fft_radix4_vfp4)

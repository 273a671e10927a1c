/* fft_split_mel_vfp4 — the audio frontend's split step and mel sums (src/audio/fft.rs,
 * split_to_mel) for the Cortex-M4F (FPv4-SP): from the 256-point complex FFT Z of the even
 * and odd samples, each mel bin's |X[k]| (2X[k] = 2E + Wᵏ·2O), added at once into its two
 * bands. The same operations in the same order as the Rust, each rounded once (VMUL, VADD,
 * VSUB, VSQRT: no fused or chained multiply-add), so the results are the same bits.
 *
 * Contract (AAPCS):  void kernel(const SplitMelArgs *args)   r0 = args, fields (4 bytes each):
 *   0 z: the 256 complex points (re, im); 4 mel: out, `bands` floats;
 *   8 twiddles: the split twiddles, (re, im) per bin k from 0; 12 weights: the (halved) mel
 *   weights, (falling, rising) per bin k from 0; 16 segments: bands + 2 bytes, ascending,
 *   segments[0] >= 1 and segments[bands + 1] <= 128; 20 bands >= 1.
 *   For k in segments[0]..segments[bands + 1], with a = Z[k], b = Z[256 − k], w = twiddles[k]:
 *     e = (a.re + b.re, a.im − b.im), o = (a.im + b.im, b.re − a.re),
 *     t = (w.re·o.re − w.im·o.im, w.re·o.im + w.im·o.re), x = e + t,
 *     m = √(x.re·x.re + x.im·x.im); falling += weights[k].0·m, rising += weights[k].1·m.
 *   Segment j holds bins segments[j]..segments[j + 1]; after it, band j − 1 (if j >= 1) is
 *   `falling`, then falling = rising, rising = 0.
 *   Reads only those bins of z, twiddles and weights; writes only mel[0..bands].
 *
 * Why assembly: one VLDM of 2 (3 cycles) per pair instead of two VLDR (4), VMUL + VADD (2)
 * instead of VMLA (3), √ with no moves through core registers, and the magnitudes never
 * stored: about 49 estimated cycles a bin (14 of them VSQRT) against 82.
 *
 * Registers: r1 Z[k], r2 Z[256 − k + 1] (loaded with pre-decrement), r3 twiddles[k], r4
 *   weights[k], r5 segments[j], r6 bins left in the segment, r7 mel, r8 segments left,
 *   r9 = 0 (+0.0), r10 = 0 until the first segment is done, then 1; s0–s15 the bin, s16
 *   falling, s17 rising.
 *   Saves r4–r10, lr and s16–s17.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

        .globl  EDGEMM_SYM(fft_split_mel_vfp4)
        .type   EDGEMM_SYM(fft_split_mel_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_split_mel_vfp4):
        push    {r4-r10, lr}
        vpush   {s16-s17}
        ldr     r5, [r0, #16]           @ segments
        ldrb    r6, [r5]                @ the first bin k
        ldr     r1, [r0, #0]
        rsb     r2, r6, #256
        add     r2, r1, r2, lsl #3
        adds    r2, r2, #8              @ Z[256 − k] + 1 point
        add     r1, r1, r6, lsl #3
        ldr     r3, [r0, #8]
        add     r3, r3, r6, lsl #3
        ldr     r4, [r0, #12]
        add     r4, r4, r6, lsl #3
        ldr     r7, [r0, #4]
        ldr     r8, [r0, #20]
        adds    r8, r8, #1              @ segments: bands + 1
        movs    r9, #0
        vmov    s16, r9
        vmov    s17, r9
        movs    r10, #0                 @ no band to store after segment 0
.Lsegment:
        ldrb    r6, [r5], #1
        ldrb    r0, [r5]
        subs    r6, r0, r6              @ bins of segment j
        beq     .Ldone
.Lbin:
        vldmia  r1!, {s0-s1}            @ a
        vldmdb  r2!, {s2-s3}            @ b
        vldmia  r3!, {s4-s5}            @ w
        vldmia  r4!, {s6-s7}            @ weights
        vadd.f32 s8, s0, s2             @ e
        vsub.f32 s9, s1, s3
        vadd.f32 s10, s1, s3            @ o
        vsub.f32 s11, s2, s0
        vmul.f32 s12, s4, s10           @ t
        vmul.f32 s13, s5, s11
        vmul.f32 s14, s4, s11
        vmul.f32 s15, s5, s10
        vsub.f32 s12, s12, s13
        vadd.f32 s14, s14, s15
        vadd.f32 s8, s8, s12            @ x
        vadd.f32 s9, s9, s14
        vmul.f32 s8, s8, s8
        vmul.f32 s9, s9, s9
        vadd.f32 s8, s8, s9
        vsqrt.f32 s8, s8                @ m
        vmul.f32 s10, s6, s8
        vmul.f32 s11, s7, s8
        vadd.f32 s16, s16, s10
        vadd.f32 s17, s17, s11
        subs    r6, r6, #1
        bne     .Lbin
.Ldone:
        cmp     r10, #0
        beq     .Lfirst
        vstmia  r7!, {s16}              @ band j − 1 is complete
.Lfirst:
        movs    r10, #1
        vmov.f32 s16, s17
        vmov    s17, r9
        subs    r8, r8, #1
        bne     .Lsegment
        vpop    {s16-s17}
        pop     {r4-r10, pc}
        .size   EDGEMM_SYM(fft_split_mel_vfp4), . - EDGEMM_SYM(fft_split_mel_vfp4)

/* fft_mel_vfp4 — the audio frontend's mel sums (src/audio/fft.rs, split_to_mel) for the
 * Cortex-M4F (FPv4-SP), from the magnitudes fft_last_split_vfp4 left in z[k].re: each bin
 * added at once into its two bands. The same operations in the same order as the Rust, each
 * rounded once (VMUL then VADD), so the results are the same bits.
 *
 * Contract (AAPCS):  void kernel(const MelArgs *args)   r0 = args, fields (4 bytes each):
 *   0 z: (magnitude, unused) per bin k from 0; 4 mel: out, `bands` floats; 8 weights: the
 *   (halved) mel weights, (falling, rising) per bin k from 0; 12 segments: bands + 2 bytes,
 *   ascending, segments[0] >= 1 and segments[bands + 1] <= 128; 16 bands >= 1.
 *   For k in segments[0]..segments[bands + 1], with m = z[k].re:
 *     falling += weights[k].0·m, rising += weights[k].1·m.
 *   Segment j holds bins segments[j]..segments[j + 1]; after it, band j − 1 (if j >= 1) is
 *   `falling`, then falling = rising, rising = 0.
 *   Reads only those bins of z (both words) and weights; writes only mel[0..bands].
 *
 * Two bins a loop pass (one VLDM of 4 for each of the magnitudes and the weights): about 11
 * estimated cycles a bin against 14 one at a time.
 *
 * Registers: r1 &z[k], r4 &weights[k], r5 &segments[j], r6 bins (then pairs) left in the
 *   segment, r7 mel, r8 segments left, r3 = 0 (+0.0); s0–s11 the bins, s16 falling, s17
 *   rising. Saves r4–r8, lr and s16–s17.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* The bins of segment j (r5 = &segments[j], post-incremented) into s16, s17. */
.macro SEGMENT
        ldrb    r6, [r5], #1
        ldrb    r2, [r5]
        subs    r6, r2, r6
        lsrs    r6, r6, #1              @ pairs; C = an odd bin
        bcc     1f
        vldmia  r1!, {s0-s1}            @ the odd bin first (in order)
        vldmia  r4!, {s2-s3}
        vmul.f32 s4, s2, s0
        vmul.f32 s5, s3, s0
        vadd.f32 s16, s16, s4
        vadd.f32 s17, s17, s5
1:      cbz     r6, 3f
2:      vldmia  r1!, {s0-s3}            @ bins k (s0) and k + 1 (s2)
        vldmia  r4!, {s4-s7}
        vmul.f32 s8, s4, s0
        vmul.f32 s9, s5, s0
        vmul.f32 s10, s6, s2
        vmul.f32 s11, s7, s2
        vadd.f32 s16, s16, s8
        vadd.f32 s17, s17, s9
        vadd.f32 s16, s16, s10
        vadd.f32 s17, s17, s11
        subs    r6, r6, #1
        bne     2b
3:
.endm

        .globl  EDGEMM_SYM(fft_mel_vfp4)
        .type   EDGEMM_SYM(fft_mel_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_mel_vfp4):
        push    {r4-r8, lr}
        vpush   {s16-s17}
        ldr     r5, [r0, #12]           @ segments
        ldrb    r6, [r5]                @ the first bin k
        ldr     r1, [r0, #0]
        add     r1, r1, r6, lsl #3
        ldr     r4, [r0, #8]
        add     r4, r4, r6, lsl #3
        ldr     r7, [r0, #4]
        ldr     r8, [r0, #16]           @ segments after the first: bands
        movs    r3, #0
        vmov    s16, r3
        vmov    s17, r3
        SEGMENT                         @ segment 0: no band to store
.Lsegment:
        vmov.f32 s16, s17
        vmov    s17, r3
        SEGMENT
        vstmia  r7!, {s16}              @ band j − 1 is complete
        subs    r8, r8, #1
        bne     .Lsegment
        vpop    {s16-s17}
        pop     {r4-r8, pc}
        .size   EDGEMM_SYM(fft_mel_vfp4), . - EDGEMM_SYM(fft_mel_vfp4)

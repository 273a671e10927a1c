/* fft_mel_vfp4 — the audio frontend's mel sums (src/audio/fft.rs, split_to_mel) for the
 * Cortex-M4F (FPv4-SP), from the magnitudes fft_last_split_vfp4 left in z[k].re: each bin
 * added at once into its two bands. The same operations in the same order as the Rust, each
 * rounded once (VMUL then VADD), so the results are the same bits.
 *
 * Contract (AAPCS):  void kernel(const MelArgs *args)   r0 = args, fields (4 bytes each):
 *   0 z: (magnitude, unused) per bin k from 0; 4 mel: out, `bands` floats; 8 weights: the
 *   (halved) mel weights, (falling, rising) per bin k from 0; 12 lengths: bands + 1 bytes,
 *   the bins of each segment; 16 the first bin (>= 1; the last is below 128); 20 bands, even,
 *   >= 2.
 *   Segment j holds the next lengths[j] bins k; with m = z[k].re, each does
 *     falling += weights[k].0·m, rising += weights[k].1·m;
 *   after it, band j − 1 (if j >= 1) is `falling`, then falling = rising, rising = 0.
 *   Reads only those bins of z (both words) and weights; writes only mel[0..bands].
 *
 * Two bins a loop pass (one VLDM of 4 for each of the magnitudes and the weights): about 11
 * estimated cycles a bin against 14 one at a time. Two segments a loop pass, s16 and s17
 * taking turns as the falling and the rising band (no register moves).
 *
 * Registers: r1 &z[k], r4 &weights[k], r5 &lengths[j], r6 bin pairs left in the segment, r7
 *   mel, r8 segment pairs left, r3 = 0 (+0.0); s0–s11 the bins, s16 and s17 the bands.
 *   Saves r4–r8, lr and s16–s17.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* The bins of segment j (r5 = &lengths[j], post-incremented) into the falling band s\fall
 * and the rising band s\rise. */
.macro SEGMENT fall, rise
        ldrb    r6, [r5], #1
        lsrs    r6, r6, #1              @ pairs; C = an odd bin
        bcc     1f
        vldmia  r1!, {s0-s1}            @ the odd bin first (in order)
        vldmia  r4!, {s2-s3}
        vmul.f32 s4, s2, s0
        vmul.f32 s5, s3, s0
        vadd.f32 s\fall, s\fall, s4
        vadd.f32 s\rise, s\rise, s5
1:      cbz     r6, 3f
2:      vldmia  r1!, {s0-s3}            @ bins k (s0) and k + 1 (s2)
        vldmia  r4!, {s4-s7}
        vmul.f32 s8, s4, s0
        vmul.f32 s9, s5, s0
        vmul.f32 s10, s6, s2
        vmul.f32 s11, s7, s2
        vadd.f32 s\fall, s\fall, s8
        vadd.f32 s\rise, s\rise, s9
        vadd.f32 s\fall, s\fall, s10
        vadd.f32 s\rise, s\rise, s11
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
        ldr     r2, [r0, #16]           @ the first bin k
        ldr     r1, [r0, #0]
        add     r1, r1, r2, lsl #3
        ldr     r4, [r0, #8]
        add     r4, r4, r2, lsl #3
        ldr     r5, [r0, #12]
        ldr     r7, [r0, #4]
        ldr     r8, [r0, #20]
        lsrs    r8, r8, #1              @ the segments after the first, in pairs
        movs    r3, #0
        vmov    s16, r3
        vmov    s17, r3
        SEGMENT 16, 17                  @ segment 0: no band to store
.Lsegments:
        vmov    s16, r3
        SEGMENT 17, 16
        vstmia  r7!, {s17}              @ band j − 1 is complete
        vmov    s17, r3
        SEGMENT 16, 17
        vstmia  r7!, {s16}
        subs    r8, r8, #1
        bne     .Lsegments
        vpop    {s16-s17}
        pop     {r4-r8, pc}
        .size   EDGEMM_SYM(fft_mel_vfp4), . - EDGEMM_SYM(fft_mel_vfp4)

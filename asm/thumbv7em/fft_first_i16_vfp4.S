/* fft_first_i16_vfp4 — the first radix-4 stage of the audio frontend's 256-point complex FFT
 * for i16 samples (src/audio/fft.rs, first_stage) on the Cortex-M4F (FPv4-SP): the samples
 * converted, windowed and read in digit-reversed order. The same operations in the same
 * order as the Rust (the conversion of an i16 is exact; VMUL, VADD, VSUB each round once),
 * so the results are the same bits.
 *
 * Contract (AAPCS):
 *   void kernel(float *z, const int16_t *x, const float *window, const uint8_t *rev)
 *   x: 480 samples, 4-byte aligned; window: 480 floats (HANN_I16); rev: 64 bytes, each
 *   masked to 0..63 (the digit reversal); z: out, 64 blocks of 4 points (re, im).
 *   Block j, with a = rev[j] & 63: points p_q = (x[n]·w[n], x[n + 1]·w[n + 1]) at n = 2a +
 *   128q for q = 0, 1, 2, and q = 3 if a < 48 (else p_3 = (0, 0), the zero padding); then the
 *   4-point DFT (t0 = p0 + p2, t1 = p0 − p2, t2 = p1 + p3, t3 = p1 − p3; t0 + t2, (t1r +
 *   t3i, t1i − t3r), t0 − t2, (t1r − t3i, t1i + t3r)) to z[4j..4j + 4].
 *   Reads x[0..480], window[0..480] and rev only; writes z[0..256] only.
 *
 * Why assembly: a pair of samples is one LDR (split by SXTH/ASR, moved by one VMOV), a pair
 * of window values one VLDR.64, the block's four points one VSTM of 8; about 78 estimated
 * cycles a block against 108.
 *
 * Registers: r0 z (write-back), r1 x, r2 window + 768 bytes, r3 rev, r4 a, r5 &x[2a], r6
 *   &w[2a] + 768 bytes (so the four window offsets −768, −256, 256, 768 fit VLDR's ±1020),
 *   r7/r8 the sample pair, r9 blocks left, r10 = 0 (+0.0); s0–s7 the points, s8–s15 the
 *   window pairs, s16–s23 the sums. Saves r4–r10, lr and s16–s23.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* Point (s\re, s\re+1) = window-times-samples at byte offset \xo of r5 and \wo of r6,
 * window pair in d\wd. */
.macro POINT re, im, xo, wo, wd, wlo, whi
        ldr     r7, [r5, #\xo]
        sxth    r8, r7
        asr     r7, r7, #16
        vmov    s\re, s\im, r8, r7
        vcvt.f32.s32 s\re, s\re
        vcvt.f32.s32 s\im, s\im
        vldr    d\wd, [r6, #\wo]
        vmul.f32 s\re, s\re, s\wlo
        vmul.f32 s\im, s\im, s\whi
.endm

        .globl  EDGEMM_SYM(fft_first_i16_vfp4)
        .type   EDGEMM_SYM(fft_first_i16_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_first_i16_vfp4):
        push    {r4-r10, lr}
        vpush   {s16-s23}
        add     r2, r2, #768
        movs    r9, #64
        mov     r10, #0
.Lblock:
        ldrb    r4, [r3], #1
        and     r4, r4, #63
        add     r5, r1, r4, lsl #2
        add     r6, r2, r4, lsl #3
        POINT   0, 1, 0, -768, 4, 8, 9
        POINT   2, 3, 256, -256, 5, 10, 11
        POINT   4, 5, 512, 256, 6, 12, 13
        cmp     r4, #48
        bhs     .Lpad
        POINT   6, 7, 768, 768, 7, 14, 15
        b       .Ldft
.Lpad:
        vmov    s6, s7, r10, r10
.Ldft:
        vadd.f32 s16, s0, s4            @ t0
        vadd.f32 s17, s1, s5
        vsub.f32 s18, s0, s4            @ t1
        vsub.f32 s19, s1, s5
        vadd.f32 s20, s2, s6            @ t2
        vadd.f32 s21, s3, s7
        vsub.f32 s22, s2, s6            @ t3
        vsub.f32 s23, s3, s7
        vadd.f32 s0, s16, s20           @ t0 + t2
        vadd.f32 s1, s17, s21
        vadd.f32 s2, s18, s23           @ (t1r + t3i, t1i − t3r)
        vsub.f32 s3, s19, s22
        vsub.f32 s4, s16, s20           @ t0 − t2
        vsub.f32 s5, s17, s21
        vsub.f32 s6, s18, s23           @ (t1r − t3i, t1i + t3r)
        vadd.f32 s7, s19, s22
        vstmia  r0!, {s0-s7}
        subs    r9, r9, #1
        bne     .Lblock
        vpop    {s16-s23}
        pop     {r4-r10, pc}
        .size   EDGEMM_SYM(fft_first_i16_vfp4), . - EDGEMM_SYM(fft_first_i16_vfp4)

/* fft_first_i16_vfp4 — the first two radix-4 stages of the audio frontend's 256-point
 * complex FFT for i16 samples (src/audio/fft.rs: first_stage for all 64 blocks, then
 * radix4_stage with quarter 4) on the Cortex-M4F (FPv4-SP): the samples converted, windowed
 * and read in digit-reversed order from the three chunks of 160 samples the streaming
 * frontend keeps (or a hop's halves) where they are. The same operations in the same order
 * as the Rust (the conversion of an i16 is exact; VMUL, VADD, VSUB each round once), so the
 * results are the same bits.
 *
 * Contract (AAPCS):
 *   void kernel(float *z, const int16_t *const chunks[3], const float *window,
 *               const float *tw)
 *   chunks: three pointers to 160 samples each, 4-byte aligned; sample n of the frame is
 *   chunks[n / 160][n % 160]; window: 480 floats (HANN_I16); tw: the second stage's 4
 *   twiddle rows of 6 (row 0 not read); z: out, 256 points (re, im), word-aligned.
 *   First stage, block j (points 4j..4j + 4) with a = rev(j) (the base-4 digit reversal of
 *   3 digits): points p_q = (x[n]·w[n], x[n + 1]·w[n + 1]) at n = 2a + 128q for q = 0, 1, 2,
 *   and q = 3 if a < 48 (else p_3 = (0, 0), the zero padding); then the 4-point DFT (t0 = p0
 *   + p2, t1 = p0 − p2, t2 = p1 + p3, t3 = p1 − p3; t0 + t2, (t1r + t3i, t1i − t3r), t0 −
 *   t2, (t1r − t3i, t1i + t3r)). Second stage: as fft_radix4_vfp4 with quarter 4.
 *   Reads the chunks, window[0..480] and tw only; writes z[0..256] only.
 *
 * How: a second-stage block b (16 points) is the first-stage blocks j = 4b + q, whose a =
 * a0 + 16q with a0 = rev(b) in 0..16: its 16 sample pairs are n = 2a0 + 32m (m = q + 4q'),
 * five from each chunk at byte offsets 4a0 + 64i, the window at 8a0 + 128m, and m = 15 is
 * the padding. So the loop runs over a0 with fixed offsets. Of each first-stage block, the
 * DFT's points 0 and 1 stay in s16–s31 for the second stage's butterflies 0 and 1, done in
 * registers; points 2 and 3 are stored (one VSTM of 4) and come back for butterflies 2 and
 * 3 as a pair (as in fft_radix4_vfp4). Against a first stage that stores all 64 blocks and a
 * second that reloads them: half the stores and loads of the first pass, and no butterfly
 * done alone.
 *
 * Registers: r0 z, r1–r3 the chunks + 4a0, r4–r7 the block's quarters (+16: points 2, 3),
 *   r8 scratch (a sample pair's high half; 0 for the padding), r9 a0, r10 window + 8a0 + 896 (the window offsets −896
 *   ..896 fit VLDR's ±1020), r11 twiddle row 1, r12/lr the sample pair; s0–s7 the points, s8–s15 the
 *   window pairs, then the DFT's sums; s16–s31 points 0 and 1 of the four blocks (quarter q
 *   in s16 + 4q..s19 + 4q). Saves r4–r11, lr and s16–s31.
 */
#include "common.h"
#include "fft_vfp4.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* Two sample pairs, at byte \co of r\c into r12 and at \do of r\d into lr (back to back:
 * the second load pipelines). */
.macro LOAD2 c, co, d, do
        ldr     r12, [r\c, #\co]
        ldr     lr, [r\d, #\do]
.endm

/* Point (s\re, s\im) = window times the sample pair in \x, the window pair at byte offset
 * \wo of r10 into d\wd. */
.macro POINT re, im, x, wo, wd, wlo, whi
        asr     r8, \x, #16
        vmov    s\re, s\im, \x, r8
        vcvt.f32.s16 s\re, s\re, #0    @ the low half, sign-extended
        vcvt.f32.s32 s\im, s\im
        vldr    d\wd, [r10, #\wo]
        vmul.f32 s\re, s\re, s\wlo
        vmul.f32 s\im, s\im, s\whi
.endm

/* The 4-point DFT of s0–s7 (sums in s8–s15): points 0 and 1 to s\k .. s\k + 3, points 2
 * and 3 stored at r\q. */
.macro DFT4_KEEP k0, k1, k2, k3, q
        vadd.f32 s8, s0, s4             @ t0
        vadd.f32 s9, s1, s5
        vsub.f32 s10, s0, s4            @ t1
        vsub.f32 s11, s1, s5
        vadd.f32 s12, s2, s6            @ t2
        vadd.f32 s13, s3, s7
        vsub.f32 s14, s2, s6            @ t3
        vsub.f32 s15, s3, s7
        vadd.f32 s\k0, s8, s12          @ t0 + t2
        vadd.f32 s\k1, s9, s13
        vadd.f32 s\k2, s10, s15         @ (t1r + t3i, t1i − t3r)
        vsub.f32 s\k3, s11, s14
        vsub.f32 s0, s8, s12            @ t0 − t2
        vsub.f32 s1, s9, s13
        vsub.f32 s2, s10, s15           @ (t1r − t3i, t1i + t3r)
        vadd.f32 s3, s11, s14
        vstmia  r\q, {s0-s3}
.endm


        .globl  EDGEMM_SYM(fft_first_i16_vfp4)
        .type   EDGEMM_SYM(fft_first_i16_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_first_i16_vfp4):
        push    {r4-r11, lr}
        vpush   {s16-s31}
        add     r11, r3, #24            @ twiddle row 1
        add     r10, r2, #896
        ldr     r3, [r1, #8]            @ chunk 2
        ldr     r2, [r1, #4]            @ chunk 1
        ldr     r1, [r1]                @ chunk 0
        movs    r9, #0
.Lblock:
        /* The block b = rev(a0) = 4(a0 & 3) + (a0 >> 2): 128 bytes each. */
        and     r8, r9, #3
        add     r4, r0, r8, lsl #9
        lsrs    r8, r9, #2
        add     r4, r4, r8, lsl #7
        adds    r4, r4, #16             @ quarter 0, point 2
        add     r5, r4, #32
        add     r6, r4, #64
        add     r7, r4, #96
        /* First-stage block q (a = a0 + 16q): its points q' = 0..3 are m = q + 4q'. */
        LOAD2   1, 0, 1, 256                        @ m = 0, 4
        POINT   0, 1, r12, -896, 4, 8, 9
        POINT   2, 3, lr, -384, 5, 10, 11
        LOAD2   2, 192, 3, 128                      @ m = 8, 12
        POINT   4, 5, r12, 128, 6, 12, 13
        POINT   6, 7, lr, 640, 7, 14, 15
        DFT4_KEEP 16, 17, 18, 19, 4
        LOAD2   1, 64, 2, 0                         @ m = 1, 5
        POINT   0, 1, r12, -768, 4, 8, 9
        POINT   2, 3, lr, -256, 5, 10, 11
        LOAD2   2, 256, 3, 192                      @ m = 9, 13
        POINT   4, 5, r12, 256, 6, 12, 13
        POINT   6, 7, lr, 768, 7, 14, 15
        DFT4_KEEP 20, 21, 22, 23, 5
        LOAD2   1, 128, 2, 64                       @ m = 2, 6
        POINT   0, 1, r12, -640, 4, 8, 9
        POINT   2, 3, lr, -128, 5, 10, 11
        LOAD2   3, 0, 3, 256                        @ m = 10, 14
        POINT   4, 5, r12, 384, 6, 12, 13
        POINT   6, 7, lr, 896, 7, 14, 15
        DFT4_KEEP 24, 25, 26, 27, 6
        LOAD2   1, 192, 2, 128                      @ m = 3, 7
        POINT   0, 1, r12, -512, 4, 8, 9
        POINT   2, 3, lr, 0, 5, 10, 11
        ldr     r12, [r3, #64]                      @ m = 11
        POINT   4, 5, r12, 512, 6, 12, 13
        movs    r8, #0
        vmov    s6, s7, r8, r8                      @ m = 15: the zero padding
        DFT4_KEEP 28, 29, 30, 31, 7
        /* Second stage, butterfly 0 (no twiddles) and 1, in registers. */
        DFT4    16, 17, 20, 21, 24, 25, 28, 29, 0, 1, 2, 3, 4, 5, 6, 7
        vldmia  r11, {s8-s13}                       @ twiddle row 1
        CMUL    22, 23, 8, 9, 0, 1, 2, 3
        CMUL    26, 27, 10, 11, 0, 1, 2, 3
        CMUL    30, 31, 12, 13, 0, 1, 2, 3
        DFT4    18, 19, 22, 23, 26, 27, 30, 31, 0, 1, 2, 3, 4, 5, 6, 7
        vstmdb  r4!, {s16-s19}                      @ points 0 and 1 of each quarter
        vstmdb  r5!, {s20-s23}
        vstmdb  r6!, {s24-s27}
        vstmdb  r7!, {s28-s31}
        /* Butterflies 2 and 3: points 2 and 3 of each quarter. */
        adds    r4, r4, #16
        adds    r5, r5, #16
        adds    r6, r6, #16
        adds    r7, r7, #16
        vldmia  r4, {s0-s3}
        vldmia  r5, {s4-s7}
        vldmia  r6, {s8-s11}
        vldmia  r7, {s12-s15}
        add     r8, r11, #24
        vldmia  r8!, {s16-s21}                      @ row 2
        CMUL    4, 5, 16, 17, 22, 23, 24, 25
        CMUL    8, 9, 18, 19, 22, 23, 24, 25
        CMUL    12, 13, 20, 21, 22, 23, 24, 25
        vldmia  r8, {s16-s21}                       @ row 3
        CMUL    6, 7, 16, 17, 22, 23, 24, 25
        CMUL    10, 11, 18, 19, 22, 23, 24, 25
        CMUL    14, 15, 20, 21, 22, 23, 24, 25
        DFT4    0, 1, 4, 5, 8, 9, 12, 13, 22, 23, 24, 25, 26, 27, 28, 29
        DFT4    2, 3, 6, 7, 10, 11, 14, 15, 22, 23, 24, 25, 26, 27, 28, 29
        vstmia  r4, {s0-s3}
        vstmia  r5, {s4-s7}
        vstmia  r6, {s8-s11}
        vstmia  r7, {s12-s15}
        adds    r1, r1, #4
        adds    r2, r2, #4
        adds    r3, r3, #4
        adds    r10, r10, #8
        adds    r9, r9, #1
        cmp     r9, #16
        bne     .Lblock
        vpop    {s16-s31}
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(fft_first_i16_vfp4), . - EDGEMM_SYM(fft_first_i16_vfp4)

/* fft_copy_vfp4 — copies the streaming frontend's chunks of samples into its ring
 * (src/audio/fft.rs, copy_i16_chunk): 64 bytes at a time through s0–s15, one VLDM and one
 * VSTM of 16 (34 estimated cycles), where the library's memcpy moves a word at a time (about
 * 5 instructions a word).
 *
 * Contract (AAPCS):  void kernel(uint32_t *dst, const uint32_t *src, unsigned blocks)
 *   blocks >= 1; dst and src word-aligned, `blocks` × 64 bytes each, not overlapping.
 *   Copies them; touches only s0–s15 (caller-saved) and r0–r2.
 */
        .globl  EDGEMM_SYM(fft_copy_vfp4)
        .type   EDGEMM_SYM(fft_copy_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_copy_vfp4):
.Lcopy:
        vldmia  r1!, {s0-s15}
        vstmia  r0!, {s0-s15}
        subs    r2, r2, #1
        bne     .Lcopy
        bx      lr
        .size   EDGEMM_SYM(fft_copy_vfp4), . - EDGEMM_SYM(fft_copy_vfp4)

/* fft_first_i16_vfp4 — the first radix-4 stage of the audio frontend's 256-point complex FFT
 * for i16 samples (src/audio/fft.rs, first_stage) on the Cortex-M4F (FPv4-SP): the samples
 * converted, windowed and read in digit-reversed order, from the three chunks of 160 samples
 * the streaming frontend keeps (or a hop's halves) where they are. The same operations in the
 * same order as the Rust (the conversion of an i16 is exact; VMUL, VADD, VSUB each round
 * once), so the results are the same bits.
 *
 * Contract (AAPCS):
 *   void kernel(float *z, const int16_t *const chunks[3], const float *window,
 *               const uint8_t *rev)
 *   chunks: three pointers to 160 samples each, 4-byte aligned; sample n of the frame is
 *   chunks[n / 160][n % 160]; window: 480 floats (HANN_I16); rev: 64 bytes, a permutation of
 *   0..63 that is its own inverse (the digit reversal); z: out, 64 blocks of 4 points (re, im).
 *   Block j, with a = rev[j]: points p_q = (x[n]·w[n], x[n + 1]·w[n + 1]) at n = 2a + 128q
 *   for q = 0, 1, 2, and q = 3 if a < 48 (else p_3 = (0, 0), the zero padding); then the
 *   4-point DFT (t0 = p0 + p2, t1 = p0 − p2, t2 = p1 + p3, t3 = p1 − p3; t0 + t2, (t1r +
 *   t3i, t1i − t3r), t0 − t2, (t1r − t3i, t1i + t3r)) to z[4j..4j + 4].
 *   Reads the chunks, window[0..480] and rev only; writes z[0..256] only.
 *
 * How: the blocks are made in the order of a (block rev[a] is stored), so each of the four
 * points' samples advance by one pair a block: four pointers, post-incremented. Which chunk a
 * point reads changes only at a = 16 (p1 reaches chunk 1: n = 160) and a = 32 (p2 reaches
 * chunk 2: n = 320), where its pointer is set to that chunk's start; from a = 48 on there is
 * no p3. Two blocks a loop pass. A pair of samples is one LDR: VCVT.F32.S16 converts the low half in place, ASR gives
 * the high; a pair of window values is one VLDR.64, the block's four points one VSTM of 8.
 *
 * Registers: r0 z, r1 chunk 1 (then 0, for the padding), r2 &w[2a] + 768 bytes (so the four
 *   window offsets −768, −256, 256, 768 fit VLDR's ±1020), r3 &rev[a], r4 the block's
 *   address, r5–r8 &x[2a + 128q] for q = 0..3, r9 blocks left, r11 chunk 2, r12/lr the
 *   sample pair; s0–s7 the points, s8–s15 the window pairs, s16–s23 the sums. Saves r4–r11,
 *   lr and s16–s23.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* Point (s\re, s\im) = window times the sample pair at r\ptr (post-incremented), the window
 * pair at byte offset \wo of r2 into d\wd. */
.macro POINT re, im, ptr, wo, wd, wlo, whi
        ldr     r12, [r\ptr], #4
        asr     lr, r12, #16
        vmov    s\re, s\im, r12, lr
        vcvt.f32.s16 s\re, s\re, #0     @ the low half, sign-extended
        vcvt.f32.s32 s\im, s\im
        vldr    d\wd, [r2, #\wo]
        vmul.f32 s\re, s\re, s\wlo
        vmul.f32 s\im, s\im, s\whi
.endm

/* The 4-point DFT of s0–s7 into s0–s7, stored as block rev[a]; the next a. */
.macro DFT4_STORE
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
        ldrb    r4, [r3], #1
        add     r4, r0, r4, lsl #5
        vstmia  r4, {s0-s7}
        add     r2, r2, #8
.endm

        .globl  EDGEMM_SYM(fft_first_i16_vfp4)
        .type   EDGEMM_SYM(fft_first_i16_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_first_i16_vfp4):
        push    {r4-r11, lr}
        vpush   {s16-s23}
        ldr     r5, [r1]                @ p0: chunk 0 from 0
        add     r6, r5, #256            @ p1: chunk 0 from 128
        ldr     r11, [r1, #8]
        add     r8, r11, #128           @ p3: chunk 2 from 64
        ldr     r1, [r1, #4]
        add     r7, r1, #192            @ p2: chunk 1 from 96
        add     r2, r2, #768
        movs    r9, #48
.Lfour:
        .rept   2                       @ two blocks a pass: one loop test for two
        POINT   0, 1, 5, -768, 4, 8, 9
        POINT   2, 3, 6, -256, 5, 10, 11
        POINT   4, 5, 7, 256, 6, 12, 13
        POINT   6, 7, 8, 768, 7, 14, 15
        DFT4_STORE
        .endr
        subs    r9, r9, #2
        tst     r9, #15
        bne     .Lfour
        cmp     r9, #32                 @ a = 16: p1 reaches chunk 1
        it      eq
        moveq   r6, r1
        cmp     r9, #16                 @ a = 32: p2 reaches chunk 2
        it      eq
        moveq   r7, r11
        cmp     r9, #0
        bne     .Lfour
        movs    r9, #16
        movs    r1, #0
.Lthree:
        .rept   2
        POINT   0, 1, 5, -768, 4, 8, 9
        POINT   2, 3, 6, -256, 5, 10, 11
        POINT   4, 5, 7, 256, 6, 12, 13
        vmov    s6, s7, r1, r1          @ p3: the zero padding
        DFT4_STORE
        .endr
        subs    r9, r9, #2
        bne     .Lthree
        vpop    {s16-s23}
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

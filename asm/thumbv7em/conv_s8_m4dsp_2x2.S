/* conv_s8_m4dsp_2x2 — the sums of the Cortex-M4 direct int8 convolution
 * (src/nn/ops/conv_direct.rs): two output pixels × two output channels at a time, the
 * weights int8 as stored in flash (four k values of one channel per word), widened in
 * registers with sxtb16. Exact. Runs on any M-profile core with the DSP extension.
 *
 *   void kernel(const int16_t *x, const int8_t *w, int32_t *sums, uint32_t groups,
 *               uint32_t pairs)                        AAPCS: r0-r3, pairs on the stack
 *   for each channel pair q < pairs, p < 2, j < 2:
 *     sums[32p + 2q + j] = Σ_{g < groups} Σ_{t < 4} x_p[4g + t] · w_{2q+j}[4g + t]
 *   x: groups × 16 bytes; group g is four words: (x_0[4g], x_0[4g+2]), (x_1[4g],
 *      x_1[4g+2]), (x_0[4g+1], x_0[4g+3]), (x_1[4g+1], x_1[4g+3]) (i16 pairs, low half
 *      first: the halves sxtb16 makes of a word of bytes and of the word rotated by 8).
 *   w: pairs × groups × 8 bytes; for pair q, group g: the 4 int8 weights of channel 2q at
 *      k = 4g..4g+3, then those of channel 2q+1.
 *   groups even and ≥ 2, 1 ≤ pairs ≤ 16; x, w word-aligned, sums 8-byte aligned. Reads
 *   exactly x[0..16·groups) and w[0..8·groups·pairs); writes sums[0..2·pairs) and
 *   sums[32..32 + 2·pairs) (pixel 1's sums 128 bytes after pixel 0's).
 *
 * Exactness: each smlad adds two i16×i16 products (|x| ≤ 255, |w| ≤ 128: below 2^16 each)
 * to the i32 accumulator with no 16-bit intermediate sum and no saturation (only the Q flag
 * is set, which nothing reads): the sums are exact whenever the true sums fit i32.
 *
 * Per group and channel pair: one ldm of the four x words, two ldr of weights, four sxtb16,
 * eight smlad: 15 instructions per 16 multiply-adds; the group loop is unrolled twice.
 * Registers: r0 x pointer, r1 w pointer, r2 end of x, r3/r12 weights, r4-r7 sums (p0c0,
 * p0c1, p1c0, p1c1), r8-r11 x words, lr sums pointer. Saves r4-r11, lr; 8 bytes of locals
 * (x start, pairs left). */
#include "common.h"

        .syntax unified
        .thumb
        .text

/* One group of one channel pair. */
.macro STEP
        ldmia   r0!, {r8-r11}
        ldr     r3, [r1], #4
        sxtb16  r12, r3, ror #8
        sxtb16  r3, r3
        smlad   r4, r8, r3, r4
        smlad   r6, r9, r3, r6
        smlad   r4, r10, r12, r4
        smlad   r6, r11, r12, r6
        ldr     r3, [r1], #4
        sxtb16  r12, r3, ror #8
        sxtb16  r3, r3
        smlad   r5, r8, r3, r5
        smlad   r7, r9, r3, r7
        smlad   r5, r10, r12, r5
        smlad   r7, r11, r12, r7
.endm

        .globl  EDGEMM_SYM(conv_s8_m4dsp_2x2)
        .type   EDGEMM_SYM(conv_s8_m4dsp_2x2), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(conv_s8_m4dsp_2x2):
        push    {r4-r11, lr}
        ldr     r12, [sp, #36]          /* pairs (the fifth argument, above the 9 saved) */
        sub     sp, #8
        str     r0, [sp]
        str     r12, [sp, #4]
        mov     lr, r2
        add     r2, r0, r3, lsl #4      /* end of x */
.Lpair:
        movs    r4, #0
        movs    r5, #0
        movs    r6, #0
        movs    r7, #0
        ldr     r0, [sp]
.Lgroups:
        STEP
        STEP
        cmp     r0, r2
        bne     .Lgroups
        strd    r6, r7, [lr, #128]
        strd    r4, r5, [lr], #8
        ldr     r3, [sp, #4]
        subs    r3, r3, #1
        str     r3, [sp, #4]
        bne     .Lpair
        add     sp, #8
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(conv_s8_m4dsp_2x2), . - EDGEMM_SYM(conv_s8_m4dsp_2x2)

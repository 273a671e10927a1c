/* conv_s8_m4dsp_3x2 — the Cortex-M4 direct int8 convolution with its output stage
 * (src/nn/ops/conv_direct.rs, the int8 layout): three output pixels × two output channels at
 * a time, the weights int8 as stored in flash, one uxtb16 per weight word. Exact. Runs on
 * any M-profile core with the DSP extension.
 *
 *   void kernel(struct args *a)                                   AAPCS: r0
 *   struct args { const u32 *x; const u32 *x_end; const u8 *w; const i32 *table; u8 *y;
 *                 isize d1, d2; i32 q[3]; u32 pairs; }             (11 words, in this order)
 *   for each channel pair q < pairs, pixel p < 3, channel j < 2 (c = 2q + j):
 *     A = q[p] + table[8q + j] + Σ_g Σ_h smlad terms below             (mod 2^32)
 *     y[d_p + c] = ssat8(RoundingDivideByPOT(SRDHM(A / 128, m_c), e_c) + z_y)
 *   with d_0 = 0, computed as  c = A asr 7; c = smmulr(c, m); (c + h + (c < 0 ? −1 : 0)) >> e
 *   (table[8q + 2 + 3j ..] = m, e, h = 2^(e−1) + z_y·2^e, 1 ≤ e ≤ 22).
 *   w: per pair, per group of four k values, one word per channel: its bytes are
 *      (w0 + 128, w1, w2 + 128, w3) (the even k values offset to unsigned).
 *   x: per group 8 words: pixel p's X1, X2 at words 2p, 2p + 1, two spare words (never
 *      read): X1 = (x1 + 129, x3 + 129), X2 = (256·x0 − x1 + 127, 256·x2 − x3 + 127) (i16
 *      halves, x the group's four int8 inputs).
 *   Then for a weight word W (halves 256·w1 + w0 + 128 and 256·w3 + w2 + 128) and
 *   U = uxtb16(W) = (w0 + 128, w2 + 128):
 *     smlad(W, X1) + smlad(U, X2) = 256·(w1·x̃1 + w3·x̃3 + (w0 + 128)·x̃0 + (w2 + 128)·x̃2)
 *   with x̃ = x + 129 at odd k and x + 1 at even k (X2 = 256·x̃_even − x̃_odd): A is 256 times
 *   Σ w·x̃ + 128·Σ_even x̃, and the caller puts into q and the table what turns it into
 *   256·(Σ w·(x − z_x) + bias) (see conv_direct.rs); exact when that is below 2^31 in
 *   magnitude (smlad wraps; only the Q flag is set, which nothing reads).
 *   x_end a multiple of 256 and x_end − x = 32·groups with groups even: the loop runs four
 *   groups a pass (entering at the middle when groups ≡ 2 mod 4) and compares x with x_end
 *   only at 256-byte boundaries. 1 ≤ pairs. x, w, table word-aligned. Reads exactly the x
 *   words named above, w[0..8·groups·pairs) and table[0..8·pairs); writes y[d_p + c] for
 *   c < 2·pairs.
 *
 * Per group: one ldm of the two weight words, two uxtb16, three 2-word loads of x, twelve
 * smlad: 18 instructions (26 cycles) per 24 multiply-adds. Per output 7 instructions.
 * Registers in the loop: r0 x, r1 w, r2-r7 sums (pixel 0 channel 0, 1; pixel 1; pixel 2),
 * r8/r10 the weight words, r9/r11 their uxtb16, r12/lr a pixel's X1, X2. Saves r0 (the
 * argument block) and r4-r11, lr. */
#include "common.h"

        .syntax unified
        .thumb
        .text

/* One group of the pair: four k values of both channels, the three pixels. */
.macro GROUP
        ldmia   r1!, {r8, r10}
        uxtb16  r9, r8
        uxtb16  r11, r10
        ldmia   r0!, {r12, lr}
        smlad   r2, r8, r12, r2
        smlad   r2, r9, lr, r2
        smlad   r3, r10, r12, r3
        smlad   r3, r11, lr, r3
        ldmia   r0!, {r12, lr}
        smlad   r4, r8, r12, r4
        smlad   r4, r9, lr, r4
        smlad   r5, r10, r12, r5
        smlad   r5, r11, lr, r5
        ldrd    r12, lr, [r0], #16      /* pixel 2, then past the two spare words */
        smlad   r6, r8, r12, r6
        smlad   r6, r9, lr, r6
        smlad   r7, r10, r12, r7
        smlad   r7, r11, lr, r7
.endm

/* The output byte of sum \acc of a channel whose m, e, h are in r8, r9, r10, into \acc:
 * TFLite's MultiplyByQuantizedMultiplier in the smmulr form, the zero point inside h, then
 * the i8 range. Uses lr. */
.macro RQ acc
        asr     \acc, \acc, #7
        smmulr  \acc, \acc, r8
        add     lr, \acc, r10
        add     lr, lr, \acc, asr #31
        asr     lr, lr, r9
        ssat    \acc, #8, lr
.endm

        .globl  EDGEMM_SYM(conv_s8_m4dsp_3x2)
        .type   EDGEMM_SYM(conv_s8_m4dsp_3x2), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(conv_s8_m4dsp_3x2):
        push    {r0, r4-r11, lr}        /* [sp]: the argument block */
        ldr     r1, [r0, #8]            /* w */
.Lpair:
        ldr     r12, [sp]
        ldr     lr, [r12, #12]          /* the pair's table: B0, B1 start its sums */
        ldmia   lr, {r8, r9}
        add     lr, r12, #28
        ldmia   lr, {r10, r11, lr}      /* q0, q1, q2 */
        add     r2, r8, r10
        add     r3, r9, r10
        add     r4, r8, r11
        add     r5, r9, r11
        add     r6, r8, lr
        add     r7, r9, lr
        ldr     r0, [r12]               /* x */
        tst     r0, #64                 /* groups ≡ 2 (mod 4): the second half first */
        bne     .Lhalf
.Lpass:
        GROUP
        GROUP
.Lhalf:
        GROUP
        GROUP
        tst     r0, #255
        bne     .Lpass
        ldr     r12, [sp]
        ldr     r12, [r12, #4]
        cmp     r0, r12
        bne     .Lpass
        /* The outputs. r12 the argument block, r11 the table. */
        ldr     r12, [sp]
        ldr     r11, [r12, #12]
        adds    r11, #8
        ldmia   r11!, {r8, r9, r10}     /* channel 0's m, e, h */
        RQ      r2
        RQ      r4
        RQ      r6
        ldmia   r11!, {r8, r9, r10}     /* channel 1's */
        RQ      r3
        RQ      r5
        RQ      r7
        str     r11, [r12, #12]
        ldr     r0, [r12, #16]          /* y, and the pixels' offsets */
        ldr     r8, [r12, #20]
        ldr     r9, [r12, #24]
        strb    r2, [r0]
        strb    r3, [r0, #1]
        add     r8, r8, r0
        strb    r4, [r8]
        strb    r5, [r8, #1]
        add     r9, r9, r0
        strb    r6, [r9]
        strb    r7, [r9, #1]
        adds    r0, #2
        str     r0, [r12, #16]
        ldr     r0, [r12, #40]
        subs    r0, #1
        str     r0, [r12, #40]
        bne     .Lpair
        pop     {r0, r4-r11, pc}
        .size   EDGEMM_SYM(conv_s8_m4dsp_3x2), . - EDGEMM_SYM(conv_s8_m4dsp_3x2)

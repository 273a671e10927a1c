/* conv_s8_m4dsp_4x2 — the Cortex-M4 direct int8 convolution with its output stage
 * (src/nn/ops/conv_direct.rs, the int8 layout): four output pixels × two output channels at
 * a time, the weights int8 as stored in flash, one uxtb16 per weight word. Exact. Runs on
 * any M-profile core with the DSP extension.
 *
 *   void kernel(struct args *a)                                   AAPCS: r0
 *   struct args { const u32 *x; const u32 *x_end; const u8 *w; const i32 *table; u8 *y;
 *                 isize d1, d2, d3; i32 q[4]; u32 pairs; }         (13 words, in this order)
 *   for each channel pair q < pairs, pixel p < 4, channel j < 2 (c = 2q + j):
 *     A = q[p] + table[8q + j] + Σ_g Σ_h smlad terms below             (mod 2^32)
 *     y[d_p + c] = ssat8(RoundingDivideByPOT(SRDHM(A / 128, m_c), e_c) + z_y)
 *   with d_0 = 0, computed as  c = A asr 7; c = smmulr(c, m); (c + h + (c < 0 ? −1 : 0)) >> e
 *   (table[8q + 2 + 3j ..] = m, e, h = 2^(e−1) + z_y·2^e, 1 ≤ e ≤ 22).
 *   w: per pair, per group of four k values, one word per channel: its bytes are
 *      (w0 + 128, w1, w2 + 128, w3) (the even k values offset to unsigned).
 *   x: per group 8 words: pixel p's X1 at word p, its X2 at word 4 + p, with
 *      X1 = (x1 + 129, x3 + 129), X2 = (256·x0 − x1 + 127, 256·x2 − x3 + 127) (i16 halves,
 *      x the group's four int8 inputs).
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
 *   words [x, x_end), w[0..8·groups·pairs) and table[0..8·pairs); writes y[d_p + c] for
 *   c < 2·pairs.
 *
 * Per group: one ldm of the two weight words, four 2-word loads of x, two uxtb16 (in place:
 * a weight word's X1 products come first), sixteen smlad: 22 instructions (33 cycles) per
 * 32 multiply-adds. Per output 7 instructions.
 * Registers in the loop: r0 x, r1 w, r2-r9 sums (pixel 0 channel 0, 1; pixel 1; pixel 2;
 * pixel 3), r10/r11 the weight words then their uxtb16, r12/lr two pixels' X1 or X2. Saves
 * r0 (the argument block) and r4-r11, lr. */
#include "common.h"

        .syntax unified
        .thumb
        .text

/* One group of the pair: four k values of both channels, the four pixels. */
.macro GROUP
        ldmia   r1!, {r10, r11}
        ldmia   r0!, {r12, lr}          /* X1 of pixels 0, 1 */
        smlad   r2, r10, r12, r2
        smlad   r3, r11, r12, r3
        smlad   r4, r10, lr, r4
        smlad   r5, r11, lr, r5
        ldmia   r0!, {r12, lr}          /* X1 of pixels 2, 3 */
        smlad   r6, r10, r12, r6
        smlad   r7, r11, r12, r7
        smlad   r8, r10, lr, r8
        smlad   r9, r11, lr, r9
        uxtb16  r10, r10
        uxtb16  r11, r11
        ldmia   r0!, {r12, lr}          /* X2 of pixels 0, 1 */
        smlad   r2, r10, r12, r2
        smlad   r3, r11, r12, r3
        smlad   r4, r10, lr, r4
        smlad   r5, r11, lr, r5
        ldmia   r0!, {r12, lr}          /* X2 of pixels 2, 3 */
        smlad   r6, r10, r12, r6
        smlad   r7, r11, r12, r7
        smlad   r8, r10, lr, r8
        smlad   r9, r11, lr, r9
.endm

/* The output byte of sum \acc of a channel whose m, e, h are in r10, r11, r12, into \acc:
 * TFLite's MultiplyByQuantizedMultiplier in the smmulr form, the zero point inside h, then
 * the i8 range. Uses lr. */
.macro RQ acc
        asr     \acc, \acc, #7
        smmulr  \acc, \acc, r10
        add     lr, \acc, r12
        add     lr, lr, \acc, asr #31
        asr     lr, lr, r11
        ssat    \acc, #8, lr
.endm

        .globl  EDGEMM_SYM(conv_s8_m4dsp_4x2)
        .type   EDGEMM_SYM(conv_s8_m4dsp_4x2), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(conv_s8_m4dsp_4x2):
        push    {r0, r4-r11, lr}        /* [sp]: the argument block */
        ldr     r1, [r0, #8]            /* w */
.Lpair:
        ldr     r12, [sp]
        ldr     lr, [r12, #12]          /* the pair's table: B0, B1 start its sums */
        ldmia   lr, {r10, r11}
        add     r0, r12, #32
        ldmia   r0, {r6, r8, r9, lr}    /* q0, q1, q2, q3 */
        add     r2, r10, r6
        add     r3, r11, r6
        add     r4, r10, r8
        add     r5, r11, r8
        add     r6, r10, r9
        add     r7, r11, r9
        add     r8, r10, lr
        add     r9, r11, lr
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
        /* The outputs. r0 the table. */
        ldr     r12, [sp]
        ldr     r0, [r12, #12]
        adds    r0, #8
        ldmia   r0!, {r10, r11, r12}    /* channel 0's m, e, h */
        RQ      r2
        RQ      r4
        RQ      r6
        RQ      r8
        ldmia   r0!, {r10, r11, r12}    /* channel 1's */
        RQ      r3
        RQ      r5
        RQ      r7
        RQ      r9
        ldr     r12, [sp]               /* r12 the argument block, r10 y */
        str     r0, [r12, #12]
        ldr     r10, [r12, #16]
        strb    r2, [r10]
        strb    r3, [r10, #1]
        ldr     r11, [r12, #20]
        add     r11, r11, r10
        strb    r4, [r11]
        strb    r5, [r11, #1]
        ldr     r11, [r12, #24]
        add     r11, r11, r10
        strb    r6, [r11]
        strb    r7, [r11, #1]
        ldr     r11, [r12, #28]
        add     r11, r11, r10
        strb    r8, [r11]
        strb    r9, [r11, #1]
        adds    r10, #2
        str     r10, [r12, #16]
        ldr     r0, [r12, #48]
        subs    r0, #1
        str     r0, [r12, #48]
        bne     .Lpair
        pop     {r0, r4-r11, pc}
        .size   EDGEMM_SYM(conv_s8_m4dsp_4x2), . - EDGEMM_SYM(conv_s8_m4dsp_4x2)

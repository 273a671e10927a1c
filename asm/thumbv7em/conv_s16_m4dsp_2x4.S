/* conv_s16_m4dsp_2x4 — the sums of the Cortex-M4 direct int8 convolution with its weights
 * stored as i16 pairs (src/nn/ops/conv_direct.rs, the wide layout): two output pixels ×
 * four output channels at a time, no widening in the loop. Exact. Runs on any M-profile core
 * with the DSP extension.
 *
 *   void kernel(const int16_t *x, const int16_t *w, int32_t *sums_or_table,
 *               uint32_t bytes, uint32_t quads, int8_t *y, uint32_t y1)
 *                                      AAPCS: r0-r3, quads, y, y1 on the stack
 *   for each channel quad q < quads, p < 2, j < 4, the sum
 *     s[p][4q + j] = Σ_{s < bytes/8} Σ_{h < 2} x[2s + p].h · w[q][4s + j].h
 *   y null: sums[32p + 4q + j] = s[p][4q + j] (pixel 1's sums 128 bytes after pixel 0's);
 *   else the outputs, from the table (per quad 16 words: the four channels' biases, then
 *   for each channel m, e, h = 2^(e−1) + z_y·2^e, 1 ≤ e ≤ 22):
 *     y[p·y1 + 4q + j] = ssat8(RoundingDivideByPOT(SRDHM(s + bias, m), e) + z_y)
 *   computed as  c = 2(s + bias); c = smmulr(c, m); (c + h + (c < 0 ? −1 : 0)) >> e,
 *   exact when |s + bias| < 2^30 and m > −2^31 + 1 (quant::requant's Arm form; the zero
 *   point inside h stays exact: z_y·2^e is a multiple of 2^e and |z_y·2^e| ≤ 2^29).
 *   x: bytes/8 steps of two words, (pixel 0's pair, pixel 1's pair) of i16 values (the
 *      pair buffer of conv_direct.rs: two steps per group of four k values).
 *   w: quads × bytes/8 steps × four words, the i16 pairs of channels 4q..4q+3 for the
 *      step's two k values, in the order of x's pairs.
 *   bytes a multiple of 32 (8 k values per loop pass); x + bytes a multiple of 256 (the
 *   loop stops at each 256-byte boundary of x and then compares with the end: no register
 *   holds the end, so the 2×4 tile's 8 sums, 2 x words and 2 weight words fit); 1 ≤ quads
 *   ≤ 8; x, w, sums/table word-aligned. Reads exactly x[0..bytes), w[0..2·bytes·quads)
 *   and the table's 16·quads words; writes sums[0..4·quads) and sums[32..32 + 4·quads),
 *   or y[0..4·quads) and y[y1..y1 + 4·quads).
 *
 * Exactness: each smlad adds two i16×i16 products (|x| ≤ 255, |w| ≤ 128: below 2^16 each)
 * to the i32 accumulator with no 16-bit intermediate sum and no saturation (only the Q flag
 * is set, which nothing reads): the sums are exact whenever the true sums fit i32.
 *
 * Per step: ldm of the two x words, two ldm of two weight words, eight smlad: 11
 * instructions (17 cycles) per 16 multiply-adds; the step is unrolled four times. The
 * output stage: 7 instructions per output and a 3-word ldm per channel.
 * Registers: r0 x pointer, r1 w pointer, r2/r3 x words (pixel 0, 1), r12/lr weight words,
 * r4-r7 pixel 0's sums of channels 0-3, r8-r11 pixel 1's. Saves r4-r11, lr; 32 bytes of
 * locals (x start and end, sums or table pointer, quads left, y, y1, w). */
#include "common.h"

        .syntax unified
        .thumb
        .text

/* One step (two k values) of the quad. */
.macro STEP
        ldmia   r0!, {r2, r3}
        ldmia   r1!, {r12, lr}
        smlad   r4, r2, r12, r4
        smlad   r8, r3, r12, r8
        smlad   r5, r2, lr, r5
        smlad   r9, r3, lr, r9
        ldmia   r1!, {r12, lr}
        smlad   r6, r2, r12, r6
        smlad   r10, r3, r12, r10
        smlad   r7, r2, lr, r7
        smlad   r11, r3, lr, r11
.endm

/* The output byte of sum \acc (bias included) of a channel whose m, e, h are in r2, r3,
 * r12, into lr: TFLite's MultiplyByQuantizedMultiplier in the smmulr form, the zero point
 * inside h (see the header), then the i8 range. \acc is overwritten. */
.macro RQ acc
        add     \acc, \acc, \acc
        smmulr  \acc, \acc, r2
        add     lr, \acc, r12
        add     lr, lr, \acc, asr #31
        asr     lr, lr, r3
        ssat    lr, #8, lr
.endm

        .globl  EDGEMM_SYM(conv_s16_m4dsp_2x4)
        .type   EDGEMM_SYM(conv_s16_m4dsp_2x4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(conv_s16_m4dsp_2x4):
        push    {r4-r11, lr}
        ldr     r12, [sp, #36]          /* quads, y, y1 − y (arguments 5-7, above the 9 saved) */
        ldr     r4, [sp, #40]
        ldr     r5, [sp, #44]
        sub     sp, #32
        add     r3, r0, r3              /* end of x */
        strd    r0, r3, [sp]            /* [sp] x start, [sp, #4] x end */
        strd    r2, r12, [sp, #8]       /* [sp, #8] sums or table, [sp, #12] quads left */
        strd    r4, r5, [sp, #16]       /* [sp, #16] y, [sp, #20] y1 − y; [sp, #24] w saved */
.Lquad:
        ldr     r0, [sp]
        ldr     r3, [sp, #16]
        cbz     r3, .Lzero
        ldr     r2, [sp, #8]            /* the quad's biases start the sums */
        ldmia   r2!, {r4-r7}
        str     r2, [sp, #8]
        mov     r8, r4
        mov     r9, r5
        mov     r10, r6
        mov     r11, r7
        b       .Lsteps
.Lzero:
        movs    r4, #0
        movs    r5, #0
        movs    r6, #0
        movs    r7, #0
        mov     r8, #0
        mov     r9, #0
        mov     r10, #0
        mov     r11, #0
.Lsteps:
        STEP
        STEP
        STEP
        STEP
        tst     r0, #255
        bne     .Lsteps
        ldr     r2, [sp, #4]
        cmp     r0, r2
        bne     .Lsteps
        ldr     r3, [sp, #16]
        cmp     r3, #0
        beq     .Lsums
        /* The outputs: r0 the table, r1 y, r4 y1 once channel 0's pixel 0 is done. */
        str     r1, [sp, #24]
        ldr     r0, [sp, #8]
        mov     r1, r3
        ldmia   r0!, {r2, r3, r12}
        RQ      r4
        strb    lr, [r1]
        ldr     r4, [sp, #20]
        add     r4, r4, r1
        RQ      r8
        strb    lr, [r4]
        ldmia   r0!, {r2, r3, r12}
        RQ      r5
        strb    lr, [r1, #1]
        RQ      r9
        strb    lr, [r4, #1]
        ldmia   r0!, {r2, r3, r12}
        RQ      r6
        strb    lr, [r1, #2]
        RQ      r10
        strb    lr, [r4, #2]
        ldmia   r0!, {r2, r3, r12}
        RQ      r7
        strb    lr, [r1, #3]
        RQ      r11
        strb    lr, [r4, #3]
        str     r0, [sp, #8]
        adds    r1, r1, #4
        str     r1, [sp, #16]
        ldr     r1, [sp, #24]
        b       .Lnext
.Lsums:
        ldr     r2, [sp, #8]
        add     r3, r2, #128
        stm     r3, {r8-r11}
        stmia   r2!, {r4-r7}
        str     r2, [sp, #8]
.Lnext:
        ldr     r3, [sp, #12]
        subs    r3, r3, #1
        str     r3, [sp, #12]
        bne     .Lquad
        add     sp, #32
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(conv_s16_m4dsp_2x4), . - EDGEMM_SYM(conv_s16_m4dsp_2x4)

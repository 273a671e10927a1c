/* dw3x3_s8_m4dsp — one output row segment of the Cortex-M4 int8 3×3 depthwise convolution
 * (src/nn/ops/depthwise_m4.rs, the M4 stream layout): n output pixels × all channel groups
 * of four, sums and output stage fused. Exact. Runs on any M-profile core with the DSP
 * extension.
 *
 *   void kernel(const uint32_t args[14]);
 *   args: 0-2 r[k] (row k's input at pixel 0's window column 0, channel 0), 3 y (outputs),
 *   4 w (the stream), 5-7 ic[k] (bytes from one window column to the next in row k),
 *   8-10 s[k] (bytes from the end of pixel p's channels in row k to pixel p + 1's window
 *   start: stride·c − c, or −c for a pad row whose ic and stride are 0), 11 n ≥ 1 pixels,
 *   12 w_end (w + 136·groups, groups ≥ 1), 13 groups mod 2.
 *   For each pixel p < n and group q < groups, channels c = 4q + j, j < 4:
 *     acc_j = start[q][j] + Σ_{s<9} x_s[c]·w_s[c], tap s = (row ky, column kx) in the order
 *     (0,1) (0,2) (1,1) (1,2) (2,1) (2,2) (0,0) (1,0) (2,0), x_s[c] the byte at
 *     r[ky] + p·(s[ky] + 4·groups) + kx·ic[ky] + c; then  b = h + (acc < 0 ? −1 : 0); v = (b·2^32 + acc·m + 2^31) >> 32
 *     (smmlar); y[p·4·groups + c] = ssat8(v >> e) (a narrower clamp is the caller's).
 *   Stream, per group q (34 words): the four sums' start; taps (s0,s1), (s2,s3), (s4,s5),
 *   (s6,s7) as four words each, channel j's i16 pair (w_a, w_b); tap s8 as two words, the
 *   i16 pairs (w[c0], w[c1]), (w[c2], w[c3]); then m, h, e for each channel.
 *   With the converter's stream (weights and starts doubled, h = 2^(e−1) + z_y·2^e,
 *   1 ≤ e ≤ 22, m ≥ 0, |sum| < 2^30) v is TFLite's MultiplyByQuantizedMultiplier(sum, m,
 *   −e) + z_y: the smmulr form of quant::requant's Arm module, with the rounding's −1 taken
 *   from the sign of the sum, not of the product (they differ only when the product rounds
 *   to 0, where both give z_y), and the add folded into smmlar.
 *   Reads x bytes only at the addresses above (4 per pixel, group and tap, unaligned ldr),
 *   the stream [w, w_end) (word-aligned: ldm), args; writes y[0 .. n·4·groups) (str of
 *   words, unaligned allowed).
 *
 * Per group (96 instructions, 36 multiply-adds): 9 ldr of inputs, 3 ldr of column steps,
 * 10 ldr and 5 ldm of weights and sums (each single load right after another costs one
 * cycle, an ldm 1 + registers), 8 pkh, 18 sxtb16, 16 smlad and 4 smlaxy; the output stage
 * 3 ldm and 4 × (add, smmlar, asr, ssat), 3 bfi, one str; the loop (two groups a pass):
 * ldr, cmp, bne per two groups.
 * Registers: r0-r2 row pointers, r3 stream, r4-r6 inputs/temporaries (r6 the column step
 * while loading), r7/r12 weight words, r8-r11 the four sums, lr y. Saves r4-r11, lr; 44
 * bytes of locals (args 4-13). */
#include "common.h"

        .syntax unified
        .thumb
        .text

        .equ    W0, 0
        .equ    IC0, 4
        .equ    IC1, 8
        .equ    IC2, 12
        .equ    S0, 16
        .equ    S1, 20
        .equ    S2, 24
        .equ    NPX, 28
        .equ    WEND, 32
        .equ    ODD, 36

/* Inputs a (r4), b (r5) of one filter row (r6 its column step) and the tap pair's first two
 * weight words (r7, r12): single loads in a row, each after the first one cycle. */
.macro LOADS row, ic
        ldr     r6, [sp, #\ic]
        ldr     r4, [\row, r6]          /* column 1 */
        ldr     r5, [\row, r6, lsl #1]  /* column 2 */
        ldr     r7, [r3], #4
        ldr     r12, [r3], #4
.endm

/* Taps a (r4) and b (r5) of channels 0-3 into the sums; weights: r7, r12, then the next two
 * words. */
.macro PAIR
        pkhtb   r6, r5, r4, asr #16     /* (a2 a3 b2 b3) */
        pkhbt   r4, r4, r5, lsl #16     /* (a0 a1 b0 b1) */
        sxtb16  r5, r4                  /* (a0, b0) */
        sxtb16  r4, r4, ror #8          /* (a1, b1) */
        smlad   r8, r5, r7, r8
        smlad   r9, r4, r12, r9
        ldmia   r3!, {r7, r12}
        sxtb16  r5, r6
        sxtb16  r6, r6, ror #8
        smlad   r10, r5, r7, r10
        smlad   r11, r6, r12, r11
.endm

/* One group: four channels of one pixel, stored at lr (lr += 4). */
.macro GROUP
        ldmia   r3!, {r8-r11}
        LOADS   r0, IC0                 /* (0,1) (0,2) */
        PAIR
        LOADS   r1, IC1                 /* (1,1) (1,2) */
        PAIR
        LOADS   r2, IC2                 /* (2,1) (2,2) */
        PAIR
        ldr     r4, [r0], #4            /* (0,0) */
        ldr     r5, [r1], #4            /* (1,0) */
        ldr     r7, [r3], #4
        ldr     r12, [r3], #4
        PAIR
        ldr     r4, [r2], #4            /* (2,0), alone */
        ldr     r7, [r3], #4
        ldr     r12, [r3], #4
        sxtb16  r5, r4                  /* (x0, x2) */
        sxtb16  r4, r4, ror #8          /* (x1, x3) */
        smlabb  r8, r5, r7, r8
        smlabt  r9, r4, r7, r9
        smlatb  r10, r5, r12, r10
        smlatt  r11, r4, r12, r11
        /* The output stage, (m, h, e) of channels 0-3 in three ldm: the sums' bytes. */
        ldmia   r3!, {r4, r5, r6, r7, r12}      /* m0 h0 e0 m1 h1 */
        add     r5, r5, r8, asr #31
        smmlar  r8, r8, r4, r5
        asr     r8, r8, r6
        ssat    r8, #8, r8
        add     r12, r12, r9, asr #31
        smmlar  r9, r9, r7, r12
        ldmia   r3!, {r4, r5, r6, r7, r12}      /* e1 m2 h2 e2 m3 */
        asr     r9, r9, r4
        ssat    r9, #8, r9
        add     r6, r6, r10, asr #31
        smmlar  r10, r10, r5, r6
        asr     r10, r10, r7
        ssat    r10, #8, r10
        ldmia   r3!, {r4, r5}                   /* h3 e3 */
        add     r4, r4, r11, asr #31
        smmlar  r11, r11, r12, r4
        asr     r11, r11, r5
        ssat    r11, #8, r11
        bfi     r8, r9, #8, #8
        bfi     r8, r10, #16, #8
        bfi     r8, r11, #24, #8
        str     r8, [lr], #4
.endm

        .globl  EDGEMM_SYM(dw3x3_s8_m4dsp)
        .type   EDGEMM_SYM(dw3x3_s8_m4dsp), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(dw3x3_s8_m4dsp):
        push    {r4-r11, lr}
        sub     sp, #44
        ldr     lr, [r0, #12]
        add     r1, r0, #16
        ldmia   r1, {r1-r10}
        stmia   sp, {r1-r10}
        mov     r3, r1
        ldmia   r0, {r0-r2}
.Lpixel:
        /* Two groups a pass; an odd count enters at the second. */
        ldr     r4, [sp, #ODD]
        cmp     r4, #0
        bne     .Lsecond
.Lgroup:
        GROUP
.Lsecond:
        GROUP
        ldr     r4, [sp, #WEND]
        cmp     r3, r4
        bne     .Lgroup
        /* The next pixel: each row's pointer to its window, the stream from its start. */
        ldr     r4, [sp, #S0]
        ldr     r5, [sp, #S1]
        ldr     r6, [sp, #S2]
        ldr     r3, [sp, #W0]
        add     r0, r0, r4
        add     r1, r1, r5
        add     r2, r2, r6
        ldr     r5, [sp, #NPX]
        subs    r5, r5, #1
        str     r5, [sp, #NPX]
        bne     .Lpixel
        add     sp, #44
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(dw3x3_s8_m4dsp), . - EDGEMM_SYM(dw3x3_s8_m4dsp)

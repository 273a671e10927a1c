/* fft_last_split_vfp4 — the last radix-4 stage of the audio frontend's 256-point complex FFT
 * fused with the split step that separates the 512-point real FFT's bins (src/audio/fft.rs,
 * radix4_stage with quarter 64, then split_to_mel's magnitudes) for the Cortex-M4F (FPv4-SP).
 * Butterflies k and 64 − k of the stage make the eight points the split step needs for bins
 * k, 64 − k, 64 + k and 128 − k (each bin pairs Y[b] with Y[256 − b]), so the stage's results
 * stay in registers: no store and reload of the 2 KB. The same operations in the same order
 * as the Rust, each rounded once (VMUL, VADD, VSUB, VSQRT: no fused or chained multiply-add),
 * so the magnitudes are the same bits.
 *
 * Contract (AAPCS):  void kernel(float *z, const float *table)
 *   z: the 256 points (re, im) after the first three stages, word-aligned. table: 12 + 31·20
 *   floats (LAST_SPLIT in fft.rs): the last stage's twiddle row 32, the split twiddles of
 *   bins 64, 32, 96; then for k = 1..31 the twiddle rows k and 64 − k and the split twiddles
 *   of bins k, 64 − k, 64 + k, 128 − k. Butterfly k: as fft_radix4_vfp4 with Q = 64 (k = 0:
 *   no twiddles) giving Y. Bin b (1 <= b < 128), with a = Y[b], c = Y[256 − b], w its split
 *   twiddle: e = (a.re + c.re, a.im − c.im), o = (a.im + c.im, c.re − a.re), t = (w.re·o.re −
 *   w.im·o.im, w.re·o.im + w.im·o.re), x = e + t; z[b].re ← √(x.re·x.re + x.im·x.im) (= 2|X[b]|).
 *   Writes z[1..128].re; the rest of z is left undefined. Reads table only.
 *
 * Registers: r4–r7 &Z[k + 64q] (post-incremented), r8–r11 &Z[64q − k] (pre-decremented), r12
 *   the table, r1 pairs left; s0–s7 butterfly k's points, s8–s15 butterfly 64 − k's, s16–s23
 *   twiddles, s22–s29 butterfly sums, s24–s31 split sums. Saves r4–r11, lr and s16–s31.
 */
#include "common.h"
#include "fft_vfp4.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text


/* The magnitude of the bin with a = (s\ar, s\ai), c = Y[256 − b] = (s\cr, s\ci) and split
 * twiddle (s\wr, s\wi) into s24; sums in s24–s31. */
.macro SPLIT ar, ai, cr, ci, wr, wi
        vadd.f32 s24, s\ar, s\cr          @ e
        vsub.f32 s25, s\ai, s\ci
        vadd.f32 s26, s\ai, s\ci          @ o
        vsub.f32 s27, s\cr, s\ar
        vmul.f32 s28, s\wr, s26           @ t
        vmul.f32 s29, s\wi, s27
        vmul.f32 s30, s\wr, s27
        vmul.f32 s31, s\wi, s26
        vsub.f32 s28, s28, s29
        vadd.f32 s30, s30, s31
        vadd.f32 s24, s24, s28            @ x
        vadd.f32 s25, s25, s30
        vmul.f32 s24, s24, s24
        vmul.f32 s25, s25, s25
        vadd.f32 s24, s24, s25
        vsqrt.f32 s24, s24
.endm

        .globl  EDGEMM_SYM(fft_last_split_vfp4)
        .type   EDGEMM_SYM(fft_last_split_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(fft_last_split_vfp4):
        push    {r4-r11, lr}
        vpush   {s16-s31}
        mov     r12, r1
        /* Butterfly 0 (no twiddles): bin 64 = (Y[64], Y[192]). */
        add     r8, r0, #512            @ Z[64]
        add     r9, r0, #1024           @ Z[128]
        add     r10, r0, #1536          @ Z[192]
        vldmia  r0, {s0-s1}
        vldmia  r8, {s2-s3}
        vldmia  r9, {s4-s5}
        vldmia  r10, {s6-s7}
        DFT4    0, 1, 2, 3, 4, 5, 6, 7
        /* Butterfly 32: bins 32 = (Y[32], Y[224]) and 96 = (Y[96], Y[160]). */
        vldr    d4, [r0, #256]          @ s8–s9: Z[32]
        vldr    d5, [r0, #768]          @ Z[96]
        vldr    d6, [r8, #768]          @ Z[160]
        vldr    d7, [r9, #768]          @ Z[224]
        vldmia  r12!, {s16-s21}         @ twiddle row 32
        CMUL    10, 11, 16, 17
        CMUL    12, 13, 18, 19
        CMUL    14, 15, 20, 21
        DFT4    8, 9, 10, 11, 12, 13, 14, 15
        vldmia  r12!, {s16-s21}         @ split twiddles of bins 64, 32, 96
        SPLIT   2, 3, 6, 7, 16, 17
        vstr    s24, [r8]
        SPLIT   8, 9, 14, 15, 18, 19
        vstr    s24, [r0, #256]
        SPLIT   10, 11, 12, 13, 20, 21
        vstr    s24, [r0, #768]
        /* Butterflies k and 64 − k, k = 1..31. */
        add     r4, r0, #8              @ Z[1]
        add     r5, r8, #8              @ Z[65]
        add     r6, r9, #8              @ Z[129]
        add     r7, r10, #8             @ Z[193]
        add     r11, r0, #2048          @ Z[256]
        movs    r1, #31
.Lpair:
        vldmia  r4!, {s0-s1}            @ Z[k]
        vldmia  r5!, {s2-s3}            @ Z[64 + k]
        vldmia  r6!, {s4-s5}            @ Z[128 + k]
        vldmia  r7!, {s6-s7}            @ Z[192 + k]
        vldmdb  r8!, {s8-s9}            @ Z[64 − k]
        vldmdb  r9!, {s10-s11}          @ Z[128 − k]
        vldmdb  r10!, {s12-s13}         @ Z[192 − k]
        vldmdb  r11!, {s14-s15}         @ Z[256 − k]
        vldmia  r12!, {s16-s21}         @ twiddle row k
        CMUL    2, 3, 16, 17
        CMUL    4, 5, 18, 19
        CMUL    6, 7, 20, 21
        vldmia  r12!, {s16-s21}         @ twiddle row 64 − k
        CMUL    10, 11, 16, 17
        CMUL    12, 13, 18, 19
        CMUL    14, 15, 20, 21
        DFT4    0, 1, 2, 3, 4, 5, 6, 7
        DFT4    8, 9, 10, 11, 12, 13, 14, 15
        vldmia  r12!, {s16-s23}         @ split twiddles of bins k, 64 − k, 64 + k, 128 − k
        SPLIT   0, 1, 14, 15, 16, 17    @ bin k: Y[k], Y[256 − k]
        vstr    s24, [r4, #-8]
        SPLIT   8, 9, 6, 7, 18, 19      @ bin 64 − k: Y[64 − k], Y[192 + k]
        vstr    s24, [r8]
        SPLIT   2, 3, 12, 13, 20, 21    @ bin 64 + k: Y[64 + k], Y[192 − k]
        vstr    s24, [r5, #-8]
        SPLIT   10, 11, 4, 5, 22, 23    @ bin 128 − k: Y[128 − k], Y[128 + k]
        vstr    s24, [r9]
        subs    r1, r1, #1
        bne     .Lpair
        vpop    {s16-s31}
        pop     {r4-r11, pc}
        .size   EDGEMM_SYM(fft_last_split_vfp4), . - EDGEMM_SYM(fft_last_split_vfp4)

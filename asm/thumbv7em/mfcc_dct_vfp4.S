/* mfcc_dct_vfp4 — the audio frontend's DCT of the log-mel energies (src/audio/frontend.rs,
 * dct) on the Cortex-M4F (FPv4-SP). The same operations in the same order as the Rust, each
 * rounded once (VMUL, VADD, VSUB: no fused multiply-add), so the results are the same bits.
 *
 * Contract (AAPCS):
 *   void kernel(const float *log_mel, float *out, const float *rows)
 *   log_mel: 40 floats x; out: 10 floats; rows: 10 rows of 20 floats (DCT_HALF), row k the
 *   first half of DCT row k (even rows are symmetric about the middle, odd ones antisymmetric).
 *   With s_i = x_i + x_(39−i) and d_i = x_i − x_(39−i) (i < 20), out[k] = Σ_i row_k[i]·f_i,
 *   f = s for even k and d for odd k, summed from i = 0 up (the first term is the product
 *   itself). Reads log_mel and rows; writes out only.
 *
 * Why assembly: the compiler keeps the 40 folded values on the stack and loads each
 * coefficient with its own VLDR (2 estimated cycles) for a VMLA (3); here the folded values
 * stay in s0–s19, the coefficients come 10 at a time by VLDM (1.1 a float) and each product is
 * VMUL + VADD (2).
 *
 * Registers: r0 log_mel, r1 out, r2 the row, r3 log_mel + 20, r12 log_mel + 30; s0–s19 the folded
 *   values, s20–s29 the coefficients (or the loaded second half of log_mel), s30 the sum, s31
 *   the product. Saves s16–s31 (64 bytes of stack).
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

/* s<a..j> ← s<a..j> op s29, s28, …, s20 (x_i op x_(39−i) for ten i, the second half loaded
 * into s20–s29). */
.macro FOLD op, a, b, c, d, e, f, g, h, i, j
        \op     s\a, s\a, s29
        \op     s\b, s\b, s28
        \op     s\c, s\c, s27
        \op     s\d, s\d, s26
        \op     s\e, s\e, s25
        \op     s\f, s\f, s24
        \op     s\g, s\g, s23
        \op     s\h, s\h, s22
        \op     s\i, s\i, s21
        \op     s\j, s\j, s20
.endm

/* Both folds of log_mel into s0–s19 with op (vadd: s; vsub: d). */
.macro FOLD_ALL op
        vldmia  r0, {s0-s19}            @ x_0 … x_19
        vldmia  r3, {s20-s29}           @ x_20 … x_29, the partners of i = 19 … 10
        FOLD    \op, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19
        vldmia  r12, {s20-s29}          @ x_30 … x_39, the partners of i = 9 … 0
        FOLD    \op, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
.endm

/* s30 ← s30 + s<c>·s<x>. */
.macro MAC c, x
        vmul.f32 s31, s\c, s\x
        vadd.f32 s30, s30, s31
.endm

/* out[k] (at byte offset off of r1) from the row at r2 (r2 advanced by the row). */
.macro ROW off
        vldmia  r2!, {s20-s29}
        vmul.f32 s30, s20, s0
        MAC     21, 1
        MAC     22, 2
        MAC     23, 3
        MAC     24, 4
        MAC     25, 5
        MAC     26, 6
        MAC     27, 7
        MAC     28, 8
        MAC     29, 9
        vldmia  r2!, {s20-s29}
        MAC     20, 10
        MAC     21, 11
        MAC     22, 12
        MAC     23, 13
        MAC     24, 14
        MAC     25, 15
        MAC     26, 16
        MAC     27, 17
        MAC     28, 18
        MAC     29, 19
        vstr    s30, [r1, #\off]
.endm

        .globl  EDGEMM_SYM(mfcc_dct_vfp4)
        .type   EDGEMM_SYM(mfcc_dct_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(mfcc_dct_vfp4):
        vpush   {s16-s31}
        add     r3, r0, #80             @ x_20
        add     r12, r0, #120           @ x_30
        /* Even rows from s: rows 0, 2, 4, 6, 8. */
        FOLD_ALL vadd.f32
        ROW     0
        add     r2, r2, #80
        ROW     8
        add     r2, r2, #80
        ROW     16
        add     r2, r2, #80
        ROW     24
        add     r2, r2, #80
        ROW     32
        /* Odd rows from d: r2 is at row 9; back to row 1. */
        sub     r2, r2, #640
        FOLD_ALL vsub.f32
        ROW     4
        add     r2, r2, #80
        ROW     12
        add     r2, r2, #80
        ROW     20
        add     r2, r2, #80
        ROW     28
        add     r2, r2, #80
        ROW     36
        vpop    {s16-s31}
        bx      lr
        .size   EDGEMM_SYM(mfcc_dct_vfp4), . - EDGEMM_SYM(mfcc_dct_vfp4)

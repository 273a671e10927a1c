/* mfcc_log_vfp4 — the audio frontend's log of the mel energies (src/audio/frontend.rs,
 * mfcc_chunks: ln(mel + 1e-6) by src/audio/math.rs, ln) on the Cortex-M4F (FPv4-SP). The
 * same operations in the same order as the Rust, each rounded once (VMUL, VADD, VSUB: no
 * fused or chained multiply-add), so the results are the same bits.
 *
 * Contract (AAPCS):
 *   unsigned kernel(const float *mel, float *out, const float *rows, unsigned n)
 *   mel: n floats, n even and >= 2; out: n floats; rows: ln's 32 rows (c, ln(1/c), r0) (LN_ROWS).
 *   For each i: x = mel[i] + 1e-6; if x is not a positive normal finite float, returns 1
 *   (out[i..] unwritten: the caller computes ln itself). Else, with bits = x's bits, e =
 *   (bits >> 23) − 127 as a float, (c, l, r0) = rows[(bits >> 18) & 31], m = x's mantissa
 *   as 1.f and m0 = its top 5 fraction bits as 1.f:
 *     r = r0 + (m − m0)·c; p = r·(1 + r·(−0.5 + r·(1/3 + r·−0.25)));
 *     out[i] = e·LN2_HI + (e·LN2_LO + (l + p)).
 *   Returns 0 when all n are done. Reads mel, rows; writes out only.
 *
 * Why assembly: the compiler's loop chains VMLA (3 estimated cycles) and loads its constants
 * and row with single VLDRs; here the constants stay in registers, the row is one VLDM of 3,
 * and each product is VMUL + VADD (2): about 45 estimated cycles a log against 65.
 *
 * Registers: r0 mel, r1 out, r2 rows, r3 left, r4 bits, r5–r7 scratch, r8 = 127; s0–s8
 *   scratch, s16 1e-6, s17 −0.25, s18 1/3, s19 −0.5, s20 1.0, s21 LN2_HI, s22 LN2_LO. Saves
 *   r4–r8, lr and s16–s23.
 */
#include "common.h"

        .syntax unified
        .thumb
        .fpu    fpv4-sp-d16
        .text

        .globl  EDGEMM_SYM(mfcc_log_vfp4)
        .type   EDGEMM_SYM(mfcc_log_vfp4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(mfcc_log_vfp4):
        push    {r4-r8, lr}
        vpush   {s16-s23}
        adr     r4, .Lconst
        vldmia  r4, {s16-s22}
        movs    r8, #127
.Llog:
        .rept   2                       @ two logs a loop pass
        vldmia  r0!, {s0}
        vadd.f32 s0, s0, s16            @ x = mel + 1e-6
        vmov    r4, s0
        sub     r5, r4, #0x00800000
        cmp     r5, #0x7f000000
        bhs     .Lspecial               @ zero, subnormal, negative, ∞ or NaN
        mov     r5, r4
        bfi     r5, r8, #23, #9         @ m: the mantissa with exponent 0
        and     r6, r4, #0x7c0000
        orr     r6, r6, #0x3f800000     @ m0
        vmov    s1, s2, r5, r6
        ubfx    r7, r4, #18, #5
        add     r7, r7, r7, lsl #1
        add     r7, r2, r7, lsl #2      @ &rows[(bits >> 18) & 31]
        vldmia  r7, {s3-s5}             @ c, ln(1/c), r0
        lsrs    r4, r4, #23
        subs    r4, r4, #127
        vmov    s6, r4
        vcvt.f32.s32 s6, s6             @ e
        vsub.f32 s1, s1, s2             @ m − m0
        vmul.f32 s1, s1, s3
        vadd.f32 s1, s5, s1             @ r
        vmul.f32 s7, s1, s17
        vadd.f32 s7, s18, s7
        vmul.f32 s7, s1, s7
        vadd.f32 s7, s19, s7
        vmul.f32 s7, s1, s7
        vadd.f32 s7, s20, s7
        vmul.f32 s7, s1, s7             @ p
        vadd.f32 s7, s4, s7             @ l + p
        vmul.f32 s8, s6, s22
        vadd.f32 s7, s8, s7             @ e·LN2_LO + (l + p)
        vmul.f32 s8, s6, s21
        vadd.f32 s7, s8, s7
        vstmia  r1!, {s7}
        .endr
        subs    r3, r3, #2
        bne     .Llog
        movs    r0, #0
        vpop    {s16-s23}
        pop     {r4-r8, pc}
.Lspecial:
        movs    r0, #1
        vpop    {s16-s23}
        pop     {r4-r8, pc}
        .p2align 2
.Lconst:
        .word   0x358637bd              @ 1e-6 (LOG_OFFSET)
        .word   0xbe800000              @ −0.25
        .word   0x3eaaaaab              @ 1/3
        .word   0xbf000000              @ −0.5
        .word   0x3f800000              @ 1.0
        .word   0x3f317200              @ LN2_HI
        .word   0x35bfbe8e              @ LN2_LO
        .size   EDGEMM_SYM(mfcc_log_vfp4), . - EDGEMM_SYM(mfcc_log_vfp4)

/* sconv_avx512f_14x32 — f32 convolution micro-kernel, AVX-512F, tile MR×NR = 14×32: the
 * sgemm_avx512f_14x32 product over A read in segments (one per filter row of an implicit-GEMM
 * convolution), with the bias and the activation's clamp in its epilogue.
 *
 * Contract (see src/kernels/f32.rs, struct SconvArgs; all strides in BYTES):
 *   void kernel(const SconvArgs *args)        System V: rdi = args
 *     C[i, j] = min(max(Σ_s Σ_p A[i, s, p]·B[s·k + p, j] + bias[j], lo), hi)
 *   for i < m, j < n (the clamp as TFLite's: a NaN sum stays NaN). C is never read.
 *   A[i, s, p] at a + i*a_rs + s*a_ss + p*a_ks, s < segs (0 counts as 1), p < k.
 *   B[q, j] at b + q*b_ks + 4*j (columns unit-stride, rows over all segments in order).
 *   C[i, j] at c + i*c_rs + 4*j. bias: n values (never null; read masked past n).
 *   1 <= m <= 14, 1 <= n <= 32, k >= 0.
 *   b_pf: every k step prefetches the two lines at B row + b_pf (not the half-width
 *   variant).
 *   Reads: m rows of A (segs segments of k values); 32 columns of B per k step, whatever n;
 *   bias[0..n). Writes: only the m×n tile.
 *
 * Registers: as sgemm_avx512f_14x32 (zmm0..27 accumulators, zmm28/29 the broadcast A
 *   element, zmm30/31 the B row), with tile14_avx512.inc's segments: r13 = segment counter,
 *   r14 = a_ss − k·a_ks (the step from a segment's end to the next one's start); r15 = b_pf.
 *   In the epilogue zmm30/31 hold the bias, zmm28 lo and zmm29 hi.
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1, k2, flags. Saves rbx, rbp, r12-r15.
 * Ends with vzeroupper.
 */
#include "common.h"

/* HALF = 1 assembles the half-width variant sconv_avx512f_14x16: n <= 16, 16 columns of B
 * read per k step, one accumulator per row. W24 = 1 the three-quarter variant
 * sconv_avx512f_14x24: n <= 24, 24 columns of B read per k step, each row's second
 * accumulator a ymm (8 columns). On Zen 4 a ymm FMA takes half a zmm one's issue slots, so
 * a 24-column panel costs three quarters of a 32-column one (MobileNet-v2's 24-channel
 * layers; two half-width panels would cost a whole one). */
#ifndef HALF
#define HALF 0
#endif
#ifndef W24
#define W24 0
#endif
#ifndef KNAME
#define KNAME sconv_avx512f_14x32
#endif
/* The second accumulator's register class: ymm for the three-quarter variant. */
#if W24
#define HI ymm
#define NCOLS 24
#else
#define HI zmm
#define NCOLS 32
#endif

        .intel_syntax noprefix
        .text

#define ARG_A     0
#define ARG_B     8
#define ARG_C     16
#define ARG_K     24
#define ARG_A_RS  32
#define ARG_A_KS  40
#define ARG_B_KS  48
#define ARG_C_RS  56
#define ARG_M     64
#define ARG_N     72
#define ARG_SEGS  80
#define ARG_A_SS  88
#define ARG_BIAS  96
#define ARG_B_PF  104
#define ARG_LO    112
#define ARG_HI    116
#define T14_SEGMENTS 1
#define ARG_COUNT ARG_K
#define BCAST_INSN vbroadcastss
#define ZERO_INSN vxorps
/* The half-width variant broadcasts inside its FMAs: with one B load per k step, a
   separate vbroadcastss per row measured 75% of peak on Zen 4 (double-pumped 512-bit
   FMAs), the {1to16} form 100% (same loads; one uop fewer per row on Intel as well). */
#if HALF
#define T14_EMBED 1
#define EMBED_INSN vfmadd231ps
#endif

/* One k step of B (two zmm), and the prefetch of the next micro-panel's row. (Not in the
 * half-width variant: with one load of B to m broadcasts per k step it is bound by the load
 * ports, and a prefetch takes one.) */
.macro LOADB
        vmovups zmm30, [rsi]
 .if HALF == 0
        vmovups HI\()31, [rsi + 64]
        prefetcht0 [rsi + r15]
        prefetcht0 [rsi + r15 + 64]
 .endif
.endm

/* Row's two FMAs with the broadcast A element in zmm t. */
.macro MAC r0, r1, t
        vfmadd231ps zmm\r0, zmm30, zmm\t
 .if HALF == 0
        vfmadd231ps HI\r1, HI\()31, HI\t
 .endif
.endm

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, the bias in zmm30/31 (zero past
   n), lo/hi broadcast in zmm28/29, column masks in k1/k2 when n < 32; then enter the
   matching store sequence at row m-1. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
 .if \m > 1
        imul r9, r8, (\m - 1)
        add rcx, r9
 .endif
        mov rax, [rdi + ARG_BIAS]
        vbroadcastss zmm28, [rdi + ARG_LO]
        vbroadcastss zmm29, [rdi + ARG_HI]
        mov r10, [rdi + ARG_N]
        cmp r10, NCOLS / (HALF + 1)
        jne .Lmask\m
        vmovups zmm30, [rax]
 .if HALF == 0
        vmovups HI\()31, [rax + 64]
 .endif
        jmp .Lfull_\m
.Lmask\m:
        xor r9d, r9d
        bts r9, r10
        dec r9
        kmovw k1, r9d
        shr r9d, 16
        kmovw k2, r9d
        /* (Masked loads do not fault on the lanes past n.) */
        vmovups zmm30{k1}{z}, [rax]
 .if HALF == 0
        vmovups HI\()31{k2}{z}, [rax + 64]
 .endif
        jmp .Lmasked_\m
.endm

#include "x86_64/tile14_avx512.inc"

#if W24
/* The three-quarter variant's row: both FMAs take the A element as a broadcast memory
   operand ({1to16}, {1to8}), no vbroadcastss (one uop fewer per row; zmm28/29 unused):
   MobileNet-v2's 144 -> 24 layer 215 -> 195 us on Zen 4. (The full variant measured no
   better so: its wide layers 1-3% slower, the narrow ones 1-2% faster.) */
.macro W24_FMAS r0, r1, addr:vararg
        vfmadd231ps zmm\r0, zmm30, DWORD PTR \addr{1to16}
        vfmadd231ps ymm\r1, ymm31, DWORD PTR \addr{1to8}
.endm
.macro W24_ROW base, o, r0, r1
 .if \o == 0
        W24_FMAS \r0, \r1, [\base]
 .elseif \o == 1
        W24_FMAS \r0, \r1, [\base + r8]
 .elseif \o == 2
        W24_FMAS \r0, \r1, [\base + r8*2]
 .elseif \o == 3
        W24_FMAS \r0, \r1, [\base + r10]
 .elseif \o == 4
        W24_FMAS \r0, \r1, [\base + r8*4]
 .else
        W24_FMAS \r0, \r1, [\base + r11]
 .endif
.endm
.purgem T14_ROW
.macro T14_ROW i, r0, r1, m, t
 .if \i < \m
  .if \i < 6
        W24_ROW rax, (\i), \r0, \r1
  .elseif \i < 12
        W24_ROW rbx, (\i - 6), \r0, \r1
  .else
        W24_ROW rbp, (\i - 12), \r0, \r1
  .endif
 .endif
.endm
#endif

/* Add the bias to row accumulators r0/r1, clamp (max(lo, v) then min(hi, v): the second
   operand, v, when it is NaN), store (masked if masked), step up a row. */
.macro STROW r0, r1, masked
        vaddps zmm\r0, zmm\r0, zmm30
        vmaxps zmm\r0, zmm28, zmm\r0
        vminps zmm\r0, zmm29, zmm\r0
 .if HALF == 0
        vaddps HI\r1, HI\r1, HI\()31
        vmaxps HI\r1, HI\()28, HI\r1
        vminps HI\r1, HI\()29, HI\r1
 .endif
 .if \masked
        vmovups [rcx]{k1}, zmm\r0
  .if HALF == 0
        vmovups [rcx + 64]{k2}, HI\r1
  .endif
 .else
        vmovups [rcx], zmm\r0
  .if HALF == 0
        vmovups [rcx + 64], HI\r1
  .endif
 .endif
        sub rcx, r8
.endm

/* Store sequence from row 13 down to row 0; label _m enters it with rows m-1..0 left. */
.macro SEQ name, masked
.L\name\()_14: STROW 26, 27, \masked
.L\name\()_13: STROW 24, 25, \masked
.L\name\()_12: STROW 22, 23, \masked
.L\name\()_11: STROW 20, 21, \masked
.L\name\()_10: STROW 18, 19, \masked
.L\name\()_9:  STROW 16, 17, \masked
.L\name\()_8:  STROW 14, 15, \masked
.L\name\()_7:  STROW 12, 13, \masked
.L\name\()_6:  STROW 10, 11, \masked
.L\name\()_5:  STROW 8, 9, \masked
.L\name\()_4:  STROW 6, 7, \masked
.L\name\()_3:  STROW 4, 5, \masked
.L\name\()_2:  STROW 2, 3, \masked
.L\name\()_1:  STROW 0, 1, \masked
        jmp .Ldone
.endm

        .globl EDGEMM_SYM(KNAME)
        .type EDGEMM_SYM(KNAME), @function
        .p2align 5
EDGEMM_SYM(KNAME):
        push rbx
        push rbp
        push r12
        push r13
        push r14
        push r15
        mov r15, [rdi + ARG_B_PF]
        mov rsi, [rdi + ARG_B]
        mov rdx, [rdi + ARG_B_KS]
        mov r8, [rdi + ARG_A_RS]
        mov r9, [rdi + ARG_A_KS]
        mov r14, [rdi + ARG_COUNT]
        imul r14, r9
        neg r14
        add r14, [rdi + ARG_A_SS]
        lea r10, [r8 + r8*2]
        lea r11, [r8 + r8*4]
        mov rax, [rdi + ARG_A]
        T14_DISPATCH

        T14_VARIANTS

        SEQ full, 0
        SEQ masked, 1

.Ldone:
        vzeroupper
        pop r15
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret
        .size EDGEMM_SYM(KNAME), . - EDGEMM_SYM(KNAME)

        .section .note.GNU-stack, "", @progbits

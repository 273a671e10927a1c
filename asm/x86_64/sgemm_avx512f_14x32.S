/* sgemm_avx512f_14x32 — f32 GEMM micro-kernel, AVX-512F, tile MR×NR = 14×32.
 *
 * Contract (see src/kernels/f32.rs, struct SgemmArgs; all strides in BYTES):
 *   void kernel(const SgemmArgs *args)        System V: rdi = args
 *     C[i, j] = alpha * Σ_p A[i, p]·B[p, j] + beta * C[i, j]   for i < m, j < n
 *   A[i, p] at a + i*a_rs + p*a_ks   (any strides: packed MR-slivers have a_rs = 4,
 *                                     a_ks = 56; an unpacked matrix works as well)
 *   B[p, j] at b + p*b_ks + 4*j      (columns unit-stride; packed NR-slivers: b_ks = 128)
 *   C[i, j] at c + i*c_rs + 4*j      (columns unit-stride)
 *   1 <= m <= 14, 1 <= n <= 32, k >= 0.
 *   beta == 0 (either sign): C is never read (it may hold NaN).
 *   b_pf: every k step prefetches the two lines at B row + b_pf (the driver passes the
 *   offset of the next micro-panel, so a B read in place streams ahead of its use).
 *   Reads: exactly m rows of A for k steps; 32 columns of B for every k step, whatever n
 *   (the driver zero-pads the last B sliver) — no other over-read. Writes: only the m×n tile
 *   (columns past n are masked with k1/k2).
 *
 * Registers: zmm0..zmm27 accumulators (row i in zmm(2i), zmm(2i+1)); zmm30/31 the B row
 *   (alpha/beta in the epilogue); zmm28/29 the broadcast A element (alternating by row;
 *   C in the epilogue). Each k step: 2 loads of B, m vbroadcastss, 2m register FMAs
 *   (the half-width variant: 1 load of B, m FMAs broadcasting A themselves).
 *   (Broadcasting inside each FMA with {1to16} instead doubles the loads and measured
 *   ~93% of peak on Zen 5, against ~99.6% for this form.)
 *   A row addresses, the k loop and the per-m paths come from tile14_avx512.inc (shared with
 *   the int8 VNNI kernel): rows 0-5 off rax, 6-11 off rbx, 12-13 off rbp, as
 *   base + {0, 1, 2, 3, 4, 5} * a_rs using r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B, rdx = b_ks, r9 = a_ks, rcx = k counter, r13 = b_pf, r12 = C row (prefetch).
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1, k2, flags. Saves rbx, rbp, r12, r13.
 * Ends with vzeroupper.
 */
#include "common.h"

/* HALF = 1 assembles the half-width variant sgemm_avx512f_14x16 (see sgemm_avx512f_14x16.S):
 * n <= 16, 16 columns of B read per k step (b_ks as passed), one accumulator per row. It
 * serves tiles whose columns fit 16 (a 16-channel layer) at half the FMAs of this kernel,
 * and reads B in place where the full kernel needs a zero-padded sliver. */
#ifndef HALF
#define HALF 0
#define KNAME sgemm_avx512f_14x32
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
#define ARG_ALPHA 80
#define ARG_BETA  84
#define ARG_B_PF  88
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

/* One k step of B (two zmm), and the prefetch of the next micro-panel's row. */
.macro LOADB
        vmovups zmm30, [rsi]
 .if HALF == 0
        vmovups zmm31, [rsi + 64]
 .endif
        prefetcht0 [rsi + r13]
 .if HALF == 0
        prefetcht0 [rsi + r13 + 64]
 .endif
.endm

/* Row's two FMAs with the broadcast A element in zmm t. */
.macro MAC r0, r1, t
        vfmadd231ps zmm\r0, zmm30, zmm\t
 .if HALF == 0
        vfmadd231ps zmm\r1, zmm31, zmm\t
 .endif
.endm

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, alpha/beta broadcast in zmm30/31,
   column masks in k1/k2 when n < 32; then enter the matching store sequence at row m-1. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
 .if \m > 1
        imul r9, r8, (\m - 1)
        add rcx, r9
 .endif
        vbroadcastss zmm30, [rdi + ARG_ALPHA]
        vbroadcastss zmm31, [rdi + ARG_BETA]
        mov eax, [rdi + ARG_BETA]
        and eax, 0x7fffffff
        mov r10, [rdi + ARG_N]
        cmp r10, 32 / (HALF + 1)
        jne .Lmask\m
        test eax, eax
        jz .Lb0f_\m
        jmp .Lbxf_\m
.Lmask\m:
        xor r9d, r9d
        bts r9, r10
        dec r9
        kmovw k1, r9d
        shr r9d, 16
        kmovw k2, r9d
        test eax, eax
        jz .Lb0m_\m
        jmp .Lbxm_\m
.endm

#include "x86_64/tile14_avx512.inc"

/* Scale row i by alpha, add beta*C unless beta0, store (masked if masked), step up a row. */
.macro STROW r0, r1, beta0, masked
        vmulps zmm\r0, zmm\r0, zmm30
 .if HALF == 0
        vmulps zmm\r1, zmm\r1, zmm30
 .endif
 .if \beta0 == 0
  .if \masked
        vmovups zmm28{k1}{z}, [rcx]
        vfmadd231ps zmm\r0, zmm28, zmm31
   .if HALF == 0
        vmovups zmm29{k2}{z}, [rcx + 64]
        vfmadd231ps zmm\r1, zmm29, zmm31
   .endif
  .else
        vfmadd231ps zmm\r0, zmm31, [rcx]
   .if HALF == 0
        vfmadd231ps zmm\r1, zmm31, [rcx + 64]
   .endif
  .endif
 .endif
 .if \masked
        vmovups [rcx]{k1}, zmm\r0
  .if HALF == 0
        vmovups [rcx + 64]{k2}, zmm\r1
  .endif
 .else
        vmovups [rcx], zmm\r0
  .if HALF == 0
        vmovups [rcx + 64], zmm\r1
  .endif
 .endif
        sub rcx, r8
.endm

/* Store sequence from row 13 down to row 0; label _m enters it with rows m-1..0 left. */
.macro SEQ name, beta0, masked
.L\name\()_14: STROW 26, 27, \beta0, \masked
.L\name\()_13: STROW 24, 25, \beta0, \masked
.L\name\()_12: STROW 22, 23, \beta0, \masked
.L\name\()_11: STROW 20, 21, \beta0, \masked
.L\name\()_10: STROW 18, 19, \beta0, \masked
.L\name\()_9:  STROW 16, 17, \beta0, \masked
.L\name\()_8:  STROW 14, 15, \beta0, \masked
.L\name\()_7:  STROW 12, 13, \beta0, \masked
.L\name\()_6:  STROW 10, 11, \beta0, \masked
.L\name\()_5:  STROW 8, 9, \beta0, \masked
.L\name\()_4:  STROW 6, 7, \beta0, \masked
.L\name\()_3:  STROW 4, 5, \beta0, \masked
.L\name\()_2:  STROW 2, 3, \beta0, \masked
.L\name\()_1:  STROW 0, 1, \beta0, \masked
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
        mov r13, [rdi + ARG_B_PF]
        mov rsi, [rdi + ARG_B]
        mov rdx, [rdi + ARG_B_KS]
        mov r8, [rdi + ARG_A_RS]
        mov r9, [rdi + ARG_A_KS]
        lea r10, [r8 + r8*2]
        lea r11, [r8 + r8*4]
        mov rax, [rdi + ARG_A]
        T14_DISPATCH

        T14_VARIANTS

        SEQ b0f, 1, 0
        SEQ bxf, 0, 0
        SEQ b0m, 1, 1
        SEQ bxm, 0, 1

.Ldone:
        vzeroupper
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret
        .size EDGEMM_SYM(KNAME), . - EDGEMM_SYM(KNAME)

        .section .note.GNU-stack, "", @progbits

/* qgemm_i16_avx2_6x16 — int8 GEMM micro-kernel, AVX2, tile MR×NR = 6×16, exact.
 *
 * AVX2's byte multiply (vpmaddubsw) saturates its pair sums at i16 (255·−128·2 < −2^15),
 * so this kernel works on operands widened to i16 (format I16x2): vpmaddwd multiplies i16
 * pairs into exact i32 sums, which vpaddd accumulates. Same multiply-add rate per cycle on
 * Zen 5 as the byte idiom (vpmaddubsw + vpmaddwd + vpaddd), and no saturation anywhere.
 *
 * Contract (see src/kernels/i8.rs, struct QgemmArgs; strides in BYTES; format I16x2):
 *   void kernel(const QgemmArgs *args)        System V: rdi = args
 *     C[i, j] (+)= Σ_q Σ_{t<2} A'[i, 2q+t]·B'[2q+t, j] + row_off[i] + col_off[j]
 *   (i < m, j < n; wrapping i32; "+=" when flags & 1, else "=" and C is never read).
 *   A' (i16) row i, k-group q: the 2 i16 at a + i*a_rs + q*a_ks (packed: a_rs = 4,
 *   a_ks = 24). B' (i16) k-group q: b + q*b_ks holds [16 columns][2 i16] (b_ks = 64).
 *   row_off: m i32, col_off: 16 i32 (never null). C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 6, 1 <= n <= 16, k_groups >= 0.
 *   Reads: m rows of A' and 64 bytes of B' per k-group; row_off[0..m), col_off[0..16).
 *   Writes: only the m×n tile (columns past n through vpmaskmovd).
 *
 * The A row addressing, the k loop and the per-m paths come from tile6_avx2.inc (shared
 * by the two AVX2 kernels).
 * Registers: ymm0..ymm11 accumulators (row i in ymm(2i) = columns 0-7, ymm(2i+1) = 8-15);
 *   ymm12/13 the B' group; ymm14 the broadcast A' pair; ymm15 the vpmaddwd product. In the
 *   epilogue ymm12/13 hold the column masks, ymm14/15 row_off and C. A row i at
 *   rax + {0..5}*a_rs via r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs; rsi = B', rdx = b_ks,
 *   r9 = a_ks, rcx = k-group counter.
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, ymm0-15, flags. Ends with vzeroupper.
 */
#include "common.h"

        .intel_syntax noprefix
        .text

#define ARG_A       0
#define ARG_B       8
#define ARG_C       16
#define ARG_KG      24
#define ARG_A_RS    32
#define ARG_A_KS    40
#define ARG_B_KS    48
#define ARG_C_RS    56
#define ARG_M       64
#define ARG_N       72
#define ARG_ROW_OFF 80
#define ARG_COL_OFF 88
#define ARG_FLAGS   96
#define ARG_COUNT ARG_KG
#define BCAST_INSN vpbroadcastd
#define ZERO_INSN vpxor
#define T6_T0 14
#define T6_T1 14

/* One k-group of B' (16 columns × 2 i16). */
.macro LOADB
        vmovdqu ymm12, [rsi]
        vmovdqu ymm13, [rsi + 32]
.endm

/* The row's i16 pair products (A' pair broadcast in ymm t) summed into i32: vpmaddwd into
   the temporary ymm15, then vpaddd. */
.macro MAC r0, r1, t
        vpmaddwd ymm15, ymm\t, ymm12
        vpaddd ymm\r0, ymm\r0, ymm15
        vpmaddwd ymm15, ymm\t, ymm13
        vpaddd ymm\r1, ymm\r1, ymm15
.endm

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, r9 = &row_off[m-1], rsi = col_off,
   column masks in ymm12/13 when n < 16; then enter the matching store sequence. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
        mov r9, [rdi + ARG_ROW_OFF]
 .if \m > 1
        imul r10, r8, (\m - 1)
        add rcx, r10
        add r9, 4 * (\m - 1)
 .endif
        mov rsi, [rdi + ARG_COL_OFF]
        mov rax, [rdi + ARG_FLAGS]
        and eax, 1
        mov r10, [rdi + ARG_N]
        cmp r10, 16
        jne .Lmask\m
        test eax, eax
        jz .Lstf_\m
        jmp .Lacf_\m
.Lmask\m:
        lea r11, [rip + .Lmasks]
        neg r10
        vmovdqu ymm12, [r11 + r10*4 + 64]
        vmovdqu ymm13, [r11 + r10*4 + 96]
        test eax, eax
        jz .Lstm_\m
        jmp .Lacm_\m
.endm

#include "x86_64/tile6_avx2.inc"


/* rsi = col_off, r9 = &row_off[i], rcx = C row i. */
.macro STROW r0, r1, acc, masked
        vpaddd ymm\r0, ymm\r0, [rsi]
        vpaddd ymm\r1, ymm\r1, [rsi + 32]
        vpbroadcastd ymm14, [r9]
        vpaddd ymm\r0, ymm\r0, ymm14
        vpaddd ymm\r1, ymm\r1, ymm14
 .if \acc
  .if \masked
        vpmaskmovd ymm14, ymm12, [rcx]
        vpmaskmovd ymm15, ymm13, [rcx + 32]
        vpaddd ymm\r0, ymm\r0, ymm14
        vpaddd ymm\r1, ymm\r1, ymm15
  .else
        vpaddd ymm\r0, ymm\r0, [rcx]
        vpaddd ymm\r1, ymm\r1, [rcx + 32]
  .endif
 .endif
 .if \masked
        vpmaskmovd [rcx], ymm12, ymm\r0
        vpmaskmovd [rcx + 32], ymm13, ymm\r1
 .else
        vmovdqu [rcx], ymm\r0
        vmovdqu [rcx + 32], ymm\r1
 .endif
        sub rcx, r8
        sub r9, 4
.endm

.macro SEQ name, acc, masked
.L\name\()_6: STROW 10, 11, \acc, \masked
.L\name\()_5: STROW 8, 9, \acc, \masked
.L\name\()_4: STROW 6, 7, \acc, \masked
.L\name\()_3: STROW 4, 5, \acc, \masked
.L\name\()_2: STROW 2, 3, \acc, \masked
.L\name\()_1: STROW 0, 1, \acc, \masked
        jmp .Ldone
.endm

        .globl EDGEMM_SYM(qgemm_i16_avx2_6x16)
        .type EDGEMM_SYM(qgemm_i16_avx2_6x16), @function
        .p2align 5
EDGEMM_SYM(qgemm_i16_avx2_6x16):
        mov rsi, [rdi + ARG_B]
        mov rdx, [rdi + ARG_B_KS]
        mov r8, [rdi + ARG_A_RS]
        lea r10, [r8 + r8*2]
        lea r11, [r8 + r8*4]
        mov rax, [rdi + ARG_A]
        T6_DISPATCH

        T6_VARIANTS

        SEQ stf, 0, 0
        SEQ acf, 1, 0
        SEQ stm, 0, 1
        SEQ acm, 1, 1

.Ldone:
        vzeroupper
        ret
        .size EDGEMM_SYM(qgemm_i16_avx2_6x16), . - EDGEMM_SYM(qgemm_i16_avx2_6x16)

        .section .rodata
        .p2align 6
.Lmasks:
        .rept 16
        .long -1
        .endr
        .rept 16
        .long 0
        .endr

        .section .note.GNU-stack, "", @progbits

/* qgemm_u8i8_avx512vnni_14x32 — int8 GEMM micro-kernel, AVX-512 VNNI, tile MR×NR = 14×32.
 *
 * Contract (see src/kernels/i8.rs, struct QgemmArgs; strides in BYTES; format U8x4):
 *   void kernel(const QgemmArgs *args)        System V: rdi = args
 *     C[i, j] (+)= Σ_q Σ_{t<4} A'[i, 4q+t]·B'[4q+t, j] + row_off[i] + col_off[j]
 *   (i < m, j < n; i32 arithmetic wraps; "+=" when flags & 1 (ACCUMULATE), else "=" and C
 *   is never read).
 *   A' (u8) row i, segment s, k-group q: the 4 bytes at a + i*a_rs + s*a_ss + q*a_ks
 *   (packed: a_rs = 4, a_ks = 56, one segment; an implicit-GEMM convolution reads the
 *   patches from its input rows, a segment per filter row, a_ss apart); k_groups groups
 *   per segment, a_segs segments (0 counts as 1). B' (i8) k-group q (over all segments):
 *   b + q*b_ks holds [32 columns][4 bytes] (b_ks = 128 packed). row_off: m i32, col_off: 32 i32 (never null). C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 14, 1 <= n <= 32, k_groups >= 0.
 *   Reads: m rows of A' (a_segs·k_groups groups each) and 128 bytes of B' per k-group; row_off[0..m), col_off[0..32).
 *   Writes: only the m×n tile (columns past n masked with k1/k2).
 *
 * Registers: zmm0..zmm27 accumulators (row i in zmm(2i) = columns 0-15, zmm(2i+1) = 16-31);
 *   zmm30/31 the B' group; zmm28/29 the broadcast A' dword (alternating by row); in the
 *   epilogue zmm30/31 hold col_off and zmm28/29 row_off and C. Each k-group: 2 loads of B',
 *   m vpbroadcastd, 2m vpdpbusd (u8 × s8, 64 multiply-adds each).
 *   A row addresses, the k loop and the per-m paths come from tile14_avx512.inc (shared with
 *   the f32 AVX-512 kernel): rows 0-5 off rax, 6-11 off rbx, 12-13 off rbp, as
 *   base + {0, 1, 2, 3, 4, 5} * a_rs with r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B', rdx = b_ks, r9 = a_ks, rcx = k-group counter, r12 = C row (prefetch),
 *   r13 = segment counter, r14 = a_ss − k_groups·a_ks (the step to the next segment).
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1, k2, flags. Saves rbx, rbp, r12-r14.
 * Ends with vzeroupper.
 */
#include "common.h"

/* HALF = 1 assembles the half-width variant qgemm_u8i8_avx512vnni_14x16 (see
 * qgemm_u8i8_avx512vnni_14x16.S): the same packed B' layout (b_ks as passed, 32 columns per
 * group of which it reads the first 16), n <= 16, one accumulator per row. It serves tiles
 * whose columns fit 16 (a 16-channel layer) at half the instructions of this kernel. */
#ifndef HALF
#define HALF 0
#define KNAME qgemm_u8i8_avx512vnni_14x32
#endif

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
#define ARG_SEGS    104
#define ARG_A_SS    112
#define T14_SEGMENTS 1
#define ARG_COUNT ARG_KG
#define BCAST_INSN vpbroadcastd
#define ZERO_INSN vpxord

/* One k-group of B' (32 columns × 4 bytes). */
.macro LOADB
        vmovdqu32 zmm30, [rsi]
 .if HALF == 0
        vmovdqu32 zmm31, [rsi + 64]
 .endif
.endm

/* The row's two dot products: u8 A' (broadcast in zmm t) × s8 B'. */
.macro MAC r0, r1, t
        vpdpbusd zmm\r0, zmm\t, zmm30
 .if HALF == 0
        vpdpbusd zmm\r1, zmm\t, zmm31
 .endif
.endm

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, r9 = &row_off[m-1], col_off in
   zmm30/31, column masks in k1/k2 when n < 32; then enter the matching store sequence. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
        mov r9, [rdi + ARG_ROW_OFF]
 .if \m > 1
        imul r10, r8, (\m - 1)
        add rcx, r10
        add r9, 4 * (\m - 1)
 .endif
        mov rax, [rdi + ARG_COL_OFF]
        vmovdqu32 zmm30, [rax]
 .if HALF == 0
        vmovdqu32 zmm31, [rax + 64]
 .endif
        mov rax, [rdi + ARG_FLAGS]
        and eax, 1
        mov r10, [rdi + ARG_N]
        cmp r10, 32 / (HALF + 1)
        jne .Lmask\m
        test eax, eax
        jz .Lstf_\m
        jmp .Lacf_\m
.Lmask\m:
        xor r11d, r11d
        bts r11, r10
        dec r11
        kmovw k1, r11d
        shr r11d, 16
        kmovw k2, r11d
        test eax, eax
        jz .Lstm_\m
        jmp .Lacm_\m
.endm

#include "x86_64/tile14_avx512.inc"

/* Add the offsets to row accumulators r0/r1, add C if accumulating, store, step up. */
.macro STROW r0, r1, acc, masked
        vpbroadcastd zmm28, [r9]
        vpaddd zmm\r0, zmm\r0, zmm30
        vpaddd zmm\r0, zmm\r0, zmm28
 .if HALF == 0
        vpaddd zmm\r1, zmm\r1, zmm31
        vpaddd zmm\r1, zmm\r1, zmm28
 .endif
 .if \acc
  .if \masked
        vmovdqu32 zmm28{k1}{z}, [rcx]
        vpaddd zmm\r0, zmm\r0, zmm28
   .if HALF == 0
        vmovdqu32 zmm29{k2}{z}, [rcx + 64]
        vpaddd zmm\r1, zmm\r1, zmm29
   .endif
  .else
        vpaddd zmm\r0, zmm\r0, [rcx]
   .if HALF == 0
        vpaddd zmm\r1, zmm\r1, [rcx + 64]
   .endif
  .endif
 .endif
 .if \masked
        vmovdqu32 [rcx]{k1}, zmm\r0
  .if HALF == 0
        vmovdqu32 [rcx + 64]{k2}, zmm\r1
  .endif
 .else
        vmovdqu32 [rcx], zmm\r0
  .if HALF == 0
        vmovdqu32 [rcx + 64], zmm\r1
  .endif
 .endif
        sub rcx, r8
        sub r9, 4
.endm

.macro SEQ name, acc, masked
.L\name\()_14: STROW 26, 27, \acc, \masked
.L\name\()_13: STROW 24, 25, \acc, \masked
.L\name\()_12: STROW 22, 23, \acc, \masked
.L\name\()_11: STROW 20, 21, \acc, \masked
.L\name\()_10: STROW 18, 19, \acc, \masked
.L\name\()_9:  STROW 16, 17, \acc, \masked
.L\name\()_8:  STROW 14, 15, \acc, \masked
.L\name\()_7:  STROW 12, 13, \acc, \masked
.L\name\()_6:  STROW 10, 11, \acc, \masked
.L\name\()_5:  STROW 8, 9, \acc, \masked
.L\name\()_4:  STROW 6, 7, \acc, \masked
.L\name\()_3:  STROW 4, 5, \acc, \masked
.L\name\()_2:  STROW 2, 3, \acc, \masked
.L\name\()_1:  STROW 0, 1, \acc, \masked
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

        SEQ stf, 0, 0
        SEQ acf, 1, 0
        SEQ stm, 0, 1
        SEQ acm, 1, 1

.Ldone:
        vzeroupper
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret
        .size EDGEMM_SYM(KNAME), . - EDGEMM_SYM(KNAME)

        .section .note.GNU-stack, "", @progbits

/* qgemm_u8i8_avx512vnni_14x32 — int8 GEMM micro-kernel, AVX-512 VNNI, tile MR×NR = 14×32.
 *
 * Contract (see src/kernels/i8.rs, struct QgemmArgs; strides in BYTES; format U8x4):
 *   void kernel(const QgemmArgs *args)        System V: rdi = args
 *     C[i, j] (+)= Σ_q Σ_{t<4} A'[i, 4q+t]·B'[4q+t, j] + row_off[i] + col_off[j]
 *   (i < m, j < n; i32 arithmetic wraps; "+=" when flags & 1 (ACCUMULATE), else "=" and C
 *   is never read).
 *   A' (u8) row i, k-group q: the 4 bytes at a + i*a_rs + q*a_ks (packed: a_rs = 4,
 *   a_ks = 56). B' (i8) k-group q: b + q*b_ks holds [32 columns][4 bytes] (b_ks = 128
 *   packed). row_off: m i32, col_off: 32 i32 (never null). C (i32) at c + i*c_rs + 4*j.
 *   1 <= m <= 14, 1 <= n <= 32, k_groups >= 0.
 *   Reads: m rows of A' and 128 bytes of B' per k-group; row_off[0..m), col_off[0..32).
 *   Writes: only the m×n tile (columns past n masked with k1/k2).
 *
 * Registers: zmm0..zmm27 accumulators (row i in zmm(2i) = columns 0-15, zmm(2i+1) = 16-31);
 *   zmm30/31 the B' group; zmm28/29 the broadcast A' dword (alternating by row); in the
 *   epilogue zmm30/31 hold col_off and zmm28/29 row_off and C. Each k-group: 2 loads of B',
 *   m vpbroadcastd, 2m vpdpbusd (u8 × s8, 64 multiply-adds each).
 *   A row addresses: rows 0-5 off rax, 6-11 off rbx, 12-13 off rbp, as
 *   base + {0, 1, 2, 3, 4, 5} * a_rs with r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B', rdx = b_ks, r9 = a_ks, rcx = k-group counter, r12 = C row (prefetch).
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1, k2, flags. Saves rbx, rbp, r12.
 * Ends with vzeroupper.
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

/* Row (base, offset o in 0..5): broadcast A' into zmm t, two vpdpbusd into r0, r1. */
.macro RDB base, o, r0, r1, t
 .if \o == 0
        vpbroadcastd zmm\t, [\base]
 .elseif \o == 1
        vpbroadcastd zmm\t, [\base + r8]
 .elseif \o == 2
        vpbroadcastd zmm\t, [\base + r8*2]
 .elseif \o == 3
        vpbroadcastd zmm\t, [\base + r10]
 .elseif \o == 4
        vpbroadcastd zmm\t, [\base + r8*4]
 .else
        vpbroadcastd zmm\t, [\base + r11]
 .endif
        vpdpbusd zmm\r0, zmm\t, zmm30
        vpdpbusd zmm\r1, zmm\t, zmm31
.endm

.macro RD i, r0, r1, m, t
 .if \i < \m
  .if \i < 6
        RDB rax, (\i), \r0, \r1, \t
  .elseif \i < 12
        RDB rbx, (\i - 6), \r0, \r1, \t
  .else
        RDB rbp, (\i - 12), \r0, \r1, \t
  .endif
 .endif
.endm

/* One k-group: load B', 2m vpdpbusd, advance. */
.macro KSTEP m
        vmovdqu32 zmm30, [rsi]
        vmovdqu32 zmm31, [rsi + 64]
        RD 0, 0, 1, \m, 28
        RD 1, 2, 3, \m, 29
        RD 2, 4, 5, \m, 28
        RD 3, 6, 7, \m, 29
        RD 4, 8, 9, \m, 28
        RD 5, 10, 11, \m, 29
        RD 6, 12, 13, \m, 28
        RD 7, 14, 15, \m, 29
        RD 8, 16, 17, \m, 28
        RD 9, 18, 19, \m, 29
        RD 10, 20, 21, \m, 28
        RD 11, 22, 23, \m, 29
        RD 12, 24, 25, \m, 28
        RD 13, 26, 27, \m, 29
        add rsi, rdx
        add rax, r9
 .if \m > 6
        add rbx, r9
 .endif
 .if \m > 12
        add rbp, r9
 .endif
.endm

.macro VARIANT m
.Lm\m:
 .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27
  .if \r < 2 * \m
        vpxord zmm\r, zmm\r, zmm\r
  .endif
 .endr
        mov r12, [rdi + ARG_C]
        mov rcx, [rdi + ARG_C_RS]
 .rept \m
        prefetchw [r12]
        prefetchw [r12 + 124]
        add r12, rcx
 .endr
        mov rcx, [rdi + ARG_KG]
 .if \m > 6
        lea rbx, [rax + r8*4]
        lea rbx, [rbx + r8*2]
 .endif
 .if \m > 12
        lea rbp, [rbx + r8*4]
        lea rbp, [rbp + r8*2]
 .endif
        cmp rcx, 4
        jb .Lrem\m
        .p2align 5
.Lloop\m:
        KSTEP \m
        KSTEP \m
        KSTEP \m
        KSTEP \m
        sub rcx, 4
        cmp rcx, 4
        jae .Lloop\m
.Lrem\m:
        test rcx, rcx
        jz .Ltail\m
.Lrone\m:
        KSTEP \m
        dec rcx
        jnz .Lrone\m
.Ltail\m:
        /* epilogue: rcx = C row m-1, r8 = c_rs, r9 = &row_off[m-1]; enter at row m-1 */
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
        vmovdqu32 zmm31, [rax + 64]
        mov rax, [rdi + ARG_FLAGS]
        and eax, 1
        mov r10, [rdi + ARG_N]
        cmp r10, 32
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

/* Add the offsets to row accumulators r0/r1, add C if accumulating, store, step up. */
.macro STROW r0, r1, acc, masked
        vpbroadcastd zmm28, [r9]
        vpaddd zmm\r0, zmm\r0, zmm30
        vpaddd zmm\r1, zmm\r1, zmm31
        vpaddd zmm\r0, zmm\r0, zmm28
        vpaddd zmm\r1, zmm\r1, zmm28
 .if \acc
  .if \masked
        vmovdqu32 zmm28{k1}{z}, [rcx]
        vmovdqu32 zmm29{k2}{z}, [rcx + 64]
        vpaddd zmm\r0, zmm\r0, zmm28
        vpaddd zmm\r1, zmm\r1, zmm29
  .else
        vpaddd zmm\r0, zmm\r0, [rcx]
        vpaddd zmm\r1, zmm\r1, [rcx + 64]
  .endif
 .endif
 .if \masked
        vmovdqu32 [rcx]{k1}, zmm\r0
        vmovdqu32 [rcx + 64]{k2}, zmm\r1
 .else
        vmovdqu32 [rcx], zmm\r0
        vmovdqu32 [rcx + 64], zmm\r1
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

        .globl EDGEMM_SYM(qgemm_u8i8_avx512vnni_14x32)
        .type EDGEMM_SYM(qgemm_u8i8_avx512vnni_14x32), @function
        .p2align 5
EDGEMM_SYM(qgemm_u8i8_avx512vnni_14x32):
        push rbx
        push rbp
        push r12
        mov rsi, [rdi + ARG_B]
        mov rdx, [rdi + ARG_B_KS]
        mov r8, [rdi + ARG_A_RS]
        mov r9, [rdi + ARG_A_KS]
        lea r10, [r8 + r8*2]
        lea r11, [r8 + r8*4]
        mov rax, [rdi + ARG_A]
        mov rcx, [rdi + ARG_M]
        cmp rcx, 14
        je .Lm14
        cmp rcx, 13
        je .Lm13
        cmp rcx, 12
        je .Lm12
        cmp rcx, 11
        je .Lm11
        cmp rcx, 10
        je .Lm10
        cmp rcx, 9
        je .Lm9
        cmp rcx, 8
        je .Lm8
        cmp rcx, 7
        je .Lm7
        cmp rcx, 6
        je .Lm6
        cmp rcx, 5
        je .Lm5
        cmp rcx, 4
        je .Lm4
        cmp rcx, 3
        je .Lm3
        cmp rcx, 2
        je .Lm2
        cmp rcx, 1
        je .Lm1
        jmp .Ldone

        VARIANT 14
        VARIANT 13
        VARIANT 12
        VARIANT 11
        VARIANT 10
        VARIANT 9
        VARIANT 8
        VARIANT 7
        VARIANT 6
        VARIANT 5
        VARIANT 4
        VARIANT 3
        VARIANT 2
        VARIANT 1

        SEQ stf, 0, 0
        SEQ acf, 1, 0
        SEQ stm, 0, 1
        SEQ acm, 1, 1

.Ldone:
        vzeroupper
        pop r12
        pop rbp
        pop rbx
        ret
        .size EDGEMM_SYM(qgemm_u8i8_avx512vnni_14x32), . - EDGEMM_SYM(qgemm_u8i8_avx512vnni_14x32)

        .section .note.GNU-stack, "", @progbits

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
 *   C in the epilogue). Each k step: 2 loads of B, m vbroadcastss, 2m register FMAs.
 *   (Broadcasting inside each FMA with {1to16} instead doubles the loads and measured
 *   ~93% of peak on Zen 5, against ~99.6% for this form.)
 *   A row addresses: rows 0-5 off rax, 6-11 off rbx, 12-13 off rbp, as
 *   base + {0, 1, 2, 3, 4, 5} * a_rs using r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B, rdx = b_ks, r9 = a_ks, rcx = k counter, r13 = b_pf, r12 = C row (prefetch).
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1, k2, flags. Saves rbx, rbp, r12, r13.
 * Ends with vzeroupper.
 */
#include "common.h"

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

/* Row (base, offset o in 0..5): broadcast A into zmm t, two FMAs into r0, r1. */
.macro RFB base, o, r0, r1, t
 .if \o == 0
        vbroadcastss zmm\t, [\base]
 .elseif \o == 1
        vbroadcastss zmm\t, [\base + r8]
 .elseif \o == 2
        vbroadcastss zmm\t, [\base + r8*2]
 .elseif \o == 3
        vbroadcastss zmm\t, [\base + r10]
 .elseif \o == 4
        vbroadcastss zmm\t, [\base + r8*4]
 .else
        vbroadcastss zmm\t, [\base + r11]
 .endif
        vfmadd231ps zmm\r0, zmm30, zmm\t
        vfmadd231ps zmm\r1, zmm31, zmm\t
.endm

/* Row i of an m-row tile. */
.macro RF i, r0, r1, m, t
 .if \i < \m
  .if \i < 6
        RFB rax, (\i), \r0, \r1, \t
  .elseif \i < 12
        RFB rbx, (\i - 6), \r0, \r1, \t
  .else
        RFB rbp, (\i - 12), \r0, \r1, \t
  .endif
 .endif
.endm

/* One k step of an m-row tile: load the B row, 2m FMAs, advance the pointers. */
.macro KSTEP m
        vmovups zmm30, [rsi]
        vmovups zmm31, [rsi + 64]
        RF 0, 0, 1, \m, 28
        RF 1, 2, 3, \m, 29
        RF 2, 4, 5, \m, 28
        RF 3, 6, 7, \m, 29
        RF 4, 8, 9, \m, 28
        RF 5, 10, 11, \m, 29
        RF 6, 12, 13, \m, 28
        RF 7, 14, 15, \m, 29
        RF 8, 16, 17, \m, 28
        RF 9, 18, 19, \m, 29
        RF 10, 20, 21, \m, 28
        RF 11, 22, 23, \m, 29
        RF 12, 24, 25, \m, 28
        RF 13, 26, 27, \m, 29
        prefetcht0 [rsi + r13]
        prefetcht0 [rsi + r13 + 64]
        add rsi, rdx
        add rax, r9
 .if \m > 6
        add rbx, r9
 .endif
 .if \m > 12
        add rbp, r9
 .endif
.endm

/* The whole path for an m-row tile: zero, prefetch C, k loop, then the epilogue entry. */
.macro VARIANT m
.Lm\m:
 .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27
  .if \r < 2 * \m
        vxorps zmm\r, zmm\r, zmm\r
  .endif
 .endr
        /* prefetch the C tile for writing while the loop runs */
        mov r12, [rdi + ARG_C]
        mov rcx, [rdi + ARG_C_RS]
 .rept \m
        prefetchw [r12]
        prefetchw [r12 + 124]
        add r12, rcx
 .endr
        mov rcx, [rdi + ARG_K]
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
        /* epilogue: rcx = C row m-1, r8 = c_rs; then enter the store sequence at row m-1 */
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
        cmp r10, 32
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

/* Scale row i by alpha, add beta*C unless beta0, store (masked if masked), step up a row. */
.macro STROW r0, r1, beta0, masked
        vmulps zmm\r0, zmm\r0, zmm30
        vmulps zmm\r1, zmm\r1, zmm30
 .if \beta0 == 0
  .if \masked
        vmovups zmm28{k1}{z}, [rcx]
        vmovups zmm29{k2}{z}, [rcx + 64]
        vfmadd231ps zmm\r0, zmm28, zmm31
        vfmadd231ps zmm\r1, zmm29, zmm31
  .else
        vfmadd231ps zmm\r0, zmm31, [rcx]
        vfmadd231ps zmm\r1, zmm31, [rcx + 64]
  .endif
 .endif
 .if \masked
        vmovups [rcx]{k1}, zmm\r0
        vmovups [rcx + 64]{k2}, zmm\r1
 .else
        vmovups [rcx], zmm\r0
        vmovups [rcx + 64], zmm\r1
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

        .globl EDGEMM_SYM(sgemm_avx512f_14x32)
        .type EDGEMM_SYM(sgemm_avx512f_14x32), @function
        .p2align 5
EDGEMM_SYM(sgemm_avx512f_14x32):
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
        .size EDGEMM_SYM(sgemm_avx512f_14x32), . - EDGEMM_SYM(sgemm_avx512f_14x32)

        .section .note.GNU-stack, "", @progbits

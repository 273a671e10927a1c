/* sgemm_avx2_fma_6x16 — f32 GEMM micro-kernel, AVX2 + FMA3, tile MR×NR = 6×16.
 *
 * Contract (see src/kernels/f32.rs, struct SgemmArgs; all strides in BYTES):
 *   void kernel(const SgemmArgs *args)        System V: rdi = args
 *     C[i, j] = alpha * Σ_p A[i, p]·B[p, j] + beta * C[i, j]   for i < m, j < n
 *   A[i, p] at a + i*a_rs + p*a_ks   (packed MR-slivers: a_rs = 4, a_ks = 24; any strides)
 *   B[p, j] at b + p*b_ks + 4*j      (columns unit-stride; packed NR-slivers: b_ks = 64)
 *   C[i, j] at c + i*c_rs + 4*j      (columns unit-stride)
 *   1 <= m <= 6, 1 <= n <= 16, k >= 0.
 *   beta == 0 (either sign): C is never read (it may hold NaN).
 *   Reads: exactly m rows of A for k steps; 16 columns of B for every k step, whatever n
 *   (the driver zero-pads the last B sliver) — no other over-read. Writes: only the m×n tile
 *   (columns past n use vmaskmovps, which neither reads nor writes masked-off lanes).
 *
 * The A row addressing, the k loop and the per-m paths come from tile6_avx2.inc (shared
 * by the two AVX2 kernels).
 * Registers: ymm0..ymm11 accumulators (row i in ymm(2i), ymm(2i+1)); ymm12/13 the B row;
 *   ymm14/15 broadcasts of A (alternating, so consecutive rows do not wait on one register).
 *   A row i at rax + {0, 1, 2, 3, 4, 5}*a_rs via r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B, rdx = b_ks, r9 = a_ks, rcx = k counter. In the epilogue alpha and beta live as
 *   broadcast vectors on the stack (no register is left for them), ymm14/15 hold the column
 *   masks and ymm12/13 the loaded C row.
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, ymm0-15, flags. Saves nothing else (uses 72 bytes of
 *   stack). Ends with vzeroupper.
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
#define ARG_COUNT ARG_K
#define BCAST_INSN vbroadcastss
#define ZERO_INSN vxorps
#define T6_T0 14
#define T6_T1 15

/* One k step of B (two ymm). */
.macro LOADB
        vmovups ymm12, [rsi]
        vmovups ymm13, [rsi + 32]
.endm

/* The row's two FMAs with the broadcast A element in ymm t. */
.macro MAC r0, r1, t
        vfmadd231ps ymm\r0, ymm12, ymm\t
        vfmadd231ps ymm\r1, ymm13, ymm\t
.endm

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, column masks in ymm14/15 when
   n < 16; then enter the matching store sequence at row m-1. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
 .if \m > 1
        imul r9, r8, (\m - 1)
        add rcx, r9
 .endif
        mov eax, [rdi + ARG_BETA]
        and eax, 0x7fffffff
        mov r10, [rdi + ARG_N]
        cmp r10, 16
        jne .Lmask\m
        test eax, eax
        jz .Lb0f_\m
        jmp .Lbxf_\m
.Lmask\m:
        /* lanes j < n of the mask are all-ones: read 16 dwords from MASKS + 4*(16 - n) */
        lea r11, [rip + .Lmasks]
        neg r10
        vmovups ymm14, [r11 + r10*4 + 64]
        vmovups ymm15, [r11 + r10*4 + 96]
        test eax, eax
        jz .Lb0m_\m
        jmp .Lbxm_\m
.endm

#include "x86_64/tile6_avx2.inc"


/* Scale a row by alpha ([rsp]), add beta ([rsp+32]) * C unless beta0, store, step up. */
.macro STROW r0, r1, beta0, masked
        vmulps ymm\r0, ymm\r0, [rsp]
        vmulps ymm\r1, ymm\r1, [rsp]
 .if \beta0 == 0
  .if \masked
        vmaskmovps ymm12, ymm14, [rcx]
        vmaskmovps ymm13, ymm15, [rcx + 32]
  .else
        vmovups ymm12, [rcx]
        vmovups ymm13, [rcx + 32]
  .endif
        vfmadd231ps ymm\r0, ymm12, [rsp + 32]
        vfmadd231ps ymm\r1, ymm13, [rsp + 32]
 .endif
 .if \masked
        vmaskmovps [rcx], ymm14, ymm\r0
        vmaskmovps [rcx + 32], ymm15, ymm\r1
 .else
        vmovups [rcx], ymm\r0
        vmovups [rcx + 32], ymm\r1
 .endif
        sub rcx, r8
.endm

.macro SEQ name, beta0, masked
.L\name\()_6: STROW 10, 11, \beta0, \masked
.L\name\()_5: STROW 8, 9, \beta0, \masked
.L\name\()_4: STROW 6, 7, \beta0, \masked
.L\name\()_3: STROW 4, 5, \beta0, \masked
.L\name\()_2: STROW 2, 3, \beta0, \masked
.L\name\()_1: STROW 0, 1, \beta0, \masked
        jmp .Ldone
.endm

        .globl EDGEMM_SYM(sgemm_avx2_fma_6x16)
        .type EDGEMM_SYM(sgemm_avx2_fma_6x16), @function
        .p2align 5
EDGEMM_SYM(sgemm_avx2_fma_6x16):
        sub rsp, 72
        vbroadcastss ymm12, [rdi + ARG_ALPHA]
        vbroadcastss ymm13, [rdi + ARG_BETA]
        vmovups [rsp], ymm12
        vmovups [rsp + 32], ymm13
        mov rsi, [rdi + ARG_B]
        mov rdx, [rdi + ARG_B_KS]
        mov r8, [rdi + ARG_A_RS]
        lea r10, [r8 + r8*2]
        lea r11, [r8 + r8*4]
        mov rax, [rdi + ARG_A]
        T6_DISPATCH

        T6_VARIANTS

        SEQ b0f, 1, 0
        SEQ bxf, 0, 0
        SEQ b0m, 1, 1
        SEQ bxm, 0, 1

.Ldone:
        vzeroupper
        add rsp, 72
        ret
        .size EDGEMM_SYM(sgemm_avx2_fma_6x16), . - EDGEMM_SYM(sgemm_avx2_fma_6x16)

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

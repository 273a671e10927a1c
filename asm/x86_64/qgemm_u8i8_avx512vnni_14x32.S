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
 *   flags & 2 (REQUANT, never with ACCUMULATE): C is the BYTE output instead (c_rs bytes
 *   per row); each sum (col_off added; row_off is NOT read: the caller passes REQUANT only
 *   when the row offsets are zero) is requantized by the RqArgs at `rq` (per-column
 *   multipliers and shifts from the tile's first column; accumulators below 2^30,
 *   multipliers in [0, 2^31), no left shift, (|zp| + 1)·2^e <= 2^30 for every column's
 *   right shift e) and stored as one byte, the same values as requant.rs's AVX-512 output
 *   stage; flags & 4 (RQ_SAT): the clamp is [-128, 127] (the saturating narrowing does it);
 *   flags & 8 (RQ_NOCORR): every column's zero point is at most the clamp's low end, so the
 *   rounding's correction for negative sums is skipped (see RQVEC: it changes no byte then).
 *
 * Registers: zmm0..zmm27 accumulators (row i in zmm(2i) = columns 0-15, zmm(2i+1) = 16-31);
 *   zmm30/31 the B' group; zmm28/29 the broadcast A' dword (alternating by row). The
 *   accumulators start as col_off (T14_INIT); in the epilogue zmm28/29 hold row_off and C. Each k-group: 2 loads of B',
 *   m vpbroadcastd, 2m vpdpbusd (u8 × s8, 64 multiply-adds each).
 *   A row addresses, the k loop and the per-m paths come from tile14_avx512.inc (shared with
 *   the f32 AVX-512 kernel): rows 0-5 off rax, 6-11 off rbx, 12-13 off rbp, as
 *   base + {0, 1, 2, 3, 4, 5} * a_rs with r8 = a_rs, r10 = 3*a_rs, r11 = 5*a_rs.
 *   rsi = B', rdx = b_ks, r9 = a_ks, rcx = k-group counter, r12 = C row (prefetch),
 *   r13 = segment counter, r14 = a_ss − k_groups·a_ks (the step to the next segment).
 * Clobbers: rax, rcx, rdx, rsi, r8-r11, zmm0-31, k1-k4, flags. (REQUANT: 704 bytes of
 *   stack below the saved registers.) Saves rbx, rbp, r12-r14.
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
#define ARG_RQ      120
/* RqArgs (src/kernels/int8.rs): per-column multipliers and shifts (pointers), out zero
   point, lo, hi. */
#define RQ_MULT     0
#define RQ_SHIFT    8
#define RQ_ZP       16
#define RQ_LO       20
#define RQ_HI       24
/* The requantizing epilogue's per-column constants on the stack (rsp, 64-byte aligned),
   two zmm each (columns 0-15, 16-31): multipliers m, m >> 32 per qword (the odd lanes'),
   right shifts e; then per 16 columns the 64-bit constants K (see RQVEC) of the even
   columns (8 qwords) and of the odd ones. */
#define SC_M        0
#define SC_MODD     128
#define SC_E        256
#define SC_K        384
#define SC_BYTES    640
/* Where RQVEC finds them: the half-width kernel keeps them in the odd registers (it has no
   accumulators there), no loads in its epilogue; the full kernel on the stack. */
#if HALF
#define SCM(off)    zmm1
#define SCMODD(off) zmm3
#define SCE(off)    zmm5
#define SCKE(off)   zmm7
#define SCKO(off)   zmm9
#else
#define SCM(off)    [rsp + SC_M + off]
#define SCMODD(off) [rsp + SC_MODD + off]
#define SCE(off)    [rsp + SC_E + off]
#define SCKE(off)   [rsp + SC_K + 2 * off]
#define SCKO(off)   [rsp + SC_K + 2 * off + 64]
#endif
#define T14_SEGMENTS 1
#define ARG_COUNT ARG_KG
#define BCAST_INSN vpbroadcastd
#define ZERO_INSN vpxord
#define T14_OWN_INIT 1

/* The accumulators start as the column offsets (loads, instead of an add per accumulator
   in the epilogue). */
.macro T14_INIT m
        mov r12, [rdi + ARG_COL_OFF]
 .irp r, 0,2,4,6,8,10,12,14,16,18,20,22,24,26
  .if \r < 2 * \m
        vmovdqu32 zmm\r, [r12]
  .endif
 .endr
 .if HALF == 0
  .irp r, 1,3,5,7,9,11,13,15,17,19,21,23,25,27
   .if \r < 2 * \m
        vmovdqu32 zmm\r, [r12 + 64]
   .endif
  .endr
 .endif
.endm

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

/* Epilogue of an m-row tile: rcx = C row m-1, r8 = c_rs, r9 = &row_off[m-1], column masks
   in k1/k2 when n < 32 (always with REQUANT); then enter the matching store sequence. */
.macro TAIL m
        mov r8, [rdi + ARG_C_RS]
        mov rcx, [rdi + ARG_C]
        mov r9, [rdi + ARG_ROW_OFF]
 .if \m > 1
        imul r10, r8, (\m - 1)
        add rcx, r10
        add r9, 4 * (\m - 1)
 .endif
        mov r10, [rdi + ARG_N]
        test byte ptr [rdi + ARG_FLAGS], 2
        jz .Lnorq\m
        mov rdx, [rdi + ARG_RQ]
        vmovdqu32 zmm31, [rip + .Lrq_idx]
        movzx eax, byte ptr [rdi + ARG_FLAGS]
        test al, 8
        jnz .Lrqn\m
        test al, 4
        jnz .Lrqs_\m
        jmp .Lrq_\m
.Lrqn\m:
        test al, 4
        jnz .Lrqns_\m
        jmp .Lrqn_\m
.Lnorq\m:
        mov rax, [rdi + ARG_FLAGS]
        and eax, 1
        cmp r10, 32 / (HALF + 1)
        jne .Lmask\m
        test eax, eax
        jz .Lstf_\m
        jmp .Lacf_\m
.Lmask\m:
        COLMASKS
        test eax, eax
        jz .Lstm_\m
        jmp .Lacm_\m
.endm

/* k1/k2 = the first n (r10) columns of the two column halves (clobbers r11). */
.macro COLMASKS
        xor r11d, r11d
        bts r11, r10
        dec r11
        kmovw k1, r11d
        shr r11d, 16
        kmovw k2, r11d
.endm

/* The requantizing epilogue's constants (flags & REQUANT), made at the kernel's entry so
   that their latency (a chain of ~8 dependent ops) and the full kernel's stores overlap
   the k loop (the half-width kernel's go into registers the k loop does not use; made in
   its TAIL, MobileNet-v1's 8 -> 16 layer took 4% longer): rdx = the RqArgs, r10 = n;
   column masks k1/k2; the per-column constants of the n columns (masked loads: nothing
   past n is read) into stack scratch (64-byte aligned, the entry rsp saved above it;
   RQSEQ restores it) or registers (SCM...), k3/k4 = the columns of each half with a right
   shift (e > 0). Clobbers rax, rsi, r10, r11, zmm28-31. (TAIL then loads rdx and the
   vpermt2d indices into zmm31.) */
.macro RQSETUP
        COLMASKS
 .if HALF == 0
        mov rax, rsp
        sub rsp, SC_BYTES + 64
        and rsp, -64
        mov [rsp + SC_BYTES], rax
 .endif
        mov rsi, [rdx + RQ_MULT]
        mov r11, [rdx + RQ_SHIFT]
        mov r10d, [rdx + RQ_ZP]
        lea r10d, [r10 + r10 + 1]
        vpbroadcastd zmm31, r10d
        RQCONST 0, k1, k3
 .if HALF == 0
        RQCONST 64, k2, k4
 .endif
.endm

/* The constants of one column half (zmm31 = 2zp + 1 in every lane; clobbers zmm28-30):
   K = ((2zp + 1)·2^e + [e > 0])·2^31 = 2^31 + 2^(31+e) + zp·2^(32+e) for e > 0,
   2^31 + zp·2^32 for e = 0 ((2|zp| + 1)·2^e + 1 <= 2^31 - 1: the dword does not wrap). */
.macro RQCONST off, kcol, kpos
        vmovdqu32 zmm28{\kcol}{z}, [rsi + \off]
        vmovdqa32 SCM(\off), zmm28
        vpsrlq zmm28, zmm28, 32
        vmovdqa32 SCMODD(\off), zmm28
        vmovdqu32 zmm29{\kcol}{z}, [r11 + \off]
        vpxord zmm28, zmm28, zmm28
        vpsubd zmm29, zmm28, zmm29
        vpmaxsd zmm29, zmm29, zmm28
        vmovdqa32 SCE(\off), zmm29
        vptestmd \kpos, zmm29, zmm29
        vpsllvd zmm28, zmm31, zmm29
        vpternlogd zmm30, zmm30, zmm30, 0xff
        vpsubd zmm28{\kpos}, zmm28, zmm30
        vpsllq zmm29, zmm28, 32
        vpsraq zmm29, zmm29, 1
        vmovdqa64 SCKE(\off), zmm29
        vpsraq zmm28, zmm28, 32
        vpsllq zmm28, zmm28, 31
        vmovdqa64 SCKO(\off), zmm28
.endm

#include "x86_64/tile14_avx512.inc"

/* Add the offsets to row accumulators r0/r1, add C if accumulating, store, step up. */
.macro STROW r0, r1, acc, masked
        vpbroadcastd zmm28, [r9]
        vpaddd zmm\r0, zmm\r0, zmm28
 .if HALF == 0
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

/* Requantize accumulator zmm a (16 columns from byte offset off of the row's dwords) into
   bytes at rcx + off/4 under column mask kst: TFLite's MultiplyByQuantizedMultiplier(x, m,
   -e), zero point added, for |x| < 2^30, 0 <= m < 2^31, no left shift (as requant.rs,
   x86_512::mbqm_small). With y = SRDHM(x, m)
   = floor((x·m + 2^30) / 2^31) (TFLite's nudge and truncation, m >= 0) and RDBPOT(y, e) =
   floor((y + 2^(e-1) - [y < 0]) / 2^e) for e > 0 (ties away from zero):
     out = floor((2x·m + K) / 2^32) - [x < 0 and e > 0], arithmetically shifted right by e,
   K = 2^31 + 2^(31+e) (e > 0) + zp·2^(32+e) (SC_K). Proof: 2x·m + 2^31 = 2(x·m + 2^30),
   so the high dword of 2x·m + 2^31 is y; the other terms of K are multiples of 2^32, so
   adding them adds 2^(e-1) + zp·2^e to it exactly, and the nested floors merge (floor(
   (floor(z/2^32) + c)/2^e) = floor((z + c·2^32)/2^(32+e)) for integer c). [x < 0] may
   stand for [y < 0]: y < 0 needs x·m < -2^30, so x < 0 (m >= 0); and x < 0 with y >= 0
   gives y = 0 (x·m <= 0), where (2^(e-1) - 1 + zp·2^e) >> e = (2^(e-1) + zp·2^e) >> e = zp.
   Everything fits: 2x is exact (|x| < 2^30), 2x·m + K in i64, and the high dword below
   2^31 in magnitude ((|zp| + 1)·2^e <= 2^30). The products: vpmuldq of the even lanes and
   of the odd lanes (moved down); the high dwords gathered by vpermt2d. Then clamp and
   narrow; with sat the clamp is the whole i8 range: the saturating narrowing does it.
   Without corr (RQ_NOCORR: zp <= lo) the term -[x < 0] is left out (2 of the 10 vector
   ops): it changes no byte. It lowers a value only where x < 0; there y < 0, where both
   values are at most zp + floor((y + 2^(e-1))/2^e) <= zp <= lo and clamp to lo, or y = 0,
   where both are zp (above). ReLU layers (zp = lo = -128) are most of MobileNet's.
   zmm28/29 are scratch. */
.macro RQVEC a, off, kst, kpos, sat, corr
 .if \corr
        vpsrad zmm29, zmm\a, 31
 .endif
        vpaddd zmm\a, zmm\a, zmm\a
        vpsrlq zmm28, zmm\a, 32
        vpmuldq zmm\a, zmm\a, SCM(\off)
        vpmuldq zmm28, zmm28, SCMODD(\off)
        vpaddq zmm\a, zmm\a, SCKE(\off)
        vpaddq zmm28, zmm28, SCKO(\off)
        vpermt2d zmm\a, zmm31, zmm28
 .if \corr
        vpaddd zmm\a{\kpos}, zmm\a, zmm29
 .endif
        vpsravd zmm\a, zmm\a, SCE(\off)
 .if \sat
        vpmovsdb xmmword ptr [rcx + \off / 4]{\kst}, zmm\a
 .else
        vpmaxsd zmm\a, zmm\a, dword ptr [rdx + RQ_LO]{1to16}
        vpminsd zmm\a, zmm\a, dword ptr [rdx + RQ_HI]{1to16}
        vpmovdb xmmword ptr [rcx + \off / 4]{\kst}, zmm\a
 .endif
.endm

/* One row of the requantizing epilogue, then step up a row. */
.macro RQROW r0, r1, sat, corr
        RQVEC \r0, 0, k1, k3, \sat, \corr
 .if HALF == 0
        RQVEC \r1, 64, k2, k4, \sat, \corr
 .endif
        sub rcx, r8
.endm

/* The requantizing store sequence (entered at .L<name>_m), then the stack back. */
.macro RQSEQ name, sat, corr
.L\name\()_14: RQROW 26, 27, \sat, \corr
.L\name\()_13: RQROW 24, 25, \sat, \corr
.L\name\()_12: RQROW 22, 23, \sat, \corr
.L\name\()_11: RQROW 20, 21, \sat, \corr
.L\name\()_10: RQROW 18, 19, \sat, \corr
.L\name\()_9:  RQROW 16, 17, \sat, \corr
.L\name\()_8:  RQROW 14, 15, \sat, \corr
.L\name\()_7:  RQROW 12, 13, \sat, \corr
.L\name\()_6:  RQROW 10, 11, \sat, \corr
.L\name\()_5:  RQROW 8, 9, \sat, \corr
.L\name\()_4:  RQROW 6, 7, \sat, \corr
.L\name\()_3:  RQROW 4, 5, \sat, \corr
.L\name\()_2:  RQROW 2, 3, \sat, \corr
.L\name\()_1:  RQROW 0, 1, \sat, \corr
 .if HALF == 0
        mov rsp, [rsp + SC_BYTES]
 .endif
        jmp .Ldone
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
        test byte ptr [rdi + ARG_FLAGS], 2
        jz .Lentry
        mov rdx, [rdi + ARG_RQ]
        mov r10, [rdi + ARG_N]
        RQSETUP
.Lentry:
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
        RQSEQ rq, 0, 1
        RQSEQ rqs, 1, 1
        RQSEQ rqn, 0, 0
        RQSEQ rqns, 1, 0

.Ldone:
        vzeroupper
        pop r14
        pop r13
        pop r12
        pop rbp
        pop rbx
        ret
        .size EDGEMM_SYM(KNAME), . - EDGEMM_SYM(KNAME)

        /* vpermt2d indices: dword j takes dword 2⌊j/2⌋ + 1 (a product's high half) of
           the even lanes' products (j even) or of the odd lanes' (j odd, + 16). */
        .section .rodata
        .p2align 6
.Lrq_idx:
        .long 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31

        .section .note.GNU-stack, "", @progbits

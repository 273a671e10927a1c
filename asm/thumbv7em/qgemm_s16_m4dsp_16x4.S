/* qgemm_s16_m4dsp_16x4 — int8 GEMM micro-kernel for the Cortex-M4 (ARMv7E-M with the DSP
 * extension: smlad), tile MR×NR = 16×4, on operands widened to i16 (format I16x2). Exact.
 * Also runs on any M-profile core with the DSP extension (Cortex-M7, M33, M55 in Thumb).
 *
 * Contract (see src/kernels/int8.rs, struct QgemmArgs; strides in BYTES; on this 32-bit
 * target every field is 4 bytes: a 0, b 4, c 8, k_groups 12, a_rs 16, a_ks 20, b_ks 24,
 * c_rs 28, m 32, n 36, row_off 40, col_off 44, flags 48):
 *   void kernel(const QgemmArgs *args)        AAPCS: r0 = args
 *     C[i, j] (+)= Σ_q Σ_{t<2} A'[i, 2q+t]·B'[2q+t, j] + row_off[i] + col_off[j]
 *   for i < m, j < n; wrapping i32; "+=" when flags & 1, else "=" and C is never read.
 *   A' (i16 pairs) row i, k-group q: the word at a + i*a_rs + q*a_ks. B' k-group q: the 4
 *   words at b + q*b_ks (column j at + 4j, all 4 readable whatever n). row_off: m i32,
 *   col_off: 4 i32 (never null). C (i32) at c + i*c_rs + 4*j. 1 <= m <= 16, 1 <= n <= 4,
 *   k_groups >= 0.
 *
 *   Exactness: one smlad adds a0·b0 + a1·b1 to the accumulator: two i16×i16 products, each
 *   exact in 32 bits, summed in 32-bit wrapping arithmetic with no intermediate 16-bit sum
 *   and no saturation (smlad only sets the Q flag, which nothing here reads). The operands
 *   come from int8 data (|a'|, |b'| ≤ 255, including −128·−128), so every product is below
 *   2^16 in magnitude, and the i32 sums are exact whenever the true sum fits i32 (the
 *   driver's k limit, max_exact_k). There is no 16-bit pair-accumulation to overflow.
 *
 * Paths, chosen at entry from the arguments:
 *   .Ltile  the packed layout (a_rs = 4, a_ks = 4·MR = 64, b_ks = 16, a and b word-aligned):
 *           the tile runs as 2×4 register tiles (rows 0-1, 2-3, ... up to m), each over all
 *           of k. Per k-group: one ldrd of the two A' rows, two ldrd of the four B' columns,
 *           eight smlad: 11 instructions per 16 multiply-adds; the k loop is unrolled 8 times
 *           and entered part-way (tbb) for the remainder, with its end test (3 instructions)
 *           once per 8 k-groups. What every register tile needs (pointers, k-loop entry,
 *           store mode) is computed once per call: ~44 instructions per register tile
 *           outside the k loop. MR = 16 so one call covers 8 register tiles (a larger MR
 *           only amortises the calls; the register tile is the Cortex-M4's limit: 8
 *           accumulators, 2 A', 2 B' and 2 pointers fill r0-r12 and lr).
 *           Reads: both words of each A' row pair for every k-group, so with m odd the row
 *           after the last is read (inside the 64-byte group) and its sums thrown away.
 *   .Lm1    m = 1 with A' contiguous (a_ks = 4, b_ks = 16, aligned): a 1×4 register tile,
 *           two k-groups per step: one ldrd of A', two ldm of the four B' columns, eight
 *           smlad (11 instructions per 16 multiply-adds), unrolled 8 times (16 k-groups)
 *           with the end test (2 instructions) once per iteration. This is the path of
 *           batch-1 fully connected layers: each B' word feeds one smlad, loaded 4 at a time.
 *   .Lgeneric anything else (any strides, any alignment): one k-group of one element at a
 *           time. Reads exactly rows 0..m-1 of A' and columns 0..n-1 of B'.
 *   Zero points and bias arrive in row_off/col_off (the accumulators start from
 *   row_off[i] + col_off[j]), so the loops hold only loads and smlad. Writes only the m×n
 *   tile of C.
 *
 * Registers (.Ltile): r4-r7 C row 0 (columns 0-3), r8-r11 C row 1; r0/r1 the A' pair of
 *   rows, r2/r3 two B' columns; r12 A' pointer, lr B' pointer. (.Lm1): r4-r7 C row 0,
 *   r8/r9 A' (two k-groups), r0-r3 B' (four columns), r12/lr A'/B' pointers, r11 end of A'.
 * Saves r4-r11, lr (AAPCS callee-saved); 80 bytes of stack (with 40 of locals); a leaf.
 */
#include "common.h"

        .syntax unified
        .thumb
        .text

#define ARG_A       0
#define ARG_B       4
#define ARG_C       8
#define ARG_KG      12
#define ARG_A_RS    16
#define ARG_A_KS    20
#define ARG_B_KS    24
#define ARG_C_RS    28
#define ARG_M       32
#define ARG_N       36
#define ARG_ROW_OFF 40
#define ARG_COL_OFF 44
#define ARG_FLAGS   48

/* Rows of the tile (the table entry's MR): bytes per packed A' k-group are 4·MR. Measured
 * on the 625×64×64 benchmark: MR = 8 gives 1.21 instructions per multiply-add, MR = 16
 * 1.13 (half the calls, hence half the driver, output-stage and per-call overhead), for
 * a workspace that holds 16 packed rows of A (2·16·k bytes) instead of 8. */
#define MR 16
#define A_KS        (4 * MR)
#if A_KS == 8
#define LOG2_A_KS 3
#elif A_KS == 16
#define LOG2_A_KS 4
#elif A_KS == 32
#define LOG2_A_KS 5
#elif A_KS == 64
#define LOG2_A_KS 6
#else
#error "MR must be 2, 4, 8 or 16"
#endif

/* Locals (a 40-byte frame under the saved registers). The .Ltile path computes what every
 * 2×4 register tile needs once per call; the other paths use only L_ARGS. */
#define FRAME    40
#define L_END    0      /* end of A' for the k-loop test of the current register tile */
#define L_ARGS   4      /* args */
#define L_LEFT   8      /* rows left, from the current register tile's first */
#define L_APTR   12     /* A' of the current register tile (its first row) */
#define L_ROWP   16     /* row_off of the current register tile */
#define L_CPTR   20     /* C row of the current register tile */
#define L_CRS    24     /* c_rs */
#define L_KOFF   28     /* k_groups · A_KS: bytes of A' per register tile */
#define L_TBBI   32     /* where the unrolled k loop is entered: (−k_groups) mod 8 */
#define L_SLOW   36     /* 0 when the tiles are stored with stm (n = 4, no ACCUMULATE) */

/* One k-group of the 2×4 register tile: A' rows in r0/r1, B' columns 2-3 then 0-1 in r2/r3. */
.macro TSTEP
        ldrd    r0, r1, [r12], #A_KS
        ldrd    r2, r3, [lr, #8]
        smlad   r6, r0, r2, r6
        smlad   r7, r0, r3, r7
        smlad   r10, r1, r2, r10
        smlad   r11, r1, r3, r11
        ldrd    r2, r3, [lr], #16
        smlad   r4, r0, r2, r4
        smlad   r5, r0, r3, r5
        smlad   r8, r1, r2, r8
        smlad   r9, r1, r3, r9
.endm

/* Two k-groups of the 1×4 register tile: A' groups q, q+1 in r8/r9, B' columns in r0-r3. */
.macro MSTEP
        ldrd    r8, r9, [r12], #8
        ldmia   lr!, {r0-r3}
        smlad   r4, r8, r0, r4
        smlad   r5, r8, r1, r5
        smlad   r6, r8, r2, r6
        smlad   r7, r8, r3, r7
        ldmia   lr!, {r0-r3}
        smlad   r4, r9, r0, r4
        smlad   r5, r9, r1, r5
        smlad   r6, r9, r2, r6
        smlad   r7, r9, r3, r7
.endm

        .globl  EDGEMM_SYM(qgemm_s16_m4dsp_16x4)
        .type   EDGEMM_SYM(qgemm_s16_m4dsp_16x4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(qgemm_s16_m4dsp_16x4):
        push    {r4-r11, lr}
        sub     sp, #FRAME
        str     r0, [sp, #L_ARGS]
        /* Which path: the packed layouts need b_ks = 16 and word-aligned A' and B'. */
        ldr     r1, [r0, #ARG_A]
        ldr     r2, [r0, #ARG_B]
        orr     r3, r1, r2
        tst     r3, #3
        bne     .Lgeneric
        ldr     r2, [r0, #ARG_B_KS]
        cmp     r2, #16
        bne     .Lgeneric
        ldr     r3, [r0, #ARG_A_KS]
        ldr     r2, [r0, #ARG_M]
        cmp     r2, #1
        bne     1f
        cmp     r3, #4
        beq     .Lm1
1:      ldr     r12, [r0, #ARG_A_RS]
        cmp     r12, #4
        bne     .Lgeneric
        cmp     r3, #A_KS
        bne     .Lgeneric

/* ---- packed layout: 2×4 register tiles ------------------------------------------------- */
        str     r2, [sp, #L_LEFT]               /* m */
        str     r1, [sp, #L_APTR]               /* a */
        ldr     r1, [r0, #ARG_ROW_OFF]
        str     r1, [sp, #L_ROWP]
        ldr     r1, [r0, #ARG_C]
        str     r1, [sp, #L_CPTR]
        ldr     r1, [r0, #ARG_C_RS]
        str     r1, [sp, #L_CRS]
        ldr     r3, [r0, #ARG_KG]
        lsl     r1, r3, #LOG2_A_KS
        str     r1, [sp, #L_KOFF]
        rsb     r1, r3, #0
        and     r1, r1, #7
        str     r1, [sp, #L_TBBI]
        ldr     r1, [r0, #ARG_N]
        ldr     r2, [r0, #ARG_FLAGS]
        eor     r1, r1, #4
        and     r2, r2, #1
        orr     r1, r1, r2
        str     r1, [sp, #L_SLOW]

.Lsub:                                  /* r0 = args */
        ldr     r2, [r0, #ARG_COL_OFF]
        ldm     r2, {r4-r7}
        ldr     r2, [sp, #L_ROWP]
        ldr     r1, [sp, #L_LEFT]
        cmp     r1, #2
        blo     .Lsub_row1
        ldrd    r1, r3, [r2], #8        /* row_off of the tile's two rows */
        str     r2, [sp, #L_ROWP]
.Lsub_rows:
        add     r8, r4, r3
        add     r9, r5, r3
        add     r10, r6, r3
        add     r11, r7, r3
        add     r4, r4, r1
        add     r5, r5, r1
        add     r6, r6, r1
        add     r7, r7, r1
        ldr     r12, [sp, #L_APTR]      /* rows row, row+1 of each 4·MR-byte A' group */
        add     r1, r12, #8
        str     r1, [sp, #L_APTR]
        ldr     lr, [r0, #ARG_B]
        ldr     r1, [sp, #L_KOFF]
        cmp     r1, #0
        beq     .Lsub_done
        add     r2, r12, r1
        str     r2, [sp, #L_END]
        ldr     r3, [sp, #L_TBBI]       /* enter at step (8 − k_groups mod 8) mod 8 */
        tbb     [pc, r3]
.Lt_tbl:
        .byte   (.Lt_s0 - .Lt_tbl) / 2
        .byte   (.Lt_s1 - .Lt_tbl) / 2
        .byte   (.Lt_s2 - .Lt_tbl) / 2
        .byte   (.Lt_s3 - .Lt_tbl) / 2
        .byte   (.Lt_s4 - .Lt_tbl) / 2
        .byte   (.Lt_s5 - .Lt_tbl) / 2
        .byte   (.Lt_s6 - .Lt_tbl) / 2
        .byte   (.Lt_s7 - .Lt_tbl) / 2
        .p2align 1
.Lt_loop:
.Lt_s0: TSTEP
.Lt_s1: TSTEP
.Lt_s2: TSTEP
.Lt_s3: TSTEP
.Lt_s4: TSTEP
.Lt_s5: TSTEP
.Lt_s6: TSTEP
.Lt_s7: TSTEP
        ldr     r2, [sp, #L_END]
        cmp     r12, r2
        bne     .Lt_loop
.Lsub_done:
        ldr     r2, [sp, #L_CPTR]
        ldr     r3, [sp, #L_CRS]
        ldr     r1, [sp, #L_LEFT]
        ldr     r12, [sp, #L_SLOW]
        cmp     r12, #0
        bne     .Lsub_slow
        stm     r2, {r4-r7}
        add     r2, r2, r3
        cmp     r1, #2
        blo     .Ldone
        stm     r2, {r8-r11}
        add     r2, r2, r3
.Lsub_next:
        str     r2, [sp, #L_CPTR]
        subs    r1, #2
        str     r1, [sp, #L_LEFT]
        ldr     r0, [sp, #L_ARGS]
        bhi     .Lsub
.Ldone:
        add     sp, #FRAME
        pop     {r4-r11, pc}

.Lsub_row1:                             /* one row left: no row_off for the second */
        ldr     r1, [r2]
        movs    r3, #0
        b       .Lsub_rows
.Lsub_slow:                             /* n < 4 or ACCUMULATE */
        ldr     r12, [sp, #L_ARGS]
        ldr     r12, [r12, #ARG_FLAGS]
        bl      .Lstore
        ldr     r2, [sp, #L_CPTR]
        ldr     r3, [sp, #L_CRS]
        ldr     r1, [sp, #L_LEFT]
        add     r2, r2, r3, lsl #1
        b       .Lsub_next

/* ---- m = 1, A' contiguous: 1×4 register tile ------------------------------------------- */
.Lm1:                                   /* r0 = args */
        ldr     r2, [r0, #ARG_COL_OFF]
        ldm     r2, {r4-r7}
        ldr     r2, [r0, #ARG_ROW_OFF]
        ldr     r2, [r2]
        add     r4, r4, r2
        add     r5, r5, r2
        add     r6, r6, r2
        add     r7, r7, r2
        ldr     r12, [r0, #ARG_A]
        ldr     lr, [r0, #ARG_B]
        ldr     r3, [r0, #ARG_KG]
        lsrs    r10, r3, #1             /* pairs of k-groups; C = k_groups odd */
        bcc     1f
        ldr     r8, [r12], #4           /* the odd k-group first */
        ldmia   lr!, {r0-r3}
        smlad   r4, r8, r0, r4
        smlad   r5, r8, r1, r5
        smlad   r6, r8, r2, r6
        smlad   r7, r8, r3, r7
1:      cmp     r10, #0
        beq     .Lm1_done
        add     r11, r12, r10, lsl #3   /* end of A' */
        rsb     r10, r10, #0            /* enter at step (8 − pairs mod 8) mod 8 */
        and     r10, r10, #7
        tbb     [pc, r10]
.Lm_tbl:
        .byte   (.Lm_s0 - .Lm_tbl) / 2
        .byte   (.Lm_s1 - .Lm_tbl) / 2
        .byte   (.Lm_s2 - .Lm_tbl) / 2
        .byte   (.Lm_s3 - .Lm_tbl) / 2
        .byte   (.Lm_s4 - .Lm_tbl) / 2
        .byte   (.Lm_s5 - .Lm_tbl) / 2
        .byte   (.Lm_s6 - .Lm_tbl) / 2
        .byte   (.Lm_s7 - .Lm_tbl) / 2
        .p2align 1
.Lm_loop:
.Lm_s0: MSTEP
.Lm_s1: MSTEP
.Lm_s2: MSTEP
.Lm_s3: MSTEP
.Lm_s4: MSTEP
.Lm_s5: MSTEP
.Lm_s6: MSTEP
.Lm_s7: MSTEP
        cmp     r12, r11
        bne     .Lm_loop
.Lm1_done:
        ldr     r0, [sp, #L_ARGS]
        ldr     r2, [r0, #ARG_C]
        movs    r1, #1                  /* one row */
        ldr     r12, [r0, #ARG_FLAGS]
        bl      .Lstore
        b       .Ldone

/* ---- store one 2×4 register tile (called with bl) -----------------------------------------
 * In: r4-r7 row 0, r8-r11 row 1 (stored only when r1 >= 2), r2 = C row 0, r3 = c_rs,
 * r12 = flags. Reads n from the args. Clobbers r0-r3, r12, lr. */
.Lstore:
        push    {lr}
        ldr     lr, [sp, #L_ARGS + 4]   /* (the push moved sp by 4) */
        ldr     lr, [lr, #ARG_N]
        tst     r12, #1
        bne     .Lst_acc
        cmp     lr, #4
        bne     .Lst_part
.Lst_full:
        stm     r2, {r4-r7}
        cmp     r1, #2
        blo     .Lst_ret
        add     r2, r2, r3
        stm     r2, {r8-r11}
.Lst_ret:
        pop     {pc}
.Lst_acc:                               /* add C into the valid columns, then store */
        ldr     r0, [r2]
        add     r4, r4, r0
        cmp     lr, #2
        itt     hs
        ldrhs   r0, [r2, #4]
        addhs   r5, r5, r0
        cmp     lr, #3
        itt     hs
        ldrhs   r0, [r2, #8]
        addhs   r6, r6, r0
        cmp     lr, #4
        itt     hs
        ldrhs   r0, [r2, #12]
        addhs   r7, r7, r0
        cmp     r1, #2
        blo     1f
        add     r12, r2, r3
        ldr     r0, [r12]
        add     r8, r8, r0
        cmp     lr, #2
        itt     hs
        ldrhs   r0, [r12, #4]
        addhs   r9, r9, r0
        cmp     lr, #3
        itt     hs
        ldrhs   r0, [r12, #8]
        addhs   r10, r10, r0
        cmp     lr, #4
        itt     hs
        ldrhs   r0, [r12, #12]
        addhs   r11, r11, r0
1:      cmp     lr, #4
        beq     .Lst_full
.Lst_part:                              /* n < 4: columns 0..n-1 only */
        str     r4, [r2]
        cmp     lr, #2
        it      hs
        strhs   r5, [r2, #4]
        cmp     lr, #3
        it      hs
        strhs   r6, [r2, #8]
        cmp     r1, #2
        blo     .Lst_ret
        add     r2, r2, r3
        str     r8, [r2]
        cmp     lr, #2
        it      hs
        strhs   r9, [r2, #4]
        cmp     lr, #3
        it      hs
        strhs   r10, [r2, #8]
        pop     {pc}

/* ---- any strides, any alignment: one element at a time --------------------------------- */
.Lgeneric:                              /* r0 = args */
        movs    r4, #0                  /* i */
.Lg_row:
        movs    r5, #0                  /* j */
.Lg_col:
        ldr     r6, [r0, #ARG_ROW_OFF]
        ldr     r6, [r6, r4, lsl #2]
        ldr     r7, [r0, #ARG_COL_OFF]
        ldr     r7, [r7, r5, lsl #2]
        add     r6, r6, r7              /* the sum starts at row_off[i] + col_off[j] */
        ldr     r7, [r0, #ARG_A_RS]
        ldr     r8, [r0, #ARG_A]
        mla     r8, r4, r7, r8          /* A' row i */
        ldr     r9, [r0, #ARG_B]
        add     r9, r9, r5, lsl #2      /* B' column j */
        ldr     r10, [r0, #ARG_A_KS]
        ldr     r11, [r0, #ARG_B_KS]
        ldr     r12, [r0, #ARG_KG]
        cmp     r12, #0
        beq     2f
1:      ldr     r1, [r8]
        add     r8, r8, r10
        ldr     r2, [r9]
        add     r9, r9, r11
        smlad   r6, r1, r2, r6
        subs    r12, #1
        bne     1b
2:      ldr     r1, [r0, #ARG_C]
        ldr     r2, [r0, #ARG_C_RS]
        mla     r1, r4, r2, r1
        add     r1, r1, r5, lsl #2      /* &C[i, j] */
        ldr     r2, [r0, #ARG_FLAGS]
        tst     r2, #1
        itt     ne
        ldrne   r2, [r1]
        addne   r6, r6, r2
        str     r6, [r1]
        adds    r5, #1
        ldr     r1, [r0, #ARG_N]
        cmp     r5, r1
        blo     .Lg_col
        adds    r4, #1
        ldr     r1, [r0, #ARG_M]
        cmp     r4, r1
        blo     .Lg_row
        b       .Ldone
        .size   EDGEMM_SYM(qgemm_s16_m4dsp_16x4), . - EDGEMM_SYM(qgemm_s16_m4dsp_16x4)

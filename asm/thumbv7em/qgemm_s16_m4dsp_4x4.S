/* qgemm_s16_m4dsp_4x4 — int8 GEMM micro-kernel for the Cortex-M4 (ARMv7E-M with the DSP
 * extension: smlad), tile MR×NR = 4×4, on operands widened to i16 (format I16x2). Exact.
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
 *   col_off: 4 i32 (never null). C (i32) at c + i*c_rs + 4*j. 1 <= m <= 4, 1 <= n <= 4,
 *   k_groups >= 0.
 *
 *   Exactness: one smlad adds a0·b0 + a1·b1 (each product of two i16 fits i32: |−32768²| =
 *   2^30, and the two products plus the accumulator are added in 32-bit wrapping arithmetic,
 *   with no intermediate 16-bit sum and no saturation; smlad only sets the Q flag, which
 *   nothing reads). Operands come from int8 data (|a'|, |b'| ≤ 255), so every product is
 *   below 2^16 in magnitude: the i32 sums are exact whenever the true sum fits i32 (the
 *   driver's k limit, max_exact_k), including −128·−128 everywhere.
 *
 * Paths, chosen at entry from the arguments:
 *   .Ltile  the packed layout (a_rs = 4, a_ks = 16, b_ks = 16, a and b word-aligned): the
 *           4×4 tile runs as two 2×4 register tiles (rows 0-1, then rows 2-3 when m > 2),
 *           each over all of k. Per k-group: one ldrd of the two A' rows, two ldrd of the
 *           four B' columns, eight smlad: 11 instructions per 16 multiply-adds; the k loop is
 *           unrolled 8 times and entered part-way (tbb) for the remainder, with its end test
 *           (3 instructions) once per 8 k-groups.
 *           Reads: the whole 16-byte A' group (all 4 rows) for every k-group, so with m odd
 *           the row after the last is read (inside the group) and its sums thrown away.
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
 * Saves r4-r11, lr (AAPCS callee-saved); 48 bytes of stack (with 12 of locals); a leaf.
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

/* Locals, above the 12-byte frame's base: */
#define L_END   0       /* end of A' for the .Ltile loop test */
#define L_ARGS  4       /* args */
#define L_ROW   8       /* first row of the current 2×4 register tile (0 or 2) */

/* One k-group of the 2×4 register tile: A' rows in r0/r1, B' columns 2-3 then 0-1 in r2/r3. */
.macro TSTEP
        ldrd    r0, r1, [r12], #16
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

        .globl  EDGEMM_SYM(qgemm_s16_m4dsp_4x4)
        .type   EDGEMM_SYM(qgemm_s16_m4dsp_4x4), %function
        .thumb_func
        .p2align 2
EDGEMM_SYM(qgemm_s16_m4dsp_4x4):
        push    {r4-r11, lr}
        sub     sp, #12
        str     r0, [sp, #L_ARGS]
        movs    r1, #0
        str     r1, [sp, #L_ROW]
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
1:      ldr     r1, [r0, #ARG_A_RS]
        cmp     r1, #4
        bne     .Lgeneric
        cmp     r3, #16
        bne     .Lgeneric

/* ---- packed layout: 2×4 register tiles ------------------------------------------------- */
.Lsub:                                  /* r0 = args, [sp, #L_ROW] = first row */
        ldr     r1, [sp, #L_ROW]
        ldr     r2, [r0, #ARG_COL_OFF]
        ldm     r2, {r4-r7}
        ldr     r2, [r0, #ARG_ROW_OFF]
        ldr     r3, [r0, #ARG_M]
        add     r2, r2, r1, lsl #2
        ldr     lr, [r2]                /* row_off[row] */
        sub     r3, r3, r1              /* rows left */
        cmp     r3, #2
        ite     hs
        ldrhs   r12, [r2, #4]           /* row_off[row + 1] (no such row: its sums are dropped) */
        movlo   r12, #0
        add     r8, r4, r12
        add     r9, r5, r12
        add     r10, r6, r12
        add     r11, r7, r12
        add     r4, r4, lr
        add     r5, r5, lr
        add     r6, r6, lr
        add     r7, r7, lr
        ldr     r12, [r0, #ARG_A]
        add     r12, r12, r1, lsl #2    /* rows row, row+1 of each 16-byte A' group */
        ldr     lr, [r0, #ARG_B]
        ldr     r3, [r0, #ARG_KG]
        add     r2, r12, r3, lsl #4
        str     r2, [sp, #L_END]
        cmp     r3, #0
        beq     .Lsub_done
        rsb     r3, r3, #0              /* enter at step (8 − k_groups mod 8) mod 8 */
        and     r3, r3, #7
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
        ldr     r0, [sp, #L_ARGS]
        ldr     r1, [sp, #L_ROW]
        ldr     r2, [r0, #ARG_C]
        ldr     r3, [r0, #ARG_C_RS]
        mla     r2, r1, r3, r2          /* C row `row` */
        ldr     r12, [r0, #ARG_M]
        sub     r1, r12, r1             /* rows left (2 or more: both rows of the tile) */
        ldr     r12, [r0, #ARG_FLAGS]
        bl      .Lstore
        ldr     r0, [sp, #L_ARGS]
        ldr     r1, [sp, #L_ROW]
        ldr     r3, [r0, #ARG_M]
        adds    r1, #2
        cmp     r1, r3
        bhs     .Ldone
        str     r1, [sp, #L_ROW]
        b       .Lsub

.Ldone:
        add     sp, #12
        pop     {r4-r11, pc}

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
        .size   EDGEMM_SYM(qgemm_s16_m4dsp_4x4), . - EDGEMM_SYM(qgemm_s16_m4dsp_4x4)

/* Pieces shared by the AArch64 int8 micro-kernels (asm/aarch64/qgemm_*.S): the QgemmArgs
 * field offsets, the stack frame, and the output of one finished row of the tile.
 *
 * Contract of every int8 kernel (src/kernels/int8.rs, struct QgemmArgs; strides in BYTES):
 *   void kernel(const QgemmArgs *args)        AAPCS64: x0 = args
 *     C[i, j] (+)= Σ_q Σ_t A'[i, g·q+t]·B'[g·q+t, j] + row_off[i] + col_off[j]
 *   for i < m, j < n, wrapping i32; "+=" when flags & 1 (ACCUMULATE), else "=" and C is never
 *   read. C[i, j] (i32) at c + i*c_rs + 4*j. row_off: m i32, col_off: NR i32 (never null).
 *
 * The epilogue conventions (QG_EPILOGUE_SETUP, QG_ROW): the tile is written from row m-1 up
 * to row 0; x7 = C row, x8 = c_rs, x10 = &row_off[row], x6 = n, v0-v2 = col_off[0..12)
 * (v0-v1 = col_off[0..8) when NR = 8); v3-v6 and x9 are scratch.
 */

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

/* Frame record (x29, x30: the epilogue calls local subroutines) and d8-d15, which AAPCS64
 * makes callee-saved (the low 64 bits of v8-v15). 80 bytes, 16-byte aligned. */
.macro QG_PROLOGUE
        stp x29, x30, [sp, #-80]!
        mov x29, sp
        stp d8, d9, [sp, #16]
        stp d10, d11, [sp, #32]
        stp d12, d13, [sp, #48]
        stp d14, d15, [sp, #64]
.endm

.macro QG_RETURN
        ldp d8, d9, [sp, #16]
        ldp d10, d11, [sp, #32]
        ldp d12, d13, [sp, #48]
        ldp d14, d15, [sp, #64]
        ldp x29, x30, [sp], #80
        ret
.endm

/* Return (through \done) unless 1 <= m <= MR and 1 <= n <= NR. Clobbers x9, flags. */
.macro QG_CHECK_MN mr, nr, done
        ldr x9, [x0, #ARG_M]
        sub x9, x9, #1
        cmp x9, #(\mr - 1)
        b.hi \done
        ldr x9, [x0, #ARG_N]
        sub x9, x9, #1
        cmp x9, #(\nr - 1)
        b.hi \done
.endm

/* Hint the m rows of the C tile (nr i32 each) into L1 for writing while the k loop runs
 * (prfm never faults). x7 = C, x8 = c_rs, x17 = m; clobbers x9, x10. */
.macro QG_PREFETCH_C nr
        mov x9, x7
        mov x10, x17
0:      prfm pstl1keep, [x9]
        prfm pstl1keep, [x9, #(4 * \nr - 4)]
        add x9, x9, x8
        subs x10, x10, #1
        b.ne 0b
.endm

/* After the k loop of the variant for m rows: point x7 at C row m-1 and x10 at row_off[m-1],
 * load col_off into v0-v(nvec-1), x6 = n, and jump to the row sequence for (flags, n == nr),
 * entering at row m-1: .Lstf_<m> (store, full rows), .Lacf_<m> (accumulate, full),
 * .Lstp_<m> / .Lacp_<m> (n < nr, partial rows). */
.macro QG_EPILOGUE_SETUP m, nvec, nr
        ldr x7, [x0, #ARG_C]
        ldr x8, [x0, #ARG_C_RS]
        ldr x10, [x0, #ARG_ROW_OFF]
 .if \m > 1
        mov x9, #(\m - 1)
        madd x7, x9, x8, x7
        add x10, x10, #(4 * (\m - 1))
 .endif
        ldr x9, [x0, #ARG_COL_OFF]
 .if \nvec == 3
        ld1 {v0.4s, v1.4s, v2.4s}, [x9]
 .else
        ld1 {v0.4s, v1.4s}, [x9]
 .endif
        ldr x6, [x0, #ARG_N]
        ldr x9, [x0, #ARG_FLAGS]
        cmp x6, #\nr
        b.ne 5f
        tbnz x9, #0, .Lacf_\m
        b .Lstf_\m
5:      tbnz x9, #0, .Lacp_\m
        b .Lstp_\m
.endm

/* One finished row of the tile, columns 0-3 in v\r0, 4-7 in v\r1, 8-11 in v\r2 (when
 * nvec == 3; any registers outside v0-v6): add col_off (v0..), row_off[row] (broadcast from
 * x10, then x10 -= 4), C when acc; store (full: all nvec·4 columns; otherwise exactly n
 * columns, through .Lload_n/.Lstore_n); then x7 -= c_rs. Clobbers v3-v6, x9. */
.macro QG_ROW nvec, acc, full, r0, r1, r2
        ld1r {v3.4s}, [x10]
        sub x10, x10, #4
        add v\r0\().4s, v\r0\().4s, v0.4s
        add v\r1\().4s, v\r1\().4s, v1.4s
 .if \nvec == 3
        add v\r2\().4s, v\r2\().4s, v2.4s
 .endif
        add v\r0\().4s, v\r0\().4s, v3.4s
        add v\r1\().4s, v\r1\().4s, v3.4s
 .if \nvec == 3
        add v\r2\().4s, v\r2\().4s, v3.4s
 .endif
 .if \acc
  .if \full
        ldp q4, q5, [x7]
   .if \nvec == 3
        ldr q6, [x7, #32]
   .endif
  .else
        bl .Lload_n
  .endif
        add v\r0\().4s, v\r0\().4s, v4.4s
        add v\r1\().4s, v\r1\().4s, v5.4s
  .if \nvec == 3
        add v\r2\().4s, v\r2\().4s, v6.4s
  .endif
 .endif
 .if \full
        stp q\r0, q\r1, [x7]
  .if \nvec == 3
        str q\r2, [x7, #32]
  .endif
 .else
        mov v4.16b, v\r0\().16b
        mov v5.16b, v\r1\().16b
  .if \nvec == 3
        mov v6.16b, v\r2\().16b
  .endif
        bl .Lstore_n
 .endif
        sub x7, x7, x8
.endm

/* n % 4 i32 at x9 into lanes 0.. of v\r (nothing when n % 4 == 0). */
.macro QG_LOAD_REM r
        tbz x6, #1, 8f
        ldr d\r, [x9], #8
        tbz x6, #0, 9f
        ld1 {v\r\().s}[2], [x9]
        b 9f
8:      tbz x6, #0, 9f
        ldr s\r, [x9]
9:
.endm

/* Lanes 0.. of v\r to n % 4 i32 at x9. */
.macro QG_STORE_REM r
        tbz x6, #1, 8f
        str d\r, [x9], #8
        tbz x6, #0, 9f
        st1 {v\r\().s}[2], [x9]
        b 9f
8:      tbz x6, #0, 9f
        str s\r, [x9]
9:
.endm

/* The local subroutines (bl; x30 is saved by QG_PROLOGUE) that read and write exactly n
 * columns (1 <= n < 12) of the C row at x7, through v4, v5, v6 (lanes past n undefined on
 * load, never stored). Clobber x9. */
.macro QG_N_SUBROUTINES
.Lload_n:
        mov x9, x7
        cmp x6, #4
        b.lo 3f
        ldr q4, [x9], #16
        cmp x6, #8
        b.lo 2f
        ldr q5, [x9], #16
        QG_LOAD_REM 6
        ret
2:      QG_LOAD_REM 5
        ret
3:      QG_LOAD_REM 4
        ret

.Lstore_n:
        mov x9, x7
        cmp x6, #4
        b.lo 3f
        str q4, [x9], #16
        cmp x6, #8
        b.lo 2f
        str q5, [x9], #16
        QG_STORE_REM 6
        ret
2:      QG_STORE_REM 5
        ret
3:      QG_STORE_REM 4
        ret
.endm

/* The complex arithmetic the Cortex-M4F FFT kernels share (fft_first_i16, fft_radix4,
 * fft_last_split): the scratch registers default to s22–s29, where the radix-4 and last-stage
 * kernels keep them. */
/* The 4-point DFT of a (s\ar, s\ai), b, c, d in place, sums in s\u .. s\u + 7. */
.macro DFT4 ar, ai, br, bi, cr, ci, dr, di, u0=22, u1=23, u2=24, u3=25, u4=26, u5=27, u6=28, u7=29
        vadd.f32 s\u0, s\ar, s\cr        @ t0
        vadd.f32 s\u1, s\ai, s\ci
        vsub.f32 s\u2, s\ar, s\cr        @ t1
        vsub.f32 s\u3, s\ai, s\ci
        vadd.f32 s\u4, s\br, s\dr        @ t2
        vadd.f32 s\u5, s\bi, s\di
        vsub.f32 s\u6, s\br, s\dr        @ t3
        vsub.f32 s\u7, s\bi, s\di
        vadd.f32 s\ar, s\u0, s\u4        @ t0 + t2
        vadd.f32 s\ai, s\u1, s\u5
        vadd.f32 s\br, s\u2, s\u7        @ (t1r + t3i, t1i − t3r)
        vsub.f32 s\bi, s\u3, s\u6
        vsub.f32 s\cr, s\u0, s\u4        @ t0 − t2
        vsub.f32 s\ci, s\u1, s\u5
        vsub.f32 s\dr, s\u2, s\u7        @ (t1r − t3i, t1i + t3r)
        vadd.f32 s\di, s\u3, s\u6
.endm

/* (xr, xi) ← (wr·xr − wi·xi, wr·xi + wi·xr), products in s\u .. s\u + 3. */
.macro CMUL xr, xi, wr, wi, u0=22, u1=23, u2=24, u3=25
        vmul.f32 s\u0, s\wr, s\xr
        vmul.f32 s\u1, s\wi, s\xi
        vmul.f32 s\u2, s\wr, s\xi
        vmul.f32 s\u3, s\wi, s\xr
        vsub.f32 s\xr, s\u0, s\u1
        vadd.f32 s\xi, s\u2, s\u3
.endm

//! AArch64 kernels: the assembly micro-kernels in `asm/aarch64/` and the NEON vector-matrix
//! (m = 1) path. NEON (Advanced SIMD) is part of the AArch64 base ABI; the int8 kernels on
//! `sdot` (dotprod) and `smmla` (i8mm) need those extensions too (the kernel table says so).

use super::f32::SgemmArgs;
use core::arch::aarch64::*;

macro_rules! asm_kernels {
    ($args:ty: $($name:ident),* $(,)?) => {
        extern "C" {
            $(
                #[link_name = concat!(
                    "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_",
                    env!("CARGO_PKG_VERSION_MINOR"), "_", env!("CARGO_PKG_VERSION_PATCH"),
                    "_", stringify!($name)
                )]
                pub(crate) fn $name(args: *const $args);
            )*
        }
    };
}

asm_kernels!(SgemmArgs: sgemm_neon_8x12);
asm_kernels!(super::int8::QgemmArgs:
    qgemm_i8_neon_i8mm_8x12,
    qgemm_i8_neon_dot_8x12,
    qgemm_i8_neon_6x8,
);

/// y = α·xᵀB + β·y with NEON (see [`super::f32::GemvFn`]).
///
/// # Safety
/// The GemvFn contract (NEON is always present on AArch64).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemv_neon(
    k: usize,
    n: usize,
    alpha: f32,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    cols: bool,
    beta: f32,
    y: *mut f32,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if cols {
            gemv_cols(k, n, alpha, x, b, ldb, beta, y)
        } else {
            gemv_rows(k, n, alpha, x, b, ldb, beta, y)
        }
    }
}

/// B rows contiguous: y ← β·y, then y += Σₚ (α·xₚ)·B[p, :] four rows at a time, so B is read
/// as four sequential streams and y (kept in L1) is loaded and stored once per four rows.
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_rows(
    k: usize,
    n: usize,
    alpha: f32,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    beta: f32,
    y: *mut f32,
) {
    // SAFETY (whole body): x[0..k], y[0..n] and B[p, j] for p < k, j < n are in bounds
    // (GemvFn contract); every access below stays inside those ranges (vector accesses
    // cover j..j+4 with j + 4 <= n4 <= n).
    unsafe {
        // y ← β·y (β = 0 writes zeros without reading y).
        for j in 0..n {
            let p = y.add(j);
            *p = if beta == 0.0 { 0.0 } else { beta * *p };
        }
        let n4 = n & !3;
        let mut p = 0;
        while p + 4 <= k {
            let r0 = b.offset(p as isize * ldb);
            let r1 = r0.offset(ldb);
            let r2 = r1.offset(ldb);
            let r3 = r2.offset(ldb);
            let s = [
                alpha * *x.add(p),
                alpha * *x.add(p + 1),
                alpha * *x.add(p + 2),
                alpha * *x.add(p + 3),
            ];
            let xs = vld1q_f32(s.as_ptr());
            let mut j = 0;
            while j + 16 <= n4 {
                let mut acc = [
                    vld1q_f32(y.add(j)),
                    vld1q_f32(y.add(j + 4)),
                    vld1q_f32(y.add(j + 8)),
                    vld1q_f32(y.add(j + 12)),
                ];
                for (q, a) in acc.iter_mut().enumerate() {
                    let o = j + 4 * q;
                    *a = vfmaq_laneq_f32::<0>(*a, vld1q_f32(r0.add(o)), xs);
                    *a = vfmaq_laneq_f32::<1>(*a, vld1q_f32(r1.add(o)), xs);
                    *a = vfmaq_laneq_f32::<2>(*a, vld1q_f32(r2.add(o)), xs);
                    *a = vfmaq_laneq_f32::<3>(*a, vld1q_f32(r3.add(o)), xs);
                }
                for (q, a) in acc.iter().enumerate() {
                    vst1q_f32(y.add(j + 4 * q), *a);
                }
                j += 16;
            }
            while j < n4 {
                let mut a = vld1q_f32(y.add(j));
                a = vfmaq_laneq_f32::<0>(a, vld1q_f32(r0.add(j)), xs);
                a = vfmaq_laneq_f32::<1>(a, vld1q_f32(r1.add(j)), xs);
                a = vfmaq_laneq_f32::<2>(a, vld1q_f32(r2.add(j)), xs);
                a = vfmaq_laneq_f32::<3>(a, vld1q_f32(r3.add(j)), xs);
                vst1q_f32(y.add(j), a);
                j += 4;
            }
            for j in n4..n {
                let mut v = *y.add(j);
                v += s[0] * *r0.add(j);
                v += s[1] * *r1.add(j);
                v += s[2] * *r2.add(j);
                v += s[3] * *r3.add(j);
                *y.add(j) = v;
            }
            p += 4;
        }
        while p < k {
            let r0 = b.offset(p as isize * ldb);
            let s0 = alpha * *x.add(p);
            let mut j = 0;
            while j < n4 {
                let a = vfmaq_n_f32(vld1q_f32(y.add(j)), vld1q_f32(r0.add(j)), s0);
                vst1q_f32(y.add(j), a);
                j += 4;
            }
            for j in n4..n {
                *y.add(j) += s0 * *r0.add(j);
            }
            p += 1;
        }
    }
}

/// B columns contiguous: one dot product per column, four columns at a time with two
/// accumulators each (eight independent FMA chains cover the FMA latency on two pipes).
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_cols(
    k: usize,
    n: usize,
    alpha: f32,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    beta: f32,
    y: *mut f32,
) {
    // SAFETY (whole body): as in gemv_rows; column j is b[j*ldb .. j*ldb + k], and vector
    // loads cover p..p+8 with p + 8 <= k8 <= k.
    unsafe {
        let k8 = k & !7;
        let finish = |j: usize, dot: f32| {
            let p = y.add(j);
            *p = if beta == 0.0 {
                alpha * dot
            } else {
                alpha * dot + beta * *p
            };
        };
        let mut j = 0;
        while j + 4 <= n {
            let c: [*const f32; 4] = core::array::from_fn(|q| b.offset((j + q) as isize * ldb));
            let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
            let mut p = 0;
            while p < k8 {
                let xa = vld1q_f32(x.add(p));
                let xb = vld1q_f32(x.add(p + 4));
                for q in 0..4 {
                    acc[q][0] = vfmaq_f32(acc[q][0], vld1q_f32(c[q].add(p)), xa);
                    acc[q][1] = vfmaq_f32(acc[q][1], vld1q_f32(c[q].add(p + 4)), xb);
                }
                p += 8;
            }
            for q in 0..4 {
                let mut dot = vaddvq_f32(vaddq_f32(acc[q][0], acc[q][1]));
                for pp in k8..k {
                    dot += *x.add(pp) * *c[q].add(pp);
                }
                finish(j + q, dot);
            }
            j += 4;
        }
        while j < n {
            let c = b.offset(j as isize * ldb);
            let mut a0 = vdupq_n_f32(0.0);
            let mut a1 = vdupq_n_f32(0.0);
            let mut p = 0;
            while p < k8 {
                a0 = vfmaq_f32(a0, vld1q_f32(c.add(p)), vld1q_f32(x.add(p)));
                a1 = vfmaq_f32(a1, vld1q_f32(c.add(p + 4)), vld1q_f32(x.add(p + 4)));
                p += 8;
            }
            let mut dot = vaddvq_f32(vaddq_f32(a0, a1));
            for pp in k8..k {
                dot += *x.add(pp) * *c.add(pp);
            }
            finish(j, dot);
            j += 1;
        }
    }
}

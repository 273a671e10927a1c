//! x86-64 kernels: the assembly micro-kernels in `asm/x86_64/` and the AVX2+FMA vector-matrix
//! (m = 1) path, which is bound by memory bandwidth, so 256-bit vectors serve every ISA here.

use super::f32::SgemmArgs;
use core::arch::x86_64::*;

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

asm_kernels!(SgemmArgs: sgemm_avx512f_14x32, sgemm_avx512f_14x16, sgemm_avx2_fma_6x16);
asm_kernels!(
    super::f32::SconvArgs: sconv_avx512f_14x32,
    sconv_avx512f_14x16,
    sconv_avx512f_14x24
);
asm_kernels!(
    super::int8::QgemmArgs: qgemm_u8i8_avx512vnni_14x32,
    qgemm_u8i8_avx512vnni_14x16,
    qgemm_i16_avx2_6x16
);

/// y = α·xᵀB + β·y with AVX2 + FMA (see [`super::f32::GemvFn`]).
///
/// # Safety
/// The GemvFn contract, and the CPU must have AVX2 and FMA (the kernel table only pairs this
/// with kernels that require them).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemv_avx2_fma(
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
    // SAFETY: forwarded contract; AVX2+FMA present (see above).
    unsafe {
        if cols {
            gemv_cols(k, n, alpha, x, b, ldb, beta, y)
        } else {
            gemv_rows(k, n, alpha, x, b, ldb, beta, y)
        }
    }
}

/// How far ahead (bytes of B's rows) [`gemv_rows`] prefetches B, into L2 (`prefetcht2`).
/// Large B (MobileNet-v2's 5 MB classifier) arrives from DRAM or far L3 after the rest of
/// the model has passed through the caches, and the hardware prefetchers alone stop at
/// page boundaries and stay too close (measured on Zen 4, 1280×1000 with caches flushed:
/// 235 → 125 µs at 32 KB; 16 KB to 128 KB about the same; into L1 (`prefetcht0`) 185 µs).
const PREFETCH_BYTES: usize = 32 << 10;

/// B rows contiguous: y ← β·y, then y += Σₚ (α·xₚ)·B[p, :] four rows at a time, so B is read
/// as four sequential streams and y (kept in L1) is loaded and stored once per four rows.
#[target_feature(enable = "avx2,fma")]
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
    // (GemvFn contract); every access below stays inside those ranges.
    unsafe {
        // y ← β·y (β = 0 writes zeros without reading y).
        for j in 0..n {
            let p = y.add(j);
            *p = if beta == 0.0 { 0.0 } else { beta * *p };
        }
        let n8 = n & !7;
        // The rows of B (n values each, ldb apart) PREFETCH_BYTES ahead.
        let ahead_rows = (PREFETCH_BYTES / (4 * n.max(1))).max(4) as isize;
        let mut p = 0;
        while p + 4 <= k {
            let r0 = b.offset(p as isize * ldb);
            let r1 = r0.offset(ldb);
            let r2 = r1.offset(ldb);
            let r3 = r2.offset(ldb);
            let (s0, s1, s2, s3) = (
                alpha * *x.add(p),
                alpha * *x.add(p + 1),
                alpha * *x.add(p + 2),
                alpha * *x.add(p + 3),
            );
            let (x0, x1, x2, x3) = (
                _mm256_set1_ps(s0),
                _mm256_set1_ps(s1),
                _mm256_set1_ps(s2),
                _mm256_set1_ps(s3),
            );
            // The rows ahead_rows below, one line of each per 16 columns.
            // (Wrapping: the addresses past B's end are only prefetched, never read.)
            let ahead = r0.wrapping_offset(ahead_rows * ldb);
            let mut j = 0;
            while j + 16 <= n8 {
                for q in 0..4 {
                    let a = ahead.wrapping_offset(q * ldb).wrapping_add(j);
                    _mm_prefetch::<_MM_HINT_T2>(a as *const i8);
                }
                let mut y0 = _mm256_loadu_ps(y.add(j));
                let mut y1 = _mm256_loadu_ps(y.add(j + 8));
                y0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0.add(j)), y0);
                y1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0.add(j + 8)), y1);
                y0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1.add(j)), y0);
                y1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1.add(j + 8)), y1);
                y0 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(r2.add(j)), y0);
                y1 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(r2.add(j + 8)), y1);
                y0 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(r3.add(j)), y0);
                y1 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(r3.add(j + 8)), y1);
                _mm256_storeu_ps(y.add(j), y0);
                _mm256_storeu_ps(y.add(j + 8), y1);
                j += 16;
            }
            while j < n8 {
                let mut y0 = _mm256_loadu_ps(y.add(j));
                y0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0.add(j)), y0);
                y0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1.add(j)), y0);
                y0 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(r2.add(j)), y0);
                y0 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(r3.add(j)), y0);
                _mm256_storeu_ps(y.add(j), y0);
                j += 8;
            }
            for j in n8..n {
                let mut v = *y.add(j);
                v = fmadd(s0, *r0.add(j), v);
                v = fmadd(s1, *r1.add(j), v);
                v = fmadd(s2, *r2.add(j), v);
                v = fmadd(s3, *r3.add(j), v);
                *y.add(j) = v;
            }
            p += 4;
        }
        while p < k {
            let r0 = b.offset(p as isize * ldb);
            let s0 = alpha * *x.add(p);
            let x0 = _mm256_set1_ps(s0);
            let mut j = 0;
            while j < n8 {
                let y0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0.add(j)), _mm256_loadu_ps(y.add(j)));
                _mm256_storeu_ps(y.add(j), y0);
                j += 8;
            }
            for j in n8..n {
                *y.add(j) = fmadd(s0, *r0.add(j), *y.add(j));
            }
            p += 1;
        }
    }
}

/// B columns contiguous: one dot product per column, four columns at a time with two
/// accumulators each (eight independent FMA chains hide the FMA latency).
#[target_feature(enable = "avx2,fma")]
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
    // SAFETY (whole body): as in gemv_rows; column j is b[j*ldb .. j*ldb + k].
    unsafe {
        let k16 = k & !15;
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
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            let mut p = 0;
            while p < k16 {
                let xa = _mm256_loadu_ps(x.add(p));
                let xb = _mm256_loadu_ps(x.add(p + 8));
                for q in 0..4 {
                    acc[q][0] = _mm256_fmadd_ps(_mm256_loadu_ps(c[q].add(p)), xa, acc[q][0]);
                    acc[q][1] = _mm256_fmadd_ps(_mm256_loadu_ps(c[q].add(p + 8)), xb, acc[q][1]);
                }
                p += 16;
            }
            for q in 0..4 {
                let mut dot = hsum(_mm256_add_ps(acc[q][0], acc[q][1]));
                for pp in k16..k {
                    dot = fmadd(*x.add(pp), *c[q].add(pp), dot);
                }
                finish(j + q, dot);
            }
            j += 4;
        }
        while j < n {
            let c = b.offset(j as isize * ldb);
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut p = 0;
            while p < k16 {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(c.add(p)), _mm256_loadu_ps(x.add(p)), a0);
                a1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(c.add(p + 8)),
                    _mm256_loadu_ps(x.add(p + 8)),
                    a1,
                );
                p += 16;
            }
            let mut dot = hsum(_mm256_add_ps(a0, a1));
            for pp in k16..k {
                dot = fmadd(*x.add(pp), *c.add(pp), dot);
            }
            finish(j, dot);
            j += 1;
        }
    }
}

/// Horizontal sum of 8 lanes.
///
/// # Safety
/// AVX2 (the `unsafe` block is for Rust 1.85, where intrinsics are unsafe to call).
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(unused_unsafe)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX2 (caller); register operations only.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// Scalar a·b + c with one rounding.
///
/// # Safety
/// FMA (the `unsafe` block is for Rust 1.85).
#[target_feature(enable = "fma")]
#[inline]
#[allow(unused_unsafe)]
unsafe fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    // SAFETY: FMA (caller); register operations only.
    unsafe { _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c))) }
}

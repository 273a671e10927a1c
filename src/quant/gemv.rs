//! The int8 m = 1 path: y = a·B for one activation row and a row-major B, without packing
//! B (which would cost more than the product itself: each element of B is used once).
//!
//! Four rows of B at a time are byte- and word-interleaved in registers so that each dword
//! holds one column's four k values, which is the layout `vpdpbusd` multiplies against the
//! broadcast four bytes of `a'`. The interleave leaves the columns in an order scrambled by
//! 128-bit lane; the accumulators are unscrambled once at the end. Column sums (for A's
//! zero point) come from `vpdpbusd` against ones. AVX-512 VNNI only; other CPUs use the
//! blocked driver.

#![allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)

use super::requant::{requantize_avx512, RqPlan};
use crate::gemm::raw::Raw;
use core::arch::x86_64::*;

/// The output of one call of the m = 1 path.
#[derive(Clone, Copy)]
pub(crate) enum GemvOut<'a> {
    I32(*mut i32),
    /// One byte per element; column j is output channel `col0 + j`.
    Requant {
        out: *mut u8,
        plan: RqPlan<'a>,
        col0: usize,
    },
}

/// y[j] = Σₚ a'[p]·B[p, j] − za'·Σₚ B[p, j] + off[j] for j < n, where `a` holds a' (u8,
/// already shifted to the format) for p < k, and `off[j]` (n values) carries the remaining
/// zero-point, bias and k·za'·zb terms.
///
/// # Safety
/// AVX-512F/BW/VNNI; `a` has k bytes (k > 0); `b` names only in-bounds elements with unit
/// column stride; `off` has n values; the output has n writable elements (contiguous).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn qgemv_vnni(a: &[u8], b: Raw<i8>, za: i32, off: &[i32], out: GemvOut) {
    let (k, n) = (b.rows, b.cols);
    let groups = k.div_ceil(4);
    let ones = _mm512_set1_epi8(1);
    let mut j0 = 0;
    while j0 < n {
        let cols = (n - j0).min(64);
        let mask: __mmask64 = if cols == 64 { !0 } else { (1u64 << cols) - 1 };
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut sum = [_mm512_setzero_si512(); 4];
        for q in 0..groups {
            // The group's four bytes of a' (zeros past k).
            let mut g = [0u8; 4];
            for (t, x) in g.iter_mut().enumerate() {
                *x = a.get(4 * q + t).copied().unwrap_or(0);
            }
            let av = _mm512_set1_epi32(i32::from_le_bytes(g));
            // SAFETY: rows < k only, masked to columns < n: inside B.
            let row = |t: usize| -> __m512i {
                let p = 4 * q + t;
                if p < k {
                    unsafe { _mm512_maskz_loadu_epi8(mask, b.at(p, j0) as *const i8) }
                } else {
                    _mm512_setzero_si512()
                }
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let lo01 = _mm512_unpacklo_epi8(r0, r1);
            let hi01 = _mm512_unpackhi_epi8(r0, r1);
            let lo23 = _mm512_unpacklo_epi8(r2, r3);
            let hi23 = _mm512_unpackhi_epi8(r2, r3);
            let z = [
                _mm512_unpacklo_epi16(lo01, lo23),
                _mm512_unpackhi_epi16(lo01, lo23),
                _mm512_unpacklo_epi16(hi01, hi23),
                _mm512_unpackhi_epi16(hi01, hi23),
            ];
            for l in 0..4 {
                acc[l] = _mm512_dpbusd_epi32(acc[l], av, z[l]);
                sum[l] = _mm512_dpbusd_epi32(sum[l], ones, z[l]);
            }
        }
        // Unscramble: z[l] lane c holds columns 16c + 4l .. 16c + 4l + 3.
        let unscramble = |z: [__m512i; 4]| -> [__m512i; 4] {
            let a = _mm512_shuffle_i32x4::<0b01_00_01_00>(z[0], z[1]);
            let b = _mm512_shuffle_i32x4::<0b01_00_01_00>(z[2], z[3]);
            let c = _mm512_shuffle_i32x4::<0b11_10_11_10>(z[0], z[1]);
            let d = _mm512_shuffle_i32x4::<0b11_10_11_10>(z[2], z[3]);
            [
                _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
                _mm512_shuffle_i32x4::<0b10_00_10_00>(c, d),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(c, d),
            ]
        };
        let (acc, sum) = (unscramble(acc), unscramble(sum));
        let mut vals = [0i32; 64];
        let zav = _mm512_set1_epi32(za);
        for l in 0..4 {
            // y = Σa'b − za'·Σb + off
            let v = _mm512_sub_epi32(acc[l], _mm512_mullo_epi32(sum[l], zav));
            // SAFETY: 16 i32 into vals[16l..].
            unsafe { _mm512_storeu_si512(vals.as_mut_ptr().add(16 * l) as *mut __m512i, v) };
        }
        for (j, v) in vals.iter_mut().enumerate().take(cols) {
            *v = v.wrapping_add(off[j0 + j]);
        }
        // SAFETY: columns j0..j0+cols of the output exist (caller).
        unsafe {
            match out {
                GemvOut::I32(y) => core::ptr::copy_nonoverlapping(vals.as_ptr(), y.add(j0), cols),
                GemvOut::Requant { out, plan, col0 } => requantize_avx512(
                    vals.as_ptr(),
                    64,
                    1,
                    cols,
                    &plan,
                    col0 + j0,
                    out.add(j0),
                    0,
                    1,
                ),
            }
        }
        j0 += 64;
    }
}

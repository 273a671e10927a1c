//! The output stage: an i32 tile (bias and zero-point terms already added by the kernel)
//! requantized the TFLite way, as `reference::requantize` defines it, into i8 or u8.
//! Vectorized with AVX2 on x86-64 (checked lane by lane against the scalar reference in
//! the tests), scalar elsewhere.

use crate::reference::multiply_by_quantized_multiplier;

/// Fixed-point scale, per tensor or per output channel (= per column of C).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mults<'a> {
    PerTensor {
        multiplier: i32,
        shift: i32,
    },
    PerChannel {
        multipliers: &'a [i32],
        shifts: &'a [i32],
    },
}

/// Validated requantization of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RqPlan<'a> {
    pub mults: Mults<'a>,
    pub out_zp: i32,
    /// Clamp bounds, already inside the output type's range.
    pub lo: i32,
    pub hi: i32,
    /// No channel has a left shift (shift > 0): the vector path skips that step.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub no_left_shift: bool,
}

impl RqPlan<'_> {
    #[inline]
    fn scale(&self, col: usize) -> (i32, i32) {
        match self.mults {
            Mults::PerTensor { multiplier, shift } => (multiplier, shift),
            Mults::PerChannel {
                multipliers,
                shifts,
            } => (multipliers[col], shifts[col]),
        }
    }

    /// The output value of accumulator `v` in column `col`.
    #[inline]
    pub fn one(&self, v: i32, col: usize) -> i32 {
        let (m, s) = self.scale(col);
        multiply_by_quantized_multiplier(v, m, s)
            .wrapping_add(self.out_zp)
            .clamp(self.lo, self.hi)
    }
}

/// An output stage: requantizes the h×w tile at `tile` (row stride `ts` elements) into
/// `out` (one byte per element: i8 or u8 bit patterns), element (i, j) at
/// `out + i*out_rs + j*out_cs`; column j is output channel `col0 + j`.
///
/// # Safety (for callers)
/// The tile's h×w elements readable; the output's h×w bytes writable; per-channel slices
/// cover columns `col0..col0 + w`; the CPU has the implementation's ISA.
pub(crate) type RequantFn = unsafe fn(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
);

/// The portable output stage.
///
/// # Safety
/// The [`RequantFn`] contract.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_scalar(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    // SAFETY: forwarded.
    unsafe { scalar_cols(tile, ts, h, 0, w, plan, col0, out, out_rs, out_cs) }
}

/// Columns j0..w of the tile, one value at a time.
///
/// # Safety
/// The [`RequantFn`] contract.
#[allow(clippy::too_many_arguments)]
unsafe fn scalar_cols(
    tile: *const i32,
    ts: usize,
    h: usize,
    j0: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    for i in 0..h {
        for j in j0..w {
            // SAFETY: (i, j) inside the tile and the output (caller).
            unsafe {
                let v = *tile.add(i * ts + j);
                *out.offset(i as isize * out_rs + j as isize * out_cs) =
                    plan.one(v, col0 + j) as u8;
            }
        }
    }
}

/// The AVX2 output stage: 16 columns at a time, the rest scalar.
///
/// # Safety
/// The [`RequantFn`] contract; AVX2.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_avx2(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    let j_vec = if out_cs == 1 { w - w % 16 } else { 0 };
    // SAFETY: AVX2 (caller); the first j_vec columns of every row are in range.
    unsafe {
        if j_vec > 0 {
            x86::requantize_rows(tile, ts, h, j_vec, plan, col0, out, out_rs);
        }
        scalar_cols(tile, ts, h, j_vec, w, plan, col0, out, out_rs, out_cs);
    }
}

/// The AVX-512 output stage (unit-stride output; other layouts go scalar).
///
/// # Safety
/// The [`RequantFn`] contract; AVX-512F/BW.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_avx512(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    // SAFETY: AVX-512F/BW (caller); ranges as the contract states.
    unsafe {
        if out_cs == 1 {
            x86_512::requantize_rows(tile, ts, h, w, plan, col0, out, out_rs);
        } else {
            scalar_cols(tile, ts, h, 0, w, plan, col0, out, out_rs, out_cs);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Mults, RqPlan};
    use core::arch::x86_64::*;

    /// Eight lanes of `reference::multiply_by_quantized_multiplier` (see there).
    ///
    /// # Safety
    /// AVX2 (an `unsafe fn`, not a safe target-feature function: the MSRV is 1.85).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(unused_unsafe)]
    pub(crate) unsafe fn mbqm(x: __m256i, m: __m256i, shift: __m256i, left: bool) -> __m256i {
        // SAFETY: AVX2 (caller); register operations only.
        unsafe {
            let zero = _mm256_setzero_si256();
            let x = if left {
                _mm256_sllv_epi32(x, _mm256_max_epi32(shift, zero))
            } else {
                x
            };
            // SaturatingRoundingDoublingHighMul = (x·m + 2^30) >> 31 (for either sign: the
            // truncating division of the nudged product equals this floor), bits 31..62 of the
            // 64-bit sum; only x = m = i32::MIN overflows, to i32::MAX.
            let nudge = _mm256_set1_epi64x(1 << 30);
            let even = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
            let odd = _mm256_add_epi64(
                _mm256_mul_epi32(_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(m)),
                nudge,
            );
            let even = _mm256_srli_epi64::<31>(even); // result in the low dword
            let odd = _mm256_slli_epi64::<1>(odd); // result in the high dword
            let mut r = _mm256_blend_epi32::<0b1010_1010>(even, odd);
            let min = _mm256_set1_epi32(i32::MIN);
            let sat = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
            r = _mm256_blendv_epi8(r, _mm256_set1_epi32(i32::MAX), sat);
            // RoundingDivideByPOT by e = max(−shift, 0).
            let e = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
            let one = _mm256_set1_epi32(1);
            let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, e), one);
            let rem = _mm256_and_si256(r, mask);
            let thr = _mm256_sub_epi32(_mm256_srli_epi32::<1>(mask), _mm256_srai_epi32::<31>(r));
            _mm256_sub_epi32(_mm256_srav_epi32(r, e), _mm256_cmpgt_epi32(rem, thr))
        }
    }

    /// Rows of `cols` (a multiple of 16) columns, 16 at a time, stored as 16 bytes.
    ///
    /// # Safety
    /// AVX2; the tile's h×cols i32 readable, the output's h rows of cols bytes writable,
    /// per-channel slices cover `col0..col0 + cols`.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn requantize_rows(
        tile: *const i32,
        ts: usize,
        h: usize,
        cols: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
    ) {
        let unsigned_out = plan.lo >= 0 && plan.hi > 127;
        let left = !plan.no_left_shift;
        // SAFETY (whole body): AVX2 (caller); loads/stores stay inside the ranges stated
        // above.
        unsafe {
            let zp = _mm256_set1_epi32(plan.out_zp);
            let lo = _mm256_set1_epi32(plan.lo);
            let hi = _mm256_set1_epi32(plan.hi);
            for j in (0..cols).step_by(16) {
                let (m0, m1, s0, s1) = match plan.mults {
                    Mults::PerTensor { multiplier, shift } => {
                        let (m, s) = (_mm256_set1_epi32(multiplier), _mm256_set1_epi32(shift));
                        (m, m, s, s)
                    }
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    } => {
                        let (mp, sp) = (
                            multipliers.as_ptr().add(col0 + j),
                            shifts.as_ptr().add(col0 + j),
                        );
                        (
                            _mm256_loadu_si256(mp as *const __m256i),
                            _mm256_loadu_si256(mp.add(8) as *const __m256i),
                            _mm256_loadu_si256(sp as *const __m256i),
                            _mm256_loadu_si256(sp.add(8) as *const __m256i),
                        )
                    }
                };
                for i in 0..h {
                    let t = tile.add(i * ts + j);
                    let v0 = mbqm(_mm256_loadu_si256(t as *const __m256i), m0, s0, left);
                    let v1 = mbqm(_mm256_loadu_si256(t.add(8) as *const __m256i), m1, s1, left);
                    let v0 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v0, zp), lo), hi);
                    let v1 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v1, zp), lo), hi);
                    // Pack 16 i32 (already in the byte range) to 16 bytes, in order.
                    let w16 = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(v0, v1));
                    let b = if unsigned_out {
                        _mm256_packus_epi16(w16, w16)
                    } else {
                        _mm256_packs_epi16(w16, w16)
                    };
                    let b = _mm256_permute4x64_epi64::<0x08>(b);
                    _mm_storeu_si128(
                        out.offset(i as isize * out_rs).add(j) as *mut __m128i,
                        _mm256_castsi256_si128(b),
                    );
                }
            }
        }
    }
}

/// The AVX-512 output stage: 16 lanes per operation, the per-channel constants of a block
/// of 16 columns computed once for all its rows, masked byte stores for the last columns.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
pub(crate) mod x86_512 {
    use super::{Mults, RqPlan};
    use core::arch::x86_64::*;

    /// Per-channel constants of one 16-column block.
    #[derive(Clone, Copy)]
    pub(crate) struct Consts {
        m: __m512i,
        m_odd: __m512i,
        left: __m512i,
        e: __m512i,
        mask: __m512i,
        half: __m512i,
        /// Some lane's multiplier is i32::MIN (the one saturating case is possible).
        sat: bool,
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn consts(m: __m512i, shift: __m512i) -> Consts {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi32(1);
        let e = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
        Consts {
            m,
            m_odd: _mm512_srli_epi64::<32>(m),
            left: _mm512_max_epi32(shift, zero),
            e,
            mask,
            half: _mm512_srli_epi32::<1>(mask),
            sat: _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(i32::MIN)) != 0,
        }
    }

    /// Sixteen lanes of `reference::multiply_by_quantized_multiplier`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn mbqm(x: __m512i, c: &Consts, left: bool) -> __m512i {
        let x = if left {
            _mm512_sllv_epi32(x, c.left)
        } else {
            x
        };
        let nudge = _mm512_set1_epi64(1 << 30);
        // (x·m + 2^30) >> 31 per 64-bit product: even lanes keep bits 31..62 in the low
        // dword (shift right 31), odd lanes in the high dword (shift left 1).
        let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, c.m), nudge));
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), c.m_odd),
            nudge,
        ));
        let mut r = _mm512_mask_blend_epi32(0xAAAA, even, odd);
        if c.sat {
            let min = _mm512_set1_epi32(i32::MIN);
            let k = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(c.m, min);
            r = _mm512_mask_mov_epi32(r, k, _mm512_set1_epi32(i32::MAX));
        }
        // RoundingDivideByPOT: (r >> e) + (r & mask > mask/2 + (r < 0)).
        let rem = _mm512_and_si512(r, c.mask);
        let thr = _mm512_sub_epi32(c.half, _mm512_srai_epi32::<31>(r));
        let up = _mm512_cmpgt_epi32_mask(rem, thr);
        let q = _mm512_srav_epi32(r, c.e);
        _mm512_mask_add_epi32(q, up, q, _mm512_set1_epi32(1))
    }

    /// All rows, 16 columns at a time (the last block masked).
    ///
    /// # Safety
    /// AVX-512F/BW; the tile's h×cols i32 readable; the output's h rows of cols bytes
    /// writable; per-channel slices cover `col0..col0 + cols`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn requantize_rows(
        tile: *const i32,
        ts: usize,
        h: usize,
        cols: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
    ) {
        let zp = _mm512_set1_epi32(plan.out_zp);
        let lo = _mm512_set1_epi32(plan.lo);
        let hi = _mm512_set1_epi32(plan.hi);
        let left = !plan.no_left_shift;
        // SAFETY (whole body): masked loads/stores stay inside the ranges stated above.
        unsafe {
            for j in (0..cols).step_by(16) {
                let w = (cols - j).min(16);
                let mask: __mmask16 = if w == 16 { !0 } else { (1u16 << w) - 1 };
                let c = match plan.mults {
                    Mults::PerTensor { multiplier, shift } => {
                        consts(_mm512_set1_epi32(multiplier), _mm512_set1_epi32(shift))
                    }
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    } => consts(
                        _mm512_maskz_loadu_epi32(mask, multipliers.as_ptr().add(col0 + j)),
                        _mm512_maskz_loadu_epi32(mask, shifts.as_ptr().add(col0 + j)),
                    ),
                };
                for i in 0..h {
                    let x = _mm512_maskz_loadu_epi32(mask, tile.add(i * ts + j));
                    let v = mbqm(x, &c, left);
                    let v = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zp), lo), hi);
                    // Values are within the byte range: truncating to bytes keeps them.
                    _mm512_mask_cvtepi32_storeu_epi8(
                        out.offset(i as isize * out_rs).add(j) as *mut i8,
                        mask,
                        v,
                    );
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64", feature = "std"))]
mod tests {
    use super::*;
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::x86_64::*;

    /// The vector MultiplyByQuantizedMultiplier agrees with the scalar reference in every
    /// lane, over extreme and random inputs, all shifts −31..=30, and edge multipliers.
    #[test]
    fn mbqm_lane_by_lane() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            std::println!("SKIPPED mbqm_lane_by_lane: this CPU lacks avx2");
            return;
        }
        let mut xs = std::vec![
            0,
            1,
            -1,
            2,
            -2,
            3,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
            12345,
            -12345,
            0x4000_0001,
            -0x4000_0001
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            xs.push(seed as i32 >> (seed >> 59));
        }
        let mults = [
            0,
            1,
            i32::MAX,
            i32::MIN,
            1 << 30,
            (1 << 30) + 1,
            1_077_952_569,
            -1_610_612_736,
            2_000_000_000,
        ];
        for &m in &mults {
            for shift in -31..=30 {
                for chunk in xs.chunks(8) {
                    let mut lane = [0i32; 8];
                    lane[..chunk.len()].copy_from_slice(chunk);
                    let mut got = [0i32; 8];
                    // SAFETY: AVX2 checked above; arrays of 8 i32.
                    unsafe {
                        let x = _mm256_loadu_si256(lane.as_ptr() as *const __m256i);
                        let r = x86::mbqm(x, _mm256_set1_epi32(m), _mm256_set1_epi32(shift), true);
                        _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, r);
                        if shift <= 0 {
                            let r2 =
                                x86::mbqm(x, _mm256_set1_epi32(m), _mm256_set1_epi32(shift), false);
                            let mut got2 = [0i32; 8];
                            _mm256_storeu_si256(got2.as_mut_ptr() as *mut __m256i, r2);
                            assert_eq!(got, got2);
                        }
                    }
                    for (l, &x) in lane.iter().enumerate() {
                        assert_eq!(got[l], scalar(x, m, shift), "x={x} m={m} shift={shift}");
                    }
                    #[cfg(edgemm_avx512_intrinsics)]
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        check_512(&lane, m, shift);
                    }
                }
            }
        }
    }
}

/// The AVX-512 MultiplyByQuantizedMultiplier against the scalar reference, lane by lane
/// (16 lanes: the 8 given twice, the second half with the multiplier's neighbour so lanes
/// really differ).
#[cfg(all(
    test,
    target_arch = "x86_64",
    feature = "std",
    edgemm_avx512_intrinsics
))]
#[allow(clippy::incompatible_msrv)]
fn check_512(lane: &[i32; 8], m: i32, shift: i32) {
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::x86_64::*;
    let mut xs = [0i32; 16];
    xs[..8].copy_from_slice(lane);
    xs[8..].copy_from_slice(lane);
    let mut ms = [m; 16];
    for v in &mut ms[8..] {
        *v = m.wrapping_add(1);
    }
    let mut got = [0i32; 16];
    // SAFETY: AVX-512F checked by the caller; arrays of 16 i32.
    unsafe {
        let c = x86_512::consts(
            _mm512_loadu_si512(ms.as_ptr() as *const __m512i),
            _mm512_set1_epi32(shift),
        );
        let x = _mm512_loadu_si512(xs.as_ptr() as *const __m512i);
        _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, x86_512::mbqm(x, &c, true));
        if shift <= 0 {
            let mut got2 = [0i32; 16];
            _mm512_storeu_si512(
                got2.as_mut_ptr() as *mut __m512i,
                x86_512::mbqm(x, &c, false),
            );
            assert_eq!(got, got2);
        }
    }
    for l in 0..16 {
        assert_eq!(
            got[l],
            scalar(xs[l], ms[l], shift),
            "x={} m={} shift={shift}",
            xs[l],
            ms[l]
        );
    }
}

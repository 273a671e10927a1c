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

/// Requantizes the h×w tile at `tile` (row stride `ts` elements) into `out` (one byte per
/// element: i8 or u8 bit patterns), element (i, j) at `out + i*out_rs + j*out_cs`; column j
/// is output channel `col0 + j`.
///
/// # Safety
/// The tile's h×w elements readable; the output's h×w bytes writable; per-channel slices
/// cover columns `col0..col0 + w`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_tile(
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
    let mut j_vec = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if out_cs == 1
            && crate::arch::cpu_info()
                .features
                .contains(crate::arch::Features::AVX2)
        {
            j_vec = w - w % 16;
            if j_vec > 0 {
                // SAFETY: AVX2 present; the first j_vec columns of every row are in range.
                unsafe { x86::requantize_rows(tile, ts, h, j_vec, plan, col0, out, out_rs) };
            }
        }
    }
    for i in 0..h {
        for j in j_vec..w {
            // SAFETY: (i, j) inside the tile and the output (caller).
            unsafe {
                let v = *tile.add(i * ts + j);
                *out.offset(i as isize * out_rs + j as isize * out_cs) =
                    plan.one(v, col0 + j) as u8;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Mults, RqPlan};
    use core::arch::x86_64::*;

    /// Eight lanes of `reference::multiply_by_quantized_multiplier` (see there).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn mbqm(x: __m256i, m: __m256i, shift: __m256i, left: bool) -> __m256i {
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
        let zp = _mm256_set1_epi32(plan.out_zp);
        let lo = _mm256_set1_epi32(plan.lo);
        let hi = _mm256_set1_epi32(plan.hi);
        let unsigned_out = plan.lo >= 0 && plan.hi > 127;
        let left = !plan.no_left_shift;
        // SAFETY (whole body): loads/stores stay inside the ranges stated above.
        unsafe {
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
                }
            }
        }
    }
}

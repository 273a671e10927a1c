//! gemmlowp's fixed-point arithmetic as TFLite's integer kernels use it (no_std, no alloc),
//! on plain `i32`/`i16` raw values: a `FixedPoint<i32, N>` is an `i32` holding
//! `value·2^(31−N)`, so Q0.31 ("F0") is `[-1, 1)`.
//!
//! - [`exp_on_negative_values`]: `exp(a)` for `a ≤ 0` given in Q`N`.(31−N), result in Q0.31
//!   (a Taylor polynomial on [−1/4, 0) and a barrel of exact `exp(−2^k)` factors);
//! - [`one_over_one_plus_x_for_x_in_0_1`]: `1/(1+x)` by Newton–Raphson, Q0.31 in and out;
//! - [`get_reciprocal`]: TFLite's `GetReciprocal` (the softmax normalizer);
//! - [`saturating_rounding_multiply_by_pot`], [`rescale`]: gemmlowp's `Rescale`;
//! - 16-bit primitives for HARD_SWISH: [`srdhm_i16`], [`sdhm_i16`], [`rdbp_i16`],
//!   [`saturating_left_shift_i16`].
//!
//! Overflow follows what the C++ does in practice (two's complement wrapping) rather than
//! panicking; where gemmlowp saturates, so does this.

use crate::reference::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// `SaturatingRoundingDoublingHighMul` (32-bit): the fixed-point product. (Out of line on
/// a firmware: inlined, it is copied a dozen times into the softmax and the exponential; no
/// hot loop of the Cortex-M4 kernels calls it.)
#[cfg_attr(not(target_os = "none"), inline)]
#[cfg_attr(target_os = "none", inline(never))]
pub(crate) fn srdhm(a: i32, b: i32) -> i32 {
    saturating_rounding_doubling_high_mul(a, b)
}

/// `RoundingDivideByPOT` (32-bit), `exponent` clamped into 0..=31.
#[inline]
pub(crate) fn rdbp(x: i32, exponent: i32) -> i32 {
    rounding_divide_by_pot(x, exponent.clamp(0, 31))
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<exponent>` on a 32-bit raw value: a
/// saturating left shift for `exponent > 0`, a rounding right shift for `exponent < 0`.
#[inline]
pub(crate) fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let e = exponent.min(31) as u32;
        let threshold = ((1i64 << (31 - e)) - 1) as i32;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x.wrapping_shl(e)
        }
    } else if exponent < 0 {
        rdbp(x, -exponent)
    } else {
        x
    }
}

/// gemmlowp's `Rescale<dst>` of a value with `src` integer bits.
#[inline]
pub(crate) fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)
}

/// `RoundingHalfSum` (32-bit): (a + b)/2 rounded half away from zero.
#[inline]
fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// `exp(a)` for `a ∈ [−1/4, 0)`, Q0.31 in and out (Taylor expansion around −1/8).
pub(crate) fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(−1/8)
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(
        srdhm(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    CONSTANT_TERM.wrapping_add(srdhm(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values`: `exp(a)` for `a ≤ 0` held with `integer_bits`
/// integer bits (0..=30), result in Q0.31.
pub(crate) fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let integer_bits = integer_bits.clamp(0, 30);
    let fractional_bits = 31 - integer_bits;
    // Constant 1/4 in the input format: 1 << (fractional_bits − 2) (needs ≥ 2 fraction bits).
    let one_quarter = 1i32.wrapping_shl((fractional_bits - 2).max(0) as u32);
    let mask = one_quarter.wrapping_sub(1);
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(−2^k) in Q0.31 for k = −2..=4.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if integer_bits > exponent {
            let shift = (fractional_bits + exponent) as u32;
            if remainder & 1i32.wrapping_shl(shift) != 0 {
                result = srdhm(result, multiplier);
            }
        }
    }
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits)); // −32 in the input format
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX; // One() of Q0.31
    }
    result
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1/(1+x)` for `x ∈ [0, 1)`, Q0.31 in and
/// out (three Newton–Raphson steps in Q2.29).
pub(crate) fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    const C48_OVER_17: i32 = 1_515_870_810; // Q2.29
    const CNEG32_OVER_17: i32 = -1_010_580_540; // Q2.29
    let half_denominator = rounding_half_sum(a, i32::MAX);
    let mut x = C48_OVER_17.wrapping_add(srdhm(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        x = newton_step(half_denominator, x);
    }
    // ExactMulByPot<−1> (Q2 → Q1, same raw), then Rescale<0>.
    rescale(x, 1, 0)
}

/// One Newton–Raphson step of [`one_over_one_plus_x_for_x_in_0_1`] (Q2.29). Out of line:
/// LLVM unrolls the three steps, so each is a call, not a copy (code size on a
/// microcontroller; once per softmax row).
#[inline(never)]
fn newton_step(half_denominator: i32, x: i32) -> i32 {
    const F2_ONE: i32 = 1 << 29;
    let half_denominator_times_x = srdhm(half_denominator, x);
    let one_minus = F2_ONE.wrapping_sub(half_denominator_times_x);
    x.wrapping_add(rescale(srdhm(x, one_minus), 4, 2))
}

/// TFLite's `GetReciprocal`: the Q0.31 `1/x'` where `x' ∈ [1, 2)` is `x` (with
/// `x_integer_digits` integer bits) shifted left to its leading one; also returns
/// `num_bits_over_unit` (how far that shift scaled it).
pub(crate) fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let num_bits_over_unit = x_integer_digits - headroom_plus_one as i32;
    let shifted_sum_minus_one = (x as u32)
        .checked_shl(headroom_plus_one)
        .unwrap_or(0)
        .wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

/// `SaturatingRoundingDoublingHighMul` (16-bit).
#[inline]
pub(crate) fn srdhm_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's `SaturatingDoublingHighMul` (16-bit): like [`srdhm_i16`] but truncating toward
/// zero (ARM's SQDMULH).
#[inline]
pub(crate) fn sdhm_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

/// `RoundingDivideByPOT` on a 16-bit value, with the C++'s 16-bit mask arithmetic
/// (`exponent` clamped into 0..=31).
#[inline]
pub(crate) fn rdbp_i16(x: i16, exponent: i32) -> i16 {
    let e = exponent.clamp(0, 31) as u32;
    let mask = ((1i64 << e) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1).wrapping_add((x < 0) as i16);
    (((x as i32) >> e) as i16).wrapping_add((remainder > threshold) as i16)
}

/// TFLite's `SaturatingLeftShift` (16-bit): `value·2^amount` saturated to i16.
#[inline]
pub(crate) fn saturating_left_shift_i16(value: i16, amount: i32) -> i16 {
    let r = (value as i64) << amount.clamp(0, 32);
    r.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: f64, integer_bits: i32) -> i32 {
        (x * (1u64 << (31 - integer_bits)) as f64).round() as i32
    }

    fn f(raw: i32, integer_bits: i32) -> f64 {
        raw as f64 / (1u64 << (31 - integer_bits)) as f64
    }

    #[test]
    fn exp_matches_real_exp_closely() {
        for i in 0..=400 {
            let x = -(i as f64) * 0.04; // 0 .. −16
            let got = f(exp_on_negative_values(q(x, 5), 5), 0);
            // The polynomial's truncation error: (1/8)^5/120 ≈ 2.5e-7.
            assert!((got - x.exp()).abs() < 3e-7, "exp({x}) = {got}");
        }
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
    }

    #[test]
    fn exp_exact_values() {
        // Values derived by hand from the algorithm: exp(−1/4) takes the Taylor part at
        // a + 1/4 = 0 (−1/4 exactly) and no barrel factor; exp(−1) is the −1/4 Taylor value
        // times the exp(−1/2) and exp(−1/4) factors.
        let quarter = exp_on_negative_values(-(1 << 24), 5);
        assert_eq!(
            quarter,
            exp_on_interval_between_negative_one_quarter_and_0_excl(-(1 << 29))
        );
        let one = exp_on_negative_values(-(1 << 26), 5);
        assert_eq!(one, srdhm(srdhm(quarter, 1_672_461_947), 1_302_514_674));
        assert!((f(one, 0) - (-1f64).exp()).abs() < 3e-7);
    }

    #[test]
    fn reciprocal() {
        for i in 1..200 {
            let x = i as f64 / 200.0;
            let got = f(one_over_one_plus_x_for_x_in_0_1(q(x, 0)), 0);
            assert!((got - 1.0 / (1.0 + x)).abs() < 4e-9, "1/(1+{x}) = {got}");
        }
        // 1/(1+0) saturates just below 1.
        assert!(one_over_one_plus_x_for_x_in_0_1(0) > i32::MAX - 8);
        // Sum 3.0 in Q12.19: 1/(3/2) = 2/3 with one bit over unit (3 = 1.5·2).
        let (r, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        assert!((f(r, 0) - 2.0 / 3.0).abs() < 4e-9);
    }

    #[test]
    fn pot_and_16_bit_primitives() {
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 29, 2), i32::MAX);
        assert_eq!(
            saturating_rounding_multiply_by_pot(-(1 << 29), 1),
            -(1 << 30)
        );
        assert_eq!(
            saturating_rounding_multiply_by_pot(-(1 << 30) - 5, 1),
            i32::MIN
        );
        assert_eq!(saturating_rounding_multiply_by_pot(3, 2), 12);
        assert_eq!(saturating_rounding_multiply_by_pot(6, -2), 2); // 1.5 → 2
        assert_eq!(saturating_rounding_multiply_by_pot(-6, -2), -2); // −1.5 → −2
        assert_eq!(srdhm_i16(16384, 16384), 8192);
        assert_eq!(srdhm_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(srdhm_i16(3, 16384), 2); // 1.5 rounds away
        assert_eq!(sdhm_i16(3, 16384), 1); // 1.5 truncates
        assert_eq!(sdhm_i16(-3, 16384), -1);
        assert_eq!(rdbp_i16(5, 1), 3);
        assert_eq!(rdbp_i16(-5, 1), -3);
        assert_eq!(rdbp_i16(-4, 1), -2);
        assert_eq!(rdbp_i16(7, 0), 7);
        assert_eq!(saturating_left_shift_i16(300, 7), i16::MAX);
        assert_eq!(saturating_left_shift_i16(-300, 7), i16::MIN);
        assert_eq!(saturating_left_shift_i16(3, 2), 12);
    }
}

//! The oracle: naive, obviously-correct implementations every test compares against.
//! Nothing here is fast, and nothing here is used by the fast paths.

use crate::error::Error;
use crate::matrix::{MatMut, MatRef};

fn check_dims<TA, TB, TC>(a: &MatRef<TA>, b: &MatRef<TB>, c: &MatMut<TC>) -> Result<(), Error> {
    if a.cols() != b.rows() || c.rows() != a.rows() || c.cols() != b.cols() {
        return Err(Error::DimensionMismatch {
            a: (a.rows(), a.cols()),
            b: (b.rows(), b.cols()),
            c: (c.rows(), c.cols()),
        });
    }
    Ok(())
}

/// C ← αAB + βC, accumulated in f64 and rounded once. β = 0 never reads C; α = 0 does not
/// read A or B (BLAS semantics).
pub fn sgemm(
    alpha: f32,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    mut c: MatMut<f32>,
) -> Result<(), Error> {
    check_dims(&a, &b, &c)?;
    for i in 0..c.rows() {
        for j in 0..c.cols() {
            let mut acc = 0f64;
            if alpha != 0.0 {
                for p in 0..a.cols() {
                    acc += a.get(i, p).unwrap_or(0.0) as f64 * b.get(p, j).unwrap_or(0.0) as f64;
                }
            }
            let mut v = alpha as f64 * acc;
            if beta != 0.0 {
                v += beta as f64 * c.get(i, j).unwrap_or(0.0) as f64;
            }
            c.set(i, j, v as f32);
        }
    }
    Ok(())
}

/// The error bound an f32 GEMM result must meet, element by element:
///
/// `|C − C_ref| ≤ (k + 4)·ε·(|α|·Σₚ|a_ip||b_pj| + |β|·|c_ij|) + 2·min_positive`
///
/// A k-term f32 dot product (FMA or separate multiply and add, any summation order) is within
/// `γ_k·Σ|a||b|` of the exact value, `γ_k ≈ k·u` with `u = ε/2`; scaling by α, adding βC and
/// the reference's own final rounding add a few `u` more, and the `min_positive` term
/// covers underflow. `(k + 4)·ε` is that bound with a factor-two margin.
pub fn sgemm_error_bound(
    alpha: f32,
    a: MatRef<f32>,
    b: MatRef<f32>,
    beta: f32,
    c_before: MatRef<f32>,
    i: usize,
    j: usize,
) -> f64 {
    let k = a.cols();
    let mut abs = 0f64;
    for p in 0..k {
        abs += (a.get(i, p).unwrap_or(0.0) as f64 * b.get(p, j).unwrap_or(0.0) as f64).abs();
    }
    let c0 = if beta != 0.0 {
        c_before.get(i, j).unwrap_or(0.0).abs() as f64
    } else {
        0.0
    };
    (k as f64 + 4.0) * f32::EPSILON as f64 * ((alpha as f64).abs() * abs + (beta as f64).abs() * c0)
        + 2.0 * f32::MIN_POSITIVE as f64
}

/// C = Σₚ (A[i,p] − za)(B[p,j] − zb), computed exactly in i64 and wrapped to i32 (callers
/// keep k small enough that the true value fits; `edgemm::qgemm` enforces it).
pub fn qgemm<A: Copy + Into<i32>>(
    a: MatRef<A>,
    a_zero_point: i32,
    b: MatRef<i8>,
    b_zero_point: i32,
    mut c: MatMut<i32>,
) -> Result<(), Error> {
    check_dims(&a, &b, &c)?;
    for i in 0..c.rows() {
        for j in 0..c.cols() {
            let mut acc = 0i64;
            for p in 0..a.cols() {
                let x = a.get(i, p).map_or(0, Into::into) - a_zero_point;
                let y = b.get(p, j).map_or(0, i32::from) - b_zero_point;
                acc += x as i64 * y as i64;
            }
            c.set(i, j, acc as i32);
        }
    }
    Ok(())
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of 2·a·b, rounded to
/// nearest (ties away from zero... as gemmlowp does it: nudge then truncating division),
/// saturating the one overflowing case a = b = i32::MIN.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // i64 `/` truncates toward zero, as C++'s does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: x / 2^exponent rounded to nearest, ties away from zero.
/// `exponent` in 0..=31.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier` (the default, double-rounding form of the
/// reference kernels): `x·2^max(shift,0)` (wrapping, as the C++ does in practice), then
/// [`saturating_rounding_doubling_high_mul`] by `multiplier`, then
/// [`rounding_divide_by_pot`] by `max(−shift, 0)`. `shift` in −31..=30.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left), multiplier),
        right,
    )
}

/// TFLite's `QuantizeMultiplier`: a real scale as `multiplier·2^(shift−31)` with the
/// multiplier in [2^30, 2^31) (or 0 for a zero scale), rounding the mantissa half away from
/// zero; scales below 2^−31 flush to (0, 0). `None` for a scale that is not finite or too
/// large for a shift ≤ 30.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !real.is_finite() {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = round_half_away(q * (1u64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return Some((0, 0));
    }
    if shift > 30 {
        return None;
    }
    Some((q_fixed as i32, shift))
}

/// `round` without std: half away from zero.
fn round_half_away(x: f64) -> f64 {
    let t = x as i64 as f64; // truncation; |x| < 2^32 here
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// C's `frexp` for finite nonzero x: x = q·2^e with 0.5 ≤ |q| < 1.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up by 2^64 first.
        let (q, e) = frexp(x * f64::from_bits(0x43f0_0000_0000_0000));
        return (q, e - 64);
    }
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, exp - 1022)
}

/// One int8 output value the TFLite way: `acc + bias` (wrapping) →
/// [`multiply_by_quantized_multiplier`] → `+ output_zero_point` → clamp to
/// `[clamp_min, clamp_max]` (already within the output type's range).
pub fn requantize(
    acc: i32,
    bias: i32,
    multiplier: i32,
    shift: i32,
    output_zero_point: i32,
    clamp_min: i32,
    clamp_max: i32,
) -> i32 {
    let v = multiply_by_quantized_multiplier(acc.wrapping_add(bias), multiplier, shift);
    v.wrapping_add(output_zero_point)
        .clamp(clamp_min, clamp_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tflite_vectors() {
        // Hand-checked against the definitions: 2^30 is 0.5 in Q31.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(saturating_rounding_doubling_high_mul(100, 1 << 30), 50);
        assert_eq!(saturating_rounding_doubling_high_mul(101, 1 << 30), 51); // 50.5 → 51
        assert_eq!(saturating_rounding_doubling_high_mul(-101, 1 << 30), -50); // −50.5 → −50
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 → 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // −2.5 → −3
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        // 0.5 = 2^30·2^(0−31): multiplier 2^30, shift 0.
        assert_eq!(quantize_multiplier(0.5), Some((1 << 30, 0)));
        assert_eq!(quantize_multiplier(0.25), Some((1 << 30, -1)));
        assert_eq!(quantize_multiplier(1.0), Some((1 << 30, 1)));
        assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
        assert_eq!(quantize_multiplier(1e-12), Some((0, 0)));
        assert_eq!(quantize_multiplier(f64::NAN), None);
        // Mantissa rounding up to 2^31 renormalizes: (1 − 2^−40) → multiplier 2^30, shift 1.
        assert_eq!(quantize_multiplier(1.0 - 1e-12), Some((1 << 30, 1)));
        // Values from Python's math.frexp + round-half-up of q·2^31 (same definition).
        assert_eq!(
            quantize_multiplier(0.003_921_568_6),
            Some((1_077_952_569, -7))
        );
        assert_eq!(quantize_multiplier(0.75), Some((1_610_612_736, 0)));
        assert_eq!(quantize_multiplier(1.5), Some((1_610_612_736, 1)));
        assert_eq!(quantize_multiplier(3e-10), Some((1_383_505_806, -31)));
        // MultiplyByQuantizedMultiplier(1000, 0.5) = 500; with shift −1 → 250; with
        // shift +1 (×2 first) → 1000.
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, 0), 500);
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, -1), 250);
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, 1), 1000);
        assert_eq!(multiply_by_quantized_multiplier(-1001, 1 << 30, -1), -250); // −250.25
        assert_eq!(multiply_by_quantized_multiplier(-1002, 1 << 30, -1), -251); // −250.5
        assert_eq!(requantize(-1002, 2, 1 << 30, -1, 10, -128, 127), -128); // −240 clamped
        assert_eq!(requantize(-102, 2, 1 << 30, -1, 10, -128, 127), -15); // −100·¼ + 10
        assert_eq!(requantize(100_000, 0, 1 << 30, 0, 0, -128, 127), 127);
    }
}

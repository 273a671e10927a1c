//! `sqrt` and `ln` for f32 written with `core` only (it has neither), and `sin(πx)` in f64
//! for the host-side resampler. Each states its error bound; `tests` checks it against std.

/// √x for x ≥ 0 (NaN for x < 0 or NaN, ∞ for ∞).
///
/// An inverse square root estimate from the exponent bits (relative error < 3.5%), three
/// Newton steps y ← y(3 − x y²)/2 (no division; the relative error squares each step:
/// 3.5e-2 → 1.8e-3 → 5e-6 → 4e-11), then √x = x·y. Relative error ≤ 2⁻²² (the f32 roundings
/// of the last step and the product; 1.86e-7 measured), tested below over the whole exponent
/// range.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    if x <= 0.0 || !x.is_finite() {
        // 0 → 0, ∞ → ∞, negative or NaN → NaN.
        return if x == 0.0 || x == f32::INFINITY {
            x
        } else {
            f32::NAN
        };
    }
    // Subnormals: scale by 2^24 (√ of it is exactly 2^12) so the bit estimate holds.
    let (x, scale) = if x < f32::MIN_POSITIVE {
        (x * 16_777_216.0, 1.0 / 4096.0)
    } else {
        (x, 1.0)
    };
    let mut y = f32::from_bits(0x5f37_59df - (x.to_bits() >> 1));
    let half = 0.5 * x;
    for _ in 0..3 {
        y *= 1.5 - half * y * y;
    }
    x * y * scale
}

const LN_2: f32 = core::f32::consts::LN_2;

/// ln x for x > 0 (−∞ for 0, NaN for x < 0 or NaN, ∞ for ∞).
///
/// x = 2^e·m with m in [√½, √2); ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.1716, by
/// its odd series to s⁹ (truncation 2|s|¹¹/11 < 7e-10). Absolute error ≤ 2⁻²³·(1 + |ln x|)
/// (f32 roundings of the series and of e·ln 2), tested below.
#[inline]
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let (x, bias) = if x < f32::MIN_POSITIVE {
        (x * 16_777_216.0, -24)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 23) as i32) - 127 + bias;
    // Mantissa in [1, 2), then moved to [√½, √2).
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > core::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    2.0 * s * series + e as f32 * LN_2
}

/// sin(πx) in f64: reduced to |r| ≤ ½ by whole periods and sin(π(1 − r)) = sin(πr), then a
/// Taylor polynomial to (πr)¹⁹ (truncation < (π/2)²¹/21! < 2e-16). Absolute error ≤ 1e-15
/// for |x| < 2⁴⁰ (the reduction is exact there).
#[cfg(feature = "alloc")]
pub fn sin_pi(x: f64) -> f64 {
    if !x.is_finite() {
        return f64::NAN;
    }
    // r = x − 2·round(x/2) in [−1, 1]; exact, since x − an even integer near x is.
    let mut r = x - 2.0 * round(x * 0.5);
    if r > 0.5 {
        r = 1.0 - r;
    } else if r < -0.5 {
        r = -1.0 - r;
    }
    let t = core::f64::consts::PI * r;
    let t2 = t * t;
    // Horner over the Taylor coefficients (−1)ʲ/(2j+1)!, highest first.
    let mut acc = 0.0;
    for c in SIN_TAYLOR.iter().rev() {
        acc = acc * t2 + c;
    }
    t * acc
}

/// (−1)ʲ/(2j+1)! for j = 0..10.
#[cfg(feature = "alloc")]
const SIN_TAYLOR: [f64; 10] = {
    let mut c = [0.0; 10];
    let mut fact = 1.0;
    let mut j = 0;
    while j < 10 {
        if j > 0 {
            fact *= (2 * j) as f64 * (2 * j + 1) as f64;
        }
        c[j] = if j % 2 == 0 { 1.0 / fact } else { -1.0 / fact };
        j += 1;
    }
    c
};

/// Nearest integer (halves away from zero) of a finite f64 with |x| < 2⁵², without std.
#[cfg(feature = "alloc")]
fn round(x: f64) -> f64 {
    let t = (x.abs() + 0.5) as i64 as f64; // truncation toward zero of |x| + ½
    if x < 0.0 {
        -t
    } else {
        t
    }
}

/// ⌊x⌋ of a finite f64 with |x| < 2⁶³, without std.
#[cfg(feature = "alloc")]
pub(crate) fn floor(x: f64) -> i64 {
    let t = x as i64; // toward zero
    if (t as f64) > x {
        t - 1
    } else {
        t
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// Every exponent, several mantissas each, and subnormals.
    fn sweep() -> impl Iterator<Item = f32> {
        (1u32..0x7f80_0000).step_by(0x1_2345).map(f32::from_bits)
    }

    #[test]
    fn sqrt_bound() {
        for x in sweep() {
            let exact = (x as f64).sqrt();
            let rel = ((sqrt(x) as f64) - exact).abs() / exact;
            assert!(rel <= 2f64.powi(-22), "sqrt({x:e}): rel err {rel:e}");
        }
        assert_eq!(sqrt(0.0), 0.0);
        assert_eq!(sqrt(f32::INFINITY), f32::INFINITY);
        assert!(sqrt(-1.0).is_nan() && sqrt(f32::NAN).is_nan());
    }

    #[test]
    fn ln_bound() {
        for x in sweep() {
            let exact = (x as f64).ln();
            let err = ((ln(x) as f64) - exact).abs();
            assert!(
                err <= 2f64.powi(-23) * (1.0 + exact.abs()),
                "ln({x:e}): err {err:e}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f32::NAN).is_nan());
    }

    #[test]
    fn sin_pi_bound() {
        for i in -40_000..40_000 {
            let x = i as f64 * 0.000_131_3;
            let err = (sin_pi(x) - (std::f64::consts::PI * x).sin()).abs();
            assert!(err <= 1e-14, "sin_pi({x}): err {err:e}");
        }
        assert_eq!(sin_pi(0.0), 0.0);
        assert!(sin_pi(3.0).abs() < 1e-15);
    }
}

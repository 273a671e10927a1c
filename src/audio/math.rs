//! `sqrt` and `ln` for f32 written with `core` only (it has neither), and `sin(πx)` in f64
//! for the host-side resampler. Each states its error bound; `tests` checks it against std.

/// √x, correctly rounded as IEEE 754 requires (NaN for x < 0 or NaN, ∞ for ∞, ±0 for ±0):
/// the FPU's instruction where there is one (VSQRT.F32 on the Cortex-M4F, SQRTSS on
/// x86-64), else [`sqrt_portable`]. All give the same bits, so host and firmware agree.
#[inline]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(edgemm_arm_vfp4)]
    {
        let r: u32;
        // Rust lets asm name FPU registers only with the `vfp2` feature (double precision),
        // which the M4F lacks; so the value goes through a core register and s0 is saved
        // around the instruction.
        // SAFETY: the asm reads one core register, writes one, and leaves s0 and the stack
        // pointer as it found them (VPUSH/VPOP of s0); the target has an FPU with VSQRT
        // (cfg(edgemm_arm_vfp4): an ARMv7E-M hard-float target).
        unsafe {
            core::arch::asm!(
                "vpush {{s0}}",
                "vmov s0, {x}",
                "vsqrt.f32 s0, s0",
                "vmov {r}, s0",
                "vpop {{s0}}",
                x = in(reg) x.to_bits(),
                r = lateout(reg) r,
                options(pure, nomem, preserves_flags),
            );
        }
        f32::from_bits(r)
    }
    #[cfg(all(target_arch = "x86_64", not(edgemm_arm_vfp4)))]
    {
        use core::arch::x86_64::{_mm_cvtss_f32, _mm_set_ss, _mm_sqrt_ss};
        // SAFETY: SSE is part of the x86-64 baseline.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x)))
        }
    }
    #[cfg(not(any(edgemm_arm_vfp4, target_arch = "x86_64")))]
    {
        sqrt_portable(x)
    }
}

/// √x correctly rounded, with `core` only: an f64 estimate (an inverse square root from the
/// exponent bits, four Newton steps: relative error below 2⁻⁴⁸), rounded to f32, then moved
/// by one ulp if the exact square of a rounding midpoint (25 bits, so exact in f64) says the
/// estimate fell on the wrong side of it. (No f32 is a midpoint's square, so no ties.)
pub fn sqrt_portable(x: f32) -> f32 {
    if x <= 0.0 || !x.is_finite() {
        // ±0 → ±0, ∞ → ∞, negative or NaN → NaN.
        return if x == 0.0 || x == f32::INFINITY {
            x
        } else {
            f32::NAN
        };
    }
    // Subnormal f32s are normal f64s.
    let xd = x as f64;
    let mut y = f64::from_bits(0x5fe6_eb50_c7b5_37a9 - (xd.to_bits() >> 1));
    for _ in 0..4 {
        y *= 1.5 - 0.5 * xd * y * y;
    }
    let r = (xd * y) as f32;
    let up = f32::from_bits(r.to_bits() + 1);
    let down = f32::from_bits(r.to_bits() - 1);
    let mid_up = (r as f64 + up as f64) * 0.5;
    let mid_down = (r as f64 + down as f64) * 0.5;
    if mid_up * mid_up < xd {
        up
    } else if mid_down * mid_down > xd {
        down
    } else {
        r
    }
}

/// ln 2 in two parts: `LN2_HI` has 16 significant bits, so e·LN2_HI is exact for any f32
/// exponent e.
const LN2_HI: f32 = 0.693_145_75; // 0x3f31_7200 = 0.693145751953125 exactly
const LN2_LO: f32 = 1.428_606_8e-6;
// asm/thumbv7em/mfcc_log_vfp4.S holds these (and the polynomial's) bits.
const _: () = assert!(LN2_HI.to_bits() == 0x3f31_7200 && LN2_LO.to_bits() == 0x35bf_be8e);

/// ln x for x > 0 (−∞ for 0, NaN for x < 0 or NaN, ∞ for ∞).
///
/// x = 2^e·m with m in [1, 2); the top 5 bits of m pick a table row (build.rs): c ≈ 1/m with
/// 9 significant bits, ln(1/c), and r₀ = m₀c − 1 for the row's first mantissa m₀ (exact).
/// Then r = m·c − 1 = r₀ + (m − m₀)·c (|r| < 0.02; m − m₀ is exact, the product errs by
/// 2⁻²⁹), ln m = ln(1/c) + ln(1 + r) with ln(1 + r) = r − r²/2 + r³/3 − r⁴/4 (truncation
/// < 2⁻³⁰), and ln x = e·ln 2 + ln m, summed small parts first. No division. Absolute error ≤
/// 2⁻²³·(1 + |ln x|) (the roundings of ln(1/c), of the two small sums, and of the last sum,
/// ≤ 2⁻²⁴|ln x|), tested below over the whole range.
#[inline]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    // Positive, normal and finite: the frontend's case (x ≥ 1e-6), one comparison.
    if bits.wrapping_sub(0x0080_0000) >= 0x7f00_0000 {
        return ln_special(x);
    }
    let e = ((bits >> 23) as i32 - 127) as f32;
    let row = &super::tables::LN_ROWS[(bits >> 18) as usize & 31];
    let (c, ln_inv_c, r0) = (row[0], row[1], row[2]);
    // m − m₀: the mantissa's low 18 bits, as 1.x − 1.0 in the same binade.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let m0 = f32::from_bits((bits & 0x007c_0000) | 0x3f80_0000);
    let r = r0 + (m - m0) * c;
    let log1p = r * (1.0 + r * (-0.5 + r * (1.0 / 3.0 + r * -0.25)));
    e * LN2_HI + (e * LN2_LO + (ln_inv_c + log1p))
}

/// [`ln`] of what its table path does not take: zero, negative, subnormal, ∞, NaN.
#[cold]
fn ln_special(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        x
    } else {
        // Subnormal: scaled by 2^24 into the normal range.
        ln(x * 16_777_216.0) - 24.0 * LN2_HI - 24.0 * LN2_LO
    }
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

    /// Both paths equal std's correctly rounded √, bit for bit.
    #[test]
    fn sqrt_is_correctly_rounded() {
        let sweep = (1u32..0x7f80_0000).step_by(0x3f1).map(f32::from_bits);
        // And the squares of f32s and their neighbours: the closest calls.
        let squares = (1u32..1 << 16).flat_map(|i| {
            let s = (1.0 + i as f32 * 2f32.powi(-16)) * (1.0 + i as f32 * 2f32.powi(-16));
            [
                s,
                f32::from_bits(s.to_bits() - 1),
                f32::from_bits(s.to_bits() + 1),
            ]
        });
        for x in sweep.chain(squares) {
            let want = x.sqrt().to_bits();
            assert_eq!(sqrt_portable(x).to_bits(), want, "sqrt_portable({x:e})");
            assert_eq!(sqrt(x).to_bits(), want, "sqrt({x:e})");
        }
        for f in [sqrt, sqrt_portable] {
            assert_eq!(f(0.0).to_bits(), 0);
            assert_eq!(f(-0.0).to_bits(), (-0.0f32).to_bits());
            assert_eq!(f(f32::INFINITY), f32::INFINITY);
            assert!(f(-1.0).is_nan() && f(f32::NAN).is_nan() && f(f32::NEG_INFINITY).is_nan());
        }
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

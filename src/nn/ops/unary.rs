//! Shared plumbing of the one-input, one-output operators (activations, softmax): the
//! input and output bytes, distinct or (in place) the same arena bytes, and the float
//! functions they need without `std` (`exp`, `tanh` in f32 for running, in f64 for building
//! tables on the host).

use super::{cast, cast_mut, checks, OpMem, Pod};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};
use crate::nn::dtype::DType;

/// The input and output of a unary operator: distinct slices, or one slice when the output
/// lives in the input's arena bytes (the operator then reads through the output).
pub(crate) enum Io<'a, 'b> {
    Split(&'a [u8], &'b mut [u8]),
    Shared(&'b mut [u8]),
}

/// Input 0 and output 0 of `op`.
pub(crate) fn io<'a, 'b>(op: &OpView, mem: &'b mut OpMem<'a>) -> Result<Io<'a, 'b>, Error> {
    let (x, y) = match (op.input(0), op.output(0)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(op.error("missing tensor")),
    };
    // Places only: the whole records (names included) are not needed here.
    let (xi, yi) = match (mem.model().place(x), mem.model().place(y)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(op.error("missing tensor")),
    };
    if xi.storage == Storage::Arena && yi.storage == Storage::Arena && xi.offset == yi.offset {
        return Ok(Io::Shared(mem.output(y)?));
    }
    let src = mem.input(x)?;
    Ok(Io::Split(src, mem.output(y)?))
}

/// `dst[i] = f(src[i])`, or `dst[i] = f(dst[i])` when there is no separate source.
pub(crate) fn map_slice<T: Copy>(src: Option<&[T]>, dst: &mut [T], mut f: impl FnMut(T) -> T) {
    match src {
        Some(s) => {
            for (d, &x) in dst.iter_mut().zip(s) {
                *d = f(x);
            }
        }
        None => {
            for d in dst.iter_mut() {
                *d = f(*d);
            }
        }
    }
}

/// Applies `f` to every element.
pub(crate) fn map<T: Pod>(io: Io, f: impl FnMut(T) -> T) {
    match io {
        Io::Split(s, d) => map_slice(Some(cast::<T>(s)), cast_mut::<T>(d), f),
        Io::Shared(d) => map_slice(None, cast_mut::<T>(d), f),
    }
}

/// Calls `f(src_row, dst_row)` for each row of `depth` elements (`src_row` is `None` in
/// place: read `dst_row` before writing it).
pub(crate) fn rows<T: Pod>(io: Io, depth: usize, mut f: impl FnMut(Option<&[T]>, &mut [T])) {
    let depth = depth.max(1);
    match io {
        Io::Split(s, d) => {
            for (s, d) in cast::<T>(s)
                .chunks_exact(depth)
                .zip(cast_mut::<T>(d).chunks_exact_mut(depth))
            {
                f(Some(s), d);
            }
        }
        Io::Shared(d) => {
            for d in cast_mut::<T>(d).chunks_exact_mut(depth) {
                f(None, d);
            }
        }
    }
}

/// The common checks of an elementwise operator: one output with the input's element count
/// and type, which is int8 or f32. Returns the input's (element type, element count).
// Not inlined: load time only, one copy for every operator (firmware size). Reads element
// types and places, not whole tensor records (their copies cost a firmware most of it).
#[inline(never)]
pub(crate) fn check_same(op: &OpView) -> Result<(DType, usize), Error> {
    let model = op.model();
    let info = |t: Option<usize>| t.and_then(|t| Some((model.dtype(t)?, model.place(t)?.bytes)));
    let (xd, xb) = info(op.input(0)).ok_or_else(|| op.error("a required input is missing"))?;
    let (yd, yb) = info(op.output(0)).ok_or_else(|| op.error("a required output is missing"))?;
    if xd != DType::I8 && xd != DType::F32 {
        return Err(op.error("the input is neither int8 nor f32"));
    }
    checks::float_form(op, xd == DType::F32)?;
    if yd != xd {
        return Err(op.error("a tensor has the wrong element type"));
    }
    // Loading checked every tensor's byte length against its shape and element type, so
    // equal types and byte lengths are equal element counts.
    if xb != yb {
        return Err(op.error("input and output differ in size"));
    }
    Ok((xd, xb / xd.size()))
}

/// Whether this operator's input is f32 (else int8; `check` made sure). Always false
/// without the feature `f32` (`check` refused f32 operators), so the f32 forms compile out.
pub(crate) fn is_f32(op: &OpView) -> bool {
    super::F32
        && op
            .input(0)
            .and_then(|t| op.model().tensor(t))
            .is_some_and(|t| t.dtype == DType::F32)
}

/// `round` (half away from zero) of an f32, as an f32.
pub(crate) fn round_f32(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x; // already an integer (or NaN/inf)
    }
    let t = x as i32 as f32; // truncation
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// 2^k as f32 for k in −149..=127 (0 or ∞ outside), built from bits.
fn pow2_f32(k: i32) -> f32 {
    if k > 127 {
        f32::INFINITY
    } else if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else if k >= -149 {
        f32::from_bits(1u32 << (k + 149))
    } else {
        0.0
    }
}

/// `e^x` in f32 (within about 1 ulp; no `std`).
pub(crate) fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.8 {
        return f32::INFINITY;
    }
    if x < -104.0 {
        return 0.0;
    }
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2's leading bits: k·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN2_HI
    let k = round_f32(x * LOG2E);
    let r = (x - k * LN2_HI) - k * LN2_LO; // |r| ≤ ~0.35
                                           // Taylor polynomial of degree 7 (error ≈ 5e-9 relative on |r| ≤ 0.35).
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let k = k as i32;
    // Split the scaling so intermediate factors stay normal.
    let (k1, k2) = (k / 2, k - k / 2);
    p * pow2_f32(k1) * pow2_f32(k2)
}

/// `e^x − 1` in f32, accurate near 0 too.
fn expm1_f32(x: f32) -> f32 {
    if x.abs() < 0.35 {
        let mut term = x;
        let mut sum = x;
        for n in 2..=9 {
            term *= x / n as f32;
            sum += term;
        }
        sum
    } else {
        exp_f32(x) - 1.0
    }
}

/// `tanh(x)` in f32 (a few ulp; no `std`).
pub(crate) fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a > 9.1 {
        1.0
    } else {
        let e = expm1_f32(2.0 * a);
        e / (e + 2.0)
    };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

/// `e^x` in f64 (within about 1 ulp of f64), for building tables on the host: rounded to
/// f32 it is the correctly rounded `expf` for all but astronomically rare inputs.
#[cfg(feature = "alloc")]
pub(crate) fn exp_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.7 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    const LN2_HI: f64 = 0.693_147_180_369_123_8; // fdlibm's split of ln 2
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let kf = (x * core::f64::consts::LOG2_E + if x < 0.0 { -0.5 } else { 0.5 }) as i64 as f64;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // Taylor series to degree 14 on |r| ≤ 0.35: truncation below 1e-18 relative.
    let mut p = 1.0;
    for n in (1..=14).rev() {
        p = 1.0 + p * r / n as f64;
    }
    let k = kf as i32;
    let pow2 = |k: i32| -> f64 {
        if k >= -1022 {
            f64::from_bits(((k + 1023) as u64) << 52)
        } else {
            f64::from_bits(1u64 << (k + 1074).max(0))
        }
    };
    let (k1, k2) = (k / 2, k - k / 2);
    p * pow2(k1) * pow2(k2)
}

/// `tanh(x)` in f64 (a few f64 ulp), for building tables on the host.
#[cfg(feature = "alloc")]
pub(crate) fn tanh_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a > 20.0 {
        1.0
    } else {
        let y = 2.0 * a;
        let e = if y < 0.35 {
            let mut term = y;
            let mut sum = y;
            for n in 2..=18 {
                term *= y / n as f64;
                sum += term;
            }
            sum
        } else {
            exp_f64(y) - 1.0
        };
        e / (e + 2.0)
    };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn float_functions_match_std() {
        let mut x = -87.0f32; // normal results
        while x < 88.0 {
            let (got, want) = (exp_f32(x), x.exp());
            assert!(
                ((got - want) / want).abs() <= 3.0 * f32::EPSILON,
                "exp({x}) = {got}, std {want}"
            );
            let (got, want) = (exp_f64(x as f64), (x as f64).exp());
            assert!(
                ((got - want) / want).abs() <= 4.0 * f64::EPSILON,
                "exp({x})"
            );
            x += 0.0137;
        }
        let mut x = -12.0f32;
        while x < 12.0 {
            let (got, want) = (tanh_f32(x), x.tanh());
            assert!(
                (got - want).abs() <= 4.0 * f32::EPSILON * want.abs().max(1e-30),
                "tanh({x}) = {got}, std {want}"
            );
            let (got, want) = (tanh_f64(x as f64), (x as f64).tanh());
            assert!(
                (got - want).abs() <= 8.0 * f64::EPSILON * want.abs(),
                "tanh({x})"
            );
            x += 0.00731;
        }
        assert_eq!(round_f32(2.5), 3.0);
        assert_eq!(round_f32(-2.5), -3.0);
        assert_eq!(round_f32(-0.4), 0.0);
    }
}

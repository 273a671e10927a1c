//! QUANTIZE and DEQUANTIZE (per-tensor, element by element):
//! - QUANTIZE f32 → int8 (`reference_ops::AffineQuantize`):
//!   `clamp(f64(roundf(x / scale)) + zero_point, −128, 127)`, the division in f32 and the
//!   rounding half away from zero (`TfLiteRound`);
//! - QUANTIZE int8 → int8, a requantization (`reference_ops::Requantize`, as the converter
//!   inserts before CONCATENATION): `clamp(MultiplyByQuantizedMultiplier(q − z_in, m, s) +
//!   z_out, −128, 127)` with `(m, s) = QuantizeMultiplier(f64(s_in) / f64(s_out))`
//!   (quantize.cc `Prepare`);
//! - DEQUANTIZE int8 → f32 (`reference_ops::Dequantize`): `f32(f64(scale) · (q − z))`.
//!
//! Blob form: one input, one output of as many elements, no scratch. Parameters: QUANTIZE
//! from f32: output zero point, output scale as f32 bits; QUANTIZE from int8: input zero
//! point, output zero point, multiplier, shift; DEQUANTIZE: input zero point, input scale as
//! f32 bits.

use super::checks;
use super::{cast, cast_mut, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;
use crate::reference::multiply_by_quantized_multiplier as mbqm;

const DEQUANTIZE: u16 = 6;
const QUANTIZE: u16 = 114;

pub(crate) const DEF: OpDef = OpDef {
    code: QUANTIZE,
    name: "QUANTIZE",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

pub(crate) const DEQUANTIZE_DEF: OpDef = OpDef {
    code: DEQUANTIZE,
    name: "DEQUANTIZE",
    ..DEF
};

/// The (input, output) element types this operator code supports.
fn types(code: u16, input: DType) -> Option<(DType, usize)> {
    match (code, input) {
        (QUANTIZE, DType::F32) => Some((DType::I8, 2)),
        (QUANTIZE, DType::I8) => Some((DType::I8, 4)),
        (DEQUANTIZE, DType::I8) => Some((DType::F32, 2)),
        _ => None,
    }
}

fn check(op: &OpView) -> Result<(), Error> {
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let (out, params) =
        types(op.code, x.dtype).ok_or_else(|| op.error("this element type is not supported"))?;
    checks::counts(op, 1, 1, 0, params)?;
    checks::dtype(op, &y, out)?;
    let n = x.elems();
    if y.elems() != n
        || n.checked_mul(x.dtype.size()) != Some(x.bytes)
        || n.checked_mul(out.size()) != Some(y.bytes)
    {
        return Err(op.error("input and output sizes differ"));
    }
    let int8 = |v: i32| (-128..=127).contains(&v);
    let ok = match (op.code, x.dtype) {
        (QUANTIZE, DType::F32) => int8(op.param(0)),
        (QUANTIZE, _) => {
            int8(op.param(0)) && int8(op.param(1)) && (-31..=30).contains(&op.param(3))
        }
        _ => int8(op.param(0)),
    };
    if !ok {
        return Err(op.error("a quantization parameter is out of range"));
    }
    Ok(())
}

/// `std::round` for f32 (half away from zero) without std.
fn round_half_away(x: f32) -> f32 {
    // From 2^23 on every f32 is an integer (NaN and ∞ pass through).
    if !(x > -8_388_608.0 && x < 8_388_608.0) {
        return x;
    }
    let t = x as i32 as f32; // truncation, exact here
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// One int8 → int8 requantization (`reference_ops::Requantize`).
#[inline(always)]
fn requantize(v: i8, zi: i32, zo: i32, m: i32, s: i32) -> i8 {
    let q = mbqm(i32::from(v) - zi, m, s).wrapping_add(zo);
    q.clamp(-128, 127) as i8
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let missing = || op.error("missing tensor");
    let (tx, ty) = (
        op.input(0).ok_or_else(missing)?,
        op.output(0).ok_or_else(missing)?,
    );
    let xt = op.model().tensor(tx).ok_or_else(missing)?.dtype;
    let x = mem.input(tx)?;
    let y = mem.output(ty)?;
    match (op.code, xt) {
        (QUANTIZE, DType::F32) => {
            let zero = f64::from(op.param(0));
            let scale = f32::from_bits(op.param(1) as u32);
            for (o, &v) in cast_mut::<i8>(y).iter_mut().zip(cast::<f32>(x)) {
                let q = f64::from(round_half_away(v / scale)) + zero;
                // std::min(std::max(q, −128), 127); NaN stays NaN and casts to 0.
                let q = if q < -128.0 { -128.0 } else { q };
                let q = if 127.0 < q { 127.0 } else { q };
                *o = q as i8;
            }
        }
        (QUANTIZE, _) => {
            let (zi, zo) = (op.param(0), op.param(1));
            let (m, s) = (op.param(2), op.param(3));
            for (o, &v) in cast_mut::<i8>(y).iter_mut().zip(cast::<i8>(x)) {
                *o = requantize(v, zi, zo, m, s);
            }
        }
        _ => {
            let zero = op.param(0);
            let scale = f64::from(f32::from_bits(op.param(1) as u32));
            for (o, &v) in cast_mut::<f32>(y).iter_mut().zip(cast::<i8>(x)) {
                *o = (scale * f64::from(i32::from(v) - zero)) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec;

    use super::{types, QUANTIZE};
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::Tensor;
    use crate::nn::transform::lower::Lowering;

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let code = g.nodes[node].op.code() as u16;
        let x = g.input(node, 0)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        match types(code, x.dtype) {
            Some((out, _)) if out == y.dtype => {}
            _ => {
                return Err(err(
                    "these element types are not supported (f32→int8, int8→int8, int8→f32 are)",
                ))
            }
        }
        if x.elems() != y.elems() {
            return Err(err("input and output sizes differ"));
        }
        let q = |t: &Tensor| match &t.quant {
            Some(q) if q.per_channel() => Err(err("per-channel quantization is not supported")),
            Some(q) => {
                let (s, z) = q.first();
                if !(-128..=127).contains(&z) {
                    return Err(err("a zero point outside int8 is not supported"));
                }
                if !(s > 0.0 && s.is_finite()) {
                    return Err(err("a quantized tensor has a scale that is not positive"));
                }
                Ok((s, z))
            }
            None => Err(err("a quantized tensor has no scale")),
        };
        let params = match (code, x.dtype) {
            (QUANTIZE, DType::F32) => {
                let (s, z) = q(y)?;
                vec![z, s.to_bits() as i32]
            }
            (QUANTIZE, _) => {
                let ((si, zi), (so, zo)) = (q(x)?, q(y)?);
                let (m, s) = crate::quantize_multiplier(f64::from(si) / f64::from(so))?;
                vec![zi, zo, m, s]
            }
            _ => {
                let (s, z) = q(x)?;
                vec![z, s.to_bits() as i32]
            }
        };
        let mut op = l.op(node, code, params);
        op.inputs.truncate(1);
        l.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        for (x, r) in [
            (0.5, 1.0),
            (-0.5, -1.0),
            (1.49, 1.0),
            (2.5, 3.0),
            (-2.5, -3.0),
        ] {
            assert_eq!(round_half_away(x), r, "{x}");
        }
        assert_eq!(round_half_away(1e9), 1e9);
        assert!(round_half_away(f32::NAN).is_nan());
    }

    /// The requantizations of concat_mixed_scales_int8 (TANH and LOGISTIC outputs to the
    /// concatenation's scale) stay within one step of the real rescale (TFLite rounds twice:
    /// in the doubling high multiply and in the final shift, so a half can round up twice).
    #[test]
    fn requantize_rounds_the_real_rescale() {
        for (si, zi, so, zo) in [
            (0.0078125f32, 0, 0.027451f32, 54),
            (0.00390625, -128, 0.027451, 54),
            (0.05, 3, 0.01, -7),
        ] {
            let (m, s) = crate::quantize_multiplier(f64::from(si) / f64::from(so)).unwrap();
            for v in -128i32..=127 {
                let real = f64::from(si) / f64::from(so) * f64::from(v - zi);
                let want = (real.round() as i32 + zo).clamp(-128, 127);
                let got = i32::from(requantize(v as i8, zi, zo, m, s));
                assert!((got - want).abs() <= 1, "{v}: {got} vs {want}");
            }
        }
    }
}

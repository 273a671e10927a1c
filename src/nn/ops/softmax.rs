//! SOFTMAX over the last axis (any rank), with any β.
//!
//! int8: bit-exact with TFLite's `reference_ops::Softmax` (`Register_SOFTMAX_REF`): per row,
//! `d = x − max`; for `d ≥ diff_min`, `d` is rescaled by `input_multiplier ·
//! 2^input_left_shift` (`PreprocessSoftmaxScaling` of β·s_in into Q5.26), exponentiated with
//! gemmlowp's `exp_on_negative_values`, summed in Q12.19; the sum's reciprocal
//! (`GetReciprocal`) scales each exponential to the output (zero point −128, scale 1/256).
//! f32: `exp((x − max)·β)` divided by the row's sum, as `reference_ops::Softmax`.
//!
//! Blob form: input x, output y (same element count), no scratch. Parameters: the row length
//! (last dimension), then int8: input multiplier, input left shift (0..=30), diff_min (≤ 0);
//! f32: β (f32 bits). Works in place.

use super::fixed_point::{exp_on_negative_values, get_reciprocal, rdbp, rescale, srdhm};
use super::unary::{self, check_same, exp_f32, is_f32, map_slice, Io};
use super::{cast_mut, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 25,
    name: "SOFTMAX",
    in_place: true,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower,
};

const P_DEPTH: usize = 0;
const P_BETA: usize = 1;
const P_MULT: usize = 1;
const P_SHIFT: usize = 2;
const P_DIFF_MIN: usize = 3;

/// Integer bits of the rescaled differences (Q5.26) and of the sum of exponentials (Q12.19).
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

fn check(op: &OpView) -> Result<(), Error> {
    let (dtype, elems) = check_same(op)?;
    if dtype == DType::F32 {
        checks::counts(op, 1, 1, 0, 2)?;
    } else {
        checks::counts(op, 1, 1, 0, 4)?;
        if !(0..=30).contains(&op.param(P_SHIFT)) || op.param(P_DIFF_MIN) > 0 {
            return Err(op.error("a parameter is out of range"));
        }
    }
    let depth = op.param(P_DEPTH);
    if depth <= 0 || elems % depth as usize != 0 {
        return Err(op.error("the row length does not divide the element count"));
    }
    Ok(())
}

/// One int8 row in place (`row` holds the input, then the output), as
/// `reference_ops::Softmax`. In place only, one instance of each loop in a firmware: `run`
/// copies a separate input into the output first.
pub(crate) fn softmax_row_i8(row: &mut [i8], multiplier: i32, left_shift: i32, diff_min: i32) {
    let exp_of = |d: i32| {
        let rescaled = srdhm(d.wrapping_mul(1 << left_shift.clamp(0, 30)), multiplier);
        exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
    };
    let max = row.iter().fold(i8::MIN, |m, &x| max_i8(m, x)) as i32;
    let mut sum = 0i32;
    for &x in row.iter() {
        let d = x as i32 - max;
        if d >= diff_min {
            sum = sum.wrapping_add(rescale(exp_of(d), 0, ACCUMULATION_INTEGER_BITS));
        }
    }
    let (shifted_scale, num_bits_over_unit) = get_reciprocal(sum, ACCUMULATION_INTEGER_BITS);
    // TFLite checks 0 ≤ exponent ≤ 31 (it fails only for rows of thousands of equal values,
    // whose sum overflows); here it is clamped instead.
    let exponent = num_bits_over_unit + 31 - 8;
    for out in row.iter_mut() {
        let d = *out as i32 - max;
        *out = if d >= diff_min {
            let unsat = rdbp(srdhm(shifted_scale, exp_of(d)), exponent);
            unsat.saturating_add(-128).clamp(-128, 127) as i8
        } else {
            i8::MIN
        };
    }
}

/// The larger of `a` and `b`. Out of line: LLVM unrolls no loop that calls, so the row's
/// maximum is one short loop (code size on a microcontroller; a call per element, once per
/// row).
#[inline(never)]
fn max_i8(a: i8, b: i8) -> i8 {
    a.max(b)
}

/// One f32 row, as `reference_ops::Softmax` (float).
fn softmax_row_f32(src: Option<&[f32]>, dst: &mut [f32], beta: f32) {
    let max = src
        .unwrap_or(&*dst)
        .iter()
        .fold(f32::MIN, |m, &x| if x > m { x } else { m });
    let mut sum = 0.0f32;
    map_slice(src, dst, |x| {
        let e = exp_f32((x - max) * beta);
        sum += e;
        e
    });
    for v in dst.iter_mut() {
        *v /= sum;
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let depth = op.param(P_DEPTH).max(1) as usize;
    let io = unary::io(op, mem)?;
    if is_f32(op) {
        let beta = f32::from_bits(op.param(P_BETA) as u32);
        unary::rows::<f32>(io, depth, |s, d| softmax_row_f32(s, d, beta));
        return Ok(());
    }
    let (m, shift, diff_min) = (op.param(P_MULT), op.param(P_SHIFT), op.param(P_DIFF_MIN));
    let dst = match io {
        Io::Split(src, dst) => {
            // Equal lengths: `check` (`check_same`'s "input and output differ in size").
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            dst
        }
        Io::Shared(dst) => dst,
    };
    for row in cast_mut::<i8>(dst).chunks_exact_mut(depth) {
        softmax_row_i8(row, m, shift, diff_min);
    }
    Ok(())
}

/// TFLite's `PreprocessSoftmaxScaling` and `CalculateInputRadius` for the Q5.26 differences:
/// (input multiplier, input left shift, diff_min), or `None` where TFLite's checks fail.
#[cfg(feature = "alloc")]
pub(crate) fn int8_params(beta: f32, input_scale: f32) -> Option<(i32, i32, i32)> {
    let ib = SCALED_DIFF_INTEGER_BITS;
    let real = (f64::from(beta) * f64::from(input_scale) * (1i64 << (31 - ib)) as f64)
        .min((1i64 << 31) as f64 - 1.0);
    // QuantizeMultiplierGreaterThanOne.
    if real.is_nan() || real <= 1.0 {
        return None;
    }
    let (m, shift) = crate::quantize_multiplier(real).ok()?;
    if !(0..=30).contains(&shift) {
        return None;
    }
    // CalculateInputRadius(5, shift, 31), floored; diff_min is its negative.
    let radius = ((1i64 << ib) - 1) as f64 * (1i64 << (31 - ib)) as f64 / (1i64 << shift) as f64;
    Some((m, shift, -(radius as i64 as i32)))
}

#[cfg(feature = "alloc")]
fn lower(l: &mut crate::nn::transform::lower::Lowering, node: usize) -> Result<(), Error> {
    use crate::nn::transform::ir::OpOptions;
    use alloc::vec;

    let g = l.graph;
    let err = |r| g.node_error(node, r);
    let beta = match g.nodes[node].options {
        OpOptions::Softmax { beta } => beta,
        _ => return Err(err("SOFTMAX without its options")),
    };
    let x = g.input(node, 0)?;
    let y = &g.tensors[g.output_index(node, 0)?];
    if x.dtype != y.dtype || x.elems() != y.elems() {
        return Err(err("int8 SOFTMAX with an int16 output is not supported"));
    }
    let depth = match x.shape.last() {
        Some(&d) if d > 0 && d <= i32::MAX as usize => d as i32,
        _ => return Err(err("SOFTMAX of an empty or scalar tensor is not supported")),
    };
    let params = match x.dtype {
        DType::F32 => vec![depth, beta.to_bits() as i32],
        DType::I8 => {
            let q = |t: &crate::nn::transform::ir::Tensor| {
                t.quant
                    .as_ref()
                    .map(|q| q.first())
                    .ok_or_else(|| err("a quantized tensor has no scale"))
            };
            let ((s_in, _), (s_out, z_out)) = (q(x)?, q(y)?);
            // SoftmaxPrepare: output zero point −128, scale 1/256 (within 0.1 %).
            if z_out != -128 || (s_out - 1.0 / 256.0).abs() > 0.001 / 256.0 {
                return Err(err(
                    "int8 SOFTMAX with an output other than scale 1/256, zero point -128 is not supported",
                ));
            }
            let (m, shift, diff_min) = int8_params(beta, s_in).ok_or_else(|| {
                err("int8 SOFTMAX with this beta and input scale is not supported")
            })?;
            vec![depth, m, shift, diff_min]
        }
        _ => return Err(err("SOFTMAX of this element type is not supported")),
    };
    let mut op = l.op(node, 25, params);
    op.inputs.truncate(1);
    l.push(op);
    Ok(())
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn int8_row_tracks_the_real_softmax() {
        let s_in = 0.05f32;
        let (m, shift, diff_min) = int8_params(1.0, s_in).unwrap();
        // β·s·2^26 ≈ 3355443.2 = 0.8·2^22: shift 22, multiplier ≈ 0.8·2^31.
        assert_eq!(shift, 22);
        assert!((m as f64 / 2f64.powi(31) - 0.8).abs() < 1e-7);
        assert_eq!(diff_min, -((31i64 << 26) >> 22) as i32);
        let x: [i8; 6] = [-100, -20, 0, 10, 30, 31];
        let mut y = x;
        softmax_row_i8(&mut y, m, shift, diff_min);
        let e: alloc::vec::Vec<f64> = x
            .iter()
            .map(|&v| ((v as f64 - 31.0) * s_in as f64).exp())
            .collect();
        let sum: f64 = e.iter().sum();
        for (i, &v) in y.iter().enumerate() {
            let want = e[i] / sum * 256.0 - 128.0;
            assert!((v as f64 - want).abs() <= 1.0, "{i}: {v} vs {want}");
        }
    }
}

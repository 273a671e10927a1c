//! HARD_SWISH: `x·relu6(x + 3)/6`.
//!
//! int8: bit-exact with TFLite's `reference_ops::HardSwish` (`Register_HARD_SWISH_REF`):
//! 16-bit fixed point, the input moved to a "hires" scale (`·2^7`), an output multiplier and
//! a "reluish" multiplier (int16 halves of `QuantizeMultiplier`'s, from `HardSwishPrepare`),
//! the reluish value mapped from [−3, 3] to [0, 1] and multiplied in with a truncating
//! doubling high multiply. f32: `x·min(6, max(0, x + 3))/6`.
//!
//! Blob form: input x, output y; no scratch. Parameters, int8: input zero point, output
//! zero point, output multiplier (int16), output exponent (≤ 0), reluish multiplier
//! (int16), reluish exponent; f32: none. Works in place.

use super::fixed_point::{rdbp_i16, saturating_left_shift_i16, sdhm_i16, srdhm_i16};
use super::unary::{self, check_same, is_f32};
use super::{checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 117,
    name: "HARD_SWISH",
    in_place: true,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower,
};

const P_ZI: usize = 0;
const P_ZO: usize = 1;
const P_OUT_M: usize = 2;
const P_OUT_E: usize = 3;
const P_RELU_M: usize = 4;
const P_RELU_E: usize = 5;

fn check(op: &OpView) -> Result<(), Error> {
    let (dtype, _) = check_same(op)?;
    if dtype == DType::F32 {
        return checks::counts(op, 1, 1, 0, 0);
    }
    checks::counts(op, 1, 1, 0, 6)?;
    let i8_range = -128..=127;
    let i16_range = i16::MIN as i32..=i16::MAX as i32;
    if !i8_range.contains(&op.param(P_ZI))
        || !i8_range.contains(&op.param(P_ZO))
        || !i16_range.contains(&op.param(P_OUT_M))
        || !i16_range.contains(&op.param(P_RELU_M))
        || !(-31..=0).contains(&op.param(P_OUT_E))
        || !(-31..=31).contains(&op.param(P_RELU_E))
    {
        return Err(op.error("a parameter is out of range"));
    }
    Ok(())
}

/// The fixed-point parameters (TFLite's `HardSwishParams`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub output_multiplier: i16,
    pub output_exponent: i32,
    pub reluish_multiplier: i16,
    pub reluish_exponent: i32,
}

/// One int8 element, as `reference_ops::HardSwish<int8_t>`.
pub(crate) fn hard_swish_i8(p: &Params, x: i8) -> i8 {
    let input_value = (x as i32 - p.input_zero_point) as i16;
    let hires = input_value.wrapping_mul(1 << 7);
    let preshift_output_scale = srdhm_i16(hires, p.output_multiplier);
    let mut reluish = hires;
    if p.reluish_exponent > 0 {
        reluish = saturating_left_shift_i16(reluish, p.reluish_exponent - 1);
    }
    reluish = srdhm_i16(reluish, p.reluish_multiplier);
    if p.reluish_exponent > 0 {
        reluish = saturating_left_shift_i16(reluish, 1);
    }
    if p.reluish_exponent < 0 {
        reluish = rdbp_i16(reluish, -p.reluish_exponent);
    }
    // [−1, 1] → [0, 1].
    reluish = ((reluish as i32 + (1 << 15)) >> 1) as i16;
    let preshift_output = sdhm_i16(reluish, preshift_output_scale);
    let out = rdbp_i16(preshift_output, -p.output_exponent);
    let out = out.wrapping_add(p.output_zero_point as i16);
    out.clamp(-128, 127) as i8
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let io = unary::io(op, mem)?;
    if is_f32(op) {
        unary::map::<f32>(io, |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0);
        return Ok(());
    }
    let p = Params {
        input_zero_point: op.param(P_ZI),
        output_zero_point: op.param(P_ZO),
        output_multiplier: op.param(P_OUT_M) as i16,
        output_exponent: op.param(P_OUT_E),
        reluish_multiplier: op.param(P_RELU_M) as i16,
        reluish_exponent: op.param(P_RELU_E),
    };
    unary::map::<i8>(io, |x| hard_swish_i8(&p, x));
    Ok(())
}

/// TFLite's `DownScaleInt32ToInt16Multiplier`.
#[cfg(feature = "alloc")]
fn downscale_multiplier(m: i32) -> i16 {
    const ROUNDING: i32 = 1 << 15;
    if m >= i32::MAX - ROUNDING {
        i16::MAX
    } else {
        ((m + ROUNDING) >> 16) as i16
    }
}

#[cfg(feature = "alloc")]
fn lower(l: &mut crate::nn::transform::lower::Lowering, node: usize) -> Result<(), Error> {
    use alloc::vec;
    use alloc::vec::Vec;

    let g = l.graph;
    let err = |r| g.node_error(node, r);
    let x = g.input(node, 0)?;
    let y = &g.tensors[g.output_index(node, 0)?];
    if x.dtype != y.dtype || x.elems() != y.elems() {
        return Err(err("input and output differ in type or size"));
    }
    let params = match x.dtype {
        DType::F32 => Vec::new(),
        DType::I8 => {
            let q = |t: &crate::nn::transform::ir::Tensor| {
                t.quant
                    .as_ref()
                    .map(|q| q.first())
                    .ok_or_else(|| err("a quantized tensor has no scale"))
            };
            let ((s_in, zi), (s_out, zo)) = (q(x)?, q(y)?);
            // HardSwishPrepare, in float.
            let hires_input_scale = (1.0f32 / 128.0) * s_in;
            let reluish_scale = 3.0f32 / 32768.0;
            let output_multiplier = hires_input_scale / s_out;
            let (out_m, out_e) = crate::quantize_multiplier(f64::from(output_multiplier))?;
            if out_e > 0 {
                return Err(err(
                    "int8 HARD_SWISH whose output scale is that small is not supported",
                ));
            }
            let reluish_multiplier = hires_input_scale / reluish_scale;
            let (relu_m, relu_e) = crate::quantize_multiplier(f64::from(reluish_multiplier))?;
            vec![
                zi,
                zo,
                downscale_multiplier(out_m) as i32,
                out_e,
                downscale_multiplier(relu_m) as i32,
                relu_e,
            ]
        }
        _ => return Err(err("this activation's element type is not supported")),
    };
    let mut op = l.op(node, 117, params);
    op.inputs.truncate(1);
    l.push(op);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_tracks_the_real_function() {
        // Input and output scale 6/128, zero points 0.
        let p = Params {
            input_zero_point: 0,
            output_zero_point: 0,
            // hires/out = 1/128 → QuantizeMultiplier(2^-7) = (2^30, −6) → int16 2^14.
            output_multiplier: 1 << 14,
            output_exponent: -6,
            // (6/128/128)/(3/32768) = 4 → (2^30, 3) → int16 2^14.
            reluish_multiplier: 1 << 14,
            reluish_exponent: 3,
        };
        let s = 6.0f64 / 128.0;
        for q in -128i32..=127 {
            let x = q as f64 * s;
            let want = x * (x + 3.0).clamp(0.0, 6.0) / 6.0 / s;
            let got = hard_swish_i8(&p, q as i8) as f64;
            assert!(
                (got - want.clamp(-128.0, 127.0)).abs() <= 1.0,
                "q={q}: {got} vs {want}"
            );
        }
        assert_eq!(hard_swish_i8(&p, 0), 0);
    }
}

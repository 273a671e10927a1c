//! RELU, RELU_N1_TO_1, RELU6 and LEAKY_RELU: one requantize-and-clamp path.
//!
//! int8 (bit-exact with TFLite's `QuantizedReluX` / `reference_ops::ReluX` for the RELUs and
//! `reference_ops::QuantizeLeakyRelu` for LEAKY_RELU): `d = x − zi`, then
//! `zo + MultiplyByQuantizedMultiplier(d, m, s)` with the identity multiplier for `d ≥ 0`
//! and the alpha multiplier for `d < 0` (the RELUs use the identity one for both), clamped to
//! `[lo, hi]` (the RELU's range in output units, or the int8 range). f32: `x > 0 ? x :
//! α·x` (α = 1 for the RELUs), clamped to `[lo, hi]`.
//!
//! Blob form: input x, output y (same element count), no scratch. Parameters, int8: input
//! zero point, output zero point, identity multiplier and shift, alpha multiplier and shift,
//! clamp min, clamp max; f32: clamp min, clamp max, α (f32 bits). Works in place.

use super::unary::{self, check_same, is_f32};
use super::{checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;

pub(crate) const DEF: OpDef = OpDef {
    code: 19,
    name: "RELU",
    in_place: true,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower,
};

pub(crate) const RELU_N1_TO_1: OpDef = OpDef {
    code: 20,
    name: "RELU_N1_TO_1",
    ..DEF
};

pub(crate) const RELU6: OpDef = OpDef {
    code: 21,
    name: "RELU6",
    ..DEF
};

pub(crate) const LEAKY_RELU: OpDef = OpDef {
    code: 98,
    name: "LEAKY_RELU",
    ..DEF
};

const P_ZI: usize = 0;
const P_ZO: usize = 1;
const P_M_ID: usize = 2;
const P_S_ID: usize = 3;
const P_M_ALPHA: usize = 4;
const P_S_ALPHA: usize = 5;
const P_LO: usize = 6;
const P_HI: usize = 7;
const P_FLO: usize = 0;
const P_FHI: usize = 1;
const P_FALPHA: usize = 2;

fn check(op: &OpView) -> Result<(), Error> {
    let (dtype, _) = check_same(op)?;
    if dtype == crate::nn::dtype::DType::F32 {
        return checks::counts(op, 1, 1, 0, 3);
    }
    checks::counts(op, 1, 1, 0, 8)?;
    let i8_range = -128..=127;
    if !i8_range.contains(&op.param(P_ZI)) || !i8_range.contains(&op.param(P_ZO)) {
        return Err(op.error("a zero point is outside the int8 range"));
    }
    // MultiplyByQuantizedMultiplier shifts by at most 31 either way.
    for s in [P_S_ID, P_S_ALPHA] {
        if !(-31..=30).contains(&op.param(s)) {
            return Err(op.error("a multiplier's shift is out of range"));
        }
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let io = unary::io(op, mem)?;
    if is_f32(op) {
        let p = |i| f32::from_bits(op.param(i) as u32);
        let (lo, hi, alpha) = (p(P_FLO), p(P_FHI), p(P_FALPHA));
        unary::map::<f32>(io, |x| {
            let v = if x > 0.0 { x } else { x * alpha };
            v.max(lo).min(hi)
        });
        return Ok(());
    }
    let (zi, zo) = (op.param(P_ZI), op.param(P_ZO));
    let (m_id, s_id) = (op.param(P_M_ID), op.param(P_S_ID));
    let (m_alpha, s_alpha) = (op.param(P_M_ALPHA), op.param(P_S_ALPHA));
    let (lo, hi) = (op.param(P_LO), op.param(P_HI));
    let mbqm = crate::reference::multiply_by_quantized_multiplier;
    unary::map::<i8>(io, |x| {
        let d = x as i32 - zi;
        let scaled = if d >= 0 {
            mbqm(d, m_id, s_id)
        } else {
            mbqm(d, m_alpha, s_alpha)
        };
        zo.saturating_add(scaled).max(lo).min(hi).clamp(-128, 127) as i8
    });
    Ok(())
}

#[cfg(feature = "alloc")]
fn lower(l: &mut crate::nn::transform::lower::Lowering, node: usize) -> Result<(), Error> {
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::round_half_away;
    use alloc::vec;

    let g = l.graph;
    let err = |r| g.node_error(node, r);
    let code = g.nodes[node].op.code() as u16;
    let x = g.input(node, 0)?;
    let y = &g.tensors[g.output_index(node, 0)?];
    if x.dtype != y.dtype || x.elems() != y.elems() {
        return Err(err("input and output differ in type or size"));
    }
    let alpha = if code == LEAKY_RELU.code {
        match g.nodes[node].options {
            OpOptions::LeakyRelu { alpha } => Some(alpha),
            _ => return Err(err("LEAKY_RELU without its options")),
        }
    } else {
        None
    };
    // The RELU's range in real units (TFLite: act_min, act_max).
    let (act_lo, act_hi) = match code {
        19 => (0.0f32, f32::INFINITY),
        20 => (-1.0, 1.0),
        21 => (0.0, 6.0),
        _ => (f32::NEG_INFINITY, f32::INFINITY),
    };
    let params = match x.dtype {
        DType::F32 => vec![
            act_lo.to_bits() as i32,
            act_hi.to_bits() as i32,
            alpha.unwrap_or(1.0).to_bits() as i32,
        ],
        DType::I8 => {
            let q = |t: &crate::nn::transform::ir::Tensor| {
                t.quant
                    .as_ref()
                    .map(|q| q.first())
                    .ok_or_else(|| err("a quantized tensor has no scale"))
            };
            let ((sx, zi), (sy, zo)) = (q(x)?, q(y)?);
            // TFLite computes these ratios in float, then widens them to double.
            let (m_id, s_id) = crate::quantize_multiplier(f64::from(sx / sy))?;
            let (m_alpha, s_alpha) = match alpha {
                Some(a) => crate::quantize_multiplier(f64::from(sx * a / sy))?,
                None => (m_id, s_id),
            };
            // QuantizedReluX: zo + roundf(act / scale), in float.
            let q_act = |a: f32| zo.saturating_add(round_half_away(f64::from(a / sy)) as i32);
            let lo = if act_lo.is_finite() {
                q_act(act_lo).max(-128)
            } else {
                -128
            };
            let hi = if act_hi.is_finite() {
                q_act(act_hi).min(127)
            } else {
                127
            };
            vec![zi, zo, m_id, s_id, m_alpha, s_alpha, lo, hi]
        }
        _ => return Err(err("this activation's element type is not supported")),
    };
    let mut op = l.op(node, code, params);
    op.inputs.truncate(1);
    l.push(op);
    Ok(())
}

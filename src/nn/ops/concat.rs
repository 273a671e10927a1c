//! CONCATENATION and PACK: the output viewed as `[outer, axis, inner]`, input j fills the
//! run `[outer, len_j, inner]` after the previous inputs' runs (PACK: runs of one, a new
//! axis). Bytes are moved as they are (int8, f32 or any other element type), as TFLite's
//! reference `Concatenation` and `Pack` do; then a fused activation clamps the output.
//!
//! An int8 input at another scale or zero point than the output is requantized as TFLite's
//! reference `ConcatenationWithScaling` does (in f32: `round(q·s + b) + zo` with
//! `s = s_in · (1/s_out)`, `b = −zp_in · s`, clamped). TFLite's converter gives every
//! CONCATENATION/PACK input the output's scale (it inserts QUANTIZE ops otherwise), so
//! converted models take the copy path.
//!
//! Blob form: N inputs, one output, no scratch. Parameters: outer, axis, inner (elements),
//! the output zero point, the clamp (int8: lo, hi; f32: lo, hi as f32 bits), then per input
//! its length along the axis, its mode (0 = copy, 1 = requantize), and the requantization's
//! scale and bias as f32 bits.

use super::checks;
use super::{OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const CONCATENATION: OpDef = OpDef {
    code: 2,
    name: "CONCATENATION",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::concatenation,
};

pub(crate) const PACK: OpDef = OpDef {
    code: 83,
    name: "PACK",
    #[cfg(feature = "alloc")]
    lower: lower::pack,
    ..CONCATENATION
};

const P_OUTER: usize = 0;
const P_AXIS: usize = 1;
const P_INNER: usize = 2;
const P_ZO: usize = 3;
const P_LO: usize = 4;
const P_HI: usize = 5;
const P_INPUTS: usize = 6;
const PER_INPUT: usize = 4;

fn word(op: &OpView, i: usize) -> usize {
    op.param(i).max(0) as usize
}

fn check(op: &OpView) -> Result<(), Error> {
    let n = op.num_inputs();
    checks::counts(op, n, 1, 0, P_INPUTS + PER_INPUT * n)?;
    let y = checks::output(op, 0)?;
    let (outer, axis, inner) = (word(op, P_OUTER), word(op, P_AXIS), word(op, P_INNER));
    let size = |a: usize| {
        outer
            .checked_mul(a)
            .and_then(|v| v.checked_mul(inner))
            .and_then(|v| v.checked_mul(y.dtype.size()))
            .ok_or_else(|| op.error("sizes overflow"))
    };
    if y.dtype == DType::Packed || size(axis)? != y.bytes {
        return Err(op.error("the output does not match outer, axis and inner"));
    }
    let mut total = 0usize;
    for j in 0..n {
        let x = checks::input(op, j)?;
        let p = P_INPUTS + PER_INPUT * j;
        let len = word(op, p);
        let mode = op.param(p + 1);
        if x.dtype != y.dtype || size(len)? != x.bytes {
            return Err(op.error("an input does not match its run of the output"));
        }
        if !(mode == 0 || (mode == 1 && y.dtype == DType::I8)) {
            return Err(op.error("an unknown input mode"));
        }
        total = total.saturating_add(len);
    }
    if total != axis {
        return Err(op.error("the inputs do not cover the axis"));
    }
    Ok(())
}

/// `static_cast<int32_t>(std::round(x))` for an f32 (half away from zero), saturating.
fn round_f32(x: f32) -> i32 {
    let t = x as i32; // truncates toward zero, saturates
    let frac = x - t as f32; // exact for |x| < 2^23; 0 beyond (x is an integer there)
    if frac >= 0.5 {
        t.saturating_add(1)
    } else if frac <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let y = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let dtype = op.model().tensor(y).map_or(DType::U8, |t| t.dtype);
    let esize = dtype.size();
    // Saturating: check proved these sizes for a loaded blob; nothing here may panic.
    let bytes = |v: usize| v.saturating_mul(word(op, P_INNER)).saturating_mul(esize);
    let row = bytes(word(op, P_AXIS));
    let zo = op.param(P_ZO);
    let mut start = 0usize;
    for j in 0..op.num_inputs() {
        let p = P_INPUTS + PER_INPUT * j;
        let x = op.input(j).ok_or_else(|| op.error("missing input"))?;
        let src = mem.input(x)?;
        let run = bytes(word(op, p));
        let requant = op.param(p + 1) == 1;
        let scale = f32::from_bits(op.param(p + 2) as u32);
        let bias = f32::from_bits(op.param(p + 3) as u32);
        if run > 0 && row > 0 {
            let dst = mem.output(y)?;
            for (d, s) in dst.chunks_exact_mut(row).zip(src.chunks_exact(run)) {
                let d = d
                    .get_mut(start..start.saturating_add(run))
                    .ok_or_else(|| op.error("an input's run lies outside the output"))?;
                if requant {
                    for (o, &q) in d.iter_mut().zip(s) {
                        let v = round_f32(f32::from(q as i8) * scale + bias).saturating_add(zo);
                        *o = v.clamp(-128, 127) as i8 as u8;
                    }
                } else {
                    d.copy_from_slice(s);
                }
            }
        }
        start = start.saturating_add(run);
    }
    // The fused activation.
    let out = mem.output(y)?;
    match dtype {
        DType::I8 => {
            let (lo, hi) = (op.param(P_LO), op.param(P_HI));
            if lo > -128 || hi < 127 {
                for v in out.iter_mut() {
                    *v = i32::from(*v as i8).clamp(lo, hi.max(lo)) as i8 as u8;
                }
            }
        }
        DType::F32 => {
            let lo = f32::from_bits(op.param(P_LO) as u32);
            let hi = f32::from_bits(op.param(P_HI) as u32);
            if lo > f32::NEG_INFINITY || hi < f32::INFINITY {
                for v in super::cast_mut::<f32>(out) {
                    *v = v.max(lo).min(hi);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec::Vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{Activation, OpOptions};
    use crate::nn::transform::lower::{activation_range_f, activation_range_q, Lowering};

    /// Pushes the operator: inputs concatenated along `axis` of the output (already
    /// non-negative), each `lens[j]` long.
    fn push(
        l: &mut Lowering,
        node: usize,
        axis: usize,
        lens: &[usize],
        act: Activation,
    ) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let y = &g.tensors[g.output_index(node, 0)?];
        let shape = &y.shape;
        if axis >= shape.len() {
            return Err(err("the axis is outside the output's rank"));
        }
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        if lens.iter().sum::<usize>() != shape[axis] {
            return Err(err("the inputs do not cover the axis"));
        }
        let mut params: Vec<i32> = Vec::new();
        let int =
            |v: usize| i32::try_from(v).map_err(|_| err("a tensor too large is not supported"));
        params.extend([int(outer)?, int(shape[axis])?, int(inner)?]);
        let out_q = match y.dtype {
            DType::F32 => {
                let (lo, hi) = activation_range_f(act).map_err(err)?;
                params.extend([0, lo.to_bits() as i32, hi.to_bits() as i32]);
                None
            }
            DType::I8 => {
                let q = y
                    .quant
                    .as_ref()
                    .ok_or_else(|| err("a quantized tensor has no scale"))?;
                let (s, zo) = q.first();
                let (lo, hi) = activation_range_q(act, s, zo, -128, 127).map_err(err)?;
                params.extend([zo, lo, hi]);
                Some((s, zo))
            }
            _ if act == Activation::None => {
                params.extend([0, 0, 0]);
                None
            }
            _ => return Err(err("a fused activation on this type is not supported")),
        };
        for (j, &len) in lens.iter().enumerate() {
            let x = g.input(node, j)?;
            if x.dtype != y.dtype || x.elems() != outer * len * inner {
                return Err(err("an input does not match its part of the output"));
            }
            let (mut mode, mut scale, mut bias) = (0, 0f32, 0f32);
            if let Some((s_out, zo)) = out_q {
                let q = x
                    .quant
                    .as_ref()
                    .ok_or_else(|| err("a quantized tensor has no scale"))?;
                if q.per_channel() {
                    return Err(err("a per-channel quantized input is not supported"));
                }
                let (s_in, z_in) = q.first();
                if s_in != s_out || z_in != zo {
                    // TFLite's ConcatenationWithScaling, in f32.
                    mode = 1;
                    scale = s_in * (1.0f32 / s_out);
                    bias = (-z_in) as f32 * scale;
                }
            }
            params.extend([
                int(len)?,
                mode,
                scale.to_bits() as i32,
                bias.to_bits() as i32,
            ]);
        }
        let code = g.nodes[node].op.code() as u16;
        let op = l.op(node, code, params);
        l.push(op);
        Ok(())
    }

    pub(crate) fn concatenation(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let (axis, act) = match &g.nodes[node].options {
            OpOptions::Concatenation { axis, activation } => (*axis, *activation),
            _ => return Err(g.node_error(node, "CONCATENATION without its options")),
        };
        let rank = g.tensors[g.output_index(node, 0)?].shape.len() as i64;
        let a = i64::from(axis);
        let axis = usize::try_from(if a < 0 { a + rank } else { a })
            .map_err(|_| g.node_error(node, "the axis is outside the output's rank"))?;
        let n = g.nodes[node].inputs.len();
        let lens = (0..n)
            .map(|j| {
                g.input(node, j)?
                    .shape
                    .get(axis)
                    .copied()
                    .ok_or_else(|| g.node_error(node, "an input has too few dimensions"))
            })
            .collect::<Result<Vec<usize>, Error>>()?;
        push(l, node, axis, &lens, act)
    }

    pub(crate) fn pack(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let axis = match &g.nodes[node].options {
            OpOptions::Pack { axis, .. } => *axis,
            _ => return Err(g.node_error(node, "PACK without its options")),
        };
        let rank = g.tensors[g.output_index(node, 0)?].shape.len() as i64;
        let a = i64::from(axis);
        let axis = usize::try_from(if a < 0 { a + rank } else { a })
            .map_err(|_| g.node_error(node, "the axis is outside the output's rank"))?;
        let n = g.nodes[node].inputs.len();
        push(l, node, axis, &alloc::vec![1; n], Activation::None)
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, Node, OpOptions, Quant, Tensor};
    use crate::nn::transform::{LoadedModel, Packing};

    fn t(name: &str, dtype: DType, shape: Vec<usize>, q: Option<(f32, i64)>) -> Tensor {
        Tensor {
            name: String::from(name),
            dtype,
            shape,
            quant: q.map(|(s, z)| Quant {
                scale: vec![s],
                zero_point: vec![z],
                axis: 0,
            }),
            data: None,
        }
    }

    fn concat(tensors: Vec<Tensor>, axis: i32, activation: Activation) -> Graph {
        Graph {
            tensors,
            nodes: vec![Node {
                op: BuiltinOp::Concatenation,
                version: 2,
                options: OpOptions::Concatenation { axis, activation },
                inputs: vec![Some(0), Some(1)],
                outputs: vec![2],
            }],
            inputs: vec![0, 1],
            outputs: vec![2],
        }
    }

    /// int8 inputs at other scales than the output: TFLite's ConcatenationWithScaling
    /// (f32 arithmetic, round half away), then the fused RELU's clamp.
    #[test]
    fn requantizes_int8_inputs_like_tflite() {
        let (s0, z0, s1, z1, so, zo) = (0.02f32, -3i32, 0.0078125f32, 0, 0.03f32, -10i32);
        let g = concat(
            vec![
                t("a", DType::I8, vec![2, 3], Some((s0, z0.into()))),
                t("b", DType::I8, vec![2, 2], Some((s1, z1.into()))),
                t("y", DType::I8, vec![2, 5], Some((so, zo.into()))),
            ],
            -1,
            Activation::Relu,
        );
        let a: Vec<i8> = vec![-128, -3, 127, 5, -60, 90];
        let b: Vec<i8> = vec![-128, 127, 1, -1];
        let want_one = |q: i8, s: f32, z: i32| {
            let scale = s * (1.0f32 / so);
            let bias = (-z) as f32 * scale;
            let v = f64::from(f32::from(q) * scale + bias).round() as i32 + zo;
            v.clamp(zo, 127) // RELU: at least the zero point
        };
        let mut want = Vec::new();
        for r in 0..2 {
            want.extend(a[3 * r..3 * r + 3].iter().map(|&q| want_one(q, s0, z0)));
            want.extend(b[2 * r..2 * r + 2].iter().map(|&q| want_one(q, s1, z1)));
        }
        for packing in [Packing::Host, Packing::Portable] {
            let m = LoadedModel::from_graph(&g, packing).unwrap();
            let mut r = m.runner();
            r.set_input(0, &a.iter().map(|&v| v as u8).collect::<Vec<_>>())
                .unwrap();
            r.set_input(1, &b.iter().map(|&v| v as u8).collect::<Vec<_>>())
                .unwrap();
            r.run().unwrap();
            let got: Vec<i32> = r
                .output(0)
                .unwrap()
                .iter()
                .map(|&v| v as i8 as i32)
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn clamps_f32_with_the_fused_activation() {
        let g = concat(
            vec![
                t("a", DType::F32, vec![1, 2], None),
                t("b", DType::F32, vec![2, 2], None),
                t("y", DType::F32, vec![3, 2], None),
            ],
            0,
            Activation::Relu6,
        );
        let m = LoadedModel::from_graph(&g, Packing::Portable).unwrap();
        let mut r = m.runner();
        r.set_input_f32(0, &[-1.0, 7.0]).unwrap();
        r.set_input_f32(1, &[0.5, 6.5, -0.0, 3.0]).unwrap();
        r.run().unwrap();
        assert_eq!(r.output_f32(0).unwrap(), [0.0, 6.0, 0.5, 6.0, 0.0, 3.0]);
    }
}

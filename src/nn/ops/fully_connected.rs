//! FULLY_CONNECTED: `y = x·Wᵀ + bias`, fused activation; int8 (per-tensor or per-channel
//! weights, TFLite's reference requantization, bit-exact) and f32. Runs on the crate's GEMM
//! (`qgemm` with the weights packed at conversion, or `sgemm`), scratch from the arena.
//!
//! Blob form. Inputs: x (m·k values), weights (int8: packed for a kernel or k×n i8; f32:
//! k×n), bias (n, optional), and for int8 the multipliers and shifts (n, or 1 per tensor).
//! One scratch tensor (the GEMM workspace). Parameters: m, k, n, then int8: x zero point,
//! weights zero point, output zero point, clamp min, clamp max; f32: clamp min and max as
//! f32 bits.

use super::checks;
use super::{cast, cast_mut, OpDef, OpMem};
use crate::context::Context;
use crate::error::Error;
use crate::matrix::{MatMut, MatRef};
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;
use crate::quant::{
    qgemm, qgemm_packed_workspace_size, qgemm_workspace_size, PackedQBRef, Requantize, Requantized,
    Scale,
};

pub(crate) const DEF: OpDef = OpDef {
    code: 9,
    name: "FULLY_CONNECTED",
    in_place: false,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

const P_M: usize = 0;
const P_K: usize = 1;
const P_N: usize = 2;
// int8
const P_ZA: usize = 3;
const P_ZB: usize = 4;
const P_ZO: usize = 5;
const P_LO: usize = 6;
const P_HI: usize = 7;
// f32
const P_FLO: usize = 3;
const P_FHI: usize = 4;

fn dims(op: &OpView) -> (usize, usize, usize) {
    let d = |i| op.param(i).max(0) as usize;
    (d(P_M), d(P_K), d(P_N))
}

/// Bytes of GEMM workspace the operator needs.
pub(crate) fn workspace_bytes(float: bool, packed: bool, m: usize, k: usize, n: usize) -> usize {
    if float {
        crate::gemm::sgemm_workspace_size(m, n, k)
    } else if packed {
        qgemm_packed_workspace_size(m, n, k)
    } else {
        qgemm_workspace_size(m, n, k)
    }
}

fn check(op: &OpView) -> Result<(), Error> {
    let x = checks::input(op, 0)?;
    let float = x.dtype == DType::F32;
    if float {
        checks::counts(op, 3, 1, 1, 5)?;
    } else {
        checks::counts(op, 5, 1, 1, 8)?;
    }
    let (m, k, n) = dims(op);
    let w = checks::input(op, 1)?;
    let y = checks::output(op, 0)?;
    let ws = checks::temp(op, 0)?;
    let elems = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| op.error("sizes overflow"));
    if x.elems() != elems(m, k)? || y.elems() != elems(m, n)? {
        return Err(op.error("input or output size does not match m, k, n"));
    }
    if let Some(b) = op.input(2).and_then(|t| op.model().tensor(t)) {
        let want = if float { DType::F32 } else { DType::I32 };
        checks::dtype(op, &b, want)?;
        if b.elems() != n {
            return Err(op.error("the bias has the wrong length"));
        }
    }
    let packed = w.dtype == DType::Packed;
    if float {
        checks::dtype(op, &y, DType::F32)?;
        checks::dtype(op, &w, DType::F32)?;
        if w.elems() != elems(k, n)? {
            return Err(op.error("the weights have the wrong size"));
        }
    } else {
        checks::dtype(op, &x, DType::I8)?;
        checks::dtype(op, &y, DType::I8)?;
        if packed {
            let p = PackedQBRef::from_bytes(op.model().constant(op.input(1).unwrap_or(0)))?;
            if p.rows() != k || p.cols() != n {
                return Err(op.error("the packed weights have the wrong shape"));
            }
        } else {
            checks::dtype(op, &w, DType::I8)?;
            if w.elems() != elems(k, n)? {
                return Err(op.error("the weights have the wrong size"));
            }
        }
        let mults = checks::input(op, 3)?;
        let shifts = checks::input(op, 4)?;
        checks::dtype(op, &mults, DType::I32)?;
        checks::dtype(op, &shifts, DType::I32)?;
        if mults.elems() != shifts.elems() || (mults.elems() != 1 && mults.elems() != n) {
            return Err(op.error("multipliers and shifts do not match the output channels"));
        }
    }
    if ws.bytes < workspace_bytes(float, packed, m, k, n) {
        return Err(op.error("its scratch buffer is too small for the GEMM"));
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let (m, k, n) = dims(op);
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let x = mem.input(t(0)?)?;
    let w = mem.input(t(1)?)?;
    let bias = op.input(2).map(|b| mem.input(b)).transpose()?;
    let float = op
        .model()
        .tensor(t(0)?)
        .is_some_and(|i| i.dtype == DType::F32);
    let packed = op
        .model()
        .tensor(t(1)?)
        .is_some_and(|i| i.dtype == DType::Packed);
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let ws_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    if float {
        let (out, ws) = mem.output_and_temp(out_t, ws_t)?;
        let y = cast_mut::<f32>(out);
        let lo = f32::from_bits(op.param(P_FLO) as u32);
        let hi = f32::from_bits(op.param(P_FHI) as u32);
        let a = MatRef::row_major(cast::<f32>(x), m, k)?;
        let b = MatRef::row_major(cast::<f32>(w), k, n)?;
        // Bias first (β = 1 adds the product to it), then the clamp.
        match bias {
            Some(bias) => {
                let bias = cast::<f32>(bias);
                for row in y.chunks_exact_mut(n.max(1)) {
                    row.copy_from_slice(bias);
                }
            }
            None => y.fill(0.0),
        }
        let c = MatMut::row_major(y, m, n)?;
        crate::gemm::sgemm(1.0, a, b, 1.0, c, Context::new().workspace(ws))?;
        for v in y.iter_mut() {
            *v = v.max(lo).min(hi);
        }
        return Ok(());
    }
    let mults = cast::<i32>(mem.input(t(3)?)?);
    let shifts = cast::<i32>(mem.input(t(4)?)?);
    let scale = if mults.len() == 1 {
        Scale::PerTensor {
            multiplier: mults[0],
            shift: shifts[0],
        }
    } else {
        Scale::PerChannel {
            multipliers: mults,
            shifts,
        }
    };
    let mut rq = Requantize::new(scale, op.param(P_ZO)).with_clamp(op.param(P_LO), op.param(P_HI));
    if let Some(b) = bias {
        rq = rq.with_bias(cast::<i32>(b));
    }
    let (za, zb) = (op.param(P_ZA), op.param(P_ZB));
    let (out, ws) = mem.output_and_temp(out_t, ws_t)?;
    let a = MatRef::row_major(cast::<i8>(x), m, k)?;
    let c = Requantized(&rq, MatMut::row_major(cast_mut::<i8>(out), m, n)?);
    let ctx = Context::new().workspace(ws);
    if packed {
        qgemm(a, za, PackedQBRef::from_bytes(w)?, zb, c, ctx)
    } else {
        qgemm(a, za, MatRef::row_major(cast::<i8>(w), k, n)?, zb, c, ctx)
    }
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::{activation_range_f, activation_range_q, Lowering, Packing};
    use crate::quant::{qgemm_packed_b_size, PackedQBRef};
    use crate::MatRef;

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (act, keep) = match &g.nodes[node].options {
            OpOptions::FullyConnected {
                activation,
                keep_num_dims,
                ..
            } => (*activation, *keep_num_dims),
            _ => return Err(err("FULLY_CONNECTED without its options")),
        };
        let _ = keep; // the output tensor's shape already says it
        let x = g.input(node, 0)?;
        let w_t = g.input_index(node, 1)?;
        let w = &g.tensors[w_t];
        let y = &g.tensors[g.output_index(node, 0)?];
        let (n, k) = match w.shape[..] {
            [n, k] => (n, k),
            _ => return Err(err("the weights are not 2-D")),
        };
        let data = w
            .data
            .as_ref()
            .ok_or_else(|| err("the weights are not constant"))?;
        if k == 0 || x.elems() % k != 0 {
            return Err(err(
                "the input size is not a multiple of the weights' depth",
            ));
        }
        let m = x.elems() / k;
        if y.elems() != m * n {
            return Err(err("the output shape does not match the input and weights"));
        }
        let bias = g.nodes[node].inputs.get(2).copied().flatten();
        let float = x.dtype == DType::F32;
        let (mi, ki, ni) = (m as i32, k as i32, n as i32);
        // Weights transposed to k×n row-major: the GEMM's B with unit column stride.
        let esize = w.dtype.size();
        let mut wt = vec![0u8; data.len()];
        for o in 0..n {
            for i in 0..k {
                let src = (o * k + i) * esize;
                let dst = (i * n + o) * esize;
                wt[dst..dst + esize].copy_from_slice(&data[src..src + esize]);
            }
        }
        if float {
            if w.dtype != DType::F32 || y.dtype != DType::F32 {
                return Err(err(
                    "float FULLY_CONNECTED with non-float weights or output",
                ));
            }
            let (lo, hi) = activation_range_f(act).map_err(err)?;
            let wt_t = l.add_const(format!("{}/kxn", w.name), DType::F32, vec![k, n], wt);
            let params = vec![mi, ki, ni, lo.to_bits() as i32, hi.to_bits() as i32];
            let mut op = l.op(node, 9, params);
            op.inputs = vec![op.inputs[0], Some(wt_t), bias];
            let ws = super::workspace_bytes(true, false, m, k, n);
            op.temps = vec![l.add_temp(format!("{}/gemm", y.name), ws)];
            l.push(op);
            return Ok(());
        }
        if x.dtype != DType::I8 || w.dtype != DType::I8 || y.dtype != DType::I8 {
            return Err(err(
                "int8 FULLY_CONNECTED needs int8 input, weights and output",
            ));
        }
        let q = |t: &crate::nn::transform::ir::Tensor| {
            t.quant
                .clone()
                .ok_or_else(|| err("a quantized tensor has no scale"))
        };
        let (xq, wq, yq) = (q(x)?, q(w)?, q(y)?);
        let (sx, za) = xq.first();
        let (sy, zo) = yq.first();
        let zb = wq.first().1;
        if wq.per_channel() && wq.scale.len() != n {
            return Err(err(
                "per-channel weight scales do not match the output channels",
            ));
        }
        let (mut mults, mut shifts) = (Vec::new(), Vec::new());
        for &sw in &wq.scale {
            let real = f64::from(sx) * f64::from(sw) / f64::from(sy);
            let (mul, sh) = crate::quantize_multiplier(real)?;
            mults.push(mul);
            shifts.push(sh);
        }
        let (lo, hi) = activation_range_q(act, sy, zo, -128, 127).map_err(err)?;
        let (w_in, packed) = match l.packing {
            Packing::Host => {
                let wt_i8: Vec<i8> = wt.iter().map(|&b| b as i8).collect();
                let mut buf = vec![0u8; qgemm_packed_b_size(k, n)];
                let p = PackedQBRef::pack(MatRef::row_major(&wt_i8, k, n)?, &mut buf)?;
                let bytes = p.as_bytes().to_vec();
                let name = format!("{}/packed/{}", w.name, p.kernel_name());
                (
                    l.add_const(name, DType::Packed, vec![bytes.len()], bytes),
                    true,
                )
            }
            Packing::Portable => {
                let name = format!("{}/kxn", w.name);
                (l.add_const(name, DType::I8, vec![k, n], wt), false)
            }
        };
        let mults_t = l.add_i32(format!("{}/multipliers", y.name), &mults);
        let shifts_t = l.add_i32(format!("{}/shifts", y.name), &shifts);
        let params = vec![mi, ki, ni, za, zb, zo, lo, hi];
        let mut op = l.op(node, 9, params);
        op.inputs = vec![
            op.inputs[0],
            Some(w_in),
            bias,
            Some(mults_t),
            Some(shifts_t),
        ];
        let ws = super::workspace_bytes(false, packed, m, k, n);
        op.temps = vec![l.add_temp(format!("{}/gemm", y.name), ws)];
        l.push(op);
        Ok(())
    }
}

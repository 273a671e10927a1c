//! PAD and PADV2: a tensor of up to 6 dimensions placed inside a larger one filled with a
//! constant. PAD fills with 0 (int8: the output zero point); PADV2 with its constant-value
//! operand (int8: its quantized value, which TFLite requires to share the output's
//! quantization). Pure copies, so int8 matches TFLite's `pad.cc` (BUILTIN_REF,
//! `reference_ops::Pad` / `PadImageStyle`, and `EvalInt`'s choice of pad value) exactly.
//!
//! Blob form. Input: x. Output: y (same dtype and rank; each dimension at least the input's
//! plus its leading padding). No scratch. Parameters: the pad value's bits (f32 bits, or the
//! integer sign-extended), then the leading padding of each of the 6 possible dimensions
//! (0 past the rank). The output shape carries the trailing padding.

use super::checks;
use super::nd;
use super::{OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, MAX_RANK};
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 34,
    name: "PAD",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

pub(crate) const PADV2: OpDef = OpDef {
    code: 60,
    name: "PADV2",
    ..DEF
};

const P_VALUE: usize = 0;
const P_LEFT: usize = 1;
const N_PARAMS: usize = 1 + MAX_RANK;

fn check(op: &OpView) -> Result<(), Error> {
    checks::counts(op, 1, 1, 0, N_PARAMS)?;
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    if x.dtype != y.dtype || x.dtype.size() > 4 || x.dtype == DType::Packed {
        return Err(op.error("PAD needs input and output of one plain type of ≤ 4 bytes"));
    }
    let (xs, ys) = (x.shape(), y.shape());
    if xs.rank() != ys.rank() {
        return Err(op.error("PAD's input and output ranks differ"));
    }
    for i in 0..MAX_RANK {
        let left = op.param(P_LEFT + i);
        if left < 0 || (i >= xs.rank() && left != 0) {
            return Err(op.error("a PAD padding is out of range"));
        }
        if i < xs.rank() && (xs.dim(i) as u64 + left as u64) > ys.dim(i) as u64 {
            return Err(op.error("PAD's output is smaller than its input plus padding"));
        }
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let (xi, yi) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let (xt, yt) = match (op.input(0), op.output(0)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(op.error("missing tensor")),
    };
    let esize = xi.dtype.size().max(1);
    let value = (op.param(P_VALUE) as u32).to_le_bytes();
    let value = value.get(..esize).unwrap_or(&[]);
    let x = mem.input(xt)?;
    let y = mem.output(yt)?;
    for e in y.chunks_exact_mut(esize) {
        e.copy_from_slice(value);
    }
    let (xs, ys) = (xi.shape(), yi.shape());
    let rank = xs.rank().min(MAX_RANK);
    if rank == 0 {
        let n = x.len().min(y.len());
        y[..n].copy_from_slice(&x[..n]);
        return Ok(());
    }
    let (xst, yst) = (nd::strides(&xs), nd::strides(&ys));
    // Where input element 0 lands in the output.
    let base: usize = (0..rank)
        .map(|i| op.param(P_LEFT + i) as usize * yst[i])
        .sum();
    // One contiguous row (the last dimension) per step over the other dimensions.
    let mut sizes = [0usize; MAX_RANK];
    for (i, s) in sizes.iter_mut().enumerate().take(rank - 1) {
        *s = xs.dim(i);
    }
    let row = xs.dim(rank - 1) * esize;
    nd::walk(
        &sizes[..rank - 1],
        &xst[..rank - 1],
        &yst[..rank - 1],
        |a, b| {
            let (src, dst) = (a * esize, (base + b) * esize);
            if let (Some(s), Some(d)) = (x.get(src..src + row), y.get_mut(dst..dst + row)) {
                d.copy_from_slice(s);
            }
        },
    );
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec::Vec;

    use crate::error::Error;
    use crate::nn::blob::MAX_RANK;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::Tensor;
    use crate::nn::transform::lower::Lowering;

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let x = g.input(node, 0)?;
        let pads = g.input(node, 1)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        let rank = x.shape.len();
        if rank > MAX_RANK {
            return Err(err("PAD of a tensor of rank above 6 is not supported"));
        }
        let data = pads
            .data
            .as_ref()
            .ok_or_else(|| err("PAD with non-constant paddings is not supported"))?;
        let values: Vec<i64> = match pads.dtype {
            DType::I32 => data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            DType::I64 => data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b)
                })
                .collect(),
            _ => return Err(err("PAD paddings of this type are not supported")),
        };
        if values.len() != 2 * rank || y.shape.len() != rank || y.dtype != x.dtype {
            return Err(err("PAD paddings do not match the input's rank"));
        }
        let mut params = alloc::vec![0i32; 1 + MAX_RANK];
        for i in 0..rank {
            let (lo, hi) = (values[2 * i], values[2 * i + 1]);
            if lo < 0 || hi < 0 || lo > i64::from(i32::MAX) {
                return Err(err("negative PAD paddings are not supported"));
            }
            if x.shape[i] as i64 + lo + hi != y.shape[i] as i64 {
                return Err(err("PAD's output shape does not match its paddings"));
            }
            params[1 + i] = lo as i32;
        }
        let constant = g.nodes[node].inputs.get(2).copied().flatten();
        let q = |t: &Tensor| t.quant.as_ref().map(|q| q.first());
        params[0] = match (x.dtype, constant) {
            (DType::F32, None) => 0,
            (DType::I8, None) => q(y).map_or(0, |(_, z)| z),
            (DType::I32, None) => 0,
            (DType::F32 | DType::I8 | DType::I32, Some(c)) => {
                let c = &g.tensors[c];
                let bytes = c
                    .data
                    .as_ref()
                    .filter(|d| c.dtype == x.dtype && d.len() == x.dtype.size())
                    .ok_or_else(|| err("a PADV2 value that is not a constant scalar of the input's type is not supported"))?;
                if x.dtype == DType::I8 {
                    if q(c) != q(y) {
                        return Err(err(
                            "a PADV2 value quantized unlike the output is not supported",
                        ));
                    }
                    i32::from(bytes[0] as i8)
                } else {
                    i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
                }
            }
            _ => return Err(err("PAD of this element type is not supported")),
        };
        if x.dtype == DType::I8 && !(-128..=127).contains(&params[0]) {
            return Err(err("PAD's int8 zero point is out of range"));
        }
        let code = g.nodes[node].op.code() as u16;
        let mut op = l.op(node, code, params);
        op.inputs.truncate(1);
        l.push(op);
        Ok(())
    }
}

//! SPLIT, SPLIT_V and UNPACK: the input viewed as `[outer, axis, inner]`, each output takes
//! a run of the axis, `[outer, len_j, inner]` (UNPACK: runs of one, the axis dropped from
//! the output's shape). Bytes are moved as they are (int8, f32 or any other element type),
//! as TFLite's reference `Split` and `Unpack` do.
//!
//! Blob form: one input, N outputs, no scratch; parameters: outer, axis, inner (in
//! elements), then per output its first index along the axis and its length.

use super::checks;
use super::{OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const SPLIT: OpDef = OpDef {
    code: 49,
    name: "SPLIT",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::split,
};

pub(crate) const SPLIT_V: OpDef = OpDef {
    code: 102,
    name: "SPLIT_V",
    #[cfg(feature = "alloc")]
    lower: lower::split_v,
    ..SPLIT
};

pub(crate) const UNPACK: OpDef = OpDef {
    code: 88,
    name: "UNPACK",
    #[cfg(feature = "alloc")]
    lower: lower::unpack,
    ..SPLIT
};

fn word(op: &OpView, i: usize) -> usize {
    op.param(i).max(0) as usize
}

fn check(op: &OpView) -> Result<(), Error> {
    let n = op.num_outputs();
    checks::counts(op, 1, n, 0, 3 + 2 * n)?;
    let x = checks::input(op, 0)?;
    let (outer, axis, inner) = (word(op, 0), word(op, 1), word(op, 2));
    let size = |a: usize| {
        outer
            .checked_mul(a)
            .and_then(|v| v.checked_mul(inner))
            .ok_or_else(|| op.error("sizes overflow"))
    };
    if x.dtype == DType::Packed || size(axis)? != x.elems() {
        return Err(op.error("the input does not match outer, axis and inner"));
    }
    for j in 0..n {
        let y = checks::output(op, j)?;
        let (start, len) = (word(op, 3 + 2 * j), word(op, 4 + 2 * j));
        if y.dtype != x.dtype || size(len)? != y.elems() || start.saturating_add(len) > axis {
            return Err(op.error("an output does not match its run of the input"));
        }
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let x = op.input(0).ok_or_else(|| op.error("missing input"))?;
    let esize = op.model().tensor(x).map_or(1, |t| t.dtype.size());
    let src = mem.input(x)?;
    let (axis, inner) = (word(op, 1), word(op, 2));
    // Saturating: check proved these sizes for a loaded blob; nothing here may panic.
    let row = axis.saturating_mul(inner).saturating_mul(esize);
    for j in 0..op.num_outputs() {
        let y = op.output(j).ok_or_else(|| op.error("missing output"))?;
        let bytes = |v: usize| v.saturating_mul(inner).saturating_mul(esize);
        let (start, run) = (bytes(word(op, 3 + 2 * j)), bytes(word(op, 4 + 2 * j)));
        if run == 0 {
            continue;
        }
        let dst = mem.output(y)?;
        for (d, s) in dst.chunks_exact_mut(run).zip(src.chunks_exact(row)) {
            let s = s
                .get(start..start.saturating_add(run))
                .ok_or_else(|| op.error("an output's run lies outside the input"))?;
            d.copy_from_slice(s);
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec::Vec;

    use super::super::strided::const_ints;
    use crate::error::Error;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::Lowering;

    /// Pushes the operator for data input `data` split along `axis` (already
    /// non-negative) into runs of `lens`.
    fn push(
        l: &mut Lowering,
        node: usize,
        data: usize,
        axis: usize,
        lens: &[usize],
    ) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let x = g.input(node, data)?;
        let shape = &x.shape;
        if axis >= shape.len() {
            return Err(err("the axis is outside the input's rank"));
        }
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        if lens.iter().sum::<usize>() != shape[axis] {
            return Err(err("the outputs do not cover the axis"));
        }
        let mut params = alloc::vec![outer, shape[axis], inner];
        let mut start = 0;
        for (j, &len) in lens.iter().enumerate() {
            let y = &g.tensors[g.output_index(node, j)?];
            if y.dtype != x.dtype || y.elems() != outer * len * inner {
                return Err(err("an output does not match its part of the input"));
            }
            params.extend([start, len]);
            start += len;
        }
        let params = params
            .into_iter()
            .map(i32::try_from)
            .collect::<Result<Vec<i32>, _>>()
            .map_err(|_| err("a tensor too large is not supported"))?;
        let code = g.nodes[node].op.code() as u16;
        let mut op = l.op(node, code, params);
        op.inputs = alloc::vec![op.inputs[data]];
        l.push(op);
        Ok(())
    }

    fn norm_axis(a: i64, rank: usize) -> Option<usize> {
        let a = if a < 0 { a + rank as i64 } else { a };
        usize::try_from(a).ok().filter(|&a| a < rank)
    }

    /// The lengths of each output along `axis` (its own shapes say them).
    fn out_lens(l: &Lowering, node: usize, axis: usize) -> Result<Vec<usize>, Error> {
        let g = l.graph;
        (0..g.nodes[node].outputs.len())
            .map(|j| {
                let y = &g.tensors[g.output_index(node, j)?];
                y.shape
                    .get(axis)
                    .copied()
                    .ok_or_else(|| g.node_error(node, "an output has too few dimensions"))
            })
            .collect()
    }

    pub(crate) fn split(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        // SPLIT: the axis operand first, then the input.
        let a = const_ints(g, node, 0)?;
        let rank = g.input(node, 1)?.shape.len();
        let axis = a
            .first()
            .and_then(|&a| norm_axis(a, rank))
            .ok_or_else(|| g.node_error(node, "the axis is outside the input's rank"))?;
        let lens = out_lens(l, node, axis)?;
        push(l, node, 1, axis, &lens)
    }

    pub(crate) fn split_v(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        // SPLIT_V: the input, the sizes, the axis.
        let a = const_ints(g, node, 2)?;
        let rank = g.input(node, 0)?.shape.len();
        let axis = a
            .first()
            .and_then(|&a| norm_axis(a, rank))
            .ok_or_else(|| g.node_error(node, "the axis is outside the input's rank"))?;
        let lens = out_lens(l, node, axis)?;
        push(l, node, 0, axis, &lens)
    }

    pub(crate) fn unpack(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let axis = match &g.nodes[node].options {
            OpOptions::Unpack { axis, .. } => *axis,
            _ => return Err(g.node_error(node, "UNPACK without its options")),
        };
        let x = g.input(node, 0)?;
        let axis = norm_axis(axis.into(), x.shape.len())
            .ok_or_else(|| g.node_error(node, "the axis is outside the input's rank"))?;
        let n = g.nodes[node].outputs.len();
        if x.shape[axis] != n {
            return Err(g.node_error(node, "the output count does not match the axis"));
        }
        push(l, node, 0, axis, &alloc::vec![1; n])
    }
}

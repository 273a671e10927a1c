//! GATHER with constant indices: the input viewed as `[outer, axis, inner]`, the output is
//! `[outer, n, inner]` with row `i` of each outer block the input's row `indices[i]` (the
//! indices' own shape sits in the output's shape in place of the axis). Bytes are moved as
//! they are (int8, f32 or any other element type), as TFLite's reference `Gather` does
//! (`batch_dims` 0; int32 or int64 indices, which must lie in `0..axis` as TFLite requires).
//!
//! Blob form: inputs: the data, the indices (an int32 constant, converted from int64 when
//! lowering); one output; no scratch. Parameters: outer, axis, inner (elements).

use super::checks;
use super::{cast, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 36,
    name: "GATHER",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

fn word(op: &OpView, i: usize) -> usize {
    op.param(i).max(0) as usize
}

fn check(op: &OpView) -> Result<(), Error> {
    checks::counts(op, 2, 1, 0, 3)?;
    let (x, idx, y) = (
        checks::input(op, 0)?,
        checks::input(op, 1)?,
        checks::output(op, 0)?,
    );
    checks::dtype(op, &idx, DType::I32)?;
    if idx.storage != Storage::Constant {
        return Err(op.error("the indices are not a constant"));
    }
    let (outer, axis, inner) = (word(op, 0), word(op, 1), word(op, 2));
    let size = |a: usize| {
        outer
            .checked_mul(a)
            .and_then(|v| v.checked_mul(inner))
            .ok_or_else(|| op.error("sizes overflow"))
    };
    if x.dtype != y.dtype || x.dtype == DType::Packed {
        return Err(op.error("input and output differ in type"));
    }
    if size(axis)? != x.elems() || size(idx.elems())? != y.elems() {
        return Err(op.error("the shapes do not match outer, axis and inner"));
    }
    let values = cast::<i32>(op.model().constant(op.input(1).unwrap_or(0)));
    if values.len() != idx.elems() || values.iter().any(|&i| i < 0 || i as usize >= axis) {
        return Err(op.error("an index is outside the axis"));
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let x = t(0)?;
    let esize = op.model().tensor(x).map_or(1, |i| i.dtype.size());
    let src = mem.input(x)?;
    let indices = cast::<i32>(mem.input(t(1)?)?);
    let y = op.output(0).ok_or_else(|| op.error("missing output"))?;
    // Saturating: check proved these sizes for a loaded blob; nothing here may panic.
    let run = word(op, 2).saturating_mul(esize);
    let row = word(op, 1).saturating_mul(run);
    if run == 0 || row == 0 || indices.is_empty() {
        return Ok(());
    }
    let dst = mem.output(y)?;
    let block = indices.len().saturating_mul(run);
    for (d, s) in dst.chunks_exact_mut(block).zip(src.chunks_exact(row)) {
        for (o, &i) in d.chunks_exact_mut(run).zip(indices) {
            let at = (i.max(0) as usize).saturating_mul(run);
            let v = s
                .get(at..at.saturating_add(run))
                .ok_or_else(|| op.error("an index is outside the axis"))?;
            o.copy_from_slice(v);
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec::Vec;

    use super::super::strided::const_ints;
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::Lowering;

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (axis, batch_dims) = match &g.nodes[node].options {
            OpOptions::Gather { axis, batch_dims } => (*axis, *batch_dims),
            _ => return Err(err("GATHER without its options")),
        };
        if batch_dims != 0 {
            return Err(err("GATHER with batch_dims is not supported"));
        }
        let x = g.input(node, 0)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        let rank = x.shape.len() as i64;
        let a = i64::from(axis);
        let axis = usize::try_from(if a < 0 { a + rank } else { a })
            .ok()
            .filter(|&a| a < x.shape.len())
            .ok_or_else(|| err("the axis is outside the input's rank"))?;
        let indices = const_ints(g, node, 1)?;
        let n = x.shape[axis];
        if indices.iter().any(|&i| i < 0 || i >= n as i64) {
            return Err(err("an index is outside the axis"));
        }
        let outer: usize = x.shape[..axis].iter().product();
        let inner: usize = x.shape[axis + 1..].iter().product();
        if x.dtype != y.dtype || y.elems() != outer * indices.len() * inner {
            return Err(err("the output shape does not match the operands"));
        }
        let int =
            |v: usize| i32::try_from(v).map_err(|_| err("a tensor too large is not supported"));
        let params = alloc::vec![int(outer)?, int(n)?, int(inner)?];
        let mut op = l.op(node, 36, params);
        if g.input(node, 1)?.dtype != DType::I32 {
            // int64 indices (checked in range above) as int32.
            let idx: Vec<i32> = indices.iter().map(|&i| i as i32).collect();
            op.inputs[1] = Some(l.add_i32(format!("{}/indices", y.name), &idx));
        }
        op.inputs.truncate(2);
        l.push(op);
        Ok(())
    }
}

//! RESHAPE and SQUEEZE: the same bytes under another shape. The memory plan gives the
//! output its input's arena bytes, so running them does nothing; when it could not (a model
//! input reshaped into a model output, say), the bytes are copied.
//!
//! Blob form: one input, one output, no parameters (the output tensor carries the shape).

use super::checks;
use super::{OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};

pub(crate) const DEF: OpDef = OpDef {
    code: 22,
    name: "RESHAPE",
    in_place: true,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower,
};

pub(crate) const SQUEEZE: OpDef = OpDef {
    code: 43,
    name: "SQUEEZE",
    ..DEF
};

fn check(op: &OpView) -> Result<(), Error> {
    checks::counts(op, 1, 1, 0, 0)?;
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    if x.bytes != y.bytes || x.dtype != y.dtype {
        return Err(op.error("input and output differ in size or type"));
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let (x, y) = match (op.input(0), op.output(0)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(op.error("missing tensor")),
    };
    let (xi, yi) = match (mem.model().tensor(x), mem.model().tensor(y)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(op.error("missing tensor")),
    };
    if xi.storage == Storage::Arena && xi.offset == yi.offset {
        return Ok(()); // a view: the bytes are already there
    }
    let src = mem.input(x)?;
    mem.output(y)?.copy_from_slice(src);
    Ok(())
}

#[cfg(feature = "alloc")]
fn lower(l: &mut crate::nn::transform::lower::Lowering, node: usize) -> Result<(), Error> {
    let g = l.graph;
    let x = g.input(node, 0)?;
    let y = &g.tensors[g.output_index(node, 0)?];
    if x.byte_len() != y.byte_len() || x.dtype != y.dtype {
        return Err(g.node_error(node, "input and output differ in size or type"));
    }
    let code = g.nodes[node].op.code() as u16;
    let mut op = l.op(node, code, alloc::vec::Vec::new());
    op.inputs.truncate(1); // the shape operand is in the output tensor already
    op.alias = true;
    l.push(op);
    Ok(())
}

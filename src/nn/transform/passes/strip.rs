//! `strip_unused`: removes the nodes no graph output depends on and the tensors nothing
//! refers to. `remove_nodes(op=NAME)`: removes nodes that compute nothing — a RESHAPE or
//! SQUEEZE to the shape it already has, a TRANSPOSE by the identity permutation, a RESHAPE or
//! SQUEEZE read only by RESHAPEs (which give the shape themselves: the ONNX importer's layout
//! RESHAPE before an ONNX Reshape or Flatten after a global pool) — (all of them, or those of
//! one operator), their readers rewired to the node's input.

use alloc::string::String;
use alloc::vec;

use super::{compact, count, pipeline_error, rewire, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::transform::ir::{BuiltinOp, Graph};

pub(super) const STRIP_UNUSED: PassDef = PassDef {
    name: "strip_unused",
    args: &[],
    doc: "remove nodes no output depends on, and unreferenced tensors",
    run: Run::Graph(strip_unused),
};

pub(super) const REMOVE_NODES: PassDef = PassDef {
    name: "remove_nodes",
    args: &["op"],
    doc: "remove no-op RESHAPE/SQUEEZE (same shape, or read only by RESHAPEs) and identity TRANSPOSE nodes (op=NAME: only that operator)",
    run: Run::Graph(remove_nodes),
};

fn strip_unused(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let mut needed = vec![false; g.tensors.len()];
    for &t in &g.outputs {
        if let Some(n) = needed.get_mut(t) {
            *n = true;
        }
    }
    let mut keep = vec![false; g.nodes.len()];
    for (i, node) in g.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|&t| needed.get(t) == Some(&true)) {
            keep[i] = true;
            for &t in node.inputs.iter().flatten() {
                if let Some(n) = needed.get_mut(t) {
                    *n = true;
                }
            }
        }
    }
    let before = g.nodes.len();
    let mut k = keep.iter();
    g.nodes.retain(|_| k.next() == Some(&true));
    let nodes = before - g.nodes.len();
    let tensors = compact(g);
    Ok(alloc::format!(
        "removed {} and {}",
        count(nodes, "node"),
        count(tensors, "tensor")
    ))
}

/// Whether node `i` passes its input 0 through unchanged, or is a RESHAPE or SQUEEZE (of the
/// same type and quantization) whose every reader is a RESHAPE reading it as its data: that
/// reader's output shape is its own, so it can read the node's input instead.
fn is_no_op(g: &Graph, i: usize) -> bool {
    let node = &g.nodes[i];
    let (Some(Some(xi)), Some(&yi)) = (node.inputs.first(), node.outputs.first()) else {
        return false;
    };
    let (x, y) = (&g.tensors[*xi], &g.tensors[yi]);
    let relabel = x.dtype == y.dtype && x.quant == y.quant;
    let same = x.shape == y.shape && relabel;
    let reshaped_again = || {
        let mut reads = g
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().enumerate().map(move |(k, &t)| (n, k, t)))
            .filter(|&(_, _, t)| t == Some(yi))
            .peekable();
        reads.peek().is_some() && reads.all(|(n, k, _)| n.op == BuiltinOp::Reshape && k == 0)
    };
    match node.op {
        BuiltinOp::Reshape | BuiltinOp::Squeeze => same || (relabel && reshaped_again()),
        BuiltinOp::Transpose => {
            let perm = node.inputs.get(1).copied().flatten().map(|p| &g.tensors[p]);
            let identity = perm.and_then(|p| p.data.as_ref()).is_some_and(|d| {
                d.chunks_exact(4)
                    .enumerate()
                    .all(|(k, b)| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) == k as i32)
            });
            same && identity
        }
        _ => false,
    }
}

fn remove_nodes(g: &mut Graph, args: &Args) -> Result<String, Error> {
    let only = match args.get("op") {
        None => None,
        Some(name) => {
            let op = [BuiltinOp::Reshape, BuiltinOp::Squeeze, BuiltinOp::Transpose]
                .into_iter()
                .find(|op| op.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    pipeline_error(
                        "remove_nodes removes RESHAPE, SQUEEZE or TRANSPOSE, not this operator",
                        name,
                    )
                })?;
            Some(op)
        }
    };
    let mut removed = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        let node = &g.nodes[i];
        let output = node.outputs.first().copied();
        let wanted = only.is_none_or(|op| op == node.op);
        // A graph output keeps its own tensor (its name is part of the model's interface).
        let is_output = output.is_some_and(|y| g.outputs.contains(&y));
        if wanted && !is_output && is_no_op(g, i) {
            if let (Some(Some(x)), Some(y)) = (node.inputs.first().copied(), output) {
                g.nodes.remove(i);
                rewire(g, y, x);
                removed += 1;
                continue;
            }
        }
        i += 1;
    }
    compact(g);
    Ok(alloc::format!("removed {}", count(removed, "no-op node")))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::OpOptions;

    #[test]
    fn strip_unused_removes_dead_branches_only() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        let w = b.weights(4, 3, 1);
        let y = b.act(&[1, 3]);
        b.fc(x, w, y);
        // A dead branch: its output is read by nobody.
        let w2 = b.weights(4, 2, 2);
        let dead = b.act(&[1, 2]);
        b.fc(x, w2, dead);
        let mut g = b.finish(&[x], &[y]);
        let before = run_f32(&g, 7);
        let line = strip_unused(&mut g, &Args::default()).unwrap();
        assert_eq!(g.nodes.len(), 1, "{line}");
        assert_eq!(g.tensors.len(), 3, "{line}");
        assert_eq!(run_f32(&g, 7), before);
    }

    #[test]
    fn remove_nodes_drops_no_op_reshapes_and_keeps_real_ones() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        let same = b.act(&[1, 4]);
        b.node(BuiltinOp::Reshape, OpOptions::None, &[x], &[same]);
        let w = b.weights(4, 6, 3);
        let h = b.act(&[1, 6]);
        b.fc(same, w, h);
        let out = b.act(&[2, 3]);
        b.node(
            BuiltinOp::Reshape,
            OpOptions::Reshape {
                new_shape: Some(vec![2, 3]),
            },
            &[h],
            &[out],
        );
        let mut g = b.finish(&[x], &[out]);
        let before = run_f32(&g, 3);
        remove_nodes(&mut g, &Args::default()).unwrap();
        let ops: alloc::vec::Vec<_> = g.nodes.iter().map(|n| n.op).collect();
        assert_eq!(ops, [BuiltinOp::FullyConnected, BuiltinOp::Reshape]);
        assert_eq!(run_f32(&g, 3), before);
        let bad = remove_nodes(&mut g, &args(&[("op", "CONV_2D")]));
        assert!(bad.is_err());
    }

    #[test]
    fn remove_nodes_drops_a_reshape_read_only_by_reshapes() {
        // pool-like [1, 1, 1, 4] -> RESHAPE [1, 4, 1, 1] -> RESHAPE [1, 4] -> FC, as the ONNX
        // importer writes a Flatten after a global pool; a second reader that is not a
        // RESHAPE keeps the first one.
        for shared in [false, true] {
            let mut b = Builder::default();
            let x = b.act(&[1, 1, 1, 4]);
            let nchw = b.act(&[1, 4, 1, 1]);
            b.node(BuiltinOp::Reshape, OpOptions::None, &[x], &[nchw]);
            let flat = b.act(&[1, 4]);
            let to_flat = OpOptions::Reshape {
                new_shape: Some(vec![1, 4]),
            };
            b.node(BuiltinOp::Reshape, to_flat, &[nchw], &[flat]);
            let w = b.weights(4, 3, 1);
            let y = b.act(&[1, 3]);
            b.fc(flat, w, y);
            let mut outs = vec![y];
            if shared {
                let w2 = b.weights(4, 2, 2);
                let z = b.act(&[1, 2]);
                b.fc(nchw, w2, z);
                outs.push(z);
            }
            let mut g = b.finish(&[x], &outs);
            let before = run_f32(&g, 5);
            remove_nodes(&mut g, &Args::default()).unwrap();
            let reshapes = g
                .nodes
                .iter()
                .filter(|n| n.op == BuiltinOp::Reshape)
                .count();
            assert_eq!(reshapes, if shared { 2 } else { 1 });
            assert_eq!(run_f32(&g, 5), before);
        }
    }
}

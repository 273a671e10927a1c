//! `merge_duplicates`: constants with the same type, shape, quantization and bytes become
//! one tensor, and nodes with the same operator, version, options and inputs become one
//! node (the later one's readers read the earlier one's outputs). Graph outputs keep their
//! own producers.

use alloc::string::String;
use alloc::vec::Vec;

use super::{compact, count, rewire, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::transform::ir::Graph;

pub(super) const MERGE_DUPLICATES: PassDef = PassDef {
    name: "merge_duplicates",
    args: &[],
    doc: "merge identical constants, then identical nodes",
    run: Run::Graph(merge_duplicates),
};

fn merge_duplicates(g: &mut Graph, _: &Args) -> Result<String, Error> {
    // Constants: compare each with the first of its kind (quadratic in the constants with
    // equal sizes only).
    let mut constants = 0;
    let mut firsts: Vec<usize> = Vec::new();
    for t in 0..g.tensors.len() {
        let Some(data) = &g.tensors[t].data else {
            continue;
        };
        let same = firsts.iter().copied().find(|&f| {
            let (a, b) = (&g.tensors[f], &g.tensors[t]);
            a.dtype == b.dtype
                && a.shape == b.shape
                && a.quant == b.quant
                && a.data.as_deref() == Some(data.as_slice())
        });
        match same {
            Some(f) if !g.inputs.contains(&t) => {
                rewire(g, t, f);
                constants += 1;
            }
            _ => firsts.push(t),
        }
    }
    // Nodes, earliest kept.
    let mut nodes = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        let twin = (0..i).find(|&j| {
            let (a, b) = (&g.nodes[j], &g.nodes[i]);
            a.op == b.op
                && a.version == b.version
                && a.options == b.options
                && a.inputs == b.inputs
                && a.outputs.len() == b.outputs.len()
        });
        let outputs_free = g.nodes[i].outputs.iter().all(|t| !g.outputs.contains(t));
        if let (Some(j), true) = (twin, outputs_free) {
            let pairs: Vec<(usize, usize)> = g.nodes[i]
                .outputs
                .iter()
                .copied()
                .zip(g.nodes[j].outputs.iter().copied())
                .collect();
            g.nodes.remove(i);
            for (from, to) in pairs {
                rewire(g, from, to);
            }
            nodes += 1;
            continue;
        }
        i += 1;
    }
    compact(g);
    Ok(alloc::format!(
        "merged {} and {}",
        count(constants, "constant"),
        count(nodes, "node")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::{Activation, BuiltinOp, OpOptions};

    #[test]
    fn merges_equal_weights_and_equal_nodes() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        let (w1, w2) = (b.weights(4, 3, 5), b.weights(4, 3, 5));
        let (h1, h2) = (b.act(&[1, 3]), b.act(&[1, 3]));
        b.fc(x, w1, h1);
        b.fc(x, w2, h2);
        let y = b.act(&[1, 3]);
        let add = OpOptions::Add {
            activation: Activation::None,
            pot_scale_int16: false,
        };
        b.node(BuiltinOp::Add, add, &[h1, h2], &[y]);
        let mut g = b.finish(&[x], &[y]);
        let before = run_f32(&g, 2);
        let line = merge_duplicates(&mut g, &Args::default()).unwrap();
        assert_eq!(line, "merged 1 constant and 1 node");
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[1].inputs[0], g.nodes[1].inputs[1]);
        assert_eq!(run_f32(&g, 2), before);
    }
}

//! `fold_constants`: a node whose inputs are all constants is computed once, now, by the
//! runtime's own operator (the node alone, lowered portably and run on the host), and its
//! outputs become constants; the node is removed. So the folded values are exactly what
//! the model would have computed at run time. Nodes producing a graph output stay, and so
//! do nodes the runtime cannot run alone (reported).

use alloc::string::String;
use alloc::vec::Vec;

use super::{compact, count, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::transform::ir::Graph;
use crate::nn::transform::{LoadedModel, Packing};

pub(super) const FOLD_CONSTANTS: PassDef = PassDef {
    name: "fold_constants",
    args: &[],
    doc: "compute nodes whose inputs are all constant, replace them by their outputs",
    run: Run::Graph(fold_constants),
};

/// The outputs of node `i` computed from its constant inputs, or `None` when the runtime
/// cannot run it alone.
fn evaluate(g: &Graph, i: usize) -> Option<Vec<Vec<u8>>> {
    let node = &g.nodes[i];
    let mut sub = Graph::default();
    let local = |t: usize, sub: &mut Graph| {
        sub.tensors.push(g.tensors[t].clone());
        sub.tensors.len() - 1
    };
    let mut n = node.clone();
    for t in n.inputs.iter_mut().flatten() {
        *t = local(*t, &mut sub);
    }
    for t in n.outputs.iter_mut() {
        *t = local(*t, &mut sub);
    }
    sub.outputs = n.outputs.clone();
    sub.nodes.push(n);
    let model = LoadedModel::from_graph(&sub, Packing::Portable).ok()?;
    let mut r = model.runner();
    r.run().ok()?;
    (0..sub.outputs.len()).map(|k| r.output(k).ok()).collect()
}

fn fold_constants(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let (mut folded, mut refused) = (0, 0);
    let mut i = 0;
    while i < g.nodes.len() {
        let node = &g.nodes[i];
        let all_constant = node
            .inputs
            .iter()
            .flatten()
            .all(|&t| g.tensors[t].data.is_some());
        let makes_output = node.outputs.iter().any(|t| g.outputs.contains(t));
        if !all_constant || makes_output || node.outputs.is_empty() {
            i += 1;
            continue;
        }
        match evaluate(g, i) {
            Some(values) => {
                let outputs = g.nodes[i].outputs.clone();
                for (t, bytes) in outputs.into_iter().zip(values) {
                    g.tensors[t].data = Some(bytes);
                }
                g.nodes.remove(i);
                folded += 1;
            }
            None => {
                refused += 1;
                i += 1;
            }
        }
    }
    compact(g);
    let mut line = alloc::format!("folded {}", count(folded, "node"));
    if refused > 0 {
        line += &alloc::format!(
            " ({} with constant inputs the runtime cannot run alone)",
            count(refused, "node")
        );
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::{Activation, BuiltinOp, OpOptions};

    #[test]
    fn constant_subgraphs_become_constants_with_the_same_values() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        // w = relu(c1 + c2): all constant.
        let (c1, c2) = (b.constant(&[3, 4], 1), b.constant(&[3, 4], 2));
        let (s, w) = (b.act(&[3, 4]), b.act(&[3, 4]));
        let add = OpOptions::Add {
            activation: Activation::None,
            pot_scale_int16: false,
        };
        b.node(BuiltinOp::Add, add, &[c1, c2], &[s]);
        b.node(BuiltinOp::Relu, OpOptions::None, &[s], &[w]);
        let y = b.act(&[1, 3]);
        b.fc(x, w, y);
        let g0 = b.finish(&[x], &[y]);
        let mut g = g0.clone();
        let line = fold_constants(&mut g, &Args::default()).unwrap();
        assert_eq!(line, "folded 2 nodes");
        assert_eq!(g.nodes.len(), 1);
        let w = g.nodes[0].inputs[1].unwrap();
        let want: Vec<u8> = values(12, 1)
            .iter()
            .zip(values(12, 2))
            .flat_map(|(a, b)| (a + b).max(0.0).to_le_bytes())
            .collect();
        assert_eq!(g.tensors[w].data.as_deref(), Some(want.as_slice()));
        // The model with constant weights: the same outputs as computing them every run
        // (which the runtime refuses: FULLY_CONNECTED needs constant weights).
        run_f32(&g, 4);
        assert!(LoadedModel::from_graph(&g0, Packing::Portable).is_err());
    }
}

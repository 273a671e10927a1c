//! `sort_by_execution_order`: orders the nodes so that every node comes after the nodes
//! producing its inputs (Kahn's algorithm, keeping the existing order wherever it is
//! already valid). A graph with a cycle is an error.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{count, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::error::{ModelError, ModelFormat};
use crate::nn::transform::ir::Graph;

pub(super) const SORT_BY_EXECUTION_ORDER: PassDef = PassDef {
    name: "sort_by_execution_order",
    args: &[],
    doc: "order nodes so each runs after the producers of its inputs",
    run: Run::Graph(sort),
};

fn sort(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let n = g.nodes.len();
    let mut producer = vec![None; g.tensors.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for &t in &node.outputs {
            if let Some(p) = producer.get_mut(t) {
                *p = Some(i);
            }
        }
    }
    let deps: Vec<Vec<usize>> = g
        .nodes
        .iter()
        .map(|node| {
            let mut d: Vec<usize> = node
                .inputs
                .iter()
                .flatten()
                .filter_map(|&t| producer.get(t).copied().flatten())
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    // Repeatedly take the first node (in the current order) whose producers have run.
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d] && d != i));
        let Some(i) = next else {
            return Err(Error::Model(ModelError::new(
                ModelFormat::Graph,
                "the graph has a cycle: no execution order exists",
            )));
        };
        done[i] = true;
        order.push(i);
    }
    let moved = order.iter().enumerate().filter(|(k, &i)| *k != i).count();
    let mut old: Vec<Option<_>> = core::mem::take(&mut g.nodes)
        .into_iter()
        .map(Some)
        .collect();
    g.nodes = order.iter().filter_map(|&i| old[i].take()).collect();
    Ok(alloc::format!("moved {}", count(moved, "node")))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;

    #[test]
    fn puts_producers_first_and_refuses_cycles() {
        let mut b = Builder::default();
        let x = b.act(&[1, 3]);
        let (w1, w2) = (b.weights(3, 3, 1), b.weights(3, 2, 2));
        let (h, y) = (b.act(&[1, 3]), b.act(&[1, 2]));
        b.fc(h, w2, y); // reads h before it is made
        b.fc(x, w1, h);
        let mut g = b.finish(&[x], &[y]);
        let line = sort(&mut g, &Args::default()).unwrap();
        assert_eq!(line, "moved 2 nodes");
        assert_eq!(g.nodes[0].outputs, [h]);
        run_f32(&g, 1);
        // A cycle: h from y, y from h.
        g.nodes[0].inputs[0] = Some(y);
        assert!(sort(&mut g, &Args::default()).is_err());
    }
}

//! `summarize`: changes nothing; reports the node count per operator, and, lowered portably
//! as the runtime would run it, the MACs per run, the weight bytes, the arena and TFLite
//! Micro's greedy arena for the same lifetimes (so a pipeline can print it before and after
//! its rewrites).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{Args, PassDef, Run};
use crate::error::Error;
use crate::nn::blob::Storage;
use crate::nn::transform::ir::Graph;
use crate::nn::transform::{LoadedModel, Packing};

pub(super) const SUMMARIZE: PassDef = PassDef {
    name: "summarize",
    args: &[],
    doc: "report operator counts, MACs, weight bytes, arena (changes nothing)",
    run: Run::Inspect(summarize),
};

fn summarize(g: &Graph, _: &Args) -> Result<String, Error> {
    let mut by_op: Vec<(&'static str, usize)> = Vec::new();
    for node in &g.nodes {
        match by_op.iter_mut().find(|(name, _)| *name == node.op.name()) {
            Some((_, n)) => *n += 1,
            None => by_op.push((node.op.name(), 1)),
        }
    }
    let mut s = alloc::format!("{} nodes (", g.nodes.len());
    for (k, (name, n)) in by_op.iter().enumerate() {
        let _ = write!(s, "{}{name} {n}", if k > 0 { ", " } else { "" });
    }
    s.push(')');
    match LoadedModel::from_graph(g, Packing::Portable) {
        Ok(m) => {
            let m = m.model();
            let macs: u64 = (0..m.num_ops())
                .filter_map(|i| m.op(i))
                .map(|o| o.macs())
                .sum();
            let weights: usize = (0..m.num_tensors())
                .filter_map(|t| m.tensor(t))
                .filter(|t| t.storage == Storage::Constant)
                .map(|t| t.bytes)
                .sum();
            let _ = write!(
                s,
                ", {macs} MACs, {weights} weight bytes, arena {} bytes portably (greedy baseline {})",
                m.arena_size(),
                m.baseline_arena_size()
            );
        }
        Err(e) => {
            let _ = write!(s, "; not runnable as it stands: {e}");
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;

    #[test]
    fn reports_counts_macs_and_bytes() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        let w = b.weights(4, 3, 1);
        let y = b.act(&[1, 3]);
        b.fc(x, w, y);
        let g = b.finish(&[x], &[y]);
        let line = summarize(&g, &Args::default()).unwrap();
        assert!(
            line.starts_with("1 nodes (FULLY_CONNECTED 1), 12 MACs, "),
            "{line}"
        );
        assert!(line.contains("arena "), "{line}");
    }
}

//! The memory plan: an arena offset for every activation and scratch buffer, decided from
//! lifetimes before anything runs.
//!
//! Buffers are placed greedily by size (largest first, each at the lowest offset where it
//! overlaps no placed buffer alive at the same time), as TFLite Micro's
//! `GreedyMemoryPlanner` does; on top of that, a RESHAPE or SQUEEZE output is the same
//! buffer as its input (a view, no copy). The baseline, what TFLite Micro would plan for
//! the same lifetimes (no aliasing), is computed too so the two can be compared.

use alloc::vec;
use alloc::vec::Vec;

use super::lower::Lowered;
use crate::nn::blob::ALIGN;

/// Arena offsets for a lowered model.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Arena offset of each tensor (`None` for constants and unused tensors).
    pub offsets: Vec<Option<usize>>,
    /// Bytes of arena the plan needs (a multiple of 16).
    pub arena: usize,
    /// What the greedy-by-size plan without aliasing needs for the same lifetimes.
    pub baseline: usize,
}

#[derive(Clone, Copy, Debug)]
struct Buffer {
    size: usize,
    first: usize,
    last: usize,
}

fn align(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

/// Plans the arena of `l`.
pub fn plan(l: &Lowered) -> Plan {
    let n_ops = l.ops.len();
    let n = l.tensors.len();
    // Which buffer each tensor lives in (aliases share their input's), found with a
    // union-find over alias edges.
    let parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut lifetimes: Vec<Option<(usize, usize)>> = vec![None; n];
    let touch = |t: usize, at: usize, lt: &mut Vec<Option<(usize, usize)>>| {
        let e = lt[t].get_or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    };
    let is_arena = |t: usize| l.tensors[t].data.is_none();
    // Model inputs are written before the first operator and outputs read after the last.
    for &t in &l.inputs {
        touch(t, 0, &mut lifetimes);
    }
    for &t in &l.outputs {
        touch(t, n_ops.max(1) - 1, &mut lifetimes);
    }
    for (i, op) in l.ops.iter().enumerate() {
        let all = op
            .inputs
            .iter()
            .flatten()
            .chain(&op.outputs)
            .chain(&op.temps);
        for &t in all {
            if is_arena(t) {
                touch(t, i, &mut lifetimes);
            }
        }
    }
    let buffers_of = |with_alias: bool| -> (Vec<Option<usize>>, Vec<Buffer>) {
        let mut p = parent.clone();
        if with_alias {
            for op in &l.ops {
                if let (true, Some(Some(i)), Some(&o)) =
                    (op.alias, op.inputs.first(), op.outputs.first())
                {
                    if is_arena(*i) && is_arena(o) && l.tensors[*i].bytes == l.tensors[o].bytes {
                        let (ri, ro) = (root(&mut p, *i), root(&mut p, o));
                        p[ro] = ri;
                    }
                }
            }
        }
        let mut index = vec![None; n];
        let mut bufs: Vec<Buffer> = Vec::new();
        let mut of_root = vec![None; n];
        for t in 0..n {
            let Some((first, last)) = lifetimes[t] else {
                continue;
            };
            let r = root(&mut p, t);
            let b = match of_root[r] {
                Some(b) => b,
                None => {
                    bufs.push(Buffer {
                        size: 0,
                        first,
                        last,
                    });
                    of_root[r] = Some(bufs.len() - 1);
                    bufs.len() - 1
                }
            };
            let buf = &mut bufs[b];
            buf.size = buf.size.max(align(l.tensors[t].bytes));
            buf.first = buf.first.min(first);
            buf.last = buf.last.max(last);
            index[t] = Some(b);
        }
        (index, bufs)
    };
    let (index, bufs) = buffers_of(true);
    let (offsets_of_buf, arena) = greedy(&bufs);
    let offsets = index.iter().map(|b| b.map(|b| offsets_of_buf[b])).collect();
    let (_, base_bufs) = buffers_of(false);
    let (_, baseline) = greedy(&base_bufs);
    Plan {
        offsets,
        arena,
        baseline,
    }
}

/// Greedy by size: returns each buffer's offset and the arena size.
fn greedy(bufs: &[Buffer]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..bufs.len()).collect();
    // Largest first; ties by first use, then index, so the plan is deterministic.
    order.sort_by(|&a, &b| {
        bufs[b]
            .size
            .cmp(&bufs[a].size)
            .then(bufs[a].first.cmp(&bufs[b].first))
            .then(a.cmp(&b))
    });
    let mut offset = vec![0usize; bufs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for &b in &order {
        let me = bufs[b];
        // Placed buffers alive at the same time, by offset.
        let mut live: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&o| bufs[o].first <= me.last && me.first <= bufs[o].last)
            .map(|&o| (offset[o], offset[o] + bufs[o].size))
            .collect();
        live.sort_unstable();
        let mut at = 0;
        for (start, end) in live {
            if at + me.size <= start {
                break;
            }
            at = at.max(end);
        }
        offset[b] = at;
        arena = arena.max(at + me.size);
        placed.push(b);
    }
    (offset, align(arena))
}

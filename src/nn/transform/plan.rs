//! The memory plan: an arena offset for every activation and scratch buffer, decided from
//! lifetimes before anything runs.
//!
//! Buffers are placed greedily by size (largest first, each at the lowest offset where it
//! overlaps no placed buffer alive at the same time), as TFLite Micro's
//! `GreedyMemoryPlanner` does; on top of that, a RESHAPE or SQUEEZE output is the same
//! buffer as its input (a view, no copy), and an operator that can work in place (its
//! `LOp::in_place`: activations, and the convolutions whose geometry allows it) writes its
//! output over its first input when nothing reads that input afterwards and it is not a
//! model input or output. The baseline, what TFLite Micro would plan for the same lifetimes
//! (no sharing), is computed too so the two can be compared; the plan never needs more than
//! it.

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
    /// What the greedy-by-size plan without shared bytes (TFLite Micro's) needs for the same
    /// lifetimes.
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
    // A tensor no operator may overwrite: the model's inputs (the caller writes them once
    // and may run again) and outputs (read after the last operator).
    let mut pinned = vec![false; n];
    for &t in l.inputs.iter().chain(&l.outputs) {
        pinned[t] = true;
    }
    let buffers_of = |alias: bool, in_place: &[bool]| -> (Vec<Option<usize>>, Vec<Buffer>) {
        let mut p = parent.clone();
        if alias {
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
        if in_place.iter().any(|&x| x) {
            // Each group's lifetime and whether it holds a pinned tensor, kept at its root.
            let mut span: Vec<Option<(usize, usize)>> = vec![None; n];
            let mut held = vec![false; n];
            for t in 0..n {
                let r = root(&mut p, t);
                held[r] |= pinned[t];
                if let Some((a, b)) = lifetimes[t] {
                    let e = span[r].get_or_insert((a, b));
                    *e = (e.0.min(a), e.1.max(b));
                }
            }
            for (i, op) in l.ops.iter().enumerate() {
                let (true, false, Some(Some(x)), Some(&o)) = (
                    in_place.get(i).copied().unwrap_or(false),
                    op.alias,
                    op.inputs.first(),
                    op.outputs.first(),
                ) else {
                    continue;
                };
                if !is_arena(*x) || !is_arena(o) {
                    continue;
                }
                let (rx, ro) = (root(&mut p, *x), root(&mut p, o));
                // The input's bytes are free after this operator, the output's start here,
                // and no other input of the operator lives in them.
                let other_input = op.inputs[1..]
                    .iter()
                    .flatten()
                    .any(|&t| root(&mut p, t) == rx);
                let dies_here = span[rx].is_some_and(|s| s.1 == i);
                let born_here = span[ro].is_some_and(|s| s.0 == i);
                if rx == ro || held[rx] || other_input || !dies_here || !born_here {
                    continue;
                }
                p[ro] = rx;
                held[rx] |= held[ro];
                span[rx] = match (span[rx], span[ro]) {
                    (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                    (a, b) => a.or(b),
                };
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
    let place = |alias: bool, in_place: &[bool]| {
        let (index, bufs) = buffers_of(alias, in_place);
        let (offset_of_buf, arena) = greedy(&bufs);
        let offsets: Vec<Option<usize>> =
            index.iter().map(|b| b.map(|b| offset_of_buf[b])).collect();
        (offsets, arena)
    };
    let none = vec![false; n_ops];
    let (plain, baseline) = place(false, &none);
    let (aliased, alias_arena) = place(true, &none);
    // In-place candidates, then two ways to choose among them (greedy placement is a
    // heuristic, and one merge alone seldom shrinks a chain that needs them all): every
    // candidate at once, and one by one in execution order, each kept when the arena does
    // not grow.
    let candidates: Vec<bool> = l.ops.iter().map(|o| o.in_place && !o.alias).collect();
    let (all, all_arena) = place(true, &candidates);
    let mut chosen = none.clone();
    let mut best = alias_arena;
    for i in (0..n_ops).filter(|&i| candidates[i]) {
        chosen[i] = true;
        let (_, arena) = place(true, &chosen);
        if arena <= best {
            best = arena;
        } else {
            chosen[i] = false;
        }
    }
    let (one_by_one, one_by_one_arena) = place(true, &chosen);
    // Each kind of sharing is kept only when it makes the arena smaller (a reshape then
    // copies; an in-place operator may copy rows to scratch, so it runs in place only when
    // that saves bytes).
    let (in_place, in_place_arena) = if one_by_one_arena <= all_arena {
        (one_by_one, one_by_one_arena)
    } else {
        (all, all_arena)
    };
    let (offsets, arena) = if in_place_arena < alias_arena.min(baseline) {
        (in_place, in_place_arena)
    } else if alias_arena <= baseline {
        (aliased, alias_arena)
    } else {
        (plain, baseline)
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::dtype::DType;
    use crate::nn::transform::lower::{LOp, LTensor, Packing};
    use alloc::string::String;

    fn tensor(bytes: usize) -> LTensor {
        LTensor {
            name: String::new(),
            dtype: DType::U8,
            shape: vec![bytes],
            quant: None,
            data: None,
            bytes,
        }
    }

    /// A DS-CNN-like chain: small input → conv → a → in place → b → in place → c → pool →
    /// small output. TFLite Micro's plan holds two activations; in place, one.
    #[test]
    fn in_place_chain_keeps_one_activation() {
        let big = 8000;
        let tensors = vec![
            tensor(490),
            tensor(big),
            tensor(big),
            tensor(big),
            tensor(64),
        ];
        let op = |i: usize, x: usize, y: usize, in_place: bool| LOp {
            code: 0,
            inputs: vec![Some(x)],
            outputs: vec![y],
            temps: Vec::new(),
            params: Vec::new(),
            node: i,
            alias: false,
            in_place,
        };
        let ops = vec![
            op(0, 0, 1, false),
            op(1, 1, 2, true),
            op(2, 2, 3, true),
            op(3, 3, 4, false),
        ];
        let l = Lowered {
            tensors,
            ops,
            inputs: vec![0],
            outputs: vec![4],
            packing: Packing::Portable,
        };
        let p = plan(&l);
        assert_eq!(p.baseline, 2 * big);
        assert_eq!(p.arena, big + 496);
        assert!(p.offsets[1] == p.offsets[2] && p.offsets[2] == p.offsets[3]);
        // The model's input is never written over, even by an in-place operator.
        let mut l2 = l.clone();
        l2.ops[0].in_place = true;
        let p2 = plan(&l2);
        assert_ne!(p2.offsets[0], p2.offsets[1]);
    }

    /// Random graphs: each op reads one or two earlier tensors, writes one, maybe with
    /// scratch or as an alias. Every pair of tensors alive at the same operator must get
    /// disjoint bytes (but an alias pair, which shares them on purpose), and the plan must
    /// not exceed the greedy baseline.
    #[test]
    fn live_tensors_never_share_bytes() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..300 {
            let mut tensors = vec![tensor(16 * (1 + next(64) as usize))];
            let mut ops = Vec::new();
            let n_ops = 1 + next(12) as usize;
            for i in 0..n_ops {
                let a = next(tensors.len() as u64) as usize;
                let b = next(tensors.len() as u64) as usize;
                let alias = next(4) == 0;
                let in_place = !alias && next(3) == 0;
                let size = if alias {
                    tensors[a].bytes
                } else {
                    1 + next(2000) as usize
                };
                tensors.push(tensor(size));
                let out = tensors.len() - 1;
                let mut temps = Vec::new();
                if next(3) == 0 {
                    tensors.push(tensor(1 + next(500) as usize));
                    temps.push(tensors.len() - 1);
                }
                ops.push(LOp {
                    code: 0,
                    inputs: if alias {
                        vec![Some(a)]
                    } else {
                        vec![Some(a), Some(b)]
                    },
                    outputs: vec![out],
                    temps,
                    params: Vec::new(),
                    node: i,
                    alias,
                    in_place,
                });
            }
            let last = ops.last().map(|o: &LOp| o.outputs[0]).unwrap_or(0);
            let l = Lowered {
                tensors,
                ops,
                inputs: vec![0],
                outputs: vec![last],
                packing: Packing::Portable,
            };
            let p = plan(&l);
            assert!(p.arena <= p.baseline, "{} > {}", p.arena, p.baseline);
            // Lifetimes as the planner defines them.
            let n = l.tensors.len();
            let mut life = vec![None::<(usize, usize)>; n];
            let mut touch = |t: usize, i: usize| {
                let e = life[t].get_or_insert((i, i));
                e.0 = e.0.min(i);
                e.1 = e.1.max(i);
            };
            touch(0, 0);
            touch(last, l.ops.len() - 1);
            for (i, op) in l.ops.iter().enumerate() {
                for &t in op
                    .inputs
                    .iter()
                    .flatten()
                    .chain(&op.outputs)
                    .chain(&op.temps)
                {
                    touch(t, i);
                }
            }
            // Alias chains (transitively) may share bytes.
            let mut group: Vec<usize> = (0..n).collect();
            for o in l.ops.iter().filter(|o| o.alias) {
                let (i, out) = (o.inputs[0].unwrap(), o.outputs[0]);
                let (gi, go) = (group[i], group[out]);
                for g in group.iter_mut() {
                    if *g == go {
                        *g = gi;
                    }
                }
            }
            // So may an in-place operator's input and output, at that operator only, when
            // nothing of the input's group is read later, no other input of the operator is
            // in it and it holds no model input or output.
            let group_span = |g: usize| {
                (0..n)
                    .filter(|&t| group[t] == g)
                    .filter_map(|t| life[t])
                    .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
            };
            let in_place_pair = |x: usize, y: usize| {
                l.ops.iter().enumerate().any(|(i, op)| {
                    let (a, b) = (op.inputs[0].unwrap(), op.outputs[0]);
                    let (ga, gb) = (group[a], group[b]);
                    let pinned = |g: usize| group[0] == g || group[last] == g;
                    op.in_place
                        && [ga, gb].contains(&group[x])
                        && [ga, gb].contains(&group[y])
                        && ga != gb
                        && group_span(ga).is_some_and(|s| s.1 == i)
                        && !pinned(ga)
                        && op.inputs[1..].iter().flatten().all(|&t| group[t] != ga)
                })
            };
            for x in 0..n {
                for y in x + 1..n {
                    let (Some(lx), Some(ly)) = (life[x], life[y]) else {
                        continue;
                    };
                    let (Some(ox), Some(oy)) = (p.offsets[x], p.offsets[y]) else {
                        continue;
                    };
                    assert!(ox % ALIGN == 0 && ox + l.tensors[x].bytes <= p.arena);
                    let live_together = lx.0 <= ly.1 && ly.0 <= lx.1;
                    let share = ox < oy + l.tensors[y].bytes && oy < ox + l.tensors[x].bytes;
                    if live_together && share {
                        assert!(
                            ox == oy && (group[x] == group[y] || in_place_pair(x, y)),
                            "tensors {x} and {y} overlap"
                        );
                    }
                }
            }
        }
    }
}

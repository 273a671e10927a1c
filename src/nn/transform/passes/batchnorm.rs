//! `fold_batch_norms`: a batch normalization after a convolution or fully connected layer
//! folds into its weights and bias. Importers write an unfused batch norm as a MUL by a
//! per-channel constant then an ADD (or SUB) of one (TFLite converters and tf2onnx do the
//! same; a lone ONNX BatchNormalization, with no conv before it, stays that MUL and ADD): so
//! a MUL by `a`, ADD of `b` or SUB of `b` (per output channel, or one value) whose other
//! input is the only reader of a float CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED with no
//! fused activation becomes `w·a` (each output channel's weights), `bias·a`, `bias ± b`; the
//! MUL/ADD's fused activation moves to the conv. Repeated until nothing folds (MUL then ADD
//! fold one after the other). Float graphs only (int8 weights would need requantizing); the
//! outputs change by float rounding only (`w·a` rounded once instead of `(w·x)·a`). In the
//! default pipeline: the ONNX importer leaves BatchNormalization (and a MatMul's bias Add) to
//! this pass.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{compact, count, readers, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, OpOptions, Tensor};

pub(super) const FOLD_BATCH_NORMS: PassDef = PassDef {
    name: "fold_batch_norms",
    args: &[],
    doc: "fold per-channel MUL/ADD/SUB (batch norms) into the float conv or FC before them",
    run: Run::Graph(fold_batch_norms),
};

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data
        .as_deref()
        .unwrap_or(&[])
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A constant's values per channel of `c` (one value repeated), when it broadcasts along
/// the last axis only.
fn per_channel(t: &Tensor, c: usize) -> Option<Vec<f32>> {
    if t.data.is_none() || t.dtype != DType::F32 {
        return None;
    }
    let v = f32s(t);
    let leading_ones = t.shape.iter().rev().skip(1).all(|&d| d == 1);
    match v.len() {
        1 => Some(vec![v[0]; c]),
        n if n == c && leading_ones => Some(v),
        _ => None,
    }
}

/// The fused activation of a MUL/ADD/SUB.
fn activation(o: &OpOptions) -> Option<Activation> {
    match o {
        OpOptions::Mul { activation }
        | OpOptions::Add { activation, .. }
        | OpOptions::Sub { activation, .. } => Some(*activation),
        _ => None,
    }
}

/// Tries to fold node `m` into the conv/FC that writes its input; whether it did.
fn fold_one(g: &mut Graph, m: usize, reads: &[usize]) -> bool {
    let node = &g.nodes[m];
    let (op, act) = match (node.op, activation(&node.options)) {
        (op @ (BuiltinOp::Mul | BuiltinOp::Add | BuiltinOp::Sub), Some(a)) => (op, a),
        _ => return false,
    };
    let (Some(Some(i0)), Some(Some(i1)), Some(&y)) = (
        node.inputs.first().copied(),
        node.inputs.get(1).copied(),
        node.outputs.first(),
    ) else {
        return false;
    };
    // The activation input and the constant (SUB only as x − b).
    let (x, k) = match (g.tensors[i0].data.is_none(), g.tensors[i1].data.is_none()) {
        (true, false) => (i0, i1),
        (false, true) if op != BuiltinOp::Sub => (i1, i0),
        _ => return false,
    };
    let Some(p) = g.nodes[..m].iter().position(|n| n.outputs.contains(&x)) else {
        return false;
    };
    let prod = &g.nodes[p];
    let out_axis_first = match (prod.op, &prod.options) {
        (
            BuiltinOp::Conv2d,
            OpOptions::Conv2d {
                activation: Activation::None,
                ..
            },
        )
        | (
            BuiltinOp::FullyConnected,
            OpOptions::FullyConnected {
                activation: Activation::None,
                ..
            },
        ) => true,
        (
            BuiltinOp::DepthwiseConv2d,
            OpOptions::DepthwiseConv2d {
                activation: Activation::None,
                ..
            },
        ) => false,
        _ => return false,
    };
    let (xt, yt) = (&g.tensors[x], &g.tensors[y]);
    let Some(Some(w)) = prod.inputs.get(1).copied() else {
        return false;
    };
    let bias = prod.inputs.get(2).copied().flatten();
    let wt = &g.tensors[w];
    let float = |t: &Tensor| t.dtype == DType::F32;
    let Some(&c) = xt.shape.last() else {
        return false;
    };
    if reads[x] != 1
        || g.outputs.contains(&x)
        || xt.shape != yt.shape
        || !(float(xt) && float(wt) && wt.data.is_some())
        || bias.is_some_and(|b| !float(&g.tensors[b]) || g.tensors[b].data.is_none())
    {
        return false;
    }
    let Some(v) = per_channel(&g.tensors[k], c) else {
        return false;
    };
    let mut wv = f32s(wt);
    let mut bv = bias.map_or_else(|| vec![0.0; c], |b| f32s(&g.tensors[b]));
    if wv.is_empty() || wv.len() % c != 0 || bv.len() != c {
        return false;
    }
    let inner = wv.len() / c;
    match op {
        BuiltinOp::Mul => {
            for (i, x) in wv.iter_mut().enumerate() {
                *x *= v[if out_axis_first { i / inner } else { i % c }];
            }
            bv.iter_mut().zip(&v).for_each(|(b, a)| *b *= a);
        }
        BuiltinOp::Add => bv.iter_mut().zip(&v).for_each(|(b, a)| *b += a),
        _ => bv.iter_mut().zip(&v).for_each(|(b, a)| *b -= a),
    }
    // New constants: the old ones may be shared with other nodes (an ADD or SUB leaves the
    // weights as they are).
    let nw = if op == BuiltinOp::Mul {
        let mut nw = g.tensors[w].clone();
        nw.data = Some(bytes(&wv));
        // Scaled weights leave the grid a QDQ file quantized them on (the ONNX importer
        // folds before making such a graph int8, which then quantizes them afresh).
        nw.quant = None;
        nw.name.push_str("/folded");
        g.tensors.push(nw);
        g.tensors.len() - 1
    } else {
        w
    };
    g.tensors.push(Tensor {
        name: alloc::format!("{}/bias", g.tensors[y].name),
        dtype: DType::F32,
        shape: vec![c],
        quant: None,
        data: Some(bytes(&bv)),
    });
    let nb = g.tensors.len() - 1;
    let prod = &mut g.nodes[p];
    prod.inputs.resize(3, None);
    prod.inputs[1] = Some(nw);
    prod.inputs[2] = Some(nb);
    prod.outputs[0] = y;
    match &mut prod.options {
        OpOptions::Conv2d { activation, .. }
        | OpOptions::DepthwiseConv2d { activation, .. }
        | OpOptions::FullyConnected { activation, .. } => *activation = act,
        _ => {}
    }
    // Nothing else read x: the MUL's output now comes straight from the conv.
    g.nodes.remove(m);
    true
}

fn fold_batch_norms(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let mut folded = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        let reads = readers(g);
        if fold_one(g, i, &reads) {
            folded += 1; // the node after the folded one is now at i
        } else {
            i += 1;
        }
    }
    compact(g);
    Ok(alloc::format!(
        "folded {} into convolutions and fully connected layers",
        count(folded, "per-channel MUL/ADD/SUB")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;

    /// conv 3×3 → MUL(a) → ADD(b) with RELU; depthwise → SUB(b); FC → MUL(scalar); and a
    /// lone MUL+ADD on a graph input (nothing to fold into).
    fn graph() -> Graph {
        let mut b = Builder::default();
        let x = b.act(&[1, 6, 6, 3]);
        let w = b.constant(&[4, 3, 3, 3], 1);
        let h = b.act(&[1, 6, 6, 4]);
        b.conv(&[x, w], h, 1, Activation::None);
        let a = b.constant(&[4], 2);
        let m = b.act(&[1, 6, 6, 4]);
        b.node(
            BuiltinOp::Mul,
            OpOptions::Mul {
                activation: Activation::None,
            },
            &[h, a],
            &[m],
        );
        let bb = b.constant(&[1, 1, 1, 4], 3);
        let s = b.act(&[1, 6, 6, 4]);
        b.node(
            BuiltinOp::Add,
            OpOptions::Add {
                activation: Activation::Relu,
                pot_scale_int16: true,
            },
            &[bb, m],
            &[s],
        );
        let dw = b.constant(&[1, 3, 3, 4], 4);
        let dbias = b.constant(&[4], 5);
        let d = b.act(&[1, 6, 6, 4]);
        b.depthwise(&[s, dw, dbias], d, 1, Activation::None);
        let sb = b.constant(&[4], 6);
        let e = b.act(&[1, 6, 6, 4]);
        b.node(
            BuiltinOp::Sub,
            OpOptions::Sub {
                activation: Activation::None,
                pot_scale_int16: true,
            },
            &[d, sb],
            &[e],
        );
        let flat = b.act(&[1, 144]);
        b.node(
            BuiltinOp::Reshape,
            OpOptions::Reshape {
                new_shape: Some(vec![1, 144]),
            },
            &[e],
            &[flat],
        );
        let fw = b.weights(144, 5, 7);
        let f = b.act(&[1, 5]);
        b.fc(flat, fw, f);
        let two = b.constant(&[1], 8);
        let y = b.act(&[1, 5]);
        b.node(
            BuiltinOp::Mul,
            OpOptions::Mul {
                activation: Activation::None,
            },
            &[f, two],
            &[y],
        );
        // A lone batch norm on the second input: MUL and ADD stay.
        let x2 = b.act(&[1, 4]);
        let a2 = b.constant(&[4], 9);
        let m2 = b.act(&[1, 4]);
        b.node(
            BuiltinOp::Mul,
            OpOptions::Mul {
                activation: Activation::None,
            },
            &[x2, a2],
            &[m2],
        );
        let b2 = b.constant(&[4], 10);
        let y2 = b.act(&[1, 4]);
        b.node(
            BuiltinOp::Add,
            OpOptions::Add {
                activation: Activation::None,
                pot_scale_int16: true,
            },
            &[m2, b2],
            &[y2],
        );
        b.finish(&[x, x2], &[y, y2])
    }

    #[test]
    fn batch_norms_fold_into_the_conv_or_fc_before_them() {
        let mut g = graph();
        let before = run_f32(&g, 11);
        let line = fold_batch_norms(&mut g, &Args::default()).unwrap();
        assert!(line.starts_with("folded 4 "), "{line}");
        let ops: Vec<BuiltinOp> = g.nodes.iter().map(|n| n.op).collect();
        use BuiltinOp as B;
        assert_eq!(
            ops,
            [
                B::Conv2d,
                B::DepthwiseConv2d,
                B::Reshape,
                B::FullyConnected,
                B::Mul,
                B::Add
            ]
        );
        // The ADD's RELU moved to the conv; the FC kept none.
        assert!(matches!(
            g.nodes[0].options,
            OpOptions::Conv2d {
                activation: Activation::Relu,
                ..
            }
        ));
        let after = run_f32(&g, 11);
        for (a, b) in after.iter().flatten().zip(before.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // Nothing left to fold.
        let line = fold_batch_norms(&mut g, &Args::default()).unwrap();
        assert!(line.starts_with("folded 0 "), "{line}");
    }

    #[test]
    fn a_conv_read_elsewhere_or_with_an_activation_is_left_alone() {
        let mut b = Builder::default();
        let x = b.act(&[1, 4]);
        let w = b.weights(4, 3, 1);
        let h = b.act(&[1, 3]);
        b.fc_act(x, w, h, Activation::Relu);
        let a = b.constant(&[3], 2);
        let y = b.act(&[1, 3]);
        b.node(
            BuiltinOp::Mul,
            OpOptions::Mul {
                activation: Activation::None,
            },
            &[h, a],
            &[y],
        );
        let w2 = b.weights(4, 3, 3);
        let h2 = b.act(&[1, 3]);
        b.fc(x, w2, h2);
        let y2 = b.act(&[1, 3]);
        b.node(
            BuiltinOp::Mul,
            OpOptions::Mul {
                activation: Activation::None,
            },
            &[h2, a],
            &[y2],
        );
        let mut g = b.finish(&[x], &[y, y2, h2]);
        let n = g.nodes.len();
        fold_batch_norms(&mut g, &Args::default()).unwrap();
        assert_eq!(g.nodes.len(), n);
    }
}

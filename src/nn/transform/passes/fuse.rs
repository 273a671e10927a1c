//! `fuse_activations`: a RELU, RELU6 or RELU_N1_TO_1 node whose input comes from a
//! convolution, fully connected layer, element-wise ADD/SUB/MUL, pooling or concatenation
//! with no fused activation, and is read by nothing else, becomes that node's fused
//! activation (one pass over the data instead of two, one activation less in the arena).
//! f32 always; int8 when the activation's input and output have the same quantization
//! (then the fused clamp, TFLite's `CalculateActivationRangeQuantized`, is exactly what the
//! standalone int8 activation computes).

use alloc::string::String;

use super::{compact, count, readers, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, OpOptions};

pub(super) const FUSE_ACTIVATIONS: PassDef = PassDef {
    name: "fuse_activations",
    args: &[],
    doc: "fold RELU/RELU6/RELU_N1_TO_1 nodes into the conv, FC, add, pool or concat before them",
    run: Run::Graph(fuse_activations),
};

/// The fused-activation field of options that have one.
fn activation_mut(o: &mut OpOptions) -> Option<&mut Activation> {
    match o {
        OpOptions::Conv2d { activation, .. }
        | OpOptions::DepthwiseConv2d { activation, .. }
        | OpOptions::Pool2d { activation, .. }
        | OpOptions::FullyConnected { activation, .. }
        | OpOptions::Concatenation { activation, .. }
        | OpOptions::Add { activation, .. }
        | OpOptions::Sub { activation, .. }
        | OpOptions::Mul { activation } => Some(activation),
        _ => None,
    }
}

fn fuse_activations(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let mut fused = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        let kind = match g.nodes[i].op {
            BuiltinOp::Relu => Activation::Relu,
            BuiltinOp::Relu6 => Activation::Relu6,
            BuiltinOp::ReluN1To1 => Activation::ReluN1To1,
            _ => {
                i += 1;
                continue;
            }
        };
        let (Some(Some(t)), Some(&y)) = (
            g.nodes[i].inputs.first().copied(),
            g.nodes[i].outputs.first(),
        ) else {
            i += 1;
            continue;
        };
        let producer = g.nodes[..i].iter().position(|n| n.outputs.contains(&t));
        let (tt, yt) = (&g.tensors[t], &g.tensors[y]);
        let exact = tt.dtype == DType::F32 || (tt.dtype == DType::I8 && tt.quant == yt.quant);
        let only_reader = readers(g)[t] == 1;
        let fusable = producer.is_some_and(|p| {
            let mut o = g.nodes[p].options.clone();
            g.nodes[p].outputs.len() == 1
                && activation_mut(&mut o).is_some_and(|a| *a == Activation::None)
        });
        if let (Some(p), true, true, true) = (producer, exact, only_reader, fusable) {
            if let Some(a) = activation_mut(&mut g.nodes[p].options) {
                *a = kind;
            }
            g.nodes[p].outputs[0] = y;
            g.nodes.remove(i);
            fused += 1;
            continue;
        }
        i += 1;
    }
    compact(g);
    Ok(alloc::format!("fused {}", count(fused, "activation")))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;

    #[test]
    fn relu_after_fc_becomes_its_fused_activation() {
        let mut b = Builder::default();
        let x = b.act(&[1, 5]);
        let w = b.weights(5, 4, 1);
        let h = b.act(&[1, 4]);
        b.fc(x, w, h);
        let r = b.act(&[1, 4]);
        b.node(BuiltinOp::Relu6, OpOptions::None, &[h], &[r]);
        // A RELU whose input is also read elsewhere stays.
        let w2 = b.weights(4, 3, 2);
        let h2 = b.act(&[1, 3]);
        b.fc(r, w2, h2);
        let r2 = b.act(&[1, 3]);
        b.node(BuiltinOp::Relu, OpOptions::None, &[h2], &[r2]);
        let sum = b.act(&[1, 3]);
        b.node(
            BuiltinOp::Add,
            OpOptions::Add {
                activation: Activation::None,
                pot_scale_int16: false,
            },
            &[h2, r2],
            &[sum],
        );
        let mut g = b.finish(&[x], &[sum]);
        let before = run_f32(&g, 11);
        let line = fuse_activations(&mut g, &Args::default()).unwrap();
        assert_eq!(line, "fused 1 activation");
        assert_eq!(g.nodes.len(), 4);
        assert!(matches!(
            g.nodes[0].options,
            OpOptions::FullyConnected {
                activation: Activation::Relu6,
                ..
            }
        ));
        assert_eq!(run_f32(&g, 11), before);
    }
}

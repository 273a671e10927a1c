//! `fuse_pad`: an explicit PAD before a VALID convolution or max pool becomes that
//! operator's SAME padding when it is exactly SAME's: only the height and width padded, by
//! TFLite's SAME amounts for the operator's input size, kernel, stride and dilation
//! (`total = max((ceil(in/s) − 1)·s + (k − 1)·d + 1 − in, 0)`, `total/2` before, the rest
//! after), and the PAD read by nothing else. What fills the padding must be what SAME
//! implies: zeros (PAD, or PADV2 of 0; for int8 the zero point, the PAD's input and output
//! quantized alike) for CONV_2D and DEPTHWISE_CONV_2D, −∞ (PADV2 of −∞, or −128 for int8)
//! for MAX_POOL_2D, whose SAME windows skip the outside. Keras writes `ZeroPadding2D` then a
//! VALID conv this way (MobileNet's stride-2 layers). The outputs do not change by a bit;
//! one operator and one activation buffer less.

use alloc::string::String;

use super::{compact, count, readers, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::transform::ir::{BuiltinOp, Graph, OpOptions, Padding};

pub(super) const FUSE_PAD: PassDef = PassDef {
    name: "fuse_pad",
    args: &[],
    doc: "fold a PAD into the VALID conv or max pool after it when it is exactly SAME padding",
    run: Run::Graph(fuse_pad),
};

/// The paddings `[before, after]` of each of the 4 dimensions, from a constant.
fn paddings(g: &Graph, t: usize) -> Option<[[i64; 2]; 4]> {
    let x = &g.tensors[t];
    let d = x.data.as_deref()?;
    let v: alloc::vec::Vec<i64> = match x.dtype {
        DType::I32 => d
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        DType::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        _ => return None,
    };
    if v.len() != 8 {
        return None;
    }
    Some([[v[0], v[1]], [v[2], v[3]], [v[4], v[5]], [v[6], v[7]]])
}

/// TFLite's SAME padding `[before, after]` of one dimension.
fn same(input: usize, k: usize, stride: usize, dilation: usize) -> [i64; 2] {
    let keff = (k.max(1) - 1) * dilation.max(1) + 1;
    let out = input.div_ceil(stride.max(1));
    let total = ((out.max(1) - 1) * stride + keff).saturating_sub(input) as i64;
    [total / 2, total - total / 2]
}

/// Whether the PAD node `p` fills with what node `c`'s SAME padding implies.
fn fill_matches(g: &Graph, p: usize, max_pool: bool) -> bool {
    let pad = &g.nodes[p];
    let value = pad.inputs.get(2).copied().flatten();
    let (Some(Some(x)), Some(&y)) = (pad.inputs.first().copied(), pad.outputs.first()) else {
        return false;
    };
    let (xt, yt) = (&g.tensors[x], &g.tensors[y]);
    if xt.dtype != yt.dtype || xt.quant != yt.quant {
        return false;
    }
    let v = value.and_then(|v| {
        g.tensors[v]
            .data
            .as_deref()
            .map(|d| (g.tensors[v].dtype, d))
    });
    match (pad.op, v, xt.dtype) {
        (BuiltinOp::Pad, _, DType::F32 | DType::I8) => !max_pool,
        (BuiltinOp::PadV2, Some((DType::F32, d)), DType::F32) if d.len() == 4 => {
            let f = f32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            if max_pool {
                f == f32::NEG_INFINITY
            } else {
                f == 0.0
            }
        }
        (BuiltinOp::PadV2, Some((DType::I8, [q])), DType::I8) => {
            let zp = xt.quant.as_ref().map_or(0, |q| q.first().1);
            if max_pool {
                *q as i8 == -128
            } else {
                i32::from(*q as i8) == zp
            }
        }
        _ => false,
    }
}

fn fuse_pad(g: &mut Graph, _: &Args) -> Result<String, Error> {
    let mut fused = 0;
    let mut c = 0;
    while c < g.nodes.len() {
        let reads = readers(g);
        let node = &g.nodes[c];
        let (kh, kw, sh, sw, dh, dw, max_pool) = match (&node.op, &node.options) {
            (
                BuiltinOp::Conv2d,
                OpOptions::Conv2d {
                    padding: Padding::Valid,
                    stride_w,
                    stride_h,
                    dilation_w_factor,
                    dilation_h_factor,
                    ..
                },
            )
            | (
                BuiltinOp::DepthwiseConv2d,
                OpOptions::DepthwiseConv2d {
                    padding: Padding::Valid,
                    stride_w,
                    stride_h,
                    dilation_w_factor,
                    dilation_h_factor,
                    ..
                },
            ) => {
                let w = node.inputs.get(1).copied().flatten();
                let Some(ws) = w.map(|w| &g.tensors[w].shape).filter(|s| s.len() == 4) else {
                    c += 1;
                    continue;
                };
                let (sh, sw) = (*stride_h, *stride_w);
                (
                    ws[1],
                    ws[2],
                    sh,
                    sw,
                    *dilation_h_factor,
                    *dilation_w_factor,
                    false,
                )
            }
            (
                BuiltinOp::MaxPool2d,
                OpOptions::Pool2d {
                    padding: Padding::Valid,
                    stride_w,
                    stride_h,
                    filter_width,
                    filter_height,
                    ..
                },
            ) => (
                *filter_height as usize,
                *filter_width as usize,
                *stride_h,
                *stride_w,
                1,
                1,
                true,
            ),
            _ => {
                c += 1;
                continue;
            }
        };
        let Some(Some(y)) = node.inputs.first().copied() else {
            c += 1;
            continue;
        };
        let p = g.nodes[..c].iter().position(|n| n.outputs.contains(&y));
        let fits = p.filter(|&p| {
            let pad = &g.nodes[p];
            let x = pad.inputs.first().copied().flatten();
            let pads = pad
                .inputs
                .get(1)
                .copied()
                .flatten()
                .and_then(|t| paddings(g, t));
            let (Some(x), Some(pads)) = (x, pads) else {
                return false;
            };
            let s = &g.tensors[x].shape;
            let pos = |v: i32| usize::try_from(v).ok().filter(|&v| v > 0);
            let (Some(sh), Some(sw), Some(dh), Some(dw)) = (pos(sh), pos(sw), pos(dh), pos(dw))
            else {
                return false;
            };
            matches!(pad.op, BuiltinOp::Pad | BuiltinOp::PadV2)
                && s.len() == 4
                && reads[y] == 1
                && !g.outputs.contains(&y)
                && pads[0] == [0, 0]
                && pads[3] == [0, 0]
                && pads[1] == same(s[1], kh, sh, dh)
                && pads[2] == same(s[2], kw, sw, dw)
                && fill_matches(g, p, max_pool)
        });
        if let Some(p) = fits {
            let x = g.nodes[p].inputs[0];
            let node = &mut g.nodes[c];
            node.inputs[0] = x;
            match &mut node.options {
                OpOptions::Conv2d { padding, .. }
                | OpOptions::DepthwiseConv2d { padding, .. }
                | OpOptions::Pool2d { padding, .. } => *padding = Padding::Same,
                _ => {}
            }
            g.nodes.remove(p);
            fused += 1;
            continue; // node c is now at c − 1; the next candidate at c
        }
        c += 1;
    }
    compact(g);
    Ok(alloc::format!(
        "fused {} into SAME padding",
        count(fused, "PAD")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::{Activation, Tensor};
    use alloc::vec;
    use alloc::vec::Vec;

    /// A PAD of `p = [top, bottom, left, right]` (value `fill`, PADV2 when given) of an
    /// `h×w×3` input, then a VALID conv 3×3 stride `s` (or max pool 3×3 stride `s`).
    fn graph(h: usize, w: usize, p: [i32; 4], s: i32, fill: Option<f32>, pool: bool) -> Graph {
        let mut b = Builder::default();
        let x = b.act(&[1, h, w, 3]);
        let ph = h + (p[0] + p[1]) as usize;
        let pw = w + (p[2] + p[3]) as usize;
        let xp = b.act(&[1, ph, pw, 3]);
        let (oh, ow) = ((ph - 3) / s as usize + 1, (pw - 3) / s as usize + 1);
        let co = if pool { 3 } else { 4 };
        let y = b.act(&[1, oh, ow, co]);
        let mut g = b.finish(&[x], &[y]);
        let pd: Vec<u8> = [0, 0, p[0], p[1], p[2], p[3], 0, 0]
            .iter()
            .flat_map(|v: &i32| v.to_le_bytes())
            .collect();
        g.tensors.push(Tensor {
            name: "paddings".into(),
            dtype: DType::I32,
            shape: vec![4, 2],
            quant: None,
            data: Some(pd),
        });
        let pt = g.tensors.len() - 1;
        let mut ins = vec![Some(x), Some(pt)];
        let op = match fill {
            None => BuiltinOp::Pad,
            Some(f) => {
                g.tensors.push(Tensor {
                    name: "fill".into(),
                    dtype: DType::F32,
                    shape: vec![],
                    quant: None,
                    data: Some(f.to_le_bytes().to_vec()),
                });
                ins.push(Some(g.tensors.len() - 1));
                BuiltinOp::PadV2
            }
        };
        g.nodes.push(crate::nn::transform::ir::Node {
            op,
            version: 1,
            options: OpOptions::None,
            inputs: ins,
            outputs: vec![xp],
        });
        let (op, options, mut inputs) = if pool {
            (
                BuiltinOp::MaxPool2d,
                OpOptions::Pool2d {
                    padding: Padding::Valid,
                    stride_w: s,
                    stride_h: s,
                    filter_width: 3,
                    filter_height: 3,
                    activation: Activation::None,
                },
                vec![Some(xp)],
            )
        } else {
            g.tensors.push(Tensor {
                name: "w".into(),
                dtype: DType::F32,
                shape: vec![4, 3, 3, 3],
                quant: None,
                data: Some(f32_bytes(&values(108, 3))),
            });
            (
                BuiltinOp::Conv2d,
                OpOptions::Conv2d {
                    padding: Padding::Valid,
                    stride_w: s,
                    stride_h: s,
                    activation: Activation::None,
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                },
                vec![Some(xp), Some(g.tensors.len() - 1)],
            )
        };
        if !pool {
            inputs.push(None);
        }
        g.nodes.push(crate::nn::transform::ir::Node {
            op,
            version: 1,
            options,
            inputs,
            outputs: vec![y],
        });
        g
    }

    fn check(g: Graph, want_fused: bool) {
        let mut g2 = g.clone();
        let before = run_f32(&g, 4);
        let line = fuse_pad(&mut g2, &Args::default()).unwrap();
        assert_eq!(line.starts_with("fused 1 "), want_fused, "{line}");
        assert_eq!(g2.nodes.len(), if want_fused { 1 } else { 2 });
        // Bit for bit.
        assert_eq!(run_f32(&g2, 4), before);
    }

    #[test]
    fn same_pads_fold_into_convs_and_max_pools() {
        // MobileNet's stride-2 form: 0 before, 1 after on an even size.
        check(graph(8, 8, [0, 1, 0, 1], 2, None, false), true);
        // Stride 1: 1 on each side; PADV2 of 0 too.
        check(graph(5, 7, [1, 1, 1, 1], 1, None, false), true);
        check(graph(5, 7, [1, 1, 1, 1], 1, Some(0.0), false), true);
        // A max pool needs −∞ in the padding.
        check(
            graph(6, 6, [1, 1, 1, 1], 1, Some(f32::NEG_INFINITY), true),
            true,
        );
    }

    #[test]
    fn int8_pads_of_the_zero_point_fold_too() {
        use crate::nn::transform::passes::quantize::{quantize_graph, Io, QuantizeOptions, Range};
        // Quantized, the PAD fills with the input's zero point, as the SAME conv does.
        let mut g = graph(8, 8, [0, 1, 0, 1], 2, None, false);
        let samples: Vec<Vec<Vec<f32>>> = (0..4).map(|k| vec![values(192, 40 + k)]).collect();
        let opt = QuantizeOptions {
            range: Range::MinMax,
            io: Io::Int8,
        };
        quantize_graph(&mut g, &samples, &opt).unwrap();
        assert_eq!(g.tensors[g.inputs[0]].dtype, DType::I8);
        check(g, true);
    }

    #[test]
    fn other_pads_stay() {
        // Not SAME's amounts, SAME's amounts swapped, a non-zero fill, zeros before a max pool.
        check(graph(8, 8, [1, 1, 1, 1], 2, None, false), false);
        check(graph(8, 8, [1, 0, 1, 0], 2, None, false), false);
        check(graph(5, 7, [1, 1, 1, 1], 1, Some(0.5), false), false);
        check(graph(6, 6, [1, 1, 1, 1], 1, None, true), false);
    }
}

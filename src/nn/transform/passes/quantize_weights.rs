//! `quantize_weights(minimum_size=N)`: the weights of float CONV_2D and FULLY_CONNECTED
//! layers stored as int8, symmetric per output channel (TensorFlow's Graph Transform Tool's
//! `quantize_weights`: a smaller model, float arithmetic kept). Activations stay f32.
//!
//! Output channel c's weights (a row of FULLY_CONNECTED's `[n, k]`, a filter of CONV_2D's
//! OHWI) get `s_c = max|w_c| / 127` and `q = round(w / s_c)` in −127..=127 (1 when the
//! channel is all zeros); the runtime multiplies by `q·s_c` (each GEMM panel of the weights
//! widened to f32 as it is packed: see `ops::gemm_common`), so every weight is off by at
//! most `s_c/2` (round to nearest, never clipped; plus the f32 rounding of `q·s_c`, 2⁻²⁴
//! relative). **Bound**: an output `y_c = Σᵢ xᵢ·w_ci + b_c` of k terms then moves by at most
//! `(s_c/2)·Σᵢ|xᵢ| ≤ (s_c/2)·k·max|x|` for the same input (k = FC's depth, or kh·kw·c_in
//! for a convolution's patch; zero padding adds nothing). A later layer passes an input
//! error `e` on as at most `Σᵢ|w_ci|·e` plus its own term, so a deep model's error is the
//! sum of each layer's term carried through the layers after it.
//!
//! Weights below `minimum_size` elements (default 1024, GTT's) stay f32: they save little
//! and such a layer is often the one with few terms to average out. DEPTHWISE_CONV_2D
//! (kh·kw weights per channel, a few percent of a MobileNet's) and other constants stay f32.
//! Run it after `fold_batch_norms` (which folds into f32 weights only), and not with
//! `quantize` (which makes the whole model int8, weights included, and refuses int8 weights
//! in a float model). A weight tensor that several layers read is quantized once.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{compact, count, Args, PassDef, Run};
use crate::error::Error;
use crate::nn::dtype::DType;
use crate::nn::error::{ModelError, ModelFormat};
use crate::nn::transform::ir::{BuiltinOp, Graph, Quant, Tensor};

pub(super) const QUANTIZE_WEIGHTS: PassDef = PassDef {
    name: "quantize_weights",
    args: &["minimum_size"],
    doc: "float conv/FC weights as int8 per output channel (|error| <= scale/2 per weight), \
          dequantized as the GEMM packs them",
    run: Run::Graph(quantize_weights),
};

/// The default of `minimum_size` (elements).
const MINIMUM_SIZE: usize = 1024;

/// Symmetric per-row int8 of `w` (`rows` rows): the values and each row's scale.
pub(crate) fn quantize_rows(w: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let k = w.len() / rows.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks_exact(k.max(1)).take(rows) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(s);
        // |v/s| ≤ 127 (up to rounding): the clamp only catches that rounding.
        q.extend(row.iter().map(|v| {
            crate::nn::transform::lower::round_half_away(f64::from(v / s)).clamp(-127, 127) as i8
        }));
    }
    (q, scales)
}

fn quantize_weights(g: &mut Graph, args: &Args) -> Result<String, Error> {
    let minimum = match args.get("minimum_size") {
        None => MINIMUM_SIZE,
        Some(v) => v.parse().map_err(|_| {
            Error::Model(
                ModelError::new(ModelFormat::Graph, "minimum_size is not a whole number")
                    .with_name(v),
            )
        })?,
    };
    let (mut bytes_before, mut bytes_after, mut layers) = (0usize, 0usize, 0usize);
    // Each weight tensor once: its int8 replacement.
    let mut done: Vec<Option<usize>> = vec![None; g.tensors.len()];
    for i in 0..g.nodes.len() {
        let node = &g.nodes[i];
        if !matches!(node.op, BuiltinOp::Conv2d | BuiltinOp::FullyConnected) {
            continue;
        }
        let (Some(Some(x)), Some(Some(w))) = (node.inputs.first(), node.inputs.get(1)) else {
            continue;
        };
        let (x, w) = (*x, *w);
        let wt = &g.tensors[w];
        let n = wt.shape.first().copied().unwrap_or(0);
        let float = g.tensors[x].dtype == DType::F32 && wt.dtype == DType::F32;
        if !float || wt.data.is_none() || wt.elems() < minimum.max(1) || n == 0 {
            continue;
        }
        let nw = match done[w] {
            Some(nw) => nw,
            None => {
                let v: Vec<f32> = wt
                    .data
                    .as_deref()
                    .unwrap_or(&[])
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if v.len() != wt.elems() || v.len() % n != 0 {
                    continue;
                }
                let (q, scale) = quantize_rows(&v, n);
                bytes_before += v.len() * 4;
                bytes_after += q.len() + 4 * n;
                let t = Tensor {
                    name: format!("{}/int8", wt.name),
                    dtype: DType::I8,
                    shape: wt.shape.clone(),
                    quant: Some(Quant {
                        scale,
                        zero_point: vec![0; n],
                        axis: 0,
                    }),
                    data: Some(q.iter().map(|&b| b as u8).collect()),
                };
                g.tensors.push(t);
                let nw = g.tensors.len() - 1;
                done[w] = Some(nw);
                nw
            }
        };
        g.nodes[i].inputs[1] = Some(nw);
        layers += 1;
    }
    compact(g);
    Ok(format!(
        "{} to int8 per channel: weights {} -> {} bytes",
        count(layers, "layer"),
        bytes_before,
        bytes_after
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_graphs::*;
    use super::*;
    use crate::nn::transform::ir::Activation;

    /// FC 40 → 24 → (RELU) conv 3×3 over a 6×6×8 input → 5 channels, two separate branches.
    fn graph() -> Graph {
        let mut b = Builder::default();
        let x = b.act(&[1, 40]);
        let w = b.weights(40, 24, 1);
        let y = b.act(&[1, 24]);
        b.fc(x, w, y);
        let x2 = b.act(&[1, 6, 6, 8]);
        let cw = b.constant(&[5, 3, 3, 8], 2);
        let cb = b.constant(&[5], 3);
        let y2 = b.act(&[1, 6, 6, 5]);
        b.conv(&[x2, cw, cb], y2, 1, Activation::None);
        b.finish(&[x, x2], &[y, y2])
    }

    /// The weights per output channel as the runtime multiplies them, and each channel's
    /// bound `(s_c/2)·Σ|x|` for inputs of at most 1 in magnitude over `k` terms.
    fn scales(g: &Graph, node: usize) -> Vec<f32> {
        let w = &g.tensors[g.nodes[node].inputs[1].unwrap()];
        assert_eq!(w.dtype, DType::I8);
        w.quant.as_ref().unwrap().scale.clone()
    }

    #[test]
    fn weights_become_int8_and_outputs_stay_within_the_bound() {
        let mut g = graph();
        let before = run_f32(&g, 7);
        let line = quantize_weights(&mut g, &args(&[("minimum_size", "0")])).unwrap();
        assert!(line.starts_with("2 layers to int8"), "{line}");
        // Structure: the same nodes, int8 weights per output channel, the bias f32.
        assert_eq!(g.nodes.len(), 2);
        let (fc_s, conv_s) = (scales(&g, 0), scales(&g, 1));
        assert_eq!((fc_s.len(), conv_s.len()), (24, 5));
        let bias = &g.tensors[g.nodes[1].inputs[2].unwrap()];
        assert_eq!(bias.dtype, DType::F32);
        let after = run_f32(&g, 7);
        // Inputs are in [-1, 1): |Δy_c| ≤ (s_c/2)·k (k = 40; 3·3·8 = 72 for the conv).
        for (j, (a, b)) in after[0].iter().zip(&before[0]).enumerate() {
            let bound = fc_s[j] / 2.0 * 40.0;
            assert!((a - b).abs() <= bound, "fc {j}: {a} vs {b}, bound {bound}");
        }
        for (j, (a, b)) in after[1].iter().zip(&before[1]).enumerate() {
            let bound = conv_s[j % 5] / 2.0 * 72.0;
            assert!(
                (a - b).abs() <= bound,
                "conv {j}: {a} vs {b}, bound {bound}"
            );
        }
        // And it did change something (the weights are not all exact).
        assert!(after[0] != before[0]);
    }

    #[test]
    fn each_weight_is_within_half_a_step() {
        let w = values(6 * 50, 9);
        let (q, s) = quantize_rows(&w, 6);
        for (i, (&v, &q)) in w.iter().zip(&q).enumerate() {
            let d = (f32::from(q) * s[i / 50] - v).abs();
            assert!(d <= s[i / 50] / 2.0 * (1.0 + 1e-6), "{i}: {v} -> {q}");
        }
        // A zero row gets scale 1 and zeros.
        let (q, s) = quantize_rows(&[0.0; 4], 1);
        assert_eq!((q, s), (vec![0; 4], vec![1.0]));
    }

    #[test]
    fn small_weights_stay_float_by_default() {
        let mut g = graph();
        let line = quantize_weights(&mut g, &Args::default()).unwrap();
        assert!(line.starts_with("0 layers"), "{line}");
        assert!(quantize_weights(&mut g, &args(&[("minimum_size", "x")])).is_err());
    }
}

//! `Algorithm::Auto`: which algorithm computes a layer fastest, from its shape.
//!
//! 1. One input channel per group (depthwise) → [`Algorithm::Depthwise`].
//! 2. Not 3×3 / stride 1 / dilation 1 → [`Algorithm::Im2col`] (1×1 stride-1 layers run as a
//!    plain GEMM there).
//! 3. Otherwise the cheapest of im2col and the three Winograd variants by a cost model in
//!    units of one GEMM multiply-add at the kernel's sustained rate:
//!    - im2col: `N·Ho·Wo·Cout·(1.07·K + 64)` with `K = 9·Cin/g` — the GEMM plus the patch
//!      copy and the epilogue, which weigh most when K is small;
//!    - F(m×m, 3×3): `tiles·α²·(Cin·Cout/g + τ_m·(Cin + Cout))` for the transform-domain
//!      GEMMs and the transforms, plus `8·α²·Cin·Cout/g` to stream the transformed filter
//!      (which dominates when there are few tiles: F(4,3)'s filter for 512→512 is 36 MiB).
//!      Tiles hanging over the output's edge count in full, which is what makes F(6,3) lose
//!      on small maps.
//!
//! τ_m = 12.5, 16, 34 (F(2,3), F(4,3), F(6,3)) and the other constants were fitted to
//! `conv_bench` on VGG-16's and ResNet-18's 3×3 layers (Zen 5, one thread; README): the
//! model picks the measured fastest algorithm on all 13 of them in the fitting run, and on
//! 12 in the README's run (VGG conv2_1: F(4,3), 0.8% slower than F(6,3) there). Measured,
//! F(4,3) is the best variant on nearly every layer, F(2,3) on ResNet's 7×7×512, F(6,3)
//! within 1–15% of F(4,3) above 14×14, and Winograd beats im2col on every 3×3 stride-1 layer
//! of both networks, including VGG's first (3 input channels).

use super::params::{ConvParams, Nhwc};
use super::Algorithm;

/// Transform cost per transform-domain element (input + output transforms), in GEMM
/// multiply-adds, for F(2,3), F(4,3), F(6,3).
const TAU: [(usize, f64); 3] = [(2, 12.5), (4, 16.0), (6, 34.0)];
/// Cost of streaming one transformed filter element, in GEMM multiply-adds.
const OMEGA: f64 = 8.0;

/// The algorithm [`Algorithm::Auto`] resolves to for `params`, for inputs of shape `input`
/// when known (otherwise for one 56×56 image).
pub fn choose_algorithm(params: &ConvParams, input: Option<Nhwc>) -> Algorithm {
    if params.is_depthwise() {
        return Algorithm::Depthwise;
    }
    let winograd_shape = params.kernel_h == 3
        && params.kernel_w == 3
        && params.stride_h == 1
        && params.stride_w == 1
        && params.dilation_h == 1
        && params.dilation_w == 1;
    if !winograd_shape {
        return Algorithm::Im2col;
    }
    let (n, ho, wo) = match input.and_then(|i| params.output_shape(i).ok()) {
        Some(o) => (o.batch.max(1), o.height, o.width),
        None => (1, 56, 56),
    };
    let groups = params.groups.max(1) as f64;
    let cin = (params.in_channels / params.groups.max(1)) as f64;
    let cout = (params.out_channels / params.groups.max(1)) as f64;
    let im2col = (n * ho * wo) as f64 * cout * (1.07 * 9.0 * cin + 64.0) * groups;
    let mut best = (im2col, Algorithm::Im2col);
    for (m, tau) in TAU {
        let a2 = ((m + 2) * (m + 2)) as f64;
        let tiles = (n * ho.div_ceil(m) * wo.div_ceil(m)) as f64;
        let filter = a2 * cin * cout * groups;
        let cost = tiles * a2 * (cin * cout + tau * (cin + cout)) * groups + OMEGA * filter;
        if cost < best.0 {
            best = (
                cost,
                match m {
                    2 => Algorithm::Winograd2x3,
                    4 => Algorithm::Winograd4x3,
                    _ => Algorithm::Winograd6x3,
                },
            );
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Padding;

    fn pick(hw: usize, cin: usize, cout: usize) -> Algorithm {
        let p = ConvParams::new(cin, cout, 3, 3).with_padding(Padding::Same);
        choose_algorithm(&p, Some(Nhwc::new(1, hw, hw, cin)))
    }

    /// The choices the README reports for the benchmark's layers.
    #[test]
    fn choices_on_the_benchmark_layers() {
        assert_eq!(pick(224, 3, 64), Algorithm::Winograd4x3);
        assert_eq!(pick(112, 128, 128), Algorithm::Winograd4x3);
        assert_eq!(pick(56, 256, 256), Algorithm::Winograd4x3);
        assert_eq!(pick(28, 512, 512), Algorithm::Winograd4x3);
        assert_eq!(pick(14, 512, 512), Algorithm::Winograd4x3);
        assert_eq!(pick(14, 256, 256), Algorithm::Winograd4x3);
        assert_eq!(pick(7, 512, 512), Algorithm::Winograd2x3);
        // Tiny maps: the transforms and the filter do not pay.
        assert_eq!(pick(2, 64, 64), Algorithm::Im2col);
        // Not 3×3 stride 1: im2col; depthwise: depthwise.
        let p = ConvParams::new(64, 64, 3, 3).with_stride(2, 2);
        assert_eq!(choose_algorithm(&p, None), Algorithm::Im2col);
        let p = ConvParams::new(64, 64, 1, 1);
        assert_eq!(choose_algorithm(&p, None), Algorithm::Im2col);
        let p = ConvParams::depthwise(64, 1, 3, 3);
        assert_eq!(choose_algorithm(&p, None), Algorithm::Depthwise);
    }
}

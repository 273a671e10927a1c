//! `Algorithm::Auto`: which algorithm computes a layer fastest, from its shape.
//!
//! The rule (measurements behind it in the README's Convolution section):
//! 1. One input channel per group (depthwise) → [`Algorithm::Depthwise`].
//! 2. 3×3, stride 1, dilation 1, with enough channels per group for the transform-domain
//!    GEMMs to run near the kernel's peak → the Winograd variant with the lowest estimated
//!    cost (below), if it beats im2col's estimate.
//! 3. Everything else → [`Algorithm::Im2col`] (1×1 stride-1 layers are a plain GEMM).
//!
//! The Winograd cost model counts, per output tile, the transform-domain multiply-adds
//! `α²·Cin·Cout/g` at the GEMM's rate and the transforms `α²·(Cin + Cout)` at a rate per
//! element measured for each variant; im2col is `9·Cin·Cout/g` multiply-adds per output
//! pixel at the GEMM's rate. Tiles hanging over the output's edge count in full, which is
//! what makes F(6,3) lose on 14×14 maps (3×3 tiles of 6 cover 18×18) and F(2,3) win there.

use super::params::{ConvParams, Nhwc};
use super::Algorithm;

/// Channels per group below which Winograd does not pay: the transforms cost O(Cin + Cout)
/// per tile against O(Cin·Cout) of GEMM work, and small GEMMs run far below peak.
const MIN_WINOGRAD_CHANNELS: usize = 16;

/// Relative cost of one transform-domain element of the input plus output transforms,
/// in GEMM multiply-adds (measured: see `examples/conv_bench.rs` and the README).
const TRANSFORM_COST: [(usize, f64); 3] = [(2, 6.0), (4, 7.0), (6, 8.0)];

/// The algorithm [`Algorithm::Auto`] resolves to for `params`, for inputs of shape `input`
/// when known (otherwise for a large feature map: 56×56).
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
    let groups = params.groups.max(1);
    let (cin, cout) = (params.in_channels / groups, params.out_channels / groups);
    if !winograd_shape || cin < MIN_WINOGRAD_CHANNELS || cout < MIN_WINOGRAD_CHANNELS {
        return Algorithm::Im2col;
    }
    let (ho, wo) = match input.and_then(|i| params.output_shape(i).ok()) {
        Some(o) => (o.height, o.width),
        None => (56, 56),
    };
    let (cin, cout) = (cin as f64, cout as f64);
    let im2col = (ho * wo) as f64 * 9.0 * cin * cout;
    let mut best = (im2col, Algorithm::Im2col);
    for (m, tcost) in TRANSFORM_COST {
        let a2 = ((m + 2) * (m + 2)) as f64;
        let tiles = (ho.div_ceil(m) * wo.div_ceil(m)) as f64;
        let cost = tiles * a2 * (cin * cout + tcost * (cin + cout));
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

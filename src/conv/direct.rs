//! The direct convolution: seven nested loops, accumulated in f64 and rounded once. It is
//! [`Algorithm::Direct`](super::Algorithm::Direct) and the oracle every test compares
//! against ([`reference_conv2d`]). Nothing here is fast.

use super::params::{ConvParams, Geometry, Nhwc};
use crate::error::Error;
use alloc::vec;
use alloc::vec::Vec;

/// The exact result of a convolution, before the activation: for every output element its
/// value `Σ x·w + b` and `Σ |x·w| + |b|` (the scale of its rounding error), accumulated in
/// f64 (exact for f32 products; the sums are within a few f64 ulps).
#[derive(Clone, Debug)]
pub struct ReferenceConv {
    pub shape: Nhwc,
    /// Pre-activation output (the activation of [`ConvParams`] is not applied).
    pub value: Vec<f64>,
    /// `Σ |x·w| + |b|` per output element.
    pub abs: Vec<f64>,
}

/// The oracle: the convolution computed directly in f64 (see [`ReferenceConv`]).
pub fn reference_conv2d(
    params: &ConvParams,
    input: &[f32],
    input_shape: Nhwc,
    filter: &[f32],
    bias: Option<&[f32]>,
) -> Result<ReferenceConv, Error> {
    let g = params.geometry(input_shape)?;
    check_lengths(params, &g, input, filter, bias)?;
    let len = g.output.len()?;
    let mut value = vec![0f64; len];
    let mut abs = vec![0f64; len];
    direct_f64(&g, input, filter, bias, |i, v, a| {
        value[i] = v;
        abs[i] = a;
    });
    Ok(ReferenceConv {
        shape: g.output,
        value,
        abs,
    })
}

/// Checks the input, filter and bias lengths against the geometry.
pub(crate) fn check_lengths(
    params: &ConvParams,
    g: &Geometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
) -> Result<(), Error> {
    let want = g.input.len()?;
    if input.len() != want {
        return Err(Error::ConvTensorLength {
            tensor: "input",
            expected: want,
            got: input.len(),
        });
    }
    check_filter(params, filter, bias)
}

pub(crate) fn check_filter(
    params: &ConvParams,
    filter: &[f32],
    bias: Option<&[f32]>,
) -> Result<(), Error> {
    let want = params.filter_len()?;
    if filter.len() != want {
        return Err(Error::ConvTensorLength {
            tensor: "filter",
            expected: want,
            got: filter.len(),
        });
    }
    if let Some(b) = bias {
        if b.len() != params.out_channels {
            return Err(Error::ConvTensorLength {
                tensor: "bias",
                expected: params.out_channels,
                got: b.len(),
            });
        }
    }
    Ok(())
}

/// Calls `out(index, Σ x·w + b, Σ|x·w| + |b|)` for every output element, in order.
/// Lengths must have been checked.
pub(crate) fn direct_f64(
    g: &Geometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    mut out: impl FnMut(usize, f64, f64),
) {
    let (h, w, c) = (g.input.height, g.input.width, g.input.channels);
    let (ho, wo, co) = (g.output.height, g.output.width, g.output.channels);
    let mut idx = 0;
    for n in 0..g.output.batch {
        for oh in 0..ho {
            for ow in 0..wo {
                for o in 0..co {
                    let grp = o / g.cout_g;
                    let b = bias.map_or(0.0, |b| b[o] as f64);
                    let (mut v, mut a) = (b, b.abs());
                    for r in 0..g.kh {
                        let ih = g.ih(oh, r);
                        if ih < 0 || ih >= h as isize {
                            continue;
                        }
                        for s in 0..g.kw {
                            let iw = g.iw(ow, s);
                            if iw < 0 || iw >= w as isize {
                                continue;
                            }
                            let x0 = ((n * h + ih as usize) * w + iw as usize) * c + grp * g.cin_g;
                            let w0 = ((o * g.kh + r) * g.kw + s) * g.cin_g;
                            for i in 0..g.cin_g {
                                let p = input[x0 + i] as f64 * filter[w0 + i] as f64;
                                v += p;
                                a += p.abs();
                            }
                        }
                    }
                    out(idx, v, a);
                    idx += 1;
                }
            }
        }
    }
    debug_assert_eq!(idx, g.output.len().unwrap_or(0));
}

/// Algorithm::Direct: the f64 result rounded once, then the activation.
pub(crate) fn run(
    g: &Geometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    lo: f32,
    hi: f32,
    output: &mut [f32],
) {
    direct_f64(g, input, filter, bias, |i, v, _| {
        output[i] = super::simd::clamp(v as f32, lo, hi);
    });
}

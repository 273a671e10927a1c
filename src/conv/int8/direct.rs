//! The direct int8 convolution: TFLite's reference loops (`ConvPerChannel`, which with one
//! input channel per group is `DepthwiseConvPerChannel`), accumulated in i64 and finished
//! with the scalar reference requantization (`crate::reference::requantize`). It is
//! `Algorithm::Direct` and the oracle the int8 tests compare every algorithm against.
//! Nothing here is fast, and it shares no arithmetic with the fast paths.

use super::{bytes_mut, ConvQuant, QuantOwned};
use crate::conv::params::{ConvParams, Geometry, Nhwc};
use crate::error::Error;
use crate::quant::{QuantInput, QuantOutput};

/// The oracle: the int8 convolution computed directly, TFLite's way (see the module docs of
/// `edgemm::conv`'s int8 part). Validates like [`QConv2d`](super::QConv2d) and writes every
/// element of `output`; returns the output shape.
#[allow(clippy::too_many_arguments)]
pub fn reference_qconv2d<A: QuantInput, O: QuantOutput>(
    params: &ConvParams,
    quant: &ConvQuant,
    input: &[A],
    input_shape: Nhwc,
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [O],
) -> Result<Nhwc, Error> {
    let q = QuantOwned::new::<A, O>(params, quant, filter.len(), bias)?;
    let g = params.geometry(input_shape)?;
    let want = input_shape.len()?;
    if input.len() != want {
        return Err(Error::ConvTensorLength {
            tensor: "input",
            expected: want,
            got: input.len(),
        });
    }
    let want = g.output.len()?;
    if output.len() != want {
        return Err(Error::ConvTensorLength {
            tensor: "output",
            expected: want,
            got: output.len(),
        });
    }
    run(&g, &q, input, filter, bytes_mut(output));
    Ok(g.output)
}

/// The loops. Lengths were checked by the caller.
pub(super) fn run<A: QuantInput>(
    g: &Geometry,
    q: &QuantOwned,
    input: &[A],
    filter: &[i8],
    output: &mut [u8],
) {
    let (h, w, c) = (g.input.height, g.input.width, g.input.channels);
    let (ho, wo, co) = (g.output.height, g.output.width, g.output.channels);
    let mut idx = 0;
    for n in 0..g.output.batch {
        for oy in 0..ho {
            for ox in 0..wo {
                for o in 0..co {
                    let grp = o / g.cout_g;
                    let mut acc = 0i64;
                    for ky in 0..g.kh {
                        let iy = g.ih(oy, ky);
                        for kx in 0..g.kw {
                            let ix = g.iw(ox, kx);
                            // TFLite: taps outside the image are skipped.
                            if iy < 0 || iy >= h as isize || ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let x0 = ((n * h + iy as usize) * w + ix as usize) * c + grp * g.cin_g;
                            let w0 = ((o * g.kh + ky) * g.kw + kx) * g.cin_g;
                            for i in 0..g.cin_g {
                                let x: i32 = input[x0 + i].into();
                                acc += filter[w0 + i] as i64 * (x - q.za) as i64;
                            }
                        }
                    }
                    // Exact: the layer's K was checked against max_exact_k, so the sum fits
                    // i32 as TFLite's int32 accumulator needs.
                    debug_assert!(i32::try_from(acc).is_ok());
                    let bias = q.bias.as_ref().map_or(0, |b| b[o]);
                    let (m, s) = q.scale_of(o);
                    let v = crate::reference::requantize(acc as i32, bias, m, s, q.zo, q.lo, q.hi);
                    output[idx] = v as u8;
                    idx += 1;
                }
            }
        }
    }
    debug_assert_eq!(idx, output.len());
}

//! 2-D convolution over NHWC tensors with OHWI filters, built on edgemm's GEMM.
//!
//! - [`ConvParams`]: channels, kernel size, stride, dilation, padding ([`Padding`]: VALID,
//!   SAME, explicit asymmetric), groups (depthwise with a depth multiplier), fused
//!   activation ([`Activation`]: ReLU, ReLU6, clamp). Bias is optional.
//! - [`Conv2d`]: a prepared layer — the filter transformed and packed once for its
//!   [`Algorithm`], reused across calls (and threads: `run` takes `&self`).
//! - [`conv2d`]: the one-shot call (prepares, runs, drops).
//! - [`Algorithm`]: `Direct` (the f64 reference), `Im2col` (patch matrix + packed GEMM;
//!   1×1 stride-1 layers as a plain GEMM on the input), `Depthwise` (vectorized over
//!   channels), `Winograd2x3` / `Winograd4x3` / `Winograd6x3` (3×3 stride-1 undilated
//!   layers), and `Auto` ([`choose_algorithm`]).
//! - [`reference_conv2d`]: the oracle (exact f64 result and its error scale).
//!
//! Bad shapes and parameters return an [`Error`] (never a panic).
//!
//! ```
//! use edgemm::conv::{conv2d, Activation, Algorithm, ConvParams, Nhwc, Padding};
//! use edgemm::Par;
//! let params = ConvParams::new(8, 16, 3, 3)
//!     .with_padding(Padding::Same)
//!     .with_activation(Activation::Relu);
//! let input_shape = Nhwc::new(1, 10, 10, 8);
//! let input = vec![0.5f32; input_shape.len()?];
//! let filter = vec![0.1f32; params.filter_len()?]; // OHWI: 16 × 3 × 3 × 8
//! let bias = vec![0.0f32; 16];
//! let out_shape = params.output_shape(input_shape)?; // 1 × 10 × 10 × 16
//! let mut output = vec![0f32; out_shape.len()?];
//! conv2d(&params, &input, input_shape, &filter, Some(&bias), &mut output, Algorithm::Auto, Par::Seq)?;
//! assert!((output[(5 * 10 + 5) * 16] - 3.6).abs() < 1e-5); // 9 taps × 8 channels × 0.05
//! # Ok::<(), edgemm::Error>(())
//! ```
//!
//! int8: [`QConv2d`] / [`qconv2d`] take the same [`ConvParams`] plus TFLite's quantization
//! ([`ConvQuant`]: input and output zero points, per-tensor or per-output-channel
//! fixed-point multipliers and shifts, the output scale for the activation), i8 or u8 NHWC
//! activations, i8 OHWI filters (zero point 0) and i32 bias, bit-exact with TFLite's
//! reference `ConvPerChannel` / `DepthwiseConvPerChannel` ([`reference_qconv2d`] is the
//! oracle). Algorithms: `Direct`, `Im2col` (padded with the input zero point, the GEMM on
//! [`PackedQB`](crate::PackedQB) with the requantization fused), `Depthwise`; Winograd is
//! f32-only. The activation becomes a clamp in the quantized domain
//! ([`quantized_activation_range`]).

mod depthwise;
mod direct;
pub(crate) mod im2col;
mod int8;
pub(crate) mod params;
mod select;
mod simd;
pub(crate) mod winograd;

pub use direct::{reference_conv2d, ReferenceConv};
pub use int8::{
    choose_algorithm_int8, qconv2d, quantize_conv_scales, quantized_activation_range,
    reference_qconv2d, ConvQuant, QConv2d,
};
pub use params::{Activation, ConvParams, Nhwc, Padding};
pub use select::choose_algorithm;

use crate::error::Error;
use crate::kernels::Kernel;
use crate::par::Par;
use alloc::vec;
use alloc::vec::Vec;
use depthwise::Depthwise;
use im2col::Im2col;
use simd::Isa;
use winograd::{Variant, Winograd};

/// How a layer is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Pick the fastest applicable algorithm for the layer ([`choose_algorithm`]).
    #[default]
    Auto,
    /// The direct convolution in f64 (the reference; slow).
    Direct,
    /// im2col + packed GEMM, any layer; 1×1 stride-1 unpadded layers as a plain GEMM.
    Im2col,
    /// Depthwise layers (one input channel per group), vectorized over channels.
    Depthwise,
    /// Winograd F(2×2, 3×3): 3×3, stride 1, dilation 1.
    Winograd2x3,
    /// Winograd F(4×4, 3×3): 3×3, stride 1, dilation 1.
    Winograd4x3,
    /// Winograd F(6×6, 3×3): 3×3, stride 1, dilation 1.
    Winograd6x3,
}

impl Algorithm {
    /// Every algorithm except `Auto`.
    pub const CONCRETE: [Algorithm; 6] = [
        Algorithm::Direct,
        Algorithm::Im2col,
        Algorithm::Depthwise,
        Algorithm::Winograd2x3,
        Algorithm::Winograd4x3,
        Algorithm::Winograd6x3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Direct => "direct",
            Algorithm::Im2col => "im2col",
            Algorithm::Depthwise => "depthwise",
            Algorithm::Winograd2x3 => "winograd2x3",
            Algorithm::Winograd4x3 => "winograd4x3",
            Algorithm::Winograd6x3 => "winograd6x3",
        }
    }

    fn winograd(self) -> Option<Variant> {
        match self {
            Algorithm::Winograd2x3 => Some(Variant::F2),
            Algorithm::Winograd4x3 => Some(Variant::F4),
            Algorithm::Winograd6x3 => Some(Variant::F6),
            _ => None,
        }
    }

    /// Whether this algorithm can compute `params` (`Ok`), or why not.
    pub fn check(self, params: &ConvParams) -> Result<(), Error> {
        params.validate()?;
        let fail = |reason| {
            Err(Error::ConvAlgorithm {
                algorithm: self.name(),
                reason,
            })
        };
        match self {
            Algorithm::Auto | Algorithm::Direct | Algorithm::Im2col => Ok(()),
            Algorithm::Depthwise => {
                if params.is_depthwise() {
                    Ok(())
                } else {
                    fail("needs one input channel per group (groups == in_channels)")
                }
            }
            _ => {
                if params.kernel_h != 3 || params.kernel_w != 3 {
                    fail("Winograd F(m, 3) needs a 3x3 kernel")
                } else if params.stride_h != 1 || params.stride_w != 1 {
                    fail("Winograd needs stride 1")
                } else if params.dilation_h != 1 || params.dilation_w != 1 {
                    fail("Winograd needs dilation 1")
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// How a prepared layer holds its filter.
enum Plan {
    Direct {
        filter: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    Im2col {
        im: Im2col,
        bias: Vec<f32>,
    },
    Depthwise(Depthwise),
    Winograd(Winograd),
}

/// A prepared f32 convolution layer: parameters, algorithm, and the filter transformed
/// and packed for it once. `run` takes `&self`, so one layer serves many calls and threads.
pub struct Conv2d {
    params: ConvParams,
    algorithm: Algorithm,
    isa: Isa,
    plan: Plan,
}

impl core::fmt::Debug for Conv2d {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Conv2d")
            .field("params", &self.params)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Conv2d {
    /// Prepares a layer. `filter` is OHWI (`out × kh × kw × in/groups`), `bias` one value
    /// per output channel. `Algorithm::Auto` resolves here with [`choose_algorithm`] for a
    /// large feature map; to choose for a known input size, pass
    /// `choose_algorithm(&params, Some(shape))` instead.
    pub fn new(
        params: &ConvParams,
        filter: &[f32],
        bias: Option<&[f32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        Self::build(None, params, filter, bias, algorithm)
    }

    /// [`Conv2d::new`] with the GEMM micro-kernel chosen (from [`Kernel::by_name`]) for the
    /// algorithms that use one.
    pub fn with_kernel(
        kernel: &Kernel,
        params: &ConvParams,
        filter: &[f32],
        bias: Option<&[f32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        Self::build(Some(kernel), params, filter, bias, algorithm)
    }

    fn build(
        kernel: Option<&Kernel>,
        params: &ConvParams,
        filter: &[f32],
        bias: Option<&[f32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        algorithm.check(params)?;
        direct::check_filter(params, filter, bias)?;
        let algorithm = match algorithm {
            Algorithm::Auto => choose_algorithm(params, None),
            a => a,
        };
        let p = *params;
        let cin_g = p.in_channels / p.groups;
        let cout_g = p.out_channels / p.groups;
        let bias_vec = || bias.map_or_else(|| vec![0f32; p.out_channels], |b| b.to_vec());
        let plan = match algorithm {
            Algorithm::Direct | Algorithm::Auto => Plan::Direct {
                filter: filter.to_vec(),
                bias: bias.map(|b| b.to_vec()),
            },
            Algorithm::Im2col => Plan::Im2col {
                im: Im2col::new(
                    kernel,
                    filter,
                    p.groups,
                    cout_g,
                    p.kernel_h * p.kernel_w * cin_g,
                )?,
                bias: bias_vec(),
            },
            Algorithm::Depthwise => Plan::Depthwise(Depthwise::new(
                filter,
                &bias_vec(),
                p.in_channels,
                cout_g,
                p.kernel_h,
                p.kernel_w,
            )),
            a => {
                let v = a.winograd().expect("Winograd variants remain");
                Plan::Winograd(Winograd::new(
                    kernel,
                    v,
                    filter,
                    &bias_vec(),
                    p.groups,
                    cin_g,
                    cout_g,
                )?)
            }
        };
        Ok(Conv2d {
            params: p,
            algorithm,
            isa: Isa::detect(),
            plan,
        })
    }

    pub fn params(&self) -> &ConvParams {
        &self.params
    }

    /// The algorithm this layer runs (never `Auto`).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The output shape for an input shape.
    pub fn output_shape(&self, input: Nhwc) -> Result<Nhwc, Error> {
        self.params.output_shape(input)
    }

    /// Computes the layer for `input` (NHWC, of shape `input_shape`) into `output` (NHWC,
    /// of shape [`Conv2d::output_shape`], every element written). Returns the output shape.
    pub fn run(
        &self,
        input: &[f32],
        input_shape: Nhwc,
        output: &mut [f32],
        par: Par,
    ) -> Result<Nhwc, Error> {
        let g = self.params.geometry(input_shape)?;
        let want_in = input_shape.len()?;
        if input.len() != want_in {
            return Err(Error::ConvTensorLength {
                tensor: "input",
                expected: want_in,
                got: input.len(),
            });
        }
        let want_out = g.output.len()?;
        if output.len() != want_out {
            return Err(Error::ConvTensorLength {
                tensor: "output",
                expected: want_out,
                got: output.len(),
            });
        }
        let threads = match par {
            Par::Seq => 1,
            Par::Threads(0) => return Err(Error::ZeroThreads),
            Par::Threads(n) => n.min(crate::threads::available()),
        };
        if want_out == 0 {
            return Ok(g.output);
        }
        let (lo, hi) = self.params.activation.bounds();
        match &self.plan {
            Plan::Direct { filter, bias } => {
                direct::run(&g, input, filter, bias.as_deref(), lo, hi, output)
            }
            Plan::Im2col { im, bias } => im.run(self.isa, &g, input, bias, lo, hi, output, threads),
            Plan::Depthwise(d) => d.run(self.isa, &g, input, lo, hi, output, threads),
            Plan::Winograd(w) => w.run(self.isa, &g, input, lo, hi, output, threads),
        }
        Ok(g.output)
    }

    /// The same layer computed with the vector code of another ISA (tests).
    #[cfg(test)]
    fn with_isa(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }
}

/// One-shot convolution: prepares the layer for `algorithm` (`Auto` chooses for this input
/// shape), runs it, and returns the output shape. Reusing a [`Conv2d`] avoids transforming
/// and packing the filter on every call.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    params: &ConvParams,
    input: &[f32],
    input_shape: Nhwc,
    filter: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
    algorithm: Algorithm,
    par: Par,
) -> Result<Nhwc, Error> {
    // Validate the call before the (possibly costly) preparation.
    params.geometry(input_shape)?;
    let algorithm = match algorithm {
        Algorithm::Auto => choose_algorithm(params, Some(input_shape)),
        a => a,
    };
    Conv2d::new(params, filter, bias, algorithm)?.run(input, input_shape, output, par)
}

/// A pointer shared by the threads of one call, each touching disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub *mut T);

impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the whole `SyncPtr`, not its field).
    #[inline(always)]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: used only to hand disjoint output rows/tiles (and shared read-only inputs) to the
// threads of one call, which all end before the call returns.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

/// Multiply-adds below which one more thread costs more than it saves (a pool dispatch
/// and a cold partner core cost several microseconds).
const MIN_WORK_PER_THREAD: usize = 1 << 20;

/// Threads worth using for `count` independent pieces totalling `work` multiply-adds.
pub(crate) fn useful_threads(threads: usize, count: usize, work: usize) -> usize {
    threads
        .min(count)
        .min((work / MIN_WORK_PER_THREAD).max(1))
        .max(1)
}

/// Runs `f` over `0..count` split into contiguous ranges, one per thread (at most
/// `threads`, fewer when `work` multiply-adds would not pay for them).
pub(crate) fn parallel_ranges(
    count: usize,
    threads: usize,
    work: usize,
    f: &(dyn Fn(core::ops::Range<usize>) + Sync),
) {
    let t = useful_threads(threads, count, work);
    if t == 1 {
        f(0..count);
        return;
    }
    crate::threads::run(t, t, &|i| f(count * i / t..count * (i + 1) / t));
}

#[cfg(test)]
mod tests;

//! int8 convolution with TFLite's quantization, bit-exact with TFLite's reference
//! `reference_integer_ops::ConvPerChannel` and `DepthwiseConvPerChannel`.
//!
//! Per output element (batch n, pixel (y, x), output channel o of group g):
//!
//! ```text
//! acc = Σ_{taps inside the image} Σ_i (x[n, iy, ix, g·Cin/g + i] − za) · w[o, ky, kx, i]
//! acc = acc + bias[o]                                   (i32, wrapping)
//! v   = MultiplyByQuantizedMultiplier(acc, M[o], shift[o]) + zo
//! y   = clamp(v, act_min, act_max)                       (within the output type)
//! ```
//!
//! - Padding contributes nothing (TFLite skips taps outside the image); the im2col path
//!   pads with the input zero point `za`, whose terms `(za − za)·w` vanish exactly.
//! - Weights are symmetric (zero point 0), as TFLite's int8 per-channel weights.
//! - `acc` is exact: the layer is refused ([`Error::KTooLarge`]) when
//!   `Kh·Kw·Cin/g · max|x − za| · 128` could exceed i32 (K ≤ 65 793 even with the worst
//!   zero point); every algorithm accumulates exactly, then applies the same output stage.
//! - The fused activation of [`ConvParams`] becomes a clamp in the quantized domain, computed
//!   as TFLite's `CalculateActivationRangeQuantized` from the output scale
//!   ([`quantized_activation_range`]); an explicit clamp (`act_min`/`act_max` as a converted
//!   model stores them) can be given too, and the two are intersected.
//!
//! Algorithms: `Direct` (the reference, [`reference_qconv2d`]), `Im2col` (patch rows padded
//! with `za`, the GEMM through edgemm's packed int8 kernels with the filter packed once as a
//! [`PackedQB`](crate::PackedQB) per group and the requantization fused; 1×1 stride-1
//! unpadded layers as a plain GEMM on the input), `Depthwise` (vectorized over channels,
//! exact i32 lanes). Winograd is f32-only.

mod depthwise;
mod direct;
mod im2col;
mod lanes;
#[cfg(test)]
mod tests;

pub use direct::reference_qconv2d;

use super::params::{Activation, ConvParams, Nhwc};
use super::Algorithm;
use crate::error::{Error, Operand};
use crate::kernels::int8::QgemmKernel;
use crate::kernels::{qgemm_kernel, Kernel};
use crate::par::Par;
use crate::quant::requant::{Mults, RqPlan};
use crate::quant::{max_exact_k, QuantInput, QuantOutput, Requantize, Scale};
use alloc::vec::Vec;
use core::marker::PhantomData;
use depthwise::QDepthwise;
use im2col::QIm2col;
use lanes::QIsa;

/// The quantization of an int8 convolution layer (TFLite's scheme; see the module docs).
///
/// Zero-point errors name the input `A` and the output `C` (the GEMM's operands).
#[derive(Clone, Copy, Debug)]
pub struct ConvQuant<'a> {
    /// The input's zero point `za`, within the input type's range.
    pub input_zero_point: i32,
    /// The output's zero point `zo`, within the output type's range.
    pub output_zero_point: i32,
    /// `s_in·s_w / s_out` as a fixed-point multiplier and shift, per tensor or per output
    /// channel (see [`quantize_conv_scales`]); shifts in −31..=30.
    pub scale: Scale<'a>,
    /// The output's real scale `s_out`: needed (only) to turn the activation of
    /// [`ConvParams`] into a quantized clamp.
    pub output_scale: Option<f32>,
    /// A clamp in output units (zero point included), intersected with the activation's and
    /// the output type's range: TFLite's `act_min`/`act_max` when they come precomputed.
    pub clamp_min: i32,
    pub clamp_max: i32,
}

impl<'a> ConvQuant<'a> {
    /// Zero points and scale; no output scale (so only `Activation::None`), no extra clamp.
    pub fn new(input_zero_point: i32, output_zero_point: i32, scale: Scale<'a>) -> Self {
        ConvQuant {
            input_zero_point,
            output_zero_point,
            scale,
            output_scale: None,
            clamp_min: i32::MIN,
            clamp_max: i32::MAX,
        }
    }

    /// With the output's real scale (for the fused activation).
    pub fn with_output_scale(mut self, output_scale: f32) -> Self {
        self.output_scale = Some(output_scale);
        self
    }

    /// With an explicit output clamp (output units).
    pub fn with_clamp(mut self, min: i32, max: i32) -> Self {
        self.clamp_min = min;
        self.clamp_max = max;
        self
    }
}

/// TFLite's `CalculateActivationRangeQuantized` before the intersection with the output
/// type's range: `(lo, hi)` in output units, each bound `zo + round(bound / s_out)` (f32
/// division, rounding half away from zero, as `TfLiteRound`), `i32::MIN`/`i32::MAX` where
/// the activation has none. ReLU is `(q(0), ∞)`, ReLU6 `(q(0), q(6))`, `Clamp { min, max }`
/// `(q(min), q(max))` (TFLite's RELU_N1_TO_1 is `Clamp { min: −1, max: 1 }`).
///
/// ```
/// use edgemm::conv::{quantized_activation_range, Activation};
/// // s_out = 0.05, zo = −10: 0.0 → −10, 6.0 → −10 + 120 = 110.
/// assert_eq!(quantized_activation_range(Activation::Relu6, 0.05, -10)?, (-10, 110));
/// # Ok::<(), edgemm::Error>(())
/// ```
pub fn quantized_activation_range(
    activation: Activation,
    output_scale: f32,
    output_zero_point: i32,
) -> Result<(i32, i32), Error> {
    if !(output_scale.is_finite() && output_scale > 0.0) {
        return Err(Error::ConvQuant {
            reason: "the output scale must be finite and positive",
        });
    }
    let q = |f: f32| -> Result<i32, Error> {
        let r = round_half_away(f / output_scale);
        // TFLite's check that the rounded value is an int32 (2^31 is not).
        if !(-2_147_483_648.0..2_147_483_648.0).contains(&r) {
            return Err(Error::ConvQuant {
                reason: "an activation bound does not fit i32 in output units",
            });
        }
        output_zero_point
            .checked_add(r as i32)
            .ok_or(Error::ConvQuant {
                reason: "an activation bound does not fit i32 in output units",
            })
    };
    let bound = |f: f32, unbounded: i32| {
        if f.is_infinite() {
            Ok(unbounded)
        } else {
            q(f)
        }
    };
    match activation {
        Activation::None => Ok((i32::MIN, i32::MAX)),
        Activation::Relu => Ok((q(0.0)?, i32::MAX)),
        Activation::Relu6 => Ok((q(0.0)?, q(6.0)?)),
        Activation::Clamp { min, max } => {
            if min.is_nan() || max.is_nan() || min > max {
                return Err(Error::ConvClamp);
            }
            Ok((bound(min, i32::MIN)?, bound(max, i32::MAX)?))
        }
    }
}

/// `round` for f32 without std: half away from zero (`TfLiteRound`).
fn round_half_away(x: f32) -> f32 {
    // From 2^23 on every f32 is an integer (and NaN/∞ pass through).
    if !(x > -8_388_608.0 && x < 8_388_608.0) {
        return x;
    }
    let t = x as i32 as f32; // truncation, exact here
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Per-output-channel multipliers and shifts as TFLite computes them
/// (`PopulateConvolutionQuantizationParams`): `QuantizeMultiplier(f64(s_in)·f64(s_w[c]) /
/// f64(s_out))`. One filter scale gives per-tensor values (one pair).
pub fn quantize_conv_scales(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
) -> Result<(Vec<i32>, Vec<i32>), Error> {
    let mut mults = Vec::with_capacity(filter_scales.len());
    let mut shifts = Vec::with_capacity(filter_scales.len());
    for &s in filter_scales {
        let real = input_scale as f64 * s as f64 / output_scale as f64;
        if real < 0.0 {
            return Err(Error::InvalidScale);
        }
        let (m, sh) = crate::quant::quantize_multiplier(real)?;
        mults.push(m);
        shifts.push(sh);
    }
    Ok((mults, shifts))
}

/// The algorithm `Algorithm::Auto` resolves to for an int8 layer: `Depthwise` for
/// depthwise layers (one input channel per group, any multiplier), `Im2col` otherwise
/// (1×1 stride-1 unpadded layers then run as a plain GEMM).
pub fn choose_algorithm_int8(params: &ConvParams) -> Algorithm {
    if params.is_depthwise() {
        Algorithm::Depthwise
    } else {
        Algorithm::Im2col
    }
}

/// Whether an int8 layer can run with `algorithm`.
fn check_algorithm(algorithm: Algorithm, params: &ConvParams) -> Result<(), Error> {
    match algorithm {
        Algorithm::Winograd2x3 | Algorithm::Winograd4x3 | Algorithm::Winograd6x3 => {
            Err(Error::ConvAlgorithm {
                algorithm: algorithm.name(),
                reason: "Winograd is f32-only (int8 convolution: direct, im2col, depthwise)",
            })
        }
        a => a.check(params),
    }
}

/// The per-channel (or per-tensor) scale, owned.
#[derive(Clone, Debug)]
enum OwnedScale {
    PerTensor {
        multiplier: i32,
        shift: i32,
    },
    PerChannel {
        multipliers: Vec<i32>,
        shifts: Vec<i32>,
    },
}

/// A layer's validated quantization, owned: what every algorithm's output stage needs.
#[derive(Clone, Debug)]
pub(crate) struct QuantOwned {
    pub za: i32,
    pub zo: i32,
    scale: OwnedScale,
    pub bias: Option<Vec<i32>>,
    /// The final clamp, inside the output type's range.
    pub lo: i32,
    pub hi: i32,
}

impl QuantOwned {
    /// Validates everything about the quantization and the filter for input type `A` and
    /// output type `O`.
    fn new<A: QuantInput, O: QuantOutput>(
        params: &ConvParams,
        quant: &ConvQuant,
        filter_len: usize,
        bias: Option<&[i32]>,
    ) -> Result<Self, Error> {
        params.validate()?;
        let want = params.filter_len()?;
        if filter_len != want {
            return Err(Error::ConvTensorLength {
                tensor: "filter",
                expected: want,
                got: filter_len,
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
        let za = quant.input_zero_point;
        if !(A::MIN..=A::MAX).contains(&za) {
            return Err(Error::ZeroPointOutOfRange {
                operand: Operand::A,
                value: za,
                min: A::MIN,
                max: A::MAX,
            });
        }
        let k = params.kernel_h * params.kernel_w * (params.in_channels / params.groups);
        let k_max = max_exact_k::<A>(za, 0);
        if k > k_max {
            return Err(Error::KTooLarge { k, max: k_max });
        }
        let (act_lo, act_hi) = match (params.activation, quant.output_scale) {
            (Activation::None, _) => (i32::MIN, i32::MAX),
            (a, Some(s)) => quantized_activation_range(a, s, quant.output_zero_point)?,
            (_, None) => {
                return Err(Error::ConvQuant {
                    reason: "a fused activation needs the output scale (with_output_scale)",
                })
            }
        };
        // The GEMM's validation: scale lengths and shifts, output zero point, clamp.
        let rq = Requantize {
            bias,
            scale: quant.scale,
            output_zero_point: quant.output_zero_point,
            clamp_min: quant.clamp_min.max(act_lo),
            clamp_max: quant.clamp_max.min(act_hi),
        };
        let plan = rq.plan::<O>(params.out_channels)?;
        let scale = match quant.scale {
            Scale::PerTensor { multiplier, shift } => OwnedScale::PerTensor { multiplier, shift },
            Scale::PerChannel {
                multipliers,
                shifts,
            } => OwnedScale::PerChannel {
                multipliers: multipliers.to_vec(),
                shifts: shifts.to_vec(),
            },
        };
        Ok(QuantOwned {
            za,
            zo: quant.output_zero_point,
            scale,
            bias: bias.map(|b| b.to_vec()),
            lo: plan.lo,
            hi: plan.hi,
        })
    }

    /// (multiplier, shift) of output channel `o`.
    #[inline]
    pub fn scale_of(&self, o: usize) -> (i32, i32) {
        match &self.scale {
            OwnedScale::PerTensor { multiplier, shift } => (*multiplier, *shift),
            OwnedScale::PerChannel {
                multipliers,
                shifts,
            } => (multipliers[o], shifts[o]),
        }
    }

    /// The output stage of output channels `c0..c0 + n` (column j is channel `c0 + j`).
    pub fn plan(&self, c0: usize, n: usize) -> RqPlan<'_> {
        let (mults, no_left_shift, right_shift_only, least) = match &self.scale {
            OwnedScale::PerTensor { multiplier, shift } => (
                Mults::PerTensor {
                    multiplier: *multiplier,
                    shift: *shift,
                },
                *shift <= 0,
                *shift < 0 && *multiplier > i32::MIN + 1,
                *shift,
            ),
            OwnedScale::PerChannel {
                multipliers,
                shifts,
            } => {
                let (m, s) = (&multipliers[c0..c0 + n], &shifts[c0..c0 + n]);
                (
                    Mults::PerChannel {
                        multipliers: m,
                        shifts: s,
                    },
                    s.iter().all(|&x| x <= 0),
                    s.iter().all(|&x| x < 0) && m.iter().all(|&x| x > i32::MIN + 1),
                    s.iter().copied().min().unwrap_or(0),
                )
            }
        };
        RqPlan {
            mults,
            out_zp: self.zo,
            lo: self.lo,
            hi: self.hi,
            no_left_shift,
            zp_fits: crate::quant::requant::zp_fits(self.zo, least),
            right_shift_only,
            // (Not derived: nothing fuses without acc_small.)
            mults_nonneg: false,
            // No accumulator bound is derived for convolutions: the output stage keeps its
            // per-value range checks.
            acc_small: false,
        }
    }
}

/// How a prepared int8 layer holds its filter.
enum QPlan {
    Direct { filter: Vec<i8> },
    Im2col(QIm2col),
    Depthwise(QDepthwise),
}

/// A prepared int8 convolution layer for inputs of type `A` (i8 or u8) and outputs of type
/// `O` (i8 or u8), with i8 OHWI filters: parameters and quantization validated, the filter
/// packed once for its algorithm. `run` takes `&self`: one layer serves many calls, input
/// sizes and threads.
///
/// ```
/// use edgemm::conv::{Algorithm, ConvParams, ConvQuant, Nhwc, Padding, QConv2d};
/// use edgemm::{Par, Scale};
/// let params = ConvParams::new(8, 4, 3, 3).with_padding(Padding::Same);
/// // Real 1.0 per unit of accumulator / 16 (multiplier 2^30 = 0.5, shift −3: 0.5/8).
/// let quant = ConvQuant::new(-3, 5, Scale::PerTensor { multiplier: 1 << 30, shift: -3 });
/// let filter = vec![2i8; params.filter_len()?]; // OHWI: 4 × 3 × 3 × 8
/// let bias = vec![16i32; 4];
/// let layer: QConv2d<i8, i8> = QConv2d::new(&params, &quant, &filter, Some(&bias), Algorithm::Auto)?;
/// let shape = Nhwc::new(1, 6, 6, 8);
/// let input = vec![-1i8; shape.len()?]; // x − za = 2 everywhere
/// let mut output = vec![0i8; layer.output_shape(shape)?.len()?];
/// layer.run(&input, shape, &mut output, Par::Seq)?;
/// // Interior: 9 taps · 8 channels · 2 · 2 = 288, + 16 = 304, / 16 = 19, + 5 = 24.
/// assert_eq!(output[(2 * 6 + 2) * 4], 24);
/// // Corner: 4 taps inside the image: 128 + 16 = 144, / 16 = 9, + 5 = 14.
/// assert_eq!(output[0], 14);
/// # Ok::<(), edgemm::Error>(())
/// ```
pub struct QConv2d<A: QuantInput = i8, O: QuantOutput = i8> {
    params: ConvParams,
    algorithm: Algorithm,
    kernel: &'static QgemmKernel,
    isa: QIsa,
    q: QuantOwned,
    plan: QPlan,
    _types: PhantomData<fn(&[A]) -> O>,
}

impl<A: QuantInput, O: QuantOutput> core::fmt::Debug for QConv2d<A, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QConv2d")
            .field("params", &self.params)
            .field("algorithm", &self.algorithm)
            .field("kernel", &self.kernel.name)
            .finish_non_exhaustive()
    }
}

impl<A: QuantInput, O: QuantOutput> QConv2d<A, O> {
    /// Prepares a layer. `filter` is OHWI (`out × kh × kw × in/groups`, i8, zero point 0),
    /// `bias` one i32 per output channel (scale `s_in·s_w`). `Algorithm::Auto` resolves
    /// with [`choose_algorithm_int8`]; Winograd algorithms are an error (f32-only).
    pub fn new(
        params: &ConvParams,
        quant: &ConvQuant,
        filter: &[i8],
        bias: Option<&[i32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        Self::build(None, params, quant, filter, bias, algorithm)
    }

    /// [`QConv2d::new`] with the int8 GEMM micro-kernel chosen (from [`Kernel::by_name`]);
    /// its output stage also serves the depthwise path.
    pub fn with_kernel(
        kernel: &Kernel,
        params: &ConvParams,
        quant: &ConvQuant,
        filter: &[i8],
        bias: Option<&[i32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        Self::build(Some(kernel), params, quant, filter, bias, algorithm)
    }

    fn build(
        kernel: Option<&Kernel>,
        params: &ConvParams,
        quant: &ConvQuant,
        filter: &[i8],
        bias: Option<&[i32]>,
        algorithm: Algorithm,
    ) -> Result<Self, Error> {
        check_algorithm(algorithm, params)?;
        let q = QuantOwned::new::<A, O>(params, quant, filter.len(), bias)?;
        let ker = match kernel {
            Some(k) => k.int8()?,
            None => qgemm_kernel()?,
        };
        let algorithm = match algorithm {
            Algorithm::Auto => choose_algorithm_int8(params),
            a => a,
        };
        let p = *params;
        let cin_g = p.in_channels / p.groups;
        let cout_g = p.out_channels / p.groups;
        let plan = match algorithm {
            Algorithm::Im2col => QPlan::Im2col(QIm2col::new(
                kernel,
                filter,
                p.groups,
                cout_g,
                p.kernel_h * p.kernel_w * cin_g,
            )?),
            Algorithm::Depthwise => QPlan::Depthwise(QDepthwise::new(
                filter,
                q.bias.as_deref(),
                q.za,
                p.in_channels,
                cout_g,
                p.kernel_h * p.kernel_w,
            )),
            _ => QPlan::Direct {
                filter: filter.to_vec(),
            },
        };
        Ok(QConv2d {
            params: p,
            algorithm,
            kernel: ker,
            isa: QIsa::detect(),
            q,
            plan,
            _types: PhantomData,
        })
    }

    pub fn params(&self) -> &ConvParams {
        &self.params
    }

    /// The algorithm this layer runs (never `Auto`).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The int8 micro-kernel whose packing and output stage the layer uses.
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name
    }

    /// The final output clamp `(min, max)` in output units: the activation's, the explicit
    /// clamp and the output type's range intersected.
    pub fn output_clamp(&self) -> (i32, i32) {
        (self.q.lo, self.q.hi)
    }

    /// The output shape for an input shape.
    pub fn output_shape(&self, input: Nhwc) -> Result<Nhwc, Error> {
        self.params.output_shape(input)
    }

    /// Computes the layer for `input` (NHWC, of shape `input_shape`) into `output` (NHWC,
    /// of shape [`QConv2d::output_shape`], every element written). Returns the output shape.
    pub fn run(
        &self,
        input: &[A],
        input_shape: Nhwc,
        output: &mut [O],
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
        let out = bytes_mut(output);
        match &self.plan {
            QPlan::Direct { filter } => direct::run(&g, &self.q, input, filter, out),
            QPlan::Im2col(im) => im.run(self.kernel, &g, &self.q, input, out, threads),
            QPlan::Depthwise(d) => d.run(self.isa, self.kernel, &g, &self.q, input, out, threads),
        }
        Ok(g.output)
    }

    /// The same layer computed with the vector code of another ISA (tests).
    #[cfg(test)]
    fn with_isa(mut self, isa: QIsa) -> Self {
        self.isa = isa;
        self
    }
}

/// One-shot int8 convolution: prepares the layer for `algorithm`, runs it, and returns the
/// output shape. Reusing a [`QConv2d`] avoids packing the filter on every call.
#[allow(clippy::too_many_arguments)]
pub fn qconv2d<A: QuantInput, O: QuantOutput>(
    params: &ConvParams,
    quant: &ConvQuant,
    input: &[A],
    input_shape: Nhwc,
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [O],
    algorithm: Algorithm,
    par: Par,
) -> Result<Nhwc, Error> {
    params.geometry(input_shape)?;
    QConv2d::<A, O>::new(params, quant, filter, bias, algorithm)?.run(
        input,
        input_shape,
        output,
        par,
    )
}

/// An output slice of a one-byte type as bytes (the output stages write bit patterns).
fn bytes_mut<O: QuantOutput>(output: &mut [O]) -> &mut [u8] {
    const { assert!(core::mem::size_of::<O>() == 1) };
    // SAFETY: O is i8 or u8 (sealed trait): one byte, every bit pattern valid, same
    // alignment as u8; the new slice covers the same memory and borrows it exclusively.
    unsafe { core::slice::from_raw_parts_mut(output.as_mut_ptr() as *mut u8, output.len()) }
}

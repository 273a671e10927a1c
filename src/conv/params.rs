//! Layer parameters, tensor shapes, and their validation: everything a convolution call
//! checks before it touches data. Nothing here depends on the element type, so the int8
//! convolution takes the same [`ConvParams`] plus its quantization parameters.

use crate::error::Error;
use crate::gemm::raw::Raw;

/// How the input is padded (with zeros) before the kernel slides over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding: only positions where the whole (dilated) kernel fits.
    /// Output size `ceil((in − extent + 1) / stride)`.
    #[default]
    Valid,
    /// TensorFlow's SAME: output size `ceil(in / stride)`, the padding needed for it split
    /// evenly, the odd element at the bottom/right.
    Same,
    /// Explicit, possibly asymmetric, padding in elements.
    Explicit {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
}

/// The activation fused into the output stage (applied after the bias).
///
/// For int8 layers each maps to a clamp in the quantized domain, as in TFLite
/// (`conv::quantized_activation_range`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    /// max(x, 0)
    Relu,
    /// min(max(x, 0), 6)
    Relu6,
    /// min(max(x, min), max); `min <= max`, neither NaN.
    Clamp { min: f32, max: f32 },
}

impl Activation {
    /// The (lower, upper) bounds of the activation (±∞ where there is none).
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::Clamp { min, max } => (min, max),
        }
    }
}

/// An NHWC tensor shape: batch, height, width, channels (channels contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nhwc {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Nhwc {
    pub const fn new(batch: usize, height: usize, width: usize, channels: usize) -> Self {
        Nhwc {
            batch,
            height,
            width,
            channels,
        }
    }

    /// Number of elements, or [`Error::SizeOverflow`].
    pub fn len(&self) -> Result<usize, Error> {
        self.batch
            .checked_mul(self.height)
            .and_then(|x| x.checked_mul(self.width))
            .and_then(|x| x.checked_mul(self.channels))
            .ok_or(Error::SizeOverflow)
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.batch == 0 || self.height == 0 || self.width == 0 || self.channels == 0
    }
}

/// The shape and hyperparameters of a 2-D convolution layer.
///
/// Layouts: input NHWC, filter OHWI (`out_channels × kernel_h × kernel_w ×
/// in_channels/groups`), bias one value per output channel, output NHWC.
///
/// Groups: input channels `g·(in/groups)..` feed output channels `g·(out/groups)..`.
/// A depthwise layer is `groups == in_channels`, `out_channels = in_channels ×
/// multiplier` (output channel `c·multiplier + j` reads input channel `c`), as TFLite's
/// DEPTHWISE_CONV_2D; its filter in OHWI is `[out_channels][kh][kw][1]`.
///
/// ```
/// use edgemm::conv::{Activation, ConvParams, Nhwc, Padding};
/// let p = ConvParams::new(64, 128, 3, 3)
///     .with_padding(Padding::Same)
///     .with_stride(2, 2)
///     .with_activation(Activation::Relu);
/// assert_eq!(p.output_shape(Nhwc::new(1, 56, 56, 64))?, Nhwc::new(1, 28, 28, 128));
/// # Ok::<(), edgemm::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvParams {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub padding: Padding,
    pub groups: usize,
    pub activation: Activation,
}

/// Padding in elements on each side, resolved for one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pads {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

/// Everything a kernel needs about one call, checked: shapes, resolved padding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub input: Nhwc,
    pub output: Nhwc,
    pub pads: Pads,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
    /// Input channels per group.
    pub cin_g: usize,
    /// Output channels per group.
    pub cout_g: usize,
}

impl ConvParams {
    /// A `kernel_h × kernel_w` convolution: stride 1, dilation 1, [`Padding::Valid`], one
    /// group, no activation.
    pub const fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_h: usize,
        kernel_w: usize,
    ) -> Self {
        ConvParams {
            in_channels,
            out_channels,
            kernel_h,
            kernel_w,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            padding: Padding::Valid,
            groups: 1,
            activation: Activation::None,
        }
    }

    /// A depthwise convolution: `groups = channels`, `out_channels = channels × multiplier`.
    pub const fn depthwise(
        channels: usize,
        multiplier: usize,
        kernel_h: usize,
        kernel_w: usize,
    ) -> Self {
        let mut p = Self::new(
            channels,
            channels.saturating_mul(multiplier),
            kernel_h,
            kernel_w,
        );
        p.groups = channels;
        p
    }

    pub const fn with_stride(mut self, h: usize, w: usize) -> Self {
        self.stride_h = h;
        self.stride_w = w;
        self
    }

    pub const fn with_dilation(mut self, h: usize, w: usize) -> Self {
        self.dilation_h = h;
        self.dilation_w = w;
        self
    }

    pub const fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    pub const fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub const fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// True for a depthwise layer (one input channel per group, at least one group).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.in_channels && self.groups > 0
    }

    /// Output channels per input channel of a depthwise layer.
    pub fn depth_multiplier(&self) -> Option<usize> {
        self.is_depthwise()
            .then(|| self.out_channels / self.in_channels)
    }

    /// Checks everything that does not depend on the input size.
    pub fn validate(&self) -> Result<(), Error> {
        let at_least_one = "must be at least 1";
        for (name, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("kernel_h", self.kernel_h),
            ("kernel_w", self.kernel_w),
            ("stride_h", self.stride_h),
            ("stride_w", self.stride_w),
            ("dilation_h", self.dilation_h),
            ("dilation_w", self.dilation_w),
            ("groups", self.groups),
        ] {
            if value == 0 {
                return Err(Error::ConvParam {
                    name,
                    value,
                    requirement: at_least_one,
                });
            }
        }
        if self.in_channels % self.groups != 0 || self.out_channels % self.groups != 0 {
            return Err(Error::ConvGroups {
                groups: self.groups,
                in_channels: self.in_channels,
                out_channels: self.out_channels,
            });
        }
        if let Activation::Clamp { min, max } = self.activation {
            if min.is_nan() || max.is_nan() || min > max {
                return Err(Error::ConvClamp);
            }
        }
        // The dilated extents and the filter size must be representable.
        self.extent_h()?;
        self.extent_w()?;
        self.filter_len()?;
        Ok(())
    }

    /// `dilation·(kernel − 1) + 1` along the height.
    fn extent_h(&self) -> Result<usize, Error> {
        extent(self.kernel_h, self.dilation_h)
    }

    fn extent_w(&self) -> Result<usize, Error> {
        extent(self.kernel_w, self.dilation_w)
    }

    /// Elements of the OHWI filter: `out × kh × kw × in/groups`.
    pub fn filter_len(&self) -> Result<usize, Error> {
        self.out_channels
            .checked_mul(self.kernel_h)
            .and_then(|x| x.checked_mul(self.kernel_w))
            .and_then(|x| x.checked_mul(self.in_channels / self.groups.max(1)))
            .ok_or(Error::SizeOverflow)
    }

    /// The output shape for an input shape (validating both).
    pub fn output_shape(&self, input: Nhwc) -> Result<Nhwc, Error> {
        Ok(self.geometry(input)?.output)
    }

    /// Validates the parameters against an input shape and resolves the padding.
    pub(crate) fn geometry(&self, input: Nhwc) -> Result<Geometry, Error> {
        self.validate()?;
        if input.channels != self.in_channels {
            return Err(Error::ConvChannels {
                expected: self.in_channels,
                got: input.channels,
            });
        }
        input.len()?;
        let (eh, ew) = (self.extent_h()?, self.extent_w()?);
        let (oh, top, bottom) = axis(
            "height",
            input.height,
            eh,
            self.stride_h,
            self.padding,
            true,
        )?;
        let (ow, left, right) = axis("width", input.width, ew, self.stride_w, self.padding, false)?;
        let output = Nhwc::new(input.batch, oh, ow, self.out_channels);
        output.len()?;
        Ok(Geometry {
            input,
            output,
            pads: Pads {
                top,
                bottom,
                left,
                right,
            },
            kh: self.kernel_h,
            kw: self.kernel_w,
            sh: self.stride_h,
            sw: self.stride_w,
            dh: self.dilation_h,
            dw: self.dilation_w,
            groups: self.groups,
            cin_g: self.in_channels / self.groups,
            cout_g: self.out_channels / self.groups,
        })
    }
}

fn extent(k: usize, d: usize) -> Result<usize, Error> {
    k.checked_sub(1)
        .and_then(|x| x.checked_mul(d))
        .and_then(|x| x.checked_add(1))
        .ok_or(Error::SizeOverflow)
}

/// (output size, padding before, padding after) along one axis.
fn axis(
    name: &'static str,
    size: usize,
    extent: usize,
    stride: usize,
    padding: Padding,
    vertical: bool,
) -> Result<(usize, usize, usize), Error> {
    let (before, after) = match padding {
        Padding::Valid => (0, 0),
        Padding::Same => {
            if size == 0 {
                return Ok((0, 0, 0));
            }
            let out = size.div_ceil(stride);
            let needed = (out - 1)
                .checked_mul(stride)
                .and_then(|x| x.checked_add(extent))
                .ok_or(Error::SizeOverflow)?;
            let total = needed.saturating_sub(size);
            (total / 2, total - total / 2)
        }
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => {
            if vertical {
                (top, bottom)
            } else {
                (left, right)
            }
        }
    };
    let padded = size
        .checked_add(before)
        .and_then(|x| x.checked_add(after))
        .ok_or(Error::SizeOverflow)?;
    if padded < extent {
        return Err(Error::ConvInputTooSmall {
            axis: name,
            padded,
            kernel_extent: extent,
        });
    }
    Ok(((padded - extent) / stride + 1, before, after))
}

impl Geometry {
    /// A 1×1, stride-1, unpadded layer: a plain GEMM on the input (no patch buffer).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pads.top == 0
            && self.pads.bottom == 0
            && self.pads.left == 0
            && self.pads.right == 0
    }

    /// The GEMM operands of group `grp` for output rows `r0..r0 + m`: A from `a` (the patch
    /// block, `a_rs` apart, or the input itself when pointwise) and C in `out` (NHWC).
    /// Only pointer arithmetic: the caller vouches for the memory.
    pub(crate) fn group_operands<A, O>(
        &self,
        grp: usize,
        k: usize,
        pointwise: bool,
        (a, a_rs): (*mut A, usize),
        out: *mut O,
        (r0, m): (usize, usize),
    ) -> (Raw<A>, Raw<O>) {
        let (cin_off, k) = if pointwise {
            (grp * self.cin_g, self.cin_g)
        } else {
            (grp * k, k)
        };
        let a = Raw {
            ptr: a.wrapping_add(cin_off),
            rows: m,
            cols: k,
            rs: a_rs as isize,
            cs: 1,
        };
        let c = Raw {
            ptr: out.wrapping_add(r0 * self.output.channels + grp * self.cout_g),
            rows: m,
            cols: self.cout_g,
            rs: self.output.channels as isize,
            cs: 1,
        };
        (a, c)
    }

    /// Input row of output row `oh` and kernel row `kh` (may be outside `0..H`).
    #[inline(always)]
    pub fn ih(&self, oh: usize, kh: usize) -> isize {
        (oh * self.sh + kh * self.dh) as isize - self.pads.top as isize
    }

    #[inline(always)]
    pub fn iw(&self, ow: usize, kw: usize) -> isize {
        (ow * self.sw + kw * self.dw) as isize - self.pads.left as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // in 7, k 3, s 2: out 4, total pad (4-1)*2+3-7 = 2 -> 1/1.
        let p = ConvParams::new(1, 1, 3, 3)
            .with_stride(2, 2)
            .with_padding(Padding::Same);
        let g = p.geometry(Nhwc::new(1, 7, 7, 1)).unwrap();
        assert_eq!((g.output.height, g.pads.top, g.pads.bottom), (4, 1, 1));
        // in 8, k 3, s 2: out 4, total pad 1 -> 0 top, 1 bottom.
        let g = p.geometry(Nhwc::new(1, 8, 8, 1)).unwrap();
        assert_eq!((g.output.height, g.pads.top, g.pads.bottom), (4, 0, 1));
        // k 1, s 2: no padding.
        let p = ConvParams::new(1, 1, 1, 1)
            .with_stride(2, 2)
            .with_padding(Padding::Same);
        let g = p.geometry(Nhwc::new(1, 8, 8, 1)).unwrap();
        assert_eq!((g.output.height, g.pads.top, g.pads.bottom), (4, 0, 0));
        // dilation 2, k 3 (extent 5), s 1, in 5: out 5, pad 4 -> 2/2.
        let p = ConvParams::new(1, 1, 3, 3)
            .with_dilation(2, 2)
            .with_padding(Padding::Same);
        let g = p.geometry(Nhwc::new(1, 5, 5, 1)).unwrap();
        assert_eq!((g.output.height, g.pads.top, g.pads.bottom), (5, 2, 2));
    }

    #[test]
    fn valid_and_explicit_sizes() {
        let p = ConvParams::new(1, 1, 3, 2).with_stride(2, 3);
        let g = p.geometry(Nhwc::new(2, 9, 10, 1)).unwrap();
        assert_eq!((g.output.height, g.output.width), (4, 3));
        let p = p.with_padding(Padding::Explicit {
            top: 1,
            bottom: 0,
            left: 2,
            right: 3,
        });
        let g = p.geometry(Nhwc::new(2, 9, 10, 1)).unwrap();
        assert_eq!((g.output.height, g.output.width), (4, 5));
        assert!(matches!(
            ConvParams::new(1, 1, 3, 3).output_shape(Nhwc::new(1, 2, 5, 1)),
            Err(Error::ConvInputTooSmall { axis: "height", .. })
        ));
    }
}

//! CONV_2D: NHWC convolution with OHWI weights, strides, dilation, SAME/VALID padding
//! (TFLite's `ComputePaddingHeightWidth`), bias and fused activation; int8 (per-channel or
//! per-tensor weights, bit-exact with TFLite's `reference_integer_ops::ConvPerChannel`, which
//! the BUILTIN_REF resolver runs for int8) and f32 (TFLite's `reference_ops::Conv` within
//! rounding).
//!
//! It runs as im2col + one GEMM per block of output pixels: the patch of each output pixel
//! (kh·kw·c_in values, out-of-image taps filled with the input zero point, so they add
//! `(z_x − z_x)·w = 0` exactly as TFLite skips them; 0.0 for f32) is a row of A, the
//! weights (OHWI = n rows of k) are B, transposed to k×n and packed at conversion, and the
//! GEMM's output stage is TFLite's requantization (see `gemm_common`). A 1×1, stride-1,
//! unpadded convolution needs no patches: the input is A. Blocks bound the patch buffer
//! (to about `IM2COL_BYTES`, 256 KiB).
//!
//! Blob form. Inputs: x [b, h, w, c_in], then the GEMM part of `gemm_common` (weights k×n,
//! bias, multipliers, shifts). Output: y [b, oh, ow, c_out]. One scratch tensor: the patch
//! buffer (block·k elements, rounded up to 64 bytes; absent when im2col is 0) followed by the
//! GEMM workspace for a block. Parameters: the [`Geom`] words (b, h, w, c_in, oh, ow, c_out,
//! kh, kw, stride h, stride w, dilation h, dilation w, pad top, pad left), im2col (0 or 1),
//! block (output pixels per GEMM), then the GEMM part's words.

use super::gemm_common::{self, Gemm};
use super::{checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 3,
    name: "CONV_2D",
    in_place: false,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

/// The patch buffer's target size: larger convolutions run in blocks of output pixels.
#[cfg(feature = "alloc")]
pub(crate) const IM2COL_BYTES: usize = 256 * 1024;

/// The geometry of a 2-D convolution or depthwise convolution (NHWC), as parameter words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub batch: usize,
    pub ih: usize,
    pub iw: usize,
    pub ic: usize,
    pub oh: usize,
    pub ow: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
}

impl Geom {
    /// Parameter words it takes.
    pub const WORDS: usize = 15;

    /// Reads it from parameter words `base..base + WORDS` (negative words read as 0; `check`
    /// rejects them).
    pub fn read(op: &OpView, base: usize) -> Self {
        let d = |i: usize| op.param(base + i).max(0) as usize;
        Geom {
            batch: d(0),
            ih: d(1),
            iw: d(2),
            ic: d(3),
            oh: d(4),
            ow: d(5),
            oc: d(6),
            kh: d(7),
            kw: d(8),
            sh: d(9),
            sw: d(10),
            dh: d(11),
            dw: d(12),
            pt: d(13),
            pl: d(14),
        }
    }

    /// The words, for lowering; `None` when a value does not fit one.
    #[cfg(feature = "alloc")]
    pub fn words(&self) -> Option<[i32; Self::WORDS]> {
        let v = [
            self.batch, self.ih, self.iw, self.ic, self.oh, self.ow, self.oc, self.kh, self.kw,
            self.sh, self.sw, self.dh, self.dw, self.pt, self.pl,
        ];
        let mut w = [0i32; Self::WORDS];
        for (w, v) in w.iter_mut().zip(v) {
            *w = i32::try_from(v).ok()?;
        }
        Some(w)
    }

    /// Validates the words against input 0 and output 0: no negative word, strides and
    /// dilations at least 1, element counts that match, and every index the loops form
    /// (in i64) far from overflow.
    pub fn check(&self, op: &OpView, base: usize) -> Result<(), Error> {
        if (0..Self::WORDS).any(|i| op.param(base + i) < 0) {
            return Err(op.error("a negative geometry word"));
        }
        if self.sh == 0 || self.sw == 0 || self.dh == 0 || self.dw == 0 {
            return Err(op.error("a stride or dilation of 0"));
        }
        if self.kh == 0 || self.kw == 0 || self.ic == 0 {
            return Err(op.error("an empty filter or no input channels"));
        }
        let x = checks::input(op, 0)?;
        let y = checks::output(op, 0)?;
        let prod = |v: &[usize]| {
            v.iter()
                .try_fold(1usize, |a, &b| a.checked_mul(b))
                .filter(|&p| p <= isize::MAX as usize)
                .ok_or_else(|| op.error("sizes overflow"))
        };
        if x.elems() != prod(&[self.batch, self.ih, self.iw, self.ic])?
            || y.elems() != prod(&[self.batch, self.oh, self.ow, self.oc])?
        {
            return Err(op.error("input or output size does not match the geometry"));
        }
        prod(&[self.kh, self.kw, self.ic])?;
        prod(&[self.kh, self.kw, self.oc])?;
        // Every word is below 2^31, so `o·s + f·d − pad` fits i64 (`in_y`, `in_x`).
        Ok(())
    }

    /// The input row of output row `oy` and filter row `fy` (may be outside the image).
    #[inline]
    pub fn in_y(&self, oy: usize, fy: usize) -> i64 {
        oy as i64 * self.sh as i64 + fy as i64 * self.dh as i64 - self.pt as i64
    }

    /// The input column of output column `ox` and filter column `fx`.
    #[inline]
    pub fn in_x(&self, ox: usize, fx: usize) -> i64 {
        ox as i64 * self.sw as i64 + fx as i64 * self.dw as i64 - self.pl as i64
    }

    /// The offset in elements of pixel (b, y, x) of the input, if (y, x) is inside it.
    #[inline]
    pub fn in_pixel(&self, b: usize, y: i64, x: i64) -> Option<usize> {
        let (y, x) = (usize::try_from(y).ok()?, usize::try_from(x).ok()?);
        (y < self.ih && x < self.iw).then(|| ((b * self.ih + y) * self.iw + x) * self.ic)
    }
}

const P_GEOM: usize = 0;
const P_IM2COL: usize = Geom::WORDS;
const P_BLOCK: usize = Geom::WORDS + 1;
/// The first word of the GEMM part (`gemm_common`).
const P_GEMM: usize = Geom::WORDS + 2;

/// The scratch layout: (patch bytes rounded to 64, workspace bytes) for a block.
fn scratch_parts(
    float: bool,
    packed: bool,
    im2col: bool,
    block: usize,
    k: usize,
    n: usize,
) -> Option<(usize, usize)> {
    let build = gemm_common::Kernels::Build;
    scratch_parts_for(build, float, packed, im2col, block, k, n)
}

/// [`scratch_parts`] in the build of `kernels` (a conversion target's, when lowering).
fn scratch_parts_for(
    kernels: gemm_common::Kernels,
    float: bool,
    packed: bool,
    im2col: bool,
    block: usize,
    k: usize,
    n: usize,
) -> Option<(usize, usize)> {
    let esize = if float { 4 } else { 1 };
    let patch = if im2col {
        block
            .checked_mul(k)?
            .checked_mul(esize)?
            .checked_next_multiple_of(64)?
    } else {
        0
    };
    Some((
        patch,
        gemm_common::workspace_bytes_for(kernels, float, packed, block, k, n),
    ))
}

fn is_float(op: &OpView) -> Result<bool, Error> {
    Ok(checks::input(op, 0)?.dtype == DType::F32)
}

/// kh·kw·c_in products per output value.
fn macs(op: &OpView) -> u64 {
    let g = Geom::read(op, P_GEOM);
    super::output_macs(op, (g.kh * g.kw) as u64 * g.ic as u64)
}

fn check(op: &OpView) -> Result<(), Error> {
    let float = is_float(op)?;
    checks::counts(
        op,
        1 + gemm_common::num_inputs(float),
        1,
        1,
        P_GEMM + gemm_common::num_params(float),
    )?;
    let g = Geom::read(op, P_GEOM);
    g.check(op, P_GEOM)?;
    let im2col = match op.param(P_IM2COL) {
        0 => false,
        1 => true,
        _ => return Err(op.error("the im2col word is not 0 or 1")),
    };
    let pointwise = g.kh == 1
        && g.kw == 1
        && g.sh == 1
        && g.sw == 1
        && g.pt == 0
        && g.pl == 0
        && g.oh == g.ih
        && g.ow == g.iw;
    if !im2col && !pointwise {
        return Err(op.error("a convolution without im2col that is not pointwise"));
    }
    let k = g.kh * g.kw * g.ic;
    let m = g.batch * g.oh * g.ow;
    let block = op.param(P_BLOCK);
    if block < 0 || (block == 0 && m > 0) || block as usize > m.max(1) {
        return Err(op.error("the block of output pixels is out of range"));
    }
    let packed = gemm_common::check(op, float, k, g.oc, P_GEMM)?;
    let (patch, ws) = scratch_parts(float, packed, im2col, block as usize, k, g.oc)
        .ok_or_else(|| op.error("sizes overflow"))?;
    let need = patch
        .checked_add(ws)
        .ok_or_else(|| op.error("sizes overflow"))?;
    if checks::temp(op, 0)?.bytes < need {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// Writes the patches of output pixels `p0..p0 + rows` (flat over batch, oh, ow) as rows of
/// k elements of `esize` bytes; out-of-image taps are bytes `pad` (the int8 input zero
/// point, or 0 for f32's 0.0).
fn im2col(g: &Geom, x: &[u8], esize: usize, pad: u8, p0: usize, rows: usize, a: &mut [u8]) {
    let c = g.ic * esize;
    let k = g.kh * g.kw * c;
    let plane = g.oh * g.ow;
    for (r, row) in a.chunks_exact_mut(k.max(1)).take(rows).enumerate() {
        let p = p0 + r;
        let (b, yx) = (p / plane.max(1), p % plane.max(1));
        let (oy, ox) = (yx / g.ow.max(1), yx % g.ow.max(1));
        for (t, dst) in row.chunks_exact_mut(c.max(1)).enumerate() {
            let (fy, fx) = (t / g.kw, t % g.kw);
            let src = g
                .in_pixel(b, g.in_y(oy, fy), g.in_x(ox, fx))
                .and_then(|at| x.get(at * esize..at * esize + c));
            match src {
                Some(src) => dst.copy_from_slice(src),
                None => dst.fill(pad),
            }
        }
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let float = is_float(op)?;
    let g = Geom::read(op, P_GEOM);
    let im2col_on = op.param(P_IM2COL) == 1;
    let block = op.param(P_BLOCK).max(1) as usize;
    let (k, n) = (g.kh * g.kw * g.ic, g.oc);
    let m = g.batch * g.oh * g.ow;
    let gemm = Gemm::load(op, mem, float, k, n, P_GEMM)?;
    let packed = matches!(
        gemm,
        Gemm::I8 {
            w: gemm_common::QWeights::Packed(_),
            ..
        }
    );
    let x_t = op.input(0).ok_or_else(|| op.error("missing input"))?;
    let x = mem.input(x_t)?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let s_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let (out, scratch) = mem.output_and_temp(out_t, s_t)?;
    let (patch_bytes, ws_bytes) = scratch_parts(float, packed, im2col_on, block, k, n)
        .ok_or_else(|| op.error("sizes overflow"))?;
    let (patch, rest) = scratch.split_at_mut(patch_bytes.min(scratch.len()));
    let ws = rest
        .get_mut(..ws_bytes)
        .ok_or_else(|| op.error("scratch too small"))?;
    let esize = if float { 4 } else { 1 };
    // The input zero point (an i8 in the GEMM words), or 0.0 (zero bytes).
    let pad = if float {
        0
    } else {
        op.param(P_GEMM) as i8 as u8
    };
    let mut p0 = 0;
    for y in out.chunks_mut((block * n * esize).max(1)) {
        let rows = m.saturating_sub(p0).min(block);
        if rows == 0 {
            break;
        }
        let a: &[u8] = if im2col_on {
            im2col(&g, x, esize, pad, p0, rows, patch);
            patch.get(..rows * k * esize).unwrap_or(&[])
        } else {
            x.get(p0 * k * esize..(p0 + rows) * k * esize)
                .unwrap_or(&[])
        };
        gemm.run(a, rows, y, ws)?;
        p0 += rows;
    }
    Ok(())
}

#[cfg(feature = "alloc")]
pub(crate) use lower::same_or_valid;

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;

    use super::{gemm_common, Geom, IM2COL_BYTES};
    use crate::error::Error;
    use crate::nn::transform::ir::{OpOptions, Padding};
    use crate::nn::transform::lower::Lowering;

    /// TFLite's output size and leading padding along one axis (`ComputeOutSize` and
    /// `ComputePaddingHeightWidth`): (out, pad). `None` for a zero stride or dilation.
    pub(crate) fn same_or_valid(
        padding: Padding,
        input: usize,
        filter: usize,
        stride: usize,
        dilation: usize,
    ) -> Option<(usize, usize)> {
        if stride == 0 || dilation == 0 || filter == 0 {
            return None;
        }
        let eff = (filter - 1) * dilation + 1;
        let out = match padding {
            Padding::Same => input.div_ceil(stride),
            Padding::Valid => (input + stride).saturating_sub(eff) / stride,
        };
        let total = ((out.max(1) - 1) * stride + eff) as i64 - input as i64;
        Some((out, (total / 2).max(0) as usize))
    }

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let gr = l.graph;
        let err = |r| gr.node_error(node, r);
        let (padding, sw, sh, act, dw, dh) = match &gr.nodes[node].options {
            OpOptions::Conv2d {
                padding,
                stride_w,
                stride_h,
                activation,
                dilation_w_factor,
                dilation_h_factor,
            } => (
                *padding,
                *stride_w,
                *stride_h,
                *activation,
                *dilation_w_factor,
                *dilation_h_factor,
            ),
            _ => return Err(err("CONV_2D without its options")),
        };
        let pos = |v: i32| usize::try_from(v).ok().filter(|&v| v > 0);
        let (Some(sw), Some(sh), Some(dw), Some(dh)) = (pos(sw), pos(sh), pos(dw), pos(dh)) else {
            return Err(err("a stride or dilation below 1 is not supported"));
        };
        let x = gr.input(node, 0)?;
        let w = gr.input(node, 1)?;
        let y = &gr.tensors[gr.output_index(node, 0)?];
        let four = |t: &[usize], what| <[usize; 4]>::try_from(t).map_err(|_| err(what));
        let [b, ih, iw, ic] = four(&x.shape, "the input is not 4-D")?;
        let [oc, kh, kw, wc] = four(&w.shape, "the weights are not 4-D")?;
        let [yb, yh, yw, yc] = four(&y.shape, "the output is not 4-D")?;
        if wc != ic {
            return Err(err("grouped convolution is not supported"));
        }
        let (oh, pt) = same_or_valid(padding, ih, kh, sh, dh).ok_or_else(|| err("empty filter"))?;
        let (ow, pl) = same_or_valid(padding, iw, kw, sw, dw).ok_or_else(|| err("empty filter"))?;
        if [yb, yh, yw, yc] != [b, oh, ow, oc] {
            return Err(err("the output shape does not match the convolution"));
        }
        let g = Geom {
            batch: b,
            ih,
            iw,
            ic,
            oh,
            ow,
            oc,
            kh,
            kw,
            sh,
            sw,
            dh,
            dw,
            pt,
            pl,
        };
        let words = g
            .words()
            .ok_or_else(|| err("a dimension too large is not supported"))?;
        let (k, m) = (kh * kw * ic, b * oh * ow);
        let pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0;
        let y_name = y.name.clone();
        let mut gl = gemm_common::lower_gemm(l, node, k, oc, act)?;
        if !gl.float {
            // TFLite's ConvPerChannel has no weights offset: the weights' zero point (0 by
            // the int8 spec) is not subtracted.
            gl.params[1] = 0;
        }
        let esize = if gl.float { 4 } else { 1 };
        let block = if pointwise {
            m.max(1)
        } else {
            (IM2COL_BYTES / (k * esize).max(1)).clamp(1, m.max(1))
        };
        let mut params = words.to_vec();
        params.push(i32::from(!pointwise));
        params
            .push(i32::try_from(block).map_err(|_| err("a dimension too large is not supported"))?);
        params.extend_from_slice(&gl.params);
        let mut op = l.op(node, 3, params);
        op.inputs.truncate(1);
        op.inputs.extend_from_slice(&gl.inputs);
        let kernels = l.packing.kernels();
        let (patch, ws) =
            super::scratch_parts_for(kernels, gl.float, gl.packed, !pointwise, block, k, oc)
                .ok_or_else(|| err("sizes overflow"))?;
        op.temps = vec![l.add_temp(format!("{y_name}/im2col+gemm"), patch + ws)];
        l.push(op);
        Ok(())
    }
}

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
//! unpadded convolution needs no patches: the input is A. A block's A and C rows take about
//! `BLOCK_BYTES` (64 KiB), so they stay in cache from im2col to the output stage. An f32
//! convolution with im2col runs without the patches when `conv_rows` takes it (the kernel
//! reads the input rows in place, one filter row at a time; the patch buffer holds its ring
//! of padded rows), else, with at most `conv_f32_direct::MAX_IC` input channels, directly
//! (`conv_f32_direct`: output channels in vector lanes, no patches; also preferred to
//! `conv_rows` for at most a quarter of the kernel's panel of output channels). These two
//! take the whole output as one block (they use no patches). An f32 pointwise
//! convolution goes to the `conv_rows` form when the kernel has convolution variants
//! (`conv_rows::Rows::pointwise`: its pixels as one row, bias and clamp in the kernel's
//! epilogue), else to `sgemm`. Threads
//! (`OpMem::threads`) take contiguous shares of the blocks, each with its own scratch.
//!
//! In place: a pointwise convolution may be planned with its output over its input (same
//! arena offset; `lower` allows it for that geometry only and `check` refuses it for any
//! other). It then copies a few input rows at a time to the patch buffer before their GEMM
//! writes their outputs (see `run_in_place`); int8 with the VNNI kernel runs one GEMM call
//! instead, which copies each row tile of A (flipped to u8) into its workspace before
//! writing the tile's outputs (`WsPlan::run_over_input`). On several threads
//! (`InPlace::run_threaded`) the first band of rows runs so while the others set their
//! outputs aside (n ≤ k), or the input is copied aside first (n > k): the smaller side.
//!
//! Blob form. Inputs: x [b, h, w, c_in], then the GEMM part of `gemm_common` (weights k×n,
//! bias, multipliers, shifts; f32 weights may be k×n i8 followed, after the bias, by their
//! per-output-channel f32 scales: `quantize_weights`, widened as the GEMM packs them). Output: y [b, oh, ow, c_out]. One scratch tensor: the patch
//! buffer (rows of k elements, int8 rows padded to 4 bytes, rounded up to 64 bytes: a block
//! of rows with im2col; for a pointwise convolution the rows it copies at a time in place,
//! about 1 KiB, optional when not in place) followed by the GEMM workspace for a block.
//! Parameters: the [`Geom`] words (b, h, w, c_in, oh, ow, c_out, kh, kw, stride h, stride w,
//! dilation h, dilation w, pad top, pad left), im2col (0: none, 1: im2col, 3: im2col with
//! the GEMM depth k padded to a multiple of 4 — int8, the weights given zero rows past
//! kh·kw·c_in and the patches the input zero point there, so a kernel reading whole 4-byte
//! k groups of A in place needs no packing), 4: implicit GEMM (below), 5: pointwise f32 with
//! the weights in panels (below), 6: Winograd (below)), block (output pixels per GEMM;
//! output rows per call with mode 4, output tiles with mode 6), then the GEMM part's words. Mode 2 is the
//! direct int8 form (`conv_direct`), registered as its own entry ([`DIRECT`]) so a firmware
//! whose forms set lacks `FORM_GEMM` links it alone.
//!
//! Panel form (mode 5; f32 pointwise, c_out a multiple of [`PANEL_NR`], written for a host
//! whose f32 kernel is the AVX-512 one, for layers with big weights: c_out ≥ 256 or ≥ 512
//! KiB). The weights are c_out/32 panels of c_in rows of 32 values (the kernel's NR), so the
//! kernel streams each panel straight from the blob; the k×n rows of a wide layer are
//! instead read 128 bytes a row more than a page apart, which the hardware prefetchers do not
//! follow (MobileNet-v2's 320 → 1280: 688 → 387 µs on Zen 4). `conv_rows` runs each panel
//! over all of a block's tiles, and blocks take up to [`PANEL_A_BYTES`] of input. Other
//! builds refuse it (`check`).
//!
//! Winograd form (mode 6; f32 3×3, stride 1, dilation 1, at least 16 (`WINOGRAD_MIN_C`)
//! channels in and out, a bias, written for a host blob, run by builds with `alloc`): the
//! weights are F(2×2, 3×3)'s transformed filter, 16 planes of c_in×c_out, and
//! `conv::winograd` runs blocks of `block` 2×2 output tiles (input transform, 16 GEMMs
//! reading the planes where they lie, output transform with bias and clamp; threads take
//! whole blocks, each in a workspace of the scratch's size of its own). F(2×2, 3×3) is as accurate as the GEMM (README, Convolution: bound factor 1) and
//! does 2.25× fewer multiplies: ResNet-8's 3×3 layers 38–42 → 22–36 µs on Zen 4 (its
//! weights take 16/9 of the bytes, its scratch up to `WINOGRAD_PLANE_BYTES` of planes).
//!
//! Implicit GEMM (mode 4; int8, dilation 1 along x, weights packed for a kernel that reads
//! A in segments: x86 VNNI). No patches: a call copies the input rows its block of output
//! rows reads into scratch once, flipped to u8 and padded left and right with the zero point
//! (rows above and below the image all zero point), and the kernel reads each output pixel's
//! patch there, a segment of kw·c_in adjacent bytes per filter row (an input row apart):
//! about a ninth of im2col's bytes for a 3×3 filter. A segment is read in whole 4-byte
//! groups: the weights give each filter row kw·c_in rounded up to 4 rows, the extra ones
//! zero (a 3×3×3 filter: depth 36), so the bytes read past a segment add nothing. Its
//! scratch: those input rows (and 3 bytes of slack), then the column offsets (n + 32 i32,
//! computed once per call, not per tile).

use super::conv_direct;
use super::conv_f32_direct;
use super::conv_rows;
use super::gemm_common::{self, FWeights, Gemm};
use super::{cast_mut, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};
use crate::quant::{PackedQBRef, Segments};

pub(crate) const DEF: OpDef = OpDef {
    code: 3,
    name: "CONV_2D",
    // Pointwise geometries only: `lower` clears it for the others, `check` refuses them.
    in_place: true,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

/// CONV_2D in the direct int8 form (`conv_direct`) with int8 weights: listed before [`DEF`]
/// (the GEMM forms) in the registry, so a firmware without [`super::FORM_GEMM`] links this
/// one only. This entry is for the layers the Cortex-M4 kernel's fused output stage cannot
/// compute ([`super::FORM_DIRECT_PORTABLE`]); [`DIRECT_PATCHES`] and [`DIRECT_FUSED`], after
/// it, take the others.
pub(crate) const DIRECT: OpDef = OpDef {
    check: check_direct,
    run: run_direct::<false, true, true>,
    ..DEF
};

/// The direct form with int8 weights for a layer the fused kernel computes exactly (not
/// [`is_direct_i8_portable`]): on the Cortex-M4 its run has no portable path, so a firmware
/// without [`super::FORM_DIRECT_PORTABLE`] does not link that.
pub(crate) const DIRECT_FUSED: OpDef = OpDef {
    run: run_direct::<false, false, false>,
    ..DIRECT
};

/// [`DIRECT_FUSED`] for a layer whose patches take the general fills (neither pointwise nor
/// one word a filter row: `conv_direct::general_patches`): its own entry, before
/// [`DIRECT_FUSED`], so a firmware without [`super::FORM_DIRECT_PATCHES`] links only the
/// pointwise and one-word-row fills.
pub(crate) const DIRECT_PATCHES: OpDef = OpDef {
    run: run_direct::<false, false, true>,
    ..DIRECT
};

/// The direct form with its weights as i16 pairs (`convert --target cortex-m4-i16`): its
/// own entry, so a firmware without [`super::FORM_DIRECT_I16`] does not link its kernel.
pub(crate) const DIRECT_I16: OpDef = OpDef {
    run: run_direct::<true, true, true>,
    ..DIRECT
};

/// Whether a loaded CONV_2D is in the direct form (its mode word).
pub(crate) fn is_direct(op: &OpView) -> bool {
    op.param(P_IM2COL) == conv_direct::MODE
}

/// Whether a loaded CONV_2D is in the direct form with int8 weights.
pub(crate) fn is_direct_i8(op: &OpView) -> bool {
    is_direct(op) && !conv_direct::is_i16(op, P_GEMM)
}

/// Whether a loaded CONV_2D is in the direct form with int8 weights and the fused kernel
/// cannot compute every output of it exactly (from its constants: see
/// `conv_direct::fused_i8`).
pub(crate) fn is_direct_i8_portable(op: &OpView) -> bool {
    is_direct_i8(op) && !conv_direct::fused_i8(op, &Geom::read(op, P_GEOM))
}

/// Whether a loaded CONV_2D is in the direct form with int8 weights and patches that take
/// the general fills (`conv_direct::general_patches`).
pub(crate) fn is_direct_i8_patches(op: &OpView) -> bool {
    is_direct_i8(op) && conv_direct::general_patches(&Geom::read(op, P_GEOM))
}

/// Whether a loaded CONV_2D is in the direct form with i16 weights.
pub(crate) fn is_direct_i16(op: &OpView) -> bool {
    is_direct(op) && conv_direct::is_i16(op, P_GEMM)
}

/// The bytes of A and C rows one GEMM call of a block of output pixels covers (patches and
/// outputs stay in cache between im2col, the product and its output stage).
#[cfg(feature = "alloc")]
const BLOCK_BYTES: usize = 64 * 1024;
/// The most bytes of A in a block of the panel form (see [`run`]): a quarter of Zen 4's L2.
const PANEL_A_BYTES: usize = 256 * 1024;
/// The fewest output pixels per block (a GEMM call's fixed costs need some rows).
#[cfg(feature = "alloc")]
const MIN_BLOCK: usize = 32;
/// The fewest when a block's scratch is cut down to save arena (see [`small_block`]).
#[cfg(feature = "alloc")]
const SMALL_BLOCK: usize = 16;
/// The most output pixels of a call of the implicit-GEMM form (its input rows stay in L1).
#[cfg(feature = "alloc")]
const IMPLICIT_PIXELS: usize = 512;
/// The scratch an implicit-GEMM call may always take (small late layers: a quarter of
/// their output would hold one output row's input rows, a call per row).
#[cfg(feature = "alloc")]
const IMPLICIT_MIN_SCRATCH: usize = 8 * 1024;

/// The fewest output pixels of a block cut down to save arena: [`SMALL_BLOCK`], or two row
/// tiles of this build's kernel when the blob is for this build. (Sixteen rows are a
/// 14-row and a 2-row tile of the AVX-512 kernels, the second costing nearly as much as the
/// first; 28 rows ran ResNet-8 10% faster for 3% more arena.)
#[cfg(feature = "alloc")]
fn small_block(kernels: gemm_common::Kernels, float: bool) -> usize {
    let mr = match kernels {
        gemm_common::Kernels::Build if float => crate::kernels::sgemm_kernel().map_or(0, |k| k.mr),
        gemm_common::Kernels::Build => crate::kernels::qgemm_kernel().map_or(0, |k| k.mr),
        _ => 0,
    };
    SMALL_BLOCK.max(2 * mr)
}

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
    /// rejects them). Out of line on the firmware (each operator's run would have a copy).
    #[cfg_attr(target_os = "none", inline(never))]
    pub fn read(op: &OpView, base: usize) -> Self {
        let [batch, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl] = op
            .params_at::<{ Self::WORDS }>(base)
            .map(|v| v.max(0) as usize);
        Geom {
            batch,
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

    /// A 1×1, stride-1, unpadded convolution: its input rows are the GEMM's A as they are.
    pub fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.ih
            && self.ow == self.iw
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
    #[cfg(test)]
    #[inline]
    pub fn in_pixel(&self, b: usize, y: i64, x: i64) -> Option<usize> {
        let (y, x) = (usize::try_from(y).ok()?, usize::try_from(x).ok()?);
        (y < self.ih && x < self.iw).then(|| ((b * self.ih + y) * self.iw + x) * self.ic)
    }
}

const P_GEOM: usize = 0;
/// The im2col word of an im2col convolution whose GEMM depth is padded to whole 4-byte
/// groups (see the file header).
const IM2COL_PADDED: i32 = 3;
/// The im2col word of the implicit-GEMM form (see the file header).
const IMPLICIT: i32 = 4;
/// The im2col word of the f32 pointwise form with its weights in panels (see the file
/// header).
const PANELS: i32 = 5;
/// The im2col word of the f32 Winograd F(2×2, 3×3) form (see the file header).
#[cfg(feature = "alloc")]
const WINOGRAD: i32 = 6;
/// Columns of a panel of [`PANELS`]: the AVX-512 f32 kernel's NR.
const PANEL_NR: usize = 32;
pub(crate) const P_IM2COL: usize = Geom::WORDS;
const P_BLOCK: usize = Geom::WORDS + 1;
/// The first word of the GEMM part (`gemm_common`).
pub(crate) const P_GEMM: usize = Geom::WORDS + 2;

/// The GEMM depth of a convolution of kh·kw·c_in = `k` and im2col word `mode`: `k`, or
/// `k` rounded up to 4 with [`IM2COL_PADDED`].
fn gemm_depth(k: usize, mode: i32) -> usize {
    if mode == IM2COL_PADDED {
        k.next_multiple_of(4)
    } else {
        k
    }
}

/// Elements between rows of the patch buffer: int8 rows padded to 4 bytes, so the GEMM's
/// packer moves whole 4-byte k groups (a 3×3×3 patch is 27 bytes).
fn patch_stride(float: bool, k: usize) -> usize {
    if float {
        k
    } else {
        k.next_multiple_of(4)
    }
}

/// Bytes of input rows a pointwise convolution working in place copies at a time: little,
/// because its scratch is reserved whether or not the plan puts it in place.
const IN_PLACE_COPY_BYTES: usize = 1024;

/// Input rows a pointwise convolution working in place copies (and multiplies) at a time:
/// about [`IN_PLACE_COPY_BYTES`], at least [`gemm_common::ROW_UNIT`] (no one-row GEMM calls),
/// at most a block.
fn copy_rows(float: bool, k: usize, block: usize) -> usize {
    let row = patch_stride(float, k) * if float { 4 } else { 1 };
    (IN_PLACE_COPY_BYTES / row.max(1))
        .max(gemm_common::ROW_UNIT)
        .min(block)
        .max(1)
}

/// The scratch layout: (patch bytes rounded to 64, workspace bytes) for `patch_rows` rows of
/// patches (a block's im2col rows, or the input rows a pointwise convolution working in
/// place copies at a time; 0 without either) and GEMM calls of at most `block` rows.
fn scratch_parts(
    float: bool,
    packed: bool,
    patch_rows: usize,
    block: usize,
    k: usize,
    n: usize,
) -> Option<(usize, usize)> {
    let build = gemm_common::Kernels::Build;
    scratch_parts_for(build, float, packed, patch_rows, block, k, n)
}

/// [`scratch_parts`] in the build of `kernels` (a conversion target's, when lowering).
fn scratch_parts_for(
    kernels: gemm_common::Kernels,
    float: bool,
    packed: bool,
    patch_rows: usize,
    block: usize,
    k: usize,
    n: usize,
) -> Option<(usize, usize)> {
    Some((
        patch_bytes(float, patch_rows, k)?,
        gemm_common::workspace_bytes_for(kernels, float, packed, block, k, n),
    ))
}

/// The patch part of the scratch (rounded up to 64 bytes): `patch_rows` rows.
fn patch_bytes(float: bool, patch_rows: usize, k: usize) -> Option<usize> {
    let esize = if float { 4 } else { 1 };
    patch_rows
        .checked_mul(patch_stride(float, k))?
        .checked_mul(esize)?
        .checked_next_multiple_of(64)
}

/// Rows of patch buffer a convolution needs: a block with im2col, the in-place copy rows
/// when its output lies over its input, else none.
fn patch_rows(float: bool, im2col: bool, in_place: bool, block: usize, k: usize) -> usize {
    if im2col {
        block
    } else if in_place {
        copy_rows(float, k, block)
    } else {
        0
    }
}

/// Whether a geometry suits the implicit-GEMM form: not pointwise (that needs no
/// patches), each filter row's taps adjacent input bytes (dilation 1 along x).
fn implicit_fits(g: &Geom) -> bool {
    !g.pointwise() && g.dw == 1
}

/// The implicit-GEMM form's segment (a filter row's kw·c_in taps) rounded up to whole
/// 4-byte k groups: the kernel also reads the 1-3 bytes after a segment (the next pixel's,
/// or the scratch's slack), which meet zero weights.
fn implicit_segment(g: &Geom) -> usize {
    (g.kw * g.ic).next_multiple_of(4)
}

/// The implicit-GEMM form's GEMM depth: kh segments.
fn implicit_depth(g: &Geom) -> usize {
    g.kh * implicit_segment(g)
}

/// The implicit-GEMM form's input rows: (pixels per padded row, rows for a call of `rows`
/// output rows). A padded row holds every column the output row's patches read (the left
/// padding, the image, the right padding).
fn implicit_rows(g: &Geom, rows: usize) -> (usize, usize) {
    let width = (g.ow.max(1) - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    let height = (rows.max(1) - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    (width, height)
}

/// The implicit-GEMM form's scratch: (input row bytes, with the last segment's read past
/// them, rounded up to 64; column offset bytes) for calls of `rows` output rows (`None` on
/// overflow). The offsets take n + 32 i32: n rounded up to any kernel's NR.
fn implicit_parts(g: &Geom, rows: usize) -> Option<(usize, usize)> {
    let (width, height) = implicit_rows(g, rows);
    let buf = width
        .checked_mul(height)?
        .checked_mul(g.ic)?
        .checked_add(implicit_segment(g) - g.kw * g.ic)?
        .checked_next_multiple_of(64)?;
    let offsets =
        g.oc.checked_add(crate::kernels::int8::MAX_NR)?
            .checked_mul(4)?
            .checked_next_multiple_of(64)?;
    Some((buf, offsets))
}

#[inline(always)]
fn is_float(op: &OpView) -> Result<bool, Error> {
    gemm_common::is_float(op)
}

/// kh·kw·c_in products per output value.
fn macs(op: &OpView) -> u64 {
    let g = Geom::read(op, P_GEOM);
    // Saturating: a blob read for inspection only has unchecked geometry words.
    let per_output = (g.kh as u64)
        .saturating_mul(g.kw as u64)
        .saturating_mul(g.ic as u64);
    super::output_macs(op, per_output)
}

/// The direct form's checks: the shared ones (counts, geometry, in place only when
/// pointwise), then `conv_direct`'s.
fn check_direct(op: &OpView) -> Result<(), Error> {
    checks::counts(
        op,
        1 + gemm_common::num_inputs(op, false),
        1,
        1,
        P_GEMM + gemm_common::num_params(false),
    )?;
    let g = Geom::read(op, P_GEOM);
    g.check(op, P_GEOM)?;
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let in_place =
        x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset;
    if in_place && !g.pointwise() {
        return Err(op.error("a convolution that is not pointwise cannot work in place"));
    }
    conv_direct::check(op, &g, P_GEMM)
}

fn run_direct<const WIDE: bool, const PORTABLE: bool, const PATCHES: bool>(
    op: &OpView,
    mem: &mut OpMem,
) -> Result<(), Error> {
    // (The error built here, once: see `Fail`.)
    Ok(conv_direct::run::<WIDE, PORTABLE, PATCHES>(
        op,
        mem,
        &Geom::read(op, P_GEOM),
        P_GEMM,
    )?)
}

/// The GEMM forms' checks (the registry sends the direct form to [`check_direct`]).
fn check(op: &OpView) -> Result<(), Error> {
    if is_direct(op) {
        return check_direct(op);
    }
    let float = is_float(op)?;
    checks::counts(
        op,
        1 + gemm_common::num_inputs(op, float),
        1,
        1,
        P_GEMM + gemm_common::num_params(float),
    )?;
    let g = Geom::read(op, P_GEOM);
    g.check(op, P_GEOM)?;
    let mode = op.param(P_IM2COL);
    if mode == IMPLICIT && !float {
        return check_implicit(op, &g);
    }
    #[cfg(feature = "alloc")]
    if mode == WINOGRAD && float {
        return check_winograd(op, &g);
    }
    let im2col = match mode {
        0 => false,
        1 => true,
        IM2COL_PADDED if !float => true,
        PANELS if float => {
            check_panels(op, g.oc)?;
            false
        }
        _ => {
            return Err(op.error(
                "the im2col word is not 0, 1, (int8) 3 or 4, or (f32) 5 (or 6, with alloc)",
            ))
        }
    };
    let pointwise = g.pointwise();
    if !im2col && !pointwise {
        return Err(op.error("a convolution without im2col that is not pointwise"));
    }
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let in_place =
        x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset;
    if in_place && im2col {
        return Err(op.error("a convolution with im2col cannot work in place"));
    }
    let k = gemm_depth(g.kh * g.kw * g.ic, mode);
    let m = g.batch * g.oh * g.ow;
    let block = op.param(P_BLOCK);
    if block < 0 || (block == 0 && m > 0) || block as usize > m.max(1) {
        return Err(op.error("the block of output pixels is out of range"));
    }
    let packed = gemm_common::check(op, float, k, g.oc, P_GEMM)?;
    let block = block as usize;
    let rows = patch_rows(float, im2col, in_place, block, k);
    let (patch, ws) = scratch_parts(float, packed, rows, block, k, g.oc)
        .ok_or_else(|| op.error("sizes overflow"))?;
    let need = patch
        .checked_add(ws)
        .ok_or_else(|| op.error("sizes overflow"))?;
    if checks::temp(op, 0)?.bytes < need {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// Whether a geometry suits the Winograd form: 3×3, stride 1, dilation 1.
#[cfg(feature = "alloc")]
fn winograd_fits(g: &Geom) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)
}

/// The Winograd form's output tiles (2×2 pixels each).
#[cfg(feature = "alloc")]
fn winograd_tiles(g: &Geom) -> usize {
    g.batch * g.oh.div_ceil(2) * g.ow.div_ceil(2)
}

/// The Winograd form's scratch for calls of `block` tiles: (transform planes' bytes, rounded
/// up to 64, then the GEMM workspace's).
#[cfg(feature = "alloc")]
fn winograd_parts(g: &Geom, block: usize) -> (usize, usize) {
    use crate::conv::winograd::{unpacked_floats, Variant};
    let planes = (unpacked_floats(Variant::F2, block, g.ic, g.oc) * 4).next_multiple_of(64);
    (
        planes,
        gemm_common::workspace_bytes(true, false, block, g.ic, g.oc),
    )
}

/// The Winograd form's checks (after the counts and the geometry): its geometry, not in
/// place, f32 weights of 16·c_in·c_out transformed values and a bias, tiles per call in
/// 1..=tiles, and the scratch its calls need. (Builds without `alloc` lack the form: their
/// `check` refuses the word.)
#[cfg(feature = "alloc")]
fn check_winograd(op: &OpView, g: &Geom) -> Result<(), Error> {
    use crate::nn::dtype::DType;
    if !winograd_fits(g) {
        return Err(op.error("a Winograd convolution of another geometry"));
    }
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    if x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset {
        return Err(op.error("a convolution with Winograd cannot work in place"));
    }
    let w = checks::input(op, 1)?;
    let b = op.input(2).map(|_| checks::input(op, 2)).transpose()?;
    if w.dtype != DType::F32
        || Some(w.elems()) != 16usize.checked_mul(g.ic).and_then(|v| v.checked_mul(g.oc))
        || !b.is_some_and(|b| b.dtype == DType::F32 && b.elems() == g.oc)
        || op.input(3).is_some()
    {
        return Err(op.error("Winograd weights that are not 16·c_in·c_out f32, or no bias"));
    }
    let block = op.param(P_BLOCK);
    if block < 1 || block as usize > winograd_tiles(g).max(1) {
        return Err(op.error("the block of output tiles is out of range"));
    }
    let (planes, ws) = winograd_parts(g, block as usize);
    if checks::temp(op, 0)?.bytes < planes + ws {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// The Winograd form (mode [`WINOGRAD`], see the file header): `conv::winograd` over the
/// transformed weights as the blob holds them.
#[cfg(feature = "alloc")]
fn run_winograd(op: &OpView, mem: &mut OpMem, g: &Geom) -> Result<(), Error> {
    use crate::conv::params::{Geometry, Nhwc, Pads};
    let t = |i: Option<usize>| i.ok_or_else(|| op.error("missing tensor"));
    let u = super::cast::<f32>(mem.input(t(op.input(1))?)?);
    let bias = super::cast::<f32>(mem.input(t(op.input(2))?)?);
    let x = super::cast::<f32>(mem.input(t(op.input(0))?)?);
    let lo = f32::from_bits(op.param(P_GEMM + gemm_common::P_FLO) as u32);
    let hi = f32::from_bits(op.param(P_GEMM + gemm_common::P_FHI) as u32);
    let block = op.param(P_BLOCK).max(1) as usize;
    let geo = Geometry {
        input: Nhwc::new(g.batch, g.ih, g.iw, g.ic),
        output: Nhwc::new(g.batch, g.oh, g.ow, g.oc),
        pads: Pads {
            top: g.pt,
            left: g.pl,
            bottom: (g.oh + 2).saturating_sub(g.ih + g.pt),
            right: (g.ow + 2).saturating_sub(g.iw + g.pl),
        },
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        groups: 1,
        cin_g: g.ic,
        cout_g: g.oc,
    };
    let short = || op.error("a tensor shorter than its shape");
    let x = x.get(..geo.input.len()?).ok_or_else(short)?;
    let threads = mem.threads();
    let (out, scratch) = mem.output_and_temp(t(op.output(0))?, t(op.temp(0))?)?;
    let out = super::cast_mut::<f32>(out);
    let out = out.get_mut(..geo.output.len()?).ok_or_else(short)?;
    let (planes, ws) = scratch.split_at_mut(winograd_parts(g, block).0.min(scratch.len()));
    crate::conv::winograd::run_unpacked(
        crate::conv::winograd::Variant::F2,
        &geo,
        x,
        u,
        bias,
        lo,
        hi,
        out,
        block,
        super::cast_mut::<f32>(planes),
        ws,
        threads,
    )
}

/// The panel form's own checks: f32 weights, n in whole panels, and this build's kernel
/// the one that reads them (panels of [`PANEL_NR`] columns, convolution variants).
fn check_panels(op: &OpView, n: usize) -> Result<(), Error> {
    if checks::input(op, 1)?.dtype != crate::nn::dtype::DType::F32 || n % PANEL_NR != 0 {
        return Err(op.error("panel-packed weights that are not f32 in whole panels"));
    }
    if !crate::kernels::sgemm_kernel().is_ok_and(|k| k.nr == PANEL_NR && k.conv.is_some()) {
        return Err(op.error(
            "weights packed in panels for the AVX-512 f32 kernel, which this CPU or build \
             lacks (convert the model again here)",
        ));
    }
    Ok(())
}

/// The implicit-GEMM form's checks (after the counts and the geometry): the geometry fits
/// it, not in place, B's zero point 0, weights packed for a kernel that reads A in segments,
/// output rows per call in 1..=oh, and the scratch its calls need.
fn check_implicit(op: &OpView, g: &Geom) -> Result<(), Error> {
    if !implicit_fits(g) {
        return Err(op.error("an implicit-GEMM convolution of another geometry"));
    }
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    if x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset {
        return Err(op.error("an implicit-GEMM convolution cannot work in place"));
    }
    let k = implicit_depth(g);
    if !gemm_common::check(op, false, k, g.oc, P_GEMM)? {
        return Err(op.error("an implicit-GEMM convolution without packed weights"));
    }
    let segments = PackedQBRef::from_bytes(op.model().constant(op.input(1).unwrap_or(0)))
        .is_ok_and(|p| p.kernel().segments);
    if !segments || op.param(P_GEMM + 1) != 0 {
        return Err(op.error("implicit GEMM needs a segment-reading kernel and zero point 0"));
    }
    let block = op.param(P_BLOCK);
    if block < 1 || block as usize > g.oh.max(1) {
        return Err(op.error("the output rows per call are out of range"));
    }
    let need = implicit_parts(g, block as usize)
        .and_then(|(buf, offsets)| buf.checked_add(offsets))
        .ok_or_else(|| op.error("sizes overflow"))?;
    if checks::temp(op, 0)?.bytes < need {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// Writes `rows` input rows of image `b` from row `y0` (may lie outside the image) into
/// `buf` as the implicit-GEMM form reads them: u8 (each byte ^ 0x80), `width` pixels per
/// row, the image's columns after `pl` pixels of padding, padding after them; a row outside
/// the image all padding. `pad` is the flipped input zero point. Rows no filter row reads
/// (between the rows a 1×1 stride-2 filter reads) are left as they are. `simd`: the
/// widest [`Flip`] the CPU runs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill_rows(
    g: &Geom,
    x: &[u8],
    b: usize,
    y0: i64,
    rows: usize,
    width: usize,
    pad: u8,
    buf: &mut [u8],
    simd: Flip,
) {
    let c = g.ic;
    let row = width * c;
    let left = (g.pl * c).min(row);
    let cols = g.iw.min(width.saturating_sub(g.pl));
    // Row r is read when r = j·sh + fy·dh for an output row j and a filter row fy: every
    // row when the filter rows are adjacent and at least sh.
    let (sh, dh) = (g.sh.max(1), g.dh);
    let all = dh == 1 && g.kh >= sh;
    let read = |r: usize| all || (0..g.kh).any(|fy| r >= fy * dh && (r - fy * dh) % sh == 0);
    for (r, dst) in buf.chunks_exact_mut(row.max(1)).take(rows).enumerate() {
        if !read(r) {
            continue;
        }
        let src = usize::try_from(y0 + r as i64)
            .ok()
            .filter(|&y| y < g.ih)
            .and_then(|y| {
                let at = ((b * g.ih + y) * g.iw) * c;
                x.get(at..at + cols * c)
            });
        let Some(src) = src else {
            simd.fill(dst, pad);
            continue;
        };
        let (head, rest) = dst.split_at_mut(left);
        simd.fill(head, pad);
        let (mid, tail) = rest.split_at_mut(src.len().min(rest.len()));
        simd.run(mid, src);
        simd.fill(tail, pad);
    }
}

/// [`fill_rows`] compiled for AVX-512, its flips and fills inline (a call each cost more
/// than the few bytes of most).
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn fill_rows_avx512(
    g: &Geom,
    x: &[u8],
    b: usize,
    y0: i64,
    rows: usize,
    width: usize,
    pad: u8,
    buf: &mut [u8],
) {
    fill_rows(g, x, b, y0, rows, width, pad, buf, Flip::Avx512)
}

/// How [`fill_rows`] flips bytes: the widest vectors this CPU has (the baseline build
/// moves 16 bytes an instruction). The implicit form's input rows took about 3 µs of
/// ResNet-8's run on Zen 4 with 16.
#[derive(Clone, Copy)]
enum Flip {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512,
}

impl Flip {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::{cpu_info, Features};
            let f = cpu_info().features;
            #[cfg(edgemm_avx512_intrinsics)]
            if f.contains(Features::AVX512F.with(Features::AVX512BW)) {
                return Flip::Avx512;
            }
            if f.contains(Features::AVX2) {
                return Flip::Avx2;
            }
        }
        Flip::Plain
    }

    /// [`flip`] of `src` into `dst`.
    #[inline(always)]
    fn run(self, dst: &mut [u8], src: &[u8]) {
        match self {
            Flip::Plain => flip(dst, src),
            // SAFETY: `detect` saw the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            Flip::Avx2 => unsafe { flip_avx2(dst, src) },
            // SAFETY: `detect` saw the CPU has AVX-512F and AVX-512BW.
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            Flip::Avx512 => unsafe { flip_avx512(dst, src) },
        }
    }

    /// `dst.fill(v)`, inline with AVX-512 (the padding of a row is a few bytes: a `memset`
    /// call each showed in ResNet-8's profile).
    #[inline(always)]
    fn fill(self, dst: &mut [u8], v: u8) {
        match self {
            // SAFETY: `detect` saw the CPU has AVX-512F and AVX-512BW.
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            Flip::Avx512 => unsafe { fill_avx512(dst, v) },
            _ => dst.fill(v),
        }
    }
}

/// `dst[i] = src[i] ^ 0x80` (i8 to the u8 the VNNI kernel reads) for the common length.
#[inline(always)]
fn flip(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s ^ 0x80;
    }
}

/// [`flip`] 32 bytes an instruction.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn flip_avx2(dst: &mut [u8], src: &[u8]) {
    flip(dst, src)
}

/// `dst.fill(v)` 64 bytes an instruction, the last 1-63 bytes by a masked store.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn fill_avx512(dst: &mut [u8], v: u8) {
    use core::arch::x86_64::*;
    let (n, d) = (dst.len(), dst.as_mut_ptr());
    let vv = _mm512_set1_epi8(v as i8);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: bytes i..i + 64 lie inside dst (i + 64 ≤ n).
        unsafe { _mm512_storeu_si512(d.add(i) as *mut _, vv) };
        i += 64;
    }
    if i < n {
        let mask: __mmask64 = u64::MAX >> (64 - (n - i));
        // SAFETY: the masked store writes bytes i..n only, inside dst.
        unsafe { _mm512_mask_storeu_epi8(d.add(i) as *mut i8, mask, vv) };
    }
}

/// [`flip`] 64 bytes an instruction, the last 1-63 bytes by masked moves (no byte-by-byte
/// tail: a row of ResNet-8's first layer is 102 bytes).
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn flip_avx512(dst: &mut [u8], src: &[u8]) {
    use core::arch::x86_64::*;
    let n = dst.len().min(src.len());
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    let bias = _mm512_set1_epi8(i8::MIN);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: bytes i..i + 64 lie inside both slices (i + 64 ≤ n).
        unsafe {
            let v = _mm512_loadu_si512(s.add(i) as *const _);
            _mm512_storeu_si512(d.add(i) as *mut _, _mm512_xor_si512(v, bias));
        }
        i += 64;
    }
    if i < n {
        let mask: __mmask64 = u64::MAX >> (64 - (n - i));
        // SAFETY: the masked load and store touch bytes i..n only, inside both slices
        // (masked-off bytes are neither read nor written, nor can they fault).
        unsafe {
            let v = _mm512_maskz_loadu_epi8(mask, s.add(i) as *const i8);
            _mm512_mask_storeu_epi8(d.add(i) as *mut i8, mask, _mm512_xor_si512(v, bias));
        }
    }
}

/// The implicit-GEMM form (mode [`IMPLICIT`], see the file header): calls of `block`
/// output rows (fewer at the end of an image), each copying its input rows once, then one
/// product for those output rows reading the patches in place.
fn run_implicit(op: &OpView, mem: &mut OpMem, g: &Geom, gemm: &Gemm) -> Result<(), Error> {
    let block = op.param(P_BLOCK).max(1) as usize;
    let (k, n) = (implicit_depth(g), g.oc);
    let x_t = op.input(0).ok_or_else(|| op.error("missing input"))?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let s_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let x = mem.input(x_t)?;
    let threads = gemm_common::useful_threads(mem.threads(), g.batch * g.oh * g.ow, k, n, false);
    let (out, scratch) = mem.output_and_temp(out_t, s_t)?;
    // (No plan: n is 0, so is the output.)
    let Some(plan) = gemm.ws_plan() else {
        return Ok(());
    };
    let (buf_bytes, _) = implicit_parts(g, block).ok_or_else(|| op.error("sizes overflow"))?;
    let (width, _) = implicit_rows(g, block);
    let row_bytes = width * g.ic;
    let seg = Segments {
        a_rs: g.sw * g.ic,
        segs: g.kh,
        a_ss: g.dh * row_bytes,
        groups: implicit_segment(g) / 4,
        runs: 1,
        a_run: g.sh * row_bytes,
    };
    let pad = op.param(P_GEMM) as i8 as u8 ^ 0x80;
    let simd = Flip::detect();
    let out_row = g.ow * n;
    let call = |p0: usize, rows: usize, y: &mut [u8], scratch: &mut [u8]| {
        let (buf, rest) = scratch.split_at_mut(buf_bytes.min(scratch.len()));
        let col_off = cast_mut::<i32>(rest);
        plan.col_offsets_u8(col_off)?;
        // Runs of output rows of one image.
        let mut r = 0;
        while r < rows {
            let (b, oy0) = ((p0 + r) / g.oh, (p0 + r) % g.oh);
            let run = (g.oh - oy0).min(rows - r);
            let (_, height) = implicit_rows(g, run);
            let y0 = g.in_y(oy0, 0);
            match simd {
                // SAFETY: `Flip::detect` saw the CPU has AVX-512F and AVX-512BW.
                #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
                Flip::Avx512 => unsafe { fill_rows_avx512(g, x, b, y0, height, width, pad, buf) },
                _ => fill_rows(g, x, b, y0, height, width, pad, buf, simd),
            }
            // One product for the run: its output rows are runs of ow pixels, sh input
            // rows apart (the driver's fixed costs paid once, not per output row).
            let y = y
                .get_mut(r * out_row..(r + run) * out_row)
                .ok_or(Error::SizeOverflow)?;
            let seg = Segments { runs: run, ..seg };
            plan.run_segmented(buf, 0, g.ow, seg, col_off, y)?;
            r += run;
        }
        Ok(())
    };
    gemm_common::run_rows(
        g.batch * g.oh,
        1,
        block,
        out_row,
        threads,
        out,
        scratch,
        &call,
    )
}

/// Copies `src` into `dst` (same length), each byte xor `flip` (0: a plain copy; 0x80: i8
/// to u8, see [`Gemm::run_unsigned`]): the short copies of im2col (a filter row of a few
/// channels) inline as 16-byte moves (the last one overlapping) instead of a `memcpy` call;
/// plain copies of more than 64 bytes (f32 rows) call it.
#[inline(always)]
fn copy_flip(dst: &mut [u8], src: &[u8], flip: u8) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    // 16 bytes as a byte array: one vector load, xor and store (a u128 would be two 64-bit
    // halves on x86-64).
    let block = |i: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&src[i..i + 16]);
        b.map(|v| v ^ flip)
    };
    match n {
        65.. if flip == 0 => dst.copy_from_slice(src),
        16.. => {
            let mut i = 0;
            while i + 16 < n {
                dst[i..i + 16].copy_from_slice(&block(i));
                i += 16;
            }
            dst[n - 16..].copy_from_slice(&block(n - 16));
        }
        8..=15 => {
            let mask = u64::from_ne_bytes([flip; 8]);
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&src[i..i + 8]);
                (u64::from_ne_bytes(b) ^ mask).to_ne_bytes()
            };
            let (first, last) = (word(0), word(n - 8));
            dst[..8].copy_from_slice(&first);
            dst[n - 8..].copy_from_slice(&last);
        }
        _ => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s ^ flip;
            }
        }
    }
}

/// `dst.fill(v)` without a `memset` call for the 1-3 bytes of a padded GEMM depth (a call
/// per patch row showed in the profile of a first layer).
#[inline(always)]
fn fill_short(dst: &mut [u8], v: u8) {
    match dst {
        [] => {}
        [a] => *a = v,
        [a, b] => (*a, *b) = (v, v),
        [a, b, c] => (*a, *b, *c) = (v, v, v),
        _ => dst.fill(v),
    }
}

/// `count` segments of `seg` bytes, segment i from `src[i·step..]` to `dst[i·stride..]`,
/// each byte xor `flip`: im2col's interior pixels (a filter row is `seg` adjacent input
/// bytes), with the bounds checked once for the run instead of per segment. Returns false,
/// writing nothing, when a segment would fall outside either slice.
#[inline(always)]
fn copy_segments(
    dst: &mut [u8],
    stride: usize,
    src: &[u8],
    step: usize,
    seg: usize,
    count: usize,
    flip: u8,
) -> bool {
    let fits = |len: usize, apart: usize| {
        count == 0
            || (count - 1)
                .checked_mul(apart)
                .and_then(|v| v.checked_add(seg))
                .is_some_and(|end| end <= len)
    };
    if !fits(dst.len(), stride) || !fits(src.len(), step) {
        return false;
    }
    let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
    // An unaligned load and store of N bytes at byte offset j of segment (d, s), xor flip:
    // 16 as a byte array (one vector load, xor and store), 8 and 4 as one integer (a byte
    // array of 8 is xored byte by byte), fewer byte by byte.
    #[inline(always)]
    fn block<const N: usize>(d: *mut u8, s: *const u8, j: usize, flip: u8) {
        // SAFETY (each arm): the callers pass j + N ≤ seg, and the segment's seg bytes lie
        // inside both slices (checked in `copy_segments`).
        unsafe {
            let (s, d) = (s.add(j), d.add(j));
            match N {
                8 => {
                    let v = (s as *const u64).read_unaligned();
                    (d as *mut u64).write_unaligned(v ^ u64::from_ne_bytes([flip; 8]));
                }
                4 => {
                    let v = (s as *const u32).read_unaligned();
                    (d as *mut u32).write_unaligned(v ^ u32::from_ne_bytes([flip; 4]));
                }
                _ => {
                    let b = (s as *const [u8; N]).read_unaligned();
                    (d as *mut [u8; N]).write_unaligned(b.map(|v| v ^ flip));
                }
            }
        }
    }
    for i in 0..count {
        // (In bounds: checked above; the pointers are only formed, not read, here.)
        let (d, s) = (d.wrapping_add(i * stride), s.wrapping_add(i * step));
        match seg {
            65.. if flip == 0 => {
                // SAFETY: seg bytes at s and d inside the slices (checked above); the patch
                // buffer and the input are different slices.
                unsafe { core::ptr::copy_nonoverlapping(s, d, seg) }
            }
            16.. => {
                let mut j = 0;
                while j + 16 < seg {
                    block::<16>(d, s, j, flip);
                    j += 16;
                }
                block::<16>(d, s, seg - 16, flip);
            }
            8..=15 => {
                block::<8>(d, s, 0, flip);
                block::<8>(d, s, seg - 8, flip);
            }
            4..=7 => {
                block::<4>(d, s, 0, flip);
                block::<4>(d, s, seg - 4, flip);
            }
            _ => {
                for j in 0..seg {
                    block::<1>(d, s, j, flip);
                }
            }
        }
    }
    true
}

/// Writes the patches of output pixels `p0..p0 + rows` (flat over batch, oh, ow) as rows of
/// k elements of `esize` bytes, `stride` bytes apart, each byte xor `flip`; out-of-image
/// taps are bytes `pad` (the int8 input zero point, flipped alike, or 0 for f32's 0.0). It
/// goes along runs of pixels of one output row, so each filter row's input row is found
/// once per run; a filter row wholly inside the image is one copy (its taps are adjacent
/// pixels when the dilation is 1). Bytes kh·kw·c_in·esize..`row` of each row (a padded
/// GEMM depth) are `pad` too.
#[allow(clippy::too_many_arguments)]
fn im2col(
    g: &Geom,
    x: &[u8],
    esize: usize,
    pad: u8,
    flip: u8,
    p0: usize,
    rows: usize,
    stride: usize,
    row: usize,
    a: &mut [u8],
) {
    let c = g.ic * esize;
    let seg = g.kw * c;
    if row > g.kh * seg {
        for r in 0..rows {
            if let Some(tail) = a.get_mut(r * stride + g.kh * seg..r * stride + row) {
                fill_short(tail, pad);
            }
        }
    }
    let (plane, ow) = ((g.oh * g.ow).max(1), g.ow.max(1));
    let (row_bytes, image_bytes) = (g.iw * c, g.ih * g.iw * c);
    // A filter row of output column ox (some taps outside the image): with dilation 1 the
    // taps inside are adjacent, so padding, one copy, padding; else tap by tap.
    let taps = |dst: &mut [u8], src_row: &[u8], ox: usize| {
        if g.dw == 1 {
            let x0 = g.in_x(ox, 0);
            let lo = (-x0).clamp(0, g.kw as i64);
            let hi = (g.iw as i64 - x0).clamp(lo, g.kw as i64);
            let (head, rest) = dst.split_at_mut((lo as usize * c).min(dst.len()));
            let (mid, tail) = rest.split_at_mut(((hi - lo) as usize * c).min(rest.len()));
            fill_short(head, pad);
            fill_short(tail, pad);
            // (x0 + lo ≥ 0 when hi > lo.)
            let from = (x0 + lo).max(0) as usize * c;
            match src_row.get(from..from + mid.len()) {
                Some(src) => copy_flip(mid, src, flip),
                None => mid.fill(pad),
            }
            return;
        }
        for (fx, dst) in dst.chunks_exact_mut(c.max(1)).enumerate() {
            let src = usize::try_from(g.in_x(ox, fx))
                .ok()
                .filter(|&xx| xx < g.iw)
                .and_then(|xx| src_row.get(xx * c..xx * c + c));
            match src {
                Some(src) => copy_flip(dst, src, flip),
                None => dst.fill(pad),
            }
        }
    };
    let mut r = 0;
    while r < rows {
        let p = p0 + r;
        let (b, oy, ox0) = (p / plane, p % plane / ow, p % ow);
        // The pixels of output row oy in this block.
        let run = (ow - ox0).min(rows - r);
        let (lo, hi) = interior(g, ox0, run);
        for fy in 0..g.kh {
            let y = g.in_y(oy, fy);
            let src_row = usize::try_from(y)
                .ok()
                .filter(|&y| y < g.ih)
                .map(|y| b * image_bytes + y * row_bytes)
                .and_then(|at| x.get(at..at + row_bytes));
            let dst_at = |i: usize| (r + i) * stride + fy * seg;
            let Some(src_row) = src_row else {
                for i in 0..run {
                    if let Some(dst) = a.get_mut(dst_at(i)..dst_at(i) + seg) {
                        dst.fill(pad);
                    }
                }
                continue;
            };
            for i in (0..lo).chain(hi..run) {
                if let Some(dst) = a.get_mut(dst_at(i)..dst_at(i) + seg) {
                    taps(dst, src_row, ox0 + i);
                }
            }
            // Pixels lo..hi: the filter row is seg adjacent bytes of the input row, sw·c
            // bytes on from the last pixel's (the tight loop most of the time goes to).
            if lo == hi {
                continue;
            }
            let step = g.sw * c;
            // (≥ 0: column (ox0 + lo)·sw − pl is inside the image.)
            let mut from = (ox0 + lo) * step - g.pl * c;
            let whole = match (a.get_mut(dst_at(lo)..), src_row.get(from..)) {
                (Some(dst), Some(src)) => copy_segments(dst, stride, src, step, seg, hi - lo, flip),
                _ => false,
            };
            if whole {
                continue;
            }
            for i in lo..hi {
                let at = dst_at(i);
                if let (Some(dst), Some(src)) =
                    (a.get_mut(at..at + seg), src_row.get(from..from + seg))
                {
                    copy_flip(dst, src, flip);
                }
                from += step;
            }
        }
        r += run;
    }
}

/// The pixels `lo..hi` of a run of `run` output columns from `ox0` whose filter rows lie
/// wholly inside the image, each one copy (dilation 1; else none: `(0, 0)`).
fn interior(g: &Geom, ox0: usize, run: usize) -> (usize, usize) {
    if g.dw != 1 || g.iw + g.pl < g.kw {
        return (0, 0);
    }
    let (sw, pl) = (g.sw as i64, g.pl as i64);
    // First column `(ox0 + i)·sw − pl ≥ 0`, last `(ox0 + i)·sw − pl + kw ≤ iw`.
    let lo = ((pl - ox0 as i64 * sw).max(0) + sw - 1) / sw;
    let hi = ((g.iw + g.pl - g.kw) as i64 / sw + 1 - ox0 as i64).max(0);
    let hi = (hi as usize).min(run);
    let lo = (lo as usize).min(hi);
    (lo, hi)
}

/// An int8 CONV_2D of the implicit-GEMM form, made ready when a session starts (feature
/// `alloc`): its geometry and GEMM (constant weights, requantization and the GEMM's plan),
/// which [`run`] would otherwise read and check again on every run.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
pub(crate) struct Plan<'m> {
    op: OpView<'m>,
    g: Geom,
    gemm: Gemm<'m>,
    arena_len: usize,
}

/// The plan of a checked CONV_2D over an arena of `arena_len` bytes: `None` (it runs through
/// [`run`]) unless int8 in the implicit-GEMM form with constant GEMM inputs.
#[cfg(feature = "alloc")]
pub(crate) fn plan<'m>(op: &OpView<'m>, arena_len: usize) -> Option<Plan<'m>> {
    if is_direct(op) || op.param(P_IM2COL) != IMPLICIT || is_float(op).ok()? {
        return None;
    }
    // What `run` does first on this path, once.
    let g = Geom::read(op, P_GEOM);
    let mut gemm = Gemm::load_constants(op, false, implicit_depth(&g), g.oc, P_GEMM).ok()?;
    gemm.plan(false).ok()?;
    Some(Plan {
        op: *op,
        g,
        gemm,
        arena_len,
    })
}

#[cfg(feature = "alloc")]
impl Plan<'_> {
    /// Runs the operator as [`run`] does on `threads` threads.
    ///
    /// # Safety
    /// `arena` is valid for reads and writes of the `arena_len` bytes given to [`plan`]
    /// (at least the model's arena size), 16-byte aligned, and nothing else accesses it
    /// meanwhile.
    pub(crate) unsafe fn run(&self, arena: *mut u8, threads: usize) -> Result<(), Error> {
        // SAFETY: forwarded (caller): the model's arena of `arena_len` bytes, ours for this
        // call; `mem` lives for it only.
        let mut mem =
            unsafe { OpMem::new(self.op.model, arena, self.arena_len) }.with_threads(threads);
        run_implicit(&self.op, &mut mem, &self.g, &self.gemm)
    }
}

/// The GEMM forms (the registry sends the direct form to [`run_direct`]).
fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    if is_direct_i16(op) {
        return run_direct::<true, true, true>(op, mem);
    }
    if is_direct(op) {
        return run_direct::<false, true, true>(op, mem);
    }
    let g = Geom::read(op, P_GEOM);
    // (`F32 &&` first: without the f32 forms, `check` refused f32 operators, and the f32
    // branches below compile out; an error value from `is_float` would keep them.)
    let float = super::F32 && is_float(op)?;
    let mode = op.param(P_IM2COL);
    let panels = mode == PANELS;
    let im2col_on = mode != 0 && !panels;
    let block = op.param(P_BLOCK).max(1) as usize;
    let n = g.oc;
    #[cfg(feature = "alloc")]
    if mode == WINOGRAD && float {
        return run_winograd(op, mem, &g);
    }
    if mode == IMPLICIT && !float {
        let mut gemm = Gemm::load(op, mem, false, implicit_depth(&g), n, P_GEMM)?;
        // (run_implicit runs only WsPlan::run_segmented.)
        gemm.plan(false)?;
        return run_implicit(op, mem, &g, &gemm);
    }
    let k = gemm_depth(g.kh * g.kw * g.ic, mode);
    let m = g.batch * g.oh * g.ow;
    let mut gemm = Gemm::load(op, mem, float, k, n, P_GEMM)?;
    gemm.plan(true)?;
    let x_t = op.input(0).ok_or_else(|| op.error("missing input"))?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let s_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let esize = if float { 4 } else { 1 };
    let in_place = mem.is_in_place(x_t, out_t);
    let rows = patch_rows(float, im2col_on, in_place, block, k);
    // The GEMM workspace is the rest of the scratch (`check` saw it is large enough; sizing
    // it again, over every kernel compiled in, cost each call a few hundred nanoseconds).
    let patch_bytes = patch_bytes(float, rows, k).ok_or_else(|| op.error("sizes overflow"))?;
    // An f32 pointwise convolution: straight to the kernel's convolution variants when it
    // has them (bias and clamp in its epilogue; a tile's rows may span the image's rows).
    let pointwise_form = |pixels: usize| match &gemm {
        Gemm::F32 {
            w: FWeights::F32(w),
            bias,
            lo,
            hi,
            ..
        } if !im2col_on => crate::kernels::sgemm_kernel().ok().and_then(|ker| {
            conv_rows::Rows::pointwise(pixels, k, n, w, *bias, (*lo, *hi), ker, panels)
        }),
        _ => None,
    };
    // The panel form runs in `conv_rows` only (`check` saw its kernel is this build's).
    if panels && pointwise_form(m).is_none() {
        return Err(op.error("weights in panels without the kernel that reads them"));
    }
    if in_place {
        #[cfg(feature = "std")]
        let threads = gemm_common::useful_threads(mem.threads(), m, k, n, float);
        let (buf, scratch) = mem.in_place_and_temp(x_t, out_t, s_t)?;
        #[cfg(feature = "std")]
        {
            let form = pointwise_form(m);
            let cols = Cols {
                gemm: &gemm,
                form: form.as_ref(),
                m,
                k,
                n,
                patch_bytes,
            };
            if let Some(unit) = cols.unit(threads) {
                return cols.run_in_place(buf, esize, scratch.len(), unit, threads);
            }
        }
        #[cfg(feature = "std")]
        if threads > 1 && m >= 2 * gemm.row_unit() {
            let ip = InPlace {
                gemm: &gemm,
                pointwise_form: &pointwise_form,
                m,
                k,
                n,
                esize,
                block,
                patch_bytes,
            };
            return ip.run_threaded(buf, scratch, threads);
        }
        return run_in_place(
            &gemm,
            &pointwise_form,
            m,
            k,
            n,
            esize,
            block,
            buf,
            scratch,
            patch_bytes,
        );
    }
    let x = mem.input(x_t)?;
    let threads = gemm_common::useful_threads(mem.threads(), m, k, n, float);
    let (out, scratch) = mem.output_and_temp(out_t, s_t)?;
    // The patches as the kernel reads them: int8 flipped to u8 for the VNNI kernel (which
    // then reads them in place, unpacked).
    let unsigned = gemm.wants_unsigned_a();
    let flip = if unsigned { 0x80 } else { 0 };
    // The input zero point (an i8 in the GEMM words), or 0.0 (zero bytes).
    let pad = if float {
        0
    } else {
        op.param(P_GEMM) as i8 as u8 ^ flip
    };
    let stride = patch_stride(float, k);
    // f32 with im2col: read the patches where the input lies when `conv_rows` can.
    let rows_form = match &gemm {
        Gemm::F32 {
            w: FWeights::F32(w),
            bias,
            lo,
            hi,
            ..
        } if im2col_on => crate::kernels::sgemm_kernel()
            .ok()
            .and_then(|ker| conv_rows::Rows::new(&g, w, *bias, (*lo, *hi), patch_bytes / 4, ker)),
        _ => pointwise_form(m),
    };
    // f32 with few input channels: computed directly (`conv_f32_direct`), no patches, when
    // `conv_rows` does not take the layer, or when its output channels fill at most a quarter
    // of the kernel's panel: the direct form's narrower vectors then beat FMAs whose lanes
    // are mostly idle (MobileNet-v1 0.25's first layer, 8 channels: 21.7 → 20.6 µs on Zen 4;
    // ResNet-8's, 16 channels, would take 9.0 → 12.9 µs).
    let narrow = crate::kernels::sgemm_kernel().is_ok_and(|ker| 4 * n <= ker.nr);
    let direct = match &gemm {
        Gemm::F32 {
            w: FWeights::F32(w),
            bias,
            lo,
            hi,
            ..
        } if im2col_on && (rows_form.is_none() || narrow) => {
            conv_f32_direct::Direct::new(&g, w, *bias, (*lo, *hi))
        }
        _ => None,
    };
    // A pointwise layer of few rows and many columns: threads take panels of columns.
    #[cfg(feature = "std")]
    if !im2col_on {
        let cols = Cols {
            gemm: &gemm,
            form: rows_form.as_ref(),
            m,
            k,
            n,
            patch_bytes,
        };
        if let Some(unit) = cols.unit(threads) {
            return cols.run(x, out, scratch.len(), unit, threads);
        }
    }
    let call = |p0: usize, rows: usize, y: &mut [u8], scratch: &mut [u8]| {
        let (patch, ws) = scratch.split_at_mut(patch_bytes.min(scratch.len()));
        if let Some(d) = &direct {
            d.block(super::cast::<f32>(x), p0, rows, super::cast_mut::<f32>(y))
        } else if let Some(form) = &rows_form {
            let x = super::cast::<f32>(x);
            form.block(
                x,
                p0,
                rows,
                super::cast_mut::<f32>(y),
                super::cast_mut::<f32>(patch),
            )
        } else if im2col_on {
            let (stride_bytes, row) = (stride * esize, k * esize);
            im2col(&g, x, esize, pad, flip, p0, rows, stride_bytes, row, patch);
            let a = patch.get(..rows * stride * esize).unwrap_or(&[]);
            if unsigned {
                gemm.run_unsigned(a, stride, rows, y, ws)
            } else {
                gemm.run(a, stride, rows, y, ws)
            }
        } else {
            let a = x
                .get(p0 * k * esize..(p0 + rows) * k * esize)
                .unwrap_or(&[]);
            gemm.run(a, k, rows, y, ws)
        }
    };
    // The block bounds the patches and the GEMM workspace. The patch-free f32 forms need
    // neither (`conv_rows` keeps only its ring of padded rows there): they take the whole
    // output at once, so each input row is copied into the ring once per operator, not
    // again for each block whose windows read it, and tiles do not end where a block ends.
    // The panel form reads each panel once per block: blocks as large as keep their A
    // within `PANEL_A_BYTES` (in L2, where it is read again for each panel).
    let block = if im2col_on && (rows_form.is_some() || direct.is_some()) {
        m
    } else if panels {
        block.max(PANEL_A_BYTES / (k * 4).max(1)).min(m.max(1))
    } else if !im2col_on && gemm.ws_plan().is_some() {
        // int8 pointwise: no patches, and the GEMM's workspace is one row tile's whatever the
        // call's rows, so one call takes all (its fixed costs paid once).
        m
    } else {
        block
    };
    gemm_common::run_rows(
        m,
        gemm.row_unit(),
        block,
        n * esize,
        threads,
        out,
        scratch,
        &call,
    )
}

/// A pointwise convolution whose output lies over its input (`buf` holds both, from the
/// same offset): each block of input rows is copied to scratch before its GEMM writes the
/// block's outputs. Blocks run first to last when an output row is no longer than an input
/// row (the outputs written so far end before the next block's inputs begin), last to first
/// otherwise (the outputs of a block begin after the inputs of the blocks before it), so no
/// input byte is overwritten before it is read. One thread: blocks of other threads would
/// overwrite each other's inputs.
#[allow(clippy::too_many_arguments)]
fn run_in_place<'w>(
    gemm: &Gemm,
    pointwise_form: &dyn Fn(usize) -> Option<conv_rows::Rows<'w>>,
    m: usize,
    k: usize,
    n: usize,
    esize: usize,
    block: usize,
    buf: &mut [u8],
    scratch: &mut [u8],
    patch_bytes: usize,
) -> Result<(), Error> {
    let (copy, ws) = scratch.split_at_mut(patch_bytes.min(scratch.len()));
    // int8 with the VNNI kernel: one GEMM call over all rows, which copies each row tile of
    // A (flipped to u8) into its workspace before writing the tile's outputs, in the order
    // that reads every input row first (no copies here, no call per ~1 KiB of rows).
    if let Some(plan) = gemm.ws_plan().filter(|p| p.runs_over_input()) {
        return plan.run_over_input(buf, m, ws);
    }
    let stride = patch_stride(esize == 4, k);
    let (row_in, row_out) = (k * esize, n * esize);
    // Copied as the kernel reads them, as im2col does: int8 flipped to u8 for the VNNI
    // kernel, which then reads the copy in place instead of packing it again.
    let unsigned = gemm.wants_unsigned_a();
    let flip = if unsigned { 0x80 } else { 0 };
    let mut block_at = |p0: usize, rows: usize| -> Result<(), Error> {
        let a = copy
            .get_mut(..rows * stride * esize)
            .ok_or(Error::SizeOverflow)?;
        let src = buf
            .get(p0 * row_in..(p0 + rows) * row_in)
            .ok_or(Error::SizeOverflow)?;
        for (d, s) in a
            .chunks_exact_mut(stride * esize)
            .zip(src.chunks_exact(row_in))
        {
            copy_flip(&mut d[..row_in], s, flip);
        }
        let y = buf
            .get_mut(p0 * row_out..(p0 + rows) * row_out)
            .ok_or(Error::SizeOverflow)?;
        if let Some(form) = pointwise_form(rows) {
            let a = super::cast::<f32>(a);
            return form.block(a, 0, rows, super::cast_mut::<f32>(y), &mut []);
        }
        if unsigned {
            gemm.run_unsigned(a, stride, rows, y, ws)
        } else {
            gemm.run(a, stride, rows, y, ws)
        }
    };
    // Calls of whole row tiles: a call of 16 rows on a 14-row kernel is a 14-row and a
    // 2-row tile, two passes over the weights for the rows of one.
    let (rows, mr) = (copy_rows(esize == 4, k, block), gemm.tile_rows());
    let rows = if rows >= mr { rows / mr * mr } else { rows };
    let blocks = gemm_common::sub_blocks(0, m, rows);
    if n <= k {
        for (p0, rows) in blocks {
            block_at(p0, rows)?;
        }
    } else {
        for (p0, rows) in blocks.rev() {
            block_at(p0, rows)?;
        }
    }
    Ok(())
}

/// A pointwise convolution on several threads by panels of output columns
/// (`gemm_common::split_columns`: few rows, many columns, such as MobileNet-v2's 7×7
/// layers, whose 49 rows make one row task): each task computes its columns over all the
/// pixels, reading all of the input and only its panels of the weights. f32 through
/// `conv_rows`' pointwise form, int8 through the GEMM over prepacked weights; each output
/// is the one a single call computes, whatever the threads.
#[cfg(feature = "std")]
struct Cols<'a, 'w> {
    gemm: &'a Gemm<'a>,
    /// The f32 pointwise form over all m pixels (int8: `None`).
    form: Option<&'a conv_rows::Rows<'w>>,
    m: usize,
    k: usize,
    n: usize,
    /// Bytes of each task's scratch before its GEMM workspace.
    patch_bytes: usize,
}

#[cfg(feature = "std")]
impl Cols<'_, '_> {
    /// The columns a task takes a multiple of, when the layer splits its columns on
    /// `threads` threads; else `None` (rows, or one thread).
    fn unit(&self, threads: usize) -> Option<usize> {
        let unit = match self.form {
            Some(f) => f.col_unit(),
            // (f32 outside that form: `None`, it splits rows.)
            None => self.gemm.col_unit(),
        };
        let split = gemm_common::split_columns(threads, self.m, self.gemm.row_unit(), self.n, unit);
        unit.filter(|_| split)
    }

    /// The convolution of input `x` (m·k elements) into `out` (m·n, apart from `x`) in
    /// column tasks of whole `unit`s, each with a scratch of `scratch_bytes` of its own.
    fn run(
        &self,
        x: &[u8],
        out: &mut [u8],
        scratch_bytes: usize,
        unit: usize,
        threads: usize,
    ) -> Result<(), Error> {
        let (m, k, n) = (self.m, self.k, self.n);
        let out = gemm_common::SharedOut::new(out);
        let call = |j0: usize, j1: usize, scratch: &mut [u8]| match self.form {
            Some(form) => {
                let y = out.first::<f32>(m * n)?;
                // SAFETY: `y` holds the m·n outputs (checked), borrowed for these tasks
                // apart from `x`, the weights and the bias; run_cols gives each task its
                // own columns j0..j1 (whole units).
                unsafe { form.pointwise_cols(super::cast::<f32>(x), y, (j0, j1)) }
            }
            None => {
                let ws = scratch
                    .get_mut(self.patch_bytes.min(scratch.len())..)
                    .unwrap_or(&mut []);
                // SAFETY: `out` is borrowed for these tasks apart from `x` and this task's
                // scratch; run_cols gives each task its own columns j0..j1.
                unsafe { self.gemm.run_cols(x, k, m, out, (j0, j1), ws) }
            }
        };
        gemm_common::run_cols(n, unit, threads, scratch_bytes, &call)
    }

    /// [`Cols::run`] for a convolution in place (`buf` holds the input and then the output
    /// from its first byte; `esize` bytes an element): the input, the smaller side at these
    /// shapes, copied aside first.
    fn run_in_place(
        &self,
        buf: &mut [u8],
        esize: usize,
        scratch_bytes: usize,
        unit: usize,
        threads: usize,
    ) -> Result<(), Error> {
        let in_bytes = self.m * self.k * esize;
        crate::scratch::with_staging(in_bytes.div_ceil(4), |st| {
            // SAFETY: with_staging lends this thread a buffer of at least in_bytes bytes
            // (rounded up to f32s), used by nothing else meanwhile.
            let copy = unsafe { core::slice::from_raw_parts_mut(st as *mut u8, in_bytes) };
            copy.copy_from_slice(buf.get(..in_bytes).ok_or(Error::SizeOverflow)?);
            self.run(copy, buf, scratch_bytes, unit, threads)
        })
    }
}

/// A pointwise convolution working in place, on several threads ([`InPlace::run_threaded`]).
#[cfg(feature = "std")]
struct InPlace<'a, 'w> {
    gemm: &'a Gemm<'a>,
    pointwise_form: &'a (dyn Fn(usize) -> Option<conv_rows::Rows<'w>> + Sync),
    m: usize,
    k: usize,
    n: usize,
    esize: usize,
    block: usize,
    patch_bytes: usize,
}

#[cfg(feature = "std")]
impl InPlace<'_, '_> {
    /// Rows `rows` whose input `a` (rows·k elements) lies apart from their output `y`: as
    /// the convolution not in place computes them (the same bytes as in place).
    fn apart(&self, a: &[u8], rows: usize, y: &mut [u8], ws: &mut [u8]) -> Result<(), Error> {
        if let Some(form) = (self.pointwise_form)(rows) {
            let a = super::cast::<f32>(a);
            return form.block(a, 0, rows, super::cast_mut::<f32>(y), &mut []);
        }
        self.gemm.run(a, self.k, rows, y, ws)
    }

    /// Rows per call apart: all of a task's when the GEMM's workspace is one row tile's
    /// whatever the rows (as not in place), else the rows [`run_in_place`] copies at a time
    /// (the workspace holds that many).
    fn apart_rows(&self) -> usize {
        if self.gemm.ws_plan().is_some() {
            self.m
        } else {
            copy_rows(self.esize == 4, self.k, self.block)
        }
    }

    /// The convolution over `buf` (input and output from its first byte) on `threads`
    /// threads, each task with a scratch of `scratch`'s size of its thread's. When outputs
    /// are no longer than inputs (n ≤ k), band 0 of the rows runs in place on its own
    /// prefix of `buf` (its outputs end before its inputs do) while the other bands read
    /// their inputs, which it does not touch, and set their outputs aside; those are copied
    /// into place at the end. Else the input (the smaller side) is copied aside first and
    /// the rows run as apart. The rows set aside or copied are the smaller side's.
    fn run_threaded(
        &self,
        buf: &mut [u8],
        scratch: &mut [u8],
        threads: usize,
    ) -> Result<(), Error> {
        use std::sync::Mutex;
        let (m, esize) = (self.m, self.esize);
        let (row_in, row_out) = (self.k * esize, self.n * esize);
        let unit = self.gemm.row_unit().max(1);
        let scratch_bytes = scratch.len();
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let fail = |r: Result<(), Error>| {
            if let Err(e) = r {
                if let Ok(mut slot) = failed.lock() {
                    slot.get_or_insert(e);
                }
            }
        };
        let with_ws = |f: &mut dyn FnMut(&mut [u8]) -> Result<(), Error>| {
            fail(crate::scratch::with_workspace(
                scratch_bytes.div_ceil(4),
                |ws| {
                    // SAFETY: with_workspace lends this thread a buffer of at least
                    // scratch_bytes bytes (rounded up to f32s), used by nothing else meanwhile.
                    f(unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, scratch_bytes) })
                },
            ))
        };
        let buf = buf
            .get_mut(..m * row_in.max(row_out))
            .ok_or(Error::SizeOverflow)?;
        let (calls, per_call) = (self.apart_rows(), self.patch_bytes);
        if row_out > row_in {
            // The inputs aside, then every row apart (`run_rows` splits them).
            return crate::scratch::with_staging((m * row_in).div_ceil(4), |st| {
                // SAFETY: with_staging lends this thread a buffer of at least m·row_in
                // bytes, used by nothing else meanwhile.
                let copy = unsafe { core::slice::from_raw_parts_mut(st as *mut u8, m * row_in) };
                copy.copy_from_slice(&buf[..m * row_in]);
                let copy: &[u8] = copy;
                let call = |p0: usize, rows: usize, y: &mut [u8], scratch: &mut [u8]| {
                    let ws = scratch
                        .get_mut(per_call.min(scratch.len())..)
                        .unwrap_or(&mut []);
                    let a = copy
                        .get(p0 * row_in..(p0 + rows) * row_in)
                        .ok_or(Error::SizeOverflow)?;
                    self.apart(a, rows, y, ws)
                };
                gemm_common::run_rows(m, unit, calls, row_out, threads, buf, scratch, &call)
            });
        }
        // Band b: rows start(b)..start(b + 1), in whole units.
        let units = m / unit;
        let start = |b: usize| {
            if b == threads {
                m
            } else {
                units * b / threads * unit
            }
        };
        let r1 = start(1);
        let aside_len = (m - r1) * row_out;
        crate::scratch::with_staging(aside_len.div_ceil(4), |st| {
            // SAFETY: with_staging lends this thread a buffer of at least aside_len bytes,
            // used by nothing else meanwhile.
            let aside = unsafe { core::slice::from_raw_parts_mut(st as *mut u8, aside_len) };
            {
                let (own, rest_in) = buf.split_at_mut(r1 * row_in);
                let rest_in: &[u8] = rest_in;
                let band0 = Mutex::new(own);
                let parts = crate::threads::Parts::split(
                    &mut *aside,
                    (1..threads).map(|b| (start(b + 1) - start(b)) * row_out),
                );
                let job = |b: usize| {
                    if b == 0 {
                        let Ok(mut own) = band0.lock() else { return };
                        with_ws(&mut |scratch| {
                            run_in_place(
                                self.gemm,
                                self.pointwise_form,
                                r1,
                                self.k,
                                self.n,
                                esize,
                                self.block,
                                &mut own,
                                scratch,
                                per_call,
                            )
                        });
                        return;
                    }
                    let Some(mut y) = parts.lock(b - 1) else {
                        return;
                    };
                    let (p0, len) = (start(b), start(b + 1) - start(b));
                    with_ws(&mut |scratch| {
                        let ws = scratch
                            .get_mut(per_call.min(scratch.len())..)
                            .unwrap_or(&mut []);
                        for (q0, rows) in gemm_common::sub_blocks(p0, len, calls) {
                            let at = (q0 - r1) * row_in;
                            let a = rest_in
                                .get(at..at + rows * row_in)
                                .ok_or(Error::SizeOverflow)?;
                            let o = (q0 - p0) * row_out;
                            self.apart(a, rows, &mut y[o..o + rows * row_out], ws)?;
                        }
                        Ok(())
                    });
                };
                crate::threads::run(threads, threads, &job);
            }
            if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
                return Err(e);
            }
            // Every band is done reading its inputs: the outputs set aside go in place.
            buf[r1 * row_out..m * row_out].copy_from_slice(aside);
            Ok(())
        })
    }
}

#[cfg(feature = "alloc")]
pub(crate) use lower::same_or_valid;

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;

    use super::{
        gemm_common, small_block, Geom, BLOCK_BYTES, IMPLICIT_MIN_SCRATCH, IMPLICIT_PIXELS,
        MIN_BLOCK,
    };
    use crate::conv::im2col::padded_ld;
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{OpOptions, Padding};
    use crate::nn::transform::lower::{LTensor, Lowering, Packing};

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
        let pointwise = g.pointwise();
        if matches!(l.packing, Packing::CortexM4 | Packing::CortexM4I16) && x.dtype == DType::I8 {
            return super::conv_direct::lower(l, node, &g, act, &words);
        }
        let y_name = y.name.clone();
        let host_kernel = (l.packing == Packing::Host)
            .then(crate::kernels::qgemm_kernel)
            .and_then(Result::ok);
        // An int8 convolution for a kernel that reads A in segments where it lies (x86
        // VNNI) runs as an implicit GEMM where the geometry allows (see the file header).
        let implicit = x.dtype == DType::I8
            && super::implicit_fits(&g)
            && host_kernel.is_some_and(|q| q.segments);
        // An int8 im2col convolution for a kernel that reads A in place (u8 in 4-byte k
        // groups, x86 VNNI) gets whole groups (ResNet's 3×3×3 first layer: 27 → 28), so its
        // patches are not packed again; other targets keep k (their packers pad it alike).
        let pad_k = x.dtype == DType::I8
            && !pointwise
            && k % 4 != 0
            && host_kernel.is_some_and(|q| q.format == crate::kernels::int8::QFormat::U8x4);
        let mode = match (pointwise, implicit, pad_k) {
            (true, _, _) => 0,
            (false, true, _) => super::IMPLICIT,
            (false, false, false) => 1,
            (false, false, true) => super::IM2COL_PADDED,
        };
        let (k, mut gl) = if mode == super::IMPLICIT {
            // Each filter row's kw·c_in weights start a segment of whole 4-byte groups.
            let (seg, padded) = (kw * ic, super::implicit_segment(&g));
            let row_of = |i: usize| i / seg * padded + i % seg;
            let depth = super::implicit_depth(&g);
            let gl = gemm_common::lower_gemm_rows(l, node, k, depth, &row_of, oc, act)?;
            (depth, gl)
        } else {
            let depth = super::gemm_depth(k, mode);
            let gl = gemm_common::lower_gemm_depth(l, node, k, depth, oc, act)?;
            (depth, gl)
        };
        if !gl.float {
            // TFLite's ConvPerChannel has no weights offset: the weights' zero point (0 by
            // the int8 spec) is not subtracted.
            gl.params[1] = 0;
        }
        if mode == super::IMPLICIT && !gl.packed {
            return Err(err("implicit GEMM without packed weights"));
        }
        // An f32 pointwise convolution with big weights, for a host kernel that reads panels
        // of PANEL_NR columns: the weights stored in those panels (see the file header).
        let panel_kernel = (l.packing == Packing::Host)
            .then(crate::kernels::sgemm_kernel)
            .and_then(Result::ok)
            .is_some_and(|k| k.nr == super::PANEL_NR && k.conv.is_some());
        let w_t = gl.inputs.first().copied().flatten();
        let mode = match w_t {
            Some(w_t)
                if mode == 0
                    && panel_kernel
                    && l.tensors[w_t].dtype == DType::F32
                    && oc % super::PANEL_NR == 0
                    && (oc >= PANEL_MIN_N || k * oc * 4 >= PANEL_MIN_BYTES) =>
            {
                to_panels(&mut l.tensors[w_t], k, oc)
                    .ok_or_else(|| err("f32 weights of another size"))?;
                super::PANELS
            }
            _ => mode,
        };
        // An f32 3×3 stride-1 convolution with enough channels, for this host: Winograd
        // F(2×2, 3×3) (as accurate as the GEMM; see the file header), its weights
        // transformed here.
        let winograd = mode == 1
            && l.packing == Packing::Host
            && super::winograd_fits(&g)
            && ic >= WINOGRAD_MIN_C
            && oc >= WINOGRAD_MIN_C
            && gl.inputs.len() == 2
            && gl.inputs[1].is_some()
            && w_t.is_some_and(|w| l.tensors[w].dtype == DType::F32);
        if let (true, Some(w_t)) = (winograd, w_t) {
            to_winograd(&mut l.tensors[w_t], ic, oc)
                .ok_or_else(|| err("f32 weights of another size"))?;
            let tiles = super::winograd_tiles(&g);
            let per_tile = 16 * (padded_ld(ic) + padded_ld(oc)) * 4;
            let block = (WINOGRAD_PLANE_BYTES / per_tile)
                .clamp(28, 448)
                .min(tiles.max(1));
            let (planes, ws) = super::winograd_parts(&g, block);
            let mut params = words.to_vec();
            params.push(super::WINOGRAD);
            params.push(
                i32::try_from(block).map_err(|_| err("a dimension too large is not supported"))?,
            );
            params.extend_from_slice(&gl.params);
            let mut op = l.op(node, 3, params);
            op.inputs.truncate(1);
            op.inputs.extend_from_slice(&gl.inputs);
            op.in_place = false;
            op.temps = vec![l.add_temp(format!("{y_name}/winograd"), planes + ws)];
            l.push(op);
            return Ok(());
        }
        let esize = if gl.float { 4 } else { 1 };
        let row = (super::patch_stride(gl.float, k) + oc) * esize;
        let kernels = l.packing.kernels();
        let rows_for = |block: usize| super::patch_rows(gl.float, !pointwise, pointwise, block, k);
        let scratch = |block: usize| {
            if mode == super::IMPLICIT {
                return super::implicit_parts(&g, block).map(|(buf, offsets)| buf + offsets);
            }
            super::scratch_parts_for(kernels, gl.float, gl.packed, rows_for(block), block, k, oc)
                .map(|(patch, ws)| patch + ws)
        };
        let out_bytes = m.saturating_mul(oc).saturating_mul(esize);
        let block = if mode == super::IMPLICIT {
            // Output rows per call: each call copies (rows − 1)·sh + kh input rows, so more
            // rows copy less again, and one product takes them all; as many as keep the
            // scratch within a quarter of the output's bytes or `IMPLICIT_MIN_SCRATCH` (at
            // least one row) and a call within `IMPLICIT_PIXELS` pixels.
            let most = (IMPLICIT_PIXELS / ow.max(1)).clamp(1, oh.max(1));
            let room = (out_bytes / 4).max(IMPLICIT_MIN_SCRATCH);
            let fits = |r: usize| scratch(r).is_some_and(|b| b <= room);
            (1..=most).rev().find(|&r| fits(r)).unwrap_or(1)
        } else {
            let mut block = (BLOCK_BYTES / row.max(1))
                .clamp(MIN_BLOCK, 4096)
                .min(m.max(1));
            // The scratch is part of the arena: an im2col convolution's (patches and GEMM
            // workspace) is kept within a quarter of its output's bytes where blocks of at
            // least `small_block` rows allow it. A keyword spotter's first layer (10×4
            // filter, 64 channels) would otherwise need more scratch than the activation it
            // makes.
            let small = small_block(kernels, gl.float);
            while !pointwise && block > small && scratch(block).is_none_or(|b| b > out_bytes / 4) {
                block = (block * 3 / 4).max(small);
            }
            block
        };
        let mut params = words.to_vec();
        params.push(mode);
        params
            .push(i32::try_from(block).map_err(|_| err("a dimension too large is not supported"))?);
        params.extend_from_slice(&gl.params);
        let mut op = l.op(node, 3, params);
        op.inputs.truncate(1);
        op.inputs.extend_from_slice(&gl.inputs);
        // Pointwise: room to copy a few input rows at a time, should the plan put the
        // output over the input. The plan may not for f32 in a host blob: copying and
        // multiplying a few rows at a time cost more than the arena it saves there (DS-CNN's
        // 64 → 64 layers on Zen 4: 10.0 → 9.5 µs each; its arena 44 416 → 76 416 bytes).
        op.in_place = pointwise && !(gl.float && matches!(l.packing, Packing::Host));
        let bytes = scratch(block).ok_or_else(|| err("sizes overflow"))?;
        op.temps = vec![l.add_temp(format!("{y_name}/im2col+gemm"), bytes)];
        l.push(op);
        Ok(())
    }

    /// The fewest input and output channels of a convolution [`lower`] runs as Winograd
    /// F(2×2, 3×3): with fewer, the transforms cost more than the products they save.
    const WINOGRAD_MIN_C: usize = 16;
    /// The bytes of transform planes (V and M) a Winograd call's tiles may take (at least
    /// 28 tiles, at most 448): ResNet-8's 32×32×16 layer, 64 tiles a call.
    const WINOGRAD_PLANE_BYTES: usize = 128 * 1024;

    /// f32 weights `w`, k×n (k = 9·ic, rows in (filter row, column, channel) order),
    /// rewritten as Winograd F(2×2, 3×3)'s transformed filter: 16 planes of ic×n.
    fn to_winograd(w: &mut LTensor, ic: usize, n: usize) -> Option<()> {
        use crate::conv::winograd::{filter_planes, Variant};
        let data = w.data.as_mut().filter(|d| d.len() == 9 * ic * n * 4)?;
        let f =
            |i: usize| f32::from_le_bytes(data[i * 4..i * 4 + 4].try_into().unwrap_or_default());
        let u = filter_planes(Variant::F2, ic, n, |o, r, s, i| {
            f(((r * 3 + s) * ic + i) * n + o)
        })
        .ok()?;
        *data = u.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.shape = vec![16, ic, n];
        w.name = format!("{}/winograd2x3", w.name.trim_end_matches("/kxn"));
        Some(())
    }

    /// The fewest output channels, or weight bytes, of a convolution whose weights
    /// [`lower`] stores in panels: the layers that re-read them from memory (MobileNet-v2's
    /// 96 → 576 and wider).
    const PANEL_MIN_N: usize = 256;
    const PANEL_MIN_BYTES: usize = 512 * 1024;

    /// f32 weights `w`, k×n (n a multiple of PANEL_NR), rewritten as n/PANEL_NR panels of k
    /// rows of PANEL_NR columns.
    fn to_panels(w: &mut LTensor, k: usize, n: usize) -> Option<()> {
        let nr = super::PANEL_NR;
        let data = w.data.as_mut().filter(|d| d.len() == k * n * 4)?;
        let mut panels = vec![0u8; data.len()];
        for (p, panel) in panels.chunks_exact_mut(k * nr * 4).enumerate() {
            for (i, row) in panel.chunks_exact_mut(nr * 4).enumerate() {
                let at = (i * n + p * nr) * 4;
                row.copy_from_slice(&data[at..at + nr * 4]);
            }
        }
        *data = panels;
        w.shape = vec![n / nr, k, nr];
        w.name = format!("{}/panels{nr}", w.name.trim_end_matches("/kxn"));
        Some(())
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use crate::nn::dtype::DType;
    use crate::nn::transform::blob_writer::{write_blob, WriteOptions};
    use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, Node, OpOptions, Padding};
    use crate::nn::transform::ir::{Quant, Tensor};
    use crate::nn::transform::lower::{lower, Lowered};
    use crate::nn::transform::passes::test_graphs::run_bytes as run;
    use crate::nn::transform::plan::plan;
    use crate::nn::transform::{LoadedModel, Packing};
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Deterministic bytes.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// One CONV_2D over an h×w×c_in input: `ksize`×`ksize`, stride 1, SAME padding, c_out
    /// channels, a bias and ReLU6; int8 (per-channel weights) or f32.
    fn conv_graph(float: bool, h: usize, w: usize, cin: usize, cout: usize, ksize: usize) -> Graph {
        let shape = Shape {
            batch: 1,
            h,
            w,
            cin,
            cout,
            kh: ksize,
            kw: ksize,
            stride: (1, 1),
            dilation: (1, 1),
            same: true,
        };
        conv_graph_of(float, &shape)
    }

    /// A CONV_2D's shapes and options for [`conv_graph_of`].
    struct Shape {
        batch: usize,
        h: usize,
        w: usize,
        cin: usize,
        cout: usize,
        kh: usize,
        kw: usize,
        /// (h, w)
        stride: (usize, usize),
        dilation: (usize, usize),
        same: bool,
    }

    /// One CONV_2D of `s`, with a bias and ReLU6; int8 (per-channel weights) or f32.
    fn conv_graph_of(float: bool, s: &Shape) -> Graph {
        let Shape {
            batch,
            h,
            w,
            cin,
            cout,
            kh,
            kw,
            ..
        } = *s;
        let (dt, esize) = if float {
            (DType::F32, 4)
        } else {
            (DType::I8, 1)
        };
        let q = |s: Vec<f32>, z: i64| {
            (!float).then(|| Quant {
                zero_point: vec![z; s.len()],
                scale: s,
                axis: 0,
            })
        };
        let t = |name: &str, dtype, shape: Vec<usize>, quant, data| Tensor {
            name: String::from(name),
            dtype,
            shape,
            quant,
            data,
        };
        let k = kh * kw * cin;
        let mut wdata = bytes(cout * k * esize, 7);
        let mut bdata = bytes(cout * 4, 11);
        if float {
            // Small finite values.
            for c in wdata.chunks_exact_mut(4).chain(bdata.chunks_exact_mut(4)) {
                let v = (c[0] as f32 - 128.0) / 256.0;
                c.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for c in bdata.chunks_exact_mut(4) {
                let v = i32::from_le_bytes([c[0], c[1], 0, 0]) - 32768;
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        let w_scales: Vec<f32> = (0..cout).map(|i| 0.002 + 0.0001 * i as f32).collect();
        let b_scales: Vec<f32> = w_scales.iter().map(|s| s * 0.05).collect();
        let padding = if s.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        let out = |i: usize, k: usize, st: usize, d: usize| {
            let (o, _) = super::same_or_valid(padding, i, k, st, d).unwrap();
            o
        };
        let (oh, ow) = (
            out(h, kh, s.stride.0, s.dilation.0),
            out(w, kw, s.stride.1, s.dilation.1),
        );
        Graph {
            tensors: vec![
                t("x", dt, vec![batch, h, w, cin], q(vec![0.05], -3), None),
                t(
                    "w",
                    dt,
                    vec![cout, kh, kw, cin],
                    q(w_scales, 0),
                    Some(wdata),
                ),
                t(
                    "b",
                    if float { DType::F32 } else { DType::I32 },
                    vec![cout],
                    q(b_scales, 0),
                    Some(bdata),
                ),
                t("y", dt, vec![batch, oh, ow, cout], q(vec![0.04], 5), None),
            ],
            nodes: vec![Node {
                op: BuiltinOp::Conv2d,
                version: 3,
                options: OpOptions::Conv2d {
                    padding,
                    stride_w: s.stride.1 as i32,
                    stride_h: s.stride.0 as i32,
                    activation: Activation::Relu6,
                    dilation_w_factor: s.dilation.1 as i32,
                    dilation_h_factor: s.dilation.0 as i32,
                },
                inputs: vec![Some(0), Some(1), Some(2)],
                outputs: vec![3],
            }],
            inputs: vec![0],
            outputs: vec![3],
        }
    }

    /// The single pointwise convolution of `l` planned with its output over its input (x and
    /// y at 0, the scratch after the longer of them), as a loaded model.
    fn in_place(l: &Lowered) -> LoadedModel {
        let mut p = plan(l);
        let temp = l.ops[0].temps[0];
        let span = l.tensors[0]
            .bytes
            .max(l.tensors[3].bytes)
            .next_multiple_of(64);
        p.offsets[0] = Some(0);
        p.offsets[3] = Some(0);
        p.offsets[temp] = Some(span);
        p.arena = (span + l.tensors[temp].bytes).next_multiple_of(16);
        LoadedModel::from_blob(&write_blob(l, &p, WriteOptions::default()).unwrap()).unwrap()
    }

    fn input_for(g: &Graph) -> Vec<u8> {
        let x = &g.tensors[0];
        let mut b = bytes(x.byte_len(), 3);
        if x.dtype == DType::F32 {
            for c in b.chunks_exact_mut(4) {
                let v = (c[0] as f32 - 128.0) / 64.0;
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// Results do not depend on the thread count (pointwise and im2col, int8 and f32, both
    /// weight layouts, row counts that do and do not divide into the threads' shares; the
    /// large shapes are over `MIN_MACS_PER_THREAD` for 3 threads, DS-CNN's pointwise layer
    /// (512 K MACs) and a one-channel 3×3 (282 K) split on 2 and 3).
    #[test]
    fn threads_give_the_same_bytes() {
        for float in [false, true] {
            for (h, w, cin, cout, ks) in [
                (64, 61, 24, 40, 1),
                (45, 43, 8, 24, 3),
                (5, 3, 4, 6, 3),
                (25, 5, 64, 64, 1),
                (49, 10, 1, 64, 3),
            ] {
                let g = conv_graph(float, h, w, cin, cout, ks);
                let x = input_for(&g);
                for packing in [Packing::Host, Packing::Portable] {
                    let m = LoadedModel::from_graph(&g, packing).unwrap();
                    let one = run(&m, &x, 1);
                    for t in [2, 3, 5] {
                        assert_eq!(
                            run(&m, &x, t),
                            one,
                            "float {float} {h}x{w} k{ks} threads {t}"
                        );
                    }
                }
            }
        }
    }

    /// Pointwise layers of few rows and many columns, which threads split by panels of
    /// columns (`gemm_common::split_columns`: MobileNet-v2's 7×7 layers, 49 rows, and 84
    /// rows, three tasks, of 384 columns; the 320 → 1280 one in the f32 panel form), give
    /// the bytes of one thread: int8 and f32, both weight
    /// layouts, 2, 3 and 5 threads (over the work floors for 2 and 3), out of place and
    /// planned in place (the input copied aside first).
    #[test]
    fn column_split_gives_the_same_bytes() {
        use super::gemm_common::split_columns;
        assert!(split_columns(2, 49, 28, 160, Some(32)));
        assert!(split_columns(2, 84, 28, 384, Some(32)));
        assert!(!split_columns(2, 196, 28, 384, Some(32)));
        assert!(!split_columns(2, 196, 28, 96, Some(32)));
        assert!(!split_columns(2, 3136, 28, 384, Some(32)));
        assert!(!split_columns(2, 49, 28, 160, None));
        for float in [false, true] {
            for (h, w, cin, cout) in [
                (7, 7, 960, 160),
                (7, 7, 160, 960),
                (6, 14, 64, 384),
                (7, 7, 320, 1280),
            ] {
                let g = conv_graph(float, h, w, cin, cout, 1);
                let x = input_for(&g);
                for packing in [Packing::Host, Packing::Portable] {
                    let what =
                        |t: usize| format!("float {float} {h}x{w} {cin}->{cout} threads {t}");
                    let normal = LoadedModel::from_graph(&g, packing).unwrap();
                    let want = run(&normal, &x, 1);
                    for t in [2, 3, 5] {
                        assert_eq!(run(&normal, &x, t), want, "{}", what(t));
                    }
                    // The same planned in place (as `pointwise_in_place_equals_out_of_place`).
                    let l = lower(&g, packing).unwrap();
                    let m = in_place(&l);
                    for t in [1, 2, 3] {
                        assert_eq!(run(&m, &x, t), want, "in place, {}", what(t));
                    }
                }
            }
        }
    }

    /// A run on several threads allocates nothing once the pool has started: the row split,
    /// the column split and the in-place split hand their tasks pieces kept on the stack.
    #[test]
    fn runs_on_threads_allocate_nothing() {
        use crate::nn::transform::passes::test_graphs::run_allocations;
        for float in [false, true] {
            for (h, w, cin, cout) in [(64, 61, 40, 24), (7, 7, 960, 160)] {
                let g = conv_graph(float, h, w, cin, cout, 1);
                let x = input_for(&g);
                let m = LoadedModel::from_graph(&g, Packing::Host).unwrap();
                for t in [1, 2, 3] {
                    let what = format!("float {float} {h}x{w} {cin}->{cout} threads {t}");
                    assert_eq!(run_allocations(&m, &x, t), 0, "{what}");
                }
            }
            // In place (as `pointwise_in_place_equals_out_of_place`).
            let g = conv_graph(float, 64, 61, 40, 24, 1);
            let x = input_for(&g);
            let l = lower(&g, Packing::Host).unwrap();
            let m = in_place(&l);
            for t in [2, 3] {
                assert_eq!(
                    run_allocations(&m, &x, t),
                    0,
                    "in place, float {float}, threads {t}"
                );
            }
        }
    }

    /// A pointwise convolution planned with its output over its input (same arena offset)
    /// gives the bytes of the out-of-place run: int8 and f32, fewer output channels than input
    /// channels (blocks run forward; on threads, band 0 in place and the others set aside)
    /// and more (backward; on threads, the input copied aside), over several blocks, on one
    /// thread and on two and three (3.7 M MACs: three shares over `MIN_MACS_PER_THREAD`;
    /// 61·64 rows do not divide into whole units per thread).
    #[test]
    fn pointwise_in_place_equals_out_of_place() {
        for float in [false, true] {
            for (cin, cout) in [(40, 24), (24, 40), (16, 16)] {
                let g = conv_graph(float, 64, 61, cin, cout, 1);
                let x = input_for(&g);
                for packing in [Packing::Host, Packing::Portable] {
                    let normal = LoadedModel::from_graph(&g, packing).unwrap();
                    let want = run(&normal, &x, 1);
                    let l = lower(&g, packing).unwrap();
                    // The plan may put it in place except f32 in a host blob (which still
                    // runs in place when a blob says so: the scratch has the room).
                    let host_f32 = float && matches!(packing, Packing::Host);
                    assert_eq!(l.ops[0].in_place, !host_f32);
                    let m = in_place(&l);
                    assert_eq!(run(&m, &x, 1), want, "float {float} {cin}->{cout}");
                    for t in [2, 3] {
                        let what = format!("float {float} {cin}->{cout} threads {t}");
                        assert_eq!(run(&m, &x, t), want, "{what}");
                    }
                }
            }
        }
    }

    /// A 3×3×3 int8 convolution (k = 27) dilated along x (so not an implicit GEMM) for the
    /// VNNI kernel gets its depth padded to 28 (zero weights, zero-point patches) and gives
    /// the bytes of the portable build, which keeps 27; on one thread and on several.
    #[test]
    fn padded_depth_gives_the_same_bytes() {
        let shape = Shape {
            batch: 1,
            h: 17,
            w: 19,
            cin: 3,
            cout: 16,
            kh: 3,
            kw: 3,
            stride: (1, 1),
            dilation: (1, 2),
            same: true,
        };
        let g = conv_graph_of(false, &shape);
        let x = input_for(&g);
        let portable = LoadedModel::from_graph(&g, Packing::Portable).unwrap();
        let host = LoadedModel::from_graph(&g, Packing::Host).unwrap();
        let want = run(&portable, &x, 1);
        assert_eq!(run(&host, &x, 1), want);
        assert_eq!(run(&host, &x, 3), want);
        let vnni = crate::kernels::qgemm_kernel()
            .is_ok_and(|k| k.format == crate::kernels::int8::QFormat::U8x4);
        let mode = lower(&g, Packing::Host).unwrap().ops[0].params[super::P_IM2COL];
        assert_eq!(mode, if vnni { super::IM2COL_PADDED } else { 1 });
        assert_eq!(
            lower(&g, Packing::Portable).unwrap().ops[0].params[super::P_IM2COL],
            1
        );
    }

    /// The panel form (f32 pointwise, big weights, an AVX-512 host) gives the bits of the
    /// k×n form it replaces (the same kernel sums in the same order), out of place on one
    /// and three threads and in place; the form chosen exactly where it fits, never when
    /// portable.
    #[test]
    fn panel_form_gives_the_bits_of_the_kxn_form() {
        let avx512 = crate::kernels::sgemm_kernel()
            .is_ok_and(|k| k.nr == super::PANEL_NR && k.conv.is_some());
        // (h, w, c_in, c_out, panels): n ≥ 256; weights ≥ 512 KiB; neither; n not in
        // whole panels.
        let cases = [
            (5, 9, 40, 256, true),
            (7, 7, 600, 224, true),
            (4, 6, 96, 224, false),
            (3, 5, 64, 270, false),
        ];
        for (h, w, cin, cout, panels) in cases {
            let g = conv_graph(true, h, w, cin, cout, 1);
            let x = input_for(&g);
            let what = format!("{h}x{w}x{cin} -> {cout}");
            let portable = lower(&g, Packing::Portable).unwrap();
            assert_eq!(portable.ops[0].params[super::P_IM2COL], 0, "{what}");
            let l = lower(&g, Packing::Host).unwrap();
            let mode = l.ops[0].params[super::P_IM2COL];
            assert_eq!(mode == super::PANELS, panels && avx512, "{what}");
            if mode != super::PANELS {
                continue;
            }
            let got = LoadedModel::from_graph(&g, Packing::Host).unwrap();
            // The same lowering with the panels put back into k×n and the word back to 0.
            let mut kxn = l.clone();
            let w_t = kxn.ops[0].inputs[1].unwrap();
            let t = &mut kxn.tensors[w_t];
            let data = t.data.as_mut().unwrap();
            let nr = super::PANEL_NR;
            let mut rows = vec![0u8; data.len()];
            for (p, panel) in data.chunks_exact(cin * nr * 4).enumerate() {
                for (i, row) in panel.chunks_exact(nr * 4).enumerate() {
                    let at = (i * cout + p * nr) * 4;
                    rows[at..at + nr * 4].copy_from_slice(row);
                }
            }
            assert_ne!(*data, rows, "{what}");
            *data = rows;
            t.shape = vec![cin, cout];
            kxn.ops[0].params[super::P_IM2COL] = 0;
            let blob = write_blob(&kxn, &plan(&kxn), WriteOptions::default()).unwrap();
            let want = run(&LoadedModel::from_blob(&blob).unwrap(), &x, 1);
            assert_eq!(run(&got, &x, 1), want, "{what}");
            assert_eq!(run(&got, &x, 3), want, "{what} threads");
            // In place: x and y at 0, the scratch after the longer of them.
            let m = in_place(&l);
            assert_eq!(run(&m, &x, 1), want, "{what} in place");
        }
    }

    /// The Winograd form (f32 3×3 stride 1, ≥ 16 channels each side, a host blob) is chosen
    /// exactly there, and its outputs are within the bound of F(2×2, 3×3) (the GEMM's
    /// bound, `(K + 4)·ε·A_win` with `A_win = Σ_cin max|x|·Σ|w| + |b|`, the README's
    /// Convolution section) of the f64 definition: SAME and VALID, odd sizes (partial
    /// tiles), a batch of two, several blocks of tiles, on one thread and three.
    #[test]
    fn winograd_form_is_within_its_bound() {
        // (batch, h, w, c_in, c_out, same, winograd)
        let cases = [
            (1, 9, 7, 16, 16, true, true),
            (2, 11, 13, 16, 24, false, true),
            (1, 32, 30, 16, 16, true, true),
            (1, 6, 6, 24, 40, true, true),
            (1, 9, 7, 8, 16, true, false),
            (1, 9, 7, 16, 12, true, false),
        ];
        for (batch, h, w, cin, cout, same, winograd) in cases {
            let shape = Shape {
                batch,
                h,
                w,
                cin,
                cout,
                kh: 3,
                kw: 3,
                stride: (1, 1),
                dilation: (1, 1),
                same,
            };
            let g = conv_graph_of(true, &shape);
            let what = format!("{batch}x{h}x{w}x{cin} -> {cout} same={same}");
            let l = lower(&g, Packing::Host).unwrap();
            assert_eq!(
                l.ops[0].params[super::P_IM2COL] == super::WINOGRAD,
                winograd,
                "{what}"
            );
            let portable = lower(&g, Packing::Portable).unwrap();
            assert_eq!(portable.ops[0].params[super::P_IM2COL], 1, "{what}");
            if !winograd {
                continue;
            }
            let x = input_for(&g);
            let m = LoadedModel::from_graph(&g, Packing::Host).unwrap();
            let y = run(&m, &x, 1);
            // Threads take whole blocks of tiles: the same bytes.
            assert_eq!(run(&m, &x, 3), y, "{what} threads");
            let f = |b: &[u8]| -> Vec<f32> {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect()
            };
            let (xs, y) = (f(&x), f(&y));
            let ws = f(g.tensors[1].data.as_ref().unwrap());
            let bs = f(g.tensors[2].data.as_ref().unwrap());
            let (oh, ow) = (g.tensors[3].shape[1], g.tensors[3].shape[2]);
            let (pt, pl) = if same { (1, 1) } else { (0, 0) };
            let xmax: Vec<f64> = (0..cin)
                .map(|c| {
                    xs.iter()
                        .skip(c)
                        .step_by(cin)
                        .fold(0f64, |m, v| m.max(v.abs() as f64))
                })
                .collect();
            let k = 9 * cin;
            let eps = f32::EPSILON as f64;
            for n in 0..batch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for o in 0..cout {
                            let mut acc = bs[o] as f64;
                            let mut a_win = (bs[o] as f64).abs();
                            for i in 0..cin {
                                let mut wsum = 0f64;
                                for r in 0..3 {
                                    for s in 0..3 {
                                        let wv = ws[((o * 3 + r) * 3 + s) * cin + i] as f64;
                                        wsum += wv.abs();
                                        let (iy, ix) = ((oy + r) as i64 - pt, (ox + s) as i64 - pl);
                                        if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < h
                                            && (ix as usize) < w
                                        {
                                            let xi =
                                                ((n * h + iy as usize) * w + ix as usize) * cin + i;
                                            acc += xs[xi] as f64 * wv;
                                        }
                                    }
                                }
                                a_win += xmax[i] * wsum;
                            }
                            let want = acc.clamp(0.0, 6.0);
                            let got = y[((n * oh + oy) * ow + ox) * cout + o] as f64;
                            let bound = (k + 4) as f64 * eps * a_win;
                            assert!(
                                (got - want).abs() <= bound,
                                "{what}: ({n}, {oy}, {ox}, {o}) {got} vs {want}, bound {bound}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A blob with the panel form is refused, with an error that says why, where the
    /// AVX-512 kernel is not the one selected (`EDGEMM_KERNEL` is read once per process: the
    /// refusal runs in a child process of this test binary).
    #[cfg(feature = "std")]
    #[test]
    fn panel_form_is_refused_without_its_kernel() {
        const CHILD: &str = "EDGEMM_PANELS_CHILD";
        if let Some(path) = std::env::var_os(CHILD) {
            let blob = std::fs::read(path).unwrap();
            let Err(err) = LoadedModel::from_blob(&blob) else {
                panic!("the blob was not refused");
            };
            let text = format!("{err}");
            assert!(text.contains("panels for the AVX-512 f32 kernel"), "{text}");
            return;
        }
        if !crate::kernels::sgemm_kernel().is_ok_and(|k| k.name == "sgemm_avx512f_14x32") {
            return;
        }
        let g = conv_graph(true, 5, 9, 40, 256, 1);
        let l = lower(&g, Packing::Host).unwrap();
        assert_eq!(l.ops[0].params[super::P_IM2COL], super::PANELS);
        let blob = write_blob(&l, &plan(&l), WriteOptions::default()).unwrap();
        let path = std::env::temp_dir().join(format!("edgemm-panels-{}.egmb", std::process::id()));
        std::fs::write(&path, &blob).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "nn::ops::conv::tests::panel_form_is_refused_without_its_kernel",
            ])
            .env("EDGEMM_KERNEL", "sgemm_avx2_fma_6x16")
            .env(CHILD, &path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    /// The implicit-GEMM form (on a CPU whose kernel reads A in segments) gives the bytes
    /// of the portable build's im2col: strides, dilation along y, SAME and VALID padding
    /// (left, right, both, none), filters wider than tall and taller than wide, c_in of 1
    /// (a 4-wide filter row), 4 and 16, c_out within a half tile, over a tile and past 32,
    /// two images, on one thread and on several; the mode chosen where it fits.
    #[test]
    fn implicit_gemm_gives_the_bytes_of_im2col() {
        let segments = crate::kernels::qgemm_kernel().is_ok_and(|k| k.segments);
        // (batch, h, w, cin, cout, kh, kw, stride, dilation, same)
        let cases = [
            (1, 12, 11, 16, 16, 3, 3, (1, 1), (1, 1), true),
            (2, 9, 13, 4, 40, 3, 3, (2, 2), (1, 1), true),
            (1, 16, 16, 8, 33, 3, 3, (2, 2), (1, 1), false),
            (1, 10, 9, 4, 24, 3, 1, (1, 2), (2, 1), true),
            (1, 23, 10, 1, 64, 10, 4, (2, 2), (1, 1), true),
            (1, 7, 8, 16, 8, 1, 3, (1, 1), (1, 1), false),
            (2, 6, 5, 16, 20, 5, 5, (1, 3), (1, 1), true),
            (1, 3, 4, 4, 8, 3, 3, (1, 1), (1, 1), true),
            // Segments of 9, 6 and 15 bytes, read as 12, 8 and 16.
            (1, 17, 19, 3, 16, 3, 3, (1, 1), (1, 1), true),
            (2, 11, 9, 3, 8, 3, 3, (2, 2), (1, 1), true),
            (1, 8, 9, 2, 20, 2, 3, (1, 1), (1, 1), false),
            (1, 9, 10, 5, 12, 3, 3, (2, 1), (1, 1), true),
            // A strided 1×1 (ResNet's shortcut): not pointwise, so an implicit GEMM.
            (1, 9, 10, 16, 32, 1, 1, (2, 2), (1, 1), false),
            (1, 8, 8, 8, 16, 1, 1, (2, 2), (1, 1), true),
            // Input rows no filter row reads (left unwritten): 2 of every 3, 1 of every 3.
            (1, 13, 9, 4, 8, 1, 3, (3, 1), (1, 1), true),
            (1, 14, 8, 4, 8, 2, 2, (3, 2), (2, 1), false),
        ];
        for (batch, h, w, cin, cout, kh, kw, stride, dilation, same) in cases {
            let shape = Shape {
                batch,
                h,
                w,
                cin,
                cout,
                kh,
                kw,
                stride,
                dilation,
                same,
            };
            let g = conv_graph_of(false, &shape);
            let x = input_for(&g);
            let want = run(
                &LoadedModel::from_graph(&g, Packing::Portable).unwrap(),
                &x,
                1,
            );
            let host = LoadedModel::from_graph(&g, Packing::Host).unwrap();
            let what =
                format!("{batch}x{h}x{w}x{cin} -> {cout} k{kh}x{kw} s{stride:?} d{dilation:?}");
            for t in [1, 2, 3] {
                assert_eq!(run(&host, &x, t), want, "{what} threads {t}");
            }
            let mode = lower(&g, Packing::Host).unwrap().ops[0].params[super::P_IM2COL];
            assert_eq!(mode == super::IMPLICIT, segments, "{what}");
        }
    }

    /// im2col writes the patches of the definition (every tap from `in_pixel` or the pad
    /// byte, flipped alike), the padded tail of a row as pad bytes, and nothing past it:
    /// strides, dilations, padding at either side, several batches, blocks that start and
    /// end inside output rows, bytes and f32-sized elements.
    #[test]
    fn im2col_writes_the_definition() {
        use super::{im2col, Geom};
        // (b, ih, iw, ic, kh, kw, sh, sw, dh, dw, pt, pl)
        let cases = [
            (1, 32, 32, 3, 3, 3, 1, 1, 1, 1, 1, 1),
            (2, 7, 9, 5, 3, 2, 2, 1, 1, 1, 1, 0),
            (1, 9, 11, 4, 3, 3, 2, 2, 1, 1, 0, 1),
            (1, 10, 10, 2, 3, 3, 1, 1, 2, 2, 2, 2),
            (2, 6, 5, 16, 5, 5, 1, 3, 1, 1, 2, 2),
            (1, 4, 3, 3, 1, 7, 1, 1, 1, 1, 0, 3),
            // Filter rows of 48, 6, 4 and 2 bytes (each copy width of `copy_segments`).
            (1, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 1),
            (1, 6, 7, 2, 3, 3, 1, 1, 1, 1, 1, 1),
            (1, 49, 10, 1, 10, 4, 2, 2, 1, 1, 4, 1),
            (1, 5, 6, 1, 2, 2, 1, 1, 1, 1, 0, 0),
        ];
        for (batch, ih, iw, ic, kh, kw, sh, sw, dh, dw, pt, pl) in cases {
            let out = |i: usize, k: usize, s: usize, d: usize, p: usize| {
                (i + 2 * p).saturating_sub((k - 1) * d + 1) / s + 1
            };
            let (oh, ow) = (out(ih, kh, sh, dh, pt), out(iw, kw, sw, dw, pl));
            let g = Geom {
                batch,
                ih,
                iw,
                ic,
                oh,
                ow,
                oc: 1,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                pt,
                pl,
            };
            let m = batch * oh * ow;
            for (esize, flip) in [(1, 0), (1, 0x80), (4, 0)] {
                let x = bytes(batch * ih * iw * ic * esize, 5);
                let kb = kh * kw * ic * esize;
                let row = kb.next_multiple_of(4) + if esize == 1 { 4 } else { 0 };
                let stride = row + 3;
                let pad = 0x5a ^ flip;
                for block in [1, 5, ow + 1, m] {
                    let mut p0 = 0;
                    while p0 < m {
                        let rows = block.min(m - p0);
                        let mut a = vec![0xeeu8; rows * stride];
                        im2col(&g, &x, esize, pad, flip, p0, rows, stride, row, &mut a);
                        for r in 0..rows {
                            let p = p0 + r;
                            let (b, oy, ox) = (p / (oh * ow), p / ow % oh, p % ow);
                            let mut want = vec![];
                            for fy in 0..kh {
                                for fx in 0..kw {
                                    let at = g.in_pixel(b, g.in_y(oy, fy), g.in_x(ox, fx));
                                    for j in 0..ic * esize {
                                        want.push(at.map_or(pad, |o| x[o * esize + j] ^ flip));
                                    }
                                }
                            }
                            want.resize(row, pad);
                            want.resize(stride, 0xee);
                            assert_eq!(
                                &a[r * stride..(r + 1) * stride],
                                &want[..],
                                "{ih}x{iw}x{ic} k{kh}x{kw} s{sh},{sw} d{dh},{dw} pixel {p}"
                            );
                        }
                        p0 += rows;
                    }
                }
            }
        }
    }

    /// A 3×3 convolution may not be planned in place: the blob is refused at load.
    #[test]
    fn im2col_in_place_is_refused() {
        let g = conv_graph(false, 8, 8, 4, 4, 3);
        let l = lower(&g, Packing::Portable).unwrap();
        assert!(!l.ops[0].in_place);
        let mut p = plan(&l);
        p.offsets[3] = p.offsets[0];
        let temp = l.ops[0].temps[0];
        p.offsets[temp] = Some(1024);
        p.arena = 1024 + l.tensors[temp].bytes.next_multiple_of(16);
        let blob = write_blob(&l, &p, WriteOptions::default()).unwrap();
        assert!(LoadedModel::from_blob(&blob).is_err());
    }

    /// The direct form (`--target cortex-m4`) stores its shifts as bytes, and one multiplier
    /// and shift when every channel has the same; run on the host (its portable path) it
    /// gives the portable blob's bytes. A blob with i32 shifts (the earlier layout) is
    /// refused with an error that says to convert the model again, one with a shift out of
    /// range as such.
    #[test]
    fn direct_form_has_byte_shifts_and_refuses_the_earlier_layout() {
        use crate::nn::blob::Model;
        for (ks, cin, cout, equal) in [(3, 4, 6, false), (3, 4, 6, true), (1, 8, 12, true)] {
            let mut g = conv_graph(false, 6, 5, cin, cout, ks);
            if equal {
                let q = g.tensors[1].quant.as_mut().unwrap();
                q.scale = vec![q.scale[0]; cout];
            }
            let what = format!("{ks}x{ks}x{cin} -> {cout}, equal scales {equal}");
            let x = input_for(&g);
            let want = run(
                &LoadedModel::from_graph(&g, Packing::Portable).unwrap(),
                &x,
                1,
            );
            let l = lower(&g, Packing::CortexM4).unwrap();
            let (mults, shifts) = (l.ops[0].inputs[3].unwrap(), l.ops[0].inputs[4].unwrap());
            let count = if equal { 1 } else { cout };
            assert_eq!(l.tensors[mults].bytes, 4 * count, "{what}");
            assert_eq!(l.tensors[shifts].dtype, DType::I8, "{what}");
            assert_eq!(l.tensors[shifts].bytes, count, "{what}");
            let blob = write_blob(&l, &plan(&l), WriteOptions::default()).unwrap();
            Model::validate_for_target(&blob, "cortex-m4-dsp").unwrap();
            // Run where it was validated, in a 16-byte aligned copy.
            let mut words = vec![0u128; blob.len().div_ceil(16)];
            // SAFETY: u128 to bytes (alignment 1, every byte initialized).
            let (_, aligned, _) = unsafe { words.align_to_mut::<u8>() };
            aligned[..blob.len()].copy_from_slice(&blob);
            let m = Model::validated(&aligned[..blob.len()], true);
            let mut arena = vec![0u128; m.arena_size().div_ceil(16)];
            // SAFETY: as above.
            let (_, arena, _) = unsafe { arena.align_to_mut::<u8>() };
            let mut s = crate::nn::Session::new(m, arena).unwrap();
            s.set_input(0, &x).unwrap();
            s.run().unwrap();
            assert_eq!(s.output(0).unwrap(), &want[..], "{what}");
            // The earlier layout: the same shifts as i32.
            let mut old = l.clone();
            let t = &mut old.tensors[shifts];
            let data: Vec<u8> = t
                .data
                .as_ref()
                .unwrap()
                .iter()
                .flat_map(|&v| i32::from(v as i8).to_le_bytes())
                .collect();
            (t.dtype, t.bytes, t.data) = (DType::I32, data.len(), Some(data));
            let blob = write_blob(&old, &plan(&old), WriteOptions::default()).unwrap();
            let e = Model::validate_for_target(&blob, "cortex-m4-dsp").unwrap_err();
            let e = format!("{e}");
            let refused = e.contains("shifts are i32") && e.contains("convert the model again");
            assert!(refused, "{what}: {e}");
            // A byte shift out of −31..=30 is refused too.
            let mut bad = l.clone();
            bad.tensors[shifts].data.as_mut().unwrap()[count - 1] = 31;
            let blob = write_blob(&bad, &plan(&bad), WriteOptions::default()).unwrap();
            let e = Model::validate_for_target(&blob, "cortex-m4-dsp").unwrap_err();
            let e = format!("{e}");
            assert!(e.contains("shift is out of range"), "{what}: {e}");
        }
    }

    /// A direct int8 convolution whose patches are neither pointwise nor one word a filter
    /// row is `FORM_DIRECT_PATCHES` (a forms set without it refuses it at load); the
    /// pointwise and one-word-row ones are not.
    #[test]
    fn general_patches_need_their_forms_bit() {
        use crate::nn::blob::Model;
        use crate::nn::ops::{check_in, forms_of, ALL_OPS, FORM_DIRECT_PATCHES};
        // Cases of each kind the fused kernel takes (the forms checks run for them).
        let mut fused = [0; 2];
        // (kh, kw, c_in, general)
        for (kh, kw, cin, general) in [
            (1, 1, 8, false),
            (5, 4, 1, false),
            (3, 2, 2, false),
            (3, 3, 4, true),
            (3, 4, 2, true),
            (2, 2, 1, true),
        ] {
            let shape = Shape {
                batch: 1,
                h: 7,
                w: 6,
                cin,
                cout: 8,
                kh,
                kw,
                stride: (1, 1),
                dilation: (1, 1),
                same: true,
            };
            let g = conv_graph_of(false, &shape);
            let l = lower(&g, Packing::CortexM4).unwrap();
            let blob = write_blob(&l, &plan(&l), WriteOptions::default()).unwrap();
            Model::validate_for_target(&blob, "cortex-m4-dsp").unwrap();
            let m = Model::validated(&blob, true);
            let op = m.op(0).unwrap();
            let what = format!("{kh}x{kw}x{cin}");
            assert!(super::is_direct_i8(&op), "{what}");
            assert_eq!(super::is_direct_i8_patches(&op), general, "{what}");
            if super::is_direct_i8_portable(&op) {
                continue;
            }
            fused[usize::from(general)] += 1;
            let bits = if general { FORM_DIRECT_PATCHES } else { 0 };
            assert_eq!(forms_of(&m), bits, "{what}");
            let refused = check_in::<ALL_OPS, 0>(&op).unwrap().is_err();
            assert_eq!(refused, general, "{what}");
            assert!(check_in::<ALL_OPS, FORM_DIRECT_PATCHES>(&op)
                .unwrap()
                .is_ok());
        }
        assert!(fused.iter().all(|&n| n > 0), "{fused:?}");
    }
}

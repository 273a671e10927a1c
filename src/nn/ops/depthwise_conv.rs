//! DEPTHWISE_CONV_2D: NHWC depthwise convolution, output channel `c·m + j` = input channel
//! `c` (depth multiplier m ≥ 1) filtered by weight column `c·m + j` of [1, kh, kw, c_out],
//! with strides, dilation, SAME/VALID padding (TFLite's `ComputePaddingHeightWidth`), bias
//! and fused activation. int8 (per-channel or per-tensor weights) is bit-exact with TFLite's
//! `reference_integer_ops::DepthwiseConvPerChannel` (the BUILTIN_REF resolver's int8 kernel):
//! exact i32 sums of `w·(x − z_x)` over the taps inside the image, plus bias, then
//! `MultiplyByQuantizedMultiplier` (double rounding), zero point, clamp. f32 sums the taps
//! in TFLite's `reference_ops::DepthwiseConv` order, then adds the bias and clamps.
//!
//! How it runs. Output rows one at a time (a range of rows is one call), eight pixels of a
//! row per kernel call. Input rows are read where they are when no window crosses the left
//! or right edge (VALID padding), else copied into a ring of `(kh − 1)·dh + 1` padded rows
//! in the scratch (pad pixels left and right; consecutive rows share the pad columns between
//! them, and the pad pixel is the first row's left padding), so every window lies inside its
//! rows and a
//! tap of a group of pixels is a pointer to the first pixel's input channels and a step to
//! the next pixel's. Pad pixels, and for rows above or below the image one pad pixel with
//! step 0, hold the input zero point (int8) or 0.0 (f32): `w·(z_x − z_x)` and `w·0.0` add
//! nothing, as TFLite skips those taps. So int8 sums `w·x` and starts from
//! `bias − z_x·Σw` over all taps (exact i32 arithmetic, the same sums); the kernel
//! (`depthwise_lanes`) goes across channels in vectors. Taps go in chunks of [`MAX_TAPS`]
//! (larger filters keep partial sums in the scratch). A depth multiplier above 1 copies each
//! tap's input pixel expanded to c_out channels into the scratch, one pixel at a time.
//! On x86 with AVX-512 VNNI, int8 rows whose geometry allows it go whole to
//! `depthwise_vnni` instead (four taps per instruction, the filter in registers), from the
//! same padded rows and pad pixel. f32 rows with multiplier 1 (and at most
//! `depthwise_f32::MAX_KH` filter rows) go whole to `depthwise_f32` on every instruction set,
//! from the same padded rows (as wide pixels where `Wide` applies), the filter rows outside the
//! image left out. Not in place, where `depthwise_f32` can pad virtually (filters 3 wide at
//! stride 1 or 2, channels in whole AVX-512 vectors: `depthwise_f32::virtual_pads`), rows
//! read the image itself, columns outside it reading as 0.0 without a ring, and the rows
//! whose filter rows all lie inside the image go in one call (`Dw::inner_rows`); else, for
//! inputs of [`EDGES_MIN_BYTES`] or more, the ring holds
//! only the columns the pixels at the left and right edges read, and the pixels between
//! read the image rows (`Dw::edges`).
//!
//! In place: when the plan gives the output input 0's arena offset (allowed when
//! [`in_place_geom`] holds: output rows never overwrite input rows still to be read), the
//! ring is always used: the input rows under the window are copied into it before the output
//! row over them is written.
//!
//! Threads (`Dw::run_bands`, one per `MIN_MACS_PER_THREAD` multiply-adds): bands of output
//! rows, each with a ring of its own and computed exactly as one thread computes them. In
//! place, the first band writes in place the rows below the first input row another band
//! reads, and the other rows go to a buffer set aside, copied over the input at the end.
//!
//! Blob form. Inputs: x [b, h, w, c_in]; weights in taps pairs (taps padded to even with
//! zeros): int8 `[pair][c_out][2]` i16 (the two taps of a pair interleaved), f32
//! `[pair][2][c_out]`; bias (c_out, required: int8 i32 `bias − z_x·Σ_taps w`, f32 the bias or
//! zeros); int8 also the multipliers and shifts (c_out each). Output: y [b, oh, ow, c_out].
//! One scratch tensor, laid out by [`Layout`]: pad pixel and ring (for padding or in place),
//! expanded taps (multiplier > 1), partial sums (more than [`MAX_TAPS`] taps). Parameters:
//! the `conv::Geom` words, then int8: x zero point, output zero point, clamp min, clamp max;
//! f32: clamp min and max as f32 bits. The Cortex-M4 form of a 3×3 int8 layer (weights an
//! i32 stream holding bias and output stage too, two inputs) is `depthwise_m4`'s.

use core::ops::Range;

use super::conv::Geom;
use super::depthwise_f32 as dwf;
use super::depthwise_lanes::{self as lanes, Elem, Finish, Isa, Job, NP};
use super::depthwise_m4;
use super::depthwise_vnni::{self as vnni, Plan};
use super::{cast, cast_mut, checks, Fail, OpDef, OpMem, Pod, RunError};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage, TensorInfo};
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 4,
    name: "DEPTHWISE_CONV_2D",
    // When the geometry allows it (`in_place_geom`: `lower` clears `LOp::in_place` otherwise
    // and `check` refuses such a plan).
    in_place: true,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

/// The Cortex-M4 form (`depthwise_m4`) in place: its own entry, so that a forms set without
/// [`super::FORM_DW_GENERAL`] links this form's row code alone (and, without
/// [`super::FORM_DW_M4_APART`], its in-place row loop alone).
pub(crate) const M4: OpDef = OpDef {
    check: check_m4,
    run: run_m4::<false>,
    ..DEF
};

/// The Cortex-M4 form with its output apart from its input (either row loop).
pub(crate) const M4_APART: OpDef = OpDef {
    run: run_m4::<true>,
    ..M4
};

/// Filter taps per kernel call (even: the kernel takes them in pairs).
pub(crate) const MAX_TAPS: usize = 32;

const P_GEOM: usize = 0;
// int8
const P_ZA: usize = Geom::WORDS;
const P_ZO: usize = Geom::WORDS + 1;
const P_LO: usize = Geom::WORDS + 2;
const P_HI: usize = Geom::WORDS + 3;
// f32
const P_FLO: usize = Geom::WORDS;
const P_FHI: usize = Geom::WORDS + 1;

/// Read on every run: without the tensor's name.
#[inline(always)]
fn is_float(op: &OpView) -> Result<bool, Error> {
    super::gemm_common::is_float(op)
}

/// Whether the weights are the Cortex-M4 form's stream (an i32 constant, see `depthwise_m4`)
/// rather than the tap pairs (i16 for int8).
pub(crate) fn is_m4(op: &OpView) -> bool {
    op.input(1)
        .and_then(|t| op.model().tensor_unnamed(t))
        .is_some_and(|w| w.dtype == DType::I32)
}

/// Whether `op` is in the Cortex-M4 form, planned not in place.
pub(crate) fn is_m4_apart(op: &OpView) -> bool {
    let info = |i| op.input(i).and_then(|t| op.model().tensor_unnamed(t));
    let y = op.output(0).and_then(|t| op.model().tensor_unnamed(t));
    is_m4(op) && !matches!((info(0), y), (Some(x), Some(y)) if same_bytes(&x, &y))
}

/// kh·kw products per output value.
fn macs(op: &OpView) -> u64 {
    let g = Geom::read(op, P_GEOM);
    // Saturating: a blob read for inspection only has unchecked geometry words.
    super::output_macs(op, (g.kh as u64).saturating_mul(g.kw as u64))
}

/// Input rows the in-place ring holds: the rows under the filter.
fn ring_rows(g: &Geom) -> usize {
    (g.kh - 1) * g.dh + 1
}

/// Pixels of a padded input row: `pl` pad pixels, the image row, pad pixels up to the
/// rightmost column a window reaches, so every window lies inside it.
/// `None` if it overflows (`check` refuses such a geometry).
fn padded_width(g: &Geom) -> Option<usize> {
    let reach = (g.ow.max(1) - 1)
        .checked_mul(g.sw)?
        .checked_add(g.kw.checked_sub(1)?.checked_mul(g.dw)?)?
        .checked_add(1)?;
    Some(g.pl.checked_add(g.iw)?.max(reach))
}

/// Pad pixels between two rows of the ring: the most a window reaches left or right of the
/// image (`None` if it overflows).
fn gap(g: &Geom) -> Option<usize> {
    Some(g.pl.max(padded_width(g)?.checked_sub(g.pl + g.iw)?))
}

/// Whether the output may take input 0's arena bytes: computing the output rows in order
/// with the ring of [`ring_rows`], no output row overwrites an input row that is still to be
/// copied into the ring. Output row (b, oy) ends at element `(b·oh + oy + 1)·ow·c_out`; the
/// first input row not yet in the ring then starts at `(b·ih + L)·iw·c_in` with L the end
/// of the window of row oy (ih after a batch's last row).
pub(crate) fn in_place_geom(g: &Geom) -> bool {
    if g.batch == 0 || g.oh == 0 || g.kh == 0 || g.dh == 0 {
        return false;
    }
    let w = |v: usize| v as i128;
    let (out_row, in_row) = (w(g.ow) * w(g.oc), w(g.iw) * w(g.ic));
    let (out_plane, in_plane) = (w(g.oh) * out_row, w(g.ih) * in_row);
    // The condition is linear in b: the first or the last batch is the worst.
    let b = if out_plane <= in_plane {
        0
    } else {
        w(g.batch) - 1
    };
    (0..g.oh).all(|oy| {
        let loaded = if oy + 1 == g.oh {
            w(g.ih)
        } else {
            (w(oy) * w(g.sh) - w(g.pt) + w(ring_rows(g))).clamp(0, w(g.ih))
        };
        (b * w(g.oh) + w(oy) + 1) * out_row <= (b * w(g.ih) + loaded) * in_row
    })
}

/// Byte ranges of the scratch tensor (each part 16-byte aligned). `esize`: bytes per
/// activation element; partial sums are 4 bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// One pixel of c_out padding values.
    pad: Range<usize>,
    /// The pad pixel and the ring of padded input rows after it (just the pad pixel when
    /// neither in place nor padding needs a ring).
    head: Range<usize>,
    /// Elements from the head's start to the first ring row's image, and from one row's
    /// image to the next's.
    ring_first: usize,
    ring_stride: usize,
    /// Taps expanded to c_out channels (multiplier > 1).
    expand: Range<usize>,
    /// Partial sums of NP pixels (more than MAX_TAPS taps).
    partial: Range<usize>,
}

impl Layout {
    /// The layout a plan allocates and `check` requires (a ring when the geometry may run
    /// in place).
    pub(crate) fn new(g: &Geom, esize: usize) -> Option<Layout> {
        Self::with(g, esize, in_place_geom(g))
    }

    /// The layout of a run (`in_place`: whether it does run in place, which `check` allows
    /// only when [`in_place_geom`] holds): at most [`Layout::new`]'s bytes, without the
    /// ring an image read directly does not use.
    fn with(g: &Geom, esize: usize, in_place: bool) -> Option<Layout> {
        let part = |n: usize| n.checked_mul(esize)?.checked_next_multiple_of(16);
        let pad = part(g.oc)?;
        // Padded rows, needed in place or when some window crosses the left or right edge:
        // each row's image then `gap` pad pixels, which are also the next row's left padding;
        // the first row's left padding is the pad pixel (or as many pad pixels as it needs).
        let pw = padded_width(g)?;
        let stride = g.iw.checked_add(gap(g)?)?.checked_mul(g.ic)?;
        let first = (pad / esize.max(1)).max(gap(g)? * g.ic);
        let head = if pw != g.iw || in_place {
            part(first.checked_add(ring_rows(g).checked_mul(stride)?)?)?
        } else {
            pad
        };
        let taps = g.kh.checked_mul(g.kw)?;
        let expand = if g.oc != g.ic {
            part(taps.min(MAX_TAPS).checked_mul(g.oc)?)?
        } else {
            0
        };
        let partial = if taps > MAX_TAPS {
            (NP * 4).checked_mul(g.oc)?.checked_next_multiple_of(16)?
        } else {
            0
        };
        let r1 = head;
        let r2 = r1.checked_add(expand)?;
        let r3 = r2.checked_add(partial)?;
        Some(Layout {
            pad: 0..pad,
            head: 0..head,
            ring_first: first,
            ring_stride: stride,
            expand: r1..r2,
            partial: r2..r3,
        })
    }

    pub(crate) fn bytes(&self) -> usize {
        self.partial.end
    }
}

fn overlaps(a: &TensorInfo, b: &TensorInfo) -> bool {
    a.storage == Storage::Arena
        && b.storage == Storage::Arena
        && a.bytes > 0
        && b.bytes > 0
        && a.offset < b.offset + b.bytes
        && b.offset < a.offset + a.bytes
}

/// Whether output 0 has input 0's arena offset (the planner put them in place).
fn same_bytes(x: &TensorInfo, y: &TensorInfo) -> bool {
    x.storage == Storage::Arena && y.storage == Storage::Arena && x.offset == y.offset
}

fn check(op: &OpView) -> Result<(), Error> {
    let float = is_float(op)?;
    let (g, w) = check_shared(op, float, if float { 3 } else { 5 })?;
    let b = checks::input(op, 2)?;
    let (tw, tb) = if float {
        (DType::F32, DType::F32)
    } else {
        (DType::I16, DType::I32)
    };
    checks::dtype(op, &w, tw)?;
    checks::dtype(op, &b, tb)?;
    let pairs = (g.kh * g.kw).div_ceil(2);
    if Some(w.elems()) != pairs.checked_mul(2 * g.oc) {
        return Err(op.error("the weights have the wrong size"));
    }
    if b.elems() != g.oc {
        return Err(op.error("the bias has the wrong length"));
    }
    if !float {
        let mults = checks::input(op, 3)?;
        let shifts = checks::input(op, 4)?;
        checks::dtype(op, &mults, DType::I32)?;
        checks::dtype(op, &shifts, DType::I32)?;
        if mults.elems() != g.oc || shifts.elems() != g.oc {
            return Err(op.error("multipliers and shifts do not match the output channels"));
        }
        if shifts.storage != Storage::Constant {
            return Err(op.error("the shifts are not a constant"));
        }
        let sh = cast::<i32>(op.model().constant(op.input(4).unwrap_or(0)));
        if sh.len() != g.oc || sh.iter().any(|s| !(-31..=30).contains(s)) {
            return Err(op.error("a requantization shift is out of range"));
        }
    }
    Ok(())
}

/// `check` of the Cortex-M4 form (`depthwise_m4`): 3×3, multiplier 1, whole groups of four
/// channels, the stream a constant of their size.
fn check_m4(op: &OpView) -> Result<(), Error> {
    let (g, w) = check_shared(op, false, 2)?;
    let groups = g.oc / 4;
    if (g.kh, g.kw, g.oc % 4, g.oc) != (3, 3, 0, g.ic)
        || w.storage != Storage::Constant
        || Some(w.elems()) != groups.checked_mul(depthwise_m4::GROUP_WORDS)
    {
        return Err(op.error("the Cortex-M4 form's weights do not match its geometry"));
    }
    Ok(())
}

/// What both forms check (`inputs`: their count): the counts, the geometry, the input and
/// output (`float`: f32, else int8 with the zero points and clamp in range), the scratch
/// and the plan's use of the arena. Returns the geometry and the weights' tensor.
#[inline(never)]
fn check_shared<'a>(
    op: &OpView<'a>,
    float: bool,
    inputs: usize,
) -> Result<(Geom, TensorInfo<'a>), Error> {
    let params = Geom::WORDS + if float { 2 } else { 4 };
    checks::counts(op, inputs, 1, 1, params)?;
    let g = Geom::read(op, P_GEOM);
    g.check(op, P_GEOM)?;
    if g.ic == 0 || g.oc % g.ic != 0 || g.oc < g.ic {
        return Err(op.error("output channels are not a multiple of the input channels"));
    }
    let x = checks::input(op, 0)?;
    let w = checks::input(op, 1)?;
    let y = checks::output(op, 0)?;
    let s = checks::temp(op, 0)?;
    let ty = if float { DType::F32 } else { DType::I8 };
    checks::dtype(op, &x, ty)?;
    checks::dtype(op, &y, ty)?;
    if !float {
        let i8_range = -128..=127;
        if !i8_range.contains(&op.param(P_ZA)) || !i8_range.contains(&op.param(P_ZO)) {
            return Err(op.error("a zero point is out of the int8 range"));
        }
        if op.param(P_LO).max(-128) > op.param(P_HI).min(127) {
            return Err(op.error("the output clamp is empty"));
        }
    }
    let lay = Layout::new(&g, ty.size()).ok_or_else(|| op.error("sizes overflow"))?;
    if s.bytes < lay.bytes() {
        return Err(op.error("its scratch buffer is too small"));
    }
    // The runtime's load check lets in-place operators write at input 0's offset: only the
    // output may, and only when the geometry allows it.
    if overlaps(&s, &x) {
        return Err(op.error("its scratch buffer overlaps its input"));
    }
    if same_bytes(&x, &y) && !in_place_geom(&g) {
        return Err(op.error("this geometry cannot run in place"));
    }
    Ok((g, w))
}

/// An element type the operator runs on, with what `run` reads for it.
trait DwElem:
    Elem<A: Pod + Default + Send + Sync, W: Pod + Default + Sync> + Pod + Default + Send + Sync
{
    /// The pad pixel's value: what a tap outside the image reads.
    fn pad_value(op: &OpView) -> Self;
    /// Whether [`DwElem::whole_row`] reads the pixels inside [`Edges`] from the image.
    const EDGES: bool = false;
    /// Weight `h` (0 or 1) of pair `p` and channel `c` in the kernel's layout for `oc`
    /// channels (see the module docs): its index.
    fn w_at(p: usize, h: usize, c: usize, oc: usize) -> usize;
    /// Prepares `plan` when the whole-row kernel (`depthwise_vnni`) runs this call's rows.
    fn row_plan(_: &Dw<Self>, _: Option<&Wide<Self>>, _: &mut Plan) -> bool {
        false
    }
    /// The value in the form the ring holds when it is flipped (see [`Scratch::flip`]).
    fn flip(self) -> Self {
        self
    }
    /// Copies `src` into `dst` (equal lengths), flipped when `flip` (the call's `isa`).
    fn copy_ring(dst: &mut [Self], src: &[Self], flip: bool, isa: Isa) {
        let _ = (flip, isa);
        depthwise_m4::copy(dst, src);
    }
    /// That kernel's output row (see `Plan::row`): the pixels done.
    fn plan_row(_: &Plan, _: &[(&[Self], usize)], _: &Finish, _: &mut [Self]) -> usize {
        0
    }
    /// Output row `oy` of `dw` by the whole-row f32 kernel (`depthwise_f32`), as wide
    /// pixels as far as `wide` allows, the pixels inside [`Edges`] from `image` when the
    /// ring holds only the edge columns (false: it does not apply).
    fn whole_row(
        _dw: &Dw<Self>,
        _src: Src<Self>,
        _oy: usize,
        _out: &mut [Self],
        _wide: Option<&Wide<Self>>,
        _image: Option<&[Self]>,
    ) -> Result<bool, Error> {
        Ok(false)
    }
    /// Every output row of one batch's image `plane` into `out`, read from the image with
    /// virtual padding (`depthwise_f32::virtual_pads`; false: it does not apply).
    /// `None`: a tensor is smaller than its geometry.
    fn image_rows(_dw: &Dw<Self>, _plane: &[Self], _out: &mut [Self]) -> Option<bool> {
        Some(false)
    }
}

impl DwElem for i8 {
    fn pad_value(op: &OpView) -> i8 {
        op.param(P_ZA) as i8
    }
    fn w_at(p: usize, h: usize, c: usize, oc: usize) -> usize {
        (p * oc + c) * 2 + h
    }
    fn row_plan(dw: &Dw<i8>, wide: Option<&Wide<i8>>, plan: &mut Plan) -> bool {
        let per_channel = |v: *const i32| {
            if v.is_null() {
                &[][..]
            } else {
                // SAFETY: `fin`'s non-null arrays hold c_out values (the `Job` contract,
                // checked at load).
                unsafe { core::slice::from_raw_parts(v, dw.g.oc) }
            }
        };
        let stage = (per_channel(dw.fin.mults), per_channel(dw.fin.shifts));
        match (wide, dw.init) {
            (Some(wd), Some(_)) => {
                let stage = (&wd.mults[..], &wd.shifts[..]);
                plan.prepare(dw.isa, &dw.g, wd.r, &wd.w, &wd.init, stage)
            }
            (None, Some(init)) => plan.prepare(dw.isa, &dw.g, 1, dw.w, init, stage),
            (_, None) => false,
        }
    }
    fn plan_row(plan: &Plan, rows: &[(&[i8], usize)], fin: &Finish, out: &mut [i8]) -> usize {
        plan.row(rows, fin, out)
    }
    fn flip(self) -> i8 {
        self ^ i8::MIN
    }
    fn copy_ring(dst: &mut [i8], src: &[i8], flip: bool, isa: Isa) {
        if flip {
            vnni::flip_copy(isa, dst, src);
        } else {
            depthwise_m4::copy(dst, src);
        }
    }
}

impl DwElem for f32 {
    fn pad_value(_: &OpView) -> f32 {
        0.0
    }
    const EDGES: bool = true;
    fn w_at(p: usize, h: usize, c: usize, oc: usize) -> usize {
        (p * 2 + h) * oc + c
    }
    fn whole_row(
        dw: &Dw<f32>,
        src: Src<f32>,
        oy: usize,
        out: &mut [f32],
        wide: Option<&Wide<f32>>,
        image: Option<&[f32]>,
    ) -> Result<bool, Error> {
        let g = &dw.g;
        if g.oc != g.ic || g.kh > dwf::MAX_KH {
            return Ok(false);
        }
        // The filter rows inside the image (the others add nothing).
        let mut rows: [(usize, &[f32]); dwf::MAX_KH] = [(0, &[]); dwf::MAX_KH];
        let n = dw.window_rows(src, oy, &mut rows)?;
        let rows = &mut rows[..n];
        let mut row = dw.f32_row();
        // The ring holds the edge columns only: pixels lo..hi from the image rows, the
        // others from the ring's (`Dw::edges`; no wide pixels then).
        if let Some(plane) = image {
            edge_row(dw, plane, oy, rows, &row, out)?;
            return Ok(true);
        }
        // Wide pixels first (stride 1: a wide pixel's channels are r pixels' in a row),
        // then the pixels left over with the rows moved past them.
        let mut done = 0;
        if let Some(wd) = wide {
            let n = g.ow / wd.r;
            let lanes = wd.r * g.oc;
            let o = out.get_mut(..n * lanes).ok_or_else(Dw::<f32>::bad)?;
            let wide_row = dwf::Row {
                rows: &*rows,
                step: lanes,
                oc: lanes,
                w: &wd.w[..],
                bias: &wd.bias[..],
                ..row
            };
            if !dwf::run(dw.isa, &wide_row, o) {
                return Err(Dw::<f32>::bad());
            }
            done = n * wd.r;
            for (_, x) in rows.iter_mut() {
                *x = x.get(done * g.sw * g.ic..).ok_or_else(Dw::<f32>::bad)?;
            }
        }
        row.rows = &*rows;
        let o = out.get_mut(done * g.oc..).ok_or_else(Dw::<f32>::bad)?;
        if !dwf::run(dw.isa, &row, o) {
            return Err(Dw::<f32>::bad());
        }
        Ok(true)
    }
    fn image_rows(dw: &Dw<f32>, plane: &[f32], out: &mut [f32]) -> Option<bool> {
        let g = &dw.g;
        let row = dw.f32_row();
        if g.oc != g.ic
            || g.kh > dwf::MAX_KH
            || !dwf::virtual_pads(dw.isa, row.kw, row.col, row.step, row.oc)
        {
            return Some(false);
        }
        let (len, out_row) = (g.iw * g.ic, g.ow * g.oc);
        // The rows whose filter rows all lie inside the image in one call (their input
        // rows sh image rows apart), the others (their filter rows inside the image only)
        // one at a time.
        let inner = dw.inner_rows();
        let mut oy = 0;
        while oy < g.oh {
            let count = if inner.contains(&oy) {
                inner.end - oy
            } else {
                1
            };
            let mut rows: [(usize, &[f32]); dwf::MAX_KH] = [(0, &[]); dwf::MAX_KH];
            let mut n = 0;
            for fy in 0..g.kh {
                let Some(iy) = usize::try_from(g.in_y(oy, fy)).ok().filter(|&iy| iy < g.ih) else {
                    continue;
                };
                rows[n] = (fy, plane.get(iy * len..)?);
                n += 1;
            }
            let o = out.get_mut(oy * out_row..(oy + count) * out_row)?;
            let r = dwf::Row {
                rows: &rows[..n],
                count,
                pitch: g.sh * len,
                cols: g.iw,
                lpad: g.pl,
                ..row
            };
            if !dwf::run(dw.isa, &r, o) {
                return None;
            }
            oy += count;
        }
        Some(true)
    }
}

impl Dw<'_, f32> {
    /// This call's row for `depthwise_f32`, its filter rows left empty: one output row,
    /// padded rows.
    fn f32_row(&self) -> dwf::Row<'_> {
        let g = &self.g;
        dwf::Row {
            rows: &[],
            kw: g.kw,
            col: g.dw * g.ic,
            step: g.sw * g.ic,
            oc: g.oc,
            w: self.w,
            bias: self.bias,
            lo: self.fin.flo,
            hi: self.fin.fhi,
            count: 1,
            pitch: 0,
            cols: 0,
            lpad: 0,
        }
    }
}

/// Output row `oy` of `dw` when the ring holds only the edge columns ([`Dw::edges`]):
/// pixels lo..hi read the image rows of `plane` (the batch's), the others the ring's
/// `rows` (the window's filter rows inside the image, as `window_rows` gives them). Out of
/// line: the rows of small layers do not carry its code.
#[inline(never)]
fn edge_row(
    dw: &Dw<f32>,
    plane: &[f32],
    oy: usize,
    rows: &mut [(usize, &[f32])],
    row: &dwf::Row,
    out: &mut [f32],
) -> Result<(), Error> {
    let g = &dw.g;
    let e = dw.edges().ok_or_else(Dw::<f32>::bad)?;
    let (len, step) = (g.iw * g.ic, g.sw * g.ic);
    let mut inner = [(0, &[][..]); dwf::MAX_KH];
    for ((fy, x), r) in inner.iter_mut().zip(rows.iter()) {
        // Rows from `window_rows` are inside the image.
        let iy = g.in_y(oy, r.0) as usize;
        let at = iy * len + (e.lo * g.sw - g.pl) * g.ic;
        *fy = r.0;
        *x = plane.get(at..(iy + 1) * len).ok_or_else(Dw::<f32>::bad)?;
    }
    let (left, rest) = out.split_at_mut(e.lo * g.oc);
    let (mid, right) = rest.split_at_mut((e.hi - e.lo) * g.oc);
    let n = rows.len();
    let ok = dwf::run(dw.isa, &dwf::Row { rows, ..*row }, left)
        && dwf::run(
            dw.isa,
            &dwf::Row {
                rows: &inner[..n],
                ..*row
            },
            mid,
        );
    for (_, x) in rows.iter_mut() {
        *x = x.get(e.hi * step..).ok_or_else(Dw::<f32>::bad)?;
    }
    if !ok || !dwf::run(dw.isa, &dwf::Row { rows, ..*row }, right) {
        return Err(Dw::<f32>::bad());
    }
    Ok(())
}

/// Input bytes (a batch) from which f32 rows read the pixels inside [`Edges`] from the
/// image.
const EDGES_MIN_BYTES: usize = 256 << 10;

/// See [`Dw::edges`]: output pixels `lo..hi` read the image; the ring holds image columns
/// `..cl` and `cr..` of its rows.
#[derive(Clone, Copy)]
struct Edges {
    lo: usize,
    hi: usize,
    cl: usize,
    cr: usize,
}

/// Channels of a wide pixel, at most (the widest vector of any instruction set).
const WIDE: usize = 16;

/// A row of fewer channels than a vector, seen as wide pixels: with stride 1 and
/// multiplier 1, `r` consecutive output pixels are `r·oc` consecutive values whose tap `t`
/// reads `r·oc` consecutive input values (`r` pixels from tap t's first). So `r` pixels
/// are one pixel of `r·oc` channels whose per-channel constants (weights, bias,
/// multipliers, shifts) repeat every `oc`: the kernel then fills whole vectors. The
/// repeated constants are built per call (a few hundred values).
struct Wide<E: DwElem> {
    r: usize,
    w: [E::W; MAX_TAPS * WIDE],
    init: [E::A; WIDE],
    mults: [i32; WIDE],
    shifts: [i32; WIDE],
    bias: [f32; WIDE],
    pad: [E; WIDE],
}

/// The scratch tensor in its parts.
struct Scratch<'s, X, A> {
    /// The pad pixel (`pad` values) and the ring ([`Layout::head`]).
    head: &'s mut [X],
    pad: usize,
    first: usize,
    stride: usize,
    expand: &'s mut [X],
    partial: &'s mut [A],
    /// int8: the pad pixel and the ring hold every input byte XORed with 0x80 (x + 128 as
    /// u8: the form `depthwise_vnni` multiplies), for a plan that does every row's pixels.
    flip: bool,
}

/// The scratch's parts a kernel call reads or writes, beside the ring (shared).
struct Rest<'s, X, A> {
    pad: &'s [X],
    expand: &'s mut [X],
    partial: &'s mut [A],
    /// The batch's image when the ring holds only the columns of [`Edges`] (f32): the
    /// other pixels read their rows there.
    image: Option<&'s [X]>,
}

impl<'s, X: DwElem, A: Pod> Scratch<'s, X, A> {
    /// Splits `bytes` as `lay` says and fills the pad pixel and the ring with `pad`
    /// (flipped with `flip`).
    fn new<R>(
        bytes: &'s mut [u8],
        lay: &Layout,
        pad: X,
        flip: bool,
        bad: impl Fn() -> R,
    ) -> Result<Self, R> {
        let bytes = bytes.get_mut(..lay.bytes()).ok_or_else(&bad)?;
        let (head, rest) = bytes.split_at_mut(lay.head.end);
        let (expand, partial) = rest.split_at_mut(lay.expand.len());
        // The ring's padding columns keep this value; its image columns are copied in.
        let head = cast_mut::<X>(head);
        head.fill(if flip { pad.flip() } else { pad });
        Ok(Scratch {
            head,
            pad: lay.pad.len() / core::mem::size_of::<X>().max(1),
            first: lay.ring_first,
            stride: lay.ring_stride,
            expand: cast_mut::<X>(expand),
            partial: cast_mut::<A>(partial),
            flip,
        })
    }
}

/// Where the input rows of a batch come from: the image, or the ring (row iy's image in
/// slot iy mod ring_rows, at `first + slot·stride`).
#[derive(Clone, Copy)]
enum Src<'a, X> {
    Image(&'a [X]),
    Ring {
        head: &'a [X],
        first: usize,
        stride: usize,
    },
}

/// One operator call: the geometry, the weights and the output stage.
struct Dw<'a, E: Elem> {
    g: Geom,
    w: &'a [E::W],
    /// int8: the sums start at the bias (c_out values); f32: at 0 (`None`).
    init: Option<&'a [E::A]>,
    fin: Finish,
    isa: Isa,
    /// f32: the bias (c_out values; `fin.bias` points to it). int8: empty.
    bias: &'a [f32],
}

impl<E: DwElem> Dw<'_, E> {
    /// The wide-pixel constants of this call (`None` when the geometry or the instruction
    /// set does not call for them; see [`Wide`]).
    fn wide(&self, pad: E) -> Option<Wide<E>> {
        let g = &self.g;
        let (taps, oc, lanes) = (g.kh * g.kw, g.oc, self.isa.lanes());
        if g.oc != g.ic || g.sw != 1 || taps > MAX_TAPS || oc == 0 || oc >= lanes {
            return None;
        }
        if lanes % oc != 0 || lanes > WIDE || g.ow < lanes / oc {
            return None;
        }
        let (r, ocw, pairs) = (lanes / oc, lanes, taps.div_ceil(2));
        let mut wd = Wide {
            r,
            w: [E::W::default(); MAX_TAPS * WIDE],
            init: [E::A::default(); WIDE],
            mults: [0; WIDE],
            shifts: [0; WIDE],
            bias: [0.0; WIDE],
            pad: [pad; WIDE],
        };
        for p in 0..pairs {
            for h in 0..2 {
                for c in 0..ocw {
                    wd.w[E::w_at(p, h, c, ocw)] = *self.w.get(E::w_at(p, h, c % oc, oc))?;
                }
            }
        }
        let fin = &self.fin;
        for c in 0..ocw {
            if let Some(b) = self.init {
                wd.init[c] = *b.get(c % oc)?;
            }
            // SAFETY: `fin`'s non-null arrays hold oc values (the `Job` contract, checked
            // at load).
            unsafe {
                if !fin.mults.is_null() {
                    wd.mults[c] = *fin.mults.add(c % oc);
                    wd.shifts[c] = *fin.shifts.add(c % oc);
                }
                if !fin.bias.is_null() {
                    wd.bias[c] = *fin.bias.add(c % oc);
                }
            }
        }
        Some(wd)
    }

    fn bad() -> Error {
        Self::bad_as()
    }

    /// [`Self::bad`] as a driver's error type.
    fn bad_as<R: RunError>() -> R {
        R::blob("DEPTHWISE_CONV_2D: a tensor is smaller than its geometry")
    }

    /// [`padded_width`] (0 for a geometry `check` refuses).
    fn pw(&self) -> usize {
        padded_width(&self.g).unwrap_or(0)
    }

    /// Input row `iy` (inside the image) of `src`, as a row of the padded width.
    #[inline]
    fn in_row<'s>(&self, src: Src<'s, E>, iy: usize) -> Result<&'s [E], Error> {
        let len = self.pw() * self.g.ic;
        let (buf, at) = match src {
            Src::Image(plane) => (plane, iy * len),
            Src::Ring {
                head,
                first,
                stride,
            } => {
                let slot = iy % ring_rows(&self.g);
                (head, first + slot * stride - self.g.pl * self.g.ic)
            }
        };
        buf.get(at..at + len).ok_or_else(Self::bad)
    }

    /// The filter rows of output row `oy` that lie inside the image, each with its input
    /// row (as [`Self::in_row`]), into `rows`: how many. One ring slot is computed by a
    /// division, the next ones stepped from it (this runs once per output row).
    fn window_rows<'s>(
        &self,
        src: Src<'s, E>,
        oy: usize,
        rows: &mut [(usize, &'s [E])],
    ) -> Result<usize, Error> {
        let g = &self.g;
        let (len, rr) = (self.pw() * g.ic, ring_rows(g));
        let mut n = 0;
        let mut slot: Option<usize> = None;
        for fy in 0..g.kh {
            let iy = g.in_y(oy, fy);
            if iy < 0 || iy >= g.ih as i64 {
                continue;
            }
            let x = match src {
                Src::Image(_) => self.in_row(src, iy as usize)?,
                Src::Ring {
                    head,
                    first,
                    stride,
                } => {
                    // Rows inside the image are consecutive filter rows, dh input rows
                    // apart, and dh < rr when there are two: one subtraction wraps.
                    let s = match slot {
                        None => iy as usize % rr,
                        Some(s) if s + g.dh >= rr => s + g.dh - rr,
                        Some(s) => s + g.dh,
                    };
                    slot = Some(s);
                    let at = (first + s * stride)
                        .checked_sub(g.pl * g.ic)
                        .ok_or_else(Self::bad)?;
                    head.get(at..at + len).ok_or_else(Self::bad)?
                }
            };
            *rows.get_mut(n).ok_or_else(Self::bad)? = (fy, x);
            n += 1;
        }
        Ok(n)
    }

    /// The window's input rows (first, end) of output row `oy`, clipped to the image.
    fn window(&self, oy: usize) -> (usize, usize) {
        let g = &self.g;
        let top = oy as i64 * g.sh as i64 - g.pt as i64;
        let end = top + ring_rows(g) as i64;
        (top.max(0) as usize, end.clamp(0, g.ih as i64) as usize)
    }

    /// Copies input rows `rows` of a batch (`row(iy)` gives one) into their ring slots:
    /// image columns `..cl` and `cr..` of each (`cl` ≥ `cr`: all of them).
    fn fill_ring<'r, R: RunError>(
        &self,
        sc: &mut Scratch<E, E::A>,
        rows: Range<usize>,
        (cl, cr): (usize, usize),
        row: impl Fn(usize) -> Option<&'r [E]>,
    ) -> Result<(), R>
    where
        E: 'r,
    {
        let g = &self.g;
        let (len, rr) = (g.iw * g.ic, ring_rows(g));
        let whole = cl >= cr;
        let (left, right) = (cl.min(g.iw) * g.ic, cr.min(g.iw) * g.ic);
        // Row iy's slot, iy mod rr: one division, then stepped.
        let mut slot = rows.start % rr;
        for iy in rows {
            let at = sc.first + slot * sc.stride;
            slot = if slot + 1 == rr { 0 } else { slot + 1 };
            let dst = sc
                .head
                .get_mut(at..at + len)
                .ok_or_else(Self::bad_as::<R>)?;
            let src = row(iy).ok_or_else(Self::bad_as::<R>)?;
            if whole {
                E::copy_ring(dst, src, sc.flip, self.isa);
                continue;
            }
            E::copy_ring(
                dst.get_mut(..left).ok_or_else(Self::bad_as::<R>)?,
                src.get(..left).ok_or_else(Self::bad_as::<R>)?,
                sc.flip,
                self.isa,
            );
            E::copy_ring(
                dst.get_mut(right..).ok_or_else(Self::bad_as::<R>)?,
                src.get(right..).ok_or_else(Self::bad_as::<R>)?,
                sc.flip,
                self.isa,
            );
        }
        Ok(())
    }

    /// The pixels of an output row whose windows lie inside the image columns, when an f32
    /// row reads them from the image and only the others from the ring (`None`: all from
    /// the ring). Worth it for large inputs only: the ring copy then reads each input row
    /// from a far cache level (or memory) and writes it once more before the kernel reads
    /// it; the kernel reading the image itself reads it once (MobileNet-v2's stride-2 3×3
    /// layer on 112×112×96, alone in a model: 198 → 120 µs on Zen 4). The ring then holds
    /// just the image columns the other pixels read (`cl`, `cr`: see [`Dw::fill_ring`]).
    fn edges(&self) -> Option<Edges> {
        let g = &self.g;
        let bytes = (g.ih.checked_mul(g.iw)?.checked_mul(g.ic)?).checked_mul(size_of::<E>())?;
        if !E::EDGES
            || g.oc != g.ic
            || g.kh > dwf::MAX_KH
            || g.oc < self.isa.lanes()
            || bytes < EDGES_MIN_BYTES
            || g.sw == 0
        {
            return None;
        }
        // Pixels lo..hi: first column ≥ pl, last column (ox·sw + reach) < pl + iw.
        let reach = g.kw.checked_sub(1)? * g.dw;
        let lo = g.pl.div_ceil(g.sw).min(g.ow);
        let hi = ((g.iw + g.pl).checked_sub(reach + 1)? / g.sw + 1).min(g.ow);
        if hi <= lo {
            return None;
        }
        let cl = match lo {
            0 => 0,
            _ => ((lo - 1) * g.sw + reach + 1).saturating_sub(g.pl).min(g.iw),
        };
        let cr = if hi < g.ow {
            (hi * g.sw - g.pl).min(g.iw)
        } else {
            g.iw
        };
        Some(Edges { lo, hi, cl, cr })
    }

    /// Output rows `rows` (as b·oh + oy) of input `x` into `out` (from row `rows.start`).
    /// The rows are read in place when no pixel's window crosses the left or right edge,
    /// else through the ring of padded rows.
    fn rows<R: RunError>(
        &self,
        x: &[E],
        out: &mut [E],
        rows: Range<usize>,
        sc: &mut Scratch<E, E::A>,
        row_fn: &mut impl FnMut(Src<E>, usize, &mut [E], &mut Rest<E, E::A>) -> Result<(), R>,
    ) -> Result<(), R> {
        let g = &self.g;
        let (in_row, in_plane, out_row) = (g.iw * g.ic, g.ih * g.iw * g.ic, g.ow * g.oc);
        let direct = self.pw() == g.iw;
        let edges = self.edges();
        let mut loaded: Option<(usize, usize)> = None; // (batch, rows end)
        let mut imaged = None; // the batch whose rows `E::image_rows` did
        for r in rows.clone() {
            let (b, oy) = (r / g.oh, r % g.oh);
            if imaged == Some(b) {
                continue;
            }
            let plane = x
                .get(b * in_plane..(b + 1) * in_plane)
                .ok_or_else(Self::bad_as::<R>)?;
            // A whole batch from the image, its padding virtual (no ring).
            if !direct && oy == 0 && r + g.oh <= rows.end {
                let at = (r - rows.start) * out_row;
                let o = out
                    .get_mut(at..at + g.oh * out_row)
                    .ok_or_else(Self::bad_as::<R>)?;
                if E::image_rows(self, plane, o).ok_or_else(Self::bad_as::<R>)? {
                    imaged = Some(b);
                    continue;
                }
            }
            let at = (r - rows.start) * out_row;
            let o = out
                .get_mut(at..at + out_row)
                .ok_or_else(Self::bad_as::<R>)?;
            if direct {
                let (_, mut rest) = split_ring(sc);
                row_fn(Src::Image(plane), oy, o, &mut rest)?;
                continue;
            }
            let (first, end) = self.window(oy);
            let done = loaded.filter(|l| l.0 == b).map_or(0, |l| l.1);
            let row = |iy: usize| plane.get(iy * in_row..(iy + 1) * in_row);
            let cols = edges.as_ref().map_or((g.iw, g.iw), |e| (e.cl, e.cr));
            self.fill_ring::<R>(sc, done.max(first)..end, cols, row)?;
            loaded = Some((b, done.max(end)));
            let (ring, mut rest) = split_ring(sc);
            if edges.is_some() {
                rest.image = Some(plane);
            }
            row_fn(ring, oy, o, &mut rest)?;
        }
        Ok(())
    }

    /// The output rows whose filter rows all lie inside the image (an empty range when
    /// none do).
    fn inner_rows(&self) -> Range<usize> {
        let g = &self.g;
        let (sh, pt, oh) = (g.sh.max(1) as i64, g.pt as i64, g.oh as i64);
        // in_y(oy, 0) ≥ 0 and in_y(oy, kh − 1) ≤ ih − 1.
        let lo = ((pt + sh - 1) / sh).min(oh);
        let top_max = g.ih as i64 - 1 - (g.kh as i64 - 1) * g.dh as i64 + pt;
        let hi = if top_max < 0 { 0 } else { top_max / sh + 1 };
        lo as usize..hi.clamp(lo, oh) as usize
    }

    /// Output rows `rows` (as b·oh + oy, from the first row of a batch or any row after
    /// rows done in place before), in place as `io` says, through the ring.
    fn in_place<R: RunError>(
        &self,
        io: &mut Io<E>,
        rows: Range<usize>,
        sc: &mut Scratch<E, E::A>,
        row_fn: &mut impl FnMut(Src<E>, usize, &mut [E], &mut Rest<E, E::A>) -> Result<(), R>,
    ) -> Result<(), R> {
        let g = &self.g;
        let (in_row, out_row) = (g.iw * g.ic, g.ow * g.oc);
        let mut loaded: Option<(usize, usize)> = None; // (batch, rows end)
        for r in rows {
            let (b, oy) = (r / g.oh, r % g.oh);
            // Copy the window's rows not in the ring yet (they are intact: in_place_geom, and
            // `Io` for a band).
            let (first, end) = self.window(oy);
            let done = loaded.filter(|l| l.0 == b).map_or(0, |l| l.1);
            let base = b * g.ih * in_row;
            let row = |iy: usize| io.input(base + iy * in_row, in_row);
            self.fill_ring::<R>(sc, done.max(first)..end, (g.iw, g.iw), row)?;
            loaded = Some((b, done.max(end)));
            let o = io.output(r, out_row).ok_or_else(Self::bad_as::<R>)?;
            let (ring, mut rest) = split_ring(sc);
            row_fn(ring, oy, o, &mut rest)?;
        }
        Ok(())
    }

    /// Output row `oy` of the batch whose rows `src` gives, into `out` (ow·c_out values):
    /// by the whole-row kernel with `plan`, else as wide pixels as far as `wide` allows; the
    /// rest as they are.
    fn row(
        &self,
        src: Src<E>,
        oy: usize,
        out: &mut [E],
        sc: &mut Rest<E, E::A>,
        wide: Option<&Wide<E>>,
        plan: Option<&Plan>,
    ) -> Result<(), Error> {
        if E::whole_row(self, src, oy, out, wide, sc.image)? {
            return Ok(());
        }
        let g = &self.g;
        let mut ox = 0;
        if let Some(plan) = plan {
            ox = self.plan_row(plan, src, oy, out, sc, wide)?;
            if plan.flipped() && ox < g.ow {
                // The other kernels do not read the flipped form (the plan's setup sees to
                // it that this does not happen).
                return Err(Self::bad());
            }
        }
        if let (0, Some(wd)) = (ox, wide) {
            let n = g.ow / wd.r;
            let o = out.get_mut(..n * wd.r * g.oc).ok_or_else(Self::bad)?;
            self.pixels(src, oy, 0, n, o, sc, Some(wd))?;
            ox = n * wd.r;
        }
        // Every pixel's window lies inside the padded row: the whole row in one job (the
        // kernel goes NP pixels at a time), or NP pixels per job when the taps take several
        // chunks (the partial sums hold NP pixels); a multiplier above 1 expands one pixel
        // at a time.
        let most = match (g.oc == g.ic, g.kh * g.kw <= MAX_TAPS) {
            (true, true) => g.ow,
            (true, false) => NP,
            (false, _) => 1,
        };
        while ox < g.ow {
            let n = (g.ow - ox).min(most);
            let o = out
                .get_mut(ox * g.oc..(ox + n) * g.oc)
                .ok_or_else(Self::bad)?;
            self.pixels(src, oy, ox, n, o, sc, None)?;
            ox += n;
        }
        Ok(())
    }

    /// Output row `oy` by the whole-row kernel (`depthwise_vnni`), as wide pixels with
    /// `wide`: its filter rows are padded input rows, or the pad pixel outside the image.
    /// Returns the pixels done.
    fn plan_row(
        &self,
        plan: &Plan,
        src: Src<E>,
        oy: usize,
        out: &mut [E],
        sc: &Rest<E, E::A>,
        wide: Option<&Wide<E>>,
    ) -> Result<usize, Error> {
        let g = &self.g;
        let (pad, fin) = match wide {
            Some(w) => {
                let fin = Finish {
                    mults: w.mults.as_ptr(),
                    shifts: w.shifts.as_ptr(),
                    ..self.fin
                };
                (&w.pad[..], fin)
            }
            None => (sc.pad, self.fin),
        };
        let mut rows = [(pad, 0usize); vnni::MAX_KH];
        let rows = rows.get_mut(..g.kh).ok_or_else(Self::bad)?;
        for (fy, r) in rows.iter_mut().enumerate() {
            let iy = g.in_y(oy, fy);
            if iy >= 0 && iy < g.ih as i64 {
                *r = (self.in_row(src, iy as usize)?, g.ic);
            }
        }
        Ok(E::plan_row(plan, rows, &fin, out))
    }

    /// `n` output pixels from (oy, ox) (one when the multiplier is above 1; wide pixels of
    /// `wide.r` pixels each with `wide`). Columns are the padded row's: a tap's pixels are
    /// all in it, and each tap's row is inside the image or outside (the pad pixel) for all
    /// of them.
    #[allow(clippy::too_many_arguments)]
    fn pixels(
        &self,
        src: Src<E>,
        oy: usize,
        ox: usize,
        n: usize,
        out: &mut [E],
        sc: &mut Rest<E, E::A>,
        wide: Option<&Wide<E>>,
    ) -> Result<(), Error> {
        let g = &self.g;
        let taps = g.kh * g.kw;
        let (ic, oc_px) = (g.ic, g.oc);
        let mult = oc_px / ic;
        let r = wide.map_or(1, |w| w.r);
        // Channels of a (wide) pixel, and the step from one to the next.
        let oc = oc_px * r;
        let step = g.sw * ic * r;
        let pad = match wide {
            Some(w) => w.pad.get(..oc),
            None => sc.pad.get(..oc),
        }
        .ok_or_else(Self::bad)?;
        let (w_all, init_all, fin) = match wide {
            Some(w) => {
                let fin = Finish {
                    mults: w.mults.as_ptr(),
                    shifts: w.shifts.as_ptr(),
                    bias: w.bias.as_ptr(),
                    ..self.fin
                };
                (&w.w[..], self.init.map(|_| &w.init[..]), fin)
            }
            None => (self.w, self.init, self.fin),
        };
        let mut t0 = 0;
        while t0 < taps {
            let t1 = taps.min(t0 + MAX_TAPS);
            let mut ptrs = [pad.as_ptr(); MAX_TAPS];
            let mut steps = [0usize; MAX_TAPS];
            // Taps in an image row (its padding included): their input pixels. The taps of
            // one filter row share its input row: looked up once (a ring slot costs a
            // division).
            let mut cur: Option<(usize, &[E])> = None;
            // Tap t's filter row and column, stepped (no division per tap).
            let (mut fy, mut fx) = (t0 / g.kw, t0 % g.kw);
            for t in t0..t1 {
                let (ty, tx) = (fy, fx);
                fx += 1;
                if fx == g.kw {
                    (fy, fx) = (fy + 1, 0);
                }
                let iy = g.in_y(oy, ty);
                if iy < 0 || iy >= g.ih as i64 {
                    continue;
                }
                let row = match cur {
                    Some((y, row)) if y == iy as usize => row,
                    _ => {
                        let row = self.in_row(src, iy as usize)?;
                        cur = Some((iy as usize, row));
                        row
                    }
                };
                let px = ox * g.sw + tx * g.dw; // padded column
                let last = px + (n * r - 1) * g.sw;
                let pixels = row.get(px * ic..last * ic + ic).ok_or_else(Self::bad)?;
                if mult == 1 {
                    ptrs[t - t0] = pixels.as_ptr();
                    steps[t - t0] = step;
                } else {
                    // One pixel (n = 1): its channels repeated `mult` times, in the scratch.
                    let e = sc
                        .expand
                        .get_mut((t - t0) * oc..(t - t0 + 1) * oc)
                        .ok_or_else(Self::bad)?;
                    for (e, &v) in e.chunks_exact_mut(mult).zip(pixels) {
                        e.fill(v);
                    }
                }
            }
            if mult > 1 {
                for t in t0..t1 {
                    let iy = g.in_y(oy, t / g.kw);
                    if iy >= 0 && iy < g.ih as i64 {
                        let e = sc.expand.get((t - t0) * oc..(t - t0 + 1) * oc);
                        ptrs[t - t0] = e.ok_or_else(Self::bad)?.as_ptr();
                    }
                }
            }
            let pairs = (t1 - t0).div_ceil(2);
            let w = w_all
                .get(t0 * oc..(t0 + 2 * pairs) * oc)
                .ok_or_else(Self::bad)?;
            let last = t1 == taps;
            let (init, init_stride) = if t0 > 0 {
                let p = sc.partial.get(..n * oc).ok_or_else(Self::bad)?;
                (p.as_ptr(), oc)
            } else {
                match init_all {
                    Some(b) => (b.get(..oc).ok_or_else(Self::bad)?.as_ptr(), 0),
                    None => (core::ptr::null(), 0),
                }
            };
            let partial = if last {
                core::ptr::null_mut()
            } else {
                sc.partial
                    .get_mut(..n * oc)
                    .ok_or_else(Self::bad)?
                    .as_mut_ptr()
            };
            let job = Job {
                taps: &ptrs[..2 * pairs],
                steps: &steps[..2 * pairs],
                pairs,
                n,
                oc,
                w: w.as_ptr(),
                init,
                init_stride,
                last,
                out: out.as_mut_ptr(),
                out_stride: oc,
                partial,
                fin,
            };
            // SAFETY: the `Job` contract (oc here the channels of a wide pixel, r·c_out).
            // Each tap pointer is the pad pixel (oc values, step 0), an expanded pixel (oc
            // values, n = 1) or the start of an input slice checked to hold the n·r pixels'
            // channels, r·ic = oc per (wide) pixel at `step` = oc apart (mult = 1: c_out =
            // ic; r > 1 only with stride 1); the odd chunk's last pair reads the pad pixel
            // with zero weights; `w` holds the chunk's pairs for oc channels; `init` is the
            // bias (oc values, stride 0) or the partial sums of n pixels, written by the
            // previous chunk; `out` holds n·oc values (the caller's slice), `partial` n·oc
            // sums; `fin`'s arrays hold oc values (checked at load, or the wide copies);
            // `isa` was detected on this CPU. Only `out` and `partial` are written, and
            // nothing else refers to them meanwhile.
            unsafe { lanes::run::<E>(self.isa, &job) };
            t0 = t1;
        }
        Ok(())
    }
}

/// Where the in-place loop ([`Dw::in_place`]) of a band of output rows reads its input
/// and writes its output. Input element `at` of the tensor is `lo[at]` below `split`,
/// `hi[at − split]` from it; output row r is written over the input (in `lo`) below row
/// `in_place_end`, else in `aside` from row `aside_first`: rows set aside while other
/// threads may still read the input under them, and copied over it when all are done.
struct Io<'a, E> {
    lo: &'a mut [E],
    hi: &'a [E],
    split: usize,
    in_place_end: usize,
    aside: &'a mut [E],
    aside_first: usize,
}

impl<'a, E> Io<'a, E> {
    /// All of the tensor's buffer, every row in place (one thread).
    fn whole(io: &'a mut [E]) -> Self {
        Io {
            split: io.len(),
            lo: io,
            hi: &[],
            in_place_end: usize::MAX,
            aside: &mut [],
            aside_first: 0,
        }
    }

    /// `len` input elements from `at` (within `lo` or within `hi`).
    fn input(&self, at: usize, len: usize) -> Option<&[E]> {
        match at.checked_sub(self.split) {
            Some(h) => self.hi.get(h..h.checked_add(len)?),
            None => self.lo.get(at..at.checked_add(len)?),
        }
    }

    /// Output row `r` of `len` elements.
    fn output(&mut self, r: usize, len: usize) -> Option<&mut [E]> {
        if r < self.in_place_end {
            return self
                .lo
                .get_mut(r.checked_mul(len)?..(r + 1).checked_mul(len)?);
        }
        let i = r.checked_sub(self.aside_first)?;
        self.aside.get_mut(i * len..(i + 1).checked_mul(len)?)
    }
}

/// Multiply-adds of an f32 depthwise convolution below which one more thread costs more
/// than it saves (a pool dispatch to a spinning worker, the rows set aside in place, and
/// the ring rows both bands copy at their boundary). DS-CNN's 72 K MAC layers split: with
/// their neighbours split too, each core keeps its rows in its cache (DS-CNN f32 on two
/// threads 49.8 µs with 128 K, 45.4 with 32 K; Zen 4). MobileNet-v1 0.25's 41 K layers
/// stay on one thread (16 K: 152 → 158 µs).
#[cfg(feature = "std")]
const MIN_MACS_PER_THREAD: usize = 1 << 15;

/// The same for int8 (DS-CNN's 25×5×64 layers, 72 K MACs, split; see `gemm_common`'s
/// `MIN_MACS_PER_THREAD_I8`).
#[cfg(feature = "std")]
const MIN_MACS_PER_THREAD_I8: usize = 1 << 15;

/// [`Dw::row`] as the bands of [`Dw::run_bands`] call it, from any thread.
#[cfg(feature = "std")]
type BandRowFn<'f, E> =
    dyn Fn(Src<E>, usize, &mut [E], &mut Rest<E, <E as Elem>::A>) -> Result<(), Error> + Sync + 'f;

/// A band's rows of [`Dw::run_bands`] given a scratch.
#[cfg(feature = "std")]
type BandFn<'f, E> = dyn FnMut(&mut Scratch<'_, E, <E as Elem>::A>) -> Result<(), Error> + 'f;

/// The ring (with the pad pixel), shared, and the other parts of the scratch, mutable.
fn split_ring<'r, X, A>(sc: &'r mut Scratch<'_, X, A>) -> (Src<'r, X>, Rest<'r, X, A>) {
    let head: &'r [X] = &*sc.head;
    let ring = Src::Ring {
        head,
        first: sc.first,
        stride: sc.stride,
    };
    let rest = Rest {
        pad: head.get(..sc.pad).unwrap_or(&[]),
        expand: &mut *sc.expand,
        partial: &mut *sc.partial,
        image: None,
    };
    (ring, rest)
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    run_isa(op, mem, Isa::detect())
}

/// Whether the Arm output stage's fast form is exact for every sum (`Finish::fast`): right
/// shifts of 1 to 22 bits, multipliers above −2^31 + 1, and |sum| ≤ |start| + taps·128·128
/// < 2^30 (every product is of an i8 input and an i8 weight).
pub(crate) fn fast_form(init: &[i32], taps: usize, mults: &[i32], shifts: &[i32]) -> bool {
    let most = init.iter().map(|&b| i64::from(b).abs()).max().unwrap_or(0);
    shifts.iter().all(|&s| (-22..=-1).contains(&s))
        && mults.iter().all(|&m| m > i32::MIN + 1)
        && most + taps as i64 * 128 * 128 < 1 << 30
}

fn run_isa(op: &OpView, mem: &mut OpMem, isa: Isa) -> Result<(), Error> {
    let g = Geom::read(op, P_GEOM);
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let w = mem.input(t(1)?)?;
    let no_mults = Finish::clamp_only(op.param(P_LO).max(-128), op.param(P_HI).min(127));
    let bias = mem.input(t(2)?)?;
    // (`F32 &&`: see `conv::run`.)
    if super::F32 && is_float(op)? {
        let bias = cast::<f32>(bias).get(..g.oc).ok_or_else(Dw::<f32>::bad)?;
        let fin = Finish {
            bias: bias.as_ptr(),
            lo: 0,
            hi: 0,
            flo: f32::from_bits(op.param(P_FLO) as u32),
            fhi: f32::from_bits(op.param(P_FHI) as u32),
            ..no_mults
        };
        let dw = Dw::<f32> {
            g,
            w: cast::<f32>(w),
            init: None,
            fin,
            isa,
            bias,
        };
        return dw.run(op, mem);
    }
    let mults = cast::<i32>(mem.input(t(3)?)?);
    let shifts = cast::<i32>(mem.input(t(4)?)?);
    let bias = cast::<i32>(bias);
    let per_channel = |v: &[i32]| Ok::<_, Error>(v.get(..g.oc).ok_or_else(Dw::<i8>::bad)?.as_ptr());
    let fin = Finish {
        bias: core::ptr::null(),
        mults: per_channel(mults)?,
        shifts: per_channel(shifts)?,
        left: shifts.iter().any(|&s| s > 0),
        // Read by the Arm DSP path only: not scanned for on other targets.
        fast: cfg!(all(target_arch = "arm", edgemm_arm_dsp))
            && fast_form(bias, g.kh * g.kw, mults, shifts),
        zo: op.param(P_ZO),
        lo: op.param(P_LO).max(-128),
        hi: op.param(P_HI).min(127),
        flo: 0.0,
        fhi: 0.0,
    };
    let dw = Dw::<i8> {
        g,
        w: cast::<i16>(w),
        init: Some(bias),
        fin,
        isa,
        bias: &[],
    };
    dw.run(op, mem)
}

/// `run` of the Cortex-M4 form (`depthwise_m4`): its own entry in the registry, so a
/// firmware whose depthwise layers all have this form links neither the general kernels
/// nor their row code.
fn run_m4<const APART: bool>(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    // (The error built here, once: see `Fail`.)
    Ok(run_m4_as::<APART>(op, mem)?)
}

fn run_m4_as<const APART: bool>(op: &OpView, mem: &mut OpMem) -> Result<(), Fail> {
    let t = op.input(1).ok_or_else(|| Fail::of(op, "missing input"))?;
    let stream = cast::<i32>(mem.input(t)?);
    // The stream holds the bias and output stage: only the clamp is read here.
    let dw = Dw::<i8> {
        g: Geom::read(op, P_GEOM),
        w: &[],
        init: None,
        fin: Finish::clamp_only(op.param(P_LO).max(-128), op.param(P_HI).min(127)),
        // (Unused by this form.)
        isa: Isa::detect(),
        bias: &[],
    };
    let k = dw.m4_layer(stream);
    dw.each_row::<APART, Fail>(op, mem, false, &mut |src, oy, out, rest| {
        dw.m4_row(&k, src, oy, out, rest.pad)
            .ok_or_else(Dw::<i8>::bad_as)
    })
}

impl Dw<'_, i8> {
    /// The Cortex-M4 form's shape of this layer (stream `w`; `check`: 3×3, multiplier 1).
    fn m4_layer<'w>(&self, w: &'w [i32]) -> depthwise_m4::Layer<'w> {
        let g = &self.g;
        depthwise_m4::Layer {
            w,
            oc: g.oc,
            n: g.ow,
            step: g.sw * g.ic,
            col: g.dw * g.ic,
            lo: self.fin.lo,
            hi: self.fin.hi,
        }
    }

    /// Output row `oy` in the Cortex-M4 form (`k` from [`Self::m4_layer`], `pad` the pad
    /// pixel; `None`: a tensor is smaller than its geometry).
    fn m4_row(
        &self,
        k: &depthwise_m4::Layer,
        src: Src<i8>,
        oy: usize,
        out: &mut [i8],
        pad: &[i8],
    ) -> Option<()> {
        let g = &self.g;
        // The window's rows inside the image, from their padded column 0 (`k.row` checks
        // the bounds): image row iy at `base + slot·stride`, slot iy (the image, whose rows
        // are padded rows when it is read directly: `rows`) or iy mod rr (the ring): one
        // division for the top row, the next rows' slots stepped (dh < rr). For the image
        // rr = isize::MAX: a top row above the image gets a slot off by rr, which the step
        // takes off. (An offset that wraps around is one `k.row` refuses.)
        let (x, base, stride, rr) = match src {
            Src::Image(plane) => (plane, 0, g.iw * g.ic, isize::MAX as usize),
            Src::Ring {
                head,
                first,
                stride,
            } => (head, first.wrapping_sub(g.pl * g.ic), stride, ring_rows(g)),
        };
        let top = (oy * g.sh) as isize - g.pt as isize;
        let mut slot = top.rem_euclid(rr as isize) as usize;
        let mut at = [None; 3];
        for (ky, a) in at.iter_mut().enumerate() {
            let iy = top + (ky * g.dh) as isize;
            if iy >= 0 && iy < g.ih as isize {
                *a = Some(base.wrapping_add(slot * stride));
            }
            slot += g.dh;
            if slot >= rr {
                slot -= rr;
            }
        }
        k.row(x, at, pad, out)
    }
}

impl<E: DwElem> Dw<'_, E> {
    /// Every output row by the general kernels ([`Dw::row`]), on up to `mem.threads()`
    /// threads.
    fn run(&self, op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
        let mut plan = Plan::new();
        let (wide, planned, flip) = self.setup(E::pad_value(op), &mut plan);
        let (wide, plan) = (wide.as_ref(), planned.then_some(&plan));
        let row_fn = |src: Src<E>, oy: usize, out: &mut [E], rest: &mut Rest<E, E::A>| {
            self.row(src, oy, out, rest, wide, plan)
        };
        #[cfg(feature = "std")]
        {
            let threads = self.useful_threads(mem.threads());
            if threads > 1 {
                return self.run_bands(op, mem, flip, threads, &row_fn);
            }
        }
        self.each_row::<true, Error>(op, mem, flip, &mut |src, oy, out, rest| {
            row_fn(src, oy, out, rest)
        })
    }

    /// The threads worth using (at most `threads`): one per [`MIN_MACS_PER_THREAD`]
    /// multiply-adds, and no more than output rows. The same for any input values.
    #[cfg(feature = "std")]
    fn useful_threads(&self, threads: usize) -> usize {
        let g = &self.g;
        let rows = g.batch * g.oh;
        let macs = (rows * g.ow * g.oc).saturating_mul(g.kh * g.kw);
        let floor = if size_of::<E>() == 4 {
            MIN_MACS_PER_THREAD
        } else {
            MIN_MACS_PER_THREAD_I8
        };
        threads.min(macs / floor).min(rows).max(1)
    }

    /// [`Dw::run`] on `threads` threads: the output rows in as many bands, each run with a
    /// scratch (ring) of its own, exactly as one thread runs those rows (so the bytes do not
    /// depend on the thread count). Not in place, each band writes its own rows of the
    /// output. In place, band 0 runs as one thread does from the first row and writes in
    /// place the rows that lie below the first input row a later band reads; every other
    /// row is set aside in a buffer of the caller's (`with_staging`) and copied over the
    /// input once every band is done (the later bands' input stays intact meanwhile).
    #[cfg(feature = "std")]
    fn run_bands(
        &self,
        op: &OpView,
        mem: &mut OpMem,
        flip: bool,
        threads: usize,
        row_fn: &BandRowFn<E>,
    ) -> Result<(), Error> {
        use std::sync::Mutex;
        let g = &self.g;
        let t = |i: Option<usize>| i.ok_or_else(|| op.error("missing tensor"));
        let (x_t, y_t, s_t) = (t(op.input(0))?, t(op.output(0))?, t(op.temp(0))?);
        let in_place = mem.is_in_place(x_t, y_t);
        let lay = Layout::with(g, size_of::<E>(), in_place).ok_or_else(Self::bad)?;
        let (in_row, out_row) = (g.iw * g.ic, g.ow * g.oc);
        let total = g.batch * g.oh;
        let bands = threads;
        let start = |b: usize| total * b / bands;
        let pad = E::pad_value(op);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        // Band `b`'s rows through `f` with a fresh scratch of this thread's.
        let with_scratch = |f: &mut BandFn<E>| {
            let r = crate::scratch::with_workspace(lay.bytes().div_ceil(4), |ws| {
                // SAFETY: with_workspace lends this thread a buffer of at least lay.bytes()
                // bytes (rounded up to f32s), used by nothing else meanwhile.
                let ws = unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, lay.bytes()) };
                let mut sc = Scratch::new(ws, &lay, pad, flip, Self::bad)?;
                f(&mut sc)
            });
            if let Err(e) = r {
                if let Ok(mut slot) = failed.lock() {
                    slot.get_or_insert(e);
                }
            }
        };
        if !in_place {
            let x = cast::<E>(mem.input(x_t)?);
            let (out, _) = mem.output_and_temp(y_t, s_t)?;
            let out = cast_mut::<E>(out)
                .get_mut(..total * out_row)
                .ok_or_else(Self::bad)?;
            let parts = crate::threads::Parts::split(
                out,
                (0..bands).map(|b| (start(b + 1) - start(b)) * out_row),
            );
            let job = |b: usize| {
                let Some(mut y) = parts.lock(b) else { return };
                with_scratch(&mut |sc| {
                    self.rows(x, &mut y, start(b)..start(b + 1), sc, &mut |s, oy, o, r| {
                        row_fn(s, oy, o, r)
                    })
                });
            };
            crate::threads::run(bands, threads, &job);
            return failed.into_inner().ok().flatten().map_or(Ok(()), Err);
        }
        let (io, _) = mem.in_place_and_temp(x_t, y_t, s_t)?;
        let io = cast_mut::<E>(io);
        // The first input element a band after band 0 reads (a row's start), and the rows
        // of band 0 that end at or below it: written in place.
        let r1 = start(1);
        let split = ((r1 / g.oh * g.ih + self.window(r1 % g.oh).0) * in_row).min(io.len());
        let in_place_end = r1.min(split / out_row.max(1));
        let aside_len = (total - in_place_end) * out_row;
        crate::scratch::with_staging(aside_len.saturating_mul(size_of::<E>()).div_ceil(4), |st| {
            // SAFETY: with_staging lends this thread a 64-byte aligned buffer of at least
            // aside_len elements of E (at most 4 bytes each, f32 alignment at most), used by
            // nothing else meanwhile; E is plain data (any bits are a value).
            let aside = unsafe { core::slice::from_raw_parts_mut(st as *mut E, aside_len) };
            let (lo, hi) = io.split_at_mut(split);
            let hi: &[E] = hi;
            let (mut lo, mut rest) = (Some(lo), &mut *aside);
            let mut parts = crate::threads::Parts::new();
            for b in 0..bands {
                let first = start(b).max(in_place_end);
                let (part, r) = rest.split_at_mut((start(b + 1) - first) * out_row);
                rest = r;
                parts.push(Io {
                    lo: lo.take().unwrap_or(&mut []),
                    hi,
                    split,
                    in_place_end: if b == 0 { in_place_end } else { 0 },
                    aside: part,
                    aside_first: first,
                });
            }
            let job = |b: usize| {
                let Some(mut io) = parts.lock(b) else { return };
                with_scratch(&mut |sc| {
                    self.in_place::<Error>(
                        &mut io,
                        start(b)..start(b + 1),
                        sc,
                        &mut |s, oy, o, r| row_fn(s, oy, o, r),
                    )
                });
            };
            crate::threads::run(bands, threads, &job);
            drop(parts);
            if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
                return Err(e);
            }
            // Every band is done reading the input: the rows set aside go over it.
            let at = in_place_end * out_row;
            io.get_mut(at..at + aside_len)
                .ok_or_else(Self::bad)?
                .copy_from_slice(aside);
            Ok(())
        })
    }

    /// The call's wide-pixel constants, whether `plan` was prepared, and whether the ring
    /// holds the input flipped (`Scratch::flip`): when the plan does every pixel of every
    /// row from the ring (a padded row) in its unsigned form.
    fn setup(&self, pad: E, plan: &mut Plan) -> (Option<Wide<E>>, bool, bool) {
        let mut wide = self.wide(pad);
        let planned = E::row_plan(self, wide.as_ref(), plan);
        let flip = planned && self.pw() != self.g.iw && plan.take_flipped(self.g.ow, self.fin.zo);
        if let (true, Some(wd)) = (flip, wide.as_mut()) {
            // The pad pixel the plan reads for a wide pixel's rows outside the image.
            wd.pad = [pad.flip(); WIDE];
        }
        (wide, planned, flip)
    }

    /// Every output row by `row_fn`, in place or not as the plan laid the tensors out (not
    /// in place only with `APART`: else an error, and that loop is not linked).
    fn each_row<const APART: bool, R: RunError>(
        &self,
        op: &OpView,
        mem: &mut OpMem,
        flip: bool,
        row_fn: &mut impl FnMut(Src<E>, usize, &mut [E], &mut Rest<E, E::A>) -> Result<(), R>,
    ) -> Result<(), R> {
        let g = &self.g;
        let x_t = op.input(0).ok_or_else(|| R::of(op, "missing input"))?;
        let y_t = op.output(0).ok_or_else(|| R::of(op, "missing output"))?;
        let s_t = op.temp(0).ok_or_else(|| R::of(op, "missing scratch"))?;
        let info = |t| op.model().tensor_unnamed(t).ok_or_else(Self::bad_as::<R>);
        let in_place = same_bytes(&info(x_t)?, &info(y_t)?);
        // (Not `Layout::new`: `check` proved `in_place_geom` for an in-place plan, so the
        // run does not evaluate it again.)
        let lay =
            Layout::with(g, core::mem::size_of::<E>(), in_place).ok_or_else(Self::bad_as::<R>)?;
        if in_place {
            // In place: the input is read only through the one buffer both share.
            let (io, scratch) = mem.in_place_and_temp(x_t, y_t, s_t)?;
            let mut sc = Scratch::new(scratch, &lay, E::pad_value(op), flip, Self::bad_as::<R>)?;
            let mut io = Io::whole(cast_mut::<E>(io));
            return self.in_place(&mut io, 0..g.batch * g.oh, &mut sc, row_fn);
        }
        if !APART {
            // (A model whose check passed for a forms set without FORM_DW_M4_APART.)
            return Err(Self::bad_as());
        }
        let x = cast::<E>(mem.input(x_t)?);
        let (out, scratch) = mem.output_and_temp(y_t, s_t)?;
        let mut sc = Scratch::new(scratch, &lay, E::pad_value(op), flip, Self::bad_as::<R>)?;
        self.rows(x, cast_mut::<E>(out), 0..g.batch * g.oh, &mut sc, row_fn)
    }
}

/// The weights `[taps][c_out]` in pairs of taps (zeros past the last tap), as the kernel
/// reads them: int8 `[pair][c_out][2]` as i16.
#[cfg(feature = "alloc")]
pub(crate) fn pack_i8(w: &[i8], taps: usize, oc: usize) -> alloc::vec::Vec<i16> {
    let pairs = taps.div_ceil(2);
    let mut out = alloc::vec![0i16; pairs * 2 * oc];
    for t in 0..taps {
        for o in 0..oc {
            out[((t / 2) * oc + o) * 2 + t % 2] = i16::from(w[t * oc + o]);
        }
    }
    out
}

/// f32: `[pair][2][c_out]` (the taps' rows, one zero row past an odd last tap).
#[cfg(feature = "alloc")]
pub(crate) fn pack_f32(w: &[f32], taps: usize, oc: usize) -> alloc::vec::Vec<f32> {
    let mut out = alloc::vec![0f32; taps.div_ceil(2) * 2 * oc];
    out[..taps * oc].copy_from_slice(&w[..taps * oc]);
    out
}

/// The int8 sums' start: `bias − z_x·Σ_taps w` per channel (wrapping i32, as the sums).
#[cfg(feature = "alloc")]
pub(crate) fn fold_bias(
    bias: Option<&[i32]>,
    w: &[i8],
    taps: usize,
    oc: usize,
    za: i32,
) -> alloc::vec::Vec<i32> {
    (0..oc)
        .map(|o| {
            let sum_w: i32 = (0..taps).map(|t| i32::from(w[t * oc + o])).sum();
            bias.map_or(0, |b| b[o])
                .wrapping_sub(za.wrapping_mul(sum_w))
        })
        .collect()
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::{
        depthwise_m4, dwf, fold_bias, in_place_geom, pack_f32, pack_i8, Geom, Isa, Layout,
    };
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::ops::conv::same_or_valid;
    use crate::nn::ops::gemm_common::lower_requant;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::{activation_range_f, Lowering, Packing};

    fn le<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().unwrap_or([0; N])))
            .collect()
    }

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let gr = l.graph;
        let err = |r| gr.node_error(node, r);
        let (padding, sw, sh, dm, act, dw, dh) = match &gr.nodes[node].options {
            OpOptions::DepthwiseConv2d {
                padding,
                stride_w,
                stride_h,
                depth_multiplier,
                activation,
                dilation_w_factor,
                dilation_h_factor,
            } => (
                *padding,
                *stride_w,
                *stride_h,
                *depth_multiplier,
                *activation,
                *dilation_w_factor,
                *dilation_h_factor,
            ),
            _ => return Err(err("DEPTHWISE_CONV_2D without its options")),
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
        let [one, kh, kw, oc] = four(&w.shape, "the weights are not 4-D")?;
        let [yb, yh, yw, yc] = four(&y.shape, "the output is not 4-D")?;
        // TFLite takes the multiplier from the shapes (c_out / c_in); the option must agree
        // when it is set.
        if one != 1 || ic == 0 || oc % ic != 0 || oc < ic || (dm > 0 && oc != ic * dm as usize) {
            return Err(err(
                "weights that are not [1, kh, kw, c_in·multiplier] are not supported",
            ));
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
        let Some(w_data) = w.data.as_deref() else {
            return Err(err("non-constant weights are not supported"));
        };
        let bias = gr.nodes[node].inputs.get(2).copied().flatten();
        let float = x.dtype == DType::F32;
        let (want, want_b) = if float {
            (DType::F32, DType::F32)
        } else {
            (DType::I8, DType::I32)
        };
        if x.dtype != want || w.dtype != want || y.dtype != want {
            return Err(err(
                "only int8 or f32 input, weights and output (all the same) are supported",
            ));
        }
        let taps = kh * kw;
        if w_data.len() != taps * oc * want.size() {
            return Err(err("the weights have the wrong size"));
        }
        let bias_data = match bias {
            Some(bt) => {
                let bt = &gr.tensors[bt];
                if bt.dtype != want_b {
                    return Err(err("this bias type is not supported"));
                }
                let data = bt
                    .data
                    .as_deref()
                    .ok_or_else(|| err("non-constant bias is not supported"))?;
                if bt.elems() != oc || data.len() != oc * 4 {
                    return Err(err("the bias does not match the output channels"));
                }
                Some(data)
            }
            None => None,
        };
        let y_name = y.name.clone();
        let mut params = words.to_vec();
        let mut op = l.op(node, super::DEF.code, vec![]);
        op.inputs.truncate(1);
        let w_t;
        let b_t;
        if float {
            let (lo, hi) = activation_range_f(act).map_err(err)?;
            params.extend([lo.to_bits() as i32, hi.to_bits() as i32]);
            let wf = le(w_data, f32::from_le_bytes);
            let packed = pack_f32(&wf, taps, oc);
            let bytes = packed.iter().flat_map(|v| v.to_le_bytes()).collect();
            w_t = l.add_const(
                format!("{y_name}/dw_weights"),
                DType::F32,
                vec![packed.len()],
                bytes,
            );
            let bf = bias_data.map_or_else(|| vec![0f32; oc], |d| le(d, f32::from_le_bytes));
            let bytes = bf.iter().flat_map(|v| v.to_le_bytes()).collect();
            b_t = l.add_const(format!("{y_name}/dw_bias"), DType::F32, vec![oc], bytes);
            op.inputs.extend([Some(w_t), Some(b_t)]);
        } else {
            let rq = lower_requant(l, node, oc, act)?;
            // TFLite's DepthwiseConvPerChannel has no weights offset.
            params.extend([rq.za, rq.zo, rq.lo, rq.hi]);
            let wi: Vec<i8> = w_data.iter().map(|&v| v as i8).collect();
            let bi = bias_data.map(|d| le(d, i32::from_le_bytes));
            let folded = fold_bias(bi.as_deref(), &wi, taps, oc, rq.za);
            // Per-tensor scales become one per channel: the kernel loads them in vectors.
            for t in [rq.mults, rq.shifts] {
                let data = l.tensors[t].data.clone().unwrap_or_default();
                if data.len() == 4 && oc > 1 {
                    let tensor = &mut l.tensors[t];
                    tensor.data = Some(data.repeat(oc));
                    tensor.shape = vec![oc];
                    tensor.bytes = 4 * oc;
                }
            }
            let consts = |t: usize| {
                le(
                    l.tensors[t].data.as_deref().unwrap_or(&[]),
                    i32::from_le_bytes,
                )
            };
            // For the Cortex-M4, a 3×3 filter with multiplier 1 takes the M4 form when it is
            // exact for it (`depthwise_m4::pack`): one stream of weights and constants.
            let m4 = matches!(l.packing, Packing::CortexM4 | Packing::CortexM4I16)
                && (kh, kw, ic) == (3, 3, oc);
            let stream = m4
                .then(|| {
                    let (mults, shifts) = (consts(rq.mults), consts(rq.shifts));
                    depthwise_m4::pack(&wi, &folded, &mults, &shifts, rq.zo, oc)
                })
                .flatten();
            if let Some(stream) = stream {
                w_t = l.add_i32(format!("{y_name}/dw_m4_stream"), &stream);
                op.inputs.push(Some(w_t));
            } else {
                let packed = pack_i8(&wi, taps, oc);
                let bytes = packed.iter().flat_map(|v| v.to_le_bytes()).collect();
                w_t = l.add_const(
                    format!("{y_name}/dw_weights"),
                    DType::I16,
                    vec![packed.len()],
                    bytes,
                );
                b_t = l.add_i32(format!("{y_name}/dw_bias"), &folded);
                op.inputs
                    .extend([Some(w_t), Some(b_t), Some(rq.mults), Some(rq.shifts)]);
            }
        }
        op.params = params;
        // Not in place for f32 in a host blob whose rows read the image with virtual
        // padding: in place, each input row is copied into the ring first and a call takes
        // one row (MobileNet-v2 f32 on Zen 4: its depthwise layers 1035 -> 827 us, its
        // arena 5 622 912 -> 6 151 680 bytes).
        let host_image = float
            && l.packing == Packing::Host
            && g.oc == g.ic
            && g.kh <= dwf::MAX_KH
            && dwf::virtual_pads(Isa::detect(), g.kw, g.dw * g.ic, g.sw * g.ic, g.oc);
        op.in_place = in_place_geom(&g) && !host_image;
        let lay = Layout::new(&g, want.size()).ok_or_else(|| err("sizes overflow"))?;
        op.temps = vec![l.add_temp(format!("{y_name}/dw_scratch"), lay.bytes())];
        l.push(op);
        Ok(())
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::nn::ops::conv::same_or_valid;
    use crate::nn::transform::ir::Padding;
    use crate::nn::transform::passes::test_graphs::{run_allocations, run_bytes};
    use crate::reference::multiply_by_quantized_multiplier;
    use alloc::vec;
    use alloc::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next() % (hi - lo + 1) as u64) as usize
        }
        fn i8(&mut self) -> i8 {
            self.next() as i8
        }
        fn f32(&mut self) -> f32 {
            (self.next() % 2001) as f32 / 1000.0 - 1.0
        }
    }

    fn geometry(r: &mut Rng) -> Geom {
        let (kh, kw) = if r.range(0, 9) == 0 {
            (r.range(5, 7), r.range(5, 7)) // over MAX_TAPS: partial sums
        } else {
            (r.range(1, 4), r.range(1, 4))
        };
        let (sh, mut sw, dh, dw) = (r.range(1, 3), r.range(1, 3), r.range(1, 2), r.range(1, 2));
        let mut ic = r.range(1, 40);
        let mut mult = if r.range(0, 3) == 0 { r.range(2, 3) } else { 1 };
        if r.range(0, 3) == 0 {
            // Few channels at stride 1: rows of wide pixels (`Wide`).
            (ic, sw, mult) = ([1, 2, 4, 8][r.range(0, 3)], 1, 1);
        }
        let padding = if r.range(0, 1) == 0 {
            Padding::Same
        } else {
            Padding::Valid
        };
        loop {
            let (ih, iw) = (r.range(1, 14), r.range(1, 14));
            let (Some((oh, pt)), Some((ow, pl))) = (
                same_or_valid(padding, ih, kh, sh, dh),
                same_or_valid(padding, iw, kw, sw, dw),
            ) else {
                continue;
            };
            if oh == 0 || ow == 0 {
                continue;
            }
            return Geom {
                batch: r.range(1, 2),
                ih,
                iw,
                ic,
                oh,
                ow,
                oc: ic * mult,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                pt,
                pl,
            };
        }
    }

    /// (input offset, tap) of every tap of output (b, oy, ox) inside the image.
    fn taps_in(g: &Geom, b: usize, oy: usize, ox: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for fy in 0..g.kh {
            for fx in 0..g.kw {
                if let Some(at) = g.in_pixel(b, g.in_y(oy, fy), g.in_x(ox, fx)) {
                    v.push((at, fy * g.kw + fx));
                }
            }
        }
        v
    }

    fn outputs(g: &Geom) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..g.batch).flat_map(move |b| {
            (0..g.oh).flat_map(move |oy| {
                (0..g.ow).flat_map(move |ox| (0..g.oc).map(move |o| (b, oy, ox, o)))
            })
        })
    }

    fn aligned(bytes: usize) -> Vec<u128> {
        vec![0u128; bytes.div_ceil(16) + 1]
    }

    fn as_bytes(v: &mut [u128]) -> &mut [u8] {
        // SAFETY: the u128 buffer viewed as its bytes.
        unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 16) }
    }

    /// Runs `dw` on `x`, out of place or in place (one buffer for input and output).
    /// The general form's rows of `dw` (as `Dw::run`).
    fn run_dw<E: DwElem>(dw: &Dw<E>, x: &[E], pad: E, in_place: bool) -> Vec<E> {
        let mut plan = Plan::new();
        let (wide, planned, flip) = dw.setup(pad, &mut plan);
        let (wide, plan) = (wide.as_ref(), planned.then_some(&plan));
        run_rows(dw, x, pad, flip, in_place, &mut |src, oy, out, rest| {
            dw.row(src, oy, out, rest, wide, plan)
        })
    }

    /// Every output row of `dw` by `row_fn`, in place or not.
    fn run_rows<E: DwElem>(
        dw: &Dw<E>,
        x: &[E],
        pad: E,
        flip: bool,
        in_place: bool,
        row_fn: &mut impl FnMut(Src<E>, usize, &mut [E], &mut Rest<E, E::A>) -> Result<(), Error>,
    ) -> Vec<E> {
        let g = &dw.g;
        let lay = Layout::new(g, core::mem::size_of::<E>()).unwrap();
        let mut s = aligned(lay.bytes());
        let mut sc = Scratch::new(as_bytes(&mut s), &lay, pad, flip, Dw::<E>::bad).unwrap();
        let out_len = g.batch * g.oh * g.ow * g.oc;
        if in_place {
            let mut io = x.to_vec();
            io.resize(x.len().max(out_len), E::default());
            let rows = 0..g.batch * g.oh;
            dw.in_place(&mut Io::whole(&mut io), rows, &mut sc, row_fn)
                .unwrap();
            io.truncate(out_len);
            io
        } else {
            let mut out = vec![E::default(); out_len];
            dw.rows(x, &mut out, 0..g.batch * g.oh, &mut sc, row_fn)
                .unwrap();
            out
        }
    }

    /// Every instruction set and both the image and the in-place ring give TFLite's
    /// reference results: int8 bit for bit, f32 bit for bit in the portable path (same
    /// order of operations) and within rounding with FMA; in place bit-identical to out of
    /// place.
    #[test]
    fn every_path_matches_the_reference_loops() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut in_place_runs, mut whole_rows, mut image_runs) = (0, 0, 0);
        for case in 0..300 {
            let g = geometry(&mut r);
            check_case(
                &g,
                &mut r,
                case,
                &mut in_place_runs,
                &mut whole_rows,
                &mut image_runs,
            );
        }
        assert!(in_place_runs > 100, "{in_place_runs} in-place runs");
        // The whole-row kernel ran often enough where the CPU has it.
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        if Isa::detect() == Isa::Avx512Vnni {
            assert!(whole_rows > 30, "{whole_rows} runs of the whole-row kernel");
        }
        let _ = whole_rows;
    }

    /// 3×3 layers at strides 1 and 2 (and wide pixels of two at 8 channels) against the
    /// reference loops: each goes to the whole-row kernel where the CPU has it (at stride 2
    /// with many channels, two columns taken in at once).
    #[test]
    fn three_by_three_matches_the_reference_loops() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let (mut in_place_runs, mut whole_rows, mut image_runs) = (0, 0, 0);
        let (mut cases, mut two) = (0, 0);
        for (ic, sw, sh) in [
            (8, 1, 1),
            (16, 1, 1),
            (24, 1, 2),
            (64, 1, 1),
            (16, 2, 2),
            (40, 2, 1),
            (96, 2, 2),
            (72, 2, 1),
        ] {
            for padding in [Padding::Same, Padding::Valid] {
                for (ih, iw) in [(25, 5), (9, 12), (6, 33)] {
                    let (Some((oh, pt)), Some((ow, pl))) = (
                        same_or_valid(padding, ih, 3, sh, 1),
                        same_or_valid(padding, iw, 3, sw, 1),
                    ) else {
                        continue;
                    };
                    let g = Geom {
                        batch: 1 + cases % 2,
                        ih,
                        iw,
                        ic,
                        oh,
                        ow,
                        oc: ic,
                        kh: 3,
                        kw: 3,
                        sh,
                        sw,
                        dh: 1,
                        dw: 1,
                        pt,
                        pl,
                    };
                    check_case(
                        &g,
                        &mut r,
                        cases,
                        &mut in_place_runs,
                        &mut whole_rows,
                        &mut image_runs,
                    );
                    cases += 1;
                    two += usize::from(takes_two(&g));
                }
            }
        }
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        if Isa::detect() == Isa::Avx512Vnni {
            assert_eq!(whole_rows, cases, "runs of the whole-row kernel");
            assert!(two >= 8, "{two} layers taking two columns at once");
        }
        let _ = (whole_rows, two);
        // The SAME layers of 16 and 64 channels ran from the image with virtual padding
        // where the CPU has AVX-512, and matched the ring's in-place runs.
        if Isa::detect().lanes() == 16 {
            assert!(image_runs >= 8, "{image_runs} runs with virtual padding");
        }
    }

    /// Whether the whole-row kernel takes in two columns at once on `g`'s rows (in the
    /// folded stages), on this CPU.
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    fn takes_two(g: &Geom) -> bool {
        let (mut plan, c) = (Plan::new(), g.ic);
        let (w, init) = (vec![0i16; g.kh * g.kw * 2 * c], vec![0i32; c]);
        let (mults, shifts) = (vec![1 << 30; c], vec![-1; c]);
        plan.prepare(Isa::detect(), g, 1, &w, &init, (&mults, &shifts)) && plan.two_at_once()
    }

    #[cfg(not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)))]
    fn takes_two(_: &Geom) -> bool {
        false
    }

    /// f32 layers large enough that the pixels between the edges read the image rows and
    /// the ring holds only the edge columns (`Dw::edges`): against the reference loops, and
    /// bit for bit against the in-place run, whose ring holds whole rows. SAME padding at
    /// strides 1 and 2 (odd and even sizes), 5 columns, dilation 2, channels that end in
    /// narrower vectors, two batches.
    #[test]
    fn large_f32_rows_read_the_image_between_edges() {
        let mut r = Rng(0x6a09_e667_f3bc_c908);
        let (mut in_place_runs, mut whole_rows, mut image_runs) = (0, 0, 0);
        for (case, &(batch, ih, iw, ic, k, s, d)) in [
            (1, 40, 40, 48, 3, 1, 1),
            (1, 41, 40, 48, 3, 2, 1),
            (1, 40, 41, 48, 3, 2, 1),
            (2, 36, 37, 56, 5, 2, 1),
            (1, 36, 36, 64, 3, 1, 2),
            (1, 30, 45, 52, 5, 1, 1),
            (1, 33, 34, 72, 3, 2, 2),
        ]
        .iter()
        .enumerate()
        {
            let (Some((oh, pt)), Some((ow, pl))) = (
                same_or_valid(Padding::Same, ih, k, s, d),
                same_or_valid(Padding::Same, iw, k, s, d),
            ) else {
                panic!("geometry {case}");
            };
            let g = Geom {
                batch,
                ih,
                iw,
                ic,
                oh,
                ow,
                oc: ic,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                pt,
                pl,
            };
            let dw = Dw::<f32> {
                g,
                w: &[],
                init: None,
                fin: Finish::clamp_only(0, 0),
                isa: Isa::detect(),
                bias: &[],
            };
            assert!(dw.edges().is_some(), "edges {g:?}");
            assert!(in_place_geom(&g), "in place {g:?}");
            check_case(
                &g,
                &mut r,
                case,
                &mut in_place_runs,
                &mut whole_rows,
                &mut image_runs,
            );
        }
    }

    /// One geometry's int8 and f32 outputs on every runnable instruction set (and in place
    /// where the geometry allows) against the reference loops; counts the in-place runs and
    /// the calls the whole-row kernel takes.
    fn check_case(
        g: &Geom,
        r: &mut Rng,
        case: usize,
        in_place_runs: &mut usize,
        whole_rows: &mut usize,
        image_runs: &mut usize,
    ) {
        let g = *g;
        {
            let taps = g.kh * g.kw;
            let mult = g.oc / g.ic;
            let x_len = g.batch * g.ih * g.iw * g.ic;
            // int8
            let x: Vec<i8> = (0..x_len).map(|_| r.i8()).collect();
            let w: Vec<i8> = (0..taps * g.oc).map(|_| r.i8()).collect();
            let bias: Vec<i32> = (0..g.oc)
                .map(|_| (r.next() % 20001) as i32 - 10000)
                .collect();
            let mults: Vec<i32> = (0..g.oc)
                .map(|_| (1 << 30) + (r.next() % (1 << 30)) as i32)
                .collect();
            let shifts: Vec<i32> = (0..g.oc)
                .map(|_| -(r.range(5, 12) as i32) + if case % 7 == 0 { 7 } else { 0 })
                .collect();
            let (za, zo) = (r.i8() as i32, r.i8() as i32);
            let (lo, hi) = (-128 + r.range(0, 20) as i32, 127 - r.range(0, 20) as i32);
            // A third of the cases clamp to the whole i8 range (the saturating stores).
            let (lo, hi) = if case % 3 == 1 { (-128, 127) } else { (lo, hi) };
            let want: Vec<i8> = outputs(&g)
                .map(|(b, oy, ox, o)| {
                    let mut acc = bias[o];
                    for (at, t) in taps_in(&g, b, oy, ox) {
                        let xv = i32::from(x[at + o / mult]) - za;
                        acc = acc.wrapping_add(i32::from(w[t * g.oc + o]) * xv);
                    }
                    let v =
                        multiply_by_quantized_multiplier(acc, mults[o], shifts[o]).wrapping_add(zo);
                    v.clamp(lo, hi) as i8
                })
                .collect();
            let wp = pack_i8(&w, taps, g.oc);
            let folded = fold_bias(Some(&bias), &w, taps, g.oc, za);
            // f32
            let xf: Vec<f32> = (0..x_len).map(|_| r.f32()).collect();
            let wf: Vec<f32> = (0..taps * g.oc).map(|_| r.f32()).collect();
            let bf: Vec<f32> = (0..g.oc).map(|_| r.f32()).collect();
            let (flo, fhi) = (-0.5f32, 2.0f32);
            let want_f: Vec<f32> = outputs(&g)
                .map(|(b, oy, ox, o)| {
                    let mut acc = 0f32;
                    for (at, t) in taps_in(&g, b, oy, ox) {
                        acc += xf[at + o / mult] * wf[t * g.oc + o];
                    }
                    let v = acc + bf[o];
                    if v < flo {
                        flo
                    } else if v > fhi {
                        fhi
                    } else {
                        v
                    }
                })
                .collect();
            let wpf = pack_f32(&wf, taps, g.oc);
            for isa in Isa::all_runnable() {
                let dw = Dw::<i8> {
                    g,
                    w: &wp,
                    init: Some(&folded),
                    fin: Finish {
                        bias: core::ptr::null(),
                        mults: mults.as_ptr(),
                        shifts: shifts.as_ptr(),
                        left: shifts.iter().any(|&s| s > 0),
                        fast: fast_form(&folded, taps, &mults, &shifts),
                        zo,
                        lo,
                        hi,
                        flo: 0.0,
                        fhi: 0.0,
                    },
                    isa,
                    bias: &[],
                };
                let got = run_dw(&dw, &x, za as i8, false);
                assert_eq!(got, want, "int8 {isa:?} {g:?}");
                let wide = dw.wide(za as i8);
                *whole_rows += usize::from(i8::row_plan(&dw, wide.as_ref(), &mut Plan::new()));
                let dwf = Dw::<f32> {
                    g,
                    w: &wpf,
                    init: None,
                    fin: Finish {
                        bias: bf.as_ptr(),
                        mults: core::ptr::null(),
                        shifts: core::ptr::null(),
                        left: false,
                        fast: false,
                        zo: 0,
                        lo: 0,
                        hi: 0,
                        flo,
                        fhi,
                    },
                    isa,
                    bias: &bf,
                };
                let got_f = run_dw(&dwf, &xf, 0.0, false);
                if isa == Isa::Portable {
                    assert_eq!(got_f, want_f, "f32 {isa:?} {g:?}");
                } else {
                    for (a, b) in got_f.iter().zip(&want_f) {
                        assert!(
                            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "f32 {isa:?} {g:?}: {a} vs {b}"
                        );
                    }
                }
                if in_place_geom(&g) {
                    *in_place_runs += 1;
                    // Out of place from the image with virtual padding, in place from the
                    // ring's padded rows: the same bits.
                    let f = dwf.f32_row();
                    if g.oc == g.ic
                        && dwf.pw() != g.iw
                        && dwf::virtual_pads(isa, f.kw, f.col, f.step, f.oc)
                    {
                        *image_runs += 1;
                    }
                    assert_eq!(
                        run_dw(&dw, &x, za as i8, true),
                        got,
                        "int8 in place {isa:?} {g:?}"
                    );
                    let got_fi = run_dw(&dwf, &xf, 0.0, true);
                    assert!(
                        got_fi
                            .iter()
                            .zip(&got_f)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "f32 in place {isa:?} {g:?}"
                    );
                }
            }
        }
    }

    /// The Cortex-M4 form (`depthwise_m4`: the stream, its kernel's arithmetic) against the
    /// reference loops, out of place and in place.
    #[test]
    fn m4_form_matches_the_reference_loops() {
        let mut r = Rng(0x51_7cc1_b727_220a);
        let mut runs = 0;
        for case in 0..200 {
            let (s, d) = (
                (r.range(1, 2), r.range(1, 2)),
                (r.range(1, 2), r.range(1, 2)),
            );
            let padding = [Padding::Same, Padding::Valid][case % 2];
            let (ih, iw, ic) = (r.range(1, 9), r.range(1, 9), 4 * r.range(1, 5));
            let (Some((oh, pt)), Some((ow, pl))) = (
                same_or_valid(padding, ih, 3, s.0, d.0),
                same_or_valid(padding, iw, 3, s.1, d.1),
            ) else {
                continue;
            };
            if oh == 0 || ow == 0 {
                continue;
            }
            let g = Geom {
                batch: r.range(1, 2),
                ih,
                iw,
                ic,
                oh,
                ow,
                oc: ic,
                kh: 3,
                kw: 3,
                sh: s.0,
                sw: s.1,
                dh: d.0,
                dw: d.1,
                pt,
                pl,
            };
            let x: Vec<i8> = (0..g.batch * ih * iw * ic).map(|_| r.i8()).collect();
            let w: Vec<i8> = (0..9 * ic).map(|_| r.i8()).collect();
            let bias: Vec<i32> = (0..ic)
                .map(|_| (r.next() % 200001) as i32 - 100000)
                .collect();
            let mults: Vec<i32> = (0..ic).map(|_| (r.next() % (1 << 31)) as i32).collect();
            let shifts: Vec<i32> = (0..ic).map(|_| -(r.range(1, 22) as i32)).collect();
            let (za, zo) = (r.i8() as i32, r.i8() as i32);
            let (lo, hi) = if case % 3 == 0 {
                (-128, 127)
            } else {
                (-128 + r.range(0, 120) as i32, 127 - r.range(0, 120) as i32)
            };
            let want: Vec<i8> = outputs(&g)
                .map(|(b, oy, ox, o)| {
                    let mut acc = bias[o];
                    for (at, t) in taps_in(&g, b, oy, ox) {
                        let xv = i32::from(x[at + o]) - za;
                        acc = acc.wrapping_add(i32::from(w[t * ic + o]) * xv);
                    }
                    let v =
                        multiply_by_quantized_multiplier(acc, mults[o], shifts[o]).wrapping_add(zo);
                    v.clamp(lo, hi) as i8
                })
                .collect();
            let folded = fold_bias(Some(&bias), &w, 9, ic, za);
            let stream = depthwise_m4::pack(&w, &folded, &mults, &shifts, zo, ic)
                .expect("the M4 form takes these constants");
            let dw = Dw::<i8> {
                g,
                w: &[],
                init: None,
                fin: Finish::clamp_only(lo, hi),
                isa: Isa::detect(),
                bias: &[],
            };
            let k = dw.m4_layer(&stream);
            let m4 = |in_place| {
                run_rows(
                    &dw,
                    &x,
                    za as i8,
                    false,
                    in_place,
                    &mut |src, oy, out, rest| {
                        dw.m4_row(&k, src, oy, out, rest.pad)
                            .ok_or_else(Dw::<i8>::bad)
                    },
                )
            };
            assert_eq!(m4(false), want, "{g:?}");
            if in_place_geom(&g) {
                assert_eq!(m4(true), want, "in place {g:?}");
            }
            runs += 1;
        }
        assert!(runs > 100, "{runs} cases");
        // Out of the form's range: a left shift, a negative multiplier, too large a bias.
        let (w, m, s) = ([1i8; 36], [1 << 30; 4], [-3; 4]);
        assert!(depthwise_m4::pack(&w, &[0; 4], &m, &s, 0, 4).is_some());
        assert!(depthwise_m4::pack(&w, &[0; 4], &m, &[1; 4], 0, 4).is_none());
        assert!(depthwise_m4::pack(&w, &[0; 4], &[-1; 4], &s, 0, 4).is_none());
        assert!(depthwise_m4::pack(&w, &[1 << 30; 4], &m, &s, 0, 4).is_none());
        assert!(depthwise_m4::pack(&w[..27], &[0; 3], &m[..3], &s[..3], 0, 3).is_none());
    }

    /// The geometries of MobileNets and DS-CNN run in place; a multiplier of 2 at stride 1
    /// (the output outgrows the input rows still to read) does not.
    #[test]
    fn in_place_geometries() {
        let g = |ih: usize, ic: usize, oh: usize, oc: usize, k: usize, s: usize, pt: usize| Geom {
            batch: 1,
            ih,
            iw: ih,
            ic,
            oh,
            ow: oh,
            oc,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: 1,
            dw: 1,
            pt,
            pl: pt,
        };
        assert!(in_place_geom(&g(112, 32, 112, 32, 3, 1, 1)));
        assert!(in_place_geom(&g(112, 96, 56, 96, 3, 2, 0)));
        assert!(in_place_geom(&g(7, 960, 7, 960, 5, 1, 2)));
        assert!(in_place_geom(&Geom {
            batch: 3,
            ..g(25, 64, 25, 64, 3, 1, 1)
        }));
        assert!(!in_place_geom(&g(10, 8, 10, 16, 3, 1, 1)));
        // Rows of the next batch are not in the ring: an output larger than the input is
        // refused.
        assert!(!in_place_geom(&Geom {
            batch: 2,
            ..g(4, 8, 4, 16, 1, 1, 0)
        }));
    }

    /// A one-operator model with weights [1, k, k, c·mult].
    fn model(
        float: bool,
        hw: usize,
        c: usize,
        mult: usize,
        k: usize,
        stride: i32,
    ) -> crate::nn::transform::ir::Graph {
        use crate::nn::transform::ir::{
            Activation, BuiltinOp, Graph, Node, OpOptions, Quant, Tensor,
        };
        let mut r = Rng(7);
        let oc = c * mult;
        let oh = hw.div_ceil(stride as usize);
        let q = |s: Vec<f32>, z: i64| {
            (!float).then(|| Quant {
                zero_point: vec![z; s.len()],
                scale: s,
                axis: 3,
            })
        };
        let (dt, bt) = if float {
            (DType::F32, DType::F32)
        } else {
            (DType::I8, DType::I32)
        };
        let w: Vec<u8> = if float {
            (0..k * k * oc)
                .flat_map(|_| r.f32().to_le_bytes())
                .collect()
        } else {
            (0..k * k * oc).map(|_| r.i8() as u8).collect()
        };
        let b: Vec<u8> = (0..oc)
            .flat_map(|_| {
                if float {
                    r.f32().to_le_bytes()
                } else {
                    ((r.next() % 2000) as i32 - 1000).to_le_bytes()
                }
            })
            .collect();
        let t = |name: &str, dtype, shape: Vec<usize>, quant, data| Tensor {
            name: name.into(),
            dtype,
            shape,
            quant,
            data,
        };
        Graph {
            tensors: vec![
                t("x", dt, vec![1, hw, hw, c], q(vec![0.02], 3), None),
                t(
                    "w",
                    dt,
                    vec![1, k, k, oc],
                    q((0..oc).map(|i| 0.01 + i as f32 * 1e-4).collect(), 0),
                    Some(w),
                ),
                t("b", bt, vec![oc], None, Some(b)),
                t("y", dt, vec![1, oh, oh, oc], q(vec![0.05], -5), None),
            ],
            nodes: vec![Node {
                op: BuiltinOp::DepthwiseConv2d,
                version: 1,
                options: OpOptions::DepthwiseConv2d {
                    padding: Padding::Same,
                    stride_w: stride,
                    stride_h: stride,
                    depth_multiplier: mult as i32,
                    activation: Activation::Relu6,
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                },
                inputs: vec![Some(0), Some(1), Some(2)],
                outputs: vec![3],
            }],
            inputs: vec![0],
            outputs: vec![3],
        }
    }

    /// Loads `g` with the output at the input's arena offset, or as planned.
    fn load(
        g: &crate::nn::transform::ir::Graph,
        in_place: bool,
    ) -> Result<crate::nn::transform::LoadedModel, Error> {
        use crate::nn::transform::blob_writer::{write_blob, WriteOptions};
        use crate::nn::transform::{lower::lower, plan::plan, LoadedModel, Packing};
        let l = lower(g, Packing::Portable)?;
        let mut p = plan(&l);
        if in_place {
            p.offsets[3] = p.offsets[0];
        }
        LoadedModel::from_blob(&write_blob(&l, &p, WriteOptions::default())?)
    }

    /// Through the blob and the session: a plan that puts the output over the input gives
    /// the same bytes as one that does not (the operator reads the input only through the
    /// shared buffer), and a geometry that cannot run in place is refused at load.
    #[test]
    fn in_place_plan_gives_the_same_outputs() {
        for float in [false, true] {
            for (hw, c, k, stride) in [(9, 24, 3, 1), (10, 19, 3, 2), (6, 8, 5, 1)] {
                let g = model(float, hw, c, 1, k, stride);
                let x = input(float, hw * hw * c);
                let outs: Vec<Vec<u8>> = [false, true]
                    .iter()
                    .map(|&ip| {
                        let m = load(&g, ip).unwrap();
                        run_bytes(&m, &x, 1)
                    })
                    .collect();
                assert_eq!(outs[0], outs[1], "float {float} {hw} {c} {k} {stride}");
            }
            let g = model(float, 6, 4, 2, 3, 1);
            assert!(load(&g, false).is_ok());
            assert!(load(&g, true).is_err());
        }
    }

    /// Seeded input bytes of `n` values, int8 or f32.
    fn input(float: bool, n: usize) -> Vec<u8> {
        let bytes = (0..n * if float { 4 } else { 1 }).map(|i| (i * 37 % 251) as u8);
        if float {
            let b: Vec<u8> = bytes.collect();
            b.chunks(4)
                .flat_map(|c| (c[0] as f32 / 100.0 - 1.0).to_le_bytes())
                .collect()
        } else {
            bytes.collect()
        }
    }

    /// Results do not depend on the thread count, in place (band 0 in place, the other
    /// bands' rows set aside) and apart: int8 and f32, stride 1 and 2, wide pixels (4
    /// channels), a depth multiplier of 2 (apart only), a 7×7 filter (partial sums), and
    /// rows that do not divide evenly; every shape over `MIN_MACS_PER_THREAD` per thread for
    /// two threads at least, so the bands are really split.
    #[test]
    fn threads_give_the_same_bytes() {
        let shapes = [
            (40, 32, 1, 3, 1),
            (57, 48, 1, 3, 2),
            (31, 16, 2, 3, 1),
            (96, 4, 1, 3, 1),
            (29, 16, 1, 7, 1),
            (33, 40, 1, 5, 2),
        ];
        for float in [false, true] {
            for (hw, c, mult, k, stride) in shapes {
                let g = model(float, hw, c, mult, k, stride);
                let oh = hw.div_ceil(stride as usize);
                let macs = oh * oh * c * mult * k * k;
                assert!(macs >= 2 * MIN_MACS_PER_THREAD, "{hw} {c} {mult} {k}");
                let x = input(float, hw * hw * c);
                let run = |ip: bool, threads: usize| run_bytes(&load(&g, ip).unwrap(), &x, threads);
                let want = run(false, 1);
                for ip in [false, true] {
                    if ip && mult > 1 {
                        continue;
                    }
                    let m = load(&g, ip).unwrap();
                    for t in [1, 2, 3] {
                        let what =
                            std::format!("float {float} {hw} {c} {mult} {k} {stride} {ip} {t}");
                        assert_eq!(run(ip, t), want, "{what}");
                        // The bands' pieces are kept on the stack: a run allocates nothing.
                        assert_eq!(run_allocations(&m, &x, t), 0, "{what}: allocations");
                    }
                }
            }
        }
    }

    /// A MobileNet-v2 block (1×1 expand, 3×3 depthwise, 1×1 project) of `c` channels
    /// expanded to `e·c`, int8 (per-channel weights) or f32, as the planner lays it out.
    fn block(
        float: bool,
        hw: usize,
        c: usize,
        e: usize,
        stride: i32,
    ) -> crate::nn::transform::ir::Graph {
        use crate::nn::transform::ir::{
            Activation, BuiltinOp, Graph, Node, OpOptions, Quant, Tensor,
        };
        let mut r = Rng(11);
        let (ce, oh) = (c * e, hw.div_ceil(stride as usize));
        let (dt, bt) = if float {
            (DType::F32, DType::F32)
        } else {
            (DType::I8, DType::I32)
        };
        let q = |s: Vec<f32>, z: i64, axis: usize| {
            (!float).then(|| Quant {
                zero_point: vec![z; s.len()],
                scale: s,
                axis,
            })
        };
        let scales = |n: usize| (0..n).map(|i| 0.01 + i as f32 * 1e-4).collect::<Vec<f32>>();
        let mut weights = |n: usize| -> Vec<u8> {
            if float {
                (0..n).flat_map(|_| (r.f32() / 4.0).to_le_bytes()).collect()
            } else {
                (0..n).map(|_| r.i8() as u8).collect()
            }
        };
        let (w1, wd, w2) = (weights(ce * c), weights(9 * ce), weights(c * ce));
        let mut r = Rng(5);
        let mut bias = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|_| {
                    if float {
                        r.f32().to_le_bytes()
                    } else {
                        ((r.next() % 2000) as i32 - 1000).to_le_bytes()
                    }
                })
                .collect()
        };
        let (b1, bd, b2) = (bias(ce), bias(ce), bias(c));
        let t = |name: &str, dtype, shape: Vec<usize>, quant, data| Tensor {
            name: name.into(),
            dtype,
            shape,
            quant,
            data,
        };
        let conv = |i: usize, w: usize, b: usize, o: usize| Node {
            op: BuiltinOp::Conv2d,
            version: 3,
            options: OpOptions::Conv2d {
                padding: Padding::Same,
                stride_w: 1,
                stride_h: 1,
                activation: Activation::Relu6,
                dilation_w_factor: 1,
                dilation_h_factor: 1,
            },
            inputs: vec![Some(i), Some(w), Some(b)],
            outputs: vec![o],
        };
        Graph {
            tensors: vec![
                t("x", dt, vec![1, hw, hw, c], q(vec![0.02], 3, 0), None),
                t("w1", dt, vec![ce, 1, 1, c], q(scales(ce), 0, 0), Some(w1)),
                t("b1", bt, vec![ce], None, Some(b1)),
                t("h1", dt, vec![1, hw, hw, ce], q(vec![0.05], -5, 0), None),
                t("wd", dt, vec![1, 3, 3, ce], q(scales(ce), 0, 3), Some(wd)),
                t("bd", bt, vec![ce], None, Some(bd)),
                t("h2", dt, vec![1, oh, oh, ce], q(vec![0.05], -7, 0), None),
                t("w2", dt, vec![c, 1, 1, ce], q(scales(c), 0, 0), Some(w2)),
                t("b2", bt, vec![c], None, Some(b2)),
                t("y", dt, vec![1, oh, oh, c], q(vec![0.1], 2, 0), None),
            ],
            nodes: vec![
                conv(0, 1, 2, 3),
                Node {
                    op: BuiltinOp::DepthwiseConv2d,
                    version: 1,
                    options: OpOptions::DepthwiseConv2d {
                        padding: Padding::Same,
                        stride_w: stride,
                        stride_h: stride,
                        depth_multiplier: 1,
                        activation: Activation::Relu6,
                        dilation_w_factor: 1,
                        dilation_h_factor: 1,
                    },
                    inputs: vec![Some(3), Some(4), Some(5)],
                    outputs: vec![6],
                },
                conv(6, 7, 8, 9),
            ],
            inputs: vec![0],
            outputs: vec![9],
        }
    }

    /// A MobileNet-v2 block through the planner (which puts the int8 depthwise and project
    /// layers in place) gives the same bytes on 1, 2 and 3 threads: the threaded depthwise
    /// bands (int8 in place, f32 apart) and the in-place pointwise split,
    /// every layer over its work floor for two threads.
    #[test]
    fn block_gives_the_same_bytes_on_threads() {
        use crate::nn::transform::{lower::lower, plan::plan, LoadedModel, Packing};
        for float in [false, true] {
            for stride in [1, 2] {
                let g = block(float, 48, 32, 4, stride);
                let l = lower(&g, Packing::Host).unwrap();
                let p = plan(&l);
                if !float {
                    // The depthwise layer and the projection in place.
                    let at = |t: usize| p.offsets[t];
                    assert_eq!(at(3), at(6), "stride {stride}: depthwise in place");
                    assert_eq!(at(6), at(9), "stride {stride}: projection in place");
                }
                let m = LoadedModel::from_graph(&g, Packing::Host).unwrap();
                let x = input(float, 48 * 48 * 32);
                let run = |threads: usize| run_bytes(&m, &x, threads);
                let want = run(1);
                for t in [2, 3] {
                    assert_eq!(run(t), want, "float {float} stride {stride} threads {t}");
                }
            }
        }
    }

    /// The Cortex-M4 form planned apart from its input is `FORM_DW_M4_APART` (so a forms
    /// set without it refuses that plan at load), in place it is not.
    #[test]
    fn m4_form_apart_needs_its_forms_bit() {
        use crate::nn::blob::Model;
        use crate::nn::ops::{check_in, forms_of, ALL_OPS, FORM_DW_M4_APART};
        use crate::nn::transform::blob_writer::{write_blob, WriteOptions};
        use crate::nn::transform::{lower::lower, plan::plan, Packing};
        let g = model(false, 9, 16, 1, 3, 1);
        for in_place in [false, true] {
            let l = lower(&g, Packing::CortexM4).unwrap();
            let mut p = plan(&l);
            if in_place {
                p.offsets[3] = p.offsets[0];
            } else {
                p.offsets[3] = Some(p.arena);
                p.arena += (9 * 9 * 16usize).next_multiple_of(16);
            }
            let blob = write_blob(&l, &p, WriteOptions::default()).unwrap();
            Model::validate_for_target(&blob, "cortex-m4-dsp").unwrap();
            let m = Model::validated(&blob, true);
            let op = m.op(0).unwrap();
            assert!(is_m4(&op));
            assert_eq!(is_m4_apart(&op), !in_place);
            assert_eq!(forms_of(&m), if in_place { 0 } else { FORM_DW_M4_APART });
            let refused = check_in::<ALL_OPS, 0>(&op).unwrap().is_err();
            assert_eq!(refused, !in_place);
            assert!(check_in::<ALL_OPS, FORM_DW_M4_APART>(&op).unwrap().is_ok());
        }
    }
}

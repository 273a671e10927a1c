//! CONV_2D+DEPTHWISE_CONV_2D: an f32 pointwise (1×1, stride 1, unpadded) CONV_2D whose only
//! reader is a DEPTHWISE_CONV_2D of multiplier 1, as one operator (MobileNet-v2's expansion
//! layer and the depthwise layer after it). edgemm's own operator code
//! ([`CODE`], TFLite's `PLACEHOLDER_FOR_GREATER_OP_CODES`, which no TFLite operator has):
//! only the lowered-model step `transform::expand_depthwise` makes it.
//!
//! Why: the expansion's output is the model's largest tensor (MobileNet-v2 224: 112×112×96
//! f32, 4.8 MB), written to memory by the pointwise layer and read back by the depthwise one.
//! Here the depthwise layer's input rows are computed as its windows need them into a ring
//! of a few rows in the scratch (in L2), and the tensor does not exist.
//!
//! How it runs. For each output row of the depthwise layer, the input rows its window
//! reads that are not computed yet go through the pointwise GEMM, one image row per call,
//! into ring slot `row mod R` (R = `(kh − 1)·dh + 1`, the rows one window spans), then the
//! output row goes to `depthwise_f32`'s whole-row code over the ring's rows. A ring row is a
//! padded row (`pl` columns of 0.0 on the left, the image row, 0.0 up to the last column a
//! window reaches; the pads are written once per band), so every window lies inside it on
//! every instruction set; filter rows above or below the image are left out, as the
//! depthwise operator leaves them. The GEMM is CONV_2D's: the same weights, and the same
//! call (`conv_rows`' pointwise form where the kernel has convolution variants, else the
//! GEMM driver, bias and clamp after it), so every sum adds the same terms in the same order
//! and the output has the bits of the two operators run apart.
//!
//! Threads (`Fused::run_bands`, as many as the pointwise layer's GEMM floor allows): the
//! output rows in bands, one per thread, each with a ring and GEMM workspace of its own (band
//! 0 the arena's scratch, the others their thread's `scratch::with_workspace` buffer). A band
//! computes every input row its windows read from its first window on, so the rows where
//! two bands meet ((kh − 1)·dh at most) are computed by both; every output row comes from
//! the same GEMM calls and row code as on one thread, the same bytes for any count.
//!
//! Blob form. Inputs: x [b, h, w, c_in]; the pointwise layer's GEMM part (`gemm_common`, f32:
//! weights k×n, optional bias, and for int8 weights their scales, else an absent input);
//! the depthwise layer's weights (f32 tap pairs `[pair][2][c]`, as DEPTHWISE_CONV_2D's) and
//! bias (c values). Output: y [b, oh, ow, c]. One scratch tensor: the ring ([`Ring`], rounded up to 64
//! bytes), then the GEMM workspace for one image row (w rows). Parameters: the pointwise
//! layer's `conv::Geom` words, its clamp (f32 bits, 2 words), the depthwise layer's
//! `conv::Geom` words, its clamp (2 words): 34 words.

use super::conv::Geom;
use super::conv_rows::Rows;
use super::depthwise_f32 as dwf;
use super::depthwise_lanes::Isa;
use super::gemm_common::{self, FWeights, Gemm};
use super::{cast, cast_mut, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};
use crate::nn::dtype::DType;

/// The operator code: one no TFLite operator has (TFLite's 127 says "the code is in the
/// other field"), below 128 as operator sets need.
pub(crate) const CODE: u16 = 127;

pub(crate) const DEF: OpDef = OpDef {
    code: CODE,
    name: "CONV_2D+DEPTHWISE_CONV_2D",
    in_place: false,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::refuse,
};

/// The pointwise layer's geometry words.
const P_PW: usize = 0;
/// Its clamp: the GEMM part's f32 words (`gemm_common`).
const P_PW_GEMM: usize = Geom::WORDS;
/// The depthwise layer's geometry words.
const P_DW: usize = P_PW_GEMM + gemm_common::num_params(true);
const P_DW_LO: usize = P_DW + Geom::WORDS;
const P_DW_HI: usize = P_DW_LO + 1;
/// Parameter words.
const PARAMS: usize = P_DW_HI + 1;

/// The ring of padded input rows of the depthwise layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ring {
    /// Rows: those one window spans.
    pub slots: usize,
    /// Values of a row: (pixels from the first window's first column to the last column any
    /// window reaches, or to the image's last column if further) × channels.
    pub row: usize,
    /// Bytes, rounded up to 64 (the GEMM workspace follows).
    pub bytes: usize,
}

impl Ring {
    /// The ring of depthwise geometry `g` (`None` on overflow).
    pub(crate) fn of(g: &Geom) -> Option<Ring> {
        let slots = g.kh.checked_sub(1)?.checked_mul(g.dh)?.checked_add(1)?;
        let reach = (g.ow.max(1) - 1)
            .checked_mul(g.sw)?
            .checked_add(g.kw.checked_sub(1)?.checked_mul(g.dw)?)?
            .checked_add(1)?;
        let width = reach.max(g.pl.checked_add(g.iw)?);
        let row = width.checked_mul(g.ic)?;
        let bytes = slots
            .checked_mul(row)?
            .checked_mul(4)?
            .checked_next_multiple_of(64)?;
        Some(Ring { slots, row, bytes })
    }
}

/// The two layers' geometries.
fn geoms(op: &OpView) -> (Geom, Geom) {
    (Geom::read(op, P_PW), Geom::read(op, P_DW))
}

/// The pointwise layer's products plus the depthwise layer's.
fn macs(op: &OpView) -> u64 {
    let (pw, dw) = geoms(op);
    // Saturating: a blob read for inspection only has unchecked words.
    let prod = |v: &[usize]| v.iter().fold(1u64, |a, &b| a.saturating_mul(b as u64));
    prod(&[pw.batch, pw.oh, pw.ow, pw.ic, pw.oc])
        .saturating_add(prod(&[dw.batch, dw.oh, dw.ow, dw.oc, dw.kh, dw.kw]))
}

/// Input index of the depthwise weights (its bias follows): after x and the GEMM part's
/// three slots (weights, bias, scales: the GEMM reads a tensor in the third as int8
/// weights' scales, so f32 weights leave it absent).
const DW_W: usize = 4;

/// Bytes of scratch a run needs: the ring, then the GEMM workspace for one image row.
fn scratch_bytes(pw: &Geom, dw: &Geom) -> Option<usize> {
    let ws = gemm_common::workspace_bytes(true, false, pw.iw, pw.ic, pw.oc);
    Ring::of(dw)?.bytes.checked_add(ws)
}

fn check(op: &OpView) -> Result<(), Error> {
    let float = checks::float_form(op, gemm_common::is_float(op)?)?;
    if !float {
        return Err(op.error("only the f32 form exists"));
    }
    checks::counts(op, DW_W + 2, 1, 1, PARAMS)?;
    if op.input(3).is_some() != (checks::input(op, 1)?.dtype == DType::I8) {
        return Err(op.error("weight scales without int8 weights, or int8 weights without"));
    }
    let (pw, dw) = geoms(op);
    let words = |base: usize| (0..Geom::WORDS).any(|i| op.param(base + i) < 0);
    if words(P_PW) || words(P_DW) {
        return Err(op.error("a negative geometry word"));
    }
    if !pw.pointwise() || pw.ic == 0 || pw.oc == 0 {
        return Err(op.error("the first layer is not a pointwise convolution"));
    }
    let c = pw.oc;
    if (dw.batch, dw.ih, dw.iw, dw.ic, dw.oc) != (pw.batch, pw.oh, pw.ow, c, c) {
        return Err(op.error("the depthwise layer does not take the pointwise layer's output"));
    }
    if dw.sh == 0 || dw.sw == 0 || dw.dh == 0 || dw.dw == 0 {
        return Err(op.error("a stride or dilation of 0"));
    }
    if dw.kh == 0 || dw.kw == 0 || dw.kh > dwf::MAX_KH {
        return Err(op.error("the depthwise filter is empty or too tall"));
    }
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .filter(|&p| p <= isize::MAX as usize)
            .ok_or_else(|| op.error("sizes overflow"))
    };
    let x = checks::input(op, 0)?;
    let y = checks::output(op, 0)?;
    if x.elems() != prod(&[pw.batch, pw.ih, pw.iw, pw.ic])?
        || y.elems() != prod(&[dw.batch, dw.oh, dw.ow, c])?
    {
        return Err(op.error("input or output size does not match the geometry"));
    }
    // Every index the loops form stays far from overflow: each word is below 2^31.
    prod(&[dw.ih, dw.iw, c])?;
    gemm_common::check(op, true, pw.ic, c, P_PW_GEMM)?;
    let taps = prod(&[dw.kh, dw.kw])?;
    let w = checks::input(op, DW_W)?;
    let b = checks::input(op, DW_W + 1)?;
    checks::dtype(op, &w, DType::F32)?;
    checks::dtype(op, &b, DType::F32)?;
    if w.storage != Storage::Constant || w.elems() != prod(&[taps.div_ceil(2), 2, c])? {
        return Err(op.error("the depthwise weights have the wrong size"));
    }
    if b.elems() != c {
        return Err(op.error("the depthwise bias has the wrong length"));
    }
    let need = scratch_bytes(&pw, &dw).ok_or_else(|| op.error("sizes overflow"))?;
    if checks::temp(op, 0)?.bytes < need {
        return Err(op.error("the scratch is smaller than the ring and the GEMM workspace"));
    }
    Ok(())
}

/// The bands a run splits its output rows into on up to `threads` threads: the pointwise
/// CONV_2D's work floor (`gemm_common::useful_threads` of its product, the bulk of the
/// work), and no more than output rows. The same for any input values.
#[cfg(feature = "std")]
fn bands(pw: &Geom, dw: &Geom, threads: usize) -> usize {
    let pixels = pw.batch.saturating_mul(pw.ih).saturating_mul(pw.iw);
    let rows = dw.batch.saturating_mul(dw.oh);
    gemm_common::useful_threads(threads, pixels, pw.ic, pw.oc, true)
        .min(rows)
        .max(1)
}

/// What every band reads: the two layers and their operands.
struct Fused<'a, 'o> {
    op: &'o OpView<'o>,
    pw: Geom,
    dw: Geom,
    ring: Ring,
    gemm: Gemm<'a>,
    /// `conv_rows`' pointwise form of the GEMM, when the kernel has it.
    form: Option<Rows<'a>>,
    x: &'a [f32],
    /// The depthwise layer's tap pairs, bias and clamp.
    w: &'a [f32],
    bias: &'a [f32],
    lo: f32,
    hi: f32,
    isa: Isa,
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let bad = || op.error("a tensor is not laid out as loading checked");
    let (pw, dw) = geoms(op);
    let (k, c) = (pw.ic, pw.oc);
    let ring = Ring::of(&dw).ok_or_else(bad)?;
    let gemm = Gemm::load(op, mem, true, k, c, P_PW_GEMM)?;
    // CONV_2D's choice for a pointwise layer (`conv::run`): the kernel's convolution
    // variants when it has them, else the GEMM driver.
    let form = match &gemm {
        Gemm::F32 {
            w: FWeights::F32(w),
            bias,
            lo,
            hi,
            ..
        } => crate::kernels::sgemm_kernel()
            .ok()
            .and_then(|ker| Rows::pointwise(pw.iw, k, c, w, *bias, (*lo, *hi), ker, false)),
        _ => None,
    };
    let input = |i: usize| op.input(i).ok_or_else(bad);
    let f = Fused {
        op,
        pw,
        dw,
        ring,
        gemm,
        form,
        x: cast::<f32>(mem.input(input(0)?)?),
        w: cast::<f32>(mem.input(input(DW_W)?)?),
        bias: cast::<f32>(mem.input(input(DW_W + 1)?)?),
        lo: f32::from_bits(op.param(P_DW_LO) as u32),
        hi: f32::from_bits(op.param(P_DW_HI) as u32),
        isa: Isa::detect(),
    };
    let out_t = op.output(0).ok_or_else(bad)?;
    let s_t = op.temp(0).ok_or_else(bad)?;
    #[cfg(feature = "std")]
    let bands = bands(&pw, &dw, mem.threads());
    let (y, scratch) = mem.output_and_temp(out_t, s_t)?;
    let y = cast_mut::<f32>(y);
    let total = dw.batch * dw.oh;
    let y = y.get_mut(..total * dw.ow * c).ok_or_else(bad)?;
    #[cfg(feature = "std")]
    if bands > 1 {
        return f.run_bands(bands, y, scratch);
    }
    f.band(0..total, y, scratch)
}

impl Fused<'_, '_> {
    fn bad(&self) -> Error {
        self.op.error("a tensor is not laid out as loading checked")
    }

    /// Output rows `rows` (image b's row oy is row b·oh + oy) into `y` (those rows), with
    /// `scratch` for the ring and the GEMM workspace. Computes every input row its windows
    /// read, from the first window's on, as one thread running every row computes it: a
    /// row's bytes do not depend on where its band starts.
    fn band(
        &self,
        rows: core::ops::Range<usize>,
        y: &mut [f32],
        scratch: &mut [u8],
    ) -> Result<(), Error> {
        let bad = || self.bad();
        let (pw, dw, ring) = (&self.pw, &self.dw, &self.ring);
        let (k, c) = (pw.ic, pw.oc);
        let (ring_bytes, ws) = scratch.split_at_mut(ring.bytes.min(scratch.len()));
        let slots = cast_mut::<f32>(ring_bytes)
            .get_mut(..ring.slots * ring.row)
            .ok_or_else(bad)?;
        // The pad columns stay 0.0 (set here, once per band); the GEMM writes the image
        // columns.
        let image_at = dw.pl * c;
        for slot in slots.chunks_exact_mut(ring.row) {
            let (left, rest) = slot.split_at_mut(image_at.min(ring.row));
            left.fill(0.0);
            rest.get_mut(pw.iw * c..).unwrap_or(&mut []).fill(0.0);
        }
        let (in_row, out_row) = (pw.iw * k, dw.ow * c);
        let first_row = rows.start;
        // Input rows of image `image` below `done` are in the ring (or read by no window).
        let (mut image, mut done) = (usize::MAX, 0);
        for r in rows {
            let (b, oy) = (r / dw.oh, r % dw.oh);
            if b != image {
                (image, done) = (b, 0);
            }
            let inside = |fy: usize| {
                let iy = dw.in_y(oy, fy);
                (0..dw.ih as i64).contains(&iy).then_some(iy as usize)
            };
            let last = (0..dw.kh).rev().find_map(inside);
            if let (Some(first), Some(last)) = ((0..dw.kh).find_map(inside), last) {
                for iy in first.max(done)..=last {
                    let a = self
                        .x
                        .get((b * pw.ih + iy) * in_row..)
                        .and_then(|a| a.get(..in_row))
                        .ok_or_else(bad)?;
                    let at = iy % ring.slots * ring.row + image_at;
                    let dst = slots.get_mut(at..at + pw.iw * c).ok_or_else(bad)?;
                    match &self.form {
                        Some(f) => f.block(a, 0, pw.iw, dst, &mut [])?,
                        None => self
                            .gemm
                            .run(as_bytes(a), k, pw.iw, as_bytes_mut(dst), ws)?,
                    }
                }
                done = done.max(last + 1);
            }
            let mut rows: [(usize, &[f32]); dwf::MAX_KH] = [(0, &[]); dwf::MAX_KH];
            let mut n = 0;
            for fy in 0..dw.kh {
                if let Some(iy) = inside(fy) {
                    let at = iy % ring.slots * ring.row;
                    rows[n] = (fy, slots.get(at..at + ring.row).ok_or_else(bad)?);
                    n += 1;
                }
            }
            let row = dwf::Row {
                rows: &rows[..n],
                kw: dw.kw,
                col: dw.dw * c,
                step: dw.sw * c,
                oc: c,
                w: self.w,
                bias: self.bias,
                lo: self.lo,
                hi: self.hi,
                count: 1,
                pitch: 0,
                cols: 0,
                lpad: 0,
            };
            let o = (r - first_row) * out_row;
            let out = y.get_mut(o..o + out_row).ok_or_else(bad)?;
            if !dwf::run(self.isa, &row, out) {
                return Err(bad());
            }
        }
        Ok(())
    }

    /// The output rows in `bands` bands on as many threads, band 0 with the arena's
    /// `scratch`, every other with a buffer of its thread's (kept across runs: the arena
    /// holds one thread's scratch). Each band computes the input rows its first window
    /// reads again ((kh − 1)·dh rows at most).
    #[cfg(feature = "std")]
    fn run_bands(&self, bands: usize, y: &mut [f32], scratch: &mut [u8]) -> Result<(), Error> {
        let (dw, c) = (&self.dw, self.pw.oc);
        let total = dw.batch * dw.oh;
        let out_row = dw.ow * c;
        let start = |b: usize| total * b / bands;
        let need = scratch_bytes(&self.pw, dw).ok_or_else(|| self.bad())?;
        let mut parts = crate::threads::Parts::new();
        let (mut rest, mut arena) = (y, Some(scratch));
        for b in 0..bands {
            let (part, r) = rest.split_at_mut((start(b + 1) - start(b)) * out_row);
            parts.push((part, arena.take()));
            rest = r;
        }
        crate::threads::try_run(bands, bands, &|b| {
            let Some(mut part) = parts.lock(b) else {
                return Ok(());
            };
            let (y, arena) = &mut *part;
            let rows = start(b)..start(b + 1);
            match arena.as_deref_mut() {
                Some(s) => self.band(rows, y, s),
                None => crate::scratch::with_workspace(need.div_ceil(4), |ws| {
                    // SAFETY: with_workspace lends this thread a buffer of at least `need`
                    // bytes (rounded up to f32s), used by nothing else meanwhile.
                    let ws = unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, need) };
                    self.band(rows, y, ws)
                }),
            }
        })
    }
}

/// f32 values as their bytes (for the GEMM driver's byte interface).
fn as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: any f32 is 4 initialized bytes; u8 has alignment 1.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast(), core::mem::size_of_val(v)) }
}

/// [`as_bytes`] for writing.
fn as_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; every byte pattern is an f32, so writes keep it valid.
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), core::mem::size_of_val(v)) }
}

#[cfg(feature = "alloc")]
pub(crate) use lower::fuse;

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec::Vec;

    use super::{gemm_common, Geom, Ring, CODE, P_DW};
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::ops::{conv, depthwise_conv, depthwise_f32 as dwf};
    use crate::nn::transform::lower::{LOp, LTensor, Lowering};

    /// No IR node is this operator: the fusion step makes it from two lowered ones.
    pub(super) fn refuse(l: &mut Lowering, node: usize) -> Result<(), Error> {
        Err(l.graph.node_error(
            node,
            "this operator code is edgemm's fused pointwise and depthwise pair, not a model's",
        ))
    }

    /// Geometry words `base..` of `op` (`None` when missing or negative).
    fn geom(op: &LOp, base: usize) -> Option<Geom> {
        let w = op.params.get(base..base + Geom::WORDS)?;
        let u = |i: usize| usize::try_from(w[i]).ok();
        Some(Geom {
            batch: u(0)?,
            ih: u(1)?,
            iw: u(2)?,
            ic: u(3)?,
            oh: u(4)?,
            ow: u(5)?,
            oc: u(6)?,
            kh: u(7)?,
            kw: u(8)?,
            sh: u(9)?,
            sw: u(10)?,
            dh: u(11)?,
            dw: u(12)?,
            pt: u(13)?,
            pl: u(14)?,
        })
    }

    /// The fused operator of lowered CONV_2D `pw` and DEPTHWISE_CONV_2D `dw`, when `dw`'s
    /// input is `pw`'s output and the pair has this operator's form (f32, `pw` pointwise in
    /// the k×n GEMM form, `dw` of multiplier 1 in the tap-pairs form, at most
    /// `depthwise_f32::MAX_KH` filter rows), with its scratch tensor added to `tensors`
    /// (sized for `kernels`'s GEMM workspace); `None` (nothing added) otherwise.
    pub(crate) fn fuse(
        tensors: &mut Vec<LTensor>,
        kernels: gemm_common::Kernels,
        pw: &LOp,
        dw: &LOp,
    ) -> Option<LOp> {
        let f32_tensor = |t: Option<&Option<usize>>| {
            t.copied()
                .flatten()
                .and_then(|t| tensors.get(t))
                .is_some_and(|t| t.dtype == DType::F32)
        };
        let mid = *pw.outputs.first()?;
        let (pg, dg) = (geom(pw, 0)?, geom(dw, 0)?);
        let pw_form = pw.code == conv::DEF.code
            && pw.params.len() == conv::P_GEMM + gemm_common::num_params(true)
            && pw.params[conv::P_IM2COL] == 0
            && pg.pointwise()
            && f32_tensor(pw.inputs.first())
            && pw.inputs.len() <= super::DW_W
            && pw.outputs.len() == 1;
        let dw_form = dw.code == depthwise_conv::DEF.code
            && dw.params.len() == Geom::WORDS + 2
            && dw.inputs.len() == 3
            && dw.inputs[0] == Some(mid)
            && f32_tensor(dw.inputs.get(1))
            && f32_tensor(dw.inputs.get(2))
            && dg.ic == dg.oc
            && dg.kh <= dwf::MAX_KH
            && (dg.batch, dg.ih, dg.iw, dg.ic) == (pg.batch, pg.oh, pg.ow, pg.oc);
        if !pw_form || !dw_form {
            return None;
        }
        let ring = Ring::of(&dg)?;
        let ws = gemm_common::workspace_bytes_for(kernels, true, false, pg.iw, pg.ic, pg.oc);
        let bytes = ring.bytes.checked_add(ws)?;
        let mut params = pw.params[..Geom::WORDS].to_vec();
        params.extend_from_slice(&pw.params[conv::P_GEMM..]);
        debug_assert_eq!(params.len(), P_DW);
        params.extend_from_slice(&dw.params);
        // x, weights, bias, scales (absent for f32 weights), then the depthwise layer's.
        let mut inputs = pw.inputs.clone();
        inputs.resize(super::DW_W, None);
        inputs.extend_from_slice(&dw.inputs[1..]);
        let y = *dw.outputs.first()?;
        tensors.push(LTensor {
            name: format!("{}/expand_dw_scratch", tensors[y].name),
            dtype: DType::U8,
            shape: alloc::vec![bytes],
            quant: None,
            data: None,
            bytes,
        });
        Some(LOp {
            code: CODE,
            inputs,
            outputs: dw.outputs.clone(),
            temps: alloc::vec![tensors.len() - 1],
            params,
            node: dw.node,
            alias: false,
            in_place: false,
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::nn::dtype::DType;
    use crate::nn::transform::blob_writer::{write_blob, WriteOptions};
    use crate::nn::transform::ir::{
        Activation, BuiltinOp, Graph, Node, OpOptions, Padding, Tensor,
    };
    use crate::nn::transform::lower::{lower_fusing, Packing};
    use crate::nn::transform::passes::test_graphs::{run_allocations, run_bytes as run};
    use crate::nn::transform::passes::Pipeline;
    use crate::nn::transform::plan::plan;
    use crate::nn::transform::LoadedModel;

    /// A pair's shapes: input h×w×cin, expansion to c, depthwise kh×kw.
    struct Pair {
        h: usize,
        w: usize,
        cin: usize,
        c: usize,
        k: (usize, usize),
        stride: usize,
        dilation: usize,
        same: bool,
        acts: (Activation, Activation),
        bias: bool,
    }

    fn values(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .flat_map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 2001) as f32 / 1000.0 - 1.0).to_le_bytes()
            })
            .collect()
    }

    /// x → CONV_2D 1×1 → DEPTHWISE_CONV_2D → y, f32.
    fn graph(p: &Pair) -> Graph {
        let t = |name: &str, shape: Vec<usize>, data: Option<Vec<u8>>| Tensor {
            name: String::from(name),
            dtype: DType::F32,
            shape,
            quant: None,
            data,
        };
        let padding = if p.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        let (kh, kw) = p.k;
        let out = |i: usize, k: usize| {
            crate::nn::ops::conv::same_or_valid(padding, i, k, p.stride, p.dilation)
                .unwrap()
                .0
        };
        let (oh, ow) = (out(p.h, kh), out(p.w, kw));
        Graph {
            tensors: vec![
                t("x", vec![1, p.h, p.w, p.cin], None),
                t("pw_w", vec![p.c, 1, 1, p.cin], Some(values(p.c * p.cin, 1))),
                t("pw_b", vec![p.c], Some(values(p.c, 2))),
                t("mid", vec![1, p.h, p.w, p.c], None),
                t("dw_w", vec![1, kh, kw, p.c], Some(values(kh * kw * p.c, 3))),
                t("dw_b", vec![p.c], Some(values(p.c, 4))),
                t("y", vec![1, oh, ow, p.c], None),
            ],
            nodes: vec![
                Node {
                    op: BuiltinOp::Conv2d,
                    version: 1,
                    options: OpOptions::Conv2d {
                        padding: Padding::Valid,
                        stride_w: 1,
                        stride_h: 1,
                        activation: p.acts.0,
                        dilation_w_factor: 1,
                        dilation_h_factor: 1,
                    },
                    inputs: vec![Some(0), Some(1), p.bias.then_some(2)],
                    outputs: vec![3],
                },
                Node {
                    op: BuiltinOp::DepthwiseConv2d,
                    version: 1,
                    options: OpOptions::DepthwiseConv2d {
                        padding,
                        stride_w: p.stride as i32,
                        stride_h: p.stride as i32,
                        depth_multiplier: 1,
                        activation: p.acts.1,
                        dilation_w_factor: p.dilation as i32,
                        dilation_h_factor: p.dilation as i32,
                    },
                    inputs: vec![Some(3), Some(4), p.bias.then_some(5)],
                    outputs: vec![6],
                },
            ],
            inputs: vec![0],
            outputs: vec![6],
        }
    }

    /// The model lowered with (`fuse`) or without the fusion, and its operator codes.
    fn load(g: &Graph, packing: Packing, fuse: bool) -> (LoadedModel, Vec<u16>) {
        let l = lower_fusing(g, packing, if fuse { 0 } else { usize::MAX }).unwrap();
        let codes = l.ops.iter().map(|o| o.code).collect();
        let p = plan(&l);
        let blob = write_blob(&l, &p, WriteOptions::default()).unwrap();
        (LoadedModel::from_blob(&blob).unwrap(), codes)
    }

    /// A fused operator whose words or tensors do not fit together is refused at load with
    /// an error naming it (never a panic, never a run past its tensors).
    #[test]
    fn inconsistent_forms_are_refused_at_load() {
        use super::{P_DW, P_PW};
        let p = Pair {
            h: 9,
            w: 7,
            cin: 4,
            c: 16,
            k: (3, 3),
            stride: 2,
            dilation: 1,
            same: true,
            acts: (Activation::Relu6, Activation::Relu6),
            bias: true,
        };
        let g = graph(&p);
        // (word, value): the pointwise or depthwise geometry or clamp changed.
        let edits: [(usize, i32); 9] = [
            (P_PW + 2, 8),         // the pointwise input width
            (P_PW + 7, 3),         // a 3-tall pointwise filter
            (P_DW + 1, 10),        // the depthwise input height
            (P_DW + 6, 8),         // a depth multiplier of 1/2
            (P_DW + 7, 17),        // a filter taller than the row code takes
            (P_DW + 9, 0),         // stride 0
            (P_DW + 4, 6),         // output rows the output does not hold
            (P_DW + 14, i32::MAX), // padding that overflows the ring
            (P_DW, -1),            // a negative word (the batch)
        ];
        for (word, value) in edits {
            let mut l = lower_fusing(&g, Packing::Host, 0).unwrap();
            assert_eq!(l.ops.len(), 1);
            l.ops[0].params[word] = value;
            let blob = write_blob(&l, &plan(&l), WriteOptions::default()).unwrap();
            let err = LoadedModel::from_blob(&blob).map(|_| ()).unwrap_err();
            assert!(
                format!("{err}").contains("CONV_2D+DEPTHWISE_CONV_2D"),
                "word {word} = {value}: {err}"
            );
        }
        // A scratch tensor short of the ring and the workspace.
        let mut l = lower_fusing(&g, Packing::Host, 0).unwrap();
        let s = l.ops[0].temps[0];
        l.tensors[s].bytes -= 64;
        l.tensors[s].shape = vec![l.tensors[s].bytes];
        let blob = write_blob(&l, &plan(&l), WriteOptions::default()).unwrap();
        assert!(LoadedModel::from_blob(&blob).is_err());
    }

    /// Two images: bands that start in the second image (3 bands) or at its first row (2)
    /// give the bytes of the two operators apart.
    #[test]
    fn bands_across_images_give_the_bytes_of_the_two_operators() {
        let p = Pair {
            h: 30,
            w: 27,
            cin: 24,
            c: 96,
            k: (3, 3),
            stride: 1,
            dilation: 1,
            same: true,
            acts: (Activation::Relu6, Activation::Relu6),
            bias: true,
        };
        let mut g = graph(&p);
        for t in [0, 3, 6] {
            g.tensors[t].shape[0] = 2;
        }
        let x = values(2 * p.h * p.w * p.cin, 5);
        let (apart, _) = load(&g, Packing::Host, false);
        let (fused, codes) = load(&g, Packing::Host, true);
        assert_eq!(codes, [super::CODE]);
        let op = fused.model().op(0).unwrap();
        let (pw, dw) = super::geoms(&op);
        assert_eq!((dw.batch, super::bands(&pw, &dw, 3)), (2, 3));
        let want = run(&apart, &x, 1);
        for threads in [1, 2, 3] {
            assert!(run(&fused, &x, threads) == want, "{threads} threads");
            // Its bands' pieces kept on the stack: a run allocates nothing.
            let allocs = run_allocations(&fused, &x, threads);
            assert_eq!(allocs, 0, "{threads} threads");
        }
    }

    /// The fused operator gives the bytes of the two operators apart: odd sizes, stride 1
    /// and 2, SAME and VALID, dilation, taller and wider filters, channel counts below,
    /// at and above the vector widths, fused activations, with and without biases, one
    /// thread, two and three (shapes split into 2 and 3 bands), host and portable blobs, f32
    /// and int8 pointwise weights.
    #[test]
    fn fused_pair_gives_the_bytes_of_the_two_operators() {
        use Activation::{None as No, Relu, Relu6};
        let cases = [
            (9, 11, 5, 7, (3, 3), 1, 1, true, (Relu6, Relu6), true),
            (9, 11, 5, 7, (3, 3), 2, 1, true, (Relu6, No), true),
            (10, 9, 3, 20, (3, 3), 2, 1, false, (Relu, Relu6), true),
            (13, 17, 16, 96, (3, 3), 2, 1, true, (Relu6, Relu6), true),
            (12, 14, 24, 144, (3, 3), 1, 1, true, (Relu6, Relu6), true),
            (7, 8, 8, 32, (3, 3), 1, 2, true, (No, Relu), false),
            (11, 6, 4, 48, (5, 3), 1, 1, false, (Relu6, No), true),
            (8, 9, 6, 16, (3, 5), 2, 1, true, (No, No), true),
            (15, 13, 9, 40, (3, 3), 3, 1, false, (Relu6, Relu6), true),
            (5, 5, 3, 33, (1, 1), 2, 1, true, (Relu, Relu), true),
            // Over the work floor: 3 bands on 3 threads (stride 1, two overlap rows; 3×3
            // with dilation 2, four; stride 2, one row).
            (41, 33, 32, 80, (3, 3), 1, 1, true, (Relu6, Relu6), true),
            (37, 29, 40, 80, (3, 3), 1, 2, true, (Relu6, No), true),
            (45, 21, 24, 96, (3, 3), 2, 1, true, (Relu6, Relu6), false),
        ];
        // The band counts seen on 3 threads: 1, 2 and 3 must each occur.
        let mut splits = std::collections::BTreeSet::new();
        for (h, w, cin, c, k, stride, dilation, same, acts, bias) in cases {
            let p = Pair {
                h,
                w,
                cin,
                c,
                k,
                stride,
                dilation,
                same,
                acts,
                bias,
            };
            let g = graph(&p);
            // With the pointwise weights as int8 and scales (`quantize_weights`) too.
            let mut q = g.clone();
            Pipeline::parse("quantize_weights(minimum_size=0)")
                .unwrap()
                .run(&mut q, |_, _, _, _| {})
                .unwrap();
            let wq = q.nodes[0].inputs[1].unwrap();
            assert_eq!(q.tensors[wq].dtype, DType::I8);
            let x = values(h * w * cin, 9);
            let routes = [
                (&g, Packing::Host),
                (&g, Packing::Portable),
                (&q, Packing::Host),
            ];
            for (g, packing) in routes {
                let (apart, codes) = load(g, packing, false);
                assert_eq!(codes, [3, 4]);
                let (fused, codes) = load(g, packing, true);
                assert_eq!(codes, [super::CODE]);
                let want = run(&apart, &x, 1);
                let what = format!("{h}x{w}x{cin}->{c} k{k:?} s{stride} d{dilation} same {same}");
                let same = |got: Vec<u8>, threads: usize| {
                    let f = |b: &[u8]| -> Vec<f32> {
                        b.chunks_exact(4)
                            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                            .collect()
                    };
                    let (g, w) = (f(&got), f(&want));
                    let bad = g
                        .iter()
                        .zip(&w)
                        .position(|(a, b)| a.to_bits() != b.to_bits());
                    assert!(
                        bad.is_none() && g.len() == w.len(),
                        "{what} {packing:?}, {threads} threads: at {bad:?} {:?} want {:?}",
                        bad.map(|i| &g[i..(i + 8).min(g.len())]),
                        bad.map(|i| &w[i..(i + 8).min(w.len())]),
                    );
                };
                same(run(&fused, &x, 1), 1);
                // Every band's rows as one thread computes them (its ring filled from its
                // first window's rows): on 2 and 3 threads, split where the floor allows.
                let op = fused.model().op(0).unwrap();
                let (pw, dw) = super::geoms(&op);
                let macs = h * w * cin * c;
                for threads in [2, 3] {
                    let bands = super::bands(&pw, &dw, threads);
                    let floor = crate::nn::ops::gemm_common::MIN_MACS_PER_THREAD;
                    let want_bands = threads.min(macs / floor).min(dw.oh).max(1);
                    assert_eq!(bands, want_bands, "{what}");
                    same(run(&fused, &x, threads), threads);
                }
                splits.insert(super::bands(&pw, &dw, 3));
                // From an arena of NaNs (the ring's pads must be set by the run itself).
                let mut arena = vec![u128::MAX; fused.model().arena_size().div_ceil(16) + 1];
                // SAFETY: u128 to bytes (alignment 1, every byte initialized).
                let (_, bytes, _) = unsafe { arena.align_to_mut::<u8>() };
                let mut s = crate::nn::Session::new(fused.model(), bytes).unwrap();
                s.set_input(0, &x).unwrap();
                s.run().unwrap();
                same(s.output(0).unwrap().to_vec(), 1);
                let arenas = (apart.model().arena_size(), fused.model().arena_size());
                assert!(
                    arenas.1 <= arenas.0 + 64 * 1024,
                    "{what}: arenas {arenas:?}"
                );
            }
        }
        assert_eq!(splits.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    }
}

//! What the GEMM-based operators (FULLY_CONNECTED, CONV_2D) share: one GEMM over weights
//! laid out at conversion, with TFLite's output stage.
//!
//! Blob form of the GEMM part (the operator puts it after its own tensors and words).
//! Inputs 1..: weights (int8: packed for a kernel (`DType::Packed`) or k×n i8; f32: k×n
//! f32, or k×n i8 quantized per output channel), bias (n, optional: i32 for int8, f32 for
//! f32), and for int8 the multipliers and shifts (n, or 1 per tensor; TFLite's
//! `QuantizeMultiplier` of `s_x·s_w/s_y`), for f32 with i8 weights their scales (n f32,
//! `w = q·scale[column]`, symmetric: what `quantize_weights` writes). Parameter words from
//! `base`: int8: x zero point, weights zero point, output zero point, clamp min, clamp max;
//! f32: clamp min and max as f32 bits.
//!
//! The int8 product is exact (i32 sums of `(x − z_x)·(w − z_w)`) and the output stage is
//! `qgemm`'s `Requantize`: bias, TFLite's `MultiplyByQuantizedMultiplier` (double
//! rounding), zero point, clamp — the arithmetic of TFLite's reference kernels. The f32
//! product is `sgemm` (int8 weights: each panel of B widened to `q·scale` as the GEMM packs
//! it, `gemm::sgemm_ws_widened`, so the arena holds no f32 copy of them), then bias and
//! clamp.

use super::checks;
use super::{cast, cast_mut, F32Form, OpMem};
use crate::context::Context;
use crate::error::Error;
pub(crate) use crate::kernels::targets::Kernels;
use crate::matrix::{MatMut, MatRef};
use crate::nn::blob::{OpView, Storage};
use crate::nn::dtype::DType;
use crate::quant::{
    max_exact_k, qgemm, qgemm_packed_workspace_size, qgemm_workspace_size, PackedQBRef, QgemmB,
    Requantize, Requantized, Scale, WsPlan,
};

// Parameter words after `base`.
const P_ZA: usize = 0;
const P_ZB: usize = 1;
const P_ZO: usize = 2;
const P_LO: usize = 3;
const P_HI: usize = 4;
pub(crate) const P_FLO: usize = 0;
pub(crate) const P_FHI: usize = 1;

/// Parameter words of the GEMM part: int8 or f32.
pub(crate) const fn num_params(float: bool) -> usize {
    if float {
        2
    } else {
        5
    }
}

/// Input tensors of the GEMM part (weights, bias, and for int8 multipliers and shifts; for
/// f32 with int8 weights their scales).
pub(crate) fn num_inputs(op: &OpView, float: bool) -> usize {
    match (float, f32_int8_weights(op)) {
        (true, true) => 3,
        (true, false) => 2,
        _ => 4,
    }
}

/// Whether an f32 operator's weights (input 1) are int8 with scales (`quantize_weights`).
fn f32_int8_weights(op: &OpView) -> bool {
    op.input(1).and_then(|t| op.model().dtype(t)) == Some(DType::I8)
}

/// Bytes of GEMM workspace an m×k·k×n product needs.
pub(crate) fn workspace_bytes(float: bool, packed: bool, m: usize, k: usize, n: usize) -> usize {
    if float {
        crate::gemm::sgemm_workspace_size(m, n, k)
    } else if packed {
        qgemm_packed_workspace_size(m, n, k)
    } else {
        qgemm_workspace_size(m, n, k)
    }
}

/// [`workspace_bytes`] in the build of `kernels` (a conversion target's, when lowering).
pub(crate) fn workspace_bytes_for(
    kernels: Kernels,
    float: bool,
    packed: bool,
    m: usize,
    k: usize,
    n: usize,
) -> usize {
    match kernels {
        Kernels::Build => workspace_bytes(float, packed, m, k, n),
        _ if float => crate::gemm::sgemm_workspace_size_for(kernels, m, n, k),
        _ => crate::quant::qgemm_workspace_size_for(kernels, m, n, k, !packed),
    }
}

/// Whether input 0 (A) is f32 (else int8): read on every run, so without the tensor's name.
/// An error without the feature `f32` (see [`checks::float_form`]).
#[inline(always)]
pub(crate) fn is_float(op: &OpView) -> Result<bool, Error> {
    let float = op
        .input(0)
        .and_then(|t| op.model().dtype(t))
        .ok_or_else(|| op.error("a required input is missing"))?
        == DType::F32;
    checks::float_form(op, float)
}

/// Validates the GEMM part of an operator whose A operand (input 0) has dtype `x` (f32 or
/// i8) and output 0 matches it: inputs 1 to 4, parameter words from `base`, k and n. Returns
/// whether the weights are packed. Everything [`Gemm::run`] needs to run without error.
pub(crate) fn check(
    op: &OpView,
    float: bool,
    k: usize,
    n: usize,
    base: usize,
) -> Result<bool, Error> {
    let x = checks::input(op, 0)?;
    let y = checks::output(op, 0)?;
    let w = checks::input(op, 1)?;
    let elems = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| op.error("sizes overflow"));
    if let Some(b) = op.input(2).and_then(|t| op.model().tensor(t)) {
        let want = if float { DType::F32 } else { DType::I32 };
        checks::dtype(op, &b, want)?;
        if b.elems() != n {
            return Err(op.error("the bias has the wrong length"));
        }
    } else if op.input(2).is_some() {
        return Err(op.error("the bias names a missing tensor"));
    }
    if float {
        checks::dtype(op, &x, DType::F32)?;
        checks::dtype(op, &y, DType::F32)?;
        if w.dtype == DType::I8 {
            let s = checks::input(op, 3)?;
            checks::dtype(op, &s, DType::F32)?;
            if s.elems() != n {
                return Err(op.error("the weight scales do not match the output channels"));
            }
        } else {
            checks::dtype(op, &w, DType::F32)?;
        }
        if w.elems() != elems(k, n)? {
            return Err(op.error("the weights have the wrong size"));
        }
        return Ok(false);
    }
    checks::dtype(op, &x, DType::I8)?;
    checks::dtype(op, &y, DType::I8)?;
    let packed = w.dtype == DType::Packed;
    if packed {
        if w.storage != Storage::Constant {
            return Err(op.error("packed weights are not a constant"));
        }
        let p = PackedQBRef::from_bytes(op.model().constant(op.input(1).unwrap_or(0)))?;
        if p.rows() != k || p.cols() != n {
            return Err(op.error("the packed weights have the wrong shape"));
        }
    } else {
        checks::dtype(op, &w, DType::I8)?;
        if w.elems() != elems(k, n)? {
            return Err(op.error("the weights have the wrong size"));
        }
    }
    check_scales(op, n, 3, DType::I32)?;
    let p = |i: usize| op.param(base + i);
    let i8_range = -128..=127;
    if !i8_range.contains(&p(P_ZA)) || !i8_range.contains(&p(P_ZB)) || !i8_range.contains(&p(P_ZO))
    {
        return Err(op.error("a zero point is out of the int8 range"));
    }
    if p(P_LO).max(-128) > p(P_HI).min(127) {
        return Err(op.error("the output clamp is empty"));
    }
    if k > max_exact_k::<i8>(p(P_ZA), p(P_ZB)) {
        return Err(op.error("the GEMM depth is too large for exact int8 sums"));
    }
    Ok(packed)
}

/// The int8 parameter words of the GEMM part (from `base`).
pub(crate) struct Int8Words {
    pub za: i32,
    pub zb: i32,
    pub zo: i32,
    pub lo: i32,
    pub hi: i32,
}

impl Int8Words {
    pub(crate) fn of(op: &OpView, base: usize) -> Self {
        let p = |i: usize| op.param(base + i);
        Int8Words {
            za: p(P_ZA),
            zb: p(P_ZB),
            zo: p(P_ZO),
            lo: p(P_LO),
            hi: p(P_HI),
        }
    }
}

/// Validates the int8 requantization scales of an operator with `n` output channels:
/// inputs `i` (multipliers, i32) and `i + 1` (shifts, constants of element type `shift`: i32,
/// or i8 in CONV_2D's direct form), 1 or `n` entries each, every shift in −31..=30.
// Not inlined: load time only, one copy for every operator (firmware size).
#[inline(never)]
pub(crate) fn check_scales(op: &OpView, n: usize, i: usize, shift: DType) -> Result<(), Error> {
    // The places and element types only, not whole tensor records (whose copies cost a
    // firmware most of this function's code).
    let model = op.model();
    let tensor = |i: usize| {
        op.input(i)
            .and_then(|t| Some((model.place(t)?, model.dtype(t)?)))
            .ok_or_else(|| op.error("a required input is missing"))
    };
    let (mults, mt) = tensor(i)?;
    let (shifts, st) = tensor(i + 1)?;
    if mt != DType::I32 || st != shift {
        return Err(op.error("a tensor has the wrong element type"));
    }
    // Loading checked every tensor's byte length against its shape before any operator's
    // check.
    let (nm, ns) = (mults.bytes / 4, shifts.bytes / shift.size());
    if nm != ns || (nm != 1 && nm != n) {
        return Err(op.error("multipliers and shifts do not match the output channels"));
    }
    if shifts.storage != Storage::Constant {
        return Err(op.error("the shifts are not a constant"));
    }
    let bytes = model.constant_at(shifts);
    let in_range = |s: i32| (-31..=30).contains(&s);
    let ok = if shift == DType::I8 {
        cast::<i8>(bytes).iter().all(|&s| in_range(s.into()))
    } else {
        cast::<i32>(bytes).iter().all(|&s| in_range(s))
    };
    if !ok {
        return Err(op.error("a requantization shift is out of range"));
    }
    Ok(())
}

/// The int8 weights: packed for a kernel, or a k×n view.
#[derive(Clone, Copy)]
pub(crate) enum QWeights<'a> {
    Packed(PackedQBRef<'a>),
    View(&'a [i8]),
}

/// The f32 weights: k×n f32, or k×n int8 with a scale per column.
#[derive(Clone, Copy)]
pub(crate) enum FWeights<'a> {
    F32(&'a [f32]),
    I8 { q: &'a [i8], scales: &'a [f32] },
}

/// The GEMM part of a checked operator, ready to run over blocks of A rows.
// (One per operator run, on the stack: the int8 plan's size costs nothing, and boxing it
// would need `alloc`.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy)]
pub(crate) enum Gemm<'a> {
    /// (Uninhabited without the feature `f32`: its arms compile out.)
    F32 {
        _form: F32Form,
        w: FWeights<'a>,
        bias: Option<&'a [f32]>,
        lo: f32,
        hi: f32,
        k: usize,
        n: usize,
    },
    I8 {
        w: QWeights<'a>,
        rq: Requantize<'a>,
        za: i32,
        zb: i32,
        k: usize,
        n: usize,
        /// The call checked once for every block of rows (`None`: not [`Gemm::plan`]ned, or
        /// k or n is 0; the calls go through `qgemm`).
        plan: Option<WsPlan<'a>>,
    },
}

impl<'a> Gemm<'a> {
    /// Reads the GEMM part (inputs 1 to 4, words from `base`) of a checked operator.
    pub(crate) fn load(
        op: &OpView,
        mem: &OpMem<'a>,
        float: bool,
        k: usize,
        n: usize,
        base: usize,
    ) -> Result<Self, Error> {
        Self::load_from(op, |t| mem.input(t).map_err(Error::from), float, k, n, base)
    }

    /// [`Gemm::load`] when inputs 1 to 4 are constants (an error else): with the model's
    /// lifetime, for a plan made before any run.
    #[cfg(feature = "alloc")]
    pub(crate) fn load_constants(
        op: &OpView<'a>,
        float: bool,
        k: usize,
        n: usize,
        base: usize,
    ) -> Result<Self, Error> {
        let model = *op.model();
        let constant = |t: usize| match model.place(t) {
            Some(p) if p.storage == Storage::Constant => Ok(model.constant_at(p)),
            _ => Err(op.error("a GEMM input is not a constant")),
        };
        Self::load_from(op, constant, float, k, n, base)
    }

    /// [`Gemm::load`] with tensor `t`'s bytes from `input(t)`.
    fn load_from(
        op: &OpView,
        input: impl Fn(usize) -> Result<&'a [u8], Error>,
        float: bool,
        k: usize,
        n: usize,
        base: usize,
    ) -> Result<Self, Error> {
        let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
        let w = input(t(1)?)?;
        let bias = op.input(2).map(&input).transpose()?;
        let p = |i: usize| op.param(base + i);
        if float {
            let w = match op.input(3) {
                Some(s) => FWeights::I8 {
                    q: cast::<i8>(w),
                    scales: cast::<f32>(input(s)?),
                },
                None => FWeights::F32(cast::<f32>(w)),
            };
            return Ok(Gemm::F32 {
                _form: F32Form::get(op)?,
                w,
                bias: bias.map(cast::<f32>),
                lo: f32::from_bits(p(P_FLO) as u32),
                hi: f32::from_bits(p(P_FHI) as u32),
                k,
                n,
            });
        }
        let packed = op.model().dtype(t(1)?) == Some(DType::Packed);
        let w = if packed {
            QWeights::Packed(PackedQBRef::from_bytes(w)?)
        } else {
            QWeights::View(cast::<i8>(w))
        };
        let mults = cast::<i32>(input(t(3)?)?);
        let shifts = cast::<i32>(input(t(4)?)?);
        let scale = match (mults, shifts) {
            ([multiplier], [shift]) => Scale::PerTensor {
                multiplier: *multiplier,
                shift: *shift,
            },
            _ => Scale::PerChannel {
                multipliers: mults,
                shifts,
            },
        };
        let mut rq = Requantize::new(scale, p(P_ZO)).with_clamp(p(P_LO), p(P_HI));
        if let Some(b) = bias {
            rq = rq.with_bias(cast::<i32>(b));
        }
        Ok(Gemm::I8 {
            w,
            rq,
            za: p(P_ZA),
            zb: p(P_ZB),
            k,
            n,
            plan: None,
        })
    }

    /// With the int8 GEMM's plan for this run (shapes, zero points and requantization checked
    /// and the layouts computed once, not per block of rows). Made only where blocks run:
    /// FULLY_CONNECTED's one-row path needs none, and for a small layer the plan would cost
    /// as much as the product. `blocks`: the plan runs over blocks of rows (`WsPlan::run`,
    /// `run_over_input`), not only `run_segmented` (which needs no workspace layout).
    pub(crate) fn plan(&mut self, blocks: bool) -> Result<(), Error> {
        if let Gemm::I8 {
            w,
            rq,
            za,
            zb,
            k,
            n,
            plan,
        } = self
        {
            let b = match *w {
                QWeights::Packed(p) => QgemmB::from(p),
                QWeights::View(w) => QgemmB::from(MatRef::row_major(w, *k, *n)?),
            };
            *plan = WsPlan::new(b, *za, *zb, rq, blocks)?;
        }
        Ok(())
    }

    /// The int8 GEMM's plan, once [`Gemm::plan`]ned (`None` for f32, or k or n of 0).
    pub(crate) fn ws_plan(&self) -> Option<&WsPlan<'a>> {
        match self {
            Gemm::I8 { plan, .. } => plan.as_ref(),
            Gemm::F32 { .. } => None,
        }
    }

    #[cfg(feature = "std")]
    /// Columns a column task of [`Gemm::run_cols`] starts on a multiple of: int8 over
    /// prepacked weights (a sliver); `None` for the others (f32 splits columns only in
    /// `conv_rows`' pointwise form).
    pub(crate) fn col_unit(&self) -> Option<usize> {
        self.ws_plan().and_then(|p| p.col_unit())
    }

    #[cfg(feature = "std")]
    /// Columns `j0..j1` (`j0` a multiple of [`Gemm::col_unit`]) of `out (m×n) = stage(a
    /// (m×k, rows `a_stride` apart) · W)` for int8 A, written through `out`: the bytes one
    /// [`Gemm::run`] of all the columns writes there.
    ///
    /// # Safety
    /// `out` overlaps neither `a` nor `ws`, and no one else reads or writes its columns
    /// `j0..j1` meanwhile.
    pub(crate) unsafe fn run_cols(
        &self,
        a: &[u8],
        a_stride: usize,
        m: usize,
        out: SharedOut,
        cols: (usize, usize),
        ws: &mut [u8],
    ) -> Result<(), Error> {
        let (Some(plan), Gemm::I8 { n, .. }) = (self.ws_plan(), self) else {
            return Err(Error::SizeOverflow);
        };
        let y = out.first::<u8>(m.checked_mul(*n).ok_or(Error::SizeOverflow)?)?;
        // SAFETY: `y` holds the m·n output bytes (checked), apart from A and `ws`, its
        // columns j0..j1 this call's alone (caller).
        unsafe { plan.run_cols(cast::<i8>(a), a_stride, m, y, cols, ws) }
    }

    /// Rows per thread task: at least [`ROW_UNIT`], in whole row tiles of the kernel that
    /// runs (a task boundary inside a tile would add a partial tile to each side).
    pub(crate) fn row_unit(&self) -> usize {
        ROW_UNIT.div_ceil(self.tile_rows()) * self.tile_rows()
    }

    /// Rows of the kernel's tile (MR) that runs this product (1 without a kernel).
    pub(crate) fn tile_rows(&self) -> usize {
        match self {
            Gemm::F32 { .. } => crate::kernels::sgemm_kernel().map_or(1, |k| k.mr),
            Gemm::I8 {
                w: QWeights::Packed(p),
                ..
            } => p.kernel().mr,
            Gemm::I8 { .. } => crate::kernels::qgemm_kernel().map_or(1, |k| k.mr),
        }
        .max(1)
    }

    /// Whether the int8 kernel that runs reads A as unsigned bytes (`a + 128`, x86 VNNI): an
    /// operator that writes A itself (im2col) then writes it so ([`Gemm::run_unsigned`]),
    /// and the GEMM reads it in place instead of packing and converting it.
    pub(crate) fn wants_unsigned_a(&self) -> bool {
        let format = match self {
            Gemm::F32 { .. } => return false,
            Gemm::I8 {
                w: QWeights::Packed(p),
                ..
            } => p.kernel().format,
            Gemm::I8 { .. } => match crate::kernels::qgemm_kernel() {
                Ok(k) => k.format,
                Err(_) => return false,
            },
        };
        format.a_shift(true) != 0
    }

    /// `out (m×n) = stage(a (m×k) · W)`, `a` and `out` row-major bytes of the operator's
    /// element type (rows of `a` `a_stride` elements apart: im2col pads them to 4 bytes so
    /// the int8 packer moves whole 4-byte groups), `ws` the GEMM workspace
    /// ([`workspace_bytes`] for m rows).
    pub(crate) fn run(
        &self,
        a: &[u8],
        a_stride: usize,
        m: usize,
        out: &mut [u8],
        ws: &mut [u8],
    ) -> Result<(), Error> {
        self.run_a(a, a_stride, m, out, ws, false)
    }

    /// [`Gemm::run`] for int8 A given as unsigned bytes, each `a ^ 0x80` (= a + 128), with
    /// the zero point moved by 128 to match: the same exact sums.
    pub(crate) fn run_unsigned(
        &self,
        a: &[u8],
        a_stride: usize,
        m: usize,
        out: &mut [u8],
        ws: &mut [u8],
    ) -> Result<(), Error> {
        self.run_a(a, a_stride, m, out, ws, true)
    }

    fn run_a(
        &self,
        a: &[u8],
        a_stride: usize,
        m: usize,
        out: &mut [u8],
        ws: &mut [u8],
        unsigned: bool,
    ) -> Result<(), Error> {
        let stride = isize::try_from(a_stride).map_err(|_| Error::SizeOverflow)?;
        match self {
            Gemm::F32 {
                w,
                bias,
                lo,
                hi,
                k,
                n,
                ..
            } => {
                let (k, n) = (*k, *n);
                let y = cast_mut::<f32>(out);
                let y = y.get_mut(..m * n).ok_or(Error::SizeOverflow)?;
                let a = MatRef::new(cast::<f32>(a), m, k, stride, 1)?;
                let c = MatMut::row_major(&mut *y, m, n)?;
                match w {
                    FWeights::F32(w) => {
                        let b = MatRef::row_major(w, k, n)?;
                        crate::gemm::sgemm(1.0, a, b, 0.0, c, Context::new().workspace(ws))?
                    }
                    FWeights::I8 { q, scales } => {
                        let q = MatRef::row_major(q, k, n)?;
                        crate::gemm::sgemm_ws_widened(a, q, scales, c, ws)?
                    }
                }
                // Bias and clamp in one pass over the block just computed, while it is in
                // cache.
                let bias = match bias {
                    Some(b) => Some(b.get(..n).ok_or(Error::SizeOverflow)?),
                    None => None,
                };
                bias_clamp(y, n, bias, *lo, *hi);
                Ok(())
            }
            Gemm::I8 {
                plan: Some(plan), ..
            } => {
                if unsigned {
                    plan.run(a, a_stride, m, out, ws)
                } else {
                    plan.run(cast::<i8>(a), a_stride, m, out, ws)
                }
            }
            Gemm::I8 {
                w,
                rq,
                za,
                zb,
                k,
                n,
                plan: None,
            } => {
                let c = Requantized(rq, MatMut::row_major(cast_mut::<i8>(out), m, *n)?);
                let ctx = Context::new().workspace(ws);
                let b = match w {
                    QWeights::Packed(p) => QgemmB::from(*p),
                    QWeights::View(w) => QgemmB::from(MatRef::row_major(w, *k, *n)?),
                };
                if unsigned {
                    let a = MatRef::new(a, m, *k, stride, 1)?;
                    qgemm(a, *za + 128, b, *zb, c, ctx)
                } else {
                    let a = MatRef::new(cast::<i8>(a), m, *k, stride, 1)?;
                    qgemm(a, *za, b, *zb, c, ctx)
                }
            }
        }
    }
}

/// `y ← clamp(y + bias)` for every row of n values of `y` (no bias: the clamp only; no bias
/// and an infinite clamp: nothing). The clamp is TFLite's `min(max(v, lo), hi)`, written as
/// compares so it vectorizes (`f32::max` would also order NaNs, a blend per vector).
pub(crate) fn bias_clamp(y: &mut [f32], n: usize, bias: Option<&[f32]>, lo: f32, hi: f32) {
    if bias.is_none() && lo == f32::NEG_INFINITY && hi == f32::INFINITY {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use crate::arch::{cpu_info, Features};
        if cpu_info().features.contains(Features::AVX512F) {
            // SAFETY: the CPU has AVX-512F (checked).
            return unsafe { bias_clamp_avx512(y, n, bias, lo, hi) };
        }
        if cpu_info().features.contains(Features::AVX2) {
            // SAFETY: the CPU has AVX2 (checked).
            return unsafe { bias_clamp_avx2(y, n, bias, lo, hi) };
        }
    }
    bias_clamp_body(y, n, bias, lo, hi);
}

/// [`bias_clamp`]'s loop, compiled for each vector width.
#[inline(always)]
fn bias_clamp_body(y: &mut [f32], n: usize, bias: Option<&[f32]>, lo: f32, hi: f32) {
    let clamp = |v: f32| {
        let v = if v < lo { lo } else { v };
        if hi < v {
            hi
        } else {
            v
        }
    };
    match bias {
        Some(bias) => {
            for row in y.chunks_exact_mut(n.max(1)) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = clamp(*v + *b);
                }
            }
        }
        None => {
            for v in y.iter_mut() {
                *v = clamp(*v);
            }
        }
    }
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn bias_clamp_avx512(y: &mut [f32], n: usize, bias: Option<&[f32]>, lo: f32, hi: f32) {
    bias_clamp_body(y, n, bias, lo, hi)
}

/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bias_clamp_avx2(y: &mut [f32], n: usize, bias: Option<&[f32]>, lo: f32, hi: f32) {
    bias_clamp_body(y, n, bias, lo, hi)
}

/// The fewest rows a thread's task of a GEMM operator takes (see [`Gemm::row_unit`]): every
/// GEMM call then has at least this many rows (or all of them), so no call takes the
/// one-row path of a thread count and the blocked path of another (f32 sums in another
/// order): results do not depend on the thread count.
pub(crate) const ROW_UNIT: usize = 16;

/// The calls of one task: rows `r0..r0 + len` in `ceil(len / block)` nearly equal parts
/// (the same rule for one task or many; see [`ROW_UNIT`]). Yields (first row, rows).
pub(crate) fn sub_blocks(
    r0: usize,
    len: usize,
    block: usize,
) -> impl DoubleEndedIterator<Item = (usize, usize)> {
    let parts = len.div_ceil(block.max(1));
    (0..parts).map(move |i| {
        let (a, b) = (len * i / parts, len * (i + 1) / parts);
        (r0 + a, b - a)
    })
}

/// Multiply-adds of an f32 product below which one more thread costs more than it saves.
/// Low enough that every layer of DS-CNN splits, and MobileNet-v1 0.25's down to 12×12
/// (its 6×6 ones have fewer than two row units): a layer left on one thread between split
/// ones reads the half of its input the other core wrote, and writes lines that core
/// holds, which costs more than the split saves (DS-CNN f32 on two threads: 54.6 µs with
/// 1 M, 65 with 256 K (its first layer, 320 K MACs, alone on one thread), 45.4 with
/// 128 K; MobileNet-v1 0.25 f32 170 → 152; Zen 4, 2 vCPUs).
pub(crate) const MIN_MACS_PER_THREAD: usize = 1 << 17;

/// The same for int8 products (DS-CNN int8 on two threads 34.6 → 32.6 µs, MobileNet-v1
/// 0.25 int8 101 → 92.5 from 256 K to 128 K; Zen 4).
const MIN_MACS_PER_THREAD_I8: usize = 1 << 17;

/// Bytes of weights a thread streams in a one-row product (m = 1: each weight read once,
/// from memory for a large layer) below which one more thread, splitting the columns,
/// costs more than it saves: the one-row kernels' layers up to 512 KB (the autoencoder's,
/// DS-CNN's, MobileNet-v1's) stay on one thread; MobileNet-v2's 1280 → 1000 classifier
/// (1.25 MB int8, 5 MB f32) splits.
#[cfg(feature = "std")]
const MIN_ONE_ROW_BYTES_PER_THREAD: usize = 512 * 1024;

/// The threads worth using for a one-row product over k×n weights of `w_size` bytes each
/// (at most `threads`), which split its columns.
#[cfg(feature = "std")]
pub(crate) fn one_row_threads(threads: usize, k: usize, n: usize, w_size: usize) -> usize {
    let bytes = k.saturating_mul(n).saturating_mul(w_size);
    threads.min(bytes / MIN_ONE_ROW_BYTES_PER_THREAD).max(1)
}

#[cfg(feature = "std")]
/// One call of [`run_one_row`]'s closure: the task's first column, its columns of the row.
pub(crate) type OneRowFn<'f, T> = dyn Fn(usize, &mut [T]) -> Result<(), Error> + Sync + 'f;

/// Runs `f(j0, y)` over the columns of one output row `y` (n elements) in `parts` tasks of
/// whole `col_unit`s (the last also takes the columns past the last whole one) on up to
/// `parts` threads, `y` the task's columns `j0..`.
#[cfg(feature = "std")]
pub(crate) fn run_one_row<T: Send>(
    y: &mut [T],
    col_unit: usize,
    parts: usize,
    f: &OneRowFn<T>,
) -> Result<(), Error> {
    let n = y.len();
    let units = n / col_unit.max(1);
    let parts = parts.min(units).max(1);
    let start = |t: usize| {
        if t == parts {
            n
        } else {
            units * t / parts * col_unit
        }
    };
    let chunks = crate::threads::Parts::split(y, (0..parts).map(|t| start(t + 1) - start(t)));
    crate::threads::try_run(parts, parts, &|t| {
        let Some(mut c) = chunks.lock(t) else {
            return Ok(());
        };
        f(start(t), &mut c)
    })
}

/// The threads worth using for an m×k×n product (at most `threads`; `float`: f32, else
/// int8). One row is never split (the one-row paths then apply).
pub(crate) fn useful_threads(threads: usize, m: usize, k: usize, n: usize, float: bool) -> usize {
    if m < 2 {
        return 1;
    }
    let macs = m.saturating_mul(k).saturating_mul(n);
    let floor = if float {
        MIN_MACS_PER_THREAD
    } else {
        MIN_MACS_PER_THREAD_I8
    };
    threads.min(macs / floor).max(1)
}

#[cfg(feature = "std")]
/// Whether an m×k·k×n product on `threads` threads (as [`useful_threads`] gives) splits its
/// columns rather than its rows: `unit` rows the fewest a row task takes
/// ([`Gemm::row_unit`]), `col_unit` the columns a column task starts on a multiple of (the
/// kernel's panel; `None`: this form cannot split columns). By rows each thread streams all
/// the weights; by columns all of A, and each thread writes part of every output row, which
/// the next operator, split by rows, then reads from the other core's cache too. So columns
/// only where the rows give fewer than two tasks a thread, and there where they make fewer
/// or more uneven shares than the panels (MobileNet-v2's 7×7 layers: 49 rows, one task of
/// 28), or as even ones with weights larger than A (n > m). Its 14×14 layers (196 rows,
/// seven tasks) split by columns ran slower, with the depthwise layers and ADDs after
/// them (f32 expansions 54 → 59 µs, depthwise 24 → 31, int8 projections 15 → 19, Zen 4).
/// From the shapes only, so the split (and with it nothing of the results: each output is
/// computed the same either way) is the same on every run.
pub(crate) fn split_columns(
    threads: usize,
    m: usize,
    unit: usize,
    n: usize,
    col_unit: Option<usize>,
) -> bool {
    let Some(cu) = col_unit.filter(|&c| c > 0) else {
        return false;
    };
    let (units, panels) = (m / unit.max(1), n / cu);
    if threads < 2 || panels < 2 {
        return false;
    }
    if units < 2 {
        return true;
    }
    if units >= 2 * threads {
        return false;
    }
    // The largest thread's share of the work (as a fraction a/b), rows against columns:
    // ceil(units/T)/units against ceil(panels/T)/panels, cross-multiplied.
    let rows = units.div_ceil(threads) * panels;
    let cols = panels.div_ceil(threads) * units;
    cols < rows || (cols == rows && n > m)
}

#[cfg(feature = "std")]
/// The output of an operator whose tasks ([`run_cols`]) write it at once, each its own
/// columns: a raw pointer, so that no task holds a `&mut` over bytes another writes.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<'a> {
    ptr: *mut u8,
    len: usize,
    _out: core::marker::PhantomData<&'a mut [u8]>,
}

#[cfg(feature = "std")]
// SAFETY: the pointer is to bytes borrowed exclusively for 'a (from `SharedOut::new`),
// which the tasks write in disjoint columns only.
unsafe impl Send for SharedOut<'_> {}
#[cfg(feature = "std")]
// SAFETY: as above.
unsafe impl Sync for SharedOut<'_> {}

#[cfg(feature = "std")]
impl<'a> SharedOut<'a> {
    /// The bytes of `out`, borrowed for the tasks that write them, each its own columns.
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: core::marker::PhantomData,
        }
    }

    /// The first of `elems` elements of type `T` (f32 or i8 bytes), if the bytes hold that
    /// many and are aligned for `T`.
    pub(crate) fn first<T: super::Pod>(&self, elems: usize) -> Result<*mut T, Error> {
        let bytes = elems
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(Error::SizeOverflow)?;
        if bytes > self.len || self.ptr.align_offset(core::mem::align_of::<T>()) != 0 {
            return Err(Error::SizeOverflow);
        }
        Ok(self.ptr as *mut T)
    }
}

#[cfg(feature = "std")]
/// One call of [`run_cols`]'s closure: columns j0..j1 of every row, a scratch of its own.
pub(crate) type ColsFn<'f> = dyn Fn(usize, usize, &mut [u8]) -> Result<(), Error> + Sync + 'f;

/// Runs `f(j0, j1, scratch)` over the columns `0..n` of a product in tasks of whole
/// `col_unit`s (the last task also takes the columns past the last whole one), on up to
/// `threads` threads, each task with a scratch of `scratch_bytes` of its thread's. Each
/// task computes its columns over all the rows; `f` writes them through a [`SharedOut`].
#[cfg(feature = "std")]
pub(crate) fn run_cols(
    n: usize,
    col_unit: usize,
    threads: usize,
    scratch_bytes: usize,
    f: &ColsFn,
) -> Result<(), Error> {
    let panels = n / col_unit.max(1);
    // Several tasks per thread (see `run_rows`), at most one per panel.
    let tasks = (4 * threads).min(panels).max(1);
    let start = |t: usize| {
        if t == tasks {
            n
        } else {
            panels * t / tasks * col_unit
        }
    };
    crate::threads::try_run(tasks, threads, &|t| {
        crate::scratch::with_workspace(scratch_bytes.div_ceil(4), |ws| {
            // SAFETY: with_workspace lends this thread a buffer of at least scratch_bytes
            // bytes (scratch_bytes/4 rounded up f32s), used by nothing else meanwhile.
            let ws = unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, scratch_bytes) };
            f(start(t), start(t + 1), ws)
        })
    })
}

/// One call of [`run_rows`]'s closure: first row, rows, their output bytes, scratch.
pub(crate) type RowsFn<'f> =
    dyn Fn(usize, usize, &mut [u8], &mut [u8]) -> Result<(), Error> + Sync + 'f;

/// Runs `f(p0, rows, y, scratch)` over rows `0..m` of an operator's output (`row_bytes`
/// bytes each, `out`), in calls of at most about `block` rows, `y` the call's output rows.
/// `unit`: the fewest rows a thread's task takes ([`ROW_UNIT`] for rows of a GEMM, 1 when a
/// "row" is a whole product).
/// With one thread every call gets `scratch`; with more (feature `std`), the rows are split
/// into contiguous tasks of whole [`ROW_UNIT`]s, and each thread's calls get a scratch buffer
/// of `scratch.len()` bytes of its own (a per-thread buffer kept across calls: the arena
/// holds one thread's scratch).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_rows(
    m: usize,
    unit: usize,
    block: usize,
    row_bytes: usize,
    threads: usize,
    out: &mut [u8],
    scratch: &mut [u8],
    f: &RowsFn,
) -> Result<(), Error> {
    let out = out
        .get_mut(..m.checked_mul(row_bytes).ok_or(Error::SizeOverflow)?)
        .ok_or(Error::SizeOverflow)?;
    let unit = unit.max(1);
    #[cfg(feature = "std")]
    if threads > 1 && m >= 2 * unit {
        // Several tasks per thread, claimed by whichever thread is free: a thread the OS
        // holds back (another process on its core) then delays the operator by one small
        // task, not by its whole share.
        let tasks = (4 * threads).max(m.div_ceil(block.max(1))).min(m / unit);
        return run_rows_threaded(
            m,
            unit,
            block,
            row_bytes,
            threads,
            tasks,
            out,
            scratch.len(),
            f,
        );
    }
    let _ = (threads, unit);
    for (p0, rows) in sub_blocks(0, m, block) {
        let y = &mut out[p0 * row_bytes..(p0 + rows) * row_bytes];
        f(p0, rows, y, scratch)?;
    }
    Ok(())
}

/// [`run_rows`] as `tasks` tasks on up to `threads` threads.
#[cfg(feature = "std")]
#[allow(clippy::too_many_arguments)]
fn run_rows_threaded(
    m: usize,
    unit: usize,
    block: usize,
    row_bytes: usize,
    threads: usize,
    tasks: usize,
    out: &mut [u8],
    scratch_bytes: usize,
    f: &RowsFn,
) -> Result<(), Error> {
    // Task t: units units·t/tasks .. units·(t+1)/tasks; the last also takes the rows past the
    // last whole unit.
    let units = m / unit;
    let start = |t: usize| {
        if t == tasks {
            m
        } else {
            units * t / tasks * unit
        }
    };
    let parts = crate::threads::Parts::split(
        out,
        (0..tasks).map(|t| (start(t + 1) - start(t)) * row_bytes),
    );
    crate::threads::try_run(tasks, threads, &|t| {
        let (r0, len) = (start(t), start(t + 1) - start(t));
        let Some(mut y) = parts.lock(t) else {
            return Ok(());
        };
        crate::scratch::with_workspace(scratch_bytes.div_ceil(4), |ws| {
            // SAFETY: with_workspace lends this thread a buffer of at least scratch_bytes
            // bytes (scratch_bytes/4 rounded up f32s), used by nothing else meanwhile.
            let ws = unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, scratch_bytes) };
            for (p0, rows) in sub_blocks(r0, len, block) {
                let at = (p0 - r0) * row_bytes;
                f(p0, rows, &mut y[at..at + rows * row_bytes], ws)?;
            }
            Ok(())
        })
    })
}

#[cfg(feature = "alloc")]
pub(crate) use lower::{lower_gemm, lower_gemm_depth, lower_gemm_rows, lower_requant, requant};

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{Activation, Tensor};
    use crate::nn::transform::lower::{activation_range_f, activation_range_q, Lowering};

    /// The int8 output stage of a lowered operator: multiplier and shift constants (one, or
    /// one per output channel), zero points and the activation clamp.
    pub(crate) struct RequantLowered {
        pub mults: usize,
        pub shifts: usize,
        pub za: i32,
        pub zb: i32,
        pub zo: i32,
        pub lo: i32,
        pub hi: i32,
    }

    /// The int8 output stage's values before they become constants: one multiplier and
    /// shift per weight scale (one, or one per output channel), zero points and clamp.
    pub(crate) struct Requant {
        pub mults: Vec<i32>,
        pub shifts: Vec<i32>,
        pub za: i32,
        pub zb: i32,
        pub zo: i32,
        pub lo: i32,
        pub hi: i32,
    }

    /// TFLite's `PopulateConvolutionQuantizationParams` for node `node` (input 0 the int8
    /// activations, input 1 the weights, output 0 the result, `n` output channels): per
    /// weight scale `QuantizeMultiplier(s_x·s_w/s_y)` computed in double, and
    /// `CalculateActivationRangeQuantized` of the fused activation.
    pub(crate) fn requant(
        l: &Lowering,
        node: usize,
        n: usize,
        act: Activation,
    ) -> Result<Requant, Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (x, w) = (g.input(node, 0)?, g.input(node, 1)?);
        let y = &g.tensors[g.output_index(node, 0)?];
        let q = |t: &Tensor| {
            t.quant
                .clone()
                .ok_or_else(|| err("a quantized tensor has no scale"))
        };
        let (xq, wq, yq) = (q(x)?, q(w)?, q(y)?);
        let (sx, za) = xq.first();
        let (sy, zo) = yq.first();
        let zb = wq.first().1;
        if wq.per_channel() && wq.scale.len() != n {
            return Err(err(
                "per-channel weight scales do not match the output channels",
            ));
        }
        let (mut mults, mut shifts) = (Vec::new(), Vec::new());
        for &sw in &wq.scale {
            let real = f64::from(sx) * f64::from(sw) / f64::from(sy);
            let (mul, sh) = crate::quantize_multiplier(real)?;
            mults.push(mul);
            shifts.push(sh);
        }
        let (lo, hi) = activation_range_q(act, sy, zo, -128, 127).map_err(err)?;
        Ok(Requant {
            mults,
            shifts,
            za,
            zb,
            zo,
            lo,
            hi,
        })
    }

    /// [`requant`] with the multipliers and shifts as i32 constants.
    pub(crate) fn lower_requant(
        l: &mut Lowering,
        node: usize,
        n: usize,
        act: Activation,
    ) -> Result<RequantLowered, Error> {
        let rq = requant(l, node, n, act)?;
        let g = l.graph;
        let y = &g.tensors[g.output_index(node, 0)?];
        let mults = l.add_i32(format!("{}/multipliers", y.name), &rq.mults);
        let shifts = l.add_i32(format!("{}/shifts", y.name), &rq.shifts);
        Ok(RequantLowered {
            mults,
            shifts,
            za: rq.za,
            zb: rq.zb,
            zo: rq.zo,
            lo: rq.lo,
            hi: rq.hi,
        })
    }

    /// The GEMM part of a lowered operator.
    pub(crate) struct GemmLowered {
        /// Inputs 1..: weights, bias, and for int8 multipliers and shifts.
        pub inputs: Vec<Option<usize>>,
        /// Parameter words of the GEMM part.
        pub params: Vec<i32>,
        pub float: bool,
        pub packed: bool,
    }

    /// Lowers the GEMM part of node `node`: input 0 is A (its dtype decides int8 or f32),
    /// input 1 the constant weights as n rows of k values (FULLY_CONNECTED's [n, k], CONV_2D's
    /// OHWI), input 2 the optional bias, output 0 the result. The weights are transposed to
    /// k×n and, unless the target is portable, packed for its int8 kernel; the
    /// requantization is TFLite's (`PopulateConvolutionQuantizationParams`: per channel
    /// `QuantizeMultiplier(s_x·s_w[c]/s_y)` in double, the activation range of the output).
    pub(crate) fn lower_gemm(
        l: &mut Lowering,
        node: usize,
        k: usize,
        n: usize,
        act: Activation,
    ) -> Result<GemmLowered, Error> {
        lower_gemm_depth(l, node, k, k, n, act)
    }

    /// [`lower_gemm`] with the int8 weights given `depth ≥ k` rows, the rows past k zero:
    /// the GEMM's k is then `depth` (CONV_2D pads it to whole 4-byte groups so the VNNI
    /// kernel reads its patches in place; zero weights add nothing whatever A holds there).
    pub(crate) fn lower_gemm_depth(
        l: &mut Lowering,
        node: usize,
        k: usize,
        depth: usize,
        n: usize,
        act: Activation,
    ) -> Result<GemmLowered, Error> {
        lower_gemm_rows(l, node, k, depth, &|i| i, n, act)
    }

    /// [`lower_gemm_depth`] with weight row i (of k) at GEMM row `row_of(i)` (< depth, one
    /// to one), the other rows zero: CONV_2D's implicit GEMM pads each filter row's taps to
    /// whole 4-byte groups.
    pub(crate) fn lower_gemm_rows(
        l: &mut Lowering,
        node: usize,
        k: usize,
        depth: usize,
        row_of: &dyn Fn(usize) -> usize,
        n: usize,
        act: Activation,
    ) -> Result<GemmLowered, Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let x = g.input(node, 0)?;
        let w_t = g.input_index(node, 1)?;
        let w = &g.tensors[w_t];
        let y = &g.tensors[g.output_index(node, 0)?];
        let data = w
            .data
            .as_ref()
            .ok_or_else(|| err("non-constant weights are not supported"))?;
        if w.elems() != n * k || data.len() != n * k * w.dtype.size() {
            return Err(err("the weights do not have the expected shape"));
        }
        let bias = g.nodes[node].inputs.get(2).copied().flatten();
        let float = x.dtype == DType::F32;
        if depth < k || (float && depth != k) || (0..k).any(|i| row_of(i) >= depth) {
            return Err(err("a GEMM depth below k, or padded for f32"));
        }
        if let Some(b) = bias {
            let want = if float { DType::F32 } else { DType::I32 };
            let b = &g.tensors[b];
            if b.dtype != want {
                return Err(err("this bias type is not supported"));
            }
            if b.elems() != n {
                return Err(err("the bias does not match the output channels"));
            }
        }
        // Weights transposed to k×n row-major: the GEMM's B with unit column stride.
        // (Rows no weight row maps to stay zero.)
        let esize = w.dtype.size();
        let mut wt = vec![0u8; depth * n * esize];
        for o in 0..n {
            for i in 0..k {
                let src = (o * k + i) * esize;
                let dst = (row_of(i) * n + o) * esize;
                wt[dst..dst + esize].copy_from_slice(&data[src..src + esize]);
            }
        }
        if float {
            // f32 weights, or int8 ones symmetric per output channel (`quantize_weights`):
            // then their scales are one more input.
            let scales = match (&w.dtype, &w.quant) {
                (DType::F32, _) => None,
                (DType::I8, Some(q))
                    if q.axis == 0
                        && q.scale.len() == n
                        && q.zero_point.iter().all(|&z| z == 0)
                        && q.scale.iter().all(|s| s.is_finite()) =>
                {
                    let b: Vec<u8> = q.scale.iter().flat_map(|s| s.to_le_bytes()).collect();
                    Some(l.add_const(format!("{}/scales", w.name), DType::F32, vec![n], b))
                }
                _ => {
                    return Err(err(
                        "float input with weights neither f32 nor int8 symmetric per output \
                         channel is not supported",
                    ))
                }
            };
            if y.dtype != DType::F32 {
                return Err(err("float input with a non-float output is not supported"));
            }
            let (lo, hi) = activation_range_f(act).map_err(err)?;
            let wt_t = l.add_const(format!("{}/kxn", w.name), w.dtype, vec![k, n], wt);
            let mut inputs = vec![Some(wt_t), bias];
            inputs.extend(scales.map(Some));
            return Ok(GemmLowered {
                inputs,
                params: vec![lo.to_bits() as i32, hi.to_bits() as i32],
                float: true,
                packed: false,
            });
        }
        if x.dtype != DType::I8 || w.dtype != DType::I8 || y.dtype != DType::I8 {
            return Err(err(
                "only int8 input, weights and output are supported (or f32)",
            ));
        }
        let rq = lower_requant(l, node, n, act)?;
        let wt_i8: Vec<i8> = wt.iter().map(|&b| b as i8).collect();
        let (w_in, packed) = match l.packing.pack_i8(&wt_i8, depth, n)? {
            Some((bytes, kernel)) => {
                let name = format!("{}/packed/{}", w.name, kernel);
                (
                    l.add_const(name, DType::Packed, vec![bytes.len()], bytes),
                    true,
                )
            }
            None => {
                let name = format!("{}/kxn", w.name);
                (l.add_const(name, DType::I8, vec![depth, n], wt), false)
            }
        };
        Ok(GemmLowered {
            inputs: vec![Some(w_in), bias, Some(rq.mults), Some(rq.shifts)],
            params: vec![rq.za, rq.zb, rq.zo, rq.lo, rq.hi],
            float: false,
            packed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{bias_clamp, bias_clamp_body, sub_blocks};

    /// The vector builds of the bias-and-clamp pass give the portable loop's values.
    #[test]
    fn bias_clamp_equals_the_portable_loop() {
        let n = 37;
        let y: [f32; 37 * 5] = core::array::from_fn(|i| (i as f32 * 0.37).sin() * 8.0);
        let bias: [f32; 37] = core::array::from_fn(|i| (i as f32 * 1.3).cos());
        for (b, lo, hi) in [
            (Some(&bias[..]), 0.0, 6.0),
            (None, -1.0, 1.0),
            (Some(&bias[..]), f32::NEG_INFINITY, f32::INFINITY),
        ] {
            let (mut fast, mut portable) = (y, y);
            bias_clamp(&mut fast, n, b, lo, hi);
            bias_clamp_body(&mut portable, n, b, lo, hi);
            assert_eq!(fast, portable);
        }
    }

    /// Blocks cover the rows once, in order, each at most a block long.
    #[test]
    fn sub_blocks_cover_the_rows() {
        for (len, block) in [(0, 4), (1, 4), (17, 4), (100, 33), (5, 1)] {
            let mut next = 3;
            for (p0, rows) in sub_blocks(3, len, block) {
                assert_eq!(p0, next);
                assert!((1..=block).contains(&rows));
                next += rows;
            }
            assert_eq!(next, 3 + len);
        }
    }
}

//! FULLY_CONNECTED: `y = x·Wᵀ + bias`, fused activation; int8 (per-tensor or per-channel
//! weights, TFLite's reference requantization, bit-exact) and f32. Runs on the crate's GEMM
//! (`qgemm` with the weights packed at conversion, or `sgemm`), scratch from the arena;
//! one input row (m = 1) through the one-row kernels (`gemv`), which for int8 read their
//! pieces straight from the blob (nothing set up per call but slices).
//! Converted for the Cortex-M4, int8 with symmetric weights is lowered to a pointwise
//! CONV_2D in the direct form instead (`conv_direct`: the same sums and output stage), so a
//! firmware links no GEMM driver for it.
//!
//! Blob form. Inputs: x (m·k values), weights (int8: packed for a kernel or k×n i8; f32:
//! k×n f32, or k×n i8 with a scale per output channel, `quantize_weights`), bias (n,
//! optional), and for int8 the multipliers and shifts (n, or 1 per tensor); for f32 with i8
//! weights their n f32 scales (see `gemm_common`).
//! One scratch tensor (the GEMM workspace). Parameters: m, k, n, then int8: x zero point,
//! weights zero point, output zero point, clamp min, clamp max; f32: clamp min and max as
//! f32 bits.

use super::gemm_common::{self, Gemm};
use super::gemv;
use super::{cast, cast_mut, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;
use crate::quant::PackedView;

pub(crate) const DEF: OpDef = OpDef {
    code: 9,
    name: "FULLY_CONNECTED",
    in_place: false,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

const P_M: usize = 0;
const P_K: usize = 1;
const P_N: usize = 2;
/// The first word of the GEMM part (`gemm_common`).
const P_GEMM: usize = 3;

fn dims(op: &OpView) -> (usize, usize, usize) {
    let d = |i| op.param(i).max(0) as usize;
    (d(P_M), d(P_K), d(P_N))
}

#[inline(always)]
fn is_float(op: &OpView) -> Result<bool, Error> {
    gemm_common::is_float(op)
}

/// k products per output value.
fn macs(op: &OpView) -> u64 {
    super::output_macs(op, op.param(P_K).max(0) as u64)
}

fn check(op: &OpView) -> Result<(), Error> {
    let float = is_float(op)?;
    checks::counts(
        op,
        1 + gemm_common::num_inputs(op, float),
        1,
        1,
        P_GEMM + gemm_common::num_params(float),
    )?;
    let (m, k, n) = dims(op);
    let x = checks::input(op, 0)?;
    let y = checks::output(op, 0)?;
    let ws = checks::temp(op, 0)?;
    let elems = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| op.error("sizes overflow"));
    if x.elems() != elems(m, k)? || y.elems() != elems(m, n)? {
        return Err(op.error("input or output size does not match m, k, n"));
    }
    let packed = gemm_common::check(op, float, k, n, P_GEMM)?;
    if ws.bytes < gemm_common::workspace_bytes(float, packed, m, k, n) {
        return Err(op.error("its scratch buffer is too small for the GEMM"));
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let (m, k, n) = dims(op);
    // (`F32 &&`: see `conv::run`.)
    let float = super::F32 && is_float(op)?;
    let threads = gemm_common::useful_threads(mem.threads(), m, k, n, float);
    let one_row = m == 1 && threads == 1;
    if one_row && !float && one_row_i8(op, mem, k, n)? {
        return Ok(());
    }
    #[cfg(feature = "std")]
    let f32_parts = gemm_common::one_row_threads(mem.threads(), k, n, 4);
    let mut gemm = Gemm::load(op, mem, float, k, n, P_GEMM)?;
    let x_t = op.input(0).ok_or_else(|| op.error("missing input"))?;
    let x = mem.input(x_t)?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let ws_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let (out, ws) = mem.output_and_temp(out_t, ws_t)?;
    if one_row && one_row_f32(&gemm, x, out, k, n)? {
        return Ok(());
    }
    #[cfg(feature = "std")]
    if one_row {
        if let Gemm::F32 {
            w: gemm_common::FWeights::F32(w),
            bias,
            lo,
            hi,
            ..
        } = gemm
        {
            if f32_parts > 1 {
                let x = cast::<f32>(x).get(..k).ok_or_else(short)?;
                let y = cast_mut::<f32>(out).get_mut(..n).ok_or_else(short)?;
                return one_row_f32_cols(x, w, bias, (lo, hi), y, f32_parts, ws.len());
            }
        }
    }
    gemm.plan(true)?;
    let esize = if float { 4 } else { 1 };
    let call = |p0: usize, rows: usize, y: &mut [u8], ws: &mut [u8]| {
        let a = x
            .get(p0 * k * esize..(p0 + rows) * k * esize)
            .unwrap_or(&[]);
        gemm.run(a, k, rows, y, ws)
    };
    // One GEMM call (the workspace does not grow with m); threads split the rows.
    gemm_common::run_rows(
        m,
        gemm.row_unit(),
        m.max(1),
        n * esize,
        threads,
        out,
        ws,
        &call,
    )
}

fn short() -> Error {
    crate::nn::blob::blob_err("FULLY_CONNECTED: a tensor is smaller than m, k, n")
}

/// One int8 input row through the one-row kernels (`gemv`), its pieces read straight from
/// the blob: no [`Gemm`] (whose packed-operand header validation and requantization object
/// cost as much as a small layer's product), as `check` validated them at load. False when
/// no one-row kernel applies (the caller runs the GEMM).
fn one_row_i8(op: &OpView, mem: &mut OpMem, k: usize, n: usize) -> Result<bool, Error> {
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let threads = mem.threads();
    let w_t = t(1)?;
    let w_bytes = mem.input(w_t)?;
    let w = if op.model().dtype(w_t) == Some(DType::Packed) {
        match PackedView::from_checked_bytes(w_bytes) {
            Some(v) => gemv::QW::Packed(v),
            None => return Ok(false),
        }
    } else {
        gemv::QW::View(cast::<i8>(w_bytes))
    };
    let words = gemm_common::Int8Words::of(op, P_GEMM);
    let stage = gemv::QOut {
        bias: op
            .input(2)
            .map(|b| mem.input(b))
            .transpose()?
            .map(cast::<i32>),
        mults: cast::<i32>(mem.input(t(3)?)?),
        shifts: cast::<i32>(mem.input(t(4)?)?),
        zo: words.zo,
        lo: words.lo,
        hi: words.hi,
    };
    let x = cast::<i8>(mem.input(t(0)?)?).get(..k).ok_or_else(short)?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let y = cast_mut::<i8>(mem.output(out_t)?)
        .get_mut(..n)
        .ok_or_else(short)?;
    let Some(p) = gemv::QPlan::new(k, n, words.za, w, words.zb, &stage, gemv::Path::Auto) else {
        return Ok(false);
    };
    Ok(one_row_i8_run(&p, x, y, threads))
}

/// Runs a one-row int8 plan on up to `threads` threads: its columns split in tasks of
/// whole slivers (32 columns, a multiple of both packed kernels') when its weights are
/// large enough ([`gemm_common::one_row_threads`]), each task the plan of its columns
/// ([`gemv::QPlan::cols`]): the same bytes. False (nothing written) when the plan does not
/// run (x or y of the wrong length).
#[inline(always)]
fn one_row_i8_run(p: &gemv::QPlan, x: &[i8], y: &mut [i8], threads: usize) -> bool {
    // (One thread first: a small layer's whole product takes ~100 ns.)
    #[cfg(feature = "std")]
    if threads > 1 {
        let parts = gemm_common::one_row_threads(threads, x.len(), y.len(), 1);
        if parts > 1 {
            return one_row_i8_cols(p, x, y, parts);
        }
    }
    let _ = threads;
    p.run(x, y)
}

/// [`one_row_i8_run`] in `parts` column tasks.
#[cfg(feature = "std")]
#[inline(never)]
fn one_row_i8_cols(p: &gemv::QPlan, x: &[i8], y: &mut [i8], parts: usize) -> bool {
    if p.cols(0, y.len()).is_none() {
        return p.run(x, y);
    }
    let r = gemm_common::run_one_row(y, 32, parts, &|j0, y| {
        let ok = p.cols(j0, j0 + y.len()).is_some_and(|c| c.run(x, y));
        ok.then_some(()).ok_or_else(short)
    });
    r.is_ok()
}

/// An f32 row over large k×n weights (the GEMM's one-row path, `sgemm`'s m = 1), its
/// columns split in `parts` tasks of whole cache lines (16 f32): each column's sums are in
/// k order whatever the columns beside it, so the same bytes as one call. Each task takes a
/// GEMM workspace of `ws_bytes` of its thread's.
#[cfg(feature = "std")]
fn one_row_f32_cols(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    (lo, hi): (f32, f32),
    y: &mut [f32],
    parts: usize,
    ws_bytes: usize,
) -> Result<(), Error> {
    use crate::context::Context;
    use crate::matrix::{MatMut, MatRef};
    let (k, n) = (x.len(), y.len());
    gemm_common::run_one_row(y, 16, parts, &|j0, y| {
        let cols = y.len();
        let a = MatRef::row_major(x, 1, k)?;
        let b = MatRef::new(w.get(j0..).ok_or_else(short)?, k, cols, n as isize, 1)?;
        let bias = match bias {
            Some(b) => Some(b.get(j0..j0 + cols).ok_or_else(short)?),
            None => None,
        };
        crate::scratch::with_workspace(ws_bytes.div_ceil(4), |ws| {
            // SAFETY: with_workspace lends this thread a buffer of at least ws_bytes bytes
            // (rounded up to f32s), used by nothing else meanwhile.
            let ws = unsafe { core::slice::from_raw_parts_mut(ws as *mut u8, ws_bytes) };
            let c = MatMut::row_major(&mut *y, 1, cols)?;
            crate::gemm::sgemm(1.0, a, b, 0.0, c, Context::new().workspace(ws))
        })?;
        gemm_common::bias_clamp(y, cols, bias, lo, hi);
        Ok(())
    })
}

/// One f32 input row through the one-row kernel (`gemv`); false when it does not apply
/// (the caller runs the GEMM).
fn one_row_f32(gemm: &Gemm, x: &[u8], out: &mut [u8], k: usize, n: usize) -> Result<bool, Error> {
    Ok(match gemm {
        Gemm::F32 {
            w, bias, lo, hi, ..
        } => {
            let x = cast::<f32>(x).get(..k).ok_or_else(short)?;
            let y = cast_mut::<f32>(out).get_mut(..n).ok_or_else(short)?;
            gemv::sgemv(x, *w, *bias, *lo, *hi, y)
        }
        Gemm::I8 { .. } => false,
    })
}

/// FULLY_CONNECTED of one input row, prepared once by a session (feature `alloc`): where its
/// input and output lie in the arena (checked inside it, aligned and disjoint) and its
/// one-row kernel's plan over the constants in the blob. Running it reads no tensor record
/// and validates nothing again.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
pub(crate) struct Plan<'m> {
    /// Arena offsets of x (k values) and y (n values).
    x: usize,
    y: usize,
    k: usize,
    n: usize,
    kernel: PlanKernel<'m>,
}

#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
enum PlanKernel<'m> {
    I8(gemv::QPlan<'m>),
    F32(gemv::SPlan<'m>),
}

/// The plan of a checked operator over an arena of `arena_len` bytes, or `None` when it
/// has more than one input row, one of its parameters is not a constant, or no one-row
/// kernel applies (it then runs through `run`).
#[cfg(feature = "alloc")]
pub(crate) fn plan<'m>(op: &OpView<'m>, arena_len: usize) -> Option<Plan<'m>> {
    use crate::nn::blob::{Storage, ALIGN};
    let (m, k, n) = dims(op);
    if m != 1 {
        return None;
    }
    let model = *op.model();
    let float = is_float(op).ok()?;
    let esize = if float { 4 } else { 1 };
    let (xb, yb) = (k.checked_mul(esize)?, n.checked_mul(esize)?);
    let arena = |t: Option<usize>, len: usize| -> Option<usize> {
        let p = model.place(t?)?;
        let fits = p.offset.checked_add(len).is_some_and(|e| e <= arena_len);
        (p.storage == Storage::Arena && p.offset % ALIGN == 0 && p.bytes >= len && fits)
            .then_some(p.offset)
    };
    let (x, y) = (arena(op.input(0), xb)?, arena(op.output(0), yb)?);
    if x < y + yb && y < x + xb {
        return None;
    }
    let constant = |i: usize| -> Option<&'m [u8]> {
        let p = model.place(op.input(i)?)?;
        (p.storage == Storage::Constant).then(|| model.constant_at(p))
    };
    // An absent bias is none; a bias that is not a constant is not planned.
    let bias = match op.input(2) {
        None => None,
        Some(_) => Some(constant(2)?),
    };
    let kernel = if float {
        let w = constant(1)?;
        let w = match op.input(3) {
            Some(_) => gemm_common::FWeights::I8 {
                q: cast::<i8>(w),
                scales: cast::<f32>(constant(3)?),
            },
            None => gemm_common::FWeights::F32(cast::<f32>(w)),
        };
        let p = |i: usize| f32::from_bits(op.param(P_GEMM + i) as u32);
        let (lo, hi) = (p(gemm_common::P_FLO), p(gemm_common::P_FHI));
        PlanKernel::F32(gemv::SPlan::new(k, n, w, bias.map(cast::<f32>), lo, hi)?)
    } else {
        let w_bytes = constant(1)?;
        let w = if model.dtype(op.input(1)?) == Some(DType::Packed) {
            gemv::QW::Packed(PackedView::from_checked_bytes(w_bytes)?)
        } else {
            gemv::QW::View(cast::<i8>(w_bytes))
        };
        let words = gemm_common::Int8Words::of(op, P_GEMM);
        let stage = gemv::QOut {
            bias: bias.map(cast::<i32>),
            mults: cast::<i32>(constant(3)?),
            shifts: cast::<i32>(constant(4)?),
            zo: words.zo,
            lo: words.lo,
            hi: words.hi,
        };
        let p = gemv::QPlan::new(k, n, words.za, w, words.zb, &stage, gemv::Path::Auto)?;
        PlanKernel::I8(p)
    };
    Some(Plan { x, y, k, n, kernel })
}

#[cfg(feature = "alloc")]
impl Plan<'_> {
    /// Runs the operator; false (having written nothing) when its plan does not apply with
    /// `threads` threads (the operator then runs through `run`, on them).
    ///
    /// # Safety
    /// `arena` is valid for reads and writes of the `arena_len` bytes given to [`plan`],
    /// 16-byte aligned, and nothing else accesses it meanwhile.
    #[inline]
    pub(crate) unsafe fn run(&self, arena: *mut u8, threads: usize) -> bool {
        let (k, n) = (self.k, self.n);
        let float = matches!(self.kernel, PlanKernel::F32(_));
        if gemm_common::useful_threads(threads, 1, k, n, float) != 1 {
            return false;
        }
        match self.kernel {
            PlanKernel::I8(p) => {
                // SAFETY: x's k bytes and y's n bytes lie inside the arena, disjoint
                // (checked by `plan`); the arena is ours for this call (caller).
                let (x, y) = unsafe {
                    (
                        core::slice::from_raw_parts(arena.add(self.x) as *const i8, k),
                        core::slice::from_raw_parts_mut(arena.add(self.y) as *mut i8, n),
                    )
                };
                one_row_i8_run(&p, x, y, threads)
            }
            PlanKernel::F32(p) => {
                // SAFETY: x's k and y's n f32 lie inside the arena, 16-byte aligned (the
                // arena and both offsets: checked by `new` and `plan`), disjoint (checked
                // by `plan`); the arena is ours for this call (caller).
                let (x, y) = unsafe {
                    (
                        core::slice::from_raw_parts(arena.add(self.x) as *const f32, k),
                        core::slice::from_raw_parts_mut(arena.add(self.y) as *mut f32, n),
                    )
                };
                // (Weights within one thread's floor, `sgemv`'s limit: never split.)
                p.run(x, y)
            }
        }
    }
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;

    use super::super::conv::Geom;
    use super::super::conv_direct;
    use super::gemm_common;
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::{Lowering, Packing};

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let act = match &g.nodes[node].options {
            // keep_num_dims: the output tensor's shape already says it.
            OpOptions::FullyConnected { activation, .. } => *activation,
            _ => return Err(err("FULLY_CONNECTED without its options")),
        };
        let x = g.input(node, 0)?;
        let w = g.input(node, 1)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        let (n, k) = match w.shape[..] {
            [n, k] => (n, k),
            _ => return Err(err("the weights are not 2-D")),
        };
        if k == 0 || x.elems() % k != 0 {
            return Err(err(
                "the input size is not a multiple of the weights' depth",
            ));
        }
        let m = x.elems() / k;
        if y.elems() != m * n {
            return Err(err("the output shape does not match the input and weights"));
        }
        // On the Cortex-M4 (either weight layout) an int8 product with symmetric weights is
        // a pointwise CONV_2D in the direct form over 1×m pixels of k channels: the same
        // exact sums and output stage (TFLite's FullyConnected and ConvPerChannel agree when
        // the weights' zero point is 0), without the GEMM driver and its packing workspace,
        // which a firmware would otherwise link for this operator alone.
        let symmetric = w
            .quant
            .as_ref()
            .is_some_and(|q| q.zero_point.iter().all(|&z| z == 0));
        if matches!(l.packing, Packing::CortexM4 | Packing::CortexM4I16)
            && x.dtype == DType::I8
            && symmetric
        {
            let g = Geom {
                batch: 1,
                ih: 1,
                iw: m,
                ic: k,
                oh: 1,
                ow: m,
                oc: n,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                dh: 1,
                dw: 1,
                pt: 0,
                pl: 0,
            };
            let words = g
                .words()
                .ok_or_else(|| err("a dimension too large is not supported"))?;
            return conv_direct::lower(l, node, &g, act, &words);
        }
        let y_name = y.name.clone();
        let gl = gemm_common::lower_gemm(l, node, k, n, act)?;
        let mut params = vec![m as i32, k as i32, n as i32];
        params.extend_from_slice(&gl.params);
        let mut op = l.op(node, 9, params);
        op.inputs.truncate(1);
        op.inputs.extend_from_slice(&gl.inputs);
        let ws =
            gemm_common::workspace_bytes_for(l.packing.kernels(), gl.float, gl.packed, m, k, n);
        op.temps = vec![l.add_temp(format!("{y_name}/gemm"), ws)];
        l.push(op);
        Ok(())
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use crate::nn::transform::ir::Activation;
    use crate::nn::transform::passes::test_graphs::{
        f32_bytes, run_allocations, run_bytes, values, Builder,
    };
    use crate::nn::transform::{LoadedModel, Packing};

    /// One f32 row over MobileNet-v2's classifier shape (1280 → 1000, 5 MB of weights: its
    /// columns split over the threads) gives the same bytes on 1, 2 and 3 threads, and
    /// with a column count that is not whole cache lines of the tasks (1000 = 62.5 × 16).
    #[test]
    fn large_one_row_splits_columns_to_the_same_bytes() {
        for (k, n) in [(1280, 1000), (1024, 777)] {
            let mut b = Builder::default();
            let x = b.act(&[1, k]);
            let w = b.weights(k, n, 5);
            let y = b.act(&[1, n]);
            b.fc_act(x, w, y, Activation::Relu6);
            let g = b.finish(&[x], &[y]);
            let input = f32_bytes(&values(k, 9));
            for packing in [Packing::Host, Packing::Portable] {
                let m = LoadedModel::from_graph(&g, packing).unwrap();
                let one = run_bytes(&m, &input, 1);
                for t in [2, 3] {
                    assert_eq!(run_bytes(&m, &input, t), one, "{k}->{n} {t} threads");
                    let allocs = run_allocations(&m, &input, t);
                    assert_eq!(allocs, 0, "{k}->{n} {t} threads: allocations");
                }
            }
        }
    }
}

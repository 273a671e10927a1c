//! BATCH_MATMUL: `out[b] = lhs[b] · rhs[b]` for every batch of the output, the batch
//! dimensions broadcast as TFLite does (a dimension of 1 repeats), `adj_x`/`adj_y`
//! transposing an operand's last two dimensions (read through a transposed view, never
//! copied). f32 runs on `sgemm`; int8 (per-tensor scales) on `qgemm` with TFLite's reference
//! requantization (`reference_ops::BatchMatMul<int8_t, int32_t>`: the exact sum of
//! `(lhs − zp_lhs)(rhs − zp_rhs)`, `MultiplyByQuantizedMultiplier`, the output zero point,
//! clamped to int8; the multiplier from `GetQuantizedConvolutionMultipler`), bit-exact.
//!
//! Blob form: inputs lhs, rhs; one output; one scratch tensor (the GEMM workspace).
//! Parameters: m, k, n, adj_x, adj_y, then int8: lhs zero point, rhs zero point, output zero
//! point, multiplier, shift, clamp min, clamp max (f32: seven zeros), then the number `r` of
//! output batch dimensions, those `r` dimensions, and for each operand `r` batch strides in
//! matrices (0 where it broadcasts).

use super::gemm_common::Kernels;
use super::{cast, cast_mut, OpDef, OpMem};
use super::{checks, gemm_common};
use crate::context::Context;
use crate::error::Error;
use crate::matrix::{MatMut, MatRef};
use crate::nn::blob::{OpView, MAX_RANK};
use crate::nn::dtype::DType;
use crate::quant::{qgemm, Requantize, Requantized, Scale};

pub(crate) const DEF: OpDef = OpDef {
    code: 126,
    name: "BATCH_MATMUL",
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
const P_ADJ_X: usize = 3;
const P_ADJ_Y: usize = 4;
const P_ZA: usize = 5;
const P_ZB: usize = 6;
const P_ZO: usize = 7;
const P_MUL: usize = 8;
const P_SHIFT: usize = 9;
const P_LO: usize = 10;
const P_HI: usize = 11;
const P_RANK: usize = 12;
const P_DIMS: usize = 13;
/// Most batch dimensions (the output has at most 6 dimensions).
const MAX_BATCH: usize = MAX_RANK - 2;

/// The batch layout: output dimensions and each operand's strides, in matrices.
struct Batches {
    rank: usize,
    dims: [usize; MAX_BATCH],
    lhs: [usize; MAX_BATCH],
    rhs: [usize; MAX_BATCH],
}

impl Batches {
    fn read(op: &OpView) -> Option<Self> {
        let rank = usize::try_from(op.param(P_RANK))
            .ok()
            .filter(|&r| r <= MAX_BATCH)?;
        let mut b = Batches {
            rank,
            dims: [1; MAX_BATCH],
            lhs: [0; MAX_BATCH],
            rhs: [0; MAX_BATCH],
        };
        for d in 0..rank {
            b.dims[d] = usize::try_from(op.param(P_DIMS + d)).ok()?;
            b.lhs[d] = usize::try_from(op.param(P_DIMS + rank + d)).ok()?;
            b.rhs[d] = usize::try_from(op.param(P_DIMS + 2 * rank + d)).ok()?;
        }
        Some(b)
    }

    /// Output batches (`None` on overflow).
    fn count(&self) -> Option<usize> {
        self.dims[..self.rank]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
    }

    /// The largest matrix index an operand's strides reach (`None` on overflow).
    fn reach(&self, strides: &[usize; MAX_BATCH]) -> Option<usize> {
        self.dims[..self.rank]
            .iter()
            .zip(strides)
            .try_fold(0usize, |a, (&d, &s)| {
                a.checked_add(d.saturating_sub(1).checked_mul(s)?)
            })
    }

    /// The lhs and rhs matrix indices of output batch `b`.
    fn operands(&self, mut b: usize) -> (usize, usize) {
        let (mut l, mut r) = (0usize, 0usize);
        for d in (0..self.rank).rev() {
            let n = self.dims[d].max(1);
            let i = b % n;
            b /= n;
            l = l.wrapping_add(i.wrapping_mul(self.lhs[d]));
            r = r.wrapping_add(i.wrapping_mul(self.rhs[d]));
        }
        (l, r)
    }
}

fn dims(op: &OpView) -> (usize, usize, usize) {
    let d = |i| op.param(i).max(0) as usize;
    (d(P_M), d(P_K), d(P_N))
}

/// Bytes of GEMM workspace the operator needs (in the build of `kernels`).
pub(crate) fn workspace_bytes(
    kernels: Kernels,
    float: bool,
    m: usize,
    k: usize,
    n: usize,
) -> usize {
    super::gemm_common::workspace_bytes_for(kernels, float, false, m, k, n)
}

/// k products per output value.
fn macs(op: &OpView) -> u64 {
    super::output_macs(op, op.param(P_K).max(0) as u64)
}

fn check(op: &OpView) -> Result<(), Error> {
    let b = Batches::read(op).ok_or_else(|| op.error("malformed batch dimensions"))?;
    checks::counts(op, 2, 1, 1, P_DIMS + 3 * b.rank)?;
    let (x, w, y) = (
        checks::input(op, 0)?,
        checks::input(op, 1)?,
        checks::output(op, 0)?,
    );
    let float = x.dtype == DType::F32;
    let want = if float { DType::F32 } else { DType::I8 };
    for t in [&x, &w, &y] {
        checks::dtype(op, t, want)?;
    }
    let (m, k, n) = dims(op);
    let ovf = || op.error("sizes overflow");
    let (mk, kn, mn) = (
        m.checked_mul(k).ok_or_else(ovf)?,
        k.checked_mul(n).ok_or_else(ovf)?,
        m.checked_mul(n).ok_or_else(ovf)?,
    );
    if mk == 0 || kn == 0 {
        return Err(op.error("an empty matrix product"));
    }
    let batches = b.count().ok_or_else(ovf)?;
    if y.elems() != batches.checked_mul(mn).ok_or_else(ovf)?
        || x.elems() % mk != 0
        || w.elems() % kn != 0
    {
        return Err(op.error("the shapes do not match m, k, n and the batches"));
    }
    let (lr, rr) = (
        b.reach(&b.lhs).ok_or_else(ovf)?,
        b.reach(&b.rhs).ok_or_else(ovf)?,
    );
    if lr >= x.elems() / mk || rr >= w.elems() / kn {
        return Err(op.error("a batch stride reaches outside an operand"));
    }
    if op.param(P_LO) > op.param(P_HI) && !float {
        return Err(op.error("an empty output clamp"));
    }
    let ws = checks::temp(op, 0)?;
    if ws.bytes < workspace_bytes(Kernels::Build, float, m, k, n) {
        return Err(op.error("its scratch buffer is too small for the GEMM"));
    }
    Ok(())
}

/// Matrix `i` of `data` (each `rows·cols` elements, stored row-major), transposed when
/// `adj` (then it is stored `cols×rows`); `None` when `data` is too short.
fn matrix<T>(data: &[T], i: usize, rows: usize, cols: usize, adj: bool) -> Option<MatRef<'_, T>> {
    let size = rows.saturating_mul(cols);
    let at = i.saturating_mul(size);
    let s = data.get(at..at.saturating_add(size))?;
    if adj {
        Some(MatRef::row_major(s, cols, rows).ok()?.t())
    } else {
        MatRef::row_major(s, rows, cols).ok()
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let b = Batches::read(op).ok_or_else(|| op.error("malformed batch dimensions"))?;
    let (m, k, n) = dims(op);
    let (adj_x, adj_y) = (op.param(P_ADJ_X) != 0, op.param(P_ADJ_Y) != 0);
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let (x_t, w_t) = (t(0)?, t(1)?);
    let float = op.model().dtype(x_t) == Some(DType::F32);
    let x = mem.input(x_t)?;
    let w = mem.input(w_t)?;
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let ws_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let threads = gemm_common::useful_threads(
        mem.threads(),
        b.count().unwrap_or(0).saturating_mul(m),
        k,
        n,
        float,
    );
    let (out, ws) = mem.output_and_temp(out_t, ws_t)?;
    let batches = b.count().ok_or_else(|| op.error("sizes overflow"))?;
    let esize = if float { 4 } else { 1 };
    let mn = m.saturating_mul(n);
    let small = || op.error("an operand is smaller than its batches");
    let rq = Requantize::new(
        Scale::PerTensor {
            multiplier: op.param(P_MUL),
            shift: op.param(P_SHIFT),
        },
        op.param(P_ZO),
    )
    .with_clamp(op.param(P_LO), op.param(P_HI));
    let (za, zb) = (op.param(P_ZA), op.param(P_ZB));
    // Rows r0..r0 + rows of output batch i, into `c`.
    let product = |i: usize, r0: usize, rows: usize, c: &mut [u8], ws: &mut [u8]| {
        let (li, ri) = b.operands(i);
        let ctx = Context::new().workspace(ws);
        if float {
            let a = matrix(cast::<f32>(x), li, m, k, adj_x).ok_or_else(small)?;
            let a = a.submatrix(r0, 0, rows, k)?;
            let bm = matrix(cast::<f32>(w), ri, k, n, adj_y).ok_or_else(small)?;
            let c = MatMut::row_major(cast_mut::<f32>(c), rows, n)?;
            crate::gemm::sgemm(1.0, a, bm, 0.0, c, ctx)
        } else {
            let a = matrix(cast::<i8>(x), li, m, k, adj_x).ok_or_else(small)?;
            let a = a.submatrix(r0, 0, rows, k)?;
            let bm = matrix(cast::<i8>(w), ri, k, n, adj_y).ok_or_else(small)?;
            let c = Requantized(&rq, MatMut::row_major(cast_mut::<i8>(c), rows, n)?);
            qgemm(a, za, bm, zb, c, ctx)
        }
    };
    if batches == 0 {
        return Ok(());
    }
    if batches > 1 {
        // Threads take whole products.
        let call = |i0: usize, count: usize, y: &mut [u8], ws: &mut [u8]| {
            for (j, c) in y
                .chunks_exact_mut((mn * esize).max(1))
                .take(count)
                .enumerate()
            {
                product(i0 + j, 0, m, c, ws)?;
            }
            Ok(())
        };
        gemm_common::run_rows(batches, 1, 1, mn * esize, threads, out, ws, &call)
    } else {
        // One product: threads take its rows, as FULLY_CONNECTED's.
        let call =
            |r0: usize, rows: usize, y: &mut [u8], ws: &mut [u8]| product(0, r0, rows, y, ws);
        gemm_common::run_rows(
            m,
            gemm_common::ROW_UNIT,
            m.max(1),
            n * esize,
            threads,
            out,
            ws,
            &call,
        )
    }
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec::Vec;

    use super::MAX_BATCH;
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::Lowering;

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (adj_x, adj_y) = match &g.nodes[node].options {
            OpOptions::BatchMatMul { adj_x, adj_y, .. } => (*adj_x, *adj_y),
            _ => return Err(err("BATCH_MATMUL without its options")),
        };
        let (x, w) = (g.input(node, 0)?, g.input(node, 1)?);
        let y = &g.tensors[g.output_index(node, 0)?];
        let float = x.dtype == DType::F32;
        if float && w.dtype == DType::I8 {
            return Err(err("hybrid (float × int8) BATCH_MATMUL is not supported"));
        }
        let want = if float { DType::F32 } else { DType::I8 };
        if x.dtype != want || w.dtype != want || y.dtype != want {
            return Err(err("BATCH_MATMUL on these types is not supported"));
        }
        let (xr, wr) = (x.shape.len(), w.shape.len());
        let rank = xr.max(wr);
        if xr < 2 || wr < 2 || rank - 2 > MAX_BATCH {
            return Err(err("operands of this rank are not supported"));
        }
        // Shapes extended with leading ones to the output's rank.
        let ext = |s: &[usize]| {
            let mut e = alloc::vec![1usize; rank - s.len()];
            e.extend_from_slice(s);
            e
        };
        let (xs, ws) = (ext(&x.shape), ext(&w.shape));
        let (m, k) = if adj_x {
            (xs[rank - 1], xs[rank - 2])
        } else {
            (xs[rank - 2], xs[rank - 1])
        };
        let (kw, n) = if adj_y {
            (ws[rank - 1], ws[rank - 2])
        } else {
            (ws[rank - 2], ws[rank - 1])
        };
        if k != kw {
            return Err(err("the operands' inner dimensions differ"));
        }
        if m == 0 || k == 0 || n == 0 {
            return Err(err("an empty matrix product is not supported"));
        }
        let r = rank - 2;
        let (mut dims, mut ls, mut rs) =
            (Vec::new(), alloc::vec![0usize; r], alloc::vec![0usize; r]);
        for d in 0..r {
            let (a, b) = (xs[d], ws[d]);
            let o = if a == b || b == 1 {
                a
            } else if a == 1 {
                b
            } else {
                return Err(err("the batch dimensions do not broadcast"));
            };
            dims.push(o);
        }
        // Strides in matrices over each operand's own batch dimensions; 0 where it repeats.
        let (mut sl, mut sr) = (1usize, 1usize);
        for d in (0..r).rev() {
            if xs[d] != 1 {
                ls[d] = sl;
            }
            if ws[d] != 1 {
                rs[d] = sr;
            }
            sl *= xs[d];
            sr *= ws[d];
        }
        if y.elems() != dims.iter().product::<usize>() * m * n {
            return Err(err("the output shape does not match the operands"));
        }
        let mut q = [0i32; 7];
        if !float {
            let quant = |t: &crate::nn::transform::ir::Tensor| {
                t.quant
                    .clone()
                    .ok_or_else(|| err("a quantized tensor has no scale"))
            };
            let (xq, wq, yq) = (quant(x)?, quant(w)?, quant(y)?);
            if wq.per_channel() || xq.per_channel() {
                return Err(err("per-channel BATCH_MATMUL operands are not supported"));
            }
            let ((sx, za), (sw, zb), (sy, zo)) = (xq.first(), wq.first(), yq.first());
            // GetQuantizedConvolutionMultipler without a bias: the scales' product in f32.
            let real = f64::from(sx * sw) / f64::from(sy);
            let (mul, shift) = crate::quantize_multiplier(real)?;
            q = [za, zb, zo, mul, shift, -128, 127];
        }
        let int =
            |v: usize| i32::try_from(v).map_err(|_| err("a tensor too large is not supported"));
        let mut params = alloc::vec![int(m)?, int(k)?, int(n)?, adj_x as i32, adj_y as i32];
        params.extend(q);
        params.push(r as i32);
        for v in dims.iter().chain(&ls).chain(&rs) {
            params.push(int(*v)?);
        }
        let mut op = l.op(node, 126, params);
        op.inputs.truncate(2);
        let bytes = super::workspace_bytes(l.packing.kernels(), float, m, k, n);
        op.temps = alloc::vec![l.add_temp(format!("{}/gemm", y.name), bytes)];
        l.push(op);
        Ok(())
    }
}

//! RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR over NHWC tensors, with align_corners and
//! half_pixel_centers; int8 and f32.
//!
//! The source rows and columns (and bilinear weights) depend only on the sizes and options,
//! so lowering computes them once, the way TFLite's reference code does per call:
//! - nearest: `reference_ops::GetNearestNeighbor` (f32 scale, floor or round, clamped);
//!   a pure copy, so int8 is exact.
//! - bilinear f32: `reference_ops::ResizeBilinear` (`ComputeInterpolationValues`: the f32
//!   source coordinate, its floor and ceil clamped to the input).
//! - bilinear int8: `reference_ops::ResizeBilinearInteger`, which `resize_bilinear.cc` runs
//!   for int8 under BUILTIN_REF: 10-bit fixed-point coordinates
//!   (`ComputeInterpolationValuesInteger`), the four-term sum in i64 at 2^20, rounded half
//!   away from zero (TFLite's default, not `TFLITE_SINGLE_ROUNDING`). Bit-exact.
//!
//! Blob form. Inputs: x `[N, H, W, C]`, the row table, the column table (i32 constants).
//! Output: y `[N, OH, OW, C]`, same dtype. No scratch, no parameters. Nearest tables: one
//! source index per output row (OH) / column (OW). Bilinear tables: three words per output
//! row / column: lower index, upper index, and the source coordinate (f32: its bits; int8:
//! in 1/1024 units).

use super::checks;
use super::{cast, cast_mut, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, TensorInfo};
use crate::nn::dtype::DType;

pub(crate) const BILINEAR: OpDef = OpDef {
    code: 23,
    name: "RESIZE_BILINEAR",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

pub(crate) const NEAREST: OpDef = OpDef {
    code: 97,
    name: "RESIZE_NEAREST_NEIGHBOR",
    ..BILINEAR
};

/// |int8 weight| bound (in 1/1024 units) that keeps the i64 sum far from overflow.
const MAX_WEIGHT: i64 = 1 << 20;

fn is_nearest(op: &OpView) -> bool {
    op.code() == NEAREST.code
}

fn table<'a>(op: &OpView<'a>, i: usize) -> Result<TensorInfo<'a>, Error> {
    let t = checks::input(op, i)?;
    checks::dtype(op, &t, DType::I32)?;
    Ok(t)
}

fn check(op: &OpView) -> Result<(), Error> {
    checks::counts(op, 3, 1, 0, 0)?;
    let (x, y) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let (xs, ys) = (x.shape(), y.shape());
    if xs.rank() != 4 || ys.rank() != 4 || xs.dim(0) != ys.dim(0) || xs.dim(3) != ys.dim(3) {
        return Err(op.error("resize needs NHWC input and output with matching N and C"));
    }
    if x.dtype != y.dtype {
        return Err(op.error("resize input and output types differ"));
    }
    let nearest = is_nearest(op);
    if !nearest && !matches!(x.dtype, DType::I8 | DType::F32) {
        return Err(op.error("bilinear resize needs int8 or f32"));
    }
    if x.dtype == DType::Packed {
        return Err(op.error("resize of packed bytes"));
    }
    let per = if nearest { 1 } else { 3 };
    let (rows_t, cols_t) = (table(op, 1)?, table(op, 2)?);
    let model = op.model();
    for (t, info, out, len) in [
        (op.input(1), rows_t, ys.dim(1), xs.dim(1)),
        (op.input(2), cols_t, ys.dim(2), xs.dim(2)),
    ] {
        if info.elems() != out * per || info.storage != crate::nn::blob::Storage::Constant {
            return Err(op.error("a resize table does not match the output size"));
        }
        let words = super::cast::<i32>(model.constant(t.unwrap_or(0)));
        if words.len() != info.elems() {
            return Err(op.error("a resize table is misaligned"));
        }
        let index_ok = |v: i32| v >= 0 && (v as usize) < len;
        for e in words.chunks_exact(per) {
            if !index_ok(e[0]) || (!nearest && !index_ok(e[1])) {
                return Err(op.error("a resize table indexes outside the input"));
            }
            if !nearest && x.dtype == DType::I8 {
                let w = i64::from(e[2]) - 1024 * i64::from(e[0]);
                if w.abs() > MAX_WEIGHT {
                    return Err(op.error("a resize weight is out of range"));
                }
            }
        }
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let (xi, yi) = (checks::input(op, 0)?, checks::output(op, 0)?);
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let yt = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let x = mem.input(t(0)?)?;
    let rows = cast::<i32>(mem.input(t(1)?)?);
    let cols = cast::<i32>(mem.input(t(2)?)?);
    let out = mem.output(yt)?;
    let (xs, ys) = (xi.shape(), yi.shape());
    let (n, h, w, c) = (xs.dim(0), xs.dim(1), xs.dim(2), xs.dim(3));
    let (oh, ow) = (ys.dim(1), ys.dim(2));
    let at = |b: usize, iy: i32, ix: i32| ((b * h + iy as usize) * w + ix as usize) * c;
    if is_nearest(op) {
        let es = xi.dtype.size();
        let mut dst = out.chunks_exact_mut((c * es).max(1));
        for b in 0..n {
            for &iy in rows.iter().take(oh) {
                for &ix in cols.iter().take(ow) {
                    let s = at(b, iy, ix) * es;
                    if let (Some(d), Some(src)) = (dst.next(), x.get(s..s + c * es)) {
                        d.copy_from_slice(src);
                    }
                }
            }
        }
        return Ok(());
    }
    if xi.dtype == DType::I8 {
        let (x, y) = (cast::<i8>(x), cast_mut::<i8>(out));
        bilinear(n, rows, cols, c, y, |b, r, k, ch| {
            let v = |iy, ix| i64::from(x.get(at(b, iy, ix) + ch).copied().unwrap_or(0));
            let wy = i64::from(r[2]) - 1024 * i64::from(r[0]);
            let wx = i64::from(k[2]) - 1024 * i64::from(k[0]);
            let sum = v(r[0], k[0]) * (1024 - wy) * (1024 - wx)
                + v(r[1], k[0]) * wy * (1024 - wx)
                + v(r[0], k[1]) * (1024 - wy) * wx
                + v(r[1], k[1]) * wy * wx;
            let round = if sum > 0 { 1 << 19 } else { -(1 << 19) };
            ((sum + round) / (1 << 20)) as i8
        });
    } else {
        let (x, y) = (cast::<f32>(x), cast_mut::<f32>(out));
        bilinear(n, rows, cols, c, y, |b, r, k, ch| {
            let v = |iy, ix| x.get(at(b, iy, ix) + ch).copied().unwrap_or(0.0);
            let dy = f32::from_bits(r[2] as u32) - r[0] as f32;
            let dx = f32::from_bits(k[2] as u32) - k[0] as f32;
            v(r[0], k[0]) * (1.0 - dy) * (1.0 - dx)
                + v(r[1], k[0]) * dy * (1.0 - dx)
                + v(r[0], k[1]) * (1.0 - dy) * dx
                + v(r[1], k[1]) * dy * dx
        });
    }
    Ok(())
}

/// Every output element of a bilinear resize from its batch, row entry, column entry and
/// channel.
fn bilinear<T>(
    n: usize,
    rows: &[i32],
    cols: &[i32],
    c: usize,
    y: &mut [T],
    mut f: impl FnMut(usize, &[i32], &[i32], usize) -> T,
) {
    let mut dst = y.chunks_exact_mut(c.max(1));
    for b in 0..n {
        for r in rows.chunks_exact(3) {
            for k in cols.chunks_exact(3) {
                let Some(d) = dst.next() else { return };
                for (ch, o) in d.iter_mut().enumerate() {
                    *o = f(b, r, k, ch);
                }
            }
        }
    }
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec::Vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::{round_half_away, Lowering};

    /// `floor` of an f32 without std (|x| < 2^31).
    fn floor(x: f32) -> i32 {
        let t = x as i32;
        if (t as f32) > x {
            t - 1
        } else {
            t
        }
    }

    fn ceil(x: f32) -> i32 {
        let t = x as i32;
        if (t as f32) < x {
            t + 1
        } else {
            t
        }
    }

    /// `reference_ops::GetNearestNeighbor` for every output index.
    fn nearest(input: usize, output: usize, align: bool, half: bool) -> Vec<i32> {
        let (i, o) = (input as i32, output as i32);
        let scale = if align && o > 1 {
            (i - 1) as f32 / (o - 1) as f32
        } else {
            i as f32 / o as f32
        };
        let offset = if half { 0.5f32 } else { 0.0 };
        (0..o)
            .map(|v| {
                let s = (v as f32 + offset) * scale;
                let idx = if align {
                    round_half_away(f64::from(s)) as i32
                } else {
                    floor(s)
                };
                let idx = idx.min(i - 1);
                if half {
                    idx.max(0)
                } else {
                    idx
                }
            })
            .collect()
    }

    /// `ComputeInterpolationValues` (f32) for every output index: (lower, upper, coordinate
    /// bits).
    fn bilinear_f32(input: usize, output: usize, align: bool, half: bool) -> Vec<i32> {
        let (i, o) = (input as i32, output as i32);
        let scale = if align && o > 1 {
            (i - 1) as f32 / (o - 1) as f32
        } else {
            i as f32 / o as f32
        };
        let mut t = Vec::with_capacity(3 * output);
        for v in 0..o {
            let s = if half {
                (v as f32 + 0.5) * scale - 0.5
            } else {
                v as f32 * scale
            };
            t.extend([floor(s).max(0), ceil(s).min(i - 1), s.to_bits() as i32]);
        }
        t
    }

    /// `ComputeInterpolationValuesInteger` for every output index: (lower, upper,
    /// coordinate in 1/1024).
    fn bilinear_i8(input: usize, output: usize, align: bool, half: bool) -> Vec<i32> {
        let (i, o) = (input as i32, output as i32);
        let scale = if align && o > 1 {
            ((1 << 10) * (i - 1) + (o - 1) / 2) / (o - 1)
        } else {
            ((1 << 10) * i + o / 2) / o
        };
        let mut t = Vec::with_capacity(3 * output);
        for v in 0..o {
            let s = if half {
                v * scale + scale / 2 - (1 << 9)
            } else {
                v * scale
            };
            t.extend([
                (s / (1 << 10)).max(0),
                ((s + (1 << 10) - 1) / (1 << 10)).min(i - 1),
                s,
            ]);
        }
        t
    }

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (align, half) = match &g.nodes[node].options {
            OpOptions::Resize {
                align_corners,
                half_pixel_centers,
            } => (*align_corners, *half_pixel_centers),
            _ => return Err(err("resize without its options")),
        };
        let x = g.input(node, 0)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        if x.shape.len() != 4
            || y.shape.len() != 4
            || x.shape[0] != y.shape[0]
            || x.shape[3] != y.shape[3]
            || x.dtype != y.dtype
        {
            return Err(err(
                "resize of a tensor that is not 4-D NHWC is not supported",
            ));
        }
        let code = g.nodes[node].op.code() as u16;
        let is_nearest = code == super::NEAREST.code;
        if !is_nearest && align && half {
            return Err(err(
                "RESIZE_BILINEAR with both align_corners and half_pixel_centers",
            ));
        }
        let big = |v: usize| v == 0 || v > (1 << 20);
        if x.shape[1..3].iter().chain(&y.shape[1..3]).any(|&v| big(v)) {
            return Err(err(
                "resize sizes that are zero or above 2^20 are not supported",
            ));
        }
        let (h, w, oh, ow) = (x.shape[1], x.shape[2], y.shape[1], y.shape[2]);
        let (rows, cols) = match (is_nearest, x.dtype) {
            (true, DType::F32 | DType::I8) => {
                (nearest(h, oh, align, half), nearest(w, ow, align, half))
            }
            (false, DType::F32) => (
                bilinear_f32(h, oh, align, half),
                bilinear_f32(w, ow, align, half),
            ),
            (false, DType::I8) => (
                bilinear_i8(h, oh, align, half),
                bilinear_i8(w, ow, align, half),
            ),
            _ => return Err(err("resize of this element type is not supported")),
        };
        let rows_t = l.add_i32(format!("{}/rows", y.name), &rows);
        let cols_t = l.add_i32(format!("{}/cols", y.name), &cols);
        let mut op = l.op(node, code, Vec::new());
        op.inputs = alloc::vec![op.inputs[0], Some(rows_t), Some(cols_t)];
        l.push(op);
        Ok(())
    }
}

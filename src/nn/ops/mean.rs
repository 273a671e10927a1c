//! MEAN: the average over a set of axes (any of up to 6), keep_dims or not (the output
//! tensor's shape says which); int8 and f32.
//!
//! int8 matches TFLite's reference path (`reduce.cc` `EvalMean` for kTfLiteInt8 under
//! BUILTIN_REF → `reference_ops::QuantizedMeanOrSum`, integer form) bit for bit: the i32 sum
//! of the reduced elements minus `input_zero_point · count`, then
//! `MultiplyByQuantizedMultiplier` by the input/output scale ratio with 1/count folded into
//! the multiplier (`(multiplier << s) / count`, shift − s, s = ⌊log2 count⌋ clamped as TFLite
//! does), plus the output zero point, clamped to int8. f32 sums in input order and divides by
//! the count (`reference_ops::Mean`).
//!
//! Blob form. Input: x. Output: y (the non-reduced dimensions, in order, with or without the
//! kept 1s). No scratch. Parameters: a bit mask of the reduced axes, then for int8 the input
//! zero point, output zero point, multiplier and shift (already folded with 1/count).

use super::checks;
use super::nd;
use super::{cast, cast_mut, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, TensorInfo, MAX_RANK};
use crate::nn::dtype::DType;
use crate::reference::multiply_by_quantized_multiplier;

pub(crate) const DEF: OpDef = OpDef {
    code: 40,
    name: "MEAN",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

const P_MASK: usize = 0;
const P_ZI: usize = 1;
const P_ZO: usize = 2;
const P_MUL: usize = 3;
const P_SHIFT: usize = 4;

/// The kept and reduced dimensions of the input as (sizes, strides) lists, and the count of
/// reduced elements.
struct Split {
    kept: ([usize; MAX_RANK], [usize; MAX_RANK], usize),
    reduced: ([usize; MAX_RANK], [usize; MAX_RANK], usize),
    kept_elems: usize,
    count: usize,
}

fn split(x: &TensorInfo, mask: i32) -> Split {
    let shape = x.shape();
    let strides = nd::strides(&shape);
    let mut kept = ([0; MAX_RANK], [0; MAX_RANK], 0);
    let mut reduced = ([0; MAX_RANK], [0; MAX_RANK], 0);
    let (mut kept_elems, mut count) = (1usize, 1usize);
    for (i, &stride) in strides.iter().enumerate().take(shape.rank()) {
        let d = shape.dim(i);
        let part = if mask & (1 << i) != 0 {
            count *= d;
            &mut reduced
        } else {
            kept_elems *= d;
            &mut kept
        };
        part.0[part.2] = d;
        part.1[part.2] = stride;
        part.2 += 1;
    }
    Split {
        kept,
        reduced,
        kept_elems,
        count,
    }
}

fn check(op: &OpView) -> Result<(), Error> {
    let x = checks::input(op, 0)?;
    let y = checks::output(op, 0)?;
    match x.dtype {
        DType::F32 => checks::counts(op, 1, 1, 0, 1)?,
        DType::I8 => checks::counts(op, 1, 1, 0, 5)?,
        _ => return Err(op.error("MEAN needs int8 or f32 input")),
    }
    checks::dtype(op, &y, x.dtype)?;
    let mask = op.param(P_MASK);
    if mask < 0 || mask >= 1 << x.shape().rank() {
        return Err(op.error("MEAN reduces an axis the input does not have"));
    }
    let s = split(&x, mask);
    if y.elems() != s.kept_elems {
        return Err(op.error("MEAN's output size does not match the kept dimensions"));
    }
    if x.dtype == DType::I8 {
        let shift = op.param(P_SHIFT);
        let (zi, zo) = (op.param(P_ZI), op.param(P_ZO));
        if !(-31..=30).contains(&shift)
            || !(-128..=127).contains(&zi)
            || !(-128..=127).contains(&zo)
        {
            return Err(op.error("MEAN's requantization parameters are out of range"));
        }
        // The i32 sum must not overflow: 255 · count < 2^31.
        if s.count > (i32::MAX / 256) as usize {
            return Err(op.error("MEAN reduces too many elements for an i32 sum"));
        }
    }
    Ok(())
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let xi = checks::input(op, 0)?;
    let (xt, yt) = match (op.input(0), op.output(0)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(op.error("missing tensor")),
    };
    let s = split(&xi, op.param(P_MASK));
    let (ks, kst, kn) = &s.kept;
    let (rs, rst, rn) = &s.reduced;
    let (kept, kept_strides) = (&ks[..*kn], &kst[..*kn]);
    let (red, red_strides) = (&rs[..*rn], &rst[..*rn]);
    let x = mem.input(xt)?;
    let out = mem.output(yt)?;
    if xi.dtype == DType::F32 {
        let count = s.count as f32;
        reduce(
            kept,
            kept_strides,
            red,
            red_strides,
            cast::<f32>(x),
            cast_mut::<f32>(out),
            0f32,
            |a, v| a + v,
            |sum| sum / count,
        );
        return Ok(());
    }
    let (zi, zo) = (op.param(P_ZI), op.param(P_ZO));
    let (mult, shift) = (op.param(P_MUL), op.param(P_SHIFT));
    let offset = (i64::from(zi) * s.count as i64) as i32;
    reduce(
        kept,
        kept_strides,
        red,
        red_strides,
        cast::<i8>(x),
        cast_mut::<i8>(out),
        0i32,
        // No overflow: `check` bounds the count so that 255·count < 2^31.
        |a, v| a + i32::from(v),
        |sum| {
            let v = multiply_by_quantized_multiplier(sum.wrapping_sub(offset), mult, shift);
            v.saturating_add(zo).clamp(-128, 127) as i8
        },
    );
    Ok(())
}

/// Kept elements reduced together when the last axis is kept (an accumulator row on the
/// stack).
const CHUNK: usize = 64;

/// `y[kept] = finish(fold of x over the reduced offsets)`, each output's elements added in
/// input order. When the input's last axis is kept (MEAN over H and W of NHWC), a row of
/// contiguous outputs is reduced at once, reduced offset by reduced offset, so the inner
/// loop runs over contiguous channels.
#[allow(clippy::too_many_arguments)]
fn reduce<T: Copy, A: Copy>(
    kept: &[usize],
    kept_strides: &[usize],
    red: &[usize],
    red_strides: &[usize],
    x: &[T],
    y: &mut [T],
    zero: A,
    add: impl Fn(A, T) -> A,
    finish: impl Fn(A) -> T,
) {
    let mut outs = y.iter_mut();
    if let (Some((&row, outer)), Some((&1, outer_strides))) =
        (kept.split_last(), kept_strides.split_last())
    {
        let mut acc = [zero; CHUNK];
        nd::walk(outer, outer_strides, &[], |base, _| {
            for c0 in (0..row).step_by(CHUNK) {
                let acc = &mut acc[..(row - c0).min(CHUNK)];
                acc.fill(zero);
                nd::walk(red, red_strides, &[], |off, _| {
                    let at = base + off + c0;
                    if let Some(src) = x.get(at..at + acc.len()) {
                        for (a, &v) in acc.iter_mut().zip(src) {
                            *a = add(*a, v);
                        }
                    }
                });
                // `acc` first: zip must not take an output it has no value for.
                for (&a, o) in acc.iter().zip(outs.by_ref()) {
                    *o = finish(a);
                }
            }
        });
        return;
    }
    nd::walk(kept, kept_strides, &[], |base, _| {
        let mut sum = zero;
        nd::walk(red, red_strides, &[], |off, _| {
            if let Some(&v) = x.get(base + off) {
                sum = add(sum, v);
            }
        });
        if let Some(o) = outs.next() {
            *o = finish(sum);
        }
    });
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::Tensor;
    use crate::nn::transform::lower::Lowering;

    /// TFLite's `QuantizedMeanOrSum` folding of 1/count into (multiplier, shift).
    fn fold_count(multiplier: i32, shift: i32, count: usize) -> (i32, i32) {
        if count == 0 {
            return (multiplier, shift);
        }
        let log2 = 63 - (count as u64).leading_zeros() as i32;
        let s = log2.min(32).min(31 + shift);
        let m = ((i64::from(multiplier) << s) / count as i64) as i32;
        (m, shift - s)
    }

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let x = g.input(node, 0)?;
        let axes = g.input(node, 1)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        let data = axes
            .data
            .as_ref()
            .ok_or_else(|| err("MEAN with non-constant axes is not supported"))?;
        if axes.dtype != DType::I32 {
            return Err(err("MEAN axes that are not int32 are not supported"));
        }
        let rank = x.shape.len() as i32;
        if rank > super::MAX_RANK as i32 {
            return Err(err("MEAN of a tensor of rank above 6 is not supported"));
        }
        let mut mask = 0i32;
        for c in data.chunks_exact(4) {
            let a = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let a = if a < 0 { a + rank } else { a };
            if !(0..rank).contains(&a) {
                return Err(err("MEAN axis out of range"));
            }
            mask |= 1 << a;
        }
        let count: usize = (0..x.shape.len())
            .filter(|&i| mask & (1 << i) != 0)
            .map(|i| x.shape[i])
            .product();
        let kept: usize = (0..x.shape.len())
            .filter(|&i| mask & (1 << i) == 0)
            .map(|i| x.shape[i])
            .product();
        if kept != y.elems() || x.elems() == 0 {
            return Err(err("MEAN's output shape does not match its axes"));
        }
        let params = match (x.dtype, y.dtype) {
            (DType::F32, DType::F32) => vec![mask],
            (DType::I8, DType::I8) => {
                let q = |t: &Tensor| {
                    t.quant
                        .as_ref()
                        .map(|q| q.first())
                        .ok_or_else(|| err("a quantized tensor has no scale"))
                };
                let ((sx, zx), (sy, zy)) = (q(x)?, q(y)?);
                let (m, s) = crate::quantize_multiplier(f64::from(sx) / f64::from(sy))?;
                let (m, s) = fold_count(m, s, count);
                vec![mask, zx, zy, m, s]
            }
            _ => return Err(err("MEAN of this element type is not supported")),
        };
        let mut op = l.op(node, 40, params);
        op.inputs.truncate(1);
        l.push(op);
        Ok(())
    }
}

//! AVERAGE_POOL_2D and MAX_POOL_2D over NHWC tensors: SAME/VALID padding (border windows
//! clipped to the input, so averages count only the elements inside), any strides and
//! filter sizes, fused activation; int8 and f32.
//!
//! int8 matches TFLite's reference kernels (`reference_integer_ops::AveragePool` /
//! `MaxPool`, as `pooling.cc` runs them under BUILTIN_REF) bit for bit: the average is the
//! i32 window sum divided by the window count rounding half away from zero
//! (`(sum ± count/2) / count`, truncating division), then clamped to the activation range.
//! f32 follows `reference_ops::AveragePool` / `MaxPool` (sum in window order, then divide).
//!
//! Blob form. Input: x `[N, H, W, C]`. Output: y `[N, OH, OW, C]` (same dtype). No scratch.
//! Parameters: filter height, filter width, stride height, stride width, padding top,
//! padding left (TFLite's `ComputePaddingHeightWidth`), clamp min, clamp max (int8: output
//! units; f32: f32 bits).

use super::checks;
use super::{cast, cast_mut, Fail, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, TensorInfo};
use crate::nn::dtype::DType;

pub(crate) const DEF: OpDef = OpDef {
    code: 1,
    name: "AVERAGE_POOL_2D",
    in_place: false,
    macs: super::no_macs,
    check,
    run: run::<true>,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

pub(crate) const MAX_POOL: OpDef = OpDef {
    code: 17,
    name: "MAX_POOL_2D",
    run: run::<false>,
    ..DEF
};

const P_FH: usize = 0;
const P_FW: usize = 1;
const P_SH: usize = 2;
const P_SW: usize = 3;
const P_PH: usize = 4;
const P_PW: usize = 5;
const P_LO: usize = 6;
const P_HI: usize = 7;
const N_PARAMS: usize = 8;

/// Filter sizes, strides and paddings are kept below this (and `check` keeps every window's
/// end and the input's height and width within `isize`, so the index arithmetic is in
/// `isize`: one register on a 32-bit core).
const MAX_WINDOW: i32 = 1 << 20;

/// The pooling geometry, read from the blob (checked by `check`).
#[derive(Clone, Copy)]
struct Geom {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    fh: isize,
    fw: isize,
    sh: isize,
    sw: isize,
    ph: isize,
    pw: isize,
}

impl Geom {
    fn new(op: &OpView, x: &TensorInfo, y: &TensorInfo) -> Self {
        let (xs, ys) = (x.shape(), y.shape());
        // (Each below 2^20, checked.)
        let p = |i| op.param(i) as isize;
        Geom {
            n: xs.dim(0),
            h: xs.dim(1),
            w: xs.dim(2),
            c: xs.dim(3),
            oh: ys.dim(1),
            ow: ys.dim(2),
            fh: p(P_FH),
            fw: p(P_FW),
            sh: p(P_SH),
            sw: p(P_SW),
            ph: p(P_PH),
            pw: p(P_PW),
        }
    }

    /// The window of output (oy, ox) clipped to the input: rows and columns, half-open.
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        // No overflow: `check` keeps the last window's end within isize.
        let y0 = oy as isize * self.sh - self.ph;
        let x0 = ox as isize * self.sw - self.pw;
        let clip = |o: isize, f: isize, len: usize| {
            let lo = o.max(0);
            let hi = (o + f).min(len as isize);
            (lo.max(0) as usize, hi.max(lo) as usize)
        };
        let (ys, ye) = clip(y0, self.fh, self.h);
        let (xs, xe) = clip(x0, self.fw, self.w);
        (ys, ye, xs, xe)
    }
}

/// Input 0 and output 0, without their names (read on every run).
fn tensors<'a>(op: &OpView<'a>) -> Result<(TensorInfo<'a>, TensorInfo<'a>), Error> {
    let info = |t: Option<usize>| {
        t.and_then(|t| op.model().tensor_unnamed(t))
            .ok_or_else(|| op.error("a required tensor is missing"))
    };
    Ok((info(op.input(0))?, info(op.output(0))?))
}

fn check(op: &OpView) -> Result<(), Error> {
    checks::counts(op, 1, 1, 0, N_PARAMS)?;
    let (x, y) = tensors(op)?;
    if x.dtype != y.dtype || !matches!(x.dtype, DType::I8 | DType::F32) {
        return Err(op.error("pooling needs int8 or f32 input and output of one type"));
    }
    checks::float_form(op, x.dtype == DType::F32)?;
    let (xs, ys) = (x.shape(), y.shape());
    if xs.rank() != 4 || ys.rank() != 4 || xs.dim(0) != ys.dim(0) || xs.dim(3) != ys.dim(3) {
        return Err(op.error("pooling needs NHWC input and output with matching N and C"));
    }
    for i in [P_FH, P_FW, P_SH, P_SW] {
        if !(1..=MAX_WINDOW).contains(&op.param(i)) {
            return Err(op.error("a filter size or stride is out of range"));
        }
    }
    for (pad, f) in [(P_PH, P_FH), (P_PW, P_FW)] {
        // A padding of at least the filter size leaves the first window empty.
        if op.param(pad) < 0 || op.param(pad) >= op.param(f) {
            return Err(op.error("a padding is out of range"));
        }
    }
    let g = Geom::new(op, &x, &y);
    if y.elems() > 0 {
        // Windows move monotonically: the first starts inside (padding < filter), so every
        // window is non-empty when the last one starts before the input's end. In i64 (every
        // term below 2^32 · 2^20), then the ends `window` computes in isize must fit it.
        let p = |i| i64::from(op.param(i));
        let last_y = (g.oh as i64 - 1) * p(P_SH) - p(P_PH);
        let last_x = (g.ow as i64 - 1) * p(P_SW) - p(P_PW);
        if last_y >= g.h as i64 || last_x >= g.w as i64 {
            return Err(op.error("an output window lies outside the input"));
        }
        let fits = |v: i64| isize::try_from(v).is_ok();
        if !fits(g.h as i64)
            || !fits(g.w as i64)
            || !fits(last_y + p(P_SH) + p(P_FH))
            || !fits(last_x + p(P_SW) + p(P_FW))
        {
            return Err(op.error("the pooling geometry is too large for this target"));
        }
    }
    let (lo, hi) = (op.param(P_LO), op.param(P_HI));
    if x.dtype == DType::I8 && !(-128 <= lo && lo <= hi && hi <= 127) {
        return Err(op.error("the int8 clamp range is invalid"));
    }
    Ok(())
}

/// One run function per operator (`AVERAGE`: AVERAGE_POOL_2D, else MAX_POOL_2D), so a
/// firmware whose operator set has one of them links only its kernels.
fn run<const AVERAGE: bool>(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    // (The error built here, once: see `Fail`.)
    Ok(run_as::<AVERAGE>(op, mem)?)
}

fn run_as<const AVERAGE: bool>(op: &OpView, mem: &mut OpMem) -> Result<(), Fail> {
    // (As `tensors`.)
    let info = |t: Option<usize>| {
        t.and_then(|t| op.model().tensor_unnamed(t))
            .ok_or_else(|| Fail::of(op, "a required tensor is missing"))
    };
    let (xi, yi) = (info(op.input(0))?, info(op.output(0))?);
    let g = Geom::new(op, &xi, &yi);
    let (xt, yt) = match (op.input(0), op.output(0)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(Fail::of(op, "missing tensor")),
    };
    let x = mem.input(xt)?;
    let out = mem.output(yt)?;
    let (lo, hi) = (op.param(P_LO), op.param(P_HI));
    #[cfg(target_arch = "x86_64")]
    {
        use crate::arch::{cpu_info, Features};
        if cpu_info().features.contains(Features::AVX2) {
            // SAFETY: the CPU has AVX2 (checked).
            unsafe { reduce_avx2::<AVERAGE>(&g, x, out, xi.dtype, lo, hi) };
            return Ok(());
        }
    }
    reduce::<AVERAGE>(&g, x, out, xi.dtype, lo, hi);
    Ok(())
}

/// [`reduce`] compiled for AVX2 (the channel loops are LLVM's to vectorize; the build's
/// x86-64 baseline has 128-bit vectors only).
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn reduce_avx2<const AVERAGE: bool>(
    g: &Geom,
    x: &[u8],
    out: &mut [u8],
    dtype: DType,
    lo: i32,
    hi: i32,
) {
    reduce::<AVERAGE>(g, x, out, dtype, lo, hi)
}

/// The pooling of `x` into `out` (int8 or f32 bytes), clamp words `lo`, `hi` as the blob
/// holds them; the average (`AVERAGE`) or the maximum.
#[inline(always)]
fn reduce<const AVERAGE: bool>(g: &Geom, x: &[u8], out: &mut [u8], dtype: DType, lo: i32, hi: i32) {
    match dtype {
        DType::I8 => {
            let (x, y) = (cast::<i8>(x), cast_mut::<i8>(out));
            let clamp = move |v: i64| v.clamp(lo.into(), hi.into()) as i8;
            if !AVERAGE {
                pool(g, x, y, i8::MIN, |m, v| m.max(v), |m, _| clamp(m.into()));
            } else {
                // TFLite's i32 sums, wrapping: no window of fewer than 2^24 input pixels
                // (every real model's) can overflow, and a hostile blob's huge window gives
                // TFLite's wrapped sum, never a panic (one kernel, not a second one in i64).
                // (One form per target: the M4 links only its own.)
                #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
                average_quads(g, x, y, lo, hi);
                #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
                {
                    let add = |s: i32, v: i8| s.wrapping_add(i32::from(v));
                    pool(g, x, y, 0i32, add, |s, n| average_i8(s, n, lo, hi));
                }
            }
        }
        // (Refused at load without the f32 forms.)
        _ if super::F32 => {
            let (x, y) = (cast::<f32>(x), cast_mut::<f32>(out));
            let lo = f32::from_bits(lo as u32);
            let hi = f32::from_bits(hi as u32);
            let clamp = move |v: f32| v.max(lo).min(hi);
            if AVERAGE {
                pool(g, x, y, 0f32, |s, v| s + v, |s, n| clamp(s / n as f32));
            } else {
                pool(g, x, y, f32::MIN, |m, v| m.max(v), |m, _| clamp(m));
            }
        }
        _ => {}
    }
}

/// TFLite's int8 average: the window's i32 `sum` divided by its `count` rounding half away
/// from zero (in i64: no overflow for any sum), clamped to [lo, hi]. Out of line on the M4
/// (one copy, not one per output lane of [`average_quads`]).
#[cfg_attr(all(target_arch = "arm", edgemm_arm_dsp), inline(never))]
fn average_i8(sum: i32, count: usize, lo: i32, hi: i32) -> i8 {
    let (sum, count, half) = (i64::from(sum), count.max(1) as i64, count as i64 / 2);
    let v = if sum > 0 {
        (sum + half) / count
    } else {
        (sum - half) / count
    };
    v.clamp(lo.into(), hi.into()) as i8
}

/// The int8 average of [`pool`] four channels at a time, the window's pixels inner: the
/// four (wrapping i32) sums stay in registers and one word load gives four inputs
/// (`sxtab`), where a row of accumulators in memory costs a load and a store per input on a
/// core without vectors (the Cortex-M4); channels past the last whole four one at a time
/// (`ldrsb`). The same sums as `pool`'s (a window row not inside `x` is skipped).
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
#[inline(never)]
fn average_quads(g: &Geom, x: &[i8], y: &mut [i8], lo: i32, hi: i32) {
    let c = g.c;
    if c == 0 {
        return;
    }
    let (row, img) = (g.w * c, g.h * g.w * c);
    let mut outs = y.chunks_exact_mut(c);
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (ys, ye, xs, xe) = g.window(oy, ox);
                let count = (ye - ys) * (xe - xs);
                let Some(pixel) = outs.next() else { return };
                let n = xe - xs;
                let fours = c / 4 * 4;
                for (j, dst) in pixel.chunks_exact_mut(4).enumerate() {
                    let a = window_sums::<4>(x, b * img + 4 * j, (ys..ye, row), (xs, n, c));
                    for (d, &s) in dst.iter_mut().zip(&a) {
                        *d = average_i8(s, count, lo, hi);
                    }
                }
                for (j, d) in pixel.iter_mut().enumerate().skip(fours) {
                    let a = window_sums::<1>(x, b * img + j, (ys..ye, row), (xs, n, c));
                    *d = average_i8(a[0], count, lo, hi);
                }
            }
        }
    }
}

/// The (wrapping) sums of `LANES` (4 or 1) channels from `x[at..]` over one pooling window:
/// input rows `rows.0` (`rows.1` bytes apart), `n` pixels from column `xs`, `c` channels a
/// pixel; a row not inside `x` is skipped. Assembly: a Rust loop is unrolled (size).
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
#[inline(always)]
fn window_sums<const LANES: usize>(
    x: &[i8],
    at: usize,
    rows: (core::ops::Range<usize>, usize),
    (xs, n, c): (usize, usize, usize),
) -> [i32; 4] {
    let mut a = [0i32; 4];
    for iy in rows.0 {
        let at = at + iy * rows.1 + xs * c;
        let span = (n.saturating_sub(1))
            .saturating_mul(c)
            .saturating_add(LANES);
        if n == 0 || x.get(at..).is_none_or(|v| v.len() < span) {
            continue;
        }
        let p = x[at..].as_ptr();
        if LANES == 1 {
            // SAFETY: reads the n bytes at x[at + i·c] (i < n), inside `x` (checked above:
            // at + (n − 1)·c + 1 ≤ x.len()). Registers and flags only otherwise.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldrsb {v}, [{p}]",
                    "add {p}, {p}, {c}",
                    "add {a0}, {a0}, {v}",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    p = inout(reg) p => _,
                    c = in(reg) c,
                    n = inout(reg) n => _,
                    v = out(reg) _,
                    a0 = inout(reg) a[0],
                    options(nostack, readonly),
                );
            }
            continue;
        }
        // SAFETY: reads the n words at x[at + i·c] (i < n), inside `x` (checked above:
        // at + (n − 1)·c + 4 ≤ x.len()); unaligned `ldr` is allowed on the M4. Registers and
        // flags only otherwise.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {v}, [{p}]",
                "add {p}, {p}, {c}",
                "sxtab {a0}, {a0}, {v}",
                "sxtab {a1}, {a1}, {v}, ror #8",
                "sxtab {a2}, {a2}, {v}, ror #16",
                "sxtab {a3}, {a3}, {v}, ror #24",
                "subs {n}, {n}, #1",
                "bne 2b",
                p = inout(reg) p => _,
                c = in(reg) c,
                n = inout(reg) n => _,
                v = out(reg) _,
                a0 = inout(reg) a[0],
                a1 = inout(reg) a[1],
                a2 = inout(reg) a[2],
                a3 = inout(reg) a[3],
                options(nostack, readonly),
            );
        }
    }
    a
}

/// Channels reduced together (an accumulator row on the stack).
const CHUNK: usize = 64;

/// For every output pixel, folds the window's input pixels (rows then columns, as TFLite's
/// loops) into a row of accumulators with `add`, channels side by side (NHWC keeps them
/// contiguous, so the inner loop vectorizes), then `finish(acc, window count)` gives each
/// output value.
#[inline(always)]
fn pool<T: Copy, A: Copy>(
    g: &Geom,
    x: &[T],
    y: &mut [T],
    zero: A,
    add: impl Fn(A, T) -> A,
    finish: impl Fn(A, usize) -> T,
) {
    let c = g.c;
    if c == 0 {
        return;
    }
    let (row, img) = (g.w * c, g.h * g.w * c);
    let mut outs = y.chunks_exact_mut(c);
    let mut acc = [zero; CHUNK];
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (ys, ye, xs, xe) = g.window(oy, ox);
                let count = (ye - ys) * (xe - xs);
                let Some(pixel) = outs.next() else { return };
                for (k, dst) in pixel.chunks_mut(CHUNK).enumerate() {
                    let acc = &mut acc[..dst.len()];
                    acc.fill(zero);
                    for iy in ys..ye {
                        for ix in xs..xe {
                            let at = b * img + iy * row + ix * c + k * CHUNK;
                            if let Some(src) = x.get(at..at + dst.len()) {
                                for (a, &v) in acc.iter_mut().zip(src) {
                                    *a = add(*a, v);
                                }
                            }
                        }
                    }
                    for (d, &a) in dst.iter_mut().zip(acc.iter()) {
                        *d = finish(a, count);
                    }
                }
            }
        }
    }
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec;

    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{OpOptions, Padding};
    use crate::nn::transform::lower::{activation_range_f, activation_range_q, Lowering};

    /// TFLite's output size for one spatial dimension (dilation 1).
    fn out_size(padding: Padding, input: i64, filter: i64, stride: i64) -> i64 {
        match padding {
            Padding::Same => (input + stride - 1) / stride,
            Padding::Valid => (input - filter + stride) / stride,
        }
    }

    /// TFLite's `ComputePaddingWithOffset` (the leading padding).
    fn pad_before(input: i64, filter: i64, stride: i64, out: i64) -> i64 {
        (((out - 1) * stride + filter - input).max(0)) / 2
    }

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let (padding, sw, sh, fw, fh, act) = match &g.nodes[node].options {
            OpOptions::Pool2d {
                padding,
                stride_w,
                stride_h,
                filter_width,
                filter_height,
                activation,
            } => (
                *padding,
                *stride_w,
                *stride_h,
                *filter_width,
                *filter_height,
                *activation,
            ),
            _ => return Err(err("pooling without its options")),
        };
        let x = g.input(node, 0)?;
        let y = &g.tensors[g.output_index(node, 0)?];
        if x.shape.len() != 4 || y.shape.len() != 4 {
            return Err(err("pooling of a tensor that is not 4-D is not supported"));
        }
        let limit = 1..=super::MAX_WINDOW;
        if ![sw, sh, fw, fh].iter().all(|v| limit.contains(v)) {
            return Err(err("a pooling filter size or stride is out of range"));
        }
        let (h, w) = (x.shape[1] as i64, x.shape[2] as i64);
        let (oh, ow) = (
            out_size(padding, h, fh.into(), sh.into()),
            out_size(padding, w, fw.into(), sw.into()),
        );
        if oh != y.shape[1] as i64
            || ow != y.shape[2] as i64
            || x.shape[0] != y.shape[0]
            || x.shape[3] != y.shape[3]
        {
            return Err(err("the pooling output shape does not match its options"));
        }
        let ph = pad_before(h, fh.into(), sh.into(), oh) as i32;
        let pw = pad_before(w, fw.into(), sw.into(), ow) as i32;
        let (lo, hi) = match (x.dtype, y.dtype) {
            (DType::F32, DType::F32) => {
                let (lo, hi) = activation_range_f(act).map_err(err)?;
                (lo.to_bits() as i32, hi.to_bits() as i32)
            }
            (DType::I8, DType::I8) => {
                let q = |t: &crate::nn::transform::ir::Tensor| {
                    t.quant
                        .as_ref()
                        .map(|q| q.first())
                        .ok_or_else(|| err("a quantized tensor has no scale"))
                };
                let ((sx, zx), (sy, zy)) = (q(x)?, q(y)?);
                if zx != zy || (sx - sy).abs() > 1e-6 {
                    return Err(err(
                        "int8 pooling with different input and output quantization is not supported",
                    ));
                }
                activation_range_q(act, sy, zy, -128, 127).map_err(err)?
            }
            _ => return Err(err("pooling of this element type is not supported")),
        };
        let code = g.nodes[node].op.code() as u16;
        let mut op = l.op(node, code, vec![fh, fw, sh, sw, ph, pw, lo, hi]);
        op.inputs.truncate(1);
        l.push(op);
        Ok(())
    }
}

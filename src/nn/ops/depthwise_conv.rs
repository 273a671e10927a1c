//! DEPTHWISE_CONV_2D: NHWC depthwise convolution, output channel `c·m + j` = input channel
//! `c` (depth multiplier m ≥ 1) filtered by weight column `c·m + j` of [1, kh, kw, c_out],
//! with strides, dilation, SAME/VALID padding (TFLite's `ComputePaddingHeightWidth`), bias
//! and fused activation. int8 (per-channel or per-tensor weights) is bit-exact with TFLite's
//! `reference_integer_ops::DepthwiseConvPerChannel` (the BUILTIN_REF resolver's int8 kernel):
//! exact i32 sums of `w·(x − z_x)` over the taps inside the image, plus bias, then
//! `MultiplyByQuantizedMultiplier` (double rounding), zero point, clamp. f32 sums the taps
//! in TFLite's `reference_ops::DepthwiseConv` order, then adds the bias and clamps.
//!
//! Direct loops: per output pixel, every tap inside the image adds its input pixel's
//! channels times the tap's weight row into an accumulator row of c_out (contiguous, so the
//! inner loop vectorizes).
//!
//! Blob form. Inputs: x [b, h, w, c_in], weights [1, kh, kw, c_out] (i8 or f32), bias
//! (c_out, optional: i32 or f32), and for int8 the multipliers and shifts (c_out, or 1 per
//! tensor). Output: y [b, oh, ow, c_out]. One scratch tensor: the accumulator row (c_out
//! 4-byte values). Parameters: the `conv::Geom` words, then int8: x zero point, output zero
//! point, clamp min, clamp max; f32: clamp min and max as f32 bits.

use super::conv::Geom;
use super::gemm_common::check_scales;
use super::{cast, cast_mut, checks, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;
use crate::reference::multiply_by_quantized_multiplier;

pub(crate) const DEF: OpDef = OpDef {
    code: 4,
    name: "DEPTHWISE_CONV_2D",
    in_place: false,
    macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

const P_GEOM: usize = 0;
// int8
const P_ZA: usize = Geom::WORDS;
const P_ZO: usize = Geom::WORDS + 1;
const P_LO: usize = Geom::WORDS + 2;
const P_HI: usize = Geom::WORDS + 3;
// f32
const P_FLO: usize = Geom::WORDS;
const P_FHI: usize = Geom::WORDS + 1;

fn is_float(op: &OpView) -> Result<bool, Error> {
    Ok(checks::input(op, 0)?.dtype == DType::F32)
}

/// kh·kw products per output value.
fn macs(op: &OpView) -> u64 {
    let g = Geom::read(op, P_GEOM);
    super::output_macs(op, (g.kh * g.kw) as u64)
}

fn check(op: &OpView) -> Result<(), Error> {
    let float = is_float(op)?;
    if float {
        checks::counts(op, 3, 1, 1, Geom::WORDS + 2)?;
    } else {
        checks::counts(op, 5, 1, 1, Geom::WORDS + 4)?;
    }
    let g = Geom::read(op, P_GEOM);
    g.check(op, P_GEOM)?;
    if g.ic == 0 || g.oc % g.ic != 0 || g.oc < g.ic {
        return Err(op.error("output channels are not a multiple of the input channels"));
    }
    let x = checks::input(op, 0)?;
    let w = checks::input(op, 1)?;
    let y = checks::output(op, 0)?;
    let (ty, tb) = if float {
        (DType::F32, DType::F32)
    } else {
        (DType::I8, DType::I32)
    };
    checks::dtype(op, &x, ty)?;
    checks::dtype(op, &w, ty)?;
    checks::dtype(op, &y, ty)?;
    if w.elems() != g.kh * g.kw * g.oc {
        return Err(op.error("the weights have the wrong size"));
    }
    if let Some(b) = op.input(2) {
        let b = op
            .model()
            .tensor(b)
            .ok_or_else(|| op.error("the bias names a missing tensor"))?;
        checks::dtype(op, &b, tb)?;
        if b.elems() != g.oc {
            return Err(op.error("the bias has the wrong length"));
        }
    }
    if !float {
        check_scales(op, g.oc, 3)?;
        let i8_range = -128..=127;
        if !i8_range.contains(&op.param(P_ZA)) || !i8_range.contains(&op.param(P_ZO)) {
            return Err(op.error("a zero point is out of the int8 range"));
        }
        if op.param(P_LO).max(-128) > op.param(P_HI).min(127) {
            return Err(op.error("the output clamp is empty"));
        }
    }
    if checks::temp(op, 0)?.bytes < g.oc * 4 {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// Calls `tap(x_offset, weight_row)` for every tap of output pixel (b, oy, ox) inside the
/// image, in TFLite's order (filter rows, then columns).
#[inline]
fn taps(g: &Geom, b: usize, oy: usize, ox: usize, mut tap: impl FnMut(usize, usize)) {
    for fy in 0..g.kh {
        let iy = g.in_y(oy, fy);
        if iy < 0 || iy >= g.ih as i64 {
            continue;
        }
        for fx in 0..g.kw {
            if let Some(at) = g.in_pixel(b, iy, g.in_x(ox, fx)) {
                tap(at, fy * g.kw + fx);
            }
        }
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let float = is_float(op)?;
    let g = Geom::read(op, P_GEOM);
    let (ic, oc) = (g.ic, g.oc);
    let dm = oc / ic.max(1);
    let t = |i: usize| op.input(i).ok_or_else(|| op.error("missing input"));
    let x = mem.input(t(0)?)?;
    let w = mem.input(t(1)?)?;
    let bias = op.input(2).map(|b| mem.input(b)).transpose()?;
    let (mults, shifts) = if float {
        (&[][..], &[][..])
    } else {
        (
            cast::<i32>(mem.input(t(3)?)?),
            cast::<i32>(mem.input(t(4)?)?),
        )
    };
    let out_t = op.output(0).ok_or_else(|| op.error("missing output"))?;
    let s_t = op.temp(0).ok_or_else(|| op.error("missing scratch"))?;
    let (out, scratch) = mem.output_and_temp(out_t, s_t)?;
    let bad = || op.error("a tensor is smaller than its geometry");
    let mut pixels = 0..g.batch * g.oh * g.ow;
    let plane = (g.oh * g.ow).max(1);
    let pixel = |p: usize| (p / plane, p % plane / g.ow.max(1), p % g.ow.max(1));
    if float {
        let (x, w) = (cast::<f32>(x), cast::<f32>(w));
        let bias = bias.map(cast::<f32>);
        let acc = cast_mut::<f32>(scratch).get_mut(..oc).ok_or_else(bad)?;
        let (lo, hi) = (
            f32::from_bits(op.param(P_FLO) as u32),
            f32::from_bits(op.param(P_FHI) as u32),
        );
        for y in cast_mut::<f32>(out).chunks_exact_mut(oc.max(1)) {
            let (b, oy, ox) = pixel(pixels.next().ok_or_else(bad)?);
            acc.fill(0.0);
            let mut ok = true;
            taps(&g, b, oy, ox, |at, t| {
                match (x.get(at..at + ic), w.get(t * oc..(t + 1) * oc)) {
                    (Some(xs), Some(ws)) => {
                        for ((a, wj), &xv) in
                            acc.chunks_exact_mut(dm).zip(ws.chunks_exact(dm)).zip(xs)
                        {
                            for (a, &wv) in a.iter_mut().zip(wj) {
                                *a += xv * wv;
                            }
                        }
                    }
                    _ => ok = false,
                }
            });
            if !ok {
                return Err(bad());
            }
            for (c, (o, &a)) in y.iter_mut().zip(acc.iter()).enumerate() {
                let v = a + bias.and_then(|b| b.get(c)).copied().unwrap_or(0.0);
                *o = v.max(lo).min(hi);
            }
        }
        return Ok(());
    }
    let (x, w) = (cast::<i8>(x), cast::<i8>(w));
    let bias = bias.map(cast::<i32>);
    let acc = cast_mut::<i32>(scratch).get_mut(..oc).ok_or_else(bad)?;
    let (za, zo) = (op.param(P_ZA), op.param(P_ZO));
    let (lo, hi) = (op.param(P_LO).max(-128), op.param(P_HI).min(127));
    let per_tensor = mults.len() == 1;
    for y in cast_mut::<i8>(out).chunks_exact_mut(oc.max(1)) {
        let (b, oy, ox) = pixel(pixels.next().ok_or_else(bad)?);
        // Integer sums are exact (wrapping, as TFLite's int32 in practice): the bias may
        // start them.
        match bias {
            Some(bias) => acc.copy_from_slice(bias.get(..oc).ok_or_else(bad)?),
            None => acc.fill(0),
        }
        let mut ok = true;
        taps(&g, b, oy, ox, |at, t| {
            match (x.get(at..at + ic), w.get(t * oc..(t + 1) * oc)) {
                (Some(xs), Some(ws)) if dm == 1 => {
                    for ((a, &wv), &xv) in acc.iter_mut().zip(ws).zip(xs) {
                        *a = a.wrapping_add(i32::from(wv) * (i32::from(xv) - za));
                    }
                }
                (Some(xs), Some(ws)) => {
                    for ((a, wj), &xv) in acc.chunks_exact_mut(dm).zip(ws.chunks_exact(dm)).zip(xs)
                    {
                        let xv = i32::from(xv) - za;
                        for (a, &wv) in a.iter_mut().zip(wj) {
                            *a = a.wrapping_add(i32::from(wv) * xv);
                        }
                    }
                }
                _ => ok = false,
            }
        });
        if !ok {
            return Err(bad());
        }
        for (c, (o, &a)) in y.iter_mut().zip(acc.iter()).enumerate() {
            let j = if per_tensor { 0 } else { c };
            let (m, s) = (
                mults.get(j).copied().unwrap_or(0),
                shifts.get(j).copied().unwrap_or(0),
            );
            let v = multiply_by_quantized_multiplier(a, m, s).saturating_add(zo);
            *o = v.clamp(lo, hi) as i8;
        }
    }
    Ok(())
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;

    use super::Geom;
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::ops::conv::same_or_valid;
    use crate::nn::ops::gemm_common::lower_requant;
    use crate::nn::transform::ir::OpOptions;
    use crate::nn::transform::lower::{activation_range_f, Lowering};

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
        if w.data.is_none() {
            return Err(err("non-constant weights are not supported"));
        }
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
        if let Some(bt) = bias {
            let bt = &gr.tensors[bt];
            if bt.dtype != want_b {
                return Err(err("this bias type is not supported"));
            }
            if bt.elems() != oc {
                return Err(err("the bias does not match the output channels"));
            }
        }
        let y_name = y.name.clone();
        let mut params = words.to_vec();
        let mut op = l.op(node, 4, vec![]);
        op.inputs.truncate(3);
        op.inputs.resize(3, None);
        if float {
            let (lo, hi) = activation_range_f(act).map_err(err)?;
            params.extend([lo.to_bits() as i32, hi.to_bits() as i32]);
        } else {
            let rq = lower_requant(l, node, oc, act)?;
            // TFLite's DepthwiseConvPerChannel has no weights offset.
            params.extend([rq.za, rq.zo, rq.lo, rq.hi]);
            op.inputs.extend([Some(rq.mults), Some(rq.shifts)]);
        }
        op.params = params;
        op.temps = vec![l.add_temp(format!("{y_name}/acc"), oc * 4)];
        l.push(op);
        Ok(())
    }
}

//! CONV_2D's direct int8 form (`conv`'s mode 2, what `convert --target cortex-m4` lowers int8
//! convolutions to): no GEMM, no packing workspace, a scratch of a few hundred bytes.
//!
//! Int8 weights (the default): output pixels go four at a time. Each pixel's patch (kh·kw·c_in
//! values in OHWI order, out-of-image taps at the input zero point; a pointwise convolution's
//! input pixel as it is) is encoded by [`fill4`] into a small buffer: per four inputs x0..x3
//! the i16 pairs X1 = (x1 + 129, x3 + 129), X2 = (256·x0 − x1 + 127, 256·x2 − x3 + 127), so
//! that a word of weights stored as (w0 + 128, w1, w2 + 128, w3) gives its four products with
//! two `smlad` (the word itself against X1, its `uxtb16` against X2), 256 times Σ w·x̃ plus a
//! term of the pixel alone (see `asm/thumbv7em/conv_s8_m4dsp_4x2.S`). The kernel starts each
//! sum from the pixel's term and the channel's 256·(bias − what the encoding adds), and
//! writes the outputs with TFLite's output stage (bias, `MultiplyByQuantizedMultiplier`, zero
//! point, clamp) in the Arm fast form. Elsewhere, or when that form is not exact for the
//! call, [`kernel4_portable`] decodes the buffer into the exact i32 sums of `(x − z_x)·w` and
//! the output stage runs in Rust. Bit-exact with TFLite's `ConvPerChannel` either way.
//!
//! I16 weights (`--target cortex-m4-i16`): output pixels go two at a time, their patches
//! written minus the input zero point as i16 pairs into the buffer in the order `sxtb16`
//! unpacks a word of int8 weights; then each block of four output channels gets its sums
//! from [`kernel16`] (2 pixels × 4 channels, no widening, twice the flash) or its outputs
//! from [`fused16`].
//!
//! In place (pointwise geometries, the plan giving the output input 0's offset): a step's
//! input pixels are in the buffer before its outputs are written, and steps run first to
//! last when c_out ≤ c_in (the outputs written end before the next step's inputs begin),
//! last to first otherwise, so no input byte is overwritten before it is read.
//!
//! Blob form: as `conv`'s, with mode word 2, the block word 3 (int8) or 4 (i16; 2 was an
//! earlier int8 layout, refused), the multipliers (i32) and shifts (i8: they were i32 in an
//! earlier layout, refused) one each for every channel or one per channel, and the weights
//! an int8 constant, k rounded up to a multiple of 8 (`k8`), zero weights past c_out and k:
//! - block 3 (int8 weights): `[c_out/2][k8/4][2][4]` bytes: channel pairs (c_out rounded up
//!   to even), for each pair and group of four k values the four weights of its first channel
//!   then of its second, those at even k stored plus 128 (as unsigned bytes);
//! - block 4 (i16 weights): `[c_out/4][k8/4][2][4]` i16 pairs (c_out rounded up to a
//!   multiple of 4): for each quad, group of four k values g and half h, the pair
//!   `(w[4g + h], w[4g + h + 2])` of each of the four channels (the pairs `sxtb16` makes of
//!   the buffer's values).
//!
//! One scratch tensor: 252 bytes of room to end the pixel buffer on a 256-byte boundary (the
//! kernels' loop test), the buffer (`8·k8` bytes for block 3: per group of four k values
//! four pixels' two words; `4·k8` for block 4) then, unless pointwise,
//! the patches (`3·k8` bytes, block 4 `2·k8`).

use super::conv::Geom;
use super::gemm_common;
use super::{cast, cast_mut, checks, Fail, OpMem};
use crate::error::Error;
use crate::nn::blob::{OpView, Storage};
use crate::nn::dtype::DType;
use crate::reference::multiply_by_quantized_multiplier;

/// The mode word of this form in `conv`'s parameters.
pub(crate) const MODE: i32 = 2;

/// Channel pairs whose sums one kernel call leaves on the stack.
const CHUNK: usize = 16;

/// The block word of the int8-weights layout (channel pairs, even k values offset by 128,
/// read four pixels at a time) and of the i16 one (quads). (2 was an earlier int8 layout.)
pub(crate) const BLOCK_I8: i32 = 3;
pub(crate) const BLOCK_I16: i32 = 4;

/// Whether a loaded operator of this form (`base`: its first GEMM-part word) has its weights
/// as i16 pairs (its block word).
pub(crate) fn is_i16(op: &OpView, base: usize) -> bool {
    op.param(base - 1) == BLOCK_I16
}

/// Room beside the pixel buffer to end it on a 256-byte boundary (the scratch is at least
/// 4-byte aligned).
const ALIGN_ROOM: usize = 252;

/// k rounded up to whole pairs of 4-value groups (the kernel's unrolled step).
pub(crate) fn k8(k: usize) -> Option<usize> {
    k.checked_next_multiple_of(8)
}

/// Bytes of the weights of an n×k convolution in the layout (`wide`: i16).
pub(crate) fn weight_bytes(k: usize, n: usize, wide: bool) -> Option<usize> {
    if wide {
        k8(k)?.checked_mul(2 * n.checked_next_multiple_of(4)?)
    } else {
        k8(k)?.checked_mul(n.checked_next_multiple_of(2)?)
    }
}

/// Bytes of the pixel buffer: `4·k8` (i16 layout: two pixels' i16 pairs) or `8·k8` (int8
/// layout: per group of four k values four pixels' two words).
fn buffer_bytes(k8: usize, wide: bool) -> Option<usize> {
    k8.checked_mul(if wide { 4 } else { 8 })
}

/// Patches of a non-pointwise step the scratch has room for (the int8 layout's steps use
/// one, the i16 layout's two).
const fn pixels(wide: bool) -> usize {
    if wide {
        2
    } else {
        3
    }
}

/// Bytes of scratch: the pixel buffer with its alignment room, and the patches unless
/// pointwise.
pub(crate) fn scratch_bytes(k: usize, pointwise: bool, wide: bool) -> Option<usize> {
    let k8 = k8(k)?;
    let patches = if pointwise { 0 } else { pixels(wide) * k8 };
    buffer_bytes(k8, wide)?
        .checked_add(patches)?
        .checked_add(ALIGN_ROOM)
}

/// The pixel buffer in `room`: placed to end on a 256-byte boundary (the kernels' loop
/// test) when `room` allows it (else at its start: the kernel then takes the portable
/// loop).
fn pair_buffer(room: &mut [u8], k8: usize, wide: bool) -> Option<&mut [u32]> {
    let bytes = buffer_bytes(k8, wide)?;
    let end = room.as_ptr() as usize + bytes;
    let mut at = end.wrapping_neg() % 256;
    if at + bytes > room.len() {
        at = 0;
    }
    Some(cast_mut::<u32>(room.get_mut(at..at + bytes)?))
}

/// Validates what [`run`] relies on beyond `conv::check`'s shared part (counts, geometry,
/// in-place only when pointwise): int8 tensors, the weights' size, the scales, zero points
/// and clamp, the scratch, sums that fit i32.
pub(crate) fn check(op: &OpView, g: &Geom, base: usize) -> Result<(), Error> {
    let (x, y, w) = (
        checks::input(op, 0)?,
        checks::output(op, 0)?,
        checks::input(op, 1)?,
    );
    checks::dtype(op, &x, DType::I8)?;
    checks::dtype(op, &y, DType::I8)?;
    checks::dtype(op, &w, DType::I8)?;
    let k = g.kh * g.kw * g.ic;
    let n = g.oc;
    let too_big = || op.error("sizes overflow");
    let wide =
        match op.param(base - 1) {
            BLOCK_I8 => false,
            BLOCK_I16 => true,
            2 => return Err(op.error(
                "the direct form's block word 2 is an earlier int8 layout: convert the model again",
            )),
            _ => return Err(op.error("the block word of the direct form is not 3 or 4")),
        };
    if w.storage != Storage::Constant || w.bytes != weight_bytes(k, n, wide).ok_or_else(too_big)? {
        return Err(op.error("the weights are not the direct layout's size"));
    }
    match op.input(2).map(|t| op.model().tensor(t)) {
        None => {}
        Some(Some(b)) if b.dtype == DType::I32 && b.elems() == n => {}
        Some(_) => return Err(op.error("the bias is not n i32 values")),
    }
    if op.input(4).and_then(|t| op.model().dtype(t)) == Some(DType::I32) {
        return Err(op.error(
            "the direct form's shifts are i32, an earlier layout: convert the model again",
        ));
    }
    gemm_common::check_scales(op, n, 3, DType::I8)?;
    let p = |i: usize| op.param(base + i);
    let i8_range = -128..=127;
    if !i8_range.contains(&p(0)) || p(1) != 0 || !i8_range.contains(&p(2)) {
        return Err(op.error("a zero point is out of range"));
    }
    if p(3).max(-128) > p(4).min(127) {
        return Err(op.error("the output clamp is empty"));
    }
    // |x − z_x| ≤ 255 and |w| ≤ 128: the sums (and bias) stay in i32.
    if k > i32::MAX as usize / (255 * 128) {
        return Err(op.error("the convolution depth is too large for exact int8 sums"));
    }
    let need = scratch_bytes(k, g.pointwise(), wide).ok_or_else(too_big)?;
    if checks::temp(op, 0)?.bytes < need {
        return Err(op.error("its scratch buffer is too small"));
    }
    Ok(())
}

/// The output stage of one operator call: per channel (or per tensor: strides 0) bias,
/// multiplier and shift, the output zero point and clamp.
struct Stage<'a> {
    bias: Option<&'a [i32]>,
    mults: &'a [i32],
    shifts: &'a [i8],
    /// 1 per channel, 0 per tensor (one multiplier and shift for all).
    per_channel: usize,
    zo: i32,
    lo: i32,
    hi: i32,
    /// The Arm fast form of the multiply is exact for every sum of the call (see
    /// `quant::requant::arm`): right shifts, multipliers above −2^31 + 1, |sum| < 2^30.
    #[cfg_attr(not(all(target_arch = "arm", edgemm_arm_dsp)), allow(dead_code))]
    fast: bool,
}

/// The output-stage constants of up to [`TABLE`] channels from `first` (bias, multiplier,
/// shift; in the Arm fast form the right shift e and 2^(e−1)): computed once per operator
/// call when c_out ≤ `TABLE`, else again whenever a chunk is outside it.
struct Table {
    first: usize,
    len: usize,
    k: [[i32; 4]; TABLE],
    /// Where a lone last pixel's twin writes its outputs (see [`Stage::write`]).
    spare: [u8; 2 * CHUNK],
}

/// Channels whose constants are kept at once (1 KiB of stack).
const TABLE: usize = 64;
const _: () = assert!(TABLE % (2 * CHUNK) == 0);

impl Stage<'_> {
    /// The constants of channels `c0..` (a multiple of 4) in the layout of the i16
    /// kernel's own output stage: per quad of channels their biases, then each one's m, e
    /// and 2^(e−1) + z_y·2^e (see the assembly), 16 words a quad in `t.k` read as a flat
    /// array.
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    fn fill_quads(&self, t: &mut Table, c0: usize, n: usize) {
        let pc = self.per_channel;
        t.first = c0;
        t.len = n.saturating_sub(c0).min(TABLE);
        let flat = t.k.as_flattened_mut();
        for (i, c) in (c0..c0 + t.len).enumerate() {
            let (q, j) = (i / 4, i % 4);
            flat[16 * q + j] = self.bias.map_or(0, |b| b[c]);
            let (m, e, half) =
                crate::quant::requant::arm::consts(self.mults[c * pc], self.shifts[c * pc].into());
            let at = 16 * q + 4 + 3 * j;
            flat[at..at + 3].copy_from_slice(&[m, e, half + (self.zo << e)]);
        }
    }

    /// The constants of channels `c0..` into `t`.
    fn fill(&self, t: &mut Table, c0: usize, n: usize) {
        let pc = self.per_channel;
        t.first = c0;
        t.len = n.saturating_sub(c0).min(TABLE);
        for (c, kc) in (c0..c0 + t.len).zip(t.k.iter_mut()) {
            let b = self.bias.map_or(0, |b| b[c]);
            *kc = [b, self.mults[c * pc], self.shifts[c * pc].into(), 0];
            #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
            if self.fast {
                let (_, e, half) = crate::quant::requant::arm::consts(kc[1], kc[2]);
                (kc[2], kc[3]) = (e, half);
            }
        }
    }

    /// Writes the outputs of a chunk of channels (constants `k`) of two pixels (`y1`
    /// empty: one) from their sums (`s0`, `s1`: one per channel).
    #[inline(always)]
    fn write(
        &self,
        k: &[[i32; 4]],
        s0: &[i32],
        s1: &[i32],
        y0: &mut [u8],
        y1: &mut [u8],
        spare: &mut [u8; 2 * CHUNK],
    ) {
        // A lone last pixel writes its twin's outputs to `spare`: one loop per clamp, not
        // two (the code is per output stage form, the spare writes once a layer).
        let y1 = if y1.is_empty() {
            let n = y0.len().min(spare.len());
            &mut spare[..n]
        } else {
            y1
        };
        if self.lo <= -128 && self.hi >= 127 {
            self.write_as::<true>(k, s0, s1, y0, y1)
        } else {
            self.write_as::<false>(k, s0, s1, y0, y1)
        }
    }

    /// [`Stage::write`] for a clamp (`FULL`: the whole i8 range, one `ssat`) of two pixels.
    #[inline(always)]
    fn write_as<const FULL: bool>(
        &self,
        k: &[[i32; 4]],
        s0: &[i32],
        s1: &[i32],
        y0: &mut [u8],
        y1: &mut [u8],
    ) {
        let (zo, lo, hi) = (self.zo, self.lo, self.hi);
        let clamp = |v: i32| {
            if FULL {
                v.clamp(-128, 127) as u8
            } else {
                v.clamp(lo, hi) as u8
            }
        };
        let len = y0.len().min(k.len()).min(s0.len()).min(s1.len());
        let y1 = &mut y1[..len];
        #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
        if self.fast {
            use crate::quant::requant::arm::mbqm_fast;
            let v = |acc: i32, k: &[i32; 4]| {
                clamp(mbqm_fast(acc.wrapping_add(k[0]), k[1], k[2], k[3]) + zo)
            };
            for i in 0..len {
                y0[i] = v(s0[i], &k[i]);
                y1[i] = v(s1[i], &k[i]);
            }
            return;
        }
        let v = |acc: i32, k: &[i32; 4]| {
            clamp(multiply_by_quantized_multiplier(acc.wrapping_add(k[0]), k[1], k[2]) + zo)
        };
        for i in 0..len {
            y0[i] = v(s0[i], &k[i]);
            y1[i] = v(s1[i], &k[i]);
        }
    }
}

/// Runs a checked operator of this form (`base`: its first GEMM-part word) whose weights are
/// i16 pairs (`WIDE`) or int8, as [`is_i16`] says: one instance per layout, so a firmware
/// links only its model's.
/// Whether the int8 layout's fused kernel computes every output of this operator exactly on
/// the Cortex-M4, from its constants alone: an even channel count, right shifts of at most 22
/// bits, multipliers above −2^31 + 1 and 256·(sum + bias) inside i32 (`run`'s `fused` test
/// and [`Direct::quad`]'s, whose other conditions hold for every checked operator: the
/// buffer's 256-byte end, an even group count, the weights' size). An operator for which it
/// holds runs without the portable path on the M4 (`conv::DIRECT_FUSED`); keep it in step
/// with those tests.
pub(crate) fn fused_i8(op: &OpView, g: &Geom) -> bool {
    // Saturating: the operator's form is asked before `check` has seen its geometry.
    let k = g.kh.saturating_mul(g.kw).saturating_mul(g.ic);
    let (k, n) = (i64::try_from(k).unwrap_or(i64::MAX), g.oc);
    let (Some(mults), Some(shifts)) = (constant(op, 3), constant(op, 4)) else {
        return false;
    };
    let (mults, shifts) = (cast::<i32>(mults), cast::<i8>(shifts));
    let bias = match op.input(2) {
        None => &[][..],
        Some(_) => match constant(op, 2) {
            Some(b) => cast::<i32>(b),
            None => return false,
        },
    };
    // Plain loops with early exits: smaller on the firmware than the iterator adapters'
    // form (run once, at load). Each |bias| + k · 255 · 128 below 2^23.
    let limit = (1i64 << 23).saturating_sub(k.saturating_mul(255 * 128));
    if n % 2 != 0 {
        return false;
    }
    for &v in bias {
        if i64::from(v).abs() >= limit {
            return false;
        }
    }
    for &s in shifts {
        if !(-22..=-1).contains(&s) {
            return false;
        }
    }
    for &m in mults {
        if m <= i32::MIN + 1 {
            return false;
        }
    }
    limit > 0
}

/// The bytes of input `i` of `op` when it is a constant (`None` when absent or in the
/// arena). Out of line on the firmware (one copy for the three inputs [`fused_i8`] reads).
#[cfg_attr(target_os = "none", inline(never))]
fn constant<'a>(op: &OpView<'a>, i: usize) -> Option<&'a [u8]> {
    let model = op.model();
    let p = model.place(op.input(i)?)?;
    (p.storage == Storage::Constant).then(|| model.constant_at(p))
}

/// Runs the direct form (`PORTABLE` false: the operator is one [`fused_i8`] accepts, and on
/// the Cortex-M4 the int8 layout's portable path is left out).
pub(crate) fn run<const WIDE: bool, const PORTABLE: bool, const PATCHES: bool>(
    op: &OpView,
    mem: &mut OpMem,
    g: &Geom,
    base: usize,
) -> Result<(), Fail> {
    let bad = || Fail::of(op, "a tensor is smaller than its geometry");
    if WIDE != is_i16(op, base) {
        return Err(Fail::of(
            op,
            "the direct form's weights are not in this run's layout",
        ));
    }
    if !WIDE && !PATCHES && general_patches(g) {
        return Err(Fail::of(
            op,
            "the direct form's patches are not in this run's fills",
        ));
    }
    let t = |i: usize| op.input(i).ok_or_else(|| Fail::of(op, "missing input"));
    let (k, n) = (g.kh * g.kw * g.ic, g.oc);
    let k8 = k8(k).ok_or_else(bad)?;
    let w = cast::<i8>(mem.input(t(1)?)?);
    let bias = op
        .input(2)
        .map(|b| mem.input(b))
        .transpose()?
        .map(cast::<i32>);
    let (mults, shifts) = (
        cast::<i32>(mem.input(t(3)?)?),
        cast::<i8>(mem.input(t(4)?)?),
    );
    let p = |i: usize| op.param(base + i);
    let wide = WIDE;
    // Without `PORTABLE` the operator is one `fused_i8` accepts (the registry runs this
    // instance only after `is_direct_i8_portable` failed, at load by `check_in` or at each
    // run), so the tests below, which it implies, need not scan the constants.
    let most = if PORTABLE {
        bias.map_or(0, |b| {
            b.iter().map(|&v| i64::from(v).abs()).max().unwrap_or(0)
        })
    } else {
        0
    };
    let per_channel = usize::from(mults.len() != 1);
    let (mults, shifts) = (
        mults.get(..1 + (n - 1) * per_channel).ok_or_else(bad)?,
        shifts.get(..1 + (n - 1) * per_channel).ok_or_else(bad)?,
    );
    let bias = match bias {
        Some(b) => Some(b.get(..n).ok_or_else(bad)?),
        None => None,
    };
    let stage = Stage {
        bias,
        mults,
        shifts,
        per_channel,
        zo: p(2),
        lo: p(3).max(-128),
        hi: p(4).min(127),
        fast: !PORTABLE
            || shifts.iter().all(|&s| (-31..=-1).contains(&s))
                && mults.iter().all(|&m| m > i32::MIN + 1)
                && most + k as i64 * 255 * 128 < 1 << 30,
    };
    // The kernels' own output stage: the fast form with the zero point inside the rounding
    // constant (shifts of 22 bits at most); the i16 kernel's for whole quads of channels, the
    // int8 one's when 256·(sum + bias) cannot leave i32.
    let fused = cfg!(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))
        && (!PORTABLE
            || stage.fast
                && stage.shifts.iter().all(|&s| s >= -22)
                && if wide {
                    n % 4 == 0
                } else {
                    most + k as i64 * 255 * 128 < 1 << 23
                });
    let zx = p(0);
    let m = g.batch * g.oh * g.ow;
    let x_t = op.input(0).ok_or_else(bad)?;
    let y_t = op.output(0).ok_or_else(bad)?;
    let s_t = op.temp(0).ok_or_else(bad)?;
    let pointwise = g.pointwise();
    if w.len() < weight_bytes(k, n, wide).ok_or_else(bad)? {
        return Err(bad());
    }
    let conv = Direct {
        w,
        k8,
        n,
        fused,
        stage,
        zx,
    };
    let room = buffer_bytes(k8, wide).ok_or_else(bad)? + ALIGN_ROOM;
    let mut table = Table {
        first: 0,
        len: 0,
        k: [[0; 4]; TABLE],
        spare: [0; 2 * CHUNK],
    };
    if !WIDE {
        return run4::<PORTABLE, PATCHES>(&conv, g, mem, [x_t, y_t, s_t], zx, &mut table)
            .ok_or_else(bad);
    }
    let mut sums = Sums([0; 4 * CHUNK]);
    if mem.is_in_place(x_t, y_t) {
        // Pointwise (checked at load): pixel p's input at p·k, its output at p·n.
        let (io, scratch) = mem.in_place_and_temp(x_t, y_t, s_t)?;
        let room = scratch.get_mut(..room).ok_or_else(bad)?;
        let buf = pair_buffer(room, k8, wide).ok_or_else(bad)?;
        if io.len() < m * k.max(n) {
            return Err(bad());
        }
        let mut step = |p0: usize| {
            let p1 = (p0 + 1).min(m - 1);
            fill(buf, 0, &io[p0 * k..p0 * k + k], zx);
            fill(buf, 1, &io[p1 * k..p1 * k + k], zx);
            conv.pair(
                buf,
                io,
                p0 * n,
                (p1 > p0).then_some(p1 * n),
                &mut table,
                &mut sums,
            );
        };
        if n <= k {
            (0..m).step_by(2).for_each(&mut step);
        } else {
            (0..m).step_by(2).rev().for_each(&mut step);
        }
        return Ok(());
    }
    let x = mem.input(x_t)?;
    let (y, scratch) = mem.output_and_temp(y_t, s_t)?;
    if scratch.len() < room {
        return Err(bad());
    }
    let (room, patches) = scratch.split_at_mut(room);
    let buf = pair_buffer(room, k8, wide).ok_or_else(bad)?;
    let rows = !pointwise && rows_path(g);
    let mut row = Row([0; 64]);
    if buf.len() < k8 || y.len() < m * n || (pointwise && x.len() < m * k) {
        return Err(bad());
    }
    for p0 in (0..m).step_by(2) {
        let p1 = (p0 + 1).min(m - 1);
        if pointwise {
            fill(buf, 0, &x[p0 * k..p0 * k + k], zx);
            fill(buf, 1, &x[p1 * k..p1 * k + k], zx);
        } else if rows {
            fill_rows(buf, 0, g, x, p0, zx, &mut row);
            fill_rows(buf, 1, g, x, p1, zx, &mut row);
        } else {
            let patches = patches.get_mut(..2 * k8).ok_or_else(bad)?;
            let (a, b) = patches.split_at_mut(k8);
            patch(g, x, p0, zx, &mut a[..k]);
            patch(g, x, p1, zx, &mut b[..k]);
            fill(buf, 0, &a[..k], zx);
            fill(buf, 1, &b[..k], zx);
        }
        conv.pair(
            buf,
            y,
            p0 * n,
            (p1 > p0).then_some(p1 * n),
            &mut table,
            &mut sums,
        );
    }
    Ok(())
}

/// The int8 layout's steps: output pixels four at a time (the last step repeating the
/// last pixel), each step's inputs encoded by [`fill4`] into the buffer, then
/// [`Direct::quad`]. In place as `run` describes it for pairs. `None`: a tensor is
/// smaller than its geometry. Without `PATCHES`, pointwise or one-word rows only (not
/// [`general_patches`]: `run` refuses those).
fn run4<const PORTABLE: bool, const PATCHES: bool>(
    conv: &Direct,
    g: &Geom,
    mem: &mut OpMem,
    [x_t, y_t, s_t]: [usize; 3],
    zx: i32,
    table: &mut Table,
) -> Option<()> {
    let (k, n, k8) = (g.kh * g.kw * g.ic, g.oc, conv.k8);
    let m = g.batch * g.oh * g.ow;
    let room = buffer_bytes(k8, false)? + ALIGN_ROOM;
    let px = |p0: usize| {
        [
            p0,
            (p0 + 1).min(m - 1),
            (p0 + 2).min(m - 1),
            (p0 + 3).min(m - 1),
        ]
    };
    // In place (pointwise: checked at load), pixel p's input is at p·k of the output's
    // buffer, read through it (`x` none); one loop for both layouts.
    let (x, y, scratch) = if mem.is_in_place(x_t, y_t) {
        let (io, scratch) = mem.in_place_and_temp(x_t, y_t, s_t).ok()?;
        (None, io, scratch)
    } else {
        let x = mem.input(x_t).ok()?;
        let (y, scratch) = mem.output_and_temp(y_t, s_t).ok()?;
        (Some(x), y, scratch)
    };
    let (room, patches) = scratch.split_at_mut_checked(room)?;
    let buf = pair_buffer(room, k8, false)?;
    let pointwise = g.pointwise();
    let rows = !pointwise && rows_path(g);
    if y.len() < m * n || (pointwise && x.map_or(y.len(), <[u8]>::len) < m * k) {
        return None;
    }
    let patch_k = patches.get_mut(..if pointwise { 0 } else { k })?;
    let mut row = Row([0; 64]);
    // In place with c_out > c_in the steps go last to first (see the module's doc).
    let back = x.is_none() && n > k;
    let steps = m.div_ceil(4);
    for s in 0..steps {
        let p = px(4 * if back { steps - 1 - s } else { s });
        let mut q = [0; 4];
        let x = x.unwrap_or(y);
        for (i, &pi) in p.iter().enumerate() {
            q[i] = if pointwise {
                fill4(buf, i, &x[pi * k..pi * k + k])
            } else if rows || !PATCHES {
                fill4_rows::<PATCHES>(buf, i, g, x, pi, zx, &mut row)
            } else {
                patch(g, x, pi, zx, patch_k);
                fill4(buf, i, patch_k)
            };
        }
        conv.quad::<PORTABLE>(buf, q, y, p.map(|pi| pi * n), table);
    }
    Some(())
}

/// The int8 layout's assembly kernel's argument block (see its header).
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
#[repr(C)]
struct Args4 {
    x: *const u32,
    x_end: *const u32,
    w: *const i8,
    table: *const i32,
    y: *mut u8,
    d1: isize,
    d2: isize,
    d3: isize,
    q: [i32; 4],
    pairs: u32,
}

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
extern "C" {
    /// `asm/thumbv7em/conv_s8_m4dsp_4x2.S` (its header is the contract): the outputs of
    /// the int8 layout, four pixels × two channels at a time.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_",
        env!("CARGO_PKG_VERSION_MINOR"), "_", env!("CARGO_PKG_VERSION_PATCH"),
        "_conv_s8_m4dsp_4x2"
    )]
    fn conv_s8_m4dsp_4x2(args: *mut Args4);
}

impl Direct<'_> {
    /// The n outputs of the four pixels in `buf` (encoded by [`fill4`], their `q`) at
    /// `y[o[p]..]` (a repeated pixel repeats its offset and is written once, or again with
    /// the same bytes). Without `PORTABLE`, on the Cortex-M4, the fused kernel only (the
    /// operator is one [`fused_i8`] accepts).
    fn quad<const PORTABLE: bool>(
        &self,
        buf: &[u32],
        q: [i32; 4],
        y: &mut [u8],
        o: [usize; 4],
        t: &mut Table,
    ) {
        let n = self.n;
        let groups = self.k8 / 4;
        let pairs = n.div_ceil(2);
        if o.iter().any(|&op| op + n > y.len()) || buf.len() < 8 * groups {
            return;
        }
        #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
        if self.fused && n % 2 == 0 {
            let end = buf.as_ptr() as usize + 32 * groups;
            let per = 2 * self.k8;
            if end % 256 == 0 && groups % 2 == 0 && self.w.len() >= per * pairs {
                let mut q0 = 0;
                while q0 < pairs {
                    let q1 = pairs.min(q0 + TABLE / 2);
                    let (c0, c1) = (2 * q0, 2 * q1);
                    if c0 < t.first || c1 > t.first + t.len {
                        self.fill_pairs(t, c0);
                    }
                    let table = &t.k.as_flattened()[4 * (c0 - t.first)..4 * (c1 - t.first)];
                    let y0 = y[o[0] + c0..].as_mut_ptr();
                    let mut args = Args4 {
                        x: buf.as_ptr(),
                        x_end: end as *const u32,
                        w: self.w[q0 * per..].as_ptr(),
                        table: table.as_ptr(),
                        y: y0,
                        d1: o[1] as isize - o[0] as isize,
                        d2: o[2] as isize - o[0] as isize,
                        d3: o[3] as isize - o[0] as isize,
                        q,
                        pairs: (q1 - q0) as u32,
                    };
                    // SAFETY: the assembly's contract: x_end − x = 32·groups (groups even,
                    // ≥ 2: k8 ≥ 8), x_end on a 256-byte boundary, both in `buf`; it reads
                    // 8·groups·(q1 − q0) bytes of `w` from pair q0 (checked above) and
                    // 8·(q1 − q0) table words (the slice's length, 4·(c1 − c0)); it writes
                    // bytes c0..c1 (≤ n: n even) after y[o_p], each o_p + n ≤ y.len()
                    // (checked above); `args` is a live, writable block.
                    unsafe { conv_s8_m4dsp_4x2(&mut args) };
                    q0 = q1;
                }
                let (lo, hi) = (self.stage.lo, self.stage.hi);
                if lo > -128 || hi < 127 {
                    for &op in &o {
                        let y = super::cast_mut::<i8>(&mut y[op..op + n]);
                        super::depthwise_m4::clamp(y, lo, hi);
                    }
                }
                return;
            }
        }
        if !PORTABLE && cfg!(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)) {
            debug_assert!(
                false,
                "a direct convolution fused_i8 accepts took the portable path"
            );
            return;
        }
        let _ = q;
        // Portable: exact sums, then the output stage, a chunk of channel pairs at a time.
        let mut sums = [[0i32; 2 * CHUNK]; 4];
        let mut q0 = 0;
        while q0 < pairs {
            let q1 = pairs.min(q0 + CHUNK);
            let (c0, c1) = (2 * q0, n.min(2 * q1));
            kernel4_portable(buf, self.w, self.k8, self.zx, q0, q1, &mut sums);
            if c0 < t.first || c1 > t.first + t.len {
                self.stage.fill(t, c0, n);
            }
            let k = &t.k[c0 - t.first..c1 - t.first];
            for p in 0..4 {
                if p > 0 && o[p] == o[p - 1] {
                    continue;
                }
                let y = &mut y[o[p] + c0..o[p] + c1];
                self.stage
                    .write(k, &sums[p], &sums[p], y, &mut [], &mut t.spare);
            }
            q0 = q1;
        }
    }

    /// The int8 fused kernel's constants of the channel pairs from `c0` (even) into `t`:
    /// per pair the two sums' start 256·(bias − C) (C: what the encoding adds, see
    /// [`fill4`]), then each channel's m, e and 2^(e−1) + z_y·2^e.
    /// Out of line: it runs once per call, and inlined into the step loop it costs that
    /// loop registers (DS-CNN on the M4: 1.6 K instructions and 3 K est. cycles more).
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    #[inline(never)]
    fn fill_pairs(&self, t: &mut Table, c0: usize) {
        let (n, pc, k8) = (self.n, self.stage.per_channel, self.k8);
        t.first = c0;
        t.len = n.saturating_sub(c0).min(TABLE);
        let flat = t.k.as_flattened_mut();
        let zx = self.zx;
        for (i, c) in (c0..c0 + t.len).enumerate() {
            let bias = self.stage.bias.map_or(0, |b| b[c]);
            let (pp, jj) = (i / 2, i % 2);
            flat[8 * pp + jj] = start3(self.w, k8, c, zx, bias);
            let (pp, jj) = (i / 2, i % 2);
            let (m, e, half) = crate::quant::requant::arm::consts(
                self.stage.mults[c * pc],
                self.stage.shifts[c * pc].into(),
            );
            let at = 8 * pp + 2 + 3 * jj;
            flat[at..at + 3].copy_from_slice(&[m, e, half + (self.stage.zo << e)]);
        }
    }
}

/// The start of channel `c`'s sums in the int8 kernel (with a pixel's q): 256·(bias − C),
/// C = Σ_even w·(1 + z_x) + Σ_odd w·(129 + z_x), what the encoding ([`encode3`]) adds to
/// Σ w·(x − z_x) besides q's part; wrapping (exact when the sums fit, see `run`).
#[cfg_attr(
    not(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)),
    allow(dead_code)
)]
fn start3(w: &[i8], k8: usize, c: usize, zx: i32, bias: i32) -> i32 {
    let (q, j) = (c / 2, c % 2);
    let groups = k8 / 4;
    // The channel's words: one every 8 bytes from byte 8·(groups·q) + 4·j.
    let first = (q * groups).saturating_mul(8).saturating_add(4 * j);
    let words = w.get(first..).map_or(0, |r| (r.len() + 4) / 8).min(groups);
    // Σ over the words of (b0 + b2) (the even bytes as stored, unsigned) and of w1 + w3.
    let (mut even, mut odd) = (0i32, 0i32);
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    if words > 0 {
        // SAFETY: reads `words` words at w[first + 8i] (i < words), all inside `w`
        // (first + 8·(words − 1) + 4 ≤ w.len() by the count above); unaligned `ldr` is
        // allowed on the M4. Registers and flags only otherwise.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {v}, [{p}], #8",
                "uxtb16 {u}, {v}",
                "sxtb16 {v}, {v}, ror #8",
                "smlad {e}, {u}, {one}, {e}",
                "smlad {o}, {v}, {one}, {o}",
                "subs {n}, {n}, #1",
                "bne 2b",
                p = inout(reg) w.as_ptr().add(first) => _,
                n = inout(reg) words => _,
                e = inout(reg) even,
                o = inout(reg) odd,
                one = in(reg) 0x0001_0001u32,
                v = out(reg) _,
                u = out(reg) _,
                options(nostack, readonly),
            );
        }
    }
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    for b in w.get(first..).unwrap_or(&[]).chunks(8).take(words) {
        even += i32::from(b[0] as u8) + i32::from(b[2] as u8);
        odd += i32::from(b[1]) + i32::from(b[3]);
    }
    // The even bytes are stored plus 128.
    let even = even.wrapping_sub(256 * words as i32);
    let corr = (1 + zx)
        .wrapping_mul(even)
        .wrapping_add((129 + zx).wrapping_mul(odd));
    bias.wrapping_sub(corr).wrapping_mul(256)
}

/// The int8 layout's buffer words of four int8 inputs `v` (little-endian bytes x0..x3):
/// X1 = (x1 + 129, x3 + 129) and X2 = (256·x0 − x1 + 127, 256·x2 − x3 + 127) as i16 halves,
/// and 256·(x0 + x2 + 2) (the sum of X1's and X2's halves).
#[inline(always)]
fn encode3(v: u32) -> (u32, u32, i32) {
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    {
        let (a, b, s): (u32, u32, i32);
        // SAFETY: register arithmetic only (sadd16/ssub16 set the GE flags, declared
        // clobbered by not preserving flags).
        unsafe {
            core::arch::asm!(
                "sxtb16 {o}, {v}, ror #8",
                "sadd16 {a}, {o}, {k129}",
                "lsl {b}, {v}, #8",
                "and {b}, {b}, #0xff00ff00",
                "ssub16 {b}, {b}, {o}",
                "sadd16 {b}, {b}, {k127}",
                "smuad {s}, {a}, {one}",
                "smlad {s}, {b}, {one}, {s}",
                v = in(reg) v,
                k129 = in(reg) 0x0081_0081u32,
                k127 = in(reg) 0x007f_007fu32,
                one = in(reg) 0x0001_0001u32,
                o = out(reg) _,
                a = out(reg) a,
                b = out(reg) b,
                s = out(reg) s,
                options(pure, nomem, nostack),
            );
        }
        (a, b, s)
    }
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    {
        let x = |i: u32| (v >> (8 * i)) as u8 as i8 as i32;
        let lane = |e: i32, o: i32| ((o + 129) as u16 as u32, (256 * e - o + 127) as u16 as u32);
        let (a0, b0) = lane(x(0), x(1));
        let (a1, b1) = lane(x(2), x(3));
        (a0 | a1 << 16, b0 | b1 << 16, 256 * (x(0) + x(2) + 2))
    }
}

/// Writes pixel `p` (< 3) of the int8 layout's buffer from its k ≤ 4·groups inputs `src`
/// (bytes past k as −1, which the encoding makes 0 in the even sum), and returns its q:
/// −128·256·Σ_even x̃, the part of the kernel's sum the weights do not decide.
fn fill4(words: &mut [u32], p: usize, src: &[u8]) -> i32 {
    let full = (src.len() / 4).min(words.len() / 8);
    let (head, tail) = words.split_at_mut(8 * full);
    let mut s = encode3_words(head.get_mut(p..).unwrap_or(&mut []), &src[..4 * full]);
    // (Fewer than 4 bytes rest when `tail` has a group: `full` was src's whole words.)
    let rest = src.get(4 * full..).unwrap_or(&[]);
    for (i, w) in tail.chunks_exact_mut(8).enumerate() {
        let b = |j: usize| rest.get(4 * i + j).copied().unwrap_or(0xff);
        let (a, bb, t) = encode3(u32::from_le_bytes([b(0), b(1), b(2), b(3)]));
        (w[p], w[4 + p], s) = (a, bb, s.wrapping_add(t));
    }
    s.wrapping_mul(-128)
}

/// The M4 loops' [`encode3`] of the word in `{v}` into `{a}` and `{v}`, the third value
/// added to `{s}`, the two words stored at `{dst}` and `{dst} + 16`, `{dst}` advanced by 32.
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
macro_rules! encode3_store {
    () => {
        concat!(
            "sxtb16 {a}, {v}, ror #8\n",
            "sadd16 {a}, {a}, {k129}\n",
            "lsl {v}, {v}, #8\n",
            "and {v}, {v}, #0xff00ff00\n",
            "ssub16 {v}, {v}, {a}\n",
            "sadd16 {v}, {v}, {k256}\n",
            "smlad {s}, {a}, {one}, {s}\n",
            "smlad {s}, {v}, {one}, {s}\n",
            "str {v}, [{dst}, #16]\n",
            "str {a}, [{dst}], #32\n",
        )
    };
}

/// `encode3_run`'s next row word: loaded, its taps moved into place and the outside ones
/// set to the zero point.
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
macro_rules! encode3_row_word {
    () => {
        concat!(
            "ldr {v}, [{src}]\n",
            "add {src}, {src}, {stride}\n",
            "lsl {v}, {v}, {shift}\n",
            "and {v}, {v}, {mask}\n",
            "orr {v}, {v}, {fill}\n",
        )
    };
}

/// [`encode3`] of each word of `src` (whole words) into `dst[8i]`, `dst[8i + 4]` (the
/// caller offsets `dst` to the pixel's words); returns the sum of the third values.
fn encode3_words(dst: &mut [u32], src: &[u8]) -> i32 {
    let words = (src.len() / 4).min((dst.len() + 3) / 8);
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    if words > 0 {
        let mut s = 0i32;
        // SAFETY: reads `words` whole (possibly unaligned: ldr allows it on the M4) words
        // of `src` and writes dst[8i], dst[8i + 4] for i < words, all within the slices
        // (words ≤ src.len()/4 and 8·(words − 1) + 5 ≤ dst.len()); dst is word-aligned
        // (a u32 slice). Registers and flags only otherwise. Two words a pass (the loop's
        // test and branch once, the second load right after a store): n = ⌈words/2⌉
        // passes, an odd count entering at the second word (words ≥ 1, so n ≥ 1).
        unsafe {
            core::arch::asm!(
                "adds {n}, {n}, #1",
                "lsrs {n}, {n}, #1",
                "bcc 3f",
                "2:",
                "ldr {v}, [{src}], #4",
                encode3_store!(),
                "3:",
                "ldr {v}, [{src}], #4",
                encode3_store!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) src.as_ptr() => _,
                dst = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) words => _,
                s = inout(reg) s,
                k129 = in(reg) 0x0081_0081u32,
                k256 = in(reg) 0x0100_0100u32,
                one = in(reg) 0x0001_0001u32,
                v = out(reg) _,
                a = out(reg) _,
                options(nostack),
            );
        }
        return s;
    }
    let mut s = 0i32;
    for (v, w) in src.chunks_exact(4).zip(dst.chunks_mut(8)).take(words) {
        let (a, b, t) = encode3(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
        if let [wa, _, _, _, wb, ..] = w {
            (*wa, *wb, s) = (a, b, s.wrapping_add(t));
        }
    }
    s
}

/// [`encode3`] of up to `rows` words of `src`, `stride` bytes apart from its start, each
/// merged as `(v << shift) & mask | fill`, into `dst[8i]`, `dst[8i + 4]`: the one-word rows
/// of [`fill4_rows`]. Stops where `src` or `dst` ends; returns the sum of the third values
/// and how many rows it encoded.
fn encode3_run(
    dst: &mut [u32],
    src: &[u8],
    stride: usize,
    rows: usize,
    shift: u32,
    mask: u32,
    fill: u32,
) -> (i32, usize) {
    // Rows whose word lies in `src` (no division when all do, the usual case).
    let fits = |n: usize| {
        (n.max(1) - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(4))
    };
    let fit_src = match (fits(rows), src.len().checked_sub(4)) {
        (Some(end), _) if end <= src.len() => rows,
        (_, Some(r)) => r / stride.max(1) + 1,
        _ => 0,
    };
    let fit_dst = dst.len().checked_sub(5).map_or(0, |r| r / 8 + 1);
    let n = rows.min(fit_src).min(fit_dst);
    if n == 0 {
        return (0, 0);
    }
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    {
        let mut s = 0i32;
        // SAFETY: reads the word at src + i·stride for i < n (possibly unaligned: ldr
        // allows it on the M4), inside `src` ((n − 1)·stride + 4 ≤ src.len(): fit_src), and
        // writes dst[8i], dst[8i + 4] for i < n, inside `dst` (8·(n − 1) + 5 ≤ dst.len():
        // fit_dst; word-aligned, a u32 slice); n ≥ 1. Registers and flags only otherwise.
        // Two rows a pass, as encode3_words' loop: ⌈n/2⌉ passes, odd n entering at the
        // second row.
        unsafe {
            core::arch::asm!(
                "adds {n}, {n}, #1",
                "lsrs {n}, {n}, #1",
                "bcc 3f",
                "2:",
                encode3_row_word!(),
                encode3_store!(),
                "3:",
                encode3_row_word!(),
                encode3_store!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) src.as_ptr() => _,
                dst = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) n => _,
                s = inout(reg) s,
                stride = in(reg) stride,
                shift = in(reg) shift,
                mask = in(reg) mask,
                fill = in(reg) fill,
                k129 = in(reg) 0x0081_0081u32,
                k256 = in(reg) 0x0100_0100u32,
                one = in(reg) 0x0001_0001u32,
                v = out(reg) _,
                a = out(reg) _,
                options(nostack),
            );
        }
        (s, n)
    }
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    {
        let mut s = 0i32;
        for i in 0..n {
            let at = i * stride;
            let v = u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
            let (a, b, t) = encode3(((v << shift) & mask) | fill);
            (dst[8 * i], dst[8 * i + 4], s) = (a, b, s.wrapping_add(t));
        }
        (s, n)
    }
}

/// The exact sums Σ w·(x − z_x) of channel pairs `q0..q1` (≤ CHUNK of them) of the four
/// pixels in the int8 layout's buffer, decoding both encodings: `sums[p][c − 2·q0]`.
fn kernel4_portable(
    buf: &[u32],
    w: &[i8],
    k8: usize,
    zx: i32,
    q0: usize,
    q1: usize,
    sums: &mut [[i32; 2 * CHUNK]; 4],
) {
    let half = |v: u32, h: usize| i32::from((v >> (16 * h)) as i16);
    for (qi, wq) in w.chunks_exact(2 * k8).skip(q0).take(q1 - q0).enumerate() {
        for (p, sp) in sums.iter_mut().enumerate() {
            let mut acc = [0i32; 2];
            for (xg, wg) in buf.chunks_exact(8).zip(wq.chunks_exact(8)) {
                let (x1, x2) = (xg[p], xg[4 + p]);
                for h in 0..2 {
                    let xo = half(x1, h);
                    let xe = (half(x2, h) + xo) / 256;
                    let (xo, xe) = (xo - 129 - zx, xe - 1 - zx);
                    for (j, a) in acc.iter_mut().enumerate() {
                        let b = &wg[4 * j..4 * j + 4];
                        let we = b[2 * h] as u8 as i32 - 128;
                        let wo = b[2 * h + 1] as i32;
                        *a = a.wrapping_add(we * xe + wo * xo);
                    }
                }
            }
            sp[2 * qi..2 * qi + 2].copy_from_slice(&acc);
        }
    }
}

/// [`fill4`] of output pixel `px`'s patch straight from the image `x`, for the geometries
/// [`rows_path`] serves (as [`fill_rows`]: a row inside the image is its kw·c_in contiguous
/// input bytes, a row above or below it the zero point, a row crossing the left or right
/// edge takes the zero point for its outside taps). Not inlined: one copy serves a step's
/// four pixels (code size on the M4). Rows wider than one word only with `GENERAL`
/// ([`fill4_row_words`]; see [`general_patches`]).
#[inline(never)]
fn fill4_rows<const GENERAL: bool>(
    words: &mut [u32],
    p: usize,
    g: &Geom,
    x: &[u8],
    px: usize,
    zx: i32,
    row: &mut Row,
) -> i32 {
    let seg = g.kw * g.ic;
    let per_row = seg / 4;
    let (plane, ow) = ((g.oh * g.ow).max(1), g.ow.max(1));
    let (b, oy, ox) = (px / plane, px % plane / ow, px % ow);
    // Pointer-sized arithmetic (every index fits: `Geom::check`), not `Geom::in_y`'s i64.
    let y0 = (oy * g.sh) as isize - g.pt as isize;
    let x0 = (ox * g.sw) as isize - g.pl as isize;
    let inside_x = x0 >= 0 && x0 as usize + g.kw <= g.iw;
    let z = zx as i8 as u8;
    let mut s = 0i32;
    // Without GENERAL every row is one word: [`run`] refuses [`general_patches`] geometries
    // to a run without the general patches (so the padding loop below is not linked into
    // that instance; the loop here stays in bounds whatever the geometry).
    if seg == 4 || !GENERAL {
        // One word a row (kw·c_in = 4, e.g. a one-channel input): the row's word straight
        // from the image, its outside taps at the zero point.
        let zw = u32::from_le_bytes([z; 4]);
        // The row's taps inside the image, [lo, hi), as the bytes [b0, b1) of its word: the
        // word loaded from tap lo on, shifted into place and merged with the zero point.
        let lo = (-x0).clamp(0, g.kw as isize) as usize;
        let hi = (g.iw as isize - x0).clamp(lo as isize, g.kw as isize) as usize;
        let (b0, b1) = (lo * g.ic, (hi * g.ic).min(4));
        let mask = if b1 > b0 {
            (u32::MAX >> (32 - 8 * (b1 - b0))) << (8 * b0)
        } else {
            0
        };
        let x_lo = x0 + lo as isize;
        let (fill, dy) = (zw & !mask, g.dh * g.iw * g.ic);
        // Every group in one loop of runs, each one `encode3_run` (one copy of its code): the
        // rows from fy on inside the image, dy bytes apart; or rows outside it (above, below,
        // or all of them when no tap is inside), the zero point; or the groups past k (k8 >
        // k), −1, nothing in the even sum.
        // (Rows past the buffer's end, when it is short, stop the loop as the run stops.)
        let end = g.kh.max(words.len() / 8);
        let zb = zw.to_le_bytes();
        let mut fy = 0;
        while fy < end {
            let y = y0 + (fy * g.dh) as isize;
            let inside = fy < g.kh && y >= 0 && y < g.ih as isize && mask != 0;
            let at = ((b * g.ih + y.max(0) as usize) * g.iw + x_lo.max(0) as usize) * g.ic;
            let mut last = zb;
            let (src, stride, rows, bits) = if inside {
                // (It stops early at the image's or the buffer's end.)
                let rows = ((g.ih - 1 - y as usize) / g.dh + 1).min(g.kh - fy);
                match x.get(at..) {
                    Some(v) if v.len() >= 4 => (v, dy, rows, (8 * b0 as u32, mask, fill)),
                    // Past the image's end: the row's bytes there, the zero point after.
                    v => {
                        let v = v.unwrap_or(&[]);
                        last[..v.len()].copy_from_slice(v);
                        (&last[..], 0, 1, (8 * b0 as u32, mask, fill))
                    }
                }
            } else if fy < g.kh {
                // Above the image: the rows up to its first; else up to the last row.
                let rows = if y < 0 && mask != 0 {
                    (y.unsigned_abs().div_ceil(g.dh)).min(g.kh - fy)
                } else {
                    g.kh - fy
                };
                (&zb[..], 0, rows, (0, !0, 0))
            } else {
                (&zb[..], 0, end - fy, (0, 0, u32::MAX))
            };
            let dst = words.get_mut(8 * fy + p..).unwrap_or(&mut []);
            let (t, n) = encode3_run(dst, src, stride, rows, bits.0, bits.1, bits.2);
            if n == 0 {
                break;
            }
            if fy < g.kh {
                s = s.wrapping_add(t);
            }
            fy += n;
        }
        return s.wrapping_mul(-128);
    } else if GENERAL {
        fill4_row_words(words, p, g, x, (b, y0, x0), inside_x, z, &mut row.0, &mut s);
    }
    // Groups past k (k8 > k): −1, nothing in the even sum.
    let (pa, pb, _) = encode3(u32::MAX);
    for w in words.chunks_exact_mut(8).skip(g.kh * per_row) {
        (w[p], w[4 + p]) = (pa, pb);
    }
    s.wrapping_mul(-128)
}

/// [`fill4_rows`]'s rows of any width (whole words each): `s` gains their sum terms.
#[allow(clippy::too_many_arguments)]
fn fill4_row_words(
    words: &mut [u32],
    p: usize,
    g: &Geom,
    x: &[u8],
    (b, y0, x0): (usize, isize, isize),
    inside_x: bool,
    z: u8,
    row: &mut [u8; 64],
    s: &mut i32,
) {
    let seg = g.kw * g.ic;
    let per_row = seg / 4;
    let (za, zb, zt) = encode3(u32::from_le_bytes([z; 4]));
    let seg = seg.min(row.len());
    for fy in 0..g.kh {
        let first = fy * per_row;
        let Some(dst) = words.get_mut(8 * first..8 * (first + per_row)) else {
            break;
        };
        let y = y0 + (fy * g.dh) as isize;
        let base = (b * g.ih + y.max(0) as usize) * g.iw;
        let src = if y < 0 || y >= g.ih as isize {
            None
        } else if inside_x {
            let at = (base + x0 as usize) * g.ic;
            x.get(at..at + seg)
        } else {
            // Crossing an edge: the row's taps inside the image (one copy), the others at the
            // zero point.
            let lo = (-x0).clamp(0, g.kw as isize) as usize;
            let hi = (g.iw as isize - x0).clamp(lo as isize, g.kw as isize) as usize;
            row[..lo * g.ic].fill(z);
            row[hi * g.ic..seg].fill(z);
            let at = (base as isize + x0 + lo as isize) as usize * g.ic;
            match x.get(at..at + (hi - lo) * g.ic) {
                Some(v) => row[lo * g.ic..hi * g.ic].copy_from_slice(v),
                None => row[lo * g.ic..hi * g.ic].fill(z),
            }
            Some(&row[..seg])
        };
        match src {
            Some(src) => {
                let t = encode3_words(dst.get_mut(p..).unwrap_or(&mut []), src);
                *s = s.wrapping_add(t);
            }
            None => {
                for w in dst.chunks_exact_mut(8) {
                    (w[p], w[4 + p], *s) = (za, zb, s.wrapping_add(zt));
                }
            }
        }
    }
}

/// One call's weights and output stage.
struct Direct<'a> {
    w: &'a [i8],
    k8: usize,
    n: usize,
    /// The i16 kernel writes the outputs itself (see `run`).
    #[cfg_attr(
        not(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp)),
        allow(dead_code)
    )]
    fused: bool,
    stage: Stage<'a>,
    /// The input zero point.
    zx: i32,
}

impl Direct<'_> {
    /// The n outputs of the two pixels in `buf` at `y[o0..]` and `y[o1..]` (no second
    /// pixel: `o1` is `None`, its sums are thrown away), the i16 layout (channel quads).
    fn pair(
        &self,
        buf: &[u32],
        y: &mut [u8],
        o0: usize,
        o1: Option<usize>,
        t: &mut Table,
        sums: &mut Sums,
    ) {
        let n = self.n;
        let groups = self.k8 / 4;
        let pairs = n.div_ceil(2);
        // The two pixels' outputs, disjoint (o0 + n ≤ o1 when there are two).
        let (y0, y1) = match o1 {
            Some(o1) => {
                let (a, b) = y.split_at_mut(o1);
                (&mut a[o0..o0 + n], &mut b[..n])
            }
            None => (&mut y[o0..o0 + n], &mut [][..]),
        };
        // Bytes of a channel pair's weights (the i16 layout: whole quads, pairs rounded up).
        let per = 4 * self.k8;
        let mut q0 = 0;
        while q0 < pairs {
            let q1 = pairs.min(q0 + CHUNK);
            let e = q1.next_multiple_of(2);
            let w = &self.w[q0 * per..e * per];
            #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
            if self.fused {
                let (c0, c1) = (2 * q0, 2 * q1);
                if c0 < t.first || c1 > t.first + t.len {
                    self.stage.fill_quads(t, c0, n);
                }
                let table = &t.k.as_flattened()[4 * (c0 - t.first)..4 * (c1 - t.first)];
                let two = !y1.is_empty();
                let y1s = if two { Some(&mut y1[c0..c1]) } else { None };
                if fused16(buf, w, table, &mut y0[c0..c1], y1s, groups) {
                    // A clamp narrower than the i8 range (the assembly's ssat) after.
                    let (lo, hi) = (self.stage.lo, self.stage.hi);
                    if lo > -128 || hi < 127 {
                        let y1s = if two { &mut y1[c0..c1] } else { &mut [][..] };
                        for v in y0[c0..c1].iter_mut().chain(y1s) {
                            *v = (*v as i8 as i32).clamp(lo, hi) as u8;
                        }
                    }
                    q0 = q1;
                    continue;
                }
            }
            kernel16(buf, w, sums, (e - q0) / 2, groups);
            let (c0, c1) = (2 * q0, n.min(2 * q1));
            let y1 = if y1.is_empty() {
                &mut [][..]
            } else {
                &mut y1[c0..c1]
            };
            let (s0, s1) = sums.0.split_at(2 * CHUNK);
            if c0 < t.first || c1 > t.first + t.len {
                self.stage.fill(t, c0, n);
            }
            let k = &t.k[c0 - t.first..c1 - t.first];
            self.stage
                .write(k, s0, s1, &mut y0[c0..c1], y1, &mut t.spare);
            q0 = q1;
        }
    }
}

/// `v`'s four int8 values minus `zx` as the two words of i16 pairs the kernel reads:
/// (v0, v2) and (v1, v3), low half first (what `sxtb16` makes of `v` and of `v` rotated by
/// 8). `zz` is `zx` in both halves.
#[inline(always)]
fn widen(v: u32, zx: i32, zz: u32) -> (u32, u32) {
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    {
        let _ = zx;
        let (a, b): (u32, u32);
        // SAFETY: register arithmetic only (ssub16 sets the GE flags, declared clobbered by
        // not preserving flags).
        unsafe {
            core::arch::asm!(
                "sxtb16 {a}, {v}",
                "sxtb16 {b}, {v}, ror #8",
                "ssub16 {a}, {a}, {z}",
                "ssub16 {b}, {b}, {z}",
                v = in(reg) v,
                z = in(reg) zz,
                a = out(reg) a,
                b = out(reg) b,
                options(pure, nomem, nostack),
            );
        }
        (a, b)
    }
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    {
        let _ = zz;
        let h = |i: u32| (((v >> (8 * i)) as u8 as i8 as i32 - zx) as u16) as u32;
        (h(0) | h(2) << 16, h(1) | h(3) << 16)
    }
}

/// `zx` in both i16 halves of a word.
fn zx2(zx: i32) -> u32 {
    let h = zx as u16 as u32;
    h | h << 16
}

/// Writes pixel `p`'s values (`src`, k ≤ 4·groups int8) minus `zx` into its words of the
/// pair buffer (`words[4g + p]`, `words[4g + 2 + p]` for group g); zeros past k.
fn fill(words: &mut [u32], p: usize, src: &[u8], zx: i32) {
    let zz = zx2(zx);
    let mut groups = words.chunks_exact_mut(4);
    // `src` first: zip stops at its end without taking a group.
    for (v, w) in src.chunks_exact(4).zip(groups.by_ref()) {
        let v = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        (w[p], w[2 + p]) = widen(v, zx, zz);
    }
    // The last partial group, its missing values at the zero point (so they are 0), then
    // zeros.
    let rest = src.chunks_exact(4).remainder();
    for (i, w) in groups.enumerate() {
        let b = |j: usize| match i {
            0 => rest.get(j).copied().unwrap_or(zx as i8 as u8),
            _ => zx as i8 as u8,
        };
        (w[p], w[2 + p]) = widen(u32::from_le_bytes([b(0), b(1), b(2), b(3)]), zx, zz);
    }
}

/// [`fill`] of output pixel `px`'s patch straight from the image `x`, for geometries whose
/// filter rows are whole groups (dilation 1 across, kw·c_in a multiple of 4): a row inside
/// the image is its kw·c_in contiguous input bytes, a row above or below it zeros; a row
/// crossing the left or right edge takes the zero point for its outside taps. This is a
/// first layer's path (one input channel: a 10×4 filter is ten words).
fn fill_rows(words: &mut [u32], p: usize, g: &Geom, x: &[u8], px: usize, zx: i32, row: &mut Row) {
    let zz = zx2(zx);
    let seg = g.kw * g.ic;
    let per_row = seg / 4;
    let (plane, ow) = ((g.oh * g.ow).max(1), g.ow.max(1));
    let (b, oy, ox) = (px / plane, px % plane / ow, px % ow);
    // Pointer-sized arithmetic (every index fits: `Geom::check`), not `Geom::in_y`'s i64.
    let y0 = (oy * g.sh) as isize - g.pt as isize;
    let x0 = (ox * g.sw) as isize - g.pl as isize;
    let inside_x = x0 >= 0 && x0 as usize + g.kw <= g.iw;
    let row = &mut row.0;
    let seg = seg.min(row.len());
    for fy in 0..g.kh {
        let first = fy * per_row;
        let Some(dst) = words.get_mut(4 * first..4 * (first + per_row)) else {
            return;
        };
        let y = y0 + (fy * g.dh) as isize;
        let src = if y < 0 || y >= g.ih as isize {
            None
        } else if inside_x {
            let at = ((b * g.ih + y as usize) * g.iw + x0 as usize) * g.ic;
            x.get(at..at + seg)
        } else {
            // Crossing an edge: the row's taps, outside ones at the zero point.
            let base = (b * g.ih + y as usize) * g.iw;
            // Byte by byte: a first layer's taps are a byte or a few (no memcpy calls).
            let first = (base as isize + x0) * g.ic as isize;
            for (i, r) in row[..seg].iter_mut().enumerate() {
                let xi = x0 + (i / g.ic) as isize;
                let inside = xi >= 0 && (xi as usize) < g.iw;
                let v = x.get((first + i as isize) as usize).filter(|_| inside);
                *r = v.copied().unwrap_or(zx as i8 as u8);
            }
            row.get(..seg)
        };
        match src {
            Some(s) => {
                for (w, v) in dst.chunks_exact_mut(4).zip(s.chunks_exact(4)) {
                    let v = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                    (w[p], w[2 + p]) = widen(v, zx, zz);
                }
            }
            None => {
                for w in dst.chunks_exact_mut(4) {
                    (w[p], w[2 + p]) = (0, 0);
                }
            }
        }
    }
    // Groups past k (k8 > k): zeros.
    for w in words.chunks_exact_mut(4).skip(g.kh * per_row) {
        (w[p], w[2 + p]) = (0, 0);
    }
}

/// Output pixel `px`'s patch (kh·kw·c_in values in OHWI order, out-of-image taps at the
/// zero point) into `out`: the general path (any dilation and channel count).
fn patch(g: &Geom, x: &[u8], px: usize, zx: i32, out: &mut [u8]) {
    let (plane, ow) = ((g.oh * g.ow).max(1), g.ow.max(1));
    let (b, oy, ox) = (px / plane, px % plane / ow, px % ow);
    let y0 = (oy * g.sh) as isize - g.pt as isize;
    let x0 = (ox * g.sw) as isize - g.pl as isize;
    for (t, dst) in out.chunks_exact_mut(g.ic.max(1)).enumerate() {
        let y = y0 + (t / g.kw * g.dh) as isize;
        let xi = x0 + (t % g.kw * g.dw) as isize;
        let inside = y >= 0 && y < g.ih as isize && xi >= 0 && xi < g.iw as isize;
        let at = ((b * g.ih + y.max(0) as usize) * g.iw + xi.max(0) as usize) * g.ic;
        match x.get(at..at + g.ic) {
            Some(v) if inside => dst.copy_from_slice(v),
            _ => dst.fill(zx as i8 as u8),
        }
    }
}

/// A filter row crossing an edge, assembled (kw·c_in ≤ 64 bytes: [`rows_path`]).
struct Row([u8; 64]);

/// Whether the int8 layout's patches of `g` take the general fills ([`patch`],
/// [`fill4_row_words`]): neither pointwise nor one word a filter row (kw·c_in = 4, no
/// dilation: [`fill4_rows`]' own loop, the first layer of a one-channel input). Overflow-free
/// (asked of unchecked geometry words too).
pub(crate) fn general_patches(g: &Geom) -> bool {
    !(g.pointwise() || (g.dw == 1 && g.kw.checked_mul(g.ic) == Some(4)))
}

/// Whether [`fill_rows`] serves this geometry.
fn rows_path(g: &Geom) -> bool {
    g.dw == 1 && (g.kw * g.ic) % 4 == 0 && g.kw * g.ic <= 64
}

/// The kernel's sums: pixel 0's of the chunk's channels, then from word `2·CHUNK`
/// pixel 1's (8-byte aligned for `strd`).
#[repr(C, align(8))]
struct Sums([i32; 4 * CHUNK]);

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
extern "C" {
    /// `asm/thumbv7em/conv_s16_m4dsp_2x4.S` (its header is the contract): the sums (`y`
    /// null, [`kernel16`]) or the outputs ([`fused16`], `sums_or_table` only read).
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_",
        env!("CARGO_PKG_VERSION_MINOR"), "_", env!("CARGO_PKG_VERSION_PATCH"),
        "_conv_s16_m4dsp_2x4"
    )]
    fn conv_s16_m4dsp_2x4(
        x: *const u32,
        w: *const i8,
        sums_or_table: *mut i32,
        bytes: u32,
        quads: u32,
        y: *mut u8,
        y1: isize,
    );
}

/// The sums of `quads ≤ CHUNK/2` channel quads of the i16 layout over `groups` groups (see
/// the assembly's contract): `sums[4q + j]` for channel j of quad q of pixel 0,
/// `sums[2·CHUNK + 4q + j]` of pixel 1. `buf` holds `4·groups` words, `w` `32·groups`
/// bytes per quad; `groups` is even.
fn kernel16(buf: &[u32], w: &[i8], sums: &mut Sums, quads: usize, groups: usize) {
    let quads = quads.min(CHUNK / 2);
    if groups == 0 || quads == 0 || buf.len() < 4 * groups || w.len() < 32 * groups * quads {
        sums.0.fill(0);
        return;
    }
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
    {
        const _: () = assert!(CHUNK == 16); // pixel 1's sums 128 bytes on (the assembly)
        let bytes = 16 * groups;
        let end = buf.as_ptr() as usize + bytes;
        if groups % 2 == 0
            && end % 256 == 0
            && (buf.as_ptr() as usize | w.as_ptr() as usize) % 4 == 0
        {
            // SAFETY: the assembly's contract: bytes = 16·groups a multiple of 32, x + bytes
            // on a 256-byte boundary, 1 ≤ quads ≤ 8; reads `bytes` of `buf` and
            // 2·bytes·quads of `w` (both checked above, word-aligned), writes words
            // 0..4·quads and 32..32 + 4·quads of `sums` (64 words).
            unsafe {
                conv_s16_m4dsp_2x4(
                    buf.as_ptr(),
                    w.as_ptr(),
                    sums.0.as_mut_ptr(),
                    bytes as u32,
                    quads as u32,
                    core::ptr::null_mut(),
                    0,
                )
            };
            return;
        }
    }
    kernel16_portable(buf, w, sums, quads, groups);
}

/// [`kernel16`] with the assembly's own output stage (`table`: 16 words a quad, see
/// [`Stage::fill_quads`]): writes the outputs of `y0.len()` channels (whole quads) of pixel
/// 0 into `y0` and of pixel 1 into `y1` (`None`: no second pixel, its outputs are pixel
/// 0's again), clamped to the i8 range. Returns false, writing nothing, when the assembly
/// cannot take the call (the caller then goes through the sums).
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_dsp))]
fn fused16(
    buf: &[u32],
    w: &[i8],
    table: &[i32],
    y0: &mut [u8],
    mut y1: Option<&mut [u8]>,
    groups: usize,
) -> bool {
    let c = y0.len();
    let quads = c / 4;
    let bytes = 16 * groups;
    let end = buf.as_ptr() as usize + bytes;
    if c % 4 != 0
        || !(1..=CHUNK / 2).contains(&quads)
        || groups % 2 != 0
        || buf.len() < 4 * groups
        || w.len() < 32 * groups * quads
        || table.len() < 16 * quads
        || y1.as_ref().is_some_and(|y1| y1.len() < c)
        || end % 256 != 0
        || (buf.as_ptr() as usize | w.as_ptr() as usize | table.as_ptr() as usize) % 4 != 0
    {
        return false;
    }
    let p0 = y0.as_mut_ptr();
    let d = y1
        .as_mut()
        .map_or(0, |y1| y1.as_mut_ptr() as isize - p0 as isize);
    // SAFETY: the assembly's contract: bytes = 16·groups a multiple of 32, x + bytes on a
    // 256-byte boundary, 1 ≤ quads ≤ 8 (checked above); it reads `bytes` of `buf`,
    // 2·bytes·quads of `w` and 16·quads words of `table` (all checked, word-aligned; the
    // table only read) and writes 4·quads = c bytes at `p0` (y0) and at `p0 + d` (y1, or y0
    // again): both slices hold c bytes, and nothing else refers to them meanwhile.
    unsafe {
        conv_s16_m4dsp_2x4(
            buf.as_ptr(),
            w.as_ptr(),
            table.as_ptr().cast_mut(),
            bytes as u32,
            quads as u32,
            p0,
            d,
        )
    };
    true
}

/// [`kernel16`] in plain Rust (other targets, and the reference the assembly is tested
/// against).
fn kernel16_portable(buf: &[u32], w: &[i8], sums: &mut Sums, quads: usize, groups: usize) {
    let half = |v: u32, i: usize| i32::from((v >> (16 * i)) as i16);
    for (q, wq) in w.chunks_exact(32 * groups).take(quads).enumerate() {
        let mut acc = [[0i32; 4]; 2];
        // Step s: x words 2s (pixel 0) and 2s + 1 (pixel 1), the four channels' pairs.
        for (xs, ws) in buf.chunks_exact(2).zip(wq.chunks_exact(16)) {
            for j in 0..4 {
                let b = &ws[4 * j..4 * j + 4];
                let wv = u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
                for p in 0..2 {
                    let d = half(xs[p], 0) * half(wv, 0) + half(xs[p], 1) * half(wv, 1);
                    acc[p][j] = acc[p][j].wrapping_add(d);
                }
            }
        }
        sums.0[4 * q..4 * q + 4].copy_from_slice(&acc[0]);
        sums.0[2 * CHUNK + 4 * q..2 * CHUNK + 4 * q + 4].copy_from_slice(&acc[1]);
    }
}

/// The weights `w` (n rows of k int8, OHWI) in this form's layout (`wide`: i16).
#[cfg(feature = "alloc")]
pub(crate) fn pack(w: &[i8], k: usize, n: usize, wide: bool) -> Option<alloc::vec::Vec<u8>> {
    let k8 = k8(k)?;
    let mut out = alloc::vec![0u8; weight_bytes(k, n, wide)?];
    if !wide {
        // The int8 layout's zero weight at even k is 128 (even bytes: w + 128).
        out.iter_mut().step_by(2).for_each(|b| *b = 0x80);
    }
    for c in 0..n {
        for i in 0..k {
            let (g, t) = (i / 4, i % 4);
            let v = *w.get(c * k + i)?;
            if wide {
                // Quad q, group g, half t % 2, channel j, then the pair's half t / 2.
                let (q, j) = (c / 4, c % 4);
                let at = 2 * (q * 4 * k8 + g * 16 + (t % 2) * 8 + j * 2 + t / 2);
                out[at..at + 2].copy_from_slice(&i16::from(v).to_le_bytes());
            } else {
                let (q, j) = (c / 2, c % 2);
                out[q * 2 * k8 + g * 8 + j * 4 + t] = v as u8 ^ if t % 2 == 0 { 0x80 } else { 0 };
            }
        }
    }
    Some(out)
}

#[cfg(feature = "alloc")]
pub(crate) use lower::lower;

#[cfg(feature = "alloc")]
mod lower {
    use alloc::format;
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::conv::Geom;
    use super::super::gemm_common::requant;
    use super::{pack, scratch_bytes, BLOCK_I16, BLOCK_I8, MODE};
    use crate::error::Error;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::Activation;
    use crate::nn::transform::lower::{Lowering, Packing};

    /// CONV_2D node `node` (int8, geometry `g` as its parameter `words`) in the direct form.
    pub(crate) fn lower(
        l: &mut Lowering,
        node: usize,
        g: &Geom,
        act: Activation,
        words: &[i32],
    ) -> Result<(), Error> {
        let gr = l.graph;
        let err = |r| gr.node_error(node, r);
        let (k, n) = (g.kh * g.kw * g.ic, g.oc);
        let w = gr.input(node, 1)?;
        let y_name = gr.tensors[gr.output_index(node, 0)?].name.clone();
        let data = w
            .data
            .as_ref()
            .ok_or_else(|| err("non-constant weights are not supported"))?;
        if w.dtype != DType::I8 || data.len() != n * k {
            return Err(err("the weights are not n·k int8 values"));
        }
        let bias = gr.nodes[node].inputs.get(2).copied().flatten();
        if let Some(b) = bias {
            let b = &gr.tensors[b];
            if b.dtype != DType::I32 || b.elems() != n {
                return Err(err("the bias is not n int32 values"));
            }
        }
        let rq = requant(l, node, n, act)?;
        let w8: Vec<i8> = data.iter().map(|&v| v as i8).collect();
        let wide = l.packing == Packing::CortexM4I16;
        let bytes = pack(&w8, k, n, wide).ok_or_else(|| err("sizes overflow"))?;
        let w_name = format!("{}/direct", w.name);
        let w_t = l.add_const(w_name, DType::I8, vec![bytes.len()], bytes);
        let mut params = words.to_vec();
        let block = if wide { BLOCK_I16 } else { BLOCK_I8 };
        params.extend_from_slice(&[MODE, block, rq.za, 0, rq.zo, rq.lo, rq.hi]);
        let mut op = l.op(node, 3, params);
        op.inputs.truncate(1);
        // One multiplier and shift when every channel has the same (per-tensor weights, or
        // equal scales); the shifts as bytes (−31..=30).
        let (mut mults, mut shifts) = (rq.mults, rq.shifts);
        if mults.windows(2).all(|p| p[0] == p[1]) && shifts.windows(2).all(|p| p[0] == p[1]) {
            mults.truncate(1);
            shifts.truncate(1);
        }
        let shift_bytes = shifts
            .iter()
            .map(|&s| i8::try_from(s).map(|s| s as u8))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| err("a requantization shift is out of the i8 range"))?;
        let mults = l.add_i32(format!("{y_name}/multipliers"), &mults);
        let shifts = l.add_const(
            format!("{y_name}/shifts"),
            DType::I8,
            vec![shift_bytes.len()],
            shift_bytes,
        );
        op.inputs
            .extend_from_slice(&[Some(w_t), bias, Some(mults), Some(shifts)]);
        op.in_place = g.pointwise();
        let scratch = scratch_bytes(k, g.pointwise(), wide).ok_or_else(|| err("sizes overflow"))?;
        op.temps = vec![l.add_temp(format!("{y_name}/direct"), scratch)];
        l.push(op);
        Ok(())
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// The general patch and the first-layer path (`fill_rows`) give the patch of the
    /// definition: filters crossing every edge, strides, one and several input channels.
    #[test]
    fn patches_equal_the_definition() {
        // (ih, iw, ic, kh, kw, sh, sw, pt, pl)
        let geoms: [[usize; 9]; 6] = [
            [49, 10, 1, 10, 4, 2, 2, 4, 1], // DS-CNN's first layer (SAME: pad 4 top, 1 left)
            [7, 5, 2, 3, 2, 1, 1, 1, 1],    // one word a row, crossing both edges
            [4, 9, 1, 2, 4, 1, 3, 1, 2],
            [7, 6, 4, 3, 3, 1, 1, 1, 1],
            [5, 9, 2, 2, 6, 1, 3, 0, 2],
            [6, 5, 8, 1, 1, 2, 1, 0, 0],
        ];
        for [ih, iw, ic, kh, kw, sh, sw, pt, pl] in geoms {
            let oh = (ih + 2 * pt).saturating_sub(kh) / sh + 1;
            let ow = (iw + 2 * pl).saturating_sub(kw) / sw + 1;
            let g = Geom {
                batch: 2,
                ih,
                iw,
                ic,
                oh,
                ow,
                oc: 3,
                kh,
                kw,
                sh,
                sw,
                dh: 1,
                dw: 1,
                pt,
                pl,
            };
            assert!(rows_path(&g));
            let x: Vec<u8> = (0..2 * ih * iw * ic).map(|i| (i * 37 + 11) as u8).collect();
            let k = kh * kw * ic;
            let k8 = k8(k).unwrap();
            for zx in [-128, 5] {
                for px in 0..2 * oh * ow {
                    // The patch from its definition.
                    let (bi, oy, ox) = (px / (oh * ow), px % (oh * ow) / ow, px % ow);
                    let mut want_patch = alloc::vec![zx as i8 as u8; k];
                    for (t, d) in want_patch.chunks_exact_mut(ic).enumerate() {
                        let y = (oy * sh + t / kw) as isize - pt as isize;
                        let xi = (ox * sw + t % kw) as isize - pl as isize;
                        if y >= 0 && y < ih as isize && xi >= 0 && xi < iw as isize {
                            let at = ((bi * ih + y as usize) * iw + xi as usize) * ic;
                            d.copy_from_slice(&x[at..at + ic]);
                        }
                    }
                    let mut got_patch = alloc::vec![0u8; k];
                    patch(&g, &x, px, zx, &mut got_patch);
                    assert_eq!(got_patch, want_patch, "{g:?} px {px}");
                    let (mut want3, mut got3) =
                        (alloc::vec![9u32; 2 * k8], alloc::vec![9u32; 2 * k8]);
                    let q = fill4(&mut want3, 2, &want_patch);
                    let got = fill4_rows::<true>(&mut got3, 2, &g, &x, px, zx, &mut Row([0; 64]));
                    assert_eq!(got, q, "{g:?} px {px}");
                    assert_eq!(got3, want3, "{g:?} px {px}");
                    if !general_patches(&g) {
                        // The fill a firmware without the general patches links.
                        got3.fill(9);
                        let got =
                            fill4_rows::<false>(&mut got3, 2, &g, &x, px, zx, &mut Row([0; 64]));
                        assert_eq!(got, q, "{g:?} px {px}");
                        assert_eq!(got3, want3, "{g:?} px {px}");
                    }
                    let (mut want, mut got) = (alloc::vec![9u32; k8], alloc::vec![9u32; k8]);
                    fill(&mut want, 1, &want_patch, zx);
                    fill_rows(&mut got, 1, &g, &x, px, zx, &mut Row([0; 64]));
                    assert_eq!(got, want, "{g:?} px {px}");
                }
            }
        }
    }

    /// The layout, the buffer and the kernel (the assembly on the M4, the portable loop
    /// elsewhere) give the plain sums of (x − z_x)·w, with padding in k and n, extreme values
    /// and both zero-point signs.
    #[test]
    fn sums_equal_the_plain_products() {
        let mut s = 0x2545_f491u32;
        let mut r = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for [k, n] in [
            [1, 1],
            [3, 2],
            [8, 3],
            [27, 16],
            [40, 64],
            [64, 64],
            [70, 33],
        ] {
            for zx in [-128, -3, 0, 127] {
                let w: Vec<i8> = (0..k * n)
                    .map(|i| if i % 7 == 0 { -128 } else { r() as i8 })
                    .collect();
                let a: Vec<u8> = (0..k)
                    .map(|i| if i % 5 == 0 { 127 } else { r() as u8 })
                    .collect();
                let b: Vec<u8> = (0..k)
                    .map(|i| if i % 3 == 0 { 128 } else { r() as u8 })
                    .collect();
                let k8 = k8(k).unwrap();
                let c3: Vec<u8> = (0..k).map(|_| r() as u8).collect();
                let d4: Vec<u8> = (0..k)
                    .map(|i| if i % 2 == 0 { 0x80 } else { 0x7f })
                    .collect();
                // The int8 layout: the portable kernel, and a model of the assembly's
                // arithmetic (wrapping smlad sums from q and the table's start).
                let packed = pack(&w, k, n, false).unwrap();
                let packed: Vec<i8> = packed.iter().map(|&v| v as i8).collect();
                let mut room = alloc::vec![0u8; 8 * k8 + ALIGN_ROOM + 3];
                let off = room.as_ptr().align_offset(4);
                let buf = pair_buffer(&mut room[off..off + 8 * k8 + ALIGN_ROOM], k8, false);
                let buf = buf.unwrap();
                assert_eq!((buf.as_ptr() as usize + 8 * k8) % 256, 0);
                let xs = [&a, &b, &c3, &d4];
                let q = [0, 1, 2, 3].map(|p| fill4(buf, p, xs[p]));
                let pairs = n.div_ceil(2);
                let half = |v: u32, h: usize| i32::from((v >> (16 * h)) as i16);
                let smlad = |acc: i32, u: u32, v: u32| {
                    acc.wrapping_add(half(u, 0) * half(v, 0))
                        .wrapping_add(half(u, 1) * half(v, 1))
                };
                for q0 in (0..pairs).step_by(CHUNK) {
                    let q1 = pairs.min(q0 + CHUNK);
                    let mut sums = [[7; 2 * CHUNK]; 4];
                    kernel4_portable(buf, &packed, k8, zx, q0, q1, &mut sums);
                    for c in 2 * q0..n.min(2 * q1) {
                        for (p, x) in xs.into_iter().enumerate() {
                            let want: i32 = (0..k)
                                .map(|i| (x[i] as i8 as i32 - zx) * w[c * k + i] as i32)
                                .sum();
                            assert_eq!(sums[p][c - 2 * q0], want, "k {k} n {n} c {c}");
                            let bias = 1000 - c as i32 * 77;
                            let mut acc = q[p].wrapping_add(start3(&packed, k8, c, zx, bias));
                            let wc = &packed[(c / 2) * 2 * k8..];
                            for g in 0..k8 / 4 {
                                let wb = &wc[8 * g + 4 * (c % 2)..8 * g + 4 * (c % 2) + 4];
                                let wv = u32::from_le_bytes([
                                    wb[0] as u8,
                                    wb[1] as u8,
                                    wb[2] as u8,
                                    wb[3] as u8,
                                ]);
                                let u = wv & 0x00ff_00ff;
                                acc = smlad(acc, wv, buf[8 * g + p]);
                                acc = smlad(acc, u, buf[8 * g + 4 + p]);
                            }
                            assert_eq!(acc, (want + bias) * 256, "k {k} n {n} c {c} zx {zx}");
                        }
                    }
                }
                {
                    let wide = true;
                    let packed = pack(&w, k, n, wide).unwrap();
                    let packed: Vec<i8> = packed.iter().map(|&v| v as i8).collect();
                    // The buffer as `run` places it (the i16 layout: ending on 256 bytes).
                    let mut room = alloc::vec![0u8; 4 * k8 + ALIGN_ROOM + 3];
                    let off = room.as_ptr().align_offset(4);
                    let buf = pair_buffer(&mut room[off..off + 4 * k8 + ALIGN_ROOM], k8, wide);
                    let buf = buf.unwrap();
                    if wide {
                        assert_eq!((buf.as_ptr() as usize + 4 * k8) % 256, 0);
                    }
                    fill(buf, 0, &a, zx);
                    fill(buf, 1, &b, zx);
                    let per = if wide { 4 * k8 } else { 2 * k8 };
                    let pairs = n.div_ceil(2);
                    for q0 in (0..pairs).step_by(CHUNK) {
                        let q1 = pairs.min(q0 + CHUNK);
                        let (mut sums, mut port) = (Sums([7; 4 * CHUNK]), Sums([7; 4 * CHUNK]));
                        if wide {
                            let e = q1.next_multiple_of(2);
                            let wc = &packed[q0 * per..e * per];
                            kernel16(buf, wc, &mut sums, (e - q0) / 2, k8 / 4);
                            kernel16_portable(buf, wc, &mut port, (e - q0) / 2, k8 / 4);
                        }
                        assert_eq!(sums.0, port.0);
                        for c in 2 * q0..n.min(2 * q1) {
                            for (p, x) in [&a, &b].into_iter().enumerate() {
                                let want: i32 = (0..k)
                                    .map(|i| (x[i] as i8 as i32 - zx) * w[c * k + i] as i32)
                                    .sum();
                                let got = sums.0[2 * CHUNK * p + c - 2 * q0];
                                assert_eq!(got, want, "k {k} n {n} c {c} wide {wide}");
                            }
                        }
                    }
                }
            }
        }
    }
}

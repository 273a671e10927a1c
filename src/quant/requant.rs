//! The output stage: an i32 tile (bias and zero-point terms already added by the kernel)
//! requantized the TFLite way, as `reference::requantize` defines it, into i8 or u8.
//! Vectorized with AVX2/AVX-512 on x86-64 and NEON on AArch64 (each checked lane by lane
//! against the scalar reference in the tests), with the DSP extension's `smmulr` on Arm
//! M-profile cores (checked against the reference on the emulated Cortex-M4), scalar
//! elsewhere.

use crate::reference::multiply_by_quantized_multiplier;

/// Fixed-point scale, per tensor or per output channel (= per column of C).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mults<'a> {
    PerTensor {
        multiplier: i32,
        shift: i32,
    },
    PerChannel {
        multipliers: &'a [i32],
        shifts: &'a [i32],
    },
}

/// Validated requantization of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RqPlan<'a> {
    pub mults: Mults<'a>,
    pub out_zp: i32,
    /// Clamp bounds, already inside the output type's range.
    pub lo: i32,
    pub hi: i32,
    /// No channel has a left shift (shift > 0): the vector path skips that step.
    #[cfg_attr(
        not(any(target_arch = "x86_64", all(target_arch = "aarch64", edgemm_asm))),
        allow(dead_code)
    )]
    pub no_left_shift: bool,
    /// Every shift is ≤ −1 (a right shift, no left shift) and every multiplier is above
    /// −2^31 + 1: the Arm output stage's fast form applies (see [`arm`]).
    #[cfg_attr(not(all(target_arch = "arm", edgemm_arm_dsp)), allow(dead_code))]
    pub right_shift_only: bool,
    /// `(|out_zp| + 1)·2^e ≤ 2^30` for the largest right shift e ([`zp_fits`]): the fused
    /// output stage may add the zero point before that shift, as `out_zp·2^e`.
    #[cfg_attr(not(all(target_arch = "x86_64", edgemm_asm)), allow(dead_code))]
    pub zp_fits: bool,
    /// No multiplier is negative (TFLite's are in [2^30, 2^31) or 0): the fused output
    /// stage's rounding correction may follow the sign of the accumulator.
    #[cfg_attr(not(all(target_arch = "x86_64", edgemm_asm)), allow(dead_code))]
    pub mults_nonneg: bool,
    /// Every accumulator of the call is below 2^30 in magnitude (bound from k, the zero
    /// points and the bias; set by the call, false until then).
    #[cfg_attr(not(all(target_arch = "arm", edgemm_arm_dsp)), allow(dead_code))]
    pub acc_small: bool,
}

/// Whether `(|zp| + 1)·2^e ≤ 2^30` for the right shift `e = −least_shift` (none when
/// `least_shift ≥ 0`): then `zp·2^e` plus a rounding term and a value below 2^30 in
/// magnitude stays inside i32 ([`RqPlan::zp_fits`]).
pub(crate) fn zp_fits(zp: i32, least_shift: i32) -> bool {
    let e = i64::from(least_shift).saturating_neg().clamp(0, 40);
    (i64::from(zp).abs() + 1) << e <= 1 << 30
}

impl RqPlan<'_> {
    #[inline]
    fn scale(&self, col: usize) -> (i32, i32) {
        match self.mults {
            Mults::PerTensor { multiplier, shift } => (multiplier, shift),
            Mults::PerChannel {
                multipliers,
                shifts,
            } => (multipliers[col], shifts[col]),
        }
    }

    /// The output value of accumulator `v` in column `col`.
    #[inline]
    pub fn one(&self, v: i32, col: usize) -> i32 {
        let (m, s) = self.scale(col);
        multiply_by_quantized_multiplier(v, m, s)
            .wrapping_add(self.out_zp)
            .clamp(self.lo, self.hi)
    }
}

/// An output stage: requantizes the h×w tile at `tile` (row stride `ts` elements) into
/// `out` (one byte per element: i8 or u8 bit patterns), element (i, j) at
/// `out + i*out_rs + j*out_cs`; column j is output channel `col0 + j`.
///
/// # Safety (for callers)
/// The tile's h×w elements readable; the output's h×w bytes writable; per-channel slices
/// cover columns `col0..col0 + w`; the CPU has the implementation's ISA.
pub(crate) type RequantFn = unsafe fn(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
);

/// One row of accumulators requantized into bytes (i8 or u8 bit patterns):
/// `out[j] = plan.one(acc[j], col0 + j)` for `j < min(acc.len(), out.len())`, by the output
/// stage of the int8 kernel this CPU runs by default (vectorized where there is one), so
/// operators outside the GEMM requantize with the same code. Per-channel scales must cover
/// `col0..col0 + len`; when they do not, nothing is written and `false` is returned.
pub(crate) fn requantize_row(acc: &[i32], plan: &RqPlan, col0: usize, out: &mut [u8]) -> bool {
    let len = acc.len().min(out.len());
    if let Mults::PerChannel {
        multipliers,
        shifts,
    } = plan.mults
    {
        let end = col0.checked_add(len);
        if end.is_none_or(|e| e > multipliers.len() || e > shifts.len()) {
            return false;
        }
    }
    let stage =
        crate::kernels::qgemm_kernel().map_or(requantize_scalar as RequantFn, |k| k.requant);
    // SAFETY: a 1×len tile read from `acc` and written to `out` (both hold len elements),
    // per-channel slices cover col0..col0 + len (checked above), and the default kernel's
    // output stage runs on this CPU (that is how the kernel was selected).
    unsafe {
        stage(
            acc.as_ptr(),
            len,
            1,
            len,
            plan,
            col0,
            out.as_mut_ptr(),
            len as isize,
            1,
        )
    };
    true
}

impl RqPlan<'_> {
    /// Whether a kernel may fuse this output stage into its epilogue
    /// (`kernels::int8::REQUANT`): every accumulator below 2^30 and no left shift, the
    /// conditions of the one-shift rounding (`x86_512::mbqm_small`), and no negative
    /// multiplier (the kernel epilogue's rounding correction).
    #[inline]
    pub(crate) fn fusable(&self) -> bool {
        self.acc_small && self.no_left_shift && self.mults_nonneg
    }
}

/// An output stage a kernel runs in its epilogue (`kernels::int8::REQUANT`): the plan's
/// per-column constants as the kernel reads them, for any tile of columns.
#[cfg_attr(not(all(target_arch = "x86_64", edgemm_asm)), allow(dead_code))]
pub(crate) struct Fused<'a> {
    plan: RqPlan<'a>,
    /// A per-tensor scale as columns (the kernel reads per-column arrays).
    mult: [i32; crate::kernels::int8::MAX_NR],
    shift: [i32; crate::kernels::int8::MAX_NR],
    /// REQUANT, with RQ_SAT when the clamp is the i8 range, RQ_NOCORR when the zero point
    /// is at most the clamp's low end.
    pub flags: usize,
}

#[cfg_attr(not(all(target_arch = "x86_64", edgemm_asm)), allow(dead_code))]
impl<'a> Fused<'a> {
    /// The fused stage of a plan, if it allows one ([`RqPlan::fusable`], and
    /// [`RqPlan::zp_fits`]: the kernel adds the zero point before the right shift, as
    /// `zp·2^e`).
    pub(crate) fn new(plan: &RqPlan<'a>) -> Option<Fused<'a>> {
        use crate::kernels::int8::{MAX_NR, REQUANT, RQ_NOCORR, RQ_SAT};
        if !plan.fusable() {
            return None;
        }
        let (m, s) = match plan.mults {
            Mults::PerTensor { multiplier, shift } => (multiplier, shift),
            Mults::PerChannel { .. } => (0, 0),
        };
        if !plan.zp_fits {
            return None;
        }
        Some(Fused {
            plan: *plan,
            mult: [m; MAX_NR],
            shift: [s; MAX_NR],
            flags: REQUANT
                | if (plan.lo, plan.hi) == (-128, 127) {
                    RQ_SAT
                } else {
                    0
                }
                | if plan.out_zp <= plan.lo { RQ_NOCORR } else { 0 },
        })
    }

    /// The kernel's arguments for a tile whose first column is output channel `col0`.
    /// Per-channel slices must cover the tile's columns (the kernel reads only those).
    pub(crate) fn args(&self, col0: usize) -> crate::kernels::int8::RqArgs {
        let (mult, shift) = match self.plan.mults {
            Mults::PerTensor { .. } => (self.mult.as_ptr(), self.shift.as_ptr()),
            Mults::PerChannel {
                multipliers,
                shifts,
            } => (
                multipliers.as_ptr().wrapping_add(col0),
                shifts.as_ptr().wrapping_add(col0),
            ),
        };
        crate::kernels::int8::RqArgs {
            mult,
            shift,
            zp: self.plan.out_zp,
            lo: self.plan.lo,
            hi: self.plan.hi,
        }
    }
}

/// The portable output stage.
///
/// # Safety
/// The [`RequantFn`] contract.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_scalar(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    // SAFETY: forwarded.
    unsafe { scalar_cols(tile, ts, h, 0, w, plan, col0, out, out_rs, out_cs) }
}

/// Columns j0..w of the tile, one value at a time.
///
/// # Safety
/// The [`RequantFn`] contract.
#[allow(clippy::too_many_arguments)]
unsafe fn scalar_cols(
    tile: *const i32,
    ts: usize,
    h: usize,
    j0: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    for i in 0..h {
        for j in j0..w {
            // SAFETY: (i, j) inside the tile and the output (caller).
            unsafe {
                let v = *tile.add(i * ts + j);
                *out.offset(i as isize * out_rs + j as isize * out_cs) =
                    plan.one(v, col0 + j) as u8;
            }
        }
    }
}

/// The AVX2 output stage: 16 columns at a time, the rest scalar.
///
/// # Safety
/// The [`RequantFn`] contract; AVX2.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_avx2(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    let j_vec = if out_cs == 1 { w - w % 16 } else { 0 };
    // SAFETY: AVX2 (caller); the first j_vec columns of every row are in range.
    unsafe {
        if j_vec > 0 {
            x86::requantize_rows(tile, ts, h, j_vec, plan, col0, out, out_rs);
        }
        scalar_cols(tile, ts, h, j_vec, w, plan, col0, out, out_rs, out_cs);
    }
}

/// The AVX-512 output stage (unit-stride output; other layouts go scalar).
///
/// # Safety
/// The [`RequantFn`] contract; AVX-512F/BW.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_avx512(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    // SAFETY: AVX-512F/BW (caller); ranges as the contract states.
    unsafe {
        if out_cs == 1 {
            x86_512::requantize_rows(tile, ts, h, w, plan, col0, out, out_rs);
        } else {
            scalar_cols(tile, ts, h, 0, w, plan, col0, out, out_rs, out_cs);
        }
    }
}

/// The NEON output stage (AArch64): 8 columns per step for any output layout, with the
/// per-channel constants of a block computed once for all its rows.
///
/// # Safety
/// The [`RequantFn`] contract (NEON is part of the AArch64 baseline).
#[cfg(target_arch = "aarch64")]
#[cfg_attr(not(edgemm_asm), allow(dead_code))] // only the assembly kernels use it
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn requantize_neon(
    tile: *const i32,
    ts: usize,
    h: usize,
    w: usize,
    plan: &RqPlan,
    col0: usize,
    out: *mut u8,
    out_rs: isize,
    out_cs: isize,
) {
    // SAFETY: forwarded.
    unsafe { neon::requantize_rows(tile, ts, h, w, plan, col0, out, out_rs, out_cs) }
}

/// `reference::multiply_by_quantized_multiplier` on four NEON lanes, bit-exact:
///
/// - the left shift is `sshl` by `max(shift, 0)` (wrapping, as the reference's `x·2^left`);
/// - `sqrdmulh` computes `(2·x·m + 2^31) >> 32` = ⌊(x·m + 2^30) / 2^31⌋, saturating only
///   x = m = i32::MIN. That is gemmlowp's SaturatingRoundingDoublingHighMul for both signs:
///   for x·m = −(q·2^31 + r) (0 ≤ r < 2^31) both give −q − [r > 2^30] (gemmlowp nudges by
///   1 − 2^30 and truncates toward zero, which lands on the same integer);
/// - RoundingDivideByPOT by e = max(−shift, 0) rounds ties away from zero, while `srshl` by
///   −e rounds them up (adds 2^(e−1), then shifts arithmetically). So 1 is first subtracted
///   from negative values when e > 0: with x = q·2^e + r, `srshl` gives q + [r ≥ 2^(e−1)],
///   and on x − 1 (x < 0) q + [r > 2^(e−1)], which is the reference's
///   `(x >> e) + (r > (mask >> 1) + 1)` for x < 0. The fix-up is `(r & −e) >> 31` (−1
///   exactly when r < 0 and e > 0, since −e < 0 then has its sign bit). The high multiply
///   never returns i32::MIN (|x·m| ≤ 2^62), so subtracting 1 cannot wrap; it is a saturating
///   add all the same. `srshl` rounds in wider precision, so it cannot overflow either.
#[cfg(target_arch = "aarch64")]
#[cfg_attr(not(edgemm_asm), allow(dead_code))]
pub(crate) mod neon {
    use super::{Mults, RqPlan};
    use core::arch::aarch64::*;

    /// The constants of four lanes: multipliers, left shifts, and right shifts as the
    /// negative shift counts `srshl` takes.
    #[derive(Clone, Copy)]
    pub(crate) struct Consts {
        m: int32x4_t,
        left: int32x4_t,
        right: int32x4_t,
    }

    /// From each lane's multiplier and shift (−31..=30).
    #[inline]
    #[allow(unused_unsafe)] // the intrinsics are unsafe fns on the MSRV (1.85)
    pub(crate) fn consts(m: int32x4_t, shift: int32x4_t) -> Consts {
        // SAFETY: NEON is part of the AArch64 baseline; register operations only.
        unsafe {
            let zero = vdupq_n_s32(0);
            Consts {
                m,
                left: vmaxq_s32(shift, zero),
                right: vminq_s32(shift, zero),
            }
        }
    }

    /// Four lanes of `reference::multiply_by_quantized_multiplier` (see the module docs).
    /// `left = false` skips the left shift (valid when no lane's shift is positive).
    #[inline]
    #[allow(unused_unsafe)]
    pub(crate) fn mbqm(x: int32x4_t, c: &Consts, left: bool) -> int32x4_t {
        // SAFETY: NEON is part of the AArch64 baseline; register operations only.
        unsafe {
            let x = if left { vshlq_s32(x, c.left) } else { x };
            let r = vqrdmulhq_s32(x, c.m);
            let fixup = vshrq_n_s32::<31>(vandq_s32(r, c.right));
            vrshlq_s32(vqaddq_s32(r, fixup), c.right)
        }
    }

    /// `len` (1..=8) i32 at `p` as two vectors, lanes past `len` zero.
    ///
    /// # Safety
    /// `p[0..len]` readable.
    #[inline]
    unsafe fn load8(p: *const i32, len: usize) -> (int32x4_t, int32x4_t) {
        // SAFETY: whole vectors only when all 8 values are readable, else a stack copy of
        // the `len` readable ones.
        unsafe {
            if len == 8 {
                (vld1q_s32(p), vld1q_s32(p.add(4)))
            } else {
                let mut buf = [0i32; 8];
                core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), len);
                (vld1q_s32(buf.as_ptr()), vld1q_s32(buf.as_ptr().add(4)))
            }
        }
    }

    /// The whole h×w tile, 8 columns at a time (the last block padded on the stack).
    ///
    /// # Safety
    /// The [`super::RequantFn`] contract.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn requantize_rows(
        tile: *const i32,
        ts: usize,
        h: usize,
        w: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
        out_cs: isize,
    ) {
        let left = !plan.no_left_shift;
        // SAFETY (whole body): every load covers columns j..j+cols of row i < h of the tile
        // (or of the per-channel slices, which cover col0..col0+w); every store writes the
        // output elements (i, j..j+cols) — all inside the ranges the caller guarantees.
        unsafe {
            let zp = vdupq_n_s32(plan.out_zp);
            let lo = vdupq_n_s32(plan.lo);
            let hi = vdupq_n_s32(plan.hi);
            for j in (0..w).step_by(8) {
                let cols = (w - j).min(8);
                let (c0, c1) = match plan.mults {
                    Mults::PerTensor { multiplier, shift } => {
                        let c = consts(vdupq_n_s32(multiplier), vdupq_n_s32(shift));
                        (c, c)
                    }
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    } => {
                        let (m0, m1) = load8(multipliers.as_ptr().add(col0 + j), cols);
                        let (s0, s1) = load8(shifts.as_ptr().add(col0 + j), cols);
                        (consts(m0, s0), consts(m1, s1))
                    }
                };
                for i in 0..h {
                    let (x0, x1) = load8(tile.add(i * ts + j), cols);
                    let v0 = vaddq_s32(mbqm(x0, &c0, left), zp);
                    let v1 = vaddq_s32(mbqm(x1, &c1, left), zp);
                    let v0 = vminq_s32(vmaxq_s32(v0, lo), hi);
                    let v1 = vminq_s32(vmaxq_s32(v1, lo), hi);
                    // Clamped into the output type's range: narrowing keeps each value's
                    // low byte, its i8 or u8 bit pattern.
                    let b = vmovn_s16(vcombine_s16(vmovn_s32(v0), vmovn_s32(v1)));
                    let o = out.offset(i as isize * out_rs + j as isize * out_cs);
                    if cols == 8 && out_cs == 1 {
                        vst1_s8(o as *mut i8, b);
                    } else {
                        let mut bytes = [0i8; 8];
                        vst1_s8(bytes.as_mut_ptr(), b);
                        for (c, &v) in bytes.iter().enumerate().take(cols) {
                            *o.offset(c as isize * out_cs) = v as u8;
                        }
                    }
                }
            }
        }
    }
}

/// The output stage of the Cortex-M4 kernel (Arm M-profile with the DSP extension).
///
/// TFLite's double rounding, `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m),
/// e)` with e = −shift ≥ 1, is computed in 5 instructions per value, with no branch:
///
/// ```text
/// add  x, x, x            ; 2x, exact when |x| < 2^30
/// smmulr x, x, m          ; (2x·m + 2^31) >> 32 = (x·m + 2^30) >> 31 = SRDHM(x, m)
/// add  c, x, half         ; half = 2^(e−1)
/// add  c, c, x, asr #31   ; − 1 when negative: ties away from zero
/// asr  c, c, e            ; = RoundingDivideByPOT(x, e)
/// ```
///
/// then `+ zero point`, clamp (one `ssat`/`usat` for the type's range), store the byte.
/// Exact (equal to `reference::multiply_by_quantized_multiplier`) when −2^30 < x < 2^30 and
/// m > −2^31 + 1: then 2x does not overflow, SRDHM never saturates (x ≠ −2^31), and
/// |SRDHM(x, m)| ≤ 2^30 − 1, so adding half ≤ 2^30 cannot overflow.
///
/// The range of x is known for the whole call when `RqPlan::acc_small` (the bound from k,
/// the zero points and the bias). Otherwise each value is tested on the way (`eor c, x, x,
/// lsl #1` has bit 31 set when x ∉ [−2^30, 2^30), ORed into a flag word; x = −2^30 passes,
/// but then |x·m| ≤ 2^30·(2^31 − 2) still keeps |SRDHM| < 2^30 given the multiplier bound),
/// and a tile with a value out of range is done again by the scalar reference form. Plans
/// with a left shift, a zero shift or a multiplier at −2^31 or −2^31 + 1
/// (`RqPlan::right_shift_only` false) always take the scalar form.
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
pub(crate) mod arm {
    use super::{requantize_scalar, Mults, RqPlan};
    use core::arch::asm;

    /// The fast form (see the module docs). With `CHECK`, ORs the range test into `flag`.
    #[inline(always)]
    fn mbqm<const CHECK: bool>(x: i32, m: i32, e: i32, half: i32, flag: &mut u32) -> i32 {
        let c: i32;
        // SAFETY: register arithmetic only (no memory, no stack, no flags: none of these
        // instructions has the S suffix, and smmulr does not touch Q).
        unsafe {
            if CHECK {
                asm!(
                    "eor {c}, {x}, {x}, lsl #1",
                    "orr {f}, {f}, {c}",
                    "add {x}, {x}, {x}",
                    "smmulr {x}, {x}, {m}",
                    "add {c}, {x}, {h}",
                    "add {c}, {c}, {x}, asr #31",
                    "asr {c}, {c}, {e}",
                    x = inout(reg) x => _,
                    f = inout(reg) *flag,
                    c = out(reg) c,
                    m = in(reg) m,
                    h = in(reg) half,
                    e = in(reg) e,
                    options(pure, nomem, nostack, preserves_flags),
                );
            } else {
                asm!(
                    "add {x}, {x}, {x}",
                    "smmulr {x}, {x}, {m}",
                    "add {c}, {x}, {h}",
                    "add {c}, {c}, {x}, asr #31",
                    "asr {c}, {c}, {e}",
                    x = inout(reg) x => _,
                    c = out(reg) c,
                    m = in(reg) m,
                    h = in(reg) half,
                    e = in(reg) e,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
        }
        c
    }

    /// `multiply_by_quantized_multiplier(x, m, −e)` in the fast form, for kernels that
    /// fuse the output stage (`half` = 2^(e−1), from [`consts`]): exact under the module's
    /// conditions (|x| < 2^30, e ≥ 1, m > −2^31 + 1), which the caller guarantees.
    #[inline(always)]
    pub(crate) fn mbqm_fast(x: i32, m: i32, e: i32, half: i32) -> i32 {
        mbqm::<false>(x, m, e, half, &mut 0)
    }

    /// (m, e, half) of a shift ≤ −1.
    #[inline(always)]
    pub(crate) fn consts(m: i32, shift: i32) -> (i32, i32, i32) {
        let e = -shift;
        (m, e, 1 << (e - 1))
    }

    /// Clamps to [lo, hi]: the i8 range (`K = 0`), the u8 range (`K = 1`, both become one
    /// ssat/usat), or the plan's bounds (`K = 2`).
    #[inline(always)]
    fn clamp<const K: u8>(v: i32, lo: i32, hi: i32) -> i32 {
        match K {
            0 => v.clamp(-128, 127),
            1 => v.clamp(0, 255),
            _ => v.clamp(lo, hi),
        }
    }

    /// The whole tile in the fast form; returns the flag word (bit 31: redo exactly).
    /// `TS` is the tile's row stride when known at compile time (the kernel's stack tile:
    /// NR = 4), else 0 and `ts` is used.
    ///
    /// # Safety
    /// The [`super::RequantFn`] contract; `plan.right_shift_only`; without `CHECK`,
    /// `plan.acc_small`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn run<const K: u8, const CHECK: bool, const TS: usize>(
        tile: *const i32,
        ts: usize,
        h: usize,
        w: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
        out_cs: isize,
    ) -> u32 {
        let ts = if TS != 0 { TS } else { ts };
        let (zp, lo, hi) = (plan.out_zp, plan.lo, plan.hi);
        let mut flag = 0u32;
        let per_column = |j: usize, m: i32, e: i32, half: i32, flag: &mut u32| {
            let mut t = tile.wrapping_add(j);
            let mut o = out.wrapping_offset(j as isize * out_cs);
            // SAFETY (both loops): (i, j) inside the tile and the output (caller).
            for _ in 0..h / 2 {
                unsafe {
                    let v0 = mbqm::<CHECK>(*t, m, e, half, flag);
                    let v1 = mbqm::<CHECK>(*t.add(ts), m, e, half, flag);
                    *o = clamp::<K>(v0 + zp, lo, hi) as u8;
                    *o.offset(out_rs) = clamp::<K>(v1 + zp, lo, hi) as u8;
                    t = t.add(2 * ts);
                    o = o.offset(2 * out_rs);
                }
            }
            if h % 2 != 0 {
                unsafe {
                    let v = mbqm::<CHECK>(*t, m, e, half, flag);
                    *o = clamp::<K>(v + zp, lo, hi) as u8;
                }
            }
        };
        match plan.mults {
            Mults::PerTensor { multiplier, shift } => {
                let (m, e, half) = consts(multiplier, shift);
                for j in 0..w {
                    per_column(j, m, e, half, &mut flag);
                }
            }
            Mults::PerChannel {
                multipliers,
                shifts,
            } => {
                for j in 0..w {
                    // SAFETY: the per-channel slices cover col0..col0 + w (caller).
                    let (m, e, half) = unsafe {
                        consts(
                            *multipliers.get_unchecked(col0 + j),
                            *shifts.get_unchecked(col0 + j),
                        )
                    };
                    per_column(j, m, e, half, &mut flag);
                }
            }
        }
        flag
    }

    /// The Cortex-M4 stack tile's row stride (NR = 4).
    const TILE_TS: usize = 4;

    /// The variants compiled: without the range test, one per clamp (the type's ranges are
    /// one ssat/usat); with it, one for all clamps. Other strides (the block buffer of a
    /// call with several k chunks) take the scalar form. Returns None when no variant
    /// applies.
    ///
    /// # Safety
    /// As [`run`], without the requirements on the plan (checked here).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn run_for(
        tile: *const i32,
        ts: usize,
        h: usize,
        w: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
        out_cs: isize,
    ) -> Option<u32> {
        if !plan.right_shift_only || ts != TILE_TS {
            return None;
        }
        let a = (tile, ts, h, w, plan, col0, out, out_rs, out_cs);
        // SAFETY: forwarded; right shifts only; without the check, acc_small.
        unsafe {
            Some(match (plan.acc_small, plan.lo, plan.hi) {
                (true, -128, 127) => {
                    run::<0, false, TILE_TS>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8)
                }
                (true, 0, 255) => {
                    run::<1, false, TILE_TS>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8)
                }
                (true, _, _) => {
                    run::<2, false, TILE_TS>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8)
                }
                (false, _, _) => {
                    run::<2, true, TILE_TS>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7, a.8)
                }
            })
        }
    }

    /// The Cortex-M4 output stage: the fast form when the plan allows it and the tile is the
    /// kernel's stack tile (unchecked when the call's accumulators are known to be in range,
    /// else checked value by value), the scalar reference form otherwise (module docs).
    ///
    /// # Safety
    /// The [`super::RequantFn`] contract.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn requantize_m4dsp(
        tile: *const i32,
        ts: usize,
        h: usize,
        w: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
        out_cs: isize,
    ) {
        // SAFETY: forwarded.
        let flag = unsafe { run_for(tile, ts, h, w, plan, col0, out, out_rs, out_cs) };
        if flag.is_some_and(|f| f >> 31 == 0) {
            return;
        }
        // SAFETY: forwarded (the fast pass, if any, only wrote the same outputs).
        unsafe { requantize_scalar(tile, ts, h, w, plan, col0, out, out_rs, out_cs) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Mults, RqPlan};
    use core::arch::x86_64::*;

    /// Eight lanes of `reference::multiply_by_quantized_multiplier` (see there).
    ///
    /// # Safety
    /// AVX2 (an `unsafe fn`, not a safe target-feature function: the MSRV is 1.85).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(unused_unsafe)]
    pub(crate) unsafe fn mbqm(x: __m256i, m: __m256i, shift: __m256i, left: bool) -> __m256i {
        // SAFETY: AVX2 (caller); register operations only.
        unsafe {
            let zero = _mm256_setzero_si256();
            let x = if left {
                _mm256_sllv_epi32(x, _mm256_max_epi32(shift, zero))
            } else {
                x
            };
            // SaturatingRoundingDoublingHighMul = (x·m + 2^30) >> 31 (for either sign: the
            // truncating division of the nudged product equals this floor), bits 31..62 of the
            // 64-bit sum; only x = m = i32::MIN overflows, to i32::MAX.
            let nudge = _mm256_set1_epi64x(1 << 30);
            let even = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
            let odd = _mm256_add_epi64(
                _mm256_mul_epi32(_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(m)),
                nudge,
            );
            let even = _mm256_srli_epi64::<31>(even); // result in the low dword
            let odd = _mm256_slli_epi64::<1>(odd); // result in the high dword
            let mut r = _mm256_blend_epi32::<0b1010_1010>(even, odd);
            let min = _mm256_set1_epi32(i32::MIN);
            let sat = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
            r = _mm256_blendv_epi8(r, _mm256_set1_epi32(i32::MAX), sat);
            // RoundingDivideByPOT by e = max(−shift, 0).
            let e = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
            let one = _mm256_set1_epi32(1);
            let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, e), one);
            let rem = _mm256_and_si256(r, mask);
            let thr = _mm256_sub_epi32(_mm256_srli_epi32::<1>(mask), _mm256_srai_epi32::<31>(r));
            _mm256_sub_epi32(_mm256_srav_epi32(r, e), _mm256_cmpgt_epi32(rem, thr))
        }
    }

    /// Rows of `cols` (a multiple of 16) columns, 16 at a time, stored as 16 bytes.
    ///
    /// # Safety
    /// AVX2; the tile's h×cols i32 readable, the output's h rows of cols bytes writable,
    /// per-channel slices cover `col0..col0 + cols`.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn requantize_rows(
        tile: *const i32,
        ts: usize,
        h: usize,
        cols: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
    ) {
        let unsigned_out = plan.lo >= 0 && plan.hi > 127;
        let left = !plan.no_left_shift;
        // SAFETY (whole body): AVX2 (caller); loads/stores stay inside the ranges stated
        // above.
        unsafe {
            let zp = _mm256_set1_epi32(plan.out_zp);
            let lo = _mm256_set1_epi32(plan.lo);
            let hi = _mm256_set1_epi32(plan.hi);
            for j in (0..cols).step_by(16) {
                let (m0, m1, s0, s1) = match plan.mults {
                    Mults::PerTensor { multiplier, shift } => {
                        let (m, s) = (_mm256_set1_epi32(multiplier), _mm256_set1_epi32(shift));
                        (m, m, s, s)
                    }
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    } => {
                        let (mp, sp) = (
                            multipliers.as_ptr().add(col0 + j),
                            shifts.as_ptr().add(col0 + j),
                        );
                        (
                            _mm256_loadu_si256(mp as *const __m256i),
                            _mm256_loadu_si256(mp.add(8) as *const __m256i),
                            _mm256_loadu_si256(sp as *const __m256i),
                            _mm256_loadu_si256(sp.add(8) as *const __m256i),
                        )
                    }
                };
                for i in 0..h {
                    let t = tile.add(i * ts + j);
                    let v0 = mbqm(_mm256_loadu_si256(t as *const __m256i), m0, s0, left);
                    let v1 = mbqm(_mm256_loadu_si256(t.add(8) as *const __m256i), m1, s1, left);
                    let v0 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v0, zp), lo), hi);
                    let v1 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(v1, zp), lo), hi);
                    // Pack 16 i32 (already in the byte range) to 16 bytes, in order.
                    let w16 = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(v0, v1));
                    let b = if unsigned_out {
                        _mm256_packus_epi16(w16, w16)
                    } else {
                        _mm256_packs_epi16(w16, w16)
                    };
                    let b = _mm256_permute4x64_epi64::<0x08>(b);
                    _mm_storeu_si128(
                        out.offset(i as isize * out_rs).add(j) as *mut __m128i,
                        _mm256_castsi256_si128(b),
                    );
                }
            }
        }
    }
}

/// The AVX-512 output stage: 16 lanes per operation, the per-channel constants of a block
/// of 16 columns computed once for all its rows, masked byte stores for the last columns.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
pub(crate) mod x86_512 {
    use super::{Mults, RqPlan};
    use core::arch::x86_64::*;

    /// Per-channel constants of one 16-column block.
    #[derive(Clone, Copy)]
    pub(crate) struct Consts {
        m: __m512i,
        m_odd: __m512i,
        left: __m512i,
        e: __m512i,
        mask: __m512i,
        half: __m512i,
        /// Some lane's multiplier is i32::MIN (the one saturating case is possible).
        sat: bool,
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn consts(m: __m512i, shift: __m512i) -> Consts {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi32(1);
        let e = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
        Consts {
            m,
            m_odd: _mm512_srli_epi64::<32>(m),
            left: _mm512_max_epi32(shift, zero),
            e,
            mask,
            half: _mm512_srli_epi32::<1>(mask),
            sat: _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(i32::MIN)) != 0,
        }
    }

    /// Sixteen lanes of `reference::multiply_by_quantized_multiplier`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn mbqm(x: __m512i, c: &Consts, left: bool) -> __m512i {
        let x = if left {
            _mm512_sllv_epi32(x, c.left)
        } else {
            x
        };
        let nudge = _mm512_set1_epi64(1 << 30);
        // (x·m + 2^30) >> 31 per 64-bit product: even lanes keep bits 31..62 in the low
        // dword (shift right 31), odd lanes in the high dword (shift left 1).
        let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, c.m), nudge));
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), c.m_odd),
            nudge,
        ));
        let mut r = _mm512_mask_blend_epi32(0xAAAA, even, odd);
        if c.sat {
            let min = _mm512_set1_epi32(i32::MIN);
            let k = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(c.m, min);
            r = _mm512_mask_mov_epi32(r, k, _mm512_set1_epi32(i32::MAX));
        }
        // RoundingDivideByPOT: (r >> e) + (r & mask > mask/2 + (r < 0)).
        let rem = _mm512_and_si512(r, c.mask);
        let thr = _mm512_sub_epi32(c.half, _mm512_srai_epi32::<31>(r));
        let up = _mm512_cmpgt_epi32_mask(rem, thr);
        let q = _mm512_srav_epi32(r, c.e);
        _mm512_mask_add_epi32(q, up, q, _mm512_set1_epi32(1))
    }

    /// [`mbqm`] when every lane's |x| < 2^30 and no shift is positive (no left shift): the
    /// rounding division is then one shift, `(r + 2^(e−1) − [r < 0 and e > 0]) >> e` (ties
    /// away from zero, as RoundingDivideByPOT; an e of 0 adds nothing), where
    /// |SRDHM(x, m)| ≤ 2^30 − 1 and 2^(e−1) ≤ 2^30 keep the sum inside i32, and the
    /// saturating case (x = m = i32::MIN) cannot occur.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn mbqm_small(x: __m512i, c: &Consts) -> __m512i {
        let nudge = _mm512_set1_epi64(1 << 30);
        let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, c.m), nudge));
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), c.m_odd),
            nudge,
        ));
        let r = _mm512_mask_blend_epi32(0xAAAA, even, odd);
        // half = (mask + 1) / 2: 2^(e−1), or 0 when e = 0.
        let half = _mm512_srli_epi32::<1>(_mm512_add_epi32(c.mask, _mm512_set1_epi32(1)));
        let t = _mm512_add_epi32(r, half);
        let pos = _mm512_cmpgt_epi32_mask(c.e, _mm512_setzero_si512());
        let t = _mm512_mask_add_epi32(t, pos, t, _mm512_srai_epi32::<31>(r));
        _mm512_srav_epi32(t, c.e)
    }

    /// All rows, 16 columns at a time (the last block masked), in the variant the plan
    /// allows: the one-shift rounding of [`mbqm_small`] when every accumulator is below
    /// 2^30 (`acc_small`) and no shift is positive; no upper clamp when it is the i8
    /// range's own (the saturating narrowing store does it).
    ///
    /// # Safety
    /// AVX-512F/BW; the tile's h×cols i32 readable; the output's h rows of cols bytes
    /// writable; per-channel slices cover `col0..col0 + cols`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn requantize_rows(
        tile: *const i32,
        ts: usize,
        h: usize,
        cols: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
    ) {
        let a = (tile, ts, h, cols, plan, col0, out, out_rs);
        let small = plan.acc_small && plan.no_left_shift;
        // i8 output whose clamp tops at 127: the signed saturating narrowing clamps there.
        let sat_top = plan.hi == 127;
        // SAFETY: forwarded.
        unsafe {
            match (small, !plan.no_left_shift, sat_top) {
                (true, _, true) => {
                    rows::<true, false, true>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
                (true, _, false) => {
                    rows::<true, false, false>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
                (false, false, true) => {
                    rows::<false, false, true>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
                (false, false, false) => {
                    rows::<false, false, false>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
                (false, true, true) => {
                    rows::<false, true, true>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
                (false, true, false) => {
                    rows::<false, true, false>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7)
                }
            }
        }
    }

    /// [`requantize_rows`] in one variant: `SMALL` rounds with [`mbqm_small`] (the plan
    /// allows it), else [`mbqm`] with or without (`LEFT`) the left shift; `SAT_TOP` stores
    /// with signed saturation instead of clamping to 127.
    ///
    /// # Safety
    /// As [`requantize_rows`]; `SMALL` only when the plan's accumulators are below 2^30
    /// and no shift is positive, `SAT_TOP` only when `plan.hi` is 127.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const SMALL: bool, const LEFT: bool, const SAT_TOP: bool>(
        tile: *const i32,
        ts: usize,
        h: usize,
        cols: usize,
        plan: &RqPlan,
        col0: usize,
        out: *mut u8,
        out_rs: isize,
    ) {
        let zp = _mm512_set1_epi32(plan.out_zp);
        let lo = _mm512_set1_epi32(plan.lo);
        let hi = _mm512_set1_epi32(plan.hi);
        // SAFETY (whole body): masked loads/stores stay inside the ranges stated above.
        unsafe {
            for j in (0..cols).step_by(16) {
                let w = (cols - j).min(16);
                let mask: __mmask16 = if w == 16 { !0 } else { (1u16 << w) - 1 };
                let c = match plan.mults {
                    Mults::PerTensor { multiplier, shift } => {
                        consts(_mm512_set1_epi32(multiplier), _mm512_set1_epi32(shift))
                    }
                    Mults::PerChannel {
                        multipliers,
                        shifts,
                    } => consts(
                        _mm512_maskz_loadu_epi32(mask, multipliers.as_ptr().add(col0 + j)),
                        _mm512_maskz_loadu_epi32(mask, shifts.as_ptr().add(col0 + j)),
                    ),
                };
                for i in 0..h {
                    let x = _mm512_maskz_loadu_epi32(mask, tile.add(i * ts + j));
                    let v = if SMALL {
                        mbqm_small(x, &c)
                    } else {
                        mbqm(x, &c, LEFT)
                    };
                    let v = _mm512_max_epi32(_mm512_add_epi32(v, zp), lo);
                    let o = out.offset(i as isize * out_rs).add(j) as *mut i8;
                    if SAT_TOP {
                        // (≥ lo ≥ −128 already: saturating at 127 is the upper clamp.)
                        _mm512_mask_cvtsepi32_storeu_epi8(o, mask, v);
                    } else {
                        // Within the byte range after the clamp: truncating keeps it.
                        _mm512_mask_cvtepi32_storeu_epi8(o, mask, _mm512_min_epi32(v, hi));
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64", feature = "std"))]
mod tests {
    use super::*;
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::x86_64::*;

    /// The vector MultiplyByQuantizedMultiplier agrees with the scalar reference in every
    /// lane, over extreme and random inputs, all shifts −31..=30, and edge multipliers.
    #[test]
    fn mbqm_lane_by_lane() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            std::println!("SKIPPED mbqm_lane_by_lane: this CPU lacks avx2");
            return;
        }
        let mut xs = std::vec![
            0,
            1,
            -1,
            2,
            -2,
            3,
            i32::MAX,
            i32::MIN,
            i32::MAX - 1,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
            12345,
            -12345,
            0x4000_0001,
            -0x4000_0001
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            xs.push(seed as i32 >> (seed >> 59));
        }
        let mults = [
            0,
            1,
            i32::MAX,
            i32::MIN,
            1 << 30,
            (1 << 30) + 1,
            1_077_952_569,
            -1_610_612_736,
            2_000_000_000,
        ];
        for &m in &mults {
            for shift in -31..=30 {
                for chunk in xs.chunks(8) {
                    let mut lane = [0i32; 8];
                    lane[..chunk.len()].copy_from_slice(chunk);
                    let mut got = [0i32; 8];
                    // SAFETY: AVX2 checked above; arrays of 8 i32.
                    unsafe {
                        let x = _mm256_loadu_si256(lane.as_ptr() as *const __m256i);
                        let r = x86::mbqm(x, _mm256_set1_epi32(m), _mm256_set1_epi32(shift), true);
                        _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, r);
                        if shift <= 0 {
                            let r2 =
                                x86::mbqm(x, _mm256_set1_epi32(m), _mm256_set1_epi32(shift), false);
                            let mut got2 = [0i32; 8];
                            _mm256_storeu_si256(got2.as_mut_ptr() as *mut __m256i, r2);
                            assert_eq!(got, got2);
                        }
                    }
                    for (l, &x) in lane.iter().enumerate() {
                        assert_eq!(got[l], scalar(x, m, shift), "x={x} m={m} shift={shift}");
                    }
                    #[cfg(edgemm_avx512_intrinsics)]
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        check_512(&lane, m, shift);
                    }
                }
            }
        }
    }
}

/// (Shared by the AVX-512 and NEON output-stage tests.)
#[cfg(all(
    test,
    feature = "std",
    any(
        all(target_arch = "x86_64", edgemm_avx512_intrinsics),
        target_arch = "aarch64"
    )
))]
/// The plan of per-channel (or, from the first entry, per-tensor) scales, with
/// `no_left_shift` derived from the shifts as `Requantize::plan_i8` derives it.
fn test_plan<'a>(
    mults: &'a [i32],
    shifts: &'a [i32],
    per_channel: bool,
    out_zp: i32,
    lo: i32,
    hi: i32,
    acc_small: bool,
) -> RqPlan<'a> {
    let (mults, no_left_shift, least) = if per_channel {
        let m = Mults::PerChannel {
            multipliers: mults,
            shifts,
        };
        let least = shifts.iter().copied().min().unwrap_or(0);
        (m, shifts.iter().all(|&s| s <= 0), least)
    } else {
        let m = Mults::PerTensor {
            multiplier: mults[0],
            shift: shifts[0],
        };
        (m, shifts[0] <= 0, shifts[0])
    };
    RqPlan {
        mults,
        out_zp,
        lo,
        hi,
        no_left_shift,
        zp_fits: zp_fits(out_zp, least),
        // (Read only by the Arm M-profile output stage.)
        right_shift_only: false,
        mults_nonneg: true,
        acc_small,
    }
}

/// The AVX-512 output stage's variants against the scalar one.
#[cfg(all(
    test,
    target_arch = "x86_64",
    feature = "std",
    edgemm_avx512_intrinsics
))]
#[allow(clippy::incompatible_msrv)]
mod tests_512 {
    use super::*;
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::x86_64::*;
    extern crate std;
    use std::vec::Vec;

    fn avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The one-shift rounding equals the reference lane by lane for every |x| < 2^30 kind
    /// (random magnitudes, the ends, every tie of every shift), shifts −31..=0 (per lane
    /// too) and multipliers at the ends of their range.
    #[test]
    fn mbqm_small_lane_by_lane() {
        if !avx512() {
            std::println!("SKIPPED mbqm_small_lane_by_lane: this CPU lacks AVX-512F/BW");
            return;
        }
        let lim = (1 << 30) - 1;
        let mut xs: Vec<i32> = std::vec![0, 1, -1, 2, -2, 3, -3, lim, -lim, lim - 1, -lim + 1];
        for e in 1..=30 {
            for d in -2..=2 {
                for sign in [1, -1] {
                    let t = (1i64 << (e - 1)) * (2 * d + 1);
                    // Values whose product with 2^31 − 1 lands near a tie of the shift.
                    xs.push((sign * t).clamp(-(lim as i64), lim as i64) as i32);
                }
            }
        }
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..4000 {
            let v = r.next();
            xs.push(((v as i32) >> (v >> 59)) % (1 << 30));
        }
        let mults = [
            0,
            1,
            -1,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1 << 30,
            1_610_612_736,
        ];
        for &m in &mults {
            for shift in -31..=0 {
                // Per lane: the multiplier's neighbours and shifts spread over −31..=0.
                let ms: [i32; 16] = core::array::from_fn(|l| m.wrapping_add(l as i32 % 3));
                let ss: [i32; 16] = core::array::from_fn(|l| {
                    if l < 8 {
                        shift
                    } else {
                        (shift - 5 * l as i32) % 32
                    }
                });
                for chunk in xs.chunks(16) {
                    let mut x = [0i32; 16];
                    x[..chunk.len()].copy_from_slice(chunk);
                    let mut got = [0i32; 16];
                    // SAFETY: AVX-512F checked above; arrays of 16 i32.
                    unsafe {
                        let c = x86_512::consts(
                            _mm512_loadu_si512(ms.as_ptr() as *const __m512i),
                            _mm512_loadu_si512(ss.as_ptr() as *const __m512i),
                        );
                        let v = _mm512_loadu_si512(x.as_ptr() as *const __m512i);
                        _mm512_storeu_si512(
                            got.as_mut_ptr() as *mut __m512i,
                            x86_512::mbqm_small(v, &c),
                        );
                    }
                    for l in 0..16 {
                        assert_eq!(
                            got[l],
                            scalar(x[l], ms[l], ss[l]),
                            "x={} m={} shift={}",
                            x[l],
                            ms[l],
                            ss[l]
                        );
                    }
                }
            }
        }
    }

    /// Every variant of the AVX-512 output stage writes the scalar stage's bytes: widths
    /// 1..=40 (whole and masked blocks), per tensor and per channel, accumulators below
    /// 2^30 (the one-shift rounding) or anywhere, left shifts or none, clamps with and
    /// without the i8 range's top, signed and unsigned outputs.
    #[test]
    fn requantize_avx512_matches_scalar() {
        if !avx512() {
            std::println!("SKIPPED requantize_avx512_matches_scalar: this CPU lacks AVX-512F/BW");
            return;
        }
        let mut r = Rng(0x0bad_cafe_1234_5678);
        let (h, ts) = (3usize, 48usize);
        for w in 1..=40usize {
            for case in 0..32 {
                let small = case & 1 != 0;
                let left = case & 2 != 0;
                let per_channel = case & 4 != 0;
                let (lo, hi, zp) = match case >> 3 {
                    0 => (-128, 127, -3),
                    1 => (-7, 127, -7),
                    2 => (-100, 90, 4),
                    _ => (0, 255, 3),
                };
                let tile: Vec<i32> = (0..h * ts)
                    .map(|_| {
                        let v = r.next();
                        if small {
                            ((v as i32) >> (v >> 59)) % (1 << 30)
                        } else {
                            (v as i32) >> (v >> 59)
                        }
                    })
                    .collect();
                let col0 = 2;
                let mults: Vec<i32> = (0..col0 + w)
                    .map(|_| (1 << 30) + (r.next() % (1 << 30)) as i32)
                    .collect();
                let shifts: Vec<i32> = (0..col0 + w)
                    .map(|_| (r.next() % 32) as i32 - 31 + if left { 3 } else { 0 })
                    .collect();
                let plan = test_plan(&mults, &shifts, per_channel, zp, lo, hi, small);
                let out_rs = 64isize;
                let mut want = std::vec![0xAAu8; 64 * h];
                let mut got = want.clone();
                // SAFETY: h×w values of the tile (row stride ts ≥ w); outputs inside the
                // 64·h-byte buffers; slices cover col0..col0 + w; AVX-512F/BW checked.
                unsafe {
                    requantize_scalar(
                        tile.as_ptr(),
                        ts,
                        h,
                        w,
                        &plan,
                        col0,
                        want.as_mut_ptr(),
                        out_rs,
                        1,
                    );
                    requantize_avx512(
                        tile.as_ptr(),
                        ts,
                        h,
                        w,
                        &plan,
                        col0,
                        got.as_mut_ptr(),
                        out_rs,
                        1,
                    );
                }
                assert_eq!(got, want, "w={w} case={case}");
            }
        }
    }
}

/// The AVX-512 MultiplyByQuantizedMultiplier against the scalar reference, lane by lane
/// (16 lanes: the 8 given twice, the second half with the multiplier's neighbour so lanes
/// really differ).
#[cfg(all(
    test,
    target_arch = "x86_64",
    feature = "std",
    edgemm_avx512_intrinsics
))]
#[allow(clippy::incompatible_msrv)]
fn check_512(lane: &[i32; 8], m: i32, shift: i32) {
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::x86_64::*;
    let mut xs = [0i32; 16];
    xs[..8].copy_from_slice(lane);
    xs[8..].copy_from_slice(lane);
    let mut ms = [m; 16];
    for v in &mut ms[8..] {
        *v = m.wrapping_add(1);
    }
    let mut got = [0i32; 16];
    // SAFETY: AVX-512F checked by the caller; arrays of 16 i32.
    unsafe {
        let c = x86_512::consts(
            _mm512_loadu_si512(ms.as_ptr() as *const __m512i),
            _mm512_set1_epi32(shift),
        );
        let x = _mm512_loadu_si512(xs.as_ptr() as *const __m512i);
        _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, x86_512::mbqm(x, &c, true));
        if shift <= 0 {
            let mut got2 = [0i32; 16];
            _mm512_storeu_si512(
                got2.as_mut_ptr() as *mut __m512i,
                x86_512::mbqm(x, &c, false),
            );
            assert_eq!(got, got2);
        }
    }
    for l in 0..16 {
        assert_eq!(
            got[l],
            scalar(xs[l], ms[l], shift),
            "x={} m={} shift={shift}",
            xs[l],
            ms[l]
        );
    }
}

#[cfg(all(test, target_arch = "aarch64", feature = "std"))]
mod neon_tests {
    use super::*;
    use crate::reference::multiply_by_quantized_multiplier as scalar;
    use core::arch::aarch64::*;

    fn lanes(v: int32x4_t) -> [i32; 4] {
        let mut out = [0i32; 4];
        // SAFETY: NEON is baseline on AArch64; out holds 4 i32.
        unsafe { vst1q_s32(out.as_mut_ptr(), v) };
        out
    }

    fn vec4(x: &[i32; 4]) -> int32x4_t {
        // SAFETY: NEON is baseline on AArch64; x holds 4 i32.
        unsafe { vld1q_s32(x.as_ptr()) }
    }

    /// Extreme values, every power of two and its neighbours, and pseudo-random values of
    /// every magnitude.
    fn inputs() -> std::vec::Vec<i32> {
        let mut xs = std::vec![0, 1, -1, 2, -2, 3, -3, i32::MAX, i32::MIN, i32::MAX - 1];
        xs.extend([i32::MIN + 1, 12345, -12345, 0x4000_0001, -0x4000_0001]);
        for b in 0..31 {
            for d in [-1, 0, 1] {
                xs.push((1i32 << b).wrapping_add(d));
                xs.push((-(1i32 << b)).wrapping_add(d));
            }
        }
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            xs.push(seed as i32 >> (seed >> 59));
        }
        xs
    }

    const MULTS: [i32; 11] = [
        0,
        1,
        -1,
        i32::MAX,
        i32::MIN,
        i32::MIN + 1,
        1 << 30,
        (1 << 30) + 1,
        1_077_952_569,
        -1_610_612_736,
        2_000_000_000,
    ];

    /// The NEON MultiplyByQuantizedMultiplier agrees with the scalar reference in every lane
    /// over extreme and random inputs, all shifts −31..=30 and edge multipliers; with one
    /// multiplier and shift for all lanes and with different ones per lane; and without the
    /// left-shift step where no shift is positive.
    #[test]
    fn mbqm_lane_by_lane() {
        let xs = inputs();
        for &m in &MULTS {
            for shift in -31..=30 {
                let uniform = neon::consts(vec4(&[m; 4]), vec4(&[shift; 4]));
                // Per lane: neighbouring multipliers and shifts spread over −31..=30.
                let ms: [i32; 4] = core::array::from_fn(|l| m.wrapping_add(l as i32));
                let ss: [i32; 4] = core::array::from_fn(|l| (shift + 31 + 17 * l as i32) % 62 - 31);
                let mixed = neon::consts(vec4(&ms), vec4(&ss));
                for chunk in xs.chunks(4) {
                    let mut x = [0i32; 4];
                    x[..chunk.len()].copy_from_slice(chunk);
                    let got = lanes(neon::mbqm(vec4(&x), &uniform, true));
                    for l in 0..4 {
                        assert_eq!(
                            got[l],
                            scalar(x[l], m, shift),
                            "x={} m={m} shift={shift}",
                            x[l]
                        );
                    }
                    if shift <= 0 {
                        assert_eq!(lanes(neon::mbqm(vec4(&x), &uniform, false)), got);
                    }
                    let got = lanes(neon::mbqm(vec4(&x), &mixed, true));
                    for l in 0..4 {
                        assert_eq!(
                            got[l],
                            scalar(x[l], ms[l], ss[l]),
                            "x={} m={} shift={}",
                            x[l],
                            ms[l],
                            ss[l]
                        );
                    }
                }
            }
        }
    }

    /// The case a plain `srshl` gets wrong: negative values exactly halfway between two
    /// results must round away from zero (−2.5 → −3), positive ones too (2.5 → 3). With
    /// multiplier i32::MAX the doubling high multiply returns small x unchanged, so x is
    /// the value divided by 2^e.
    #[test]
    fn mbqm_ties_round_away_from_zero() {
        for e in 1..=31 {
            let c = neon::consts(vec4(&[i32::MAX; 4]), vec4(&[-e; 4]));
            for j in 0..64i64 {
                let tie = ((2 * j + 1) << (e - 1)).min(i32::MAX as i64) as i32;
                let x = [tie, -tie, tie.wrapping_add(1), -tie - 1];
                let got = lanes(neon::mbqm(vec4(&x), &c, false));
                for l in 0..4 {
                    assert_eq!(got[l], scalar(x[l], i32::MAX, -e), "x={} e={e}", x[l]);
                }
                if e <= 20 && j < 8 {
                    // Away from zero: |result| = j + 1.
                    assert_eq!(got[0], j as i32 + 1, "x={} e={e}", x[0]);
                    assert_eq!(got[1], -(j as i32) - 1, "x={} e={e}", x[1]);
                }
            }
        }
    }

    /// The whole NEON output stage against the scalar one: tile widths 1..=19 (full and
    /// partial blocks of 8), unit and strided output columns, per tensor and per channel,
    /// clamps, signed and unsigned outputs.
    #[test]
    fn requantize_neon_matches_scalar() {
        let mut seed = 0x0bad_cafe_1234_5678u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (h, ts) = (3usize, 24usize);
        for w in 1..=19usize {
            for case in 0..8 {
                let tile: std::vec::Vec<i32> = (0..h * ts)
                    .map(|_| next() as i32 >> (next() % 24))
                    .collect();
                let col0 = 5;
                let mults: std::vec::Vec<i32> = (0..col0 + w)
                    .map(|i| MULTS[(next() as usize + i) % MULTS.len()])
                    .collect();
                let shifts: std::vec::Vec<i32> = (0..col0 + w)
                    .map(|_| (next() % 40) as i32 - 31 + 2 * (case & 1))
                    .collect();
                let per_channel = case & 2 != 0;
                let (lo, hi, zp) = if case & 4 != 0 {
                    (0, 255, 3)
                } else {
                    (-100, 127, -7)
                };
                let plan = test_plan(&mults, &shifts, per_channel, zp, lo, hi, false);
                for out_cs in [1isize, 3] {
                    let out_rs = 64isize;
                    let mut want = std::vec![0xAAu8; 64 * h];
                    let mut got = want.clone();
                    // SAFETY: h×w values of the tile (row stride ts ≥ w); outputs inside the
                    // 64·h-byte buffers (j·out_cs < 64); slices cover col0..col0 + w.
                    unsafe {
                        requantize_scalar(
                            tile.as_ptr(),
                            ts,
                            h,
                            w,
                            &plan,
                            col0,
                            want.as_mut_ptr(),
                            out_rs,
                            out_cs,
                        );
                        requantize_neon(
                            tile.as_ptr(),
                            ts,
                            h,
                            w,
                            &plan,
                            col0,
                            got.as_mut_ptr(),
                            out_rs,
                            out_cs,
                        );
                    }
                    assert_eq!(got, want, "w={w} case={case} out_cs={out_cs}");
                }
            }
        }
    }
}

/// `requantize_row` (the default kernel's output stage, whatever this CPU runs) against
/// `RqPlan::one` on every lane: per tensor and per channel with a column offset, lengths
/// around the vector widths, accumulators across the i32 range.
#[cfg(all(test, feature = "std"))]
mod row_tests {
    use super::{requantize_row, Mults, RqPlan};
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn requantize_row_matches_the_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [0usize, 1, 7, 15, 16, 17, 33, 64, 100] {
            let col0 = 3;
            let mults: Vec<i32> = (0..col0 + len)
                .map(|_| (1 << 30) + (next() % (1 << 30)) as i32)
                .collect();
            let shifts: Vec<i32> = (0..col0 + len).map(|_| (next() % 20) as i32 - 14).collect();
            let acc: Vec<i32> = (0..len)
                .map(|i| match i % 4 {
                    0 => next() as i32,
                    1 => (next() % 2000) as i32 - 1000,
                    2 => i32::MIN + (next() % 3) as i32,
                    _ => i32::MAX - (next() % 3) as i32,
                })
                .collect();
            for per_channel in [false, true] {
                let mults = if per_channel {
                    Mults::PerChannel {
                        multipliers: &mults,
                        shifts: &shifts,
                    }
                } else {
                    Mults::PerTensor {
                        multiplier: mults[0],
                        shift: shifts[0],
                    }
                };
                let plan = RqPlan {
                    mults,
                    out_zp: -5,
                    lo: -128,
                    hi: 100,
                    no_left_shift: false,
                    zp_fits: false,
                    right_shift_only: false,
                    mults_nonneg: true,
                    acc_small: false,
                };
                let mut out = std::vec![0u8; len];
                assert!(requantize_row(&acc, &plan, col0, &mut out));
                for (j, (&o, &a)) in out.iter().zip(&acc).enumerate() {
                    assert_eq!(o as i8 as i32, plan.one(a, col0 + j), "len {len} lane {j}");
                }
                // Per-channel scales that do not cover the row: nothing written.
                if per_channel && len > 0 {
                    assert!(!requantize_row(&acc, &plan, col0 + 1, &mut out));
                }
            }
        }
    }
}

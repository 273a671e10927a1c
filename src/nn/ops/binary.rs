//! The element-wise binary family: ADD, SUB, MUL, MAXIMUM, MINIMUM, int8 and f32, with
//! TFLite's broadcasting of both inputs (up to 6-D, [`super::broadcast`]) and fused
//! activations.
//!
//! Arithmetic, per element, as the BUILTIN_REF kernels do it:
//! - int8 ADD / SUB (`reference_integer_ops::AddFunc`, `reference_ops::SubElementwise` /
//!   `BroadcastQuantSubSlow`): each input `(q + offset) << left_shift` (left_shift 20) scaled
//!   by its multiplier (`MultiplyByQuantizedMultiplierSmallerThanOneExp`), summed (or
//!   subtracted), scaled by the output multiplier, plus the output zero point, clamped; the
//!   multipliers are `Prepare`'s (`s_k / (2·max(s1, s2))` and
//!   `2·max(s1, s2) / (2^20·s_out)`). On large tensors each input's rescaling (a function
//!   of its 8-bit value) is tabulated first, leaving one rescaling per element. Without
//!   broadcasting, AVX-512 computes 16 elements at a time in registers; with VBMI too, large
//!   tensors look both rescalings up in their tables as four byte planes (`vpermi2b`, 64
//!   elements at a time), leaving the output stage in registers.
//! - int8 MUL (`reference_integer_ops::MulElementwise` / `BroadcastMul6DSlow`):
//!   `MultiplyByQuantizedMultiplier((q1 − z1)·(q2 − z2))` by `s1·s2/s_out` (computed in f32
//!   as `Prepare` does), plus the output zero point, clamped.
//! - MAXIMUM / MINIMUM (`MaximumMinimumBroadcastSlow`): `a > b ? a : b` / `a < b ? a : b` on
//!   the stored values (TFLite does not rescale: the converter gives inputs and output one
//!   scale).
//! - f32: `a ∘ b` then `min(max(·, lo), hi)` for the fused activation, as C++ evaluates it.
//!
//! Blob form. Inputs: a, b (arena or constant; any shapes that broadcast to the output's).
//! One output (same element type). No scratch. Parameters: f32 ADD/SUB/MUL: clamp low and
//! high as f32 bits; int8 ADD/SUB: left shift, input 1 offset (−zero point), multiplier,
//! shift, input 2 offset, multiplier, shift, output multiplier, shift, output zero point,
//! clamp low, clamp high; int8 MUL: input 1 offset, input 2 offset, output multiplier,
//! shift, output zero point, clamp low, clamp high; MAXIMUM/MINIMUM: none.

use super::broadcast::{binary, Broadcast};
use super::checks;
use super::{cast, cast_mut, OpDef, OpMem};
use crate::error::Error;
use crate::nn::blob::OpView;
use crate::nn::dtype::DType;
use crate::quant::requant::{requantize_row, RqPlan};
use crate::quant::{Requantize, Scale};
use crate::reference::multiply_by_quantized_multiplier as mbqm;

const ADD: u16 = 0;
const MUL: u16 = 18;
const SUB: u16 = 41;
const MAXIMUM: u16 = 55;
const MINIMUM: u16 = 57;

pub(crate) const DEF: OpDef = OpDef {
    code: ADD,
    name: "ADD",
    in_place: false,
    macs: super::no_macs,
    check,
    run,
    #[cfg(feature = "alloc")]
    lower: lower::lower,
};

pub(crate) const SUB_DEF: OpDef = OpDef {
    code: SUB,
    name: "SUB",
    ..DEF
};

pub(crate) const MUL_DEF: OpDef = OpDef {
    code: MUL,
    name: "MUL",
    ..DEF
};

pub(crate) const MAXIMUM_DEF: OpDef = OpDef {
    code: MAXIMUM,
    name: "MAXIMUM",
    ..DEF
};

pub(crate) const MINIMUM_DEF: OpDef = OpDef {
    code: MINIMUM,
    name: "MINIMUM",
    ..DEF
};

/// Parameter words for an operator code and element type.
fn num_params(code: u16, dtype: DType) -> usize {
    match (code, dtype) {
        (MAXIMUM | MINIMUM, _) => 0,
        (_, DType::F32) => 2,
        (ADD | SUB, _) => 12,
        _ => 7,
    }
}

// int8 ADD/SUB parameters.
const P_LEFT_SHIFT: usize = 0;
const P_OFF1: usize = 1;
const P_MULT1: usize = 2;
const P_SHIFT1: usize = 3;
const P_OFF2: usize = 4;
const P_MULT2: usize = 5;
const P_SHIFT2: usize = 6;
const P_MULT_OUT: usize = 7;
const P_SHIFT_OUT: usize = 8;
const P_ZERO_OUT: usize = 9;
const P_LO: usize = 10;
const P_HI: usize = 11;
// int8 MUL parameters.
const M_OFF1: usize = 0;
const M_OFF2: usize = 1;
const M_MULT: usize = 2;
const M_SHIFT: usize = 3;
const M_ZERO_OUT: usize = 4;
const M_LO: usize = 5;
const M_HI: usize = 6;
// f32 parameters.
const F_LO: usize = 0;
/// Entries of a table over the 8-bit values.
const TABLE_ELEMS: usize = 256;
const F_HI: usize = 1;

/// The broadcast plan of the operator's tensors (`None` when they do not broadcast). Made
/// on every run: the records without their names (checking a name's UTF-8 each time cost
/// ResNet-8's three ADDs about half a microsecond a run).
fn plan(op: &OpView) -> Option<Broadcast<2>> {
    let t = |i: Option<usize>| i.and_then(|t| op.model().tensor_unnamed(t));
    let (a, b, y) = (t(op.input(0))?, t(op.input(1))?, t(op.output(0))?);
    Broadcast::from_shapes(y.shape(), [a.shape(), b.shape()])
}

fn check(op: &OpView) -> Result<(), Error> {
    let y = checks::output(op, 0)?;
    if y.dtype != DType::F32 && y.dtype != DType::I8 {
        return Err(op.error("only int8 and float32 are supported"));
    }
    checks::counts(op, 2, 1, 0, num_params(op.code, y.dtype))?;
    let (a, b) = (checks::input(op, 0)?, checks::input(op, 1)?);
    checks::dtype(op, &a, y.dtype)?;
    checks::dtype(op, &b, y.dtype)?;
    let plan =
        plan(op).ok_or_else(|| op.error("the input shapes do not broadcast to the output's"))?;
    let size = y.dtype.size();
    let [na, nb] = plan.input_elems();
    let fits = |t: &crate::nn::blob::TensorInfo, n: usize| n.checked_mul(size) == Some(t.bytes);
    if !fits(&a, na) || !fits(&b, nb) || !fits(&y, plan.out_elems()) {
        return Err(op.error("a tensor's size does not match its shape"));
    }
    if y.dtype == DType::I8 {
        let p = |i| op.param(i);
        let int8 = |v: i32| (-128..=127).contains(&v);
        let offset = |v: i32| (-127..=128).contains(&v);
        let shift = |v: i32| (-31..=30).contains(&v);
        let ok = match op.code {
            ADD | SUB => {
                (0..=20).contains(&p(P_LEFT_SHIFT))
                    && offset(p(P_OFF1))
                    && offset(p(P_OFF2))
                    && shift(p(P_SHIFT1))
                    && shift(p(P_SHIFT2))
                    && shift(p(P_SHIFT_OUT))
                    && int8(p(P_ZERO_OUT))
                    && int8(p(P_LO))
                    && int8(p(P_HI))
                    && p(P_LO) <= p(P_HI)
            }
            MUL => {
                offset(p(M_OFF1))
                    && offset(p(M_OFF2))
                    && shift(p(M_SHIFT))
                    && int8(p(M_ZERO_OUT))
                    && int8(p(M_LO))
                    && int8(p(M_HI))
                    && p(M_LO) <= p(M_HI)
            }
            _ => true,
        };
        if !ok {
            return Err(op.error("a quantization parameter is out of range"));
        }
    }
    Ok(())
}

/// `std::min(std::max(v, lo), hi)` as C++ evaluates it (NaN passes through).
#[inline(always)]
fn clamp_f(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v {
        hi
    } else {
        v
    }
}

fn run(op: &OpView, mem: &mut OpMem) -> Result<(), Error> {
    let missing = || op.error("missing tensor");
    let plan = plan(op).ok_or_else(missing)?;
    let (ta, tb) = (
        op.input(0).ok_or_else(missing)?,
        op.input(1).ok_or_else(missing)?,
    );
    let ty = op.output(0).ok_or_else(missing)?;
    let float = op.model().dtype(ty).ok_or_else(missing)? == DType::F32;
    let (a, b) = (mem.input(ta)?, mem.input(tb)?);
    let y = mem.output(ty)?;
    let short = |()| op.error("a tensor is smaller than its shape");
    if float {
        let (a, b, y) = (cast::<f32>(a), cast::<f32>(b), cast_mut::<f32>(y));
        let lo = f32::from_bits(op.param(F_LO) as u32);
        let hi = f32::from_bits(op.param(F_HI) as u32);
        return match op.code {
            ADD => binary(&plan, a, b, y, |x, z| clamp_f(x + z, lo, hi)),
            SUB => binary(&plan, a, b, y, |x, z| clamp_f(x - z, lo, hi)),
            MUL => binary(&plan, a, b, y, |x, z| clamp_f(x * z, lo, hi)),
            MAXIMUM => binary(&plan, a, b, y, |x, z| if x > z { x } else { z }),
            _ => binary(&plan, a, b, y, |x, z| if x < z { x } else { z }),
        }
        .map_err(short);
    }
    let (a, b) = (cast::<i8>(a), cast::<i8>(b));
    let p = |i| op.param(i);
    match op.code {
        ADD | SUB => {
            let ls = p(P_LEFT_SHIFT);
            let (o1, m1, s1) = (p(P_OFF1), p(P_MULT1), p(P_SHIFT1));
            let (o2, m2, s2) = (p(P_OFF2), p(P_MULT2), p(P_SHIFT2));
            let (mo, so, zo) = (p(P_MULT_OUT), p(P_SHIFT_OUT), p(P_ZERO_OUT));
            let (lo, hi) = (p(P_LO), p(P_HI));
            let scale1 = move |x: i8| mbqm((i32::from(x) + o1) << ls, m1, s1);
            let scale2 = move |x: i8| mbqm((i32::from(x) + o2) << ls, m2, s2);
            let sub = op.code == SUB;
            let raw = move |x: i32, z: i32| {
                if sub {
                    x.wrapping_sub(z)
                } else {
                    x.wrapping_add(z)
                }
            };
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            if plan.input_elems() == [plan.out_elems(); 2] && avx512::available() {
                // No broadcasting: the inputs and the output are the same flat sequence.
                let p = AddSub {
                    ls,
                    o1,
                    m1,
                    s1,
                    o2,
                    m2,
                    s2,
                    mo,
                    so,
                    zo,
                    lo,
                    hi,
                    sub,
                };
                let n = plan.out_elems();
                let y = cast_mut::<i8>(y).get_mut(..n).ok_or(()).map_err(short)?;
                // SAFETY: the CPU has AVX-512F/BW (checked).
                return unsafe { avx512::add_sub(&p, a, b, y) }.map_err(short);
            }
            let rq = output_stage(mo, so, zo, lo, hi);
            if plan.out_elems() > 2 * TABLE_ELEMS {
                // Each input's rescaling depends on its 8-bit value alone: tabulate it once
                // (the same function, so the same bits) and leave one rescaling per element.
                let (mut t1, mut t2) = ([0i32; TABLE_ELEMS], [0i32; TABLE_ELEMS]);
                for q in i8::MIN..=i8::MAX {
                    t1[usize::from(q as u8)] = scale1(q);
                    t2[usize::from(q as u8)] = scale2(q);
                }
                let raw = |x: i8, z: i8| raw(t1[usize::from(x as u8)], t2[usize::from(z as u8)]);
                requantized(&plan, a, b, y, &rq, raw)
            } else {
                requantized(&plan, a, b, y, &rq, |x, z| raw(scale1(x), scale2(z)))
            }
        }
        MUL => {
            let (o1, o2) = (p(M_OFF1), p(M_OFF2));
            let rq = output_stage(p(M_MULT), p(M_SHIFT), p(M_ZERO_OUT), p(M_LO), p(M_HI));
            requantized(&plan, a, b, y, &rq, |x, z| {
                (i32::from(x) + o1) * (i32::from(z) + o2)
            })
        }
        MAXIMUM => binary(
            &plan,
            a,
            b,
            cast_mut::<i8>(y),
            |x, z| if x > z { x } else { z },
        ),
        _ => binary(
            &plan,
            a,
            b,
            cast_mut::<i8>(y),
            |x, z| if x < z { x } else { z },
        ),
    }
    .map_err(short)
}

/// An int8 ADD or SUB without broadcasting, its parameter words as [`run`] reads them.
#[cfg_attr(
    not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)),
    allow(dead_code)
)]
struct AddSub {
    ls: i32,
    o1: i32,
    m1: i32,
    s1: i32,
    o2: i32,
    m2: i32,
    s2: i32,
    mo: i32,
    so: i32,
    zo: i32,
    lo: i32,
    hi: i32,
    sub: bool,
}

#[cfg_attr(
    not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)),
    allow(dead_code)
)]
impl AddSub {
    /// One output, as `run`'s per-element path computes it (TFLite's `AddFunc`).
    fn one(&self, x: i8, z: i8) -> i8 {
        let s1 = mbqm((i32::from(x) + self.o1) << self.ls, self.m1, self.s1);
        let s2 = mbqm((i32::from(z) + self.o2) << self.ls, self.m2, self.s2);
        let raw = if self.sub {
            s1.wrapping_sub(s2)
        } else {
            s1.wrapping_add(s2)
        };
        mbqm(raw, self.mo, self.so)
            .wrapping_add(self.zo)
            .max(self.lo)
            .min(self.hi) as i8
    }
}

/// int8 ADD/SUB on 16 elements at a time: both rescalings, the sum and the output stage
/// in registers with the output stage's AVX-512 `MultiplyByQuantizedMultiplier` (checked
/// lane by lane against the reference in `quant::requant`), instead of a table lookup per
/// input element and a second pass.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
mod avx512 {
    use super::AddSub;
    use crate::arch::{cpu_info, Features};
    use crate::quant::requant::x86_512::{consts, mbqm, mbqm_small, Consts};
    use core::arch::x86_64::*;

    pub(super) fn available() -> bool {
        cpu_info()
            .features
            .contains(Features::AVX512F.with(Features::AVX512BW))
    }

    /// `y[i] = p.one(a[i], b[i])` for every i < y.len(); `Err(())` (nothing written) when
    /// `a` or `b` is shorter than `y`.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn add_sub(p: &AddSub, a: &[i8], b: &[i8], y: &mut [i8]) -> Result<(), ()> {
        let n = y.len();
        if a.len() < n || b.len() < n {
            return Err(());
        }
        let set = _mm512_set1_epi32;
        let (c1, c2, co) = (
            consts(set(p.m1), set(p.s1)),
            consts(set(p.m2), set(p.s2)),
            consts(set(p.mo), set(p.so)),
        );
        let (off1, off2, ls) = (set(p.o1), set(p.o2), set(p.ls));
        let (zo, lo, hi) = (set(p.zo), set(p.lo), set(p.hi));
        let mut i = 0;
        if n >= TABLES_FROM && vbmi() {
            // Built in place: the tables are 2 KiB.
            let (mut t1, mut t2) = (Planes::ZERO, Planes::ZERO);
            if split_tables(p, &mut t1, &mut t2) {
                i = n / 64 * 64;
                // SAFETY: the CPU has AVX-512VBMI (checked); a, b and y hold n ≥ i elements
                // (checked above).
                unsafe { split_sum(p, &t1, &t2, a, b, y, i) };
            }
        }
        // The older tables bound each rescaled value by 2^28 (a left shift of at most 20).
        let small = p.ls <= 20 && p.s1 <= 0 && p.s2 <= 0;
        if i == 0 && n >= TABLES_FROM && small && p.so <= 0 && vbmi() {
            let scale = |q: __m512i, off, c| {
                mbqm(_mm512_sllv_epi32(_mm512_add_epi32(q, off), ls), c, false)
            };
            let (mut t1, mut t2) = (Planes::ZERO, Planes::ZERO);
            t1.fill(|q| scale(q, off1, &c1));
            t2.fill(|q| scale(q, off2, &c2));
            i = n / 64 * 64;
            // SAFETY: the CPU has AVX-512VBMI (checked); a and b hold n ≥ i elements
            // (checked above), y n; the shifts are not positive (checked).
            unsafe {
                let (a, b, y) = (a.as_ptr(), b.as_ptr(), y.as_mut_ptr());
                if p.sub {
                    tabulated::<true>(p, &t1, &t2, &co, a, b, y, i)
                } else {
                    tabulated::<false>(p, &t1, &t2, &co, a, b, y, i)
                }
            };
        }
        while i + 16 <= n {
            // SAFETY: elements i..i + 16 lie inside a, b and y (i + 16 ≤ n, checked above).
            unsafe {
                let load = |s: &[i8]| {
                    _mm512_cvtepi8_epi32(_mm_loadu_si128(s.as_ptr().add(i) as *const __m128i))
                };
                let x1 = _mm512_sllv_epi32(_mm512_add_epi32(load(a), off1), ls);
                let x2 = _mm512_sllv_epi32(_mm512_add_epi32(load(b), off2), ls);
                let (s1, s2) = (mbqm(x1, &c1, p.s1 > 0), mbqm(x2, &c2, p.s2 > 0));
                let raw = if p.sub {
                    _mm512_sub_epi32(s1, s2)
                } else {
                    _mm512_add_epi32(s1, s2)
                };
                let v = _mm512_add_epi32(mbqm(raw, &co, p.so > 0), zo);
                let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                // In the i8 range after the clamp: truncating keeps the value.
                _mm_storeu_si128(
                    y.as_mut_ptr().add(i) as *mut __m128i,
                    _mm512_cvtepi32_epi8(v),
                );
            }
            i += 16;
        }
        for ((y, &x), &z) in y[i..].iter_mut().zip(&a[i..n]).zip(&b[i..n]) {
            *y = p.one(x, z);
        }
        Ok(())
    }

    /// Elements from which [`add_sub`] tabulates the inputs' rescalings (building the
    /// tables costs about as much as 512 elements the direct way).
    const TABLES_FROM: usize = 2048;

    /// Fills the two tables of [`split_sum`]; false (tables unspecified) where its form
    /// does not apply: it needs an output shift in −31..=−16, a multiplier ≥ 0, every `q`
    /// below 2^14 in magnitude and a sum of rescaled values that cannot wrap (the
    /// reference's i32).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn split_tables(p: &AddSub, t1: &mut Planes, t2: &mut Planes) -> bool {
        if !(-31..=-16).contains(&p.so) || p.mo < 0 {
            return false;
        }
        let set = _mm512_set1_epi32;
        let ls = set(p.ls);
        let scale = |q, o, m, s: i32| {
            let x = _mm512_sllv_epi32(_mm512_add_epi32(q, set(o)), ls);
            mbqm(x, &consts(set(m), set(s)), s > 0)
        };
        let e = -p.so as u32;
        let r1 = split_table(
            t1,
            |q| scale(q, p.o1, p.m1, p.s1),
            p.mo,
            false,
            e,
            Some(p.zo),
        );
        let r2 = split_table(t2, |q| scale(q, p.o2, p.m2, p.s2), p.mo, p.sub, e, None);
        let (Some(r1), Some(r2)) = (r1, r2) else {
            return false;
        };
        let (lo, hi) = (r1.0 + r2.0, r1.1 + r2.1);
        lo >= i64::from(i32::MIN) && hi <= i64::from(i32::MAX)
    }

    /// One input's table for [`split_sum`]. The output stage of a sum `R = T1 + T2` of
    /// rescaled inputs with a right shift `e` in 16..=31 and a multiplier `m ≥ 0` is, with
    /// `P = 31 + e`, `floor((R·m + 2^30 + h·2^31) / 2^P)` where `h = 2^(e−1) − [R·m < −2^30]`
    /// (SRDHM is `floor((R·m + 2^30) / 2^31)`, RoundingDivideByPOT adds `h` and floors by
    /// `2^e`, and nested floors by powers of two merge). `R·m` is `T1·m + T2·m`, so with
    /// `A = T1·m + 2^30 + 2^(P−1)` and `B = T2·m`, each split as `2^P·q + f` (`0 ≤ f < 2^P`):
    /// the output is `q_A + q_B + [f_A + f_B ≥ 2^P]`, minus one where `R·m < −2^30` and
    /// `(f_A + f_B) mod 2^P < 2^31`. With `g = f >> (P − 16)` (16 bits, and `P − 16 ≥ 31`):
    /// unless `s = (g_A + g_B) mod 2^16` is `0xFFFF`, the carry is `g_A + g_B ≥ 2^16`; unless
    /// `s` is 0 or `0xFFFF`, `(f_A + f_B) mod 2^P ≥ 2^(P−16) ≥ 2^31` and the correction is
    /// zero. Those two values of `s` are left to the per-element form.
    ///
    /// Each entry holds `q` (i16; plus the output zero point in the first table) in planes
    /// 0–1 and `g` in planes 2–3: this fills `planes` with the table of `t` (the rescaled
    /// value of sixteen input values, as [`Planes::fill`] passes them) with multiplier
    /// `m` ≥ 0 (`neg`: the term is subtracted) and right shift `e` in 16..=31; `first`:
    /// the table holding the constant terms, with this zero point. Returns the least and
    /// greatest term (the rescaled value, negated when subtracted), or `None` when some `q`
    /// is 2^14 or more in magnitude (the i16 sum of two plus a carry could wrap).
    #[target_feature(enable = "avx512f,avx512bw")]
    fn split_table(
        planes: &mut Planes,
        t: impl Fn(__m512i) -> __m512i,
        m: i32,
        neg: bool,
        e: u32,
        first: Option<i32>,
    ) -> Option<(i64, i64)> {
        let m = if neg { -m } else { m };
        let p = 31 + e;
        // The first table carries the constant terms: the nudges and the zero point.
        let bias = first.map_or(0, |_| (1i64 << 30) + (1i64 << (p - 1)));
        let zo = i64::from(first.unwrap_or(0));
        let (bv, mv, zv) = (
            _mm512_set1_epi64(bias),
            _mm512_set1_epi64(i64::from(m)),
            _mm512_set1_epi64(zo),
        );
        let (mut t_lo, mut t_hi) = (_mm512_set1_epi32(i32::MAX), _mm512_set1_epi32(i32::MIN));
        // One 64-bit lane of products: its word (q | g << 16) in the low 32 bits.
        let word = |v: __m512i| {
            let a = _mm512_add_epi64(_mm512_mul_epi32(v, mv), bv);
            let q = _mm512_add_epi64(_mm512_srav_epi64(a, _mm512_set1_epi64(i64::from(p))), zv);
            let g = _mm512_srlv_epi64(a, _mm512_set1_epi64(i64::from(p - 16)));
            _mm512_or_si512(
                _mm512_and_si512(q, _mm512_set1_epi64(0xFFFF)),
                _mm512_slli_epi64::<16>(g),
            )
        };
        planes.fill(|q| {
            let v = t(q);
            (t_lo, t_hi) = (_mm512_min_epi32(t_lo, v), _mm512_max_epi32(t_hi, v));
            let even = word(v);
            let odd = word(_mm512_srli_epi64::<32>(v));
            _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
        });
        let t_lo = i64::from(_mm512_reduce_min_epi32(t_lo));
        let t_hi = i64::from(_mm512_reduce_max_epi32(t_hi));
        // q is monotonic in the rescaled value: its ends bound it (|t·m| < 2^62 and
        // bias < 2^62: no i64 overflow).
        let q = |t: i64| ((t * i64::from(m) + bias) >> p) + zo;
        // Two of at most 2^14 − 1 in magnitude plus a carry stay inside i16.
        let fits = [q(t_lo), q(t_hi)].iter().all(|q| q.abs() < 1 << 14);
        let range = if neg { (-t_hi, -t_lo) } else { (t_lo, t_hi) };
        fits.then_some(range)
    }

    /// Elements `0..end` (a multiple of 64) of [`add_sub`] in [`split_table`]'s form: 16-bit
    /// lanes, the two values of `s` it leaves redone per element.
    ///
    /// # Safety
    /// AVX-512F/BW/VBMI; `a`, `b` and `y` hold at least `end` elements.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn split_sum(
        p: &AddSub,
        t1: &Planes,
        t2: &Planes,
        a: &[i8],
        b: &[i8],
        y: &mut [i8],
        end: usize,
    ) {
        let (lo, hi) = (_mm512_set1_epi8(p.lo as i8), _mm512_set1_epi8(p.hi as i8));
        let one = _mm512_set1_epi16(1);
        for i in (0..end).step_by(64) {
            // SAFETY: elements i..i + 64 ≤ end of a, b and y (caller).
            let (qa, qb) = unsafe {
                (
                    _mm512_loadu_si512(a.as_ptr().add(i) as *const _),
                    _mm512_loadu_si512(b.as_ptr().add(i) as *const _),
                )
            };
            let (x, z) = (t1.look_up(qa), t2.look_up(qb));
            // Per 128-bit lane, the low halves hold elements 0–7, the high ones 8–15 (the
            // order the saturating pack restores).
            let half = |w: fn(__m512i, __m512i) -> __m512i| {
                let (g1, g2) = (w(x[2], x[3]), w(z[2], z[3]));
                let s = _mm512_add_epi16(g1, g2);
                let carry = _mm512_cmplt_epu16_mask(s, g1);
                let v = _mm512_add_epi16(w(x[0], x[1]), w(z[0], z[1]));
                let v = _mm512_mask_add_epi16(v, carry, v, one);
                // s + 1 ≤ 1 (unsigned): s is 0xFFFF or 0.
                let redo = _mm512_cmple_epu16_mask(_mm512_add_epi16(s, one), one);
                (v, redo)
            };
            let (v0, redo0) = half(|l, h| _mm512_unpacklo_epi8(l, h));
            let (v1, redo1) = half(|l, h| _mm512_unpackhi_epi8(l, h));
            let r = _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(v0, v1), lo), hi);
            // SAFETY: see above.
            unsafe { _mm512_storeu_si512(y.as_mut_ptr().add(i) as *mut _, r) };
            for (h, mut redo) in [(0, redo0), (8, redo1)] {
                while redo != 0 {
                    // Word w of a half: 128-bit lane w / 8, element 16·(w / 8) + h + w % 8.
                    let w = redo.trailing_zeros() as usize;
                    let k = i + 16 * (w / 8) + h + w % 8;
                    y[k] = p.one(a[k], b[k]);
                    redo &= redo - 1;
                }
            }
        }
    }

    fn vbmi() -> bool {
        cpu_info().features.contains(Features::AVX512VBMI)
    }

    /// A function of an int8 value tabulated as four byte planes: `b[p][q as u8]` is byte p
    /// (little end first) of its i32 value at q, each plane four 64-byte vectors, so
    /// `vpermi2b` looks 64 values up at once.
    #[repr(C, align(64))]
    pub(super) struct Planes([[u8; 256]; 4]);

    impl Planes {
        pub(super) const ZERO: Planes = Planes([[0; 256]; 4]);

        /// Fills in the table of `f` (sixteen lanes of values at a time, each lane's i32 in
        /// −128..=127).
        #[target_feature(enable = "avx512f,avx512bw")]
        fn fill(&mut self, mut f: impl FnMut(__m512i) -> __m512i) {
            let t = self;
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for c in 0..16 {
                // Indices 16c.. as u8, their values as i8.
                let idx = _mm512_add_epi32(lanes, _mm512_set1_epi32(16 * c as i32));
                let q = _mm512_srai_epi32::<24>(_mm512_slli_epi32::<24>(idx));
                let v = f(q);
                for (p, plane) in t.0.iter_mut().enumerate() {
                    let bytes =
                        _mm512_cvtepi32_epi8(_mm512_srlv_epi32(v, _mm512_set1_epi32(8 * p as i32)));
                    // SAFETY: 16 bytes at 16c of a 256-byte plane.
                    unsafe {
                        _mm_storeu_si128(plane.as_mut_ptr().add(16 * c) as *mut __m128i, bytes)
                    };
                }
            }
        }

        /// The four planes' bytes at the 64 indices `q` (as u8).
        #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
        #[inline]
        fn look_up(&self, q: __m512i) -> [__m512i; 4] {
            // Indices 128..: the second half of a plane (vpermi2b reads seven index bits).
            let high = _mm512_movepi8_mask(q);
            core::array::from_fn(|p| {
                // SAFETY: four 64-byte vectors inside the 256-byte plane.
                let v = |h: usize| unsafe {
                    _mm512_load_si512(self.0[p].as_ptr().add(64 * h) as *const _)
                };
                let lo = _mm512_permutex2var_epi8(v(0), q, v(1));
                let hi = _mm512_permutex2var_epi8(v(2), q, v(3));
                _mm512_mask_blend_epi8(high, lo, hi)
            })
        }
    }

    /// The four byte planes of 64 values as their i32 values, four vectors in the order of
    /// `vpunpck` within each 128-bit lane (lane elements 0–3, 4–7, 8–11, 12–15): the order
    /// [`narrow`] undoes.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn widen(b: [__m512i; 4]) -> [__m512i; 4] {
        let (w01l, w01h) = (
            _mm512_unpacklo_epi8(b[0], b[1]),
            _mm512_unpackhi_epi8(b[0], b[1]),
        );
        let (w23l, w23h) = (
            _mm512_unpacklo_epi8(b[2], b[3]),
            _mm512_unpackhi_epi8(b[2], b[3]),
        );
        [
            _mm512_unpacklo_epi16(w01l, w23l),
            _mm512_unpackhi_epi16(w01l, w23l),
            _mm512_unpacklo_epi16(w01h, w23h),
            _mm512_unpackhi_epi16(w01h, w23h),
        ]
    }

    /// Four vectors in [`widen`]'s order, narrowed with signed saturation to 64 bytes in the
    /// original order (the packs interleave per 128-bit lane as the unpacks did).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn narrow(v: [__m512i; 4]) -> __m512i {
        _mm512_packs_epi16(
            _mm512_packs_epi32(v[0], v[1]),
            _mm512_packs_epi32(v[2], v[3]),
        )
    }

    /// Elements `0..end` (a multiple of 64) of [`add_sub`] (`SUB`: `p.sub`) with both rescalings looked up in
    /// tables (the same function of each 8-bit value, so the same bits) and the output stage
    /// in registers: no non-positive shift needs [`mbqm`]'s left shift, and the sum of two
    /// rescaled values (each at most 2^28 in magnitude: an offset input times 2^20, scaled by
    /// a multiplier below one) is below 2^30, so [`mbqm_small`] is exact.
    ///
    /// # Safety
    /// AVX-512F/BW/VBMI; `a`, `b` and `y` hold `end` elements; `p.so` ≤ 0.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tabulated<const SUB: bool>(
        p: &AddSub,
        t1: &Planes,
        t2: &Planes,
        co: &Consts,
        a: *const i8,
        b: *const i8,
        y: *mut i8,
        end: usize,
    ) {
        let zo = _mm512_set1_epi32(p.zo);
        let (lo, hi) = (_mm512_set1_epi8(p.lo as i8), _mm512_set1_epi8(p.hi as i8));
        for i in (0..end).step_by(64) {
            // SAFETY: elements i..i + 64 < end of a, b and y (caller).
            let (qa, qb) = unsafe {
                (
                    _mm512_loadu_si512(a.add(i) as *const _),
                    _mm512_loadu_si512(b.add(i) as *const _),
                )
            };
            let (x1, x2) = (widen(t1.look_up(qa)), widen(t2.look_up(qb)));
            let v: [__m512i; 4] = core::array::from_fn(|j| {
                let raw = if SUB {
                    _mm512_sub_epi32(x1[j], x2[j])
                } else {
                    _mm512_add_epi32(x1[j], x2[j])
                };
                _mm512_add_epi32(mbqm_small(raw, co), zo)
            });
            // The saturating narrowing, then the clamp (inside the int8 range): the same bytes
            // as clamping the i32 values.
            let r = _mm512_min_epi8(_mm512_max_epi8(narrow(v), lo), hi);
            // SAFETY: see above.
            unsafe { _mm512_storeu_si512(y.add(i) as *mut _, r) };
        }
    }
}

/// The int8 output stage of ADD, SUB and MUL: `MultiplyByQuantizedMultiplier(raw, m, s)`
/// plus the output zero point, clamped to `lo..=hi` (and the int8 range).
struct OutputStage {
    /// The validated plan for the shared vectorized output stage; `None` for parameters
    /// it does not take (a shift outside −31..=30: the per-element path then runs).
    plan: Option<RqPlan<'static>>,
    m: i32,
    s: i32,
    zo: i32,
    lo: i32,
    hi: i32,
}

fn output_stage(m: i32, s: i32, zo: i32, lo: i32, hi: i32) -> OutputStage {
    let plan = Requantize::new(
        Scale::PerTensor {
            multiplier: m,
            shift: s,
        },
        zo,
    )
    .with_clamp(lo, hi)
    .plan_i8(1)
    .ok();
    OutputStage {
        plan,
        m,
        s,
        zo,
        lo,
        hi,
    }
}

/// Accumulators per call of the output stage.
const CHUNK: usize = 256;

/// `y = stage(raw(a, b))` over a two-input broadcast: the raw i32 values of a row are
/// formed `CHUNK` at a time and requantized together by the crate's (vectorized) output
/// stage. `Err(())` when a slice is shorter than the plan says (checked at load).
fn requantized(
    plan: &Broadcast<2>,
    a: &[i8],
    b: &[i8],
    y: &mut [u8],
    stage: &OutputStage,
    raw: impl Fn(i8, i8) -> i32,
) -> Result<(), ()> {
    let Some(rq) = &stage.plan else {
        let (m, s, zo, lo, hi) = (stage.m, stage.s, stage.zo, stage.lo, stage.hi);
        return binary(plan, a, b, cast_mut::<i8>(y), |x, z| {
            mbqm(raw(x, z), m, s).wrapping_add(zo).max(lo).min(hi) as i8
        });
    };
    let mut acc = [0i32; CHUNK];
    plan.try_for_each_row(|r| {
        let o = y.get_mut(r.out..r.out + r.len).ok_or(())?;
        let span = |start: usize, step: usize| start..start + if step == 0 { 1 } else { r.len };
        let x = a.get(span(r.start[0], r.step[0])).ok_or(())?;
        let z = b.get(span(r.start[1], r.step[1])).ok_or(())?;
        for (c, o) in o.chunks_mut(CHUNK).enumerate() {
            let at = c * CHUNK;
            let acc = &mut acc[..o.len()];
            // A repeated input (step 0) is its one value for every element.
            let xs = x.get(at..).unwrap_or(&[]);
            let zs = z.get(at..).unwrap_or(&[]);
            match (r.step[0], r.step[1]) {
                (0, 0) => acc.fill(raw(x[0], z[0])),
                (0, _) => acc.iter_mut().zip(zs).for_each(|(v, &q)| *v = raw(x[0], q)),
                (_, 0) => acc.iter_mut().zip(xs).for_each(|(v, &q)| *v = raw(q, z[0])),
                _ => acc
                    .iter_mut()
                    .zip(xs.iter().zip(zs))
                    .for_each(|(v, (&p, &q))| *v = raw(p, q)),
            }
            if !requantize_row(acc, rq, 0, o) {
                return Err(());
            }
        }
        Ok(())
    })
}

#[cfg(feature = "alloc")]
mod lower {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::broadcast::Broadcast;
    use super::{ADD, MAXIMUM, MINIMUM, MUL, SUB};
    use crate::error::Error;
    use crate::nn::blob::MAX_RANK;
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{Activation, OpOptions, Tensor};
    use crate::nn::transform::lower::{activation_range_f, activation_range_q, Lowering};

    pub(crate) fn lower(l: &mut Lowering, node: usize) -> Result<(), Error> {
        let g = l.graph;
        let err = |r| g.node_error(node, r);
        let code = g.nodes[node].op.code() as u16;
        let act = match (&g.nodes[node].options, code) {
            (OpOptions::Add { activation, .. }, ADD)
            | (OpOptions::Sub { activation, .. }, SUB)
            | (OpOptions::Mul { activation }, MUL) => *activation,
            (_, MAXIMUM | MINIMUM) => Activation::None,
            _ => return Err(err("an arithmetic operator without its options")),
        };
        let (a, b) = (g.input(node, 0)?, g.input(node, 1)?);
        let y = &g.tensors[g.output_index(node, 0)?];
        if a.dtype != y.dtype || b.dtype != y.dtype {
            return Err(err("mixed input and output types are not supported"));
        }
        if y.shape.len() > MAX_RANK || a.shape.len() > MAX_RANK || b.shape.len() > MAX_RANK {
            return Err(err("more than 6 dimensions are not supported"));
        }
        Broadcast::new(&y.shape, [&a.shape, &b.shape])
            .ok_or_else(|| err("the input shapes do not broadcast to the output's"))?;
        let params: Vec<i32> = match y.dtype {
            DType::F32 if matches!(code, MAXIMUM | MINIMUM) => Vec::new(),
            DType::F32 => {
                let (lo, hi) = activation_range_f(act).map_err(err)?;
                vec![lo.to_bits() as i32, hi.to_bits() as i32]
            }
            DType::I8 => {
                let q = |t: &Tensor| match &t.quant {
                    Some(q) if q.per_channel() => {
                        Err(err("per-channel quantized activations are not supported"))
                    }
                    Some(q) => {
                        let (s, z) = q.first();
                        if !(-128..=127).contains(&z) {
                            return Err(err("a zero point outside int8 is not supported"));
                        }
                        Ok((s, z))
                    }
                    None => Err(err("a quantized tensor has no scale")),
                };
                let ((s1, z1), (s2, z2), (so, zo)) = (q(a)?, q(b)?, q(y)?);
                let range = || activation_range_q(act, so, zo, -128, 127).map_err(err);
                match code {
                    ADD | SUB => {
                        // add.cc / sub.cc Prepare: left shift 20 for 8-bit, scales in double
                        // from the float `2 * max(s1, s2)` and `(1 << 20) * s_out`.
                        let left_shift = 20;
                        let twice_max = f64::from(2.0 * s1.max(s2));
                        let real1 = f64::from(s1) / twice_max;
                        let real2 = f64::from(s2) / twice_max;
                        let real_out = twice_max / f64::from((1 << left_shift) as f32 * so);
                        let smaller_than_one = |real: f64| {
                            let (m, s) = crate::quantize_multiplier(real)?;
                            if s > 0 {
                                return Err(err(
                                    "a rescale of 1 or more (TFLite's QuantizeMultiplierSmallerThanOneExp aborts) is not supported",
                                ));
                            }
                            Ok((m, s))
                        };
                        let (m1, sh1) = smaller_than_one(real1)?;
                        let (m2, sh2) = smaller_than_one(real2)?;
                        let (mo, sho) = smaller_than_one(real_out)?;
                        let (lo, hi) = range()?;
                        vec![left_shift, -z1, m1, sh1, -z2, m2, sh2, mo, sho, zo, lo, hi]
                    }
                    MUL => {
                        // mul.cc Prepare: `double real = s1 * s2 / s_out` evaluated in float.
                        let real = f64::from(s1 * s2 / so);
                        let (m, s) = crate::quantize_multiplier(real)?;
                        let (lo, hi) = range()?;
                        vec![-z1, -z2, m, s, zo, lo, hi]
                    }
                    _ => Vec::new(),
                }
            }
            _ => {
                return Err(err(
                    "this element type is not supported (int8 and float32 are)",
                ))
            }
        };
        let op = l.op(node, code, params);
        if op.inputs.len() != 2 || op.outputs.len() != 1 {
            return Err(err(
                "an arithmetic operator needs two inputs and one output",
            ));
        }
        l.push(op);
        Ok(())
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use crate::nn::dtype::DType;
    use crate::nn::transform::ir::{Activation, BuiltinOp, Graph, Node, OpOptions, Quant, Tensor};
    use crate::nn::transform::{LoadedModel, Packing};
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    fn graph(op: BuiltinOp, options: OpOptions, n: usize) -> Graph {
        graph_shapes(op, options, [vec![1, n], vec![1, n], vec![1, n]])
    }

    /// The graph with shapes for a, b and y.
    fn graph_shapes(op: BuiltinOp, options: OpOptions, shapes: [Vec<usize>; 3]) -> Graph {
        let [sa, sb, sy] = shapes;
        let t = |name: &str, s: f32, z: i64, shape: Vec<usize>| Tensor {
            name: String::from(name),
            dtype: DType::I8,
            shape,
            quant: Some(Quant {
                scale: vec![s],
                zero_point: vec![z],
                axis: 0,
            }),
            data: None,
        };
        Graph {
            tensors: vec![
                t("a", 0.031, -7, sa),
                t("b", 0.0123, 19, sb),
                t("y", 0.04, 3, sy),
            ],
            nodes: vec![Node {
                op,
                version: 2,
                options,
                inputs: vec![Some(0), Some(1)],
                outputs: vec![2],
            }],
            inputs: vec![0, 1],
            outputs: vec![2],
        }
    }

    fn run(g: &Graph, a: &[u8], b: &[u8]) -> Vec<u8> {
        let m = LoadedModel::from_graph(g, Packing::Portable).unwrap();
        let mut r = m.runner();
        r.set_input(0, a).unwrap();
        r.set_input(1, b).unwrap();
        r.run().unwrap();
        r.output(0).unwrap()
    }

    /// The AVX-512 ADD/SUB equals the per-element reference form on every pair of input
    /// values (and a tail shorter than a vector), for left and right shifts, multipliers at
    /// the ends of their range, and clamps; with AVX-512 VBMI the sets without positive
    /// shifts take the tabulated path.
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics, feature = "std"))]
    #[test]
    fn avx512_add_sub_equals_the_reference_form() {
        extern crate std;
        use super::{avx512, AddSub};
        if !avx512::available() {
            std::println!("SKIPPED: this CPU lacks AVX-512F/BW");
            return;
        }
        let n = 65536 + 9;
        let a: Vec<i8> = (0..n).map(|i| (i % 256) as u8 as i8).collect();
        let b: Vec<i8> = (0..n).map(|i| (i / 256 + i % 7) as u8 as i8).collect();
        let params = [
            // (ls, o1, m1, s1, o2, m2, s2, mo, so, zo, lo, hi)
            (
                20,
                7,
                1_276_845_227,
                -1,
                -19,
                1_073_741_824,
                -2,
                1_597_463_007,
                -18,
                3,
                -128,
                127,
            ),
            (
                20,
                128,
                i32::MAX,
                0,
                -127,
                1 << 30,
                -31,
                1 << 30,
                0,
                -128,
                -128,
                127,
            ),
            (
                20,
                -127,
                2_000_000_000,
                -5,
                128,
                1_500_000_000,
                -3,
                1_900_000_000,
                2,
                5,
                5,
                60,
            ),
            (
                20,
                -127,
                i32::MIN,
                0,
                128,
                1_500_000_000,
                -3,
                1_900_000_000,
                -1,
                5,
                -20,
                60,
            ),
            (
                0,
                3,
                i32::MIN,
                1,
                0,
                1_100_000_000,
                3,
                i32::MAX,
                -30,
                0,
                -128,
                127,
            ),
        ];
        for (ls, o1, m1, s1, o2, m2, s2, mo, so, zo, lo, hi) in params {
            for sub in [false, true] {
                let p = AddSub {
                    ls,
                    o1,
                    m1,
                    s1,
                    o2,
                    m2,
                    s2,
                    mo,
                    so,
                    zo,
                    lo,
                    hi,
                    sub,
                };
                let mut y = vec![0i8; n];
                // SAFETY: AVX-512F/BW checked above.
                unsafe { avx512::add_sub(&p, &a, &b, &mut y) }.unwrap();
                for i in 0..n {
                    assert_eq!(y[i], p.one(a[i], b[i]), "element {i} sub {sub} ls {ls}");
                }
                // Inputs shorter than the output: an error.
                // SAFETY: as above.
                assert!(unsafe { avx512::add_sub(&p, &a[..n - 1], &b, &mut y) }.is_err());
            }
        }
    }

    /// The 16-bit split form of the AVX-512 ADD/SUB equals the per-element reference form
    /// on every pair of input values, for random parameter sets where it applies (output
    /// shifts −16..=−31, input shifts of either sign, clamps) and the sets at its ends.
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics, feature = "std"))]
    #[test]
    fn avx512_split_add_sub_equals_the_reference_form_on_every_pair() {
        extern crate std;
        use super::{avx512, AddSub};
        use crate::arch::{cpu_info, Features};
        if !avx512::available() || !cpu_info().features.contains(Features::AVX512VBMI) {
            std::println!("SKIPPED: this CPU lacks AVX-512F/BW/VBMI");
            return;
        }
        let n = 65536;
        let a: Vec<i8> = (0..n).map(|i| (i % 256) as u8 as i8).collect();
        let b: Vec<i8> = (0..n).map(|i| (i / 256) as u8 as i8).collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |lo: i64, hi: i64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lo + (state % (hi - lo + 1) as u64) as i64
        };
        let mut sets = vec![
            // (ls, o1, m1, s1, o2, m2, s2, mo, so, zo, lo, hi): the ends of the form's range.
            (
                20,
                128,
                i32::MAX,
                -1,
                128,
                i32::MAX,
                -1,
                i32::MAX,
                -16,
                0,
                -128,
                127,
            ),
            (
                20,
                -127,
                i32::MAX,
                -1,
                128,
                1 << 30,
                -1,
                i32::MAX,
                -16,
                127,
                -128,
                127,
            ),
            (
                20,
                128,
                1 << 30,
                0,
                -127,
                1 << 30,
                -3,
                0,
                -16,
                -128,
                -128,
                127,
            ),
            (
                20,
                5,
                1 << 30,
                -1,
                -3,
                1 << 30,
                -1,
                1 << 30,
                -31,
                -7,
                -128,
                127,
            ),
            (
                22,
                128,
                i32::MAX,
                0,
                128,
                i32::MAX,
                0,
                1 << 30,
                -24,
                0,
                -128,
                127,
            ),
        ];
        for _ in 0..300 {
            let lo = next(-128, 127);
            sets.push((
                next(18, 21) as i32,
                next(-127, 128) as i32,
                next(1 << 30, i32::MAX.into()) as i32,
                next(-8, 1) as i32,
                next(-127, 128) as i32,
                next(1 << 30, i32::MAX.into()) as i32,
                next(-8, 1) as i32,
                next(1 << 30, i32::MAX.into()) as i32,
                next(-23, -16) as i32,
                next(-128, 127) as i32,
                lo as i32,
                next(lo, 127) as i32,
            ));
        }
        let mut applied = 0;
        for (ls, o1, m1, s1, o2, m2, s2, mo, so, zo, lo, hi) in sets {
            for sub in [false, true] {
                let p = AddSub {
                    ls,
                    o1,
                    m1,
                    s1,
                    o2,
                    m2,
                    s2,
                    mo,
                    so,
                    zo,
                    lo,
                    hi,
                    sub,
                };
                let (mut t1, mut t2) = (avx512::Planes::ZERO, avx512::Planes::ZERO);
                // SAFETY: AVX-512F/BW checked above.
                if !unsafe { avx512::split_tables(&p, &mut t1, &mut t2) } {
                    continue;
                }
                applied += 1;
                let mut y = vec![0i8; n];
                // SAFETY: AVX-512F/BW/VBMI checked above; a, b and y hold n elements.
                unsafe { avx512::split_sum(&p, &t1, &t2, &a, &b, &mut y, n) };
                for i in 0..n {
                    assert_eq!(
                        y[i],
                        p.one(a[i], b[i]),
                        "a {} b {} sub {sub} params {:?}",
                        a[i],
                        b[i],
                        (ls, o1, m1, s1, o2, m2, s2, mo, so, zo, lo, hi)
                    );
                }
            }
        }
        // A rescaled value near 2^31 makes some q reach 2^14: the form declines and
        // `add_sub` takes another path, with the same bytes.
        let p = AddSub {
            ls: 23,
            o1: 128,
            m1: i32::MAX,
            s1: 0,
            o2: 0,
            m2: 1 << 30,
            s2: -1,
            mo: i32::MAX,
            so: -16,
            zo: 0,
            lo: -128,
            hi: 127,
            sub: false,
        };
        let (mut t1, mut t2) = (avx512::Planes::ZERO, avx512::Planes::ZERO);
        // SAFETY: AVX-512F/BW checked above.
        assert!(!unsafe { avx512::split_tables(&p, &mut t1, &mut t2) });
        let mut y = vec![0i8; n];
        // SAFETY: AVX-512F/BW checked above.
        unsafe { avx512::add_sub(&p, &a, &b, &mut y) }.unwrap();
        for i in 0..n {
            assert_eq!(y[i], p.one(a[i], b[i]), "a {} b {}", a[i], b[i]);
        }
        // The form applies to almost every set (a left input shift with ls 21 can make a
        // rescaled value too large for the i16 sum or the i32 sum wrap).
        assert!(applied >= 500, "split form applied to {applied} sets");
    }

    /// Large broadcast int8 ADD/SUB take the tabulated path, small plain ones rescale each
    /// element (or, with AVX-512, 16 at a time): all give the same bytes for every pair of
    /// input values.
    #[test]
    fn tabulated_add_and_sub_equal_the_direct_path() {
        let n = 65536; // every (a, b) pair once
        let a: Vec<u8> = (0..n).map(|i| (i % 256) as u8).collect();
        let b: Vec<u8> = (0..n).map(|i| (i / 256) as u8).collect();
        let act = Activation::Relu6;
        for (op, options) in [
            (
                BuiltinOp::Add,
                OpOptions::Add {
                    activation: act,
                    pot_scale_int16: false,
                },
            ),
            (
                BuiltinOp::Sub,
                OpOptions::Sub {
                    activation: act,
                    pot_scale_int16: false,
                },
            ),
        ] {
            // b broadcast along a's rows (b[r] = r, a[r][c] = c: every pair once), so the
            // tabulated path runs wherever the vectorized one would take plain ADDs.
            let shapes = [vec![256, 256], vec![256, 1], vec![256, 256]];
            let b_col: Vec<u8> = (0..256).map(|i| i as u8).collect();
            let big = run(&graph_shapes(op, options.clone(), shapes), &a, &b_col);
            let small_g = graph(op, options, 256);
            let mut direct = Vec::new();
            for (ca, cb) in a.chunks(256).zip(b.chunks(256)) {
                direct.extend(run(&small_g, ca, cb));
            }
            assert_eq!(big, direct, "{op:?}");
        }
    }
}

//! The one-row product of FULLY_CONNECTED (m = 1): `y = stage(x·W)` for one input row, over
//! the weights as the blob holds them, without the GEMM's packing of A, its workspace or
//! its per-call planning. For one row each weight is used once, so the product is a
//! stream over the weights with the sums in registers, and the output stage is fused.
//!
//! - int8, weights packed for the AVX-512 VNNI kernel (`QFormat::U8x4`, slivers of 32
//!   columns, each k group of four a 128-byte block: column j's four bytes at 4j): the four
//!   bytes of a group of x, made unsigned by flipping their sign bits (x' = x + 128), are
//!   broadcast and `vpdpbusd` adds `x'·w` for 16 columns per instruction. Then
//!   `Σ(x − z_x)(w − z_w) = Σx'w − (z_x + 128)·Σw − z_w·Σ(x − z_x)` (the packed column sums
//!   give Σw), plus the bias, then TFLite's `MultiplyByQuantizedMultiplier` (the crate's
//!   vector form), zero point, clamp. All in wrapping i32, as the reference's sums.
//! - int8, weights packed for the AVX2 kernel (`QFormat::I16x2`, slivers of 16 columns,
//!   k in pairs of i16): the pair of x broadcast, `vpmaddwd` (exact), the same terms.
//! - int8, portable k×n weights (what a portable blob holds): 32 columns at a time in i32
//!   arrays (LLVM vectorizes them for the build's baseline), the same arithmetic; not on
//!   x86-64, where the GEMM (packing the weights per call) is faster for these blobs.
//! - f32, k×n weights, AVX-512: up to 128 columns at a time in eight registers, each
//!   column's sum in k order (`fma`, as the GEMM's one-row path), then bias and clamp.
//!   int8 weights with a scale per column (`quantize_weights`): the same loop over the
//!   weights widened in registers (`Σ x·q`), each sum times its column's scale before the
//!   bias: a quarter of the bytes streamed, within f32 rounding of `Σ x·(q·s)`.
//!
//! Other cases (another packing, such as the Arm kernels'; no AVX-512 for f32) return
//! `false`: the caller runs the GEMM.

use super::gemm_common::FWeights;
use crate::quant::PackedView;
use crate::reference::multiply_by_quantized_multiplier;

/// The int8 output stage of one call, as the kernels read it.
#[derive(Clone, Copy)]
struct Stage<'a> {
    bias: Option<&'a [i32]>,
    /// One entry (per tensor) or n.
    mults: &'a [i32],
    shifts: &'a [i32],
    /// Added to every sum: `−z_w·Σ(x − z_x)` (0 when z_w = 0).
    row: i32,
    zo: i32,
    lo: i32,
    hi: i32,
}

impl Stage<'_> {
    /// (multiplier, shift) of column j.
    #[inline(always)]
    fn scale(&self, j: usize) -> (i32, i32) {
        let i = if self.mults.len() == 1 { 0 } else { j };
        (self.mults[i], self.shifts[i])
    }

    /// The output byte of column j's sum `v` (bias and row term not yet added).
    #[inline(always)]
    fn one(&self, v: i32, j: usize) -> i8 {
        let v = v
            .wrapping_add(self.bias.map_or(0, |b| b[j]))
            .wrapping_add(self.row);
        let (m, s) = self.scale(j);
        multiply_by_quantized_multiplier(v, m, s)
            .wrapping_add(self.zo)
            .clamp(self.lo, self.hi) as i8
    }
}

/// Which int8 kernel runs (`Auto`: the best that applies; `Portable` only for tests).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Path {
    Auto,
    /// The portable kernel for k×n weights on any target (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

/// The int8 weights as the one-row kernels read them: packed for a kernel, or k×n.
pub(crate) enum QW<'a> {
    Packed(PackedView<'a>),
    View(&'a [i8]),
}

/// The int8 output stage's pieces, as the operator's blob form gives them: the bias (n, or
/// none), the multipliers and shifts (n, or one per tensor), the output zero point and the
/// clamp.
pub(crate) struct QOut<'a> {
    pub bias: Option<&'a [i32]>,
    pub mults: &'a [i32],
    pub shifts: &'a [i32],
    pub zo: i32,
    pub lo: i32,
    pub hi: i32,
}

/// The kernel a [`QPlan`] runs, with the weights as it reads them.
#[derive(Clone, Copy)]
enum QKernel<'a> {
    /// The portable kernel over k×n weights.
    Portable(&'a [i8]),
    /// AVX-512 VNNI over `QFormat::U8x4` slivers of 32 columns (data, column sums).
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Vnni(&'a [u8], &'a [i32]),
    /// AVX2 over `QFormat::I16x2` slivers of 16 columns (data, column sums).
    #[cfg(target_arch = "x86_64")]
    Avx2(&'a [u8], &'a [i32]),
}

/// An int8 one-row product prepared once (by a session for its operator, or by the
/// operator for one call): the kernel chosen for this CPU and every length its kernel relies on
/// checked, so that [`QPlan::run`] only computes.
#[derive(Clone, Copy)]
pub(crate) struct QPlan<'a> {
    kernel: QKernel<'a>,
    k: usize,
    n: usize,
    za: i32,
    zb: i32,
    bias: Option<&'a [i32]>,
    mults: &'a [i32],
    shifts: &'a [i32],
    zo: i32,
    lo: i32,
    hi: i32,
}

impl<'a> QPlan<'a> {
    /// The plan of `y = stage(x·W)` for x of k values and y of n (`w` k×n), or `None` when
    /// no one-row kernel applies to these weights on this CPU.
    ///
    /// The operator's `check` validated what this relies on: k×n weights (or a packed
    /// operand of that shape), bias and per-channel scales of n entries, shifts in
    /// −31..=30; the lengths are checked again here, so other inputs give `None`.
    pub(crate) fn new(
        k: usize,
        n: usize,
        za: i32,
        w: QW<'a>,
        zb: i32,
        out: &QOut<'a>,
        path: Path,
    ) -> Option<Self> {
        let (mults, shifts) = (out.mults, out.shifts);
        if (mults.len() != 1 && mults.len() < n)
            || shifts.len() != mults.len()
            || mults.is_empty()
            || out.bias.is_some_and(|b| b.len() < n)
        {
            return None;
        }
        let kernel = match w {
            QW::View(w) => {
                // On x86-64 the GEMM's own packing and vector kernels beat this loop
                // (measured: the autoencoder's portable blob, 34 against 40 µs): it runs
                // only when forced.
                if w.len() < k.checked_mul(n)?
                    || (cfg!(target_arch = "x86_64") && path == Path::Auto)
                {
                    return None;
                }
                QKernel::Portable(w)
            }
            QW::Packed(p) if path == Path::Auto => packed_kernel(k, n, &p)?,
            QW::Packed(_) => return None,
        };
        Some(QPlan {
            kernel,
            k,
            n,
            za,
            zb,
            bias: out.bias,
            mults,
            shifts,
            zo: out.zo,
            lo: out.lo.max(-128),
            hi: out.hi.min(127),
        })
    }

    #[cfg(feature = "std")]
    /// The plan of columns `j0..j1` alone (`j0` a multiple of the kernel's sliver of 32 or
    /// 16 columns, `j1 ≤ n`), whose run writes what this plan's writes to `y[j0..j1]` (each
    /// column's sums and output stage are its own): threads split a large layer's columns
    /// so. `None` for the portable kernel, or columns out of range.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unreachable_code, unused_variables))]
    pub(crate) fn cols(&self, j0: usize, j1: usize) -> Option<Self> {
        let k = self.k;
        let (kernel, sliver): (QKernel, usize) = match self.kernel {
            QKernel::Portable(_) => return None,
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            QKernel::Vnni(data, colsum) => (
                QKernel::Vnni(
                    data.get(j0 / 32 * 128 * k.div_ceil(4)..)?,
                    colsum.get(j0..j1)?,
                ),
                32,
            ),
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx2(data, colsum) => (
                QKernel::Avx2(
                    data.get(j0 / 16 * 64 * k.div_ceil(2)..)?,
                    colsum.get(j0..j1)?,
                ),
                16,
            ),
        };
        if j0 % sliver != 0 || j0 > j1 || j1 > self.n {
            return None;
        }
        // Per-channel arrays from column j0; a per-tensor one as it is.
        let from_j0 = |a: &'a [i32]| if a.len() == 1 { Some(a) } else { a.get(j0..j1) };
        Some(QPlan {
            kernel,
            n: j1 - j0,
            bias: match self.bias {
                Some(b) => Some(b.get(j0..j1)?),
                None => None,
            },
            mults: from_j0(self.mults)?,
            shifts: from_j0(self.shifts)?,
            ..*self
        })
    }

    /// Runs it: false (having written nothing) unless x has k values and y n.
    #[inline]
    pub(crate) fn run(&self, x: &[i8], y: &mut [i8]) -> bool {
        if x.len() != self.k || y.len() != self.n {
            return false;
        }
        let row = if self.zb == 0 {
            0
        } else {
            let sx = x
                .iter()
                .fold(0i32, |s, &v| s.wrapping_add(i32::from(v) - self.za));
            sx.wrapping_mul(self.zb).wrapping_neg()
        };
        let st = Stage {
            bias: self.bias,
            mults: self.mults,
            shifts: self.shifts,
            row,
            zo: self.zo,
            lo: self.lo,
            hi: self.hi,
        };
        match self.kernel {
            QKernel::Portable(w) => portable(x, self.za, w, &st, y),
            // SAFETY: the CPU has AVX-512F/BW/VNNI and `data` holds the ceil(n/32) slivers
            // of ceil(k/4) 128-byte blocks, `colsum` n sums (checked by `packed_kernel`);
            // the stage's arrays have n entries or one (checked by `new`); x has k values
            // and y n (checked above).
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            QKernel::Vnni(data, colsum) => unsafe {
                vnni::run(x, self.za, data.as_ptr(), colsum, &st, y)
            },
            // SAFETY: the CPU has AVX2 and `data` holds the ceil(n/16) slivers of ceil(k/2)
            // 64-byte blocks, `colsum` n sums (checked by `packed_kernel`); the stage's
            // arrays have n entries or one (checked by `new`); x has k values and y n
            // (checked above).
            #[cfg(target_arch = "x86_64")]
            QKernel::Avx2(data, colsum) => unsafe {
                avx2::run(x, self.za, data.as_ptr(), colsum, &st, y)
            },
        }
        true
    }
}

/// The kernel over packed weights: the one for their packing, if this CPU runs it.
#[allow(unused_variables)] // on targets without such a kernel
fn packed_kernel<'a>(k: usize, n: usize, p: &PackedView<'a>) -> Option<QKernel<'a>> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::arch::{cpu_info, Features};
        use crate::kernels::int8::QFormat;
        let (data, colsum) = (p.data, p.colsum);
        if p.k != k || p.n != n || colsum.len() != n {
            return None;
        }
        let features = cpu_info().features;
        #[cfg(edgemm_avx512_intrinsics)]
        {
            let vnni = Features::AVX512F
                .with(Features::AVX512BW)
                .with(Features::AVX512VNNI);
            if p.format == QFormat::U8x4
                && p.nr == 32
                && n.div_ceil(32)
                    .checked_mul(128 * k.div_ceil(4))
                    .is_some_and(|b| data.len() >= b)
                && features.contains(vnni)
            {
                return Some(QKernel::Vnni(data, colsum));
            }
        }
        if p.format == QFormat::I16x2
            && p.nr == 16
            && n.div_ceil(16)
                .checked_mul(64 * k.div_ceil(2))
                .is_some_and(|b| data.len() >= b)
            && features.contains(Features::AVX2)
        {
            return Some(QKernel::Avx2(data, colsum));
        }
    }
    None
}

/// The portable int8 kernel over k×n weights (any z_w: the stage's row term).
fn portable(x: &[i8], za: i32, w: &[i8], st: &Stage, y: &mut [i8]) {
    const B: usize = 32;
    let n = y.len();
    for (c, yb) in y.chunks_mut(B).enumerate() {
        let j0 = c * B;
        let cols = yb.len();
        let mut acc = [0i32; B];
        for (p, &xv) in x.iter().enumerate() {
            let xv = i32::from(xv) - za;
            let row = &w[p * n + j0..p * n + j0 + cols];
            for (a, &b) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(xv * i32::from(b));
            }
        }
        for (j, (o, &v)) in yb.iter_mut().zip(&acc).enumerate() {
            *o = st.one(v, j0 + j);
        }
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
mod vnni {
    use super::Stage;
    use crate::quant::requant::x86_512::{consts, mbqm};
    use core::arch::x86_64::*;

    /// How far ahead in the weights they are prefetched (bytes: sixteen k groups). A
    /// model's layers together outgrow L1, so the weights stream from L2, where the L1
    /// prefetchers alone do not run far enough ahead (the autoencoder's kernels alone: 3.36
    /// → 2.95 µs, measured on the Xeon with four streams of 512 bytes ahead each; now one
    /// stream, as far ahead in all; 1024 measured the same on Zen 4, 4096 slower).
    const PREFETCH: usize = 2048;

    /// # Safety
    /// AVX-512F/BW/VNNI; `data` holds ceil(n/32) slivers of ceil(k/4) 128-byte blocks
    /// (k = x.len(), n = y.len()); `colsum` n values; the stage's arrays n entries or one.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn run(
        x: &[i8],
        za: i32,
        data: *const u8,
        colsum: &[i32],
        st: &Stage,
        y: &mut [i8],
    ) {
        // One sliver after the other, so that the weights are read in memory order, one
        // stream (the slivers lie one after the other): on Zen 4 the autoencoder ran 3.53 →
        // 3.25 µs against four slivers at once (four streams).
        for s0 in 0..y.len().div_ceil(32) {
            // SAFETY: forwarded; sliver s0 exists.
            unsafe { block::<1, 4>(x, za, data, colsum, st, y, s0) };
        }
    }

    /// Slivers `s0..s0 + NS`: their sums over all of k, then the output stage. The k groups
    /// go round `P` sets of accumulators (added at the end: wrapping i32 sums, so the same
    /// bits), so that one sliver has eight independent `vpdpbusd` chains instead of waiting
    /// on two.
    ///
    /// # Safety
    /// As [`run`]; slivers `s0..s0 + NS` exist.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn block<const NS: usize, const P: usize>(
        x: &[i8],
        za: i32,
        data: *const u8,
        colsum: &[i32],
        st: &Stage,
        y: &mut [i8],
        s0: usize,
    ) {
        let (k, n) = (x.len(), y.len());
        let groups = k.div_ceil(4);
        let sliver = 128 * groups;
        let flip = 0x8080_8080u32;
        let mut accs = [[[_mm512_setzero_si512(); 2]; NS]; P];
        // SAFETY (loads): sliver s0 + s, block q lies inside `data` (caller).
        let base = unsafe { data.add(s0 * sliver) };
        let whole = k / 4;
        let step = |q: usize, xq: u32, accs: &mut [[__m512i; 2]; NS]| {
            let a = _mm512_set1_epi32((xq ^ flip) as i32);
            for (s, acc) in accs.iter_mut().enumerate() {
                // SAFETY: see above (a prefetch does not fault past the end; its address is
                // only computed, `wrapping_add`).
                unsafe {
                    let p = base.add(s * sliver + 128 * q);
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + 64) as *const i8);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], a, _mm512_loadu_si512(p as *const _));
                    acc[1] =
                        _mm512_dpbusd_epi32(acc[1], a, _mm512_loadu_si512(p.add(64) as *const _));
                }
            }
        };
        let group = |g: &[i8]| u32::from_le_bytes([g[0] as u8, g[1] as u8, g[2] as u8, g[3] as u8]);
        // P groups at a time, one into each set (the inner loop unrolls: constant indices).
        let rounds = x.chunks_exact(4 * P);
        let tail = rounds.remainder();
        for (r, gs) in rounds.enumerate() {
            for (ph, acc) in accs.iter_mut().enumerate() {
                step(r * P + ph, group(&gs[4 * ph..4 * ph + 4]), acc);
            }
        }
        let q0 = k / (4 * P) * P;
        let groups4 = tail.chunks_exact(4);
        let rest = groups4.remainder();
        for (q, g) in groups4.enumerate() {
            step(q0 + q, group(g), &mut accs[0]);
        }
        if !rest.is_empty() {
            // The last group's bytes past k: any value (their weights are zero), here x' = 0.
            let mut g = [0x80u8; 4];
            for (v, &b) in g.iter_mut().zip(rest) {
                *v = b as u8;
            }
            step(whole, u32::from_le_bytes(g), &mut accs[0]);
        }
        let mut acc = accs[0];
        for more in &accs[1..] {
            for (a, m) in acc.iter_mut().zip(more) {
                a[0] = _mm512_add_epi32(a[0], m[0]);
                a[1] = _mm512_add_epi32(a[1], m[1]);
            }
        }
        let za2 = _mm512_set1_epi32(za + 128);
        let row = _mm512_set1_epi32(st.row);
        let (zo, lo, hi) = (
            _mm512_set1_epi32(st.zo),
            _mm512_set1_epi32(st.lo),
            _mm512_set1_epi32(st.hi),
        );
        let per_tensor = st.mults.len() == 1;
        let c_tensor = consts(
            _mm512_set1_epi32(st.mults[0]),
            _mm512_set1_epi32(st.shifts[0]),
        );
        for (s, acc) in acc.iter().enumerate() {
            for (h, &v) in acc.iter().enumerate() {
                let j0 = (s0 + s) * 32 + 16 * h;
                if j0 >= n {
                    break;
                }
                let cols = (n - j0).min(16);
                let m: __mmask16 = if cols == 16 { !0 } else { (1 << cols) - 1 };
                // SAFETY: masked to columns j0..j0+cols < n of arrays with n entries.
                unsafe {
                    let load = |p: *const i32| _mm512_maskz_loadu_epi32(m, p);
                    let mut v =
                        _mm512_sub_epi32(v, _mm512_mullo_epi32(load(colsum.as_ptr().add(j0)), za2));
                    v = _mm512_add_epi32(v, row);
                    if let Some(b) = st.bias {
                        v = _mm512_add_epi32(v, load(b.as_ptr().add(j0)));
                    }
                    let c = if per_tensor {
                        c_tensor
                    } else {
                        consts(
                            load(st.mults.as_ptr().add(j0)),
                            load(st.shifts.as_ptr().add(j0)),
                        )
                    };
                    // The left shift is applied always: by 0 it changes nothing.
                    let r = _mm512_add_epi32(mbqm(v, &c, true), zo);
                    let r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
                    _mm512_mask_cvtepi32_storeu_epi8(y.as_mut_ptr().add(j0), m, r);
                }
            }
        }
    }
}

/// The int8 kernel over weights packed for the AVX2 kernel (`QFormat::I16x2`, slivers of
/// 16 columns, each k group of two a 64-byte block: column j's two i16 at 4j): the group's
/// two inputs as an i16 pair are broadcast and `vpmaddwd` adds both products of 8 columns
/// exactly; `Σ(x − z_x)(w − z_w) = Σxw − z_x·Σw − z_w·Σ(x − z_x)`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Stage;
    use crate::quant::requant::x86::mbqm;
    use core::arch::x86_64::*;

    /// Slivers (of 16 columns) summed at once: 8 accumulators.
    const SB: usize = 4;

    /// # Safety
    /// AVX2; `data` holds ceil(n/16) slivers of ceil(k/2) 64-byte blocks (k = x.len(),
    /// n = y.len()); `colsum` n values; the stage's arrays n entries or one.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run(
        x: &[i8],
        za: i32,
        data: *const u8,
        colsum: &[i32],
        st: &Stage,
        y: &mut [i8],
    ) {
        let n = y.len();
        let slivers = n.div_ceil(16);
        let mut s0 = 0;
        while s0 < slivers {
            let ns = (slivers - s0).min(SB);
            // SAFETY: forwarded; slivers s0..s0+ns exist.
            unsafe {
                match ns {
                    1 => block::<1>(x, za, data, colsum, st, y, s0),
                    2 => block::<2>(x, za, data, colsum, st, y, s0),
                    3 => block::<3>(x, za, data, colsum, st, y, s0),
                    _ => block::<SB>(x, za, data, colsum, st, y, s0),
                }
            }
            s0 += ns;
        }
    }

    /// Slivers `s0..s0 + NS`: their sums over all of k, then the output stage.
    ///
    /// # Safety
    /// As [`run`]; slivers `s0..s0 + NS` exist.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block<const NS: usize>(
        x: &[i8],
        za: i32,
        data: *const u8,
        colsum: &[i32],
        st: &Stage,
        y: &mut [i8],
        s0: usize,
    ) {
        let (k, n) = (x.len(), y.len());
        let groups = k.div_ceil(2);
        let sliver = 64 * groups;
        let mut acc = [[_mm256_setzero_si256(); 2]; NS];
        // SAFETY (loads): sliver s0 + s, block q lies inside `data` (caller).
        let base = unsafe { data.add(s0 * sliver) };
        for q in 0..groups {
            // The group's inputs as an i16 pair (0 past k: its weights are zero too).
            let lo = i32::from(x[2 * q]) & 0xFFFF;
            let hi = x.get(2 * q + 1).map_or(0, |&v| i32::from(v) << 16);
            let a = _mm256_set1_epi32(lo | hi);
            for (s, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                unsafe {
                    let p = base.add(s * sliver + 64 * q);
                    let w0 = _mm256_loadu_si256(p as *const __m256i);
                    let w1 = _mm256_loadu_si256(p.add(32) as *const __m256i);
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(a, w0));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(a, w1));
                }
            }
        }
        let zav = _mm256_set1_epi32(za);
        let row = _mm256_set1_epi32(st.row);
        let (zo, lo, hi) = (
            _mm256_set1_epi32(st.zo),
            _mm256_set1_epi32(st.lo),
            _mm256_set1_epi32(st.hi),
        );
        let per_tensor = st.mults.len() == 1;
        for (s, acc) in acc.iter().enumerate() {
            for (h, &v) in acc.iter().enumerate() {
                let j0 = (s0 + s) * 16 + 8 * h;
                if j0 >= n {
                    break;
                }
                let cols = (n - j0).min(8);
                // Eight lanes of a per-column array from column j0 (zeros past n), or its
                // one value.
                let lanes = |a: &[i32], one: bool| {
                    let mut l = [0i32; 8];
                    for (c, v) in l.iter_mut().enumerate().take(cols) {
                        *v = if one { a[0] } else { a[j0 + c] };
                    }
                    // SAFETY: eight readable i32.
                    unsafe { _mm256_loadu_si256(l.as_ptr() as *const __m256i) }
                };
                let mut v = _mm256_sub_epi32(v, _mm256_mullo_epi32(lanes(colsum, false), zav));
                v = _mm256_add_epi32(v, row);
                if let Some(b) = st.bias {
                    v = _mm256_add_epi32(v, lanes(b, false));
                }
                let (m, sh) = (lanes(st.mults, per_tensor), lanes(st.shifts, per_tensor));
                // SAFETY: AVX2 (this function's); the left shift by 0 changes nothing.
                let r = unsafe { mbqm(v, m, sh, true) };
                let r = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(r, zo), lo), hi);
                // In the byte range already: the packs keep the values, in order.
                let h16 =
                    _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
                let mut bytes = [0i8; 16];
                // SAFETY: sixteen writable bytes.
                unsafe {
                    _mm_storeu_si128(
                        bytes.as_mut_ptr() as *mut __m128i,
                        _mm_packs_epi16(h16, h16),
                    )
                };
                y[j0..j0 + cols].copy_from_slice(&bytes[..cols]);
            }
        }
    }
}

/// Weights (f32 values) above which [`sgemv`] leaves the product to the GEMM's one-row
/// path: it reads W in column blocks (rows of 128 columns, n apart), which suits weights
/// in L2; larger ones stream from memory faster row by row.
const SGEMV_MAX_WEIGHTS: usize = 1 << 17;

/// f32 `y = clamp(x·W + bias)` for one row, W k×n row-major. Returns false (having written
/// nothing) without AVX-512 or for weights over [`SGEMV_MAX_WEIGHTS`] (the caller runs the
/// GEMM's one-row path, which sums each column in the same order).
pub(crate) fn sgemv(
    x: &[f32],
    w: FWeights,
    bias: Option<&[f32]>,
    lo: f32,
    hi: f32,
    y: &mut [f32],
) -> bool {
    SPlan::new(x.len(), y.len(), w, bias, lo, hi).is_some_and(|p| p.run(x, y))
}

/// An f32 one-row product prepared once (by a session for its operator, or by each
/// [`sgemv`] call): the kernel chosen for this CPU and every length it relies on checked,
/// so that [`SPlan::run`] only computes.
#[derive(Clone, Copy)]
pub(crate) struct SPlan<'a> {
    w: FWeights<'a>,
    bias: Option<&'a [f32]>,
    lo: f32,
    hi: f32,
    k: usize,
    n: usize,
}

impl<'a> SPlan<'a> {
    /// The plan of `y = clamp(x·W + bias)` for x of k values and y of n, or `None` when the
    /// one-row kernel does not apply (see [`sgemv`]).
    pub(crate) fn new(
        k: usize,
        n: usize,
        w: FWeights<'a>,
        bias: Option<&'a [f32]>,
        lo: f32,
        hi: f32,
    ) -> Option<Self> {
        // The same bytes of weights at most: 4× the values for int8.
        let (len, max) = match w {
            FWeights::F32(w) => (w.len(), SGEMV_MAX_WEIGHTS),
            FWeights::I8 { q, scales } if scales.len() >= n => (q.len(), 4 * SGEMV_MAX_WEIGHTS),
            FWeights::I8 { .. } => return None,
        };
        let kn = k.checked_mul(n)?;
        if len < kn || kn > max || bias.is_some_and(|b| b.len() < n) {
            return None;
        }
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        {
            use crate::arch::{cpu_info, Features};
            if cpu_info().features.contains(Features::AVX512F) {
                return Some(SPlan {
                    w,
                    bias,
                    lo,
                    hi,
                    k,
                    n,
                });
            }
        }
        let _ = (lo, hi);
        None
    }

    /// Runs it: false (having written nothing) unless x has k values and y n.
    #[inline]
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32]) -> bool {
        if x.len() != self.k || y.len() != self.n {
            return false;
        }
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        {
            // SAFETY: a plan exists only where the CPU has AVX-512F (checked by `new`); W
            // has k×n values, the bias and scales n (checked by `new`), x k and y n
            // (checked above).
            unsafe { f512::run(x, self.w, self.bias, self.lo, self.hi, y) };
            true
        }
        #[cfg(not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)))]
        {
            let _ = (self.w, self.bias, self.lo, self.hi);
            false
        }
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
mod f512 {
    use super::FWeights;
    use core::arch::x86_64::*;

    /// How many rows ahead the weights are prefetched. They stream from L2 (the
    /// autoencoder's megabyte of them), in column blocks whose rows lie n apart, where the
    /// L1 prefetchers do not keep up (its kernels alone: 14.4 → 11.9 µs, measured on the
    /// Xeon; 2, 8 or 16 rows ahead were slower).
    const PREFETCH_ROWS: usize = 4;

    /// # Safety
    /// AVX-512F; `w` has x.len()·y.len() values (and y.len() scales), `bias` (if any)
    /// y.len().
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run(
        x: &[f32],
        w: FWeights,
        bias: Option<&[f32]>,
        lo: f32,
        hi: f32,
        y: &mut [f32],
    ) {
        match w {
            // SAFETY: forwarded.
            FWeights::F32(w) => unsafe {
                run_as::<false>(x, w.as_ptr() as _, &[], bias, lo, hi, y)
            },
            // SAFETY: forwarded.
            FWeights::I8 { q, scales } => unsafe {
                run_as::<true>(x, q.as_ptr() as _, scales, bias, lo, hi, y)
            },
        }
    }

    /// [`run`] over f32 weights at `w` (`Q` false) or int8 ones with `scales` (`Q` true).
    ///
    /// # Safety
    /// As [`run`], `w` pointing at the weights.
    #[target_feature(enable = "avx512f")]
    unsafe fn run_as<const Q: bool>(
        x: &[f32],
        w: *const u8,
        scales: &[f32],
        bias: Option<&[f32]>,
        lo: f32,
        hi: f32,
        y: &mut [f32],
    ) {
        let n = y.len();
        let mut j0 = 0;
        while j0 < n {
            let nv = (n - j0).div_ceil(16).min(8);
            // SAFETY: forwarded; columns j0.. exist.
            unsafe {
                match nv {
                    1 => block::<1, Q>(x, w, scales, bias, lo, hi, y, j0),
                    2 => block::<2, Q>(x, w, scales, bias, lo, hi, y, j0),
                    3 => block::<3, Q>(x, w, scales, bias, lo, hi, y, j0),
                    4 => block::<4, Q>(x, w, scales, bias, lo, hi, y, j0),
                    5 => block::<5, Q>(x, w, scales, bias, lo, hi, y, j0),
                    6 => block::<6, Q>(x, w, scales, bias, lo, hi, y, j0),
                    7 => block::<7, Q>(x, w, scales, bias, lo, hi, y, j0),
                    _ => block::<8, Q>(x, w, scales, bias, lo, hi, y, j0),
                }
            }
            j0 += 16 * nv;
        }
    }

    /// 16 int8 weights at `p` (the first `cols` of them; zeros past), widened to f32.
    ///
    /// # Safety
    /// AVX-512F; `cols` ≤ 16 readable bytes at `p`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_i8(p: *const i8, cols: usize) -> __m512 {
        // SAFETY: 16 (or `cols`, copied first) readable bytes (caller).
        let v = unsafe {
            if cols == 16 {
                _mm_loadu_si128(p as *const __m128i)
            } else {
                let mut b = [0i8; 16];
                core::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), cols);
                _mm_loadu_si128(b.as_ptr() as *const __m128i)
            }
        };
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v))
    }

    /// Columns `j0..` in `NV` vectors (the last one masked at n).
    ///
    /// # Safety
    /// As [`run`]; j0 < n.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const NV: usize, const Q: bool>(
        x: &[f32],
        w: *const u8,
        scales: &[f32],
        bias: Option<&[f32]>,
        lo: f32,
        hi: f32,
        y: &mut [f32],
        j0: usize,
    ) {
        let n = y.len();
        let mask = |v: usize| -> __mmask16 {
            let cols = n.saturating_sub(j0 + 16 * v).min(16);
            if cols == 16 {
                !0
            } else {
                (1 << cols) - 1
            }
        };
        let masks: [__mmask16; NV] = core::array::from_fn(mask);
        let cols: [usize; NV] = core::array::from_fn(|v| n.saturating_sub(j0 + 16 * v).min(16));
        let mut acc = [_mm512_setzero_ps(); NV];
        // Bytes per weight, and the cache lines of one row of this block.
        let size = if Q { 1 } else { 4 };
        let lines = (16 * NV * size).div_ceil(64);
        for (p, &xv) in x.iter().enumerate() {
            let xb = _mm512_set1_ps(xv);
            // The block's columns of a later row, into L1 (see `PREFETCH_ROWS`).
            let ahead = w.wrapping_add(((p + PREFETCH_ROWS) * n + j0) * size);
            // (A prefetch does not fault past the end; its address is only computed.)
            for l in 0..lines {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * l) as *const i8);
            }
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: row p, columns j0 + 16v.. masked (or cut) to < n: inside W.
                let wv = unsafe {
                    let at = p * n + j0 + 16 * v;
                    if Q {
                        load_i8((w as *const i8).add(at), cols[v])
                    } else {
                        _mm512_maskz_loadu_ps(masks[v], (w as *const f32).add(at))
                    }
                };
                *a = _mm512_fmadd_ps(xb, wv, *a);
            }
        }
        if Q {
            for (v, a) in acc.iter_mut().enumerate() {
                // SAFETY: masked to columns < n of the scales.
                let s =
                    unsafe { _mm512_maskz_loadu_ps(masks[v], scales.as_ptr().add(j0 + 16 * v)) };
                *a = _mm512_mul_ps(*a, s);
            }
        }
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for (v, &a) in acc.iter().enumerate() {
            let j = j0 + 16 * v;
            // SAFETY: masked to columns < n of the bias and of y.
            unsafe {
                let s = match bias {
                    Some(b) => _mm512_add_ps(a, _mm512_maskz_loadu_ps(masks[v], b.as_ptr().add(j))),
                    None => a,
                };
                // max/min return their second operand when either is NaN: the value goes
                // second, so NaN passes through as with TFLite's min/max.
                let s = _mm512_min_ps(hi, _mm512_max_ps(lo, s));
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(j), masks[v], s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{sgemv, FWeights, Path, QOut, QPlan, QW};

    /// int8 `y = stage(x·W)` for one row through a [`QPlan`] made for the call; false
    /// (having written nothing) when no one-row kernel applies.
    fn qgemv(x: &[i8], za: i32, w: QW, zb: i32, out: &QOut, y: &mut [i8], path: Path) -> bool {
        QPlan::new(x.len(), y.len(), za, w, zb, out, path).is_some_and(|p| p.run(x, y))
    }
    use crate::quant::{qgemm_packed_b_size, PackedQBRef, PackedView};
    use crate::reference::multiply_by_quantized_multiplier;
    use crate::MatRef;
    use alloc::vec;
    use alloc::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    /// The plans of columns apart ([`QPlan::cols`], as threads split a layer) give the
    /// whole plan's bytes of those columns, from every multiple of the sliver `unit` to the
    /// next and to the end; a start inside a sliver has no plan.
    fn check_cols(p: &QPlan, x: &[i8], want: &[i8], unit: usize, case: usize) {
        let n = want.len();
        for j0 in (0..n).step_by(unit) {
            for j1 in [(j0 + unit).min(n), n] {
                let mut y = vec![0i8; j1 - j0];
                assert!(p.cols(j0, j1).is_some_and(|c| c.run(x, &mut y)));
                assert_eq!(y, want[j0..j1], "case {case}, columns {j0}..{j1}");
            }
        }
        assert!(p.cols(1, n.max(1)).is_none());
    }

    /// Every int8 path (the portable one forced, and the packed VNNI one where this CPU has
    /// it) gives the reference's bytes: Σ(x − z_x)(w − z_w) + bias, then TFLite's
    /// requantization, zero point, clamp; per tensor and per channel, odd k and n.
    #[test]
    fn int8_paths_equal_the_reference() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..60 {
            let k = r.range(1, 300) as usize;
            let n = r.range(1, 200) as usize;
            let x: Vec<i8> = (0..k).map(|_| r.next() as i8).collect();
            let w: Vec<i8> = (0..k * n).map(|_| r.next() as i8).collect();
            let za = r.range(-128, 127) as i32;
            let zb = if case % 3 == 0 {
                r.range(-20, 20) as i32
            } else {
                0
            };
            let bias: Vec<i32> = (0..n).map(|_| r.range(-50_000, 50_000) as i32).collect();
            let per_channel = case % 2 == 0;
            let c = if per_channel { n } else { 1 };
            let mults: Vec<i32> = (0..c)
                .map(|_| r.range(1 << 30, i32::MAX as i64) as i32)
                .collect();
            let shifts: Vec<i32> = (0..c).map(|_| r.range(-14, 1) as i32).collect();
            let (zo, lo, hi) = (r.range(-128, 127) as i32, r.range(-128, -100) as i32, 127);
            let out = QOut {
                bias: (case % 5 != 0).then_some(&bias[..]),
                mults: &mults,
                shifts: &shifts,
                zo,
                lo,
                hi,
            };
            let want: Vec<i8> = (0..n)
                .map(|j| {
                    let mut s = out.bias.map_or(0, |b| b[j]);
                    for p in 0..k {
                        s = s.wrapping_add((i32::from(x[p]) - za) * (i32::from(w[p * n + j]) - zb));
                    }
                    let (m, sh) = (mults[j % c], shifts[j % c]);
                    multiply_by_quantized_multiplier(s, m, sh)
                        .wrapping_add(zo)
                        .clamp(lo, hi) as i8
                })
                .collect();
            let mut y = vec![0i8; n];
            assert!(qgemv(
                &x,
                za,
                QW::View(&w),
                zb,
                &out,
                &mut y,
                Path::Portable
            ));
            assert_eq!(y, want, "portable, case {case} (k {k}, n {n})");
            let mut buf = vec![0u8; qgemm_packed_b_size(k, n)];
            let packed = PackedQBRef::pack(MatRef::row_major(&w, k, n).unwrap(), &mut buf).unwrap();
            let mut y = vec![0i8; n];
            // Read as an operator reads it from a blob.
            let view = PackedView::from_checked_bytes(packed.as_bytes()).unwrap();
            if qgemv(&x, za, QW::Packed(view), zb, &out, &mut y, Path::Auto) {
                assert_eq!(
                    y,
                    want,
                    "packed {}, case {case} (k {k}, n {n})",
                    packed.kernel_name()
                );
                let p = QPlan::new(k, n, za, QW::Packed(view), zb, &out, Path::Auto).unwrap();
                check_cols(&p, &x, &want, 32, case);
            }
            // The AVX2 kernel's packing, where this CPU runs it.
            if let Ok(ker) = crate::Kernel::by_name("qgemm_i16_avx2_6x16") {
                let mut buf = vec![0u8; qgemm_packed_b_size(k, n)];
                let w_kn = MatRef::row_major(&w, k, n).unwrap();
                let packed = PackedQBRef::pack_with_kernel(&ker, w_kn, &mut buf).unwrap();
                let mut y = vec![0i8; n];
                let view = PackedView::from_checked_bytes(packed.as_bytes()).unwrap();
                let ok = qgemv(&x, za, QW::Packed(view), zb, &out, &mut y, Path::Auto);
                assert!(ok, "the AVX2 packing has a one-row kernel");
                assert_eq!(y, want, "packed {}, case {case}", packed.kernel_name());
                let p = QPlan::new(k, n, za, QW::Packed(view), zb, &out, Path::Auto).unwrap();
                check_cols(&p, &x, &want, 16, case);
            }
        }
    }

    /// The f32 path (where this CPU has it) against a plain loop in the same order.
    #[test]
    fn f32_path_equals_a_plain_loop() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..30 {
            let k = r.range(1, 300) as usize;
            let n = r.range(1, 300) as usize;
            let f = |r: &mut Rng| r.range(-1000, 1000) as f32 / 512.0;
            let x: Vec<f32> = (0..k).map(|_| f(&mut r)).collect();
            let w: Vec<f32> = (0..k * n).map(|_| f(&mut r)).collect();
            let bias: Vec<f32> = (0..n).map(|_| f(&mut r)).collect();
            let mut y = vec![0f32; n];
            if !sgemv(&x, FWeights::F32(&w), Some(&bias), -1.5, 6.0, &mut y) {
                return;
            }
            for j in 0..n {
                let mut s = 0f32;
                for p in 0..k {
                    s = x[p].mul_add(w[p * n + j], s);
                }
                let want = (s + bias[j]).clamp(-1.5, 6.0);
                assert_eq!(y[j], want, "k {k}, n {n}, column {j}");
            }
        }
    }

    /// The int8-weights path (where this CPU has it) against a plain loop in the same order:
    /// `(Σ x·q)·s`, then bias and clamp.
    #[test]
    fn f32_path_with_int8_weights_equals_a_plain_loop() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for _ in 0..30 {
            let k = r.range(1, 300) as usize;
            let n = r.range(1, 300) as usize;
            let x: Vec<f32> = (0..k)
                .map(|_| r.range(-1000, 1000) as f32 / 512.0)
                .collect();
            let q: Vec<i8> = (0..k * n).map(|_| r.range(-127, 127) as i8).collect();
            let scales: Vec<f32> = (0..n).map(|_| r.range(1, 1000) as f32 / 65536.0).collect();
            let bias: Vec<f32> = (0..n)
                .map(|_| r.range(-1000, 1000) as f32 / 512.0)
                .collect();
            let mut y = vec![0f32; n];
            let w = FWeights::I8 {
                q: &q,
                scales: &scales,
            };
            if !sgemv(&x, w, Some(&bias), -1.5, 6.0, &mut y) {
                return;
            }
            for j in 0..n {
                let mut s = 0f32;
                for p in 0..k {
                    s = x[p].mul_add(f32::from(q[p * n + j]), s);
                }
                let want = (s * scales[j] + bias[j]).clamp(-1.5, 6.0);
                assert_eq!(y[j], want, "k {k}, n {n}, column {j}");
            }
        }
    }
}

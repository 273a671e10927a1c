//! Whole output rows of the int8 DEPTHWISE_CONV_2D (see `depthwise_conv`: the operator, its
//! blob form, the sums it reproduces) on x86 with AVX-512 VNNI.
//!
//! `vpdpbusd` adds four u8·i8 products into each i32 lane, exactly (no saturation). A lane
//! is one channel (or one channel of one of the `r` pixels of a wide pixel, see `Wide` in
//! `depthwise_conv`), its four bytes up to four consecutive columns of one filter row. One
//! register per filter row and group of four columns holds those input bytes, the newest
//! column in the top byte: from one output pixel to the next (`sw·r` columns on) it shifts
//! right by a byte per new column and takes that column's bytes in its top bytes (a
//! broadcast 16-byte load and one masked `vpshufb`; two new columns, as at stride 2, one
//! shift by two bytes for both). So each input byte is loaded once per filter row, not
//! once per tap, and nothing is shuffled per tap. Where a (wide) pixel's
//! bytes of 16 lanes lie within 128 bytes of its first column (few channels: MobileNet-v1
//! 0.25's 8 to 32) and the CPU has AVX-512 VBMI, a filter row's register is instead one
//! byte permute of the window's one or two masked loads per pixel (`Plan::perm`): one
//! instruction, not two per column taken in (three at stride 2). Channels go 16 at a time
//! with the pixels of the row inner: the weights and the output stage's constants stay in
//! registers across the row, and the output stage (`quant::requant::x86_512`) runs on the
//! sums in registers.
//!
//! `vpdpbusd` takes u8 inputs: the bytes go in XORed with 0x80 (x + 128), so the sums gain
//! 128·Σw, which the plan takes off their start (`bias − z_x·Σw − 128·Σw`, wrapping as the
//! sums); the bytes of a group below its columns have zero weights. When the kernel does
//! whole rows from the ring, the ring holds them XORed already (`Plan::take_flipped`).
//!
//! The plan is built per operator call from the blob's i16 pair weights (the blob stays as
//! it is): the weights as `[filter row][group][lane]` words of four i8, and the sums' start.
//! Any stride and vertical dilation; horizontal dilation, a depth multiplier above 1, more
//! than `MAX_KH` filter rows or 8 columns, fewer than 16 or more than `CAP` lanes, or fewer
//! than `MIN_PIXELS` output pixels in the call go the general kernel (`depthwise_lanes`).
//! Other targets get an empty plan that never applies.

use super::conv::Geom;
use super::depthwise_lanes::{Finish, Isa};

/// Filter rows the kernel keeps in registers, at most.
pub(crate) const MAX_KH: usize = 5;

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
pub(crate) use imp::Plan;

/// The empty plan of targets without the kernel.
#[cfg(not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)))]
pub(crate) struct Plan;

#[cfg(not(all(target_arch = "x86_64", edgemm_avx512_intrinsics)))]
impl Plan {
    pub(crate) fn new() -> Plan {
        Plan
    }
    pub(crate) fn prepare(
        &mut self,
        _: Isa,
        _: &Geom,
        _: usize,
        _: &[i16],
        _: &[i32],
        _: (&[i32], &[i32]),
    ) -> bool {
        false
    }
    pub(crate) fn row(&self, _: &[(&[i8], usize)], _: &Finish, _: &mut [i8]) -> usize {
        0
    }
    pub(crate) fn take_flipped(&mut self, _: usize, _: i32) -> bool {
        false
    }
    pub(crate) fn flipped(&self) -> bool {
        false
    }
}

/// Copies `src` into `dst` (equal lengths) with every byte XORed with 0x80: the form a
/// flipped ring holds (`Plan::take_flipped`). With AVX-512 64 bytes per step: the ring
/// copy of a large input is a good part of its depthwise time, and the compiler's baseline
/// loop goes 16 bytes at a time.
pub(crate) fn flip_copy(isa: Isa, dst: &mut [i8], src: &[i8]) {
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    if isa == Isa::Avx512Vnni {
        // SAFETY: `Isa::Avx512Vnni` is detected only on CPUs with AVX-512F and BW.
        unsafe { imp::flip_copy(dst, src) };
        return;
    }
    let _ = isa;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s ^ i8::MIN;
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
mod imp {
    use super::{Finish, Geom, Isa, MAX_KH};
    use crate::quant::requant::x86_512::{consts, mbqm, mbqm_small};
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    /// Groups of four filter columns the kernel keeps in registers, at most.
    const MAX_KQ: usize = 2;
    /// Lanes the plan holds, at most.
    const CAP: usize = 1024;
    /// Weight words the plan holds (filter rows × groups × lanes).
    const W_CAP: usize = 3 * CAP;
    /// Output pixels of a call below which the general kernel runs: the plan's setup (the
    /// weights rearranged on every call) outweighs the kernel's gain on fewer.
    const MIN_PIXELS: usize = 16;

    /// The plan's weight words `ws` (`[filter row][group][lane]`, kh·kq·lanes of them) and
    /// sums' start `start` (`init` less 128·Σw, see the module docs) from the pair weights
    /// `w` of `taps` = kh·kw taps, for `start.len()` ≥ 16 lanes; false if a weight is
    /// outside i8 (or a slice is short). 16 lanes at a time, one word register per filter
    /// row and group; the last block ends at the last lane (overlapping the one before: the
    /// same values written again). This runs on every call.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn fill(
        ws: &mut [i32],
        start: &mut [i32],
        init: &[i32],
        w: &[i16],
        (kh, kw, kq): (usize, usize, usize),
    ) -> bool {
        let (lanes, taps) = (start.len(), kh * kw);
        if lanes < 16
            || init.len() < lanes
            || w.len() < taps.div_ceil(2) * 2 * lanes
            || ws.len() < kh * kq * lanes
        {
            return false;
        }
        let (off, span) = (_mm512_set1_epi32(128), _mm512_set1_epi32(255));
        let mut outside: __mmask16 = 0;
        let mut c0 = 0;
        loop {
            let c = c0.min(lanes - 16);
            let mut sum = _mm512_setzero_si512();
            for fy in 0..kh {
                for q in 0..kq {
                    let (lo, hi) = (4 * q, (4 * q + 4).min(kw));
                    let mut word = _mm512_setzero_si512();
                    for fx in lo..hi {
                        let t = fy * kw + fx;
                        // Pair t/2's 16 lanes: dword L holds lane L's taps 2p (low half) and
                        // 2p + 1.
                        let at = (t / 2 * lanes + c) * 2;
                        // SAFETY: at + 32 ≤ taps.div_ceil(2)·2·lanes ≤ w.len() (c + 16 ≤
                        // lanes; checked above): 64 bytes inside `w`.
                        let v = unsafe { _mm512_loadu_si512(w.as_ptr().add(at).cast()) };
                        let v = if t % 2 == 0 {
                            _mm512_slli_epi32::<16>(v)
                        } else {
                            v
                        };
                        let x = _mm512_srai_epi32::<16>(v);
                        outside |= _mm512_cmpgt_epu32_mask(_mm512_add_epi32(x, off), span);
                        sum = _mm512_add_epi32(sum, x);
                        // Column fx in byte 4 − (hi − lo) + (fx − lo): the last on top.
                        let shift = _mm_cvtsi32_si128(8 * (4 + fx - hi) as i32);
                        let byte = _mm512_sll_epi32(_mm512_and_si512(x, span), shift);
                        word = _mm512_or_si512(word, byte);
                    }
                    // SAFETY: (fy·kq + q)·lanes + c + 16 ≤ kh·kq·lanes ≤ ws.len() (checked
                    // above).
                    unsafe {
                        let to = ws.as_mut_ptr().add((fy * kq + q) * lanes + c);
                        _mm512_storeu_si512(to.cast(), word);
                    }
                }
            }
            // SAFETY: c + 16 ≤ lanes ≤ init.len(), start.len() (checked above).
            unsafe {
                let i = _mm512_loadu_si512(init.as_ptr().add(c).cast());
                let s = _mm512_sub_epi32(i, _mm512_slli_epi32::<7>(sum));
                _mm512_storeu_si512(start.as_mut_ptr().add(c).cast(), s);
            }
            if c0 + 16 >= lanes {
                return outside == 0;
            }
            c0 += 16;
        }
    }

    /// The largest |init|, and whether every shift is in −22..=−1 and every multiplier ≥ 0
    /// (reductions without early exits: they vectorize, as wide as the target features).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn bounds(init: &[i32], mults: &[i32], shifts: &[i32]) -> (u32, bool) {
        let top = init.iter().map(|b| b.unsigned_abs()).max().unwrap_or(0);
        // s + 22 in 0..=21; no sign bit in the multipliers' OR.
        let shifts_in = shifts.iter().map(|&s| s.wrapping_add(22) as u32).max() <= Some(21);
        (top, shifts_in && mults.iter().fold(0, |a, &m| a | m) >= 0)
    }

    /// One call's constants (see the module docs).
    pub(crate) struct Plan {
        kh: usize,
        kw: usize,
        /// Groups of four columns.
        kq: usize,
        /// Lanes of an output pixel (c_out, or 16 for wide pixels) and pixels per lane set.
        lanes: usize,
        r: usize,
        /// Input columns from one output (wide) pixel to the next, and such pixels per row.
        step: usize,
        groups: usize,
        /// Every sum below 2^30 in magnitude (the output stage's one-shift form applies).
        small: bool,
        /// `small`, every shift in −22..=−1 and every multiplier ≥ 0 (the FOLD stages'
        /// conditions but the zero point's).
        fold: bool,
        /// The rows come flipped (x XOR 0x80: the kernel's u8 form, see `take_flipped`).
        flip: bool,
        /// One group of columns whose bytes for a (wide) pixel's 16 lanes lie in 64 (1) or
        /// 128 (2) bytes from its first column, with AVX-512 VBMI: each filter row's words
        /// are one byte permute (`vpermb`/`vpermi2b` by `idx`) of one or two masked loads
        /// (`m0`, `m1`) instead of a byte per column shifted in. 0: not so.
        perm: u8,
        idx: [u8; 64],
        m0: u64,
        m1: u64,
        /// `[filter row][group][lane]`: the first `kh·kq·lanes` set by `prepare`.
        w: [MaybeUninit<i32>; W_CAP],
        /// The sums' start per lane: the first `lanes` set by `prepare`.
        init: [MaybeUninit<i32>; CAP],
    }

    /// `v` as values that are initialized.
    fn as_uninit(v: &[i32]) -> &[MaybeUninit<i32>] {
        // SAFETY: same layout; initialized values are valid `MaybeUninit`s.
        unsafe { core::slice::from_raw_parts(v.as_ptr() as *const MaybeUninit<i32>, v.len()) }
    }

    impl Plan {
        pub(crate) fn new() -> Plan {
            Plan {
                kh: 0,
                kw: 0,
                kq: 0,
                lanes: 0,
                r: 0,
                step: 0,
                groups: 0,
                small: false,
                fold: false,
                flip: false,
                perm: 0,
                idx: [0; 64],
                m0: 0,
                m1: 0,
                w: [const { MaybeUninit::uninit() }; W_CAP],
                init: [const { MaybeUninit::uninit() }; CAP],
            }
        }

        /// Sets the plan up for rows of `g` as pixels of `r` pixels (`r` > 1: wide pixels at
        /// stride 1, `w` and `init` then hold the 16 lanes' copies), from the pair weights
        /// `w` (`[pair][lane][2]`), the sums' start `init` and the output stage's
        /// multipliers and shifts `stage` (as many or more); false when the kernel does not apply (`isa`, the geometry, or
        /// a weight outside i8, which a blob from `lower` never holds).
        pub(crate) fn prepare(
            &mut self,
            isa: Isa,
            g: &Geom,
            r: usize,
            w: &[i16],
            init: &[i32],
            stage: (&[i32], &[i32]),
        ) -> bool {
            let (kh, kw, kq) = (g.kh, g.kw, g.kw.div_ceil(4));
            let lanes = g.oc * r;
            let groups = g.ow / r.max(1);
            if isa != Isa::Avx512Vnni
                || g.oc != g.ic
                || g.dw != 1
                || r == 0
                || (r > 1 && (g.sw != 1 || lanes != 16))
                || kh > MAX_KH
                || kq > MAX_KQ
                || !(16..=CAP).contains(&lanes)
                || kh * kq * lanes > W_CAP
                || groups == 0
                || g.batch * g.oh * g.ow < MIN_PIXELS
            {
                return false;
            }
            let (taps, words) = (kh * kw, kh * kq * lanes);
            let (Some(w), Some(init)) = (w.get(..taps.div_ceil(2) * 2 * lanes), init.get(..lanes))
            else {
                return false;
            };
            // Only the parts the kernel reads are written (set first, as values for the
            // slices `fill` writes: not the whole arrays on every call).
            for v in &mut self.w[..words] {
                v.write(0);
            }
            self.init[..lanes].copy_from_slice(as_uninit(init));
            // SAFETY: the first `words` and `lanes` values were just written.
            let (ws, start) = unsafe {
                (
                    core::slice::from_raw_parts_mut(self.w.as_mut_ptr() as *mut i32, words),
                    core::slice::from_raw_parts_mut(self.init.as_mut_ptr() as *mut i32, lanes),
                )
            };
            // SAFETY: the instruction set was checked above (found on this CPU).
            let in_i8 = unsafe { fill(ws, start, init, w, (kh, kw, kq)) };
            // The sum of a pixel is init + Σ w·x over i8 weights and inputs (pad inputs
            // included).
            let most = taps as i64 * 128 * 128;
            let (mults, shifts) = stage;
            let whole = mults.len() >= lanes && shifts.len() >= lanes;
            let (m, s) = (mults.get(..lanes), shifts.get(..lanes));
            // SAFETY: as `fill`'s.
            let (top, folds) = unsafe { bounds(init, m.unwrap_or(&[]), s.unwrap_or(&[])) };
            let small = i64::from(top) + most < 1 << 30;
            let fold = small && whole && folds;
            if !in_i8 {
                return false;
            }
            (self.kh, self.kw, self.kq, self.lanes, self.r) = (kh, kw, kq, lanes, r);
            (self.step, self.groups) = (g.sw * r, groups);
            (self.small, self.fold, self.flip) = (small, fold, false);
            // The bytes of lane L = (pixel p, channel c) of a block: columns p·sw + fx of
            // the pixel's window, channel c (a zero-weight byte: the first); `per` lanes a
            // pixel.
            let per = 16 / r;
            let span = ((r - 1) * g.sw + kw - 1) * g.ic + per;
            let vbmi = {
                use crate::arch::Features;
                crate::arch::cpu_info()
                    .features
                    .contains(Features::AVX512VBMI)
            };
            self.perm = match (kq, vbmi, span) {
                (1, true, ..=64) => 1,
                (1, true, 65..=128) => 2,
                _ => 0,
            };
            if self.perm > 0 {
                for (i, b) in self.idx.iter_mut().enumerate() {
                    let (lane, j) = (i / 4, i % 4);
                    let (p, c) = (lane / per, lane % per);
                    *b = match (j + kw).checked_sub(4) {
                        Some(fx) => ((p * g.sw + fx) * g.ic + c) as u8,
                        None => 0,
                    };
                }
                let mask = |n: usize| if n >= 64 { !0u64 } else { (1u64 << n) - 1 };
                (self.m0, self.m1) = (mask(span), mask(span.saturating_sub(64)));
            }
            true
        }

        /// Whether the caller may give the rows flipped (x XOR 0x80, the pad pixel too) for
        /// rows of `ow` pixels and the zero point `zo`, so that the kernel skips that XOR
        /// per pixel and filter row; if so the plan expects it from now on. It may when
        /// [`Plan::row`] does every pixel of a row (the other kernels read the input as it
        /// is) with a FOLD stage and one group of columns (fewer kernels compiled).
        pub(crate) fn take_flipped(&mut self, ow: usize, zo: i32) -> bool {
            self.flip = self.fold
                && (-128..=127).contains(&zo)
                && self.kq == 1
                && self.groups * self.r == ow;
            self.flip
        }

        pub(crate) fn flipped(&self) -> bool {
            self.flip
        }

        /// Whether a pixel's two fresh columns (stride 2) go into each register at once:
        /// columns by loads, one group (the folded stages' kernels).
        pub(crate) fn two_at_once(&self) -> bool {
            self.perm == 0 && self.kq == 1 && self.kw.min(self.step) == 2
        }

        /// Output row from its filter rows `rows` (each the padded input row, its columns
        /// `col` bytes apart, or the pad pixel with `col` 0) into `out`; returns the pixels
        /// done (from the first): `groups·r`, or 0 when the slices are too short for the
        /// plan (then nothing is written).
        pub(crate) fn row(&self, rows: &[(&[i8], usize)], fin: &Finish, out: &mut [i8]) -> usize {
            if rows.len() != self.kh || out.len() < self.groups * self.lanes {
                return 0;
            }
            // The last column read (groups ≥ 1, kw ≥ 1: prepared).
            let last = (self.groups - 1) * self.step + self.kw - 1;
            let mut src = [(core::ptr::null::<i8>(), 0usize); MAX_KH];
            for (s, &(row, col)) in src.iter_mut().zip(rows) {
                let need = last
                    .checked_mul(col)
                    .and_then(|b| b.checked_add(self.lanes));
                if need.is_none_or(|n| row.len() < n) {
                    return 0;
                }
                *s = (row.as_ptr(), col);
            }
            let o = out.as_mut_ptr();
            // The folded output stage needs its shift and sum bounds (`fold`) and an i8
            // zero point; it narrows with saturation when the clamp is the i8 range.
            let stage = if !self.fold || !(-128..=127).contains(&fin.zo) {
                GENERAL
            } else if fin.lo <= -128 && fin.hi >= 127 {
                FOLD_SAT
            } else {
                FOLD
            };
            if self.flip && (stage == GENERAL || self.kq != 1) {
                return 0; // (not with the zero point `take_flipped` saw)
            }
            macro_rules! kernel {
                ($($kh:literal)*) => {
                    // SAFETY (every arm): the plan was prepared for Isa::Avx512Vnni, found
                    // on this CPU (AVX-512F/BW/VL/VNNI, and VBMI where `perm` is set); each
                    // row holds the columns up to `last` (or is the pad pixel, read at
                    // column 0 only) and `out` the groups' lanes (checked above); `fin`'s
                    // per-channel arrays hold the plan's lanes (the caller's `Finish`
                    // contract); the stage's conditions and the flip's were checked just
                    // above (the general stage and two column groups never flipped).
                    match (self.kh, self.kq, stage) {
                        $(
                            ($kh, 1, GENERAL) => unsafe {
                                kernel::<$kh, 1, GENERAL, false, 0, 0>(self, &src, fin, o)
                            },
                            ($kh, 1, FOLD) => unsafe {
                                variant::<$kh, FOLD>(self, &src, fin, o)
                            },
                            ($kh, 1, _) => unsafe {
                                variant::<$kh, FOLD_SAT>(self, &src, fin, o)
                            },
                            ($kh, 2, GENERAL) => unsafe {
                                kernel::<$kh, 2, GENERAL, false, 0, 0>(self, &src, fin, o)
                            },
                            ($kh, 2, FOLD) => unsafe {
                                kernel::<$kh, 2, FOLD, false, 0, 0>(self, &src, fin, o)
                            },
                            ($kh, 2, _) => unsafe {
                                kernel::<$kh, 2, FOLD_SAT, false, 0, 0>(self, &src, fin, o)
                            },
                        )*
                        _ => return 0,
                    }
                };
            }
            kernel!(1 2 3 4 5);
            self.groups * self.r
        }
    }

    /// Output stages of the kernel: `quant::requant::x86_512`'s, then the zero point and
    /// the clamp.
    const GENERAL: u8 = 0;
    /// With every shift in −22..=−1 and every sum below 2^30 in magnitude (`Plan::fold`) and
    /// a zero point z in −128..=127, TFLite's MultiplyByQuantizedMultiplier plus z in the
    /// form of the GEMM's requantizing epilogue (`RQVEC`):
    /// - SRDHM(x, m) = (x·m + 2^30) >> 31 (floor; as `mbqm`) is the high dword of
    ///   2x·m + 2^31 (2x exact in i32 as |x| < 2^30), so the two 32×32→64 products' high
    ///   dwords are the results: no shifts of the 64-bit halves, one shuffle gathers them;
    /// - with e = −shift ≥ 1, RoundingDivideByPOT(r, e) + z equals
    ///   (r + 2^(e−1) − [r < 0] + z·2^e) >> e (arithmetic): the one-shift form of
    ///   `mbqm_small`, z·2^e being a multiple of 2^e; no overflow, as |r| ≤ 2^30,
    ///   2^(e−1) ≤ 2^21, |z·2^e| ≤ 2^29. So 2^(e−1) + z·2^e is added to the products'
    ///   high dwords (2^32 times it to the 64-bit sums: the high dword's sum is in i32);
    /// - with every multiplier m ≥ 0, −[r < 0] may be −[x < 0]: they differ only where
    ///   x < 0 and r = 0, where (2^(e−1) − 1 + z·2^e) >> e = z = (2^(e−1) + z·2^e) >> e.
    ///
    /// Then the clamp (`FOLD`), or none when it is the i8 range (`FOLD_SAT`): the
    /// saturating narrowing is that clamp.
    const FOLD: u8 = 1;
    const FOLD_SAT: u8 = 2;

    /// The FOLD stages' constants of 16 lanes.
    pub(super) struct Fold {
        m: __m512i,
        /// The multipliers of the odd lanes in the even dwords.
        m_odd: __m512i,
        /// −shift.
        e: __m512i,
        /// 2^31 + (2^(e−1) + z·2^e)·2^32 per 64-bit product: the even lanes' and the odd
        /// lanes'.
        add_even: __m512i,
        add_odd: __m512i,
    }

    impl Fold {
        #[target_feature(enable = "avx512f")]
        #[inline]
        pub(super) fn new(m: __m512i, shift: __m512i, z: __m512i) -> Fold {
            let e = _mm512_sub_epi32(_mm512_setzero_si512(), shift);
            let e1 = _mm512_sub_epi32(e, _mm512_set1_epi32(1));
            let half = _mm512_add_epi32(
                _mm512_sllv_epi32(_mm512_set1_epi32(1), e1),
                _mm512_sllv_epi32(z, e),
            );
            let nudge = _mm512_set1_epi64(1 << 31);
            Fold {
                m,
                m_odd: _mm512_srli_epi64::<32>(m),
                e,
                add_even: _mm512_or_si512(_mm512_slli_epi64::<32>(half), nudge),
                add_odd: _mm512_or_si512(
                    _mm512_and_si512(half, _mm512_set1_epi64(!0xFFFF_FFFF)),
                    nudge,
                ),
            }
        }
    }

    /// MultiplyByQuantizedMultiplier(x, m, shift) + z in 16 lanes by the FOLD form (its
    /// conditions: every |x| < 2^30, shift in −22..=−1, z in −128..=127).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn fold(x: __m512i, f: &Fold) -> __m512i {
        // SRDHM: the high dwords of 2x·m + 2^31 (even lanes from the even products, odd
        // lanes from the odd ones), each product with 2^(e−1) + z·2^e added to its high
        // dword as well (exact: the high dword's sum stays in i32, see FOLD); then the tie
        // correction −[x < 0] (see FOLD) and the rounding shift.
        let x2 = _mm512_add_epi32(x, x);
        let pe = _mm512_add_epi64(_mm512_mul_epi32(x2, f.m), f.add_even);
        let po = _mm512_srli_epi64::<32>(x2);
        let po = _mm512_add_epi64(_mm512_mul_epi32(po, f.m_odd), f.add_odd);
        let r = _mm512_mask_shuffle_epi32::<0xF5>(po, 0x5555, pe);
        _mm512_srav_epi32(_mm512_add_epi32(r, _mm512_srai_epi32::<31>(x)), f.e)
    }

    /// [`super::flip_copy`] (`min(dst, src)` bytes).
    ///
    /// # Safety
    /// AVX-512F/BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn flip_copy(dst: &mut [i8], src: &[i8]) {
        let n = dst.len().min(src.len());
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let x80 = _mm512_set1_epi8(i8::MIN);
        let mut i = 0;
        while i + 64 <= n {
            // SAFETY: bytes i..i + 64 lie inside both slices (i + 64 ≤ n).
            unsafe {
                let v = _mm512_loadu_si512(s.add(i).cast());
                _mm512_storeu_si512(d.add(i).cast(), _mm512_xor_si512(v, x80));
            }
            i += 64;
        }
        if i < n {
            let m: __mmask64 = (1u64 << (n - i)) - 1;
            // SAFETY: the mask covers bytes i..n only (n − i < 64), inside both slices;
            // masked-off bytes are neither read nor written.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(m, s.add(i));
                _mm512_mask_storeu_epi8(d.add(i), m, _mm512_xor_si512(v, x80));
            }
        }
    }

    /// Bytes of each lane's top byte in a 16-lane vector.
    const TOP: __mmask64 = 0x8888_8888_8888_8888;

    /// `vpshufb` control putting byte d of a 128-bit lane's 16 in the top two bytes of dword
    /// d (the other bytes are masked off; byte 2 for two columns taken in at once).
    const CTRL: [u8; 64] = {
        let mut c = [0u8; 64];
        let mut i = 2;
        while i < 64 {
            c[i] = ((i / 16) * 4 + (i % 16) / 4) as u8;
            i += 1 + (i % 4 == 3) as usize * 2;
        }
        c
    };

    /// One column group's folded-stage kernel in the variant the plan chose: the ring
    /// flipped or not (`Plan::flip`), the columns by loads (`perm` 0; two a pixel, as at
    /// stride 2, taken in at once) or by one (1) or two (2) byte-permute sources.
    ///
    /// # Safety
    /// As [`kernel`].
    #[inline(always)]
    unsafe fn variant<const KH: usize, const STAGE: u8>(
        p: &Plan,
        src: &[(*const i8, usize); MAX_KH],
        fin: &Finish,
        out: *mut i8,
    ) {
        // SAFETY: the caller's (as `kernel`'s).
        unsafe {
            match (p.flip, p.perm, p.two_at_once()) {
                (false, 0, true) => kernel::<KH, 1, STAGE, false, 0, 2>(p, src, fin, out),
                (true, 0, true) => kernel::<KH, 1, STAGE, true, 0, 2>(p, src, fin, out),
                (false, 0, _) => kernel::<KH, 1, STAGE, false, 0, 0>(p, src, fin, out),
                (true, 0, _) => kernel::<KH, 1, STAGE, true, 0, 0>(p, src, fin, out),
                (false, 1, _) => kernel::<KH, 1, STAGE, false, 1, 0>(p, src, fin, out),
                (true, 1, _) => kernel::<KH, 1, STAGE, true, 1, 0>(p, src, fin, out),
                (false, ..) => kernel::<KH, 1, STAGE, false, 2, 0>(p, src, fin, out),
                (true, ..) => kernel::<KH, 1, STAGE, true, 2, 0>(p, src, fin, out),
            }
        }
    }

    /// The row for `KH` filter rows and `KQ` column groups; `FRESH` 2: each pixel takes in
    /// two columns (`fresh`, one group), with one shift of its register (0: as `fresh`
    /// says, one shift per column).
    ///
    /// # Safety
    /// AVX-512F/BW/VL/VNNI; for each filter row, bytes `0..last·col + lanes` of `src[fy]`
    /// readable (`last` as in [`Plan::row`]); `out` writable for `groups·lanes` bytes; `fin`'s
    /// multipliers and shifts readable for `lanes` values.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn kernel<
        const KH: usize,
        const KQ: usize,
        const STAGE: u8,
        const FLIP: bool,
        const PERM: u8,
        const FRESH: usize,
    >(
        p: &Plan,
        src: &[(*const i8, usize); MAX_KH],
        fin: &Finish,
        out: *mut i8,
    ) {
        let x80 = _mm512_set1_epi8(-128);
        // SAFETY: 64 bytes.
        let ctrl = unsafe { _mm512_loadu_si512(CTRL.as_ptr() as *const __m512i) };
        let (zo, lo, hi) = (
            _mm512_set1_epi32(fin.zo),
            _mm512_set1_epi32(fin.lo),
            _mm512_set1_epi32(fin.hi),
        );
        let small = p.small && !fin.left;
        // Columns of group q: lo(q)..hi(q); each output pixel takes in its last `fresh(q)`.
        let cols = |q: usize| (4 * q, (4 * q + 4).min(p.kw));
        let fresh = |q: usize| {
            let (lo, hi) = cols(q);
            (hi - lo).min(p.step)
        };
        // SAFETY: 64 bytes.
        let idx = unsafe { _mm512_loadu_si512(p.idx.as_ptr() as *const __m512i) };
        let mut blocks = p.lanes.div_ceil(16);
        // SAFETY (whole loop): the bytes read are the rows' columns 0..=last at channels
        // c0..c0 + 16 ≤ lanes (a row with `col` 0: its first 16 + c0 bytes), the plan's
        // arrays in the parts `prepare` set (lanes below `lanes` of each filter row and
        // group), `fin`'s at lanes below `lanes`, and the
        // output bytes written those of pixels below `groups` at lanes below `lanes`.
        unsafe {
            while blocks > 0 {
                blocks -= 1;
                // The last block ends at `lanes` (overlapping the one before when lanes is
                // not a multiple of 16: the same values written twice).
                let c0 = (16 * blocks).min(p.lanes - 16);
                let mut w = [[_mm512_setzero_si512(); KQ]; KH];
                for (fy, w) in w.iter_mut().enumerate() {
                    for (q, w) in w.iter_mut().enumerate() {
                        let at = (fy * KQ + q) * p.lanes + c0;
                        *w = _mm512_loadu_si512(p.w.as_ptr().add(at) as *const __m512i);
                    }
                }
                let init = _mm512_loadu_si512(p.init.as_ptr().add(c0) as *const __m512i);
                let m = _mm512_loadu_si512(fin.mults.add(c0) as *const __m512i);
                let shift = _mm512_loadu_si512(fin.shifts.add(c0) as *const __m512i);
                let k = consts(m, shift);
                // FOLD stages: the multipliers of the odd lanes in the even dwords, the
                // shift e and the rounding term 2^(e−1) + z·2^e (see FOLD).
                let f = Fold::new(m, shift, zo);
                // Takes input column `c` of filter row `fy` into `v` (a macro: a closure
                // would not have the function's target features).
                macro_rules! take {
                    ($v:expr, $fy:expr, $c:expr) => {{
                        let (row, col) = src[$fy];
                        let b = _mm512_broadcast_i32x4(_mm_loadu_si128(
                            row.add($c * col + c0) as *const __m128i
                        ));
                        _mm512_mask_shuffle_epi8(_mm512_srli_epi32::<8>($v), TOP, b, ctrl)
                    }};
                }
                // PERM: a pad row's words (the pad pixel is one value repeated).
                let mut pad_words = [_mm512_setzero_si512(); KH];
                for (v, &(row, col)) in pad_words.iter_mut().zip(src) {
                    if PERM > 0 && col == 0 {
                        *v = _mm512_set1_epi8(*row);
                    }
                }
                // The columns before the first pixel's fresh ones.
                let mut reg = [[_mm512_setzero_si512(); KQ]; KH];
                for (fy, reg) in reg.iter_mut().enumerate() {
                    if PERM > 0 {
                        break;
                    }
                    for (q, reg) in reg.iter_mut().enumerate() {
                        let (lo, hi) = cols(q);
                        for c in lo..hi - fresh(q) {
                            *reg = take!(*reg, fy, c);
                        }
                    }
                }
                for px in 0..p.groups {
                    let mut acc = init;
                    for (fy, reg) in reg.iter_mut().enumerate() {
                        if PERM > 0 {
                            let (row, col) = src[fy];
                            let v = if col == 0 {
                                pad_words[fy]
                            } else {
                                // Bytes m0 (m1) of the pixel's first column on (from
                                // c0), inside the row (its last pixel's reach is `last`).
                                let b = row.add(px * p.step * col + c0);
                                let lo = _mm512_maskz_loadu_epi8(p.m0, b);
                                let v: __m512i;
                                if PERM == 1 {
                                    core::arch::asm!(
                                        "vpermb {v}, {i}, {lo}",
                                        v = lateout(zmm_reg) v,
                                        i = in(zmm_reg) idx,
                                        lo = in(zmm_reg) lo,
                                        options(pure, nomem, nostack),
                                    );
                                } else {
                                    let hi = _mm512_maskz_loadu_epi8(p.m1, b.wrapping_add(64));
                                    core::arch::asm!(
                                        "vpermi2b {v}, {lo}, {hi}",
                                        v = inout(zmm_reg) idx => v,
                                        lo = in(zmm_reg) lo,
                                        hi = in(zmm_reg) hi,
                                        options(pure, nomem, nostack),
                                    );
                                }
                                v
                            };
                            let u = if FLIP { v } else { _mm512_xor_si512(v, x80) };
                            acc = _mm512_dpbusd_epi32(acc, u, w[fy][0]);
                            continue;
                        }
                        for (q, reg) in reg.iter_mut().enumerate() {
                            let end = px * p.step + cols(q).1;
                            if FRESH == 2 {
                                // As two takes: the older column ends in byte 2.
                                let (row, col) = src[fy];
                                let older = row.add((end - 2) * col + c0) as *const __m128i;
                                let newer = row.add((end - 1) * col + c0) as *const __m128i;
                                let (a, b) = (_mm_loadu_si128(older), _mm_loadu_si128(newer));
                                let v = _mm512_srli_epi32::<16>(*reg);
                                let a = _mm512_broadcast_i32x4(a);
                                let v = _mm512_mask_shuffle_epi8(v, TOP >> 1, a, ctrl);
                                let b = _mm512_broadcast_i32x4(b);
                                *reg = _mm512_mask_shuffle_epi8(v, TOP, b, ctrl);
                            } else {
                                for c in end - fresh(q)..end {
                                    *reg = take!(*reg, fy, c);
                                }
                            }
                            // (The u8 form: x XOR 0x80, unless the rows come so.)
                            let u = if FLIP {
                                *reg
                            } else {
                                _mm512_xor_si512(*reg, x80)
                            };
                            acc = _mm512_dpbusd_epi32(acc, u, w[fy][q]);
                        }
                    }
                    let o = out.add(px * p.lanes + c0) as *mut __m128i;
                    if STAGE == GENERAL {
                        let v = if small {
                            mbqm_small(acc, &k)
                        } else {
                            mbqm(acc, &k, fin.left)
                        };
                        let v = _mm512_add_epi32(v, zo);
                        let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                        // In the byte range already: truncating keeps each value.
                        _mm_storeu_si128(o, _mm512_cvtepi32_epi8(v));
                        continue;
                    }
                    let v = fold(acc, &f);
                    if STAGE == FOLD_SAT {
                        _mm_storeu_si128(o, _mm512_cvtsepi32_epi8(v));
                    } else {
                        let v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
                        // In the byte range after the clamp: truncating keeps each value.
                        _mm_storeu_si128(o, _mm512_cvtepi32_epi8(v));
                    }
                }
            }
        }
    }
}

#[cfg(all(
    test,
    target_arch = "x86_64",
    edgemm_avx512_intrinsics,
    feature = "std"
))]
mod tests {
    use super::imp::{fold, Fold};
    use crate::reference::multiply_by_quantized_multiplier;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::arch::x86_64::*;

    /// The FOLD output stage against the reference over its domain's edges and a sweep:
    /// sums up to ±(2^30 − 1), every shift −22..=−1, multipliers from 0 to 2^31 − 1, zero
    /// points −128 and 127 and between.
    #[test]
    fn fold_stage_matches_the_reference() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let top = (1 << 30) - 1;
        let mut xs: Vec<i32> = vec![0, 1, -1, top, -top, top - 1, -top + 1, 1 << 29, -(1 << 29)];
        let mut v: u64 = 0x243f_6a88_85a3_08d3;
        let mut next = || {
            v ^= v << 13;
            v ^= v >> 7;
            v ^= v << 17;
            v
        };
        for _ in 0..4000 {
            let r = next();
            // Magnitudes of every size, both signs.
            let x = (r >> 34) as i32 >> (r % 31);
            xs.push(x.clamp(-top, top));
        }
        let ms = [0, 1, 3, 1 << 30, 1_518_500_250, i32::MAX - 1, i32::MAX];
        for shift in -22..=-1 {
            for &m in &ms {
                for z in [-128, -1, 0, 37, 127] {
                    // SAFETY: AVX-512F detected above.
                    let f = unsafe {
                        Fold::new(
                            _mm512_set1_epi32(m),
                            _mm512_set1_epi32(shift),
                            _mm512_set1_epi32(z),
                        )
                    };
                    for chunk in xs.chunks(16) {
                        let mut x = [0i32; 16];
                        x[..chunk.len()].copy_from_slice(chunk);
                        let mut got = [0i32; 16];
                        // SAFETY: AVX-512F detected; 16 i32 read and written.
                        unsafe {
                            let r = fold(_mm512_loadu_si512(x.as_ptr() as *const _), &f);
                            _mm512_storeu_si512(got.as_mut_ptr() as *mut _, r);
                        }
                        for (&x, &g) in x.iter().zip(&got) {
                            let want = multiply_by_quantized_multiplier(x, m, shift) + z;
                            assert_eq!(g, want, "x {x} m {m} shift {shift} z {z}");
                        }
                    }
                }
            }
        }
    }

    /// A weight outside i8 (in any lane, tap or block, the last block overlapping) keeps
    /// the plan from applying; the i8 range's ends do not.
    #[test]
    fn weights_outside_i8_are_refused() {
        use super::super::conv::Geom;
        use super::super::depthwise_lanes::Isa;
        if Isa::detect() != Isa::Avx512Vnni {
            return;
        }
        let (c, taps) = (40, 9usize);
        let g = Geom {
            batch: 1,
            ih: 6,
            iw: 6,
            ic: c,
            oh: 4,
            ow: 4,
            oc: c,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            pt: 0,
            pl: 0,
        };
        let init = vec![0i32; c];
        let stage = (&[1 << 30; 40][..], &[-1; 40][..]);
        let mut plan = super::Plan::new();
        // `[pair][lane][2]`: every tap of every lane once (the pad tap of the odd pair too).
        for at in 0..taps.div_ceil(2) * 2 * c {
            let pad = at / (2 * c) == taps / 2 && at % 2 == 1;
            for (v, ok) in [(127, true), (-128, true), (128, false), (-129, false)] {
                let mut w = vec![1i16; taps.div_ceil(2) * 2 * c];
                w[at] = v;
                let got = plan.prepare(Isa::Avx512Vnni, &g, 1, &w, &init, stage);
                assert_eq!(got, ok || pad, "weight {v} at {at}");
            }
        }
    }

    /// The AVX-512 flipped copy against the byte loop: every length to 200 (whole vectors
    /// and masked tails), at unaligned starts, over every byte value; bytes past the end
    /// untouched.
    #[test]
    fn flip_copy_matches_the_byte_loop() {
        use super::super::depthwise_lanes::Isa;
        if Isa::detect() != Isa::Avx512Vnni {
            return;
        }
        let src: Vec<i8> = (0..300u32).map(|i| (i * 37 + 11) as u8 as i8).collect();
        for off in [0, 1, 5, 63] {
            for n in 0..200 {
                let s = &src[off..off + n];
                let want: Vec<i8> = s.iter().map(|&x| (x as u8 ^ 0x80) as i8).collect();
                let mut dst = vec![7i8; n + 70];
                super::flip_copy(Isa::Avx512Vnni, &mut dst[1..1 + n], s);
                assert_eq!(&dst[1..1 + n], &want[..], "off {off} n {n}");
                assert!(dst[1 + n..].iter().all(|&x| x == 7) && dst[0] == 7);
            }
        }
    }
}

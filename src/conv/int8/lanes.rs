//! Exact i32 vectors across channels for the int8 depthwise convolution, written once
//! generic over a lane type [`QLanes`] and instantiated per ISA inside a function compiled
//! for it ([`run_split`]): AVX-512BW with VNNI (`vpdpwssd`), AVX-512BW (`vpmaddwd` +
//! `vpaddd`), AVX2 (the same on 8 lanes), portable (8-lane arrays LLVM vectorizes), and a
//! scalar `i32` lane for the channels left over.
//!
//! The multiply-add is `acc + x·w` with `x` an input byte widened to an i32 lane and `w` a
//! weight stored as an i32 lane whose low 16 bits are the weight (as i16) and whose high 16
//! bits are zero. `vpmaddwd` multiplies the 16-bit halves pairwise and adds the two
//! products: low·low is `x·w` (x fits i16: −128..=255) and high·high is `x_hi·0 = 0`. Each
//! product is at most 255·128 in magnitude and the sums wrap (exact whenever the final value
//! fits i32, which the layer's validation guarantees).

/// Instruction sets the int8 depthwise convolution is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QIsa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512Bw,
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512Vnni,
}

impl QIsa {
    /// The best ISA this CPU runs.
    pub(crate) fn detect() -> QIsa {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::Features;
            let f = crate::arch::cpu_info().features;
            #[cfg(edgemm_avx512_intrinsics)]
            {
                let bw = Features::AVX512F
                    .with(Features::AVX512BW)
                    .with(Features::AVX2);
                if f.contains(bw.with(Features::AVX512VNNI)) {
                    return QIsa::Avx512Vnni;
                }
                if f.contains(bw) {
                    return QIsa::Avx512Bw;
                }
            }
            if f.contains(Features::AVX2) {
                return QIsa::Avx2;
            }
        }
        QIsa::Portable
    }

    /// Every ISA this CPU runs (for tests).
    #[cfg(test)]
    pub(crate) fn all_runnable() -> alloc::vec::Vec<QIsa> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = alloc::vec![QIsa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::Features;
            let f = crate::arch::cpu_info().features;
            if f.contains(Features::AVX2) {
                v.push(QIsa::Avx2);
            }
            #[cfg(edgemm_avx512_intrinsics)]
            {
                let bw = Features::AVX512F
                    .with(Features::AVX512BW)
                    .with(Features::AVX2);
                if f.contains(bw) {
                    v.push(QIsa::Avx512Bw);
                }
                if f.contains(bw.with(Features::AVX512VNNI)) {
                    v.push(QIsa::Avx512Vnni);
                }
            }
        }
        v
    }
}

/// A vector of `N` i32 lanes.
///
/// The x86 implementations wrap registers whose operations need the ISA of their type; they
/// are only ever instantiated inside the `#[target_feature]` functions of [`run_split`],
/// which are only called when [`QIsa::detect`] found the feature (the invariant behind the
/// `unsafe` blocks in their methods).
pub(crate) trait QLanes: Copy {
    const N: usize;
    /// `N` bytes at `p` widened to i32: sign-extended when `SIGNED`, zero-extended otherwise.
    ///
    /// # Safety
    /// `N` readable bytes at `p`.
    unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self;
    /// # Safety
    /// `N` readable i32 at `p` (no alignment needed).
    unsafe fn load(p: *const i32) -> Self;
    /// # Safety
    /// `N` writable i32 at `p` (no alignment needed).
    unsafe fn store(self, p: *mut i32);
    /// `self + x·w16` lane by lane (wrapping), `w16` the low 16 bits of `w` as i16 (its high
    /// 16 bits are zero), `x` in −128..=255.
    fn madd(self, x: Self, w: Self) -> Self;
    /// Every lane `v`.
    fn splat(v: i32) -> Self;
}

/// The weight of a packed lane (low 16 bits as i16).
#[inline(always)]
fn w16(w: i32) -> i32 {
    w as i16 as i32
}

/// Packs a weight into a lane for [`QLanes::madd`].
#[inline(always)]
pub(crate) fn pack_w(w: i8) -> i32 {
    (w as i16 as u16) as i32
}

impl QLanes for i32 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self {
        // SAFETY: one readable byte (caller).
        let b = unsafe { *p };
        if SIGNED {
            b as i8 as i32
        } else {
            b as i32
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: one readable i32 (caller).
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: one writable i32 (caller).
        unsafe { p.write_unaligned(self) }
    }
    #[inline(always)]
    fn madd(self, x: Self, w: Self) -> Self {
        self.wrapping_add(x.wrapping_mul(w16(w)))
    }
    #[inline(always)]
    fn splat(v: i32) -> Self {
        v
    }
}

/// Eight lanes in portable Rust.
#[derive(Clone, Copy)]
pub(crate) struct P8([i32; 8]);

impl QLanes for P8 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self {
        // SAFETY: eight readable bytes (caller).
        let b = unsafe { (p as *const [u8; 8]).read_unaligned() };
        let mut r = [0i32; 8];
        for (x, &v) in r.iter_mut().zip(&b) {
            *x = if SIGNED { v as i8 as i32 } else { v as i32 };
        }
        P8(r)
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: eight readable i32 (caller).
        P8(unsafe { (p as *const [i32; 8]).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: eight writable i32 (caller).
        unsafe { (p as *mut [i32; 8]).write_unaligned(self.0) }
    }
    #[inline(always)]
    fn madd(self, x: Self, w: Self) -> Self {
        let mut r = self.0;
        for ((a, &x), &w) in r.iter_mut().zip(&x.0).zip(&w.0) {
            *a = a.wrapping_add(x.wrapping_mul(w16(w)));
        }
        P8(r)
    }
    #[inline(always)]
    fn splat(v: i32) -> Self {
        P8([v; 8])
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::I32x8;
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
pub(crate) use x86::{I32x16, I32x16Vnni};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::QLanes;
    use core::arch::x86_64::*;

    /// Eight i32 lanes in a ymm register (AVX2).
    #[derive(Clone, Copy)]
    pub(crate) struct I32x8(__m256i);

    impl QLanes for I32x8 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self {
            // SAFETY: AVX2 enabled (type invariant); eight readable bytes (caller).
            unsafe {
                let b = _mm_loadl_epi64(p as *const __m128i);
                I32x8(if SIGNED {
                    _mm256_cvtepi8_epi32(b)
                } else {
                    _mm256_cvtepu8_epi32(b)
                })
            }
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            // SAFETY: AVX2 enabled (type invariant); eight readable i32 (caller).
            unsafe { I32x8(_mm256_loadu_si256(p as *const __m256i)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: AVX2 enabled (type invariant); eight writable i32 (caller).
            unsafe { _mm256_storeu_si256(p as *mut __m256i, self.0) }
        }
        #[inline(always)]
        fn madd(self, x: Self, w: Self) -> Self {
            // SAFETY: AVX2 enabled (type invariant); no memory access.
            unsafe { I32x8(_mm256_add_epi32(self.0, _mm256_madd_epi16(x.0, w.0))) }
        }
        #[inline(always)]
        fn splat(v: i32) -> Self {
            // SAFETY: AVX2 enabled (type invariant); no memory access.
            unsafe { I32x8(_mm256_set1_epi32(v)) }
        }
    }

    /// Sixteen i32 lanes in a zmm register (AVX-512F/BW).
    #[cfg(edgemm_avx512_intrinsics)]
    #[derive(Clone, Copy)]
    pub(crate) struct I32x16(__m512i);

    /// Sixteen i32 lanes, multiply-add with VNNI's `vpdpwssd`.
    #[cfg(edgemm_avx512_intrinsics)]
    #[derive(Clone, Copy)]
    pub(crate) struct I32x16Vnni(__m512i);

    // The intrinsics are newer than the crate's MSRV; build.rs sets
    // `edgemm_avx512_intrinsics` only for compilers that have them.
    #[cfg(edgemm_avx512_intrinsics)]
    #[allow(clippy::incompatible_msrv)]
    impl QLanes for I32x16 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self {
            // SAFETY: AVX-512F/BW enabled (type invariant); 16 readable bytes (caller).
            unsafe {
                let b = _mm_loadu_si128(p as *const __m128i);
                I32x16(if SIGNED {
                    _mm512_cvtepi8_epi32(b)
                } else {
                    _mm512_cvtepu8_epi32(b)
                })
            }
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); 16 readable i32 (caller).
            unsafe { I32x16(_mm512_loadu_si512(p as *const _)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: AVX-512F enabled (type invariant); 16 writable i32 (caller).
            unsafe { _mm512_storeu_si512(p as *mut _, self.0) }
        }
        #[inline(always)]
        fn madd(self, x: Self, w: Self) -> Self {
            // SAFETY: AVX-512BW enabled (type invariant); no memory access.
            unsafe { I32x16(_mm512_add_epi32(self.0, _mm512_madd_epi16(x.0, w.0))) }
        }
        #[inline(always)]
        fn splat(v: i32) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { I32x16(_mm512_set1_epi32(v)) }
        }
    }

    #[cfg(edgemm_avx512_intrinsics)]
    #[allow(clippy::incompatible_msrv)]
    impl QLanes for I32x16Vnni {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn load_x<const SIGNED: bool>(p: *const u8) -> Self {
            // SAFETY: as for I32x16 (same features plus VNNI).
            unsafe { I32x16Vnni(I32x16::load_x::<SIGNED>(p).0) }
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            // SAFETY: as for I32x16.
            unsafe { I32x16Vnni(I32x16::load(p).0) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: as for I32x16.
            unsafe { I32x16(self.0).store(p) }
        }
        #[inline(always)]
        fn madd(self, x: Self, w: Self) -> Self {
            // vpdpwssd: the same pairwise 16-bit products and sum as vpmaddwd, added to the
            // accumulator without saturation.
            // SAFETY: AVX-512 VNNI enabled (type invariant); no memory access.
            unsafe { I32x16Vnni(_mm512_dpwssd_epi32(self.0, x.0, w.0)) }
        }
        #[inline(always)]
        fn splat(v: i32) -> Self {
            I32x16Vnni(I32x16::splat(v).0)
        }
    }
}

/// A stage written once for any lane type: `run::<L>(c0, c1)` processes channels `c0..c1`,
/// a multiple of `L::N` of them. Implementations are `#[inline(always)]` so each
/// instantiation is compiled inside its ISA's function.
pub(crate) trait QLaneFn {
    /// # Safety
    /// The stage's own contract for these channels, and `L`'s ISA runs on this CPU.
    unsafe fn run<L: QLanes>(&mut self, c0: usize, c1: usize);
}

/// Runs `f` over channels `0..channels` with the widest lanes of `isa`, then narrower ones
/// for the channels left over.
///
/// # Safety
/// `f`'s contract for channels `0..channels`; `isa` runs on this CPU.
pub(crate) unsafe fn run_split<F: QLaneFn>(isa: QIsa, f: &mut F, channels: usize) {
    // SAFETY: forwarded; each ISA function is only called for its ISA.
    unsafe {
        match isa {
            QIsa::Portable => split_portable(f, channels),
            #[cfg(target_arch = "x86_64")]
            QIsa::Avx2 => split_avx2(f, channels),
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            QIsa::Avx512Bw => split_avx512::<F, I32x16>(f, channels),
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            QIsa::Avx512Vnni => split_avx512_vnni(f, channels),
        }
    }
}

#[inline(always)]
unsafe fn split_portable<F: QLaneFn>(f: &mut F, channels: usize) {
    let c8 = channels / 8 * 8;
    // SAFETY: forwarded from run_split.
    unsafe {
        if c8 > 0 {
            f.run::<P8>(0, c8);
        }
        if c8 < channels {
            f.run::<i32>(c8, channels);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_avx2<F: QLaneFn>(f: &mut F, channels: usize) {
    let c8 = channels / 8 * 8;
    // SAFETY: forwarded from run_split; this function runs only with AVX2.
    unsafe {
        if c8 > 0 {
            f.run::<I32x8>(0, c8);
        }
        if c8 < channels {
            f.run::<i32>(c8, channels);
        }
    }
}

/// 16 lanes of `L` (AVX-512BW, with VNNI for `I32x16Vnni`), then 8 (AVX2), then 1.
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[inline(always)]
unsafe fn split16<F: QLaneFn, L: QLanes>(f: &mut F, channels: usize) {
    let c16 = channels / 16 * 16;
    let c8 = c16 + (channels - c16) / 8 * 8;
    // SAFETY: forwarded; only instantiated inside the target-feature functions below.
    unsafe {
        if c16 > 0 {
            f.run::<L>(0, c16);
        }
        if c8 > c16 {
            f.run::<I32x8>(c16, c8);
        }
        if c8 < channels {
            f.run::<i32>(c8, channels);
        }
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
#[allow(clippy::incompatible_msrv)]
unsafe fn split_avx512<F: QLaneFn, L: QLanes>(f: &mut F, channels: usize) {
    // SAFETY: forwarded from run_split; runs only with AVX-512F/BW and AVX2.
    unsafe { split16::<F, L>(f, channels) }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
#[allow(clippy::incompatible_msrv)]
unsafe fn split_avx512_vnni<F: QLaneFn>(f: &mut F, channels: usize) {
    // SAFETY: forwarded from run_split; runs only with AVX-512F/BW/VNNI and AVX2.
    unsafe { split16::<F, I32x16Vnni>(f, channels) }
}

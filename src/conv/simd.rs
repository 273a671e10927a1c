//! Vectors across channels. NHWC keeps channels contiguous, so every elementwise stage of a
//! convolution (Winograd transforms, depthwise, bias and activation) is written once,
//! generic over a lane type [`Lanes`], and instantiated per ISA inside a function compiled
//! for that ISA ([`run_split`]): AVX-512F (16 lanes), AVX2+FMA (8 lanes), portable
//! (8 lanes LLVM vectorizes for the baseline target), with a scalar `f32` (1 lane) for the
//! channels left over.

/// Instruction sets the convolution stages are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Portable Rust (8-lane arrays; LLVM vectorizes them for the build's baseline).
    Portable,
    /// x86-64 AVX2 + FMA, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 AVX-512F, 16 lanes (needs a compiler with stable AVX-512 intrinsics).
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512,
}

impl Isa {
    /// The best ISA this CPU runs.
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::Features;
            let f = crate::arch::cpu_info().features;
            #[cfg(edgemm_avx512_intrinsics)]
            if f.contains(Features::AVX512F.with(Features::AVX2).with(Features::FMA)) {
                return Isa::Avx512;
            }
            if f.contains(Features::AVX2.with(Features::FMA)) {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every ISA this CPU runs (for tests).
    #[cfg(test)]
    pub(crate) fn all_runnable() -> alloc::vec::Vec<Isa> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut v = alloc::vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::Features;
            let f = crate::arch::cpu_info().features;
            if f.contains(Features::AVX2.with(Features::FMA)) {
                v.push(Isa::Avx2);
            }
            #[cfg(edgemm_avx512_intrinsics)]
            if f.contains(Features::AVX512F.with(Features::AVX2).with(Features::FMA)) {
                v.push(Isa::Avx512);
            }
        }
        v
    }
}

/// A vector of `N` f32 lanes.
///
/// The x86 implementations wrap registers whose operations need AVX2+FMA or AVX-512F; they
/// are only ever instantiated inside the `#[target_feature]` functions of [`run_split`],
/// which are only called when [`Isa::detect`] found the feature (that is the invariant
/// behind the `unsafe` blocks in their methods).
pub(crate) trait Lanes: Copy {
    const N: usize;
    /// # Safety
    /// `N` readable f32 at `p` (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `N` writable f32 at `p` (no alignment needed).
    unsafe fn store(self, p: *mut f32);
    fn splat(x: f32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// `self + a·b` (fused where the ISA has FMA).
    fn mla(self, a: Self, b: Self) -> Self;
    /// `min(max(self, lo), hi)`; a NaN lane stays NaN.
    fn clamp(self, lo: Self, hi: Self) -> Self;

    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }
    /// `self + a·c` for a constant `c`.
    #[inline(always)]
    fn mlac(self, a: Self, c: f32) -> Self {
        self.mla(a, Self::splat(c))
    }
    #[inline(always)]
    fn mulc(self, c: f32) -> Self {
        self.mul(Self::splat(c))
    }
}

/// min(max(x, lo), hi) with NaN passing through (the scalar activation).
#[inline(always)]
pub(crate) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

impl Lanes for f32 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: one readable f32 (caller).
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: one writable f32 (caller).
        unsafe { p.write_unaligned(self) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn mla(self, a: Self, b: Self) -> Self {
        self + a * b
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        clamp(self, lo, hi)
    }
}

/// Eight lanes in portable Rust.
#[derive(Clone, Copy)]
pub(crate) struct P8([f32; 8]);

impl P8 {
    #[inline(always)]
    fn map2(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut r = [0f32; 8];
        for (i, x) in r.iter_mut().enumerate() {
            *x = f(self.0[i], o.0[i]);
        }
        P8(r)
    }
}

impl Lanes for P8 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: eight readable f32 (caller).
        P8(unsafe { (p as *const [f32; 8]).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: eight writable f32 (caller).
        unsafe { (p as *mut [f32; 8]).write_unaligned(self.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        P8([x; 8])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.map2(o, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.map2(o, |a, b| a - b)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self.map2(o, |a, b| a * b)
    }
    #[inline(always)]
    fn mla(self, a: Self, b: Self) -> Self {
        self.add(a.mul(b))
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        let mut r = [0f32; 8];
        for (i, x) in r.iter_mut().enumerate() {
            *x = clamp(self.0[i], lo.0[i], hi.0[i]);
        }
        P8(r)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Avx;
#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
pub(crate) use x86::Avx512;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use core::arch::x86_64::*;

    /// Eight lanes in a ymm register (AVX2 + FMA).
    #[derive(Clone, Copy)]
    pub(crate) struct Avx(__m256);

    // The type is only used inside functions compiled with AVX2+FMA and called after
    // detecting them (see `Lanes`).
    impl Lanes for Avx {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); N elements valid (caller).
            unsafe { Avx(_mm256_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX2+FMA enabled (type invariant); N elements valid (caller).
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_set1_ps(x)) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_add_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_sub_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_mul_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn mla(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_fmadd_ps(a.0, b.0, self.0)) }
        }
        #[inline(always)]
        fn clamp(self, lo: Self, hi: Self) -> Self {
            // max/min return their second operand when either is NaN: x goes second.
            // SAFETY: AVX2+FMA enabled (type invariant); no memory access.
            unsafe { Avx(_mm256_min_ps(hi.0, _mm256_max_ps(lo.0, self.0))) }
        }
    }

    /// Sixteen lanes in a zmm register (AVX-512F).
    #[cfg(edgemm_avx512_intrinsics)]
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(__m512);

    // As `Avx`, with AVX-512F. (The intrinsics are newer than the crate's MSRV; build.rs
    // sets `edgemm_avx512_intrinsics` only for compilers that have them.)
    #[cfg(edgemm_avx512_intrinsics)]
    #[allow(clippy::incompatible_msrv)]
    impl Lanes for Avx512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); N elements valid (caller).
            unsafe { Avx512(_mm512_loadu_ps(p)) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX-512F enabled (type invariant); N elements valid (caller).
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_set1_ps(x)) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_add_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_sub_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_mul_ps(self.0, o.0)) }
        }
        #[inline(always)]
        fn mla(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_fmadd_ps(a.0, b.0, self.0)) }
        }
        #[inline(always)]
        fn clamp(self, lo: Self, hi: Self) -> Self {
            // SAFETY: AVX-512F enabled (type invariant); no memory access.
            unsafe { Avx512(_mm512_min_ps(hi.0, _mm512_max_ps(lo.0, self.0))) }
        }
    }
}

/// A stage of a convolution written once for any lane type: `run::<L>(c0, c1)` processes
/// channels `c0..c1`, a multiple of `L::N` of them. Implementations are `#[inline(always)]`
/// so each instantiation is compiled inside its ISA's function.
pub(crate) trait LaneFn {
    /// # Safety
    /// The stage's own contract (its fields point at valid memory for these channels), and
    /// `L`'s ISA runs on this CPU.
    unsafe fn run<L: Lanes>(&mut self, c0: usize, c1: usize);
}

/// Runs `f` over channels `0..channels` with the widest lanes of `isa`, then narrower ones
/// for the channels left over (16, then 8, then 1 at a time on AVX-512).
///
/// # Safety
/// `f`'s contract for channels `0..channels`; `isa` runs on this CPU.
pub(crate) unsafe fn run_split<F: LaneFn>(isa: Isa, f: &mut F, channels: usize) {
    // SAFETY: forwarded; each ISA function is only called for its ISA.
    unsafe {
        match isa {
            Isa::Portable => split_portable(f, channels),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => split_avx2(f, channels),
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            Isa::Avx512 => split_avx512(f, channels),
        }
    }
}

#[inline(always)]
unsafe fn split_portable<F: LaneFn>(f: &mut F, channels: usize) {
    let c8 = channels / 8 * 8;
    // SAFETY: forwarded from run_split.
    unsafe {
        if c8 > 0 {
            f.run::<P8>(0, c8);
        }
        if c8 < channels {
            f.run::<f32>(c8, channels);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn split_avx2<F: LaneFn>(f: &mut F, channels: usize) {
    let c8 = channels / 8 * 8;
    // SAFETY: forwarded from run_split; this function runs only with AVX2+FMA.
    unsafe {
        if c8 > 0 {
            f.run::<Avx>(0, c8);
        }
        if c8 < channels {
            f.run::<f32>(c8, channels);
        }
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn split_avx512<F: LaneFn>(f: &mut F, channels: usize) {
    let c16 = channels / 16 * 16;
    let c8 = c16 + (channels - c16) / 8 * 8;
    // SAFETY: forwarded from run_split; this function runs only with AVX-512F+AVX2+FMA.
    unsafe {
        if c16 > 0 {
            f.run::<Avx512>(0, c16);
        }
        if c8 > c16 {
            f.run::<Avx>(c16, c8);
        }
        if c8 < channels {
            f.run::<f32>(c8, channels);
        }
    }
}

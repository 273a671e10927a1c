//! The inner loop of DEPTHWISE_CONV_2D (see `depthwise_conv`), written once over a lane type
//! and instantiated per element type (int8, f32) and instruction set.
//!
//! A [`Job`] is up to [`NP`] output pixels of one row and a chunk of filter taps taken in
//! pairs: tap `t` of pixel `k` reads the input channels at `taps[t] + k·steps[t]` (an image
//! pixel, or the pad pixel with step 0). Channels go [`Lanes::N`] at a time, each pixel
//! keeping its own accumulator vector, so the weights of a pair are loaded once for all the
//! pixels and the sums of different pixels are independent chains.
//!
//! - int8: a pair's weights are stored interleaved as i16, `(w_a[c], w_b[c])`, and the two
//!   taps' inputs are interleaved the same way, so one `madd` (pairs of i16 products summed
//!   into i32) adds both taps of 8 or 16 channels exactly; the sums start at the bias with
//!   the input zero point folded in (see `depthwise_conv`), and the last chunk requantizes
//!   with TFLite's `MultiplyByQuantizedMultiplier` per channel (the vector forms of
//!   `quant::requant`, which its tests check lane by lane against the scalar reference).
//! - f32: a pair's weights are two rows of channels; the sums start at 0 and each tap adds
//!   `x·w` in TFLite's tap order (fused on x86, separate in the portable path), the bias is
//!   added last, then the clamp (NaN passes through, as TFLite's min/max do).
//!
//! Instruction sets: AVX-512 (16 lanes, then 8 with AVX2 for the channels left over),
//! AVX2+FMA (8 lanes), Arm M-profile with the DSP extension (int8 only, module `m4`: four
//! channels in registers, `smlad` on the same i16 pairs, the output stage fused with
//! `smmulr`), portable (8-lane arrays that LLVM vectorizes for the build's baseline: this is
//! what AArch64 runs, and the Cortex-M4 for f32), and one lane at a time for the last
//! channels.

use crate::reference::multiply_by_quantized_multiplier;

/// Pixels per job, at most.
pub(crate) const NP: usize = 8;

/// Instruction sets the kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// (Not on an Arm core with the DSP extension: int8 runs its own kernel there, f32 the
    /// portable one through it, and the portable int8 path is not linked.)
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512,
    /// AVX-512 with VNNI: int8 rows go the whole-row kernel (`depthwise_vnni`) where the
    /// geometry allows, the rest as `Avx512`.
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    Avx512Vnni,
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    M4Dsp,
}

impl Isa {
    /// The best one this CPU runs.
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::arch::Features;
            let f = crate::arch::cpu_info().features;
            let avx2 = Features::AVX2.with(Features::FMA);
            #[cfg(edgemm_avx512_intrinsics)]
            let avx512 = avx2.with(Features::AVX512F).with(Features::AVX512BW);
            #[cfg(edgemm_avx512_intrinsics)]
            if f.contains(avx512.with(Features::AVX512VL).with(Features::AVX512VNNI)) {
                return Isa::Avx512Vnni;
            }
            #[cfg(edgemm_avx512_intrinsics)]
            if f.contains(avx512) {
                return Isa::Avx512;
            }
            if f.contains(avx2) {
                return Isa::Avx2;
            }
        }
        #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
        return Isa::M4Dsp;
        #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
        #[allow(unreachable_code)]
        Isa::Portable
    }

    /// Lanes of the widest vector the kernel fills on this instruction set (0: none worth
    /// filling by widening pixels; the Arm DSP kernel goes four channels at a time).
    pub(crate) fn lanes(self) -> usize {
        match self {
            #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
            Isa::Portable => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 8,
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            Isa::Avx512 | Isa::Avx512Vnni => 16,
            #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
            Isa::M4Dsp => 0,
        }
    }

    /// Every one this CPU runs (for tests).
    #[cfg(test)]
    pub(crate) fn all_runnable() -> alloc::vec::Vec<Isa> {
        // Read by the architecture-specific lines only (none on AArch64).
        #[allow(unused_variables)]
        let best = Isa::detect();
        #[allow(unused_mut)]
        let mut v = alloc::vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if best != Isa::Portable {
            v.push(Isa::Avx2);
        }
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        if matches!(best, Isa::Avx512 | Isa::Avx512Vnni) {
            v.push(Isa::Avx512);
        }
        #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
        if best == Isa::Avx512Vnni {
            v.push(Isa::Avx512Vnni);
        }
        #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
        v.push(best);
        v
    }
}

/// What the last chunk needs to finish a pixel's channels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finish {
    /// f32: the bias (c_out values). int8: unused (the sums start at the bias).
    pub bias: *const f32,
    /// int8: per-channel multipliers and shifts (c_out values each).
    pub mults: *const i32,
    pub shifts: *const i32,
    /// int8: some shift is positive (a left shift to apply; read by the x86 paths).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub left: bool,
    /// int8: the Arm output stage's fast form is exact for every sum of the call: every
    /// shift in −22..=−1, every multiplier above −2^31 + 1, every sum below 2^30 in
    /// magnitude (see `quant::requant::arm`; the shift bound lets the Arm DSP path add the
    /// zero point inside the rounding shift). Without it that path runs the portable one.
    #[cfg_attr(not(all(target_arch = "arm", edgemm_arm_dsp)), allow(dead_code))]
    pub fast: bool,
    pub zo: i32,
    pub lo: i32,
    pub hi: i32,
    pub flo: f32,
    pub fhi: f32,
}

// SAFETY: the pointers are read-only views of an operator's per-channel constants (blob
// constants or arena inputs nothing writes while the operator runs); `Finish` never writes
// through them, so threads of one operator may share it.
unsafe impl Sync for Finish {}

impl Finish {
    /// No bias and no output stage (a form whose constants live elsewhere, or f32 before
    /// its clamp is set): only the int8 clamp `lo..=hi`.
    pub(crate) fn clamp_only(lo: i32, hi: i32) -> Self {
        Finish {
            bias: core::ptr::null(),
            mults: core::ptr::null(),
            shifts: core::ptr::null(),
            left: false,
            fast: false,
            zo: 0,
            lo,
            hi,
            flo: 0.0,
            fhi: 0.0,
        }
    }
}

/// One call of the kernel (see the module docs). Every pointer is valid for what the
/// kernel reads or writes: for tap `t` (of `2·pairs`) and pixel `k < n`, channels `0..oc`
/// at `taps[t] + k·steps[t]`; the chunk's weights `w[0..pairs·2·oc]`; `init` (if not null)
/// at `k·init_stride + c`; the outputs at `out + k·out_stride + c` (last chunk) or the
/// partial sums at `partial + k·oc + c` (other chunks); `fin`'s per-channel arrays over
/// `0..oc`.
pub(crate) struct Job<'a, X, W, A> {
    pub taps: &'a [*const X],
    pub steps: &'a [usize],
    pub pairs: usize,
    pub n: usize,
    pub oc: usize,
    pub w: *const W,
    pub init: *const A,
    pub init_stride: usize,
    pub last: bool,
    pub out: *mut X,
    pub out_stride: usize,
    pub partial: *mut A,
    pub fin: Finish,
}

/// A vector of `N` accumulators and the operations of the kernel on it.
///
/// x86 implementations are only instantiated inside the `#[target_feature]` functions of
/// [`run`], which run only when [`Isa::detect`] found their features: that is the invariant
/// behind their `unsafe` blocks.
pub(crate) trait Lanes: Copy {
    type X: Copy;
    type W: Copy;
    type A: Copy;
    type Consts;
    const N: usize;
    fn zero() -> Self;
    /// # Safety
    /// `N` readable values at `p`.
    unsafe fn load(p: *const Self::A) -> Self;
    /// # Safety
    /// `N` writable values at `p`.
    unsafe fn store(self, p: *mut Self::A);
    /// Adds taps a and b of channels `c..c + N`: inputs at `xa`, `xb`, weights of the pair
    /// at `w` (the pair's first element; its layout is the element type's).
    ///
    /// # Safety
    /// `N` inputs readable at `xa` and `xb`, the pair's weights of these channels at `w`.
    unsafe fn tap2(
        self,
        xa: *const Self::X,
        xb: *const Self::X,
        w: *const Self::W,
        c: usize,
        oc: usize,
    ) -> Self;
    /// # Safety
    /// `fin`'s arrays readable at channels `c..c + N`.
    unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts;
    /// # Safety
    /// `N` outputs writable at `out`.
    unsafe fn finish(self, k: &Self::Consts, out: *mut Self::X);
}

/// The entry of an f32 kernel written over [`FLanes`] (`depthwise_f32`, `conv_f32_direct`):
/// defines `unsafe fn dispatch(isa, r: &$run, n)`, which runs the caller's
/// `channels::<L>(r, n, c) -> next c` with the widest lanes `isa` has, then the narrower ones,
/// then one channel at a time (plain `f32`). Each instruction set gets its own
/// `#[target_feature]` function, so `channels` is compiled once per set.
macro_rules! f32_lanes_dispatch {
    ($run:ty) => {
        /// # Safety
        /// `r`'s pointers valid for `n` pixels (as the calling module documents); `isa`
        /// runs on this CPU.
        unsafe fn dispatch(isa: $crate::nn::ops::depthwise_lanes::Isa, r: &$run, n: usize) {
            use $crate::nn::ops::depthwise_lanes::{Elem, Isa};
            /// # Safety
            /// As `dispatch`.
            unsafe fn portable(r: &$run, n: usize) {
                // SAFETY: forwarded (the M4 has no f32 lanes of its own: it runs these too).
                unsafe {
                    let c = channels::<<f32 as Elem>::Portable>(r, n, 0);
                    channels::<f32>(r, n, c);
                }
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(r: &$run, n: usize) {
                // SAFETY: forwarded; this function runs only with AVX2+FMA.
                unsafe {
                    let c = channels::<<f32 as Elem>::Avx2>(r, n, 0);
                    channels::<f32>(r, n, c);
                }
            }
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
            unsafe fn avx512(r: &$run, n: usize) {
                // SAFETY: forwarded; this function runs only with AVX-512F/BW, AVX2 and FMA.
                unsafe {
                    let c = channels::<<f32 as Elem>::Avx512>(r, n, 0);
                    let c = channels::<<f32 as Elem>::Avx2>(r, n, c);
                    channels::<f32>(r, n, c);
                }
            }
            // SAFETY: forwarded; each function is called only for its instruction set.
            unsafe {
                match isa {
                    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
                    Isa::Portable => portable(r, n),
                    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
                    Isa::M4Dsp => portable(r, n),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => avx2(r, n),
                    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
                    Isa::Avx512 | Isa::Avx512Vnni => avx512(r, n),
                }
            }
        }
    };
}
pub(crate) use f32_lanes_dispatch;

/// f32 lanes taking one tap at a time: the whole-row kernel's (`depthwise_f32`).
pub(crate) trait FLanes: Lanes<X = f32, W = f32, A = f32> {
    /// Output pixels per tile of that kernel: its 2·P accumulators (two vectors of
    /// channels per pixel) and two weight vectors fit the registers.
    const P: usize;
    /// `self + x·w` for the `N` inputs at `x` (fused on x86, as [`Lanes::tap2`]).
    ///
    /// # Safety
    /// `N` inputs readable at `x`.
    unsafe fn tap(self, x: *const f32, w: Self) -> Self;
    /// `self + x·w`, `x` in every lane (fused on x86): `conv_f32_direct`'s step.
    fn tap_splat(self, x: f32, w: Self) -> Self;
    /// Whether the whole-row kernel's 3-column tiles that load each input once (see
    /// `depthwise_f32`) fit the registers: P pixels' sums, three columns of weights and the
    /// inputs, two vectors of channels each.
    const SLIDE: bool = false;
    /// `self + x·w` of vectors in registers (fused on x86, as [`FLanes::tap`]).
    fn tap_reg(self, x: Self, w: Self) -> Self;
}

/// The kernel over channels `c0..` while a whole vector fits below `c1`, `NP` pixels;
/// returns the first channel not done.
///
/// # Safety
/// `job`'s contract; `L`'s instruction set runs here.
#[inline(always)]
unsafe fn block<L: Lanes, const P: usize>(
    j: &Job<L::X, L::W, L::A>,
    c0: usize,
    c1: usize,
) -> usize {
    let mut c = c0;
    // SAFETY (whole body): every pointer below is one the `Job` contract names, at a pixel
    // below `n = P` and channels `c..c + N` ≤ oc.
    unsafe {
        while c + L::N <= c1 {
            let mut acc = [L::zero(); P];
            if !j.init.is_null() {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = L::load(j.init.add(k * j.init_stride + c));
                }
            }
            for p in 0..j.pairs {
                let (xa, xb) = (j.taps[2 * p], j.taps[2 * p + 1]);
                let (sa, sb) = (j.steps[2 * p], j.steps[2 * p + 1]);
                let w = j.w.add(p * 2 * j.oc);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = a.tap2(xa.add(k * sa + c), xb.add(k * sb + c), w, c, j.oc);
                }
            }
            if j.last {
                let f = L::consts(&j.fin, c);
                for (k, a) in acc.iter().enumerate() {
                    a.finish(&f, j.out.add(k * j.out_stride + c));
                }
            } else {
                for (k, a) in acc.iter().enumerate() {
                    a.store(j.partial.add(k * j.oc + c));
                }
            }
            c += L::N;
        }
    }
    c
}

/// [`block`] for the job's pixel count.
///
/// # Safety
/// As [`block`].
#[inline(always)]
unsafe fn pixels<L: Lanes>(j: &Job<L::X, L::W, L::A>, c0: usize, c1: usize) -> usize {
    // SAFETY: forwarded; `n` is the pixel count the contract covers.
    unsafe {
        match j.n {
            1 => block::<L, 1>(j, c0, c1),
            2 => block::<L, 2>(j, c0, c1),
            3 => block::<L, 3>(j, c0, c1),
            4 => block::<L, 4>(j, c0, c1),
            5 => block::<L, 5>(j, c0, c1),
            6 => block::<L, 6>(j, c0, c1),
            7 => block::<L, 7>(j, c0, c1),
            _ => block::<L, NP>(j, c0, c1),
        }
    }
}

/// The lane types of an element type, per instruction set.
pub(crate) trait Elem {
    type W: Copy;
    type A: Copy;
    type Portable: Lanes<X = Self, W = Self::W, A = Self::A>;
    type One: Lanes<X = Self, W = Self::W, A = Self::A>;
    #[cfg(target_arch = "x86_64")]
    type Avx2: Lanes<X = Self, W = Self::W, A = Self::A>;
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    type Avx512: Lanes<X = Self, W = Self::W, A = Self::A>;
    /// The Arm DSP path: int8's own kernel, the portable one for f32.
    ///
    /// # Safety
    /// `job`'s contract.
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    unsafe fn m4dsp(j: &Job<Self, Self::W, Self::A>)
    where
        Self: Sized;
}

impl Elem for i8 {
    type W = i16;
    type A = i32;
    type Portable = Q8;
    type One = i32;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = x86::Q256;
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    type Avx512 = x86_512::Q512;
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    unsafe fn m4dsp(j: &Job<i8, i16, i32>) {
        // SAFETY: forwarded.
        unsafe {
            // Otherwise one channel at a time, not the portable path: its 8-lane arrays
            // (about 20 KB on the M4) would be linked for this rare case alone.
            let c = if (j.fin.fast || !j.last) && (j.w as usize) % 4 == 0 {
                m4::run(j)
            } else {
                0
            };
            rest::<i8>(j, c);
        }
    }
}

impl Elem for f32 {
    type W = f32;
    type A = f32;
    type Portable = F8;
    type One = f32;
    #[cfg(target_arch = "x86_64")]
    type Avx2 = x86::F256;
    #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
    type Avx512 = x86_512::F512;
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    unsafe fn m4dsp(j: &Job<f32, f32, f32>) {
        // SAFETY: forwarded.
        unsafe { portable::<f32>(j) }
    }
}

/// Runs one job on `isa`, in groups of up to [`NP`] pixels: a job may be a whole output
/// row, so the caller sets its tap pointers up once per row, not once per group.
///
/// # Safety
/// `job`'s contract (with `n` ≥ 1, and `n` ≤ NP when `job.last` is false: the partial sums
/// hold NP pixels); `job.taps.len()` ≤ `MAX_TAPS`; `isa` runs on this CPU.
pub(crate) unsafe fn run<E: Elem>(isa: Isa, job: &Job<E, E::W, E::A>) {
    use super::depthwise_conv::MAX_TAPS;
    let mut taps = [core::ptr::null::<E>(); MAX_TAPS];
    let taps = &mut taps[..job.taps.len()];
    let mut k0 = 0;
    while k0 < job.n {
        let n = (job.n - k0).min(NP);
        for ((t, &p), &s) in taps.iter_mut().zip(job.taps).zip(job.steps) {
            *t = p.wrapping_add(k0 * s);
        }
        // Pixel k0 on: the same pointers moved by k0 pixels (inside what the job names).
        let group = Job {
            taps,
            n,
            init: job.init.wrapping_add(k0 * job.init_stride),
            out: job.out.wrapping_add(k0 * job.out_stride),
            partial: job.partial.wrapping_add(k0 * job.oc),
            ..*job
        };
        // SAFETY: the group's pixels are pixels k0..k0 + n of the job's.
        unsafe { run_group::<E>(isa, &group) };
        k0 += n;
    }
}

/// Runs a job of at most NP pixels on `isa`.
///
/// # Safety
/// `job`'s contract (with `n` in 1..=NP); `isa` runs on this CPU.
unsafe fn run_group<E: Elem>(isa: Isa, job: &Job<E, E::W, E::A>) {
    // SAFETY: forwarded; each function is called only for its instruction set.
    unsafe {
        match isa {
            #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
            Isa::Portable => portable::<E>(job),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2::<E>(job),
            #[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
            Isa::Avx512 | Isa::Avx512Vnni => avx512::<E>(job),
            #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
            Isa::M4Dsp => E::m4dsp(job),
        }
    }
}

/// Not inlined: the Arm DSP path shares it (code size on microcontrollers).
#[inline(never)]
unsafe fn portable<E: Elem>(j: &Job<E, E::W, E::A>) {
    // SAFETY: forwarded.
    unsafe {
        let c = pixels::<E::Portable>(j, 0, j.oc);
        rest::<E>(j, c);
    }
}

/// Channels `c..oc` one at a time (not inlined: every path shares it).
///
/// # Safety
/// `job`'s contract.
#[inline(never)]
unsafe fn rest<E: Elem>(j: &Job<E, E::W, E::A>, c: usize) {
    // SAFETY: forwarded.
    #[cfg(not(all(target_arch = "arm", edgemm_arm_dsp)))]
    unsafe {
        pixels::<E::One>(j, c, j.oc);
    }
    // On the Cortex-M4 only channel counts that are not a multiple of 4 (or scales outside
    // the fast output stage) come here: one pixel at a time, one instance of the loop instead
    // of one per pixel count (8 KB of flash).
    #[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
    if c < j.oc {
        use super::depthwise_conv::MAX_TAPS;
        let mut taps = [core::ptr::null::<E>(); MAX_TAPS];
        let taps = &mut taps[..j.taps.len().min(MAX_TAPS)];
        for k in 0..j.n {
            for ((t, &p), &s) in taps.iter_mut().zip(j.taps).zip(j.steps) {
                *t = p.wrapping_add(k * s);
            }
            // Pixel k: the same pointers moved by k pixels (inside what the job names).
            let one = Job {
                taps,
                n: 1,
                init: j.init.wrapping_add(k * j.init_stride),
                out: j.out.wrapping_add(k * j.out_stride),
                partial: j.partial.wrapping_add(k * j.oc),
                ..*j
            };
            // SAFETY: pixel k of the job's, as a job of one pixel.
            unsafe { block::<E::One, 1>(&one, c, j.oc) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<E: Elem>(j: &Job<E, E::W, E::A>) {
    // SAFETY: forwarded; this function runs only with AVX2+FMA.
    unsafe {
        let c = pixels::<E::Avx2>(j, 0, j.oc);
        rest::<E>(j, c);
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
unsafe fn avx512<E: Elem>(j: &Job<E, E::W, E::A>) {
    // SAFETY: forwarded; this function runs only with AVX-512F/BW, AVX2 and FMA.
    unsafe {
        let c = pixels::<E::Avx512>(j, 0, j.oc);
        let c = pixels::<E::Avx2>(j, c, j.oc);
        rest::<E>(j, c);
    }
}

/// The int8 output value of sum `v` of channel `c`.
#[inline(always)]
fn requant_one(v: i32, fin: &Finish, m: i32, s: i32) -> i8 {
    multiply_by_quantized_multiplier(v, m, s)
        .wrapping_add(fin.zo)
        .clamp(fin.lo, fin.hi) as i8
}

/// min(max(x, lo), hi) with NaN passing through.
#[inline(always)]
fn clamp_f(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

// One lane: the channels left over.

impl Lanes for i32 {
    type X = i8;
    type W = i16;
    type A = i32;
    type Consts = (i32, i32, Finish);
    const N: usize = 1;
    #[inline(always)]
    fn zero() -> Self {
        0
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: one readable value (caller).
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: one writable value (caller).
        unsafe { p.write_unaligned(self) }
    }
    #[inline(always)]
    unsafe fn tap2(
        self,
        xa: *const i8,
        xb: *const i8,
        w: *const i16,
        c: usize,
        _oc: usize,
    ) -> Self {
        // SAFETY: the inputs and the pair (w_a, w_b) of channel c are readable (caller).
        unsafe {
            let (wa, wb) = (*w.add(2 * c), *w.add(2 * c + 1));
            self.wrapping_add(i32::from(*xa) * i32::from(wa) + i32::from(*xb) * i32::from(wb))
        }
    }
    #[inline(always)]
    unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
        // SAFETY: channel c of the arrays is readable (caller).
        unsafe { (*fin.mults.add(c), *fin.shifts.add(c), *fin) }
    }
    #[inline(always)]
    unsafe fn finish(self, k: &Self::Consts, out: *mut i8) {
        // SAFETY: one writable output (caller).
        unsafe { *out = requant_one(self, &k.2, k.0, k.1) }
    }
}

impl Lanes for f32 {
    type X = f32;
    type W = f32;
    type A = f32;
    type Consts = (f32, f32, f32);
    const N: usize = 1;
    #[inline(always)]
    fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: one readable value (caller).
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: one writable value (caller).
        unsafe { p.write_unaligned(self) }
    }
    #[inline(always)]
    unsafe fn tap2(
        self,
        xa: *const f32,
        xb: *const f32,
        w: *const f32,
        c: usize,
        oc: usize,
    ) -> Self {
        // SAFETY: the inputs and both weight rows at channel c are readable (caller).
        unsafe { self + *xa * *w.add(c) + *xb * *w.add(oc + c) }
    }
    #[inline(always)]
    unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
        // SAFETY: channel c of the bias is readable (caller).
        unsafe { (*fin.bias.add(c), fin.flo, fin.fhi) }
    }
    #[inline(always)]
    unsafe fn finish(self, k: &Self::Consts, out: *mut f32) {
        // SAFETY: one writable output (caller).
        unsafe { *out = clamp_f(self + k.0, k.1, k.2) }
    }
}

// Portable: eight lanes as arrays (LLVM vectorizes the fixed-length loops).

/// Eight int8 sums.
#[derive(Clone, Copy)]
pub(crate) struct Q8([i32; 8]);

impl Lanes for Q8 {
    type X = i8;
    type W = i16;
    type A = i32;
    type Consts = ([i32; 8], [i32; 8], Finish);
    const N: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        Q8([0; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: eight readable values (caller).
        Q8(unsafe { (p as *const [i32; 8]).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: eight writable values (caller).
        unsafe { (p as *mut [i32; 8]).write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn tap2(
        self,
        xa: *const i8,
        xb: *const i8,
        w: *const i16,
        c: usize,
        _oc: usize,
    ) -> Self {
        // SAFETY: eight inputs at xa and xb, the pairs of channels c..c+8 at w + 2c (caller).
        let (a, b, w) = unsafe {
            (
                (xa as *const [i8; 8]).read_unaligned(),
                (xb as *const [i8; 8]).read_unaligned(),
                (w.add(2 * c) as *const [i16; 16]).read_unaligned(),
            )
        };
        let mut r = self.0;
        for (l, r) in r.iter_mut().enumerate() {
            let s =
                i32::from(a[l]) * i32::from(w[2 * l]) + i32::from(b[l]) * i32::from(w[2 * l + 1]);
            *r = r.wrapping_add(s);
        }
        Q8(r)
    }
    #[inline(always)]
    unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
        // SAFETY: channels c..c+8 of the arrays are readable (caller).
        unsafe {
            (
                (fin.mults.add(c) as *const [i32; 8]).read_unaligned(),
                (fin.shifts.add(c) as *const [i32; 8]).read_unaligned(),
                *fin,
            )
        }
    }
    #[inline(always)]
    unsafe fn finish(self, k: &Self::Consts, out: *mut i8) {
        let mut o = [0i8; 8];
        for (l, o) in o.iter_mut().enumerate() {
            *o = requant_one(self.0[l], &k.2, k.0[l], k.1[l]);
        }
        // SAFETY: eight writable outputs (caller).
        unsafe { (out as *mut [i8; 8]).write_unaligned(o) }
    }
}

impl FLanes for f32 {
    const P: usize = 4;
    #[inline(always)]
    unsafe fn tap(self, x: *const f32, w: f32) -> f32 {
        // SAFETY: one input readable (caller).
        unsafe { self + *x * w }
    }
    #[inline(always)]
    fn tap_splat(self, x: f32, w: f32) -> f32 {
        self + x * w
    }
    #[inline(always)]
    fn tap_reg(self, x: f32, w: f32) -> f32 {
        self + x * w
    }
}

/// Eight f32 sums.
#[derive(Clone, Copy)]
pub(crate) struct F8([f32; 8]);

impl FLanes for F8 {
    const P: usize = 4;
    #[inline(always)]
    unsafe fn tap(self, x: *const f32, w: F8) -> F8 {
        // SAFETY: eight inputs readable (caller).
        let a = unsafe { (x as *const [f32; 8]).read_unaligned() };
        let mut r = self.0;
        for (l, r) in r.iter_mut().enumerate() {
            *r += a[l] * w.0[l];
        }
        F8(r)
    }
    #[inline(always)]
    fn tap_splat(self, x: f32, w: F8) -> F8 {
        let mut r = self.0;
        for (l, r) in r.iter_mut().enumerate() {
            *r += x * w.0[l];
        }
        F8(r)
    }
    #[inline(always)]
    fn tap_reg(self, x: F8, w: F8) -> F8 {
        let mut r = self.0;
        for (l, r) in r.iter_mut().enumerate() {
            *r += x.0[l] * w.0[l];
        }
        F8(r)
    }
}

impl Lanes for F8 {
    type X = f32;
    type W = f32;
    type A = f32;
    type Consts = ([f32; 8], f32, f32);
    const N: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        F8([0.0; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: eight readable values (caller).
        F8(unsafe { (p as *const [f32; 8]).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: eight writable values (caller).
        unsafe { (p as *mut [f32; 8]).write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn tap2(
        self,
        xa: *const f32,
        xb: *const f32,
        w: *const f32,
        c: usize,
        oc: usize,
    ) -> Self {
        // SAFETY: eight inputs at xa and xb, both weight rows at channels c..c+8 (caller).
        let (a, b, wa, wb) = unsafe {
            (
                (xa as *const [f32; 8]).read_unaligned(),
                (xb as *const [f32; 8]).read_unaligned(),
                (w.add(c) as *const [f32; 8]).read_unaligned(),
                (w.add(oc + c) as *const [f32; 8]).read_unaligned(),
            )
        };
        let mut r = self.0;
        for (l, r) in r.iter_mut().enumerate() {
            *r = *r + a[l] * wa[l] + b[l] * wb[l];
        }
        F8(r)
    }
    #[inline(always)]
    unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
        // SAFETY: channels c..c+8 of the bias are readable (caller).
        unsafe {
            (
                (fin.bias.add(c) as *const [f32; 8]).read_unaligned(),
                fin.flo,
                fin.fhi,
            )
        }
    }
    #[inline(always)]
    unsafe fn finish(self, k: &Self::Consts, out: *mut f32) {
        let mut o = [0f32; 8];
        for (l, o) in o.iter_mut().enumerate() {
            *o = clamp_f(self.0[l] + k.0[l], k.1, k.2);
        }
        // SAFETY: eight writable outputs (caller).
        unsafe { (out as *mut [f32; 8]).write_unaligned(o) }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{FLanes, Finish, Lanes};
    use crate::quant::requant::x86::mbqm;
    use core::arch::x86_64::*;

    /// Eight int8 sums (AVX2).
    #[derive(Clone, Copy)]
    pub(crate) struct Q256(__m256i);

    /// The requantization constants of eight channels.
    pub(crate) struct QConsts {
        m: __m256i,
        s: __m256i,
        left: bool,
        zo: __m256i,
        lo: __m256i,
        hi: __m256i,
    }

    impl Lanes for Q256 {
        type X = i8;
        type W = i16;
        type A = i32;
        type Consts = QConsts;
        const N: usize = 8;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX2 (type invariant); no memory access.
            Q256(unsafe { _mm256_setzero_si256() })
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            // SAFETY: AVX2 (type invariant); eight values readable (caller).
            Q256(unsafe { _mm256_loadu_si256(p as *const __m256i) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: AVX2 (type invariant); eight values writable (caller).
            unsafe { _mm256_storeu_si256(p as *mut __m256i, self.0) }
        }
        #[inline(always)]
        unsafe fn tap2(
            self,
            xa: *const i8,
            xb: *const i8,
            w: *const i16,
            c: usize,
            _oc: usize,
        ) -> Self {
            // SAFETY: AVX2 (type invariant); 8 bytes at xa and xb, the 8 weight pairs of
            // channels c..c+8 at w + 2c (caller).
            unsafe {
                let a = _mm_loadl_epi64(xa as *const __m128i);
                let b = _mm_loadl_epi64(xb as *const __m128i);
                // (a[c], b[c]) as i16 pairs, channel order.
                let ab = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
                let wv = _mm256_loadu_si256(w.add(2 * c) as *const __m256i);
                Q256(_mm256_add_epi32(self.0, _mm256_madd_epi16(ab, wv)))
            }
        }
        #[inline(always)]
        unsafe fn consts(fin: &Finish, c: usize) -> QConsts {
            // SAFETY: AVX2 (type invariant); channels c..c+8 of the arrays readable (caller).
            unsafe {
                QConsts {
                    m: _mm256_loadu_si256(fin.mults.add(c) as *const __m256i),
                    s: _mm256_loadu_si256(fin.shifts.add(c) as *const __m256i),
                    left: fin.left,
                    zo: _mm256_set1_epi32(fin.zo),
                    lo: _mm256_set1_epi32(fin.lo),
                    hi: _mm256_set1_epi32(fin.hi),
                }
            }
        }
        #[inline(always)]
        unsafe fn finish(self, k: &QConsts, out: *mut i8) {
            // SAFETY: AVX2 (type invariant); eight bytes writable at out (caller).
            unsafe {
                let v = _mm256_add_epi32(mbqm(self.0, k.m, k.s, k.left), k.zo);
                let v = _mm256_min_epi32(_mm256_max_epi32(v, k.lo), k.hi);
                // In the byte range already: the packs keep the values, in order.
                let h =
                    _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
                _mm_storel_epi64(out as *mut __m128i, _mm_packs_epi16(h, h));
            }
        }
    }

    /// Eight f32 sums (AVX2 + FMA).
    #[derive(Clone, Copy)]
    pub(crate) struct F256(__m256);

    impl FLanes for F256 {
        const P: usize = 4;
        #[inline(always)]
        unsafe fn tap(self, x: *const f32, w: F256) -> F256 {
            // SAFETY: AVX2+FMA (type invariant); eight inputs readable (caller).
            F256(unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(x), w.0, self.0) })
        }
        #[inline(always)]
        fn tap_splat(self, x: f32, w: F256) -> F256 {
            // SAFETY: AVX2+FMA (type invariant); no memory access.
            F256(unsafe { _mm256_fmadd_ps(_mm256_set1_ps(x), w.0, self.0) })
        }
        #[inline(always)]
        fn tap_reg(self, x: F256, w: F256) -> F256 {
            // SAFETY: AVX2+FMA (type invariant); no memory access.
            F256(unsafe { _mm256_fmadd_ps(x.0, w.0, self.0) })
        }
    }

    impl Lanes for F256 {
        type X = f32;
        type W = f32;
        type A = f32;
        type Consts = (__m256, __m256, __m256);
        const N: usize = 8;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX2 (type invariant); no memory access.
            F256(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX2 (type invariant); eight values readable (caller).
            F256(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX2 (type invariant); eight values writable (caller).
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn tap2(
            self,
            xa: *const f32,
            xb: *const f32,
            w: *const f32,
            c: usize,
            oc: usize,
        ) -> Self {
            // SAFETY: AVX2+FMA (type invariant); eight inputs at xa and xb, both weight rows
            // at channels c..c+8 (caller).
            unsafe {
                let r = _mm256_fmadd_ps(_mm256_loadu_ps(xa), _mm256_loadu_ps(w.add(c)), self.0);
                F256(_mm256_fmadd_ps(
                    _mm256_loadu_ps(xb),
                    _mm256_loadu_ps(w.add(oc + c)),
                    r,
                ))
            }
        }
        #[inline(always)]
        unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
            // SAFETY: AVX2 (type invariant); channels c..c+8 of the bias readable (caller).
            unsafe {
                (
                    _mm256_loadu_ps(fin.bias.add(c)),
                    _mm256_set1_ps(fin.flo),
                    _mm256_set1_ps(fin.fhi),
                )
            }
        }
        #[inline(always)]
        unsafe fn finish(self, k: &Self::Consts, out: *mut f32) {
            // max/min return their second operand when either is NaN: the value goes second.
            // SAFETY: AVX2 (type invariant); eight outputs writable (caller).
            unsafe {
                let v = _mm256_add_ps(self.0, k.0);
                _mm256_storeu_ps(out, _mm256_min_ps(k.2, _mm256_max_ps(k.1, v)));
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", edgemm_avx512_intrinsics))]
#[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (see build.rs)
mod x86_512 {
    use super::{FLanes, Finish, Lanes};
    use crate::quant::requant::x86_512::{consts, mbqm, Consts};
    use core::arch::x86_64::*;

    /// Sixteen int8 sums (AVX-512F/BW).
    #[derive(Clone, Copy)]
    pub(crate) struct Q512(__m512i);

    /// The requantization constants of sixteen channels.
    pub(crate) struct QConsts {
        c: Consts,
        left: bool,
        zo: __m512i,
        lo: __m512i,
        hi: __m512i,
    }

    impl Lanes for Q512 {
        type X = i8;
        type W = i16;
        type A = i32;
        type Consts = QConsts;
        const N: usize = 16;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX-512F (type invariant); no memory access.
            Q512(unsafe { _mm512_setzero_si512() })
        }
        #[inline(always)]
        unsafe fn load(p: *const i32) -> Self {
            // SAFETY: AVX-512F (type invariant); sixteen values readable (caller).
            Q512(unsafe { _mm512_loadu_si512(p as *const __m512i) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: AVX-512F (type invariant); sixteen values writable (caller).
            unsafe { _mm512_storeu_si512(p as *mut __m512i, self.0) }
        }
        #[inline(always)]
        unsafe fn tap2(
            self,
            xa: *const i8,
            xb: *const i8,
            w: *const i16,
            c: usize,
            _oc: usize,
        ) -> Self {
            // SAFETY: AVX-512F/BW (type invariant); 16 bytes at xa and xb, the 16 weight
            // pairs of channels c..c+16 at w + 2c (caller).
            unsafe {
                let a = _mm_loadu_si128(xa as *const __m128i);
                let b = _mm_loadu_si128(xb as *const __m128i);
                let ab = _mm256_set_m128i(_mm_unpackhi_epi8(a, b), _mm_unpacklo_epi8(a, b));
                let wv = _mm512_loadu_si512(w.add(2 * c) as *const __m512i);
                Q512(_mm512_add_epi32(
                    self.0,
                    _mm512_madd_epi16(_mm512_cvtepi8_epi16(ab), wv),
                ))
            }
        }
        #[inline(always)]
        unsafe fn consts(fin: &Finish, c: usize) -> QConsts {
            // SAFETY: AVX-512F (type invariant); channels c..c+16 readable (caller).
            unsafe {
                QConsts {
                    c: consts(
                        _mm512_loadu_si512(fin.mults.add(c) as *const __m512i),
                        _mm512_loadu_si512(fin.shifts.add(c) as *const __m512i),
                    ),
                    left: fin.left,
                    zo: _mm512_set1_epi32(fin.zo),
                    lo: _mm512_set1_epi32(fin.lo),
                    hi: _mm512_set1_epi32(fin.hi),
                }
            }
        }
        #[inline(always)]
        unsafe fn finish(self, k: &QConsts, out: *mut i8) {
            // SAFETY: AVX-512F (type invariant); sixteen bytes writable at out (caller).
            unsafe {
                let v = _mm512_add_epi32(mbqm(self.0, &k.c, k.left), k.zo);
                let v = _mm512_min_epi32(_mm512_max_epi32(v, k.lo), k.hi);
                // In the byte range already: truncating keeps each value.
                _mm_storeu_si128(out as *mut __m128i, _mm512_cvtepi32_epi8(v));
            }
        }
    }

    /// Sixteen f32 sums (AVX-512F).
    #[derive(Clone, Copy)]
    pub(crate) struct F512(__m512);

    impl FLanes for F512 {
        const P: usize = 8;
        #[inline(always)]
        unsafe fn tap(self, x: *const f32, w: F512) -> F512 {
            // SAFETY: AVX-512F (type invariant); sixteen inputs readable (caller).
            F512(unsafe { _mm512_fmadd_ps(_mm512_loadu_ps(x), w.0, self.0) })
        }
        #[inline(always)]
        fn tap_splat(self, x: f32, w: F512) -> F512 {
            // SAFETY: AVX-512F (type invariant); no memory access.
            F512(unsafe { _mm512_fmadd_ps(_mm512_set1_ps(x), w.0, self.0) })
        }
        // 8 pixels × 2 vectors of sums, 3 × 2 weight vectors and 2 input vectors: 24 of
        // the 32 registers.
        const SLIDE: bool = true;
        #[inline(always)]
        fn tap_reg(self, x: F512, w: F512) -> F512 {
            // SAFETY: AVX-512F (type invariant); no memory access.
            F512(unsafe { _mm512_fmadd_ps(x.0, w.0, self.0) })
        }
    }

    impl Lanes for F512 {
        type X = f32;
        type W = f32;
        type A = f32;
        type Consts = (__m512, __m512, __m512);
        const N: usize = 16;
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX-512F (type invariant); no memory access.
            F512(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: AVX-512F (type invariant); sixteen values readable (caller).
            F512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: AVX-512F (type invariant); sixteen values writable (caller).
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn tap2(
            self,
            xa: *const f32,
            xb: *const f32,
            w: *const f32,
            c: usize,
            oc: usize,
        ) -> Self {
            // SAFETY: AVX-512F (type invariant); sixteen inputs at xa and xb, both weight
            // rows at channels c..c+16 (caller).
            unsafe {
                let r = _mm512_fmadd_ps(_mm512_loadu_ps(xa), _mm512_loadu_ps(w.add(c)), self.0);
                F512(_mm512_fmadd_ps(
                    _mm512_loadu_ps(xb),
                    _mm512_loadu_ps(w.add(oc + c)),
                    r,
                ))
            }
        }
        #[inline(always)]
        unsafe fn consts(fin: &Finish, c: usize) -> Self::Consts {
            // SAFETY: AVX-512F (type invariant); channels c..c+16 of the bias readable.
            unsafe {
                (
                    _mm512_loadu_ps(fin.bias.add(c)),
                    _mm512_set1_ps(fin.flo),
                    _mm512_set1_ps(fin.fhi),
                )
            }
        }
        #[inline(always)]
        unsafe fn finish(self, k: &Self::Consts, out: *mut f32) {
            // SAFETY: AVX-512F (type invariant); sixteen outputs writable (caller).
            unsafe {
                let v = _mm512_add_ps(self.0, k.0);
                _mm512_storeu_ps(out, _mm512_min_ps(k.2, _mm512_max_ps(k.1, v)));
            }
        }
    }
}

/// The int8 kernel on Arm M-profile cores with the DSP extension (Cortex-M4/M7).
///
/// Pixel by pixel, four channels at a time in four registers through all the job's tap
/// pairs: the inputs of taps a and b of channels c..c+4 are two words; `pkhtb`/`pkhbt`
/// regroup their bytes as (a0 a1 b0 b1) and (a2 a3 b2 b3), `sxtb16` widens each into two
/// i16 pairs (a_c, b_c), the layout the weights are stored in, and one `smlad` per channel
/// adds both taps (wrapping, as the other paths). (A 3×3 int8 layer converted for the M4
/// takes `depthwise_m4`'s form instead, when it applies.) The last chunk requantizes with the fast
/// form of `quant::requant::arm` (the caller checked [`Finish::fast`]), its constants
/// computed once per block of [`CB`] channels for all the job's pixels and kept on the stack.
#[cfg(all(target_arch = "arm", edgemm_arm_dsp))]
mod m4 {
    use super::super::depthwise_conv::MAX_TAPS;
    use super::Job;
    use crate::quant::requant::arm::{consts, mbqm_fast};
    use core::arch::asm;

    /// Channels whose output constants are kept at once (a multiple of 4).
    const CB: usize = 32;

    /// Adds taps a and b of four channels to `acc`.
    ///
    /// # Safety
    /// Four bytes readable at `xa` and at `xb`; the channels' four weight pairs (four words)
    /// readable at `w`, which is 4-byte aligned (`ldrd`).
    #[inline(always)]
    unsafe fn pair4(acc: &mut [i32; 4], xa: *const i8, xb: *const i8, w: *const i16) {
        // SAFETY: reads only what the caller guarantees (`ldr` may be unaligned on
        // ARMv7-M, `ldrd` may not: `w` is word-aligned); registers otherwise.
        // `smlad` may set the sticky Q flag, nothing reads it.
        unsafe {
            asm!(
                "ldr {a}, [{xa}]",
                "ldr {b}, [{xb}]",
                "pkhtb {t}, {b}, {a}, asr #16",
                "pkhbt {a}, {a}, {b}, lsl #16",
                "ldrd {w0}, {w1}, [{w}]",
                "sxtb16 {b}, {a}",
                "sxtb16 {a}, {a}, ror #8",
                "smlad {c0}, {b}, {w0}, {c0}",
                "smlad {c1}, {a}, {w1}, {c1}",
                "ldrd {w0}, {w1}, [{w}, #8]",
                "sxtb16 {b}, {t}",
                "sxtb16 {t}, {t}, ror #8",
                "smlad {c2}, {b}, {w0}, {c2}",
                "smlad {c3}, {t}, {w1}, {c3}",
                xa = in(reg) xa,
                xb = in(reg) xb,
                w = in(reg) w,
                a = out(reg) _,
                b = out(reg) _,
                t = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                c0 = inout(reg) acc[0],
                c1 = inout(reg) acc[1],
                c2 = inout(reg) acc[2],
                c3 = inout(reg) acc[3],
                options(pure, readonly, nostack),
            );
        }
    }

    /// The output byte of sum `v` with constants `k` = (m, e, half + zo·2^e) (the zero
    /// point added before the shift: ⌊(y + zo·2^e) / 2^e⌋ = ⌊y / 2^e⌋ + zo, and with e ≤ 22,
    /// |zo| ≤ 128 the sum stays below 2^30 + 2^29 + 2^21): `FULL` when the clamp is the whole
    /// i8 range (one `ssat`).
    #[inline(always)]
    fn out8<const FULL: bool>(v: i32, k: &[i32; 3], lo: i32, hi: i32) -> i8 {
        let v = mbqm_fast(v, k[0], k[1], k[2]);
        if FULL {
            v.clamp(-128, 127) as i8
        } else {
            v.clamp(lo, hi) as i8
        }
    }

    /// Channels `0..oc` rounded down to a multiple of 4; returns the first channel not done.
    ///
    /// # Safety
    /// `job`'s contract; with `j.last`, `j.fin.fast`; `j.w` 4-byte aligned.
    pub(super) unsafe fn run(j: &Job<i8, i16, i32>) -> usize {
        // SAFETY: forwarded.
        unsafe {
            if j.fin.lo <= -128 && j.fin.hi >= 127 {
                channels::<true>(j)
            } else {
                channels::<false>(j)
            }
        }
    }

    /// [`run`] for a clamp (`FULL`: the whole i8 range).
    ///
    /// # Safety
    /// As [`run`].
    // Not inlined into the driver: its register pressure would spill the hot loop.
    #[inline(never)]
    unsafe fn channels<const FULL: bool>(j: &Job<i8, i16, i32>) -> usize {
        let end = j.oc & !3;
        let taps = j.taps.len().min(2 * j.pairs).min(MAX_TAPS);
        let ws = 2 * j.oc; // i16 weights of one pair
        let (zo, lo, hi) = (j.fin.zo, j.fin.lo, j.fin.hi);
        let mut tp = [core::ptr::null::<i8>(); MAX_TAPS];
        let mut k = [[0i32; 3]; CB];
        let mut c0 = 0;
        // SAFETY (whole body): the `Job` contract: tap t of pixel px reads channels 0..oc at
        // taps[t] + px·steps[t], the pair p's weights of channel c are the word at
        // w + 2(p·oc + c) (4-byte aligned: w is, caller), the per-channel arrays, `init`,
        // `out` and `partial` are read or written only at pixels below n and channels below
        // `end` ≤ oc.
        unsafe {
            while c0 < end {
                let c1 = end.min(c0 + CB);
                let kb = &mut k[..c1 - c0];
                if j.last {
                    for (c, k) in (c0..c1).zip(kb.iter_mut()) {
                        let (m, e, h) = consts(*j.fin.mults.add(c), *j.fin.shifts.add(c));
                        *k = [m, e, h + (zo << e)];
                    }
                }
                for px in 0..j.n {
                    for ((p, &t), &s) in tp.iter_mut().zip(&j.taps[..taps]).zip(j.steps) {
                        *p = t.add(px * s);
                    }
                    for (i, kg) in kb.chunks_exact(4).enumerate() {
                        let c = c0 + 4 * i;
                        let mut acc = if j.init.is_null() {
                            [0; 4]
                        } else {
                            (j.init.add(px * j.init_stride + c) as *const [i32; 4]).read_unaligned()
                        };
                        let w = j.w.add(2 * c);
                        for (p, ab) in tp[..taps].chunks_exact(2).enumerate() {
                            pair4(&mut acc, ab[0].add(c), ab[1].add(c), w.add(p * ws));
                        }
                        if j.last {
                            let o = j.out.add(px * j.out_stride + c);
                            for (l, (&v, k)) in acc.iter().zip(kg).enumerate() {
                                *o.add(l) = out8::<FULL>(v, k, lo, hi);
                            }
                        } else {
                            (j.partial.add(px * j.oc + c) as *mut [i32; 4]).write_unaligned(acc);
                        }
                    }
                }
                c0 = c1;
            }
        }
        end
    }
}

//! The 512-point real FFT of the frontend, as the mel energies of its bins: the windowed
//! frame's even and odd samples taken as the (re, im) pairs of 256 complex points, a
//! 256-point complex radix-4 FFT of them, then the split step that separates the two real
//! spectra (X[k] = E[k] + W⁵¹²ᵏ·O[k]) for the bins the mel filters use, each bin's |X[k]|
//! added into its (at most two) bands as it is made. f32, 2 KB of stack, no other scratch.
//!
//! - The window is applied as the first radix-4 stage reads the samples (its twiddles are
//!   all 1), which also puts them in digit-reversed order: no pass of its own.
//! - Stages 2-4 read their twiddles in order from one build-time table.
//! - √ is IEEE's (correctly rounded: the FPU's instruction where there is one, see
//!   [`math::sqrt`](super::math::sqrt)).
//! - On the Cortex-M4F (`cfg(edgemm_asm)` with `edgemm_arm_vfp4`) the FFT, the split step
//!   and the mel sums are assembly (asm/thumbv7em/fft_*.S): for i16 samples the first two
//!   stages in one kernel, the third stage, the last stage fused with the split step's
//!   magnitudes, then the mel sums. The same operations in the same order, each rounded
//!   once, so the results are the same bits as this Rust, which every other target runs
//!   (scripts/kws-cortex-m4.sh compares a hash of the MFCCs with the host's).
//!
//! Rounding: each of the 4 radix-4 stages and the split step adds a few f32 roundings per
//! value (u = 2⁻²⁴ each), so ‖X̂ − X‖₂ ≤ c·u·‖X‖₂ with c ≈ 10. Per bin, the error has a part
//! relative to the bin (its own butterflies, the window, the √) and a floor spread from the
//! whole spectrum; the tests check |ΔX[k]| ≤ u·(24|X[k]| + 36‖X‖₂/√512), which
//! tests/audio_frontend.rs builds on.

use super::frontend::{Sample, CHUNK, FRAME_LEN, NUM_MELS};
use super::math;
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
use super::tables::HANN_I16;
use super::tables::{FFT_TWIDDLES, MEL_SEGMENTS, MEL_WEIGHTS, SPLIT_TWIDDLES};
use core::mem::MaybeUninit;

/// Complex points of the inner FFT.
const N: usize = 256;

/// A complex value as (re, im).
type C = [f32; 2];

/// Base-4 digit reversal of 3 digits: the first stage's block j takes the points j' + 64q.
const DIGIT_REV: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut j = 0;
    while j < 64 {
        t[j] = (((j & 3) << 4) | (j & 12) | (j >> 4)) as u8;
        j += 1;
    }
    t
};

// The frame fills points 0..240; the first stage reads point a + 192 only for a < 48.
const _: () = assert!(FRAME_LEN == 2 * 240 && N == 256);
// The split step reads Z[k] and Z[256 − k] for the mel bins k in 1..128.
const _: () = assert!(MEL_SEGMENTS[0] >= 1 && MEL_SEGMENTS[NUM_MELS + 1] as usize <= N / 2);
const _: () = assert!(MEL_WEIGHTS.len() == MEL_SEGMENTS[NUM_MELS + 1] as usize);
const _: () = assert!(SPLIT_TWIDDLES.len() >= MEL_WEIGHTS.len());
// The segments ascend (a segment may be empty).
const _: () = {
    let mut j = 0;
    while j <= NUM_MELS {
        assert!(MEL_SEGMENTS[j] <= MEL_SEGMENTS[j + 1]);
        j += 1;
    }
};

/// The mel energies Σₖ w_mk·|X[k]| (m < 40) of the 512-point real DFT X of the frame (the
/// three chunks in time order) times the window (zero-padded), made in `out` (no copy of
/// a returned array).
pub(crate) fn mel_energies<'a, S: Sample>(
    chunks: [&[S; CHUNK]; 3],
    out: &'a mut MaybeUninit<[f32; NUM_MELS]>,
) -> &'a [f32; NUM_MELS] {
    let mut blocks = [const { MaybeUninit::<[C; 4]>::uninit() }; 64];
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    let done = match chunks.map(S::as_i16) {
        [Some(a), Some(b), Some(c)] if [a, b, c].iter().all(|x| x.as_ptr() as usize % 4 == 0) => {
            let x = [a.as_ptr(), b.as_ptr(), c.as_ptr()];
            // SAFETY: the kernel's contract (asm/thumbv7em/fft_first_i16_vfp4.S): x is three
            // pointers to 160 samples each, 4-byte aligned (checked), the window 480 floats,
            // the second stage's twiddles 4 rows; it writes the 64 blocks (2 KB) and nothing
            // else.
            unsafe {
                fft_first_i16_vfp4(
                    blocks.as_mut_ptr().cast(),
                    x.as_ptr(),
                    HANN_I16.as_ptr(),
                    FFT_TWIDDLES.as_ptr().cast(),
                )
            };
            true
        }
        _ => false,
    };
    #[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4)))]
    let done = false;
    if !done {
        for (j, block) in blocks.iter_mut().enumerate() {
            block.write(first_stage(chunks, j));
        }
    }
    // SAFETY: the loop above or the kernel initialized all 64 blocks, and MaybeUninit<[C;
    // 4]> has the layout of [C; 4]. (Not zeroing the 2 KB, or moving a made array, saves a
    // pass.)
    let z = unsafe { &mut *(blocks.as_mut_ptr() as *mut [[C; 4]; 64]) };
    let z: &mut [C; N] = z.as_flattened_mut().try_into().expect("64 × 4 points");
    let (second, tw) = FFT_TWIDDLES.split_at(4);
    // The assembly first stage does the second too.
    if !done {
        radix4_stage(z, second);
    }
    let (third, last) = tw.split_at(16);
    radix4_stage(z, third);
    last_stage_to_mel(z, last, out)
}

/// The first radix-4 stage's block j: the windowed samples as points (re, im) = (x[2n],
/// x[2n + 1]), and the 4-point DFT of points a, a + 64, a + 128, a + 192 for a =
/// DIGIT_REV[j]. Sample n is `chunks[n / 160][n % 160]`.
#[inline(always)]
fn first_stage<S: Sample>(chunks: [&[S; CHUNK]; 3], j: usize) -> [C; 4] {
    let w = S::WINDOW;
    let a = DIGIT_REV[j] as usize & 63;
    let x = |n: usize| chunks[n / CHUNK][n % CHUNK].raw();
    let p = |q: usize| {
        let n = 2 * a + 128 * q;
        // A pair never straddles two chunks: n is even and the chunks' length too.
        [x(n) * w[n], x(n + 1) * w[n + 1]]
    };
    let (p0, p1, p2) = (p(0), p(1), p(2));
    // Points from 240 on are the zero padding.
    let p3 = if a < 48 { p(3) } else { [0.0; 2] };
    dft4(p0, p1, p2, p3)
}

/// The 4-point DFT: y_r = Σ_q p_q·(−i)^(qr).
#[inline(always)]
fn dft4(p0: C, p1: C, p2: C, p3: C) -> [C; 4] {
    let t0 = [p0[0] + p2[0], p0[1] + p2[1]];
    let t1 = [p0[0] - p2[0], p0[1] - p2[1]];
    let t2 = [p1[0] + p3[0], p1[1] + p3[1]];
    let t3 = [p1[0] - p3[0], p1[1] - p3[1]];
    [
        [t0[0] + t2[0], t0[1] + t2[1]],
        [t1[0] + t3[1], t1[1] - t3[0]],
        [t0[0] - t2[0], t0[1] - t2[1]],
        [t1[0] - t3[1], t1[1] + t3[0]],
    ]
}

#[inline(always)]
fn cmul(w: &[f32], p: C) -> C {
    [w[0] * p[0] - w[1] * p[1], w[0] * p[1] + w[1] * p[0]]
}

/// One decimation-in-time radix-4 stage: in blocks of 4Q points (Q = `tw.len()`), point k
/// of each quarter q is twiddled by exp(−2πiqk/4Q) (the table's row k), then the 4-point
/// DFT of the four quarters' point k goes back to the same places.
fn radix4_stage(z: &mut [C; N], tw: &[[f32; 6]]) {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    {
        let quarter = tw.len();
        if quarter >= 2 && quarter % 2 == 0 && N % (4 * quarter) == 0 {
            // SAFETY: the kernel's contract (asm/thumbv7em/fft_radix4_vfp4.S): z holds N /
            // (4 · quarter) blocks of 4 · quarter points, quarter even (checked), tw
            // `quarter` rows of 6; it touches nothing else.
            unsafe {
                fft_radix4_vfp4(
                    z.as_mut_ptr().cast(),
                    N / (4 * quarter),
                    quarter,
                    tw.as_ptr().cast(),
                )
            };
            return;
        }
    }
    portable_radix4_stage(z, tw);
}

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
extern "C" {
    /// [`first_stage`] of all 64 blocks for i16 samples (three chunks of 160), then the
    /// second stage ([`radix4_stage`] with the first 4 twiddle rows), in Cortex-M4F
    /// assembly, the same roundings in the same order.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_fft_first_i16_vfp4"
    )]
    fn fft_first_i16_vfp4(
        z: *mut f32,
        chunks: *const *const i16,
        window: *const f32,
        tw: *const f32,
    );
    /// The same stage in Cortex-M4F assembly, the same roundings in the same order.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_fft_radix4_vfp4"
    )]
    fn fft_radix4_vfp4(z: *mut f32, blocks: usize, quarter: usize, tw: *const f32);
    /// Copies `blocks` × 64 bytes between word-aligned, disjoint buffers.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_fft_copy_vfp4"
    )]
    fn fft_copy_vfp4(dst: *mut u32, src: *const u32, blocks: usize);
}

/// `dst = src` through the Cortex-M4F's FPU registers, 64 bytes at a time, if both are 4-byte
/// aligned; false (nothing done) otherwise or on other targets.
#[inline]
pub(super) fn copy_i16_chunk(dst: &mut [i16; CHUNK], src: &[i16; CHUNK]) -> bool {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    if (dst.as_ptr() as usize | src.as_ptr() as usize) % 4 == 0 {
        const _: () = assert!(CHUNK * 2 % 64 == 0);
        // SAFETY: the kernel's contract (asm/thumbv7em/fft_first_i16_vfp4.S, fft_copy_vfp4):
        // both word-aligned (checked), CHUNK · 2 bytes = a whole number of 64-byte blocks
        // (asserted), not overlapping (a &mut and a &); it writes dst only.
        unsafe { fft_copy_vfp4(dst.as_mut_ptr().cast(), src.as_ptr().cast(), CHUNK * 2 / 64) };
        return true;
    }
    let _ = (dst, src);
    false
}

/// [`radix4_stage`] in Rust: every target's path but the Cortex-M4F's, and its reference.
fn portable_radix4_stage(z: &mut [C], tw: &[[f32; 6]]) {
    let quarter = tw.len();
    // Iterators rather than indices, so the butterflies have no bounds checks.
    for block in z.chunks_exact_mut(4 * quarter) {
        let (q0, rest) = block.split_at_mut(quarter);
        let (q1, rest) = rest.split_at_mut(quarter);
        let (q2, q3) = rest.split_at_mut(quarter);
        let points = q0.iter_mut().zip(q1.iter_mut()).zip(q2.iter_mut());
        let mut points = points.zip(q3.iter_mut());
        // Point 0's twiddles are all 1.
        if let Some((((a, b), c), d)) = points.next() {
            let y = dft4(*a, *b, *c, *d);
            (*a, *b, *c, *d) = (y[0], y[1], y[2], y[3]);
        }
        for ((((a, b), c), d), w) in points.zip(&tw[1..]) {
            let y = dft4(
                *a,
                cmul(&w[0..2], *b),
                cmul(&w[2..4], *c),
                cmul(&w[4..6], *d),
            );
            (*a, *b, *c, *d) = (y[0], y[1], y[2], y[3]);
        }
    }
}

/// The last radix-4 stage (`tw` its 64 rows), then [`split_to_mel`]. On the Cortex-M4F the
/// stage and the split step's magnitudes are one kernel (asm/thumbv7em/fft_last_split_vfp4.S:
/// butterflies k and 64 − k make the points of bins k, 64 ± k and 128 − k, so the stage's
/// results are never stored), then the mel sums another (fft_mel_vfp4.S).
fn last_stage_to_mel<'a>(
    z: &mut [C; N],
    tw: &[[f32; 6]],
    out: &'a mut MaybeUninit<[f32; NUM_MELS]>,
) -> &'a [f32; NUM_MELS] {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    {
        let _ = tw;
        // SAFETY: the kernel's contract (asm/thumbv7em/fft_last_split_vfp4.S): z holds 256
        // points, LAST_SPLIT is its table; it writes z only.
        unsafe { fft_last_split_vfp4(z.as_mut_ptr().cast(), LAST_SPLIT.as_ptr()) };
        let args = MelArgs {
            z: z.as_ptr().cast(),
            mel: out.as_mut_ptr().cast(),
            weights: MEL_WEIGHTS.as_ptr().cast(),
            lengths: MEL_LENGTHS.as_ptr(),
            first: MEL_SEGMENTS[0] as usize,
            bands: NUM_MELS,
        };
        // SAFETY: the kernel's contract (asm/thumbv7em/fft_mel_vfp4.S): z holds 256 points
        // (the magnitudes of bins 1..128 in their re), mel NUM_MELS floats (an even count),
        // the lengths NUM_MELS + 1 bytes of segments from bin ≥ 1 to ≤ 128 and the weights a
        // pair for every bin below the last (the const asserts at the top of the file and
        // below); it reads and writes nothing else.
        unsafe { fft_mel_vfp4(&args) };
        // SAFETY: the kernel wrote all `bands` = NUM_MELS floats (its contract).
        unsafe { out.assume_init_ref() }
    }
    #[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4)))]
    {
        radix4_stage(z, tw);
        out.write(split_to_mel(z))
    }
}

/// The table of fft_last_split_vfp4, in the order it reads it: the last stage's twiddle row
/// 32 and the split twiddles of bins 64, 32, 96; then for k = 1..31 the rows k and 64 − k and
/// the split twiddles of bins k, 64 − k, 64 + k, 128 − k. Copies of the tables' values.
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
static LAST_SPLIT: [f32; 12 + 31 * 20] = {
    const ROWS: usize = 4 + 16;
    let mut t = [0.0f32; 12 + 31 * 20];
    let mut i = 0;
    while i < 6 {
        t[i] = FFT_TWIDDLES[ROWS + 32][i];
        i += 1;
    }
    let bins = [64, 32, 96];
    let mut b = 0;
    while b < 3 {
        t[6 + 2 * b] = SPLIT_TWIDDLES[bins[b]][0];
        t[7 + 2 * b] = SPLIT_TWIDDLES[bins[b]][1];
        b += 1;
    }
    let mut k = 1;
    while k < 32 {
        let row = 12 + 20 * (k - 1);
        let mut i = 0;
        while i < 6 {
            t[row + i] = FFT_TWIDDLES[ROWS + k][i];
            t[row + 6 + i] = FFT_TWIDDLES[ROWS + 64 - k][i];
            i += 1;
        }
        let bins = [k, 64 - k, 64 + k, 128 - k];
        let mut b = 0;
        while b < 4 {
            t[row + 12 + 2 * b] = SPLIT_TWIDDLES[bins[b]][0];
            t[row + 13 + 2 * b] = SPLIT_TWIDDLES[bins[b]][1];
            b += 1;
        }
        k += 1;
    }
    t
};
// The last stage's 64 rows follow the other stages' 4 + 16.
const _: () = assert!(FFT_TWIDDLES.len() == 4 + 16 + 64 && SPLIT_TWIDDLES.len() >= 128);

/// The arguments of the assembly mel sums (asm/thumbv7em/fft_mel_vfp4.S).
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
#[repr(C)]
struct MelArgs {
    z: *const f32,
    mel: *mut f32,
    weights: *const f32,
    lengths: *const u8,
    first: usize,
    bands: usize,
}

/// The bins of each mel segment (the kernel reads a length rather than two starts).
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
static MEL_LENGTHS: [u8; NUM_MELS + 1] = {
    let mut t = [0u8; NUM_MELS + 1];
    let mut j = 0;
    while j <= NUM_MELS {
        t[j] = MEL_SEGMENTS[j + 1] - MEL_SEGMENTS[j];
        j += 1;
    }
    t
};
// The kernel does the bands two segments a pass.
const _: () = assert!(NUM_MELS % 2 == 0);

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
extern "C" {
    /// The last radix-4 stage and the split step's magnitudes in Cortex-M4F assembly, the
    /// same roundings in the same order as [`radix4_stage`] and [`split_to_mel`].
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_fft_last_split_vfp4"
    )]
    fn fft_last_split_vfp4(z: *mut f32, table: *const f32);
    /// [`split_to_mel`]'s mel sums in Cortex-M4F assembly, the same roundings in the same
    /// order.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_fft_mel_vfp4"
    )]
    fn fft_mel_vfp4(args: *const MelArgs);
}

/// The split step for the mel bins, then the mel sums. With A = Z[k] and B = conj(Z[256 −
/// k]), 2E = A + B and 2O = −i(A − B) are the DFTs of the even and odd samples, and 2X[k] =
/// 2E + Wᵏ·2O; its magnitude goes to Z[k].re (no later bin reads Z[k]). The mel weights are
/// halved (build.rs), so w·|2X[k]|/2 is w·|X[k]| exactly. The bins come in segments:
/// segment j holds the bins on the rising side of band j and the falling side of band j − 1,
/// so after it band j − 1 is complete. Every target's path but the Cortex-M4F's, and its
/// reference.
#[cfg_attr(
    all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4),
    allow(dead_code)
)]
fn split_to_mel(z: &mut [C; N]) -> [f32; NUM_MELS] {
    const LO: usize = MEL_SEGMENTS[0] as usize;
    const HI: usize = MEL_SEGMENTS[NUM_MELS + 1] as usize;
    let (front, back) = z.split_at_mut(N / 2);
    for k in LO..HI {
        // In bounds: 1 ≤ k < 128 (the const asserts above), so 128 − k is too.
        let (a, b, w) = (front[k], back[N / 2 - k], SPLIT_TWIDDLES[k]);
        let (er, ei) = (a[0] + b[0], a[1] - b[1]);
        let (or, oi) = (a[1] + b[1], b[0] - a[0]);
        let (tr, ti) = (w[0] * or - w[1] * oi, w[0] * oi + w[1] * or);
        let (xr, xi) = (er + tr, ei + ti);
        front[k][0] = math::sqrt(xr * xr + xi * xi);
    }
    let mut mel = [0.0f32; NUM_MELS];
    let mut bins = &front[LO..HI];
    let mut weights = &MEL_WEIGHTS[LO..HI];
    // The falling band (j − 1) and the rising one (j).
    let (mut falling, mut rising) = (0.0f32, 0.0f32);
    for j in 0..=NUM_MELS {
        let count = (MEL_SEGMENTS[j + 1] - MEL_SEGMENTS[j]) as usize;
        let (now, rest) = bins.split_at(count);
        let (w_now, w_rest) = weights.split_at(count);
        for (x, w) in now.iter().zip(w_now) {
            falling += w[0] * x[0];
            rising += w[1] * x[0];
        }
        (bins, weights) = (rest, w_rest);
        if let Some(done) = j.checked_sub(1).and_then(|b| mel.get_mut(b)) {
            *done = falling;
        }
        (falling, rising) = (rising, 0.0);
    }
    mel
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// |X[k]| by the f64 DFT of the windowed, zero-padded frame.
    fn dft_magnitudes(x: &[f32]) -> (Vec<f64>, f64) {
        let windowed: Vec<f64> = x
            .iter()
            .zip(<f32 as Sample>::WINDOW.iter())
            .map(|(v, h)| *v as f64 * *h as f64)
            .collect();
        let mags = (0..=256)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (j, &v) in windowed.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * ((j * k) % 512) as f64 / 512.0;
                    re += v * a.cos();
                    im += v * a.sin();
                }
                (re * re + im * im).sqrt()
            })
            .collect();
        let norm = (512.0 * windowed.iter().map(|v| v * v).sum::<f64>()).sqrt();
        (mags, norm)
    }

    /// The FFT and the split step, through the mel sums, against the f64 DFT with the same
    /// weights.
    #[test]
    fn matches_dft() {
        let mut seed = 0x1234_5678u32;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        for case in 0..6 {
            let mut x = [0.0f32; FRAME_LEN];
            for (i, v) in x.iter_mut().enumerate() {
                *v = match case {
                    0 => rand(),
                    1 => (i == 3) as u8 as f32,
                    2 => (0.3 * i as f32).sin(),
                    3 => (0.002 * (i * i) as f32).sin() + 1e-3 * rand(),
                    4 => 0.5 * (2.7 * i as f32).sin() + 1e-5 * rand(),
                    _ => 1.0,
                };
            }
            let (exact, norm) = dft_magnitudes(&x);
            let got = *mel_energies(
                [0, 1, 2]
                    .map(|c| <&[f32; CHUNK]>::try_from(&x[c * CHUNK..(c + 1) * CHUNK]).unwrap()),
                &mut MaybeUninit::uninit(),
            );
            let u = 2f64.powi(-24);
            // Band m's f64 sum and its bound: the per-bin model of the header,
            // u·(24|X[k]| + 36‖X‖₂/√512), through the weights, plus the sum's roundings.
            let mut want = [0.0f64; NUM_MELS];
            let mut bound = [0.0f64; NUM_MELS];
            for j in 0..=NUM_MELS {
                for k in MEL_SEGMENTS[j] as usize..MEL_SEGMENTS[j + 1] as usize {
                    for (band, w) in [
                        (j.wrapping_sub(1), MEL_WEIGHTS[k][0]),
                        (j, MEL_WEIGHTS[k][1]),
                    ] {
                        if band < NUM_MELS {
                            let w = 2.0 * w as f64;
                            want[band] += w * exact[k];
                            bound[band] += w * u * (24.0 * exact[k] + 36.0 * norm / 512f64.sqrt());
                            bound[band] += w * exact[k] * 40.0 * u;
                        }
                    }
                }
            }
            for m in 0..NUM_MELS {
                let e = (got[m] as f64 - want[m]).abs();
                assert!(
                    e <= bound[m],
                    "case {case} band {m}: {} vs {}",
                    got[m],
                    want[m]
                );
            }
        }
    }

    #[test]
    fn digit_reversal_is_an_involution() {
        assert!((0..64).all(|j| DIGIT_REV[DIGIT_REV[j] as usize] as usize == j));
        assert_eq!(&DIGIT_REV[..5], &[0, 16, 32, 48, 4]);
    }
}

//! MFCC features of 16 kHz mono audio, as the keyword model is trained with them (MLPerf
//! Tiny KWS style, computed like TensorFlow's `tf.signal`):
//!
//! 1. frames of 480 samples (30 ms) every 320 (20 ms): `1 + (n − 480)/320` frames of n
//!    samples, 49 per second (`tf.signal.stft`, no end padding);
//! 2. times the periodic Hann window of 480 (`tf.signal.hann_window(480, periodic=True)`);
//! 3. zero-padded to 512, real FFT, magnitude |X[k]| of its bins (not the power), of those
//!    (1..128) the mel filters weight;
//! 4. 40 mel bands: `tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20, 4000)`
//!    (HTK mel scale 1127·ln(1 + f/700), triangles in mel space, the DC bin weighted 0);
//! 5. ln(mel + 1e-6);
//! 6. `tf.signal.mfccs_from_log_mel_spectrograms`: the DCT-II 2·Σₙ xₙ cos(πk(2n+1)/80)
//!    scaled by 1/√80, the first 10 coefficients.
//!
//! Output: 10 f32 per frame, frames in time order (row-major `[frames][10]`).
//!
//! How (see fft.rs): the window is applied as the FFT's first stage reads the samples; each
//! bin's magnitude is added into its bands as the split step makes it (every bin is in at
//! most two); `ln` is a table and a polynomial ([`math::ln`]); the DCT folds the symmetric
//! halves of its rows first (x_m ± x_{39−m}), 200 products instead of 400.
//!
//! RAM: a [`Frontend`] is its 480 samples (a ring of three chunks of 160) and two counts:
//! 964 bytes for i16 samples, 1924 for f32. Computing a frame takes 2 KB of
//! stack scratch (the FFT buffer) plus 160 bytes of mel energies; nothing else, no heap.
//! Tables (two windows, twiddles, mel weights, DCT, ln) are 9 KB of read-only data, 7 KB
//! of them for one sample type (each has its own window).

use super::error::AudioError;
#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
use super::tables::LN_ROWS;
use super::tables::{DCT_HALF, HANN, HANN_I16, MEL_SEGMENTS};
use super::{fft, math};
use crate::Error;
use core::mem::MaybeUninit;

/// Samples per second the frontend is made for.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in a frame (30 ms).
pub const FRAME_LEN: usize = 480;
/// Samples between frame starts (20 ms).
pub const HOP: usize = 320;
/// FFT length (the frame zero-padded).
pub const FFT_LEN: usize = 512;
/// Magnitude spectrum bins.
pub const NUM_BINS: usize = FFT_LEN / 2 + 1;
/// Mel bands.
pub const NUM_MELS: usize = 40;
/// MFCCs kept per frame.
pub const NUM_MFCCS: usize = 10;
/// Added to the mel energies before the log.
pub const LOG_OFFSET: f32 = 1e-6;
/// Samples in a chunk: a frame is three, a hop two (the streaming frontend keeps chunks).
pub(crate) const CHUNK: usize = FRAME_LEN / 3;
const _: () = assert!(3 * CHUNK == FRAME_LEN && 2 * CHUNK == HOP);
/// Frames of one second of audio.
pub const FRAMES_PER_SECOND: usize = frame_count(SAMPLE_RATE as usize);

// build.rs writes the tables for these sizes.
const _: () = assert!(HANN.len() == FRAME_LEN && HANN_I16.len() == FRAME_LEN);
const _: () = assert!(DCT_HALF.len() == NUM_MFCCS && DCT_HALF[0].len() * 2 == NUM_MELS);
const _: () = assert!(MEL_SEGMENTS.len() == NUM_MELS + 2 && FRAMES_PER_SECOND == 49);

/// A sample type the frontend reads: i16 PCM (scaled by 1/32768) or f32 in [−1, 1].
pub trait Sample: Copy {
    /// Zero.
    const ZERO: Self;
    /// The sample as f32 in [−1, 1].
    fn to_f32(self) -> f32;
    /// The Hann window with the scale to [−1, 1] folded in, and the unscaled sample it
    /// multiplies: `raw()·WINDOW[n]` rounds exactly as `to_f32()·hann[n]` (the scale is a
    /// power of two).
    #[doc(hidden)]
    const WINDOW: &'static [f32; FRAME_LEN];
    #[doc(hidden)]
    fn raw(self) -> f32;
    /// A chunk of the frame as i16 samples, if they are (the Cortex-M4F's first FFT stage
    /// reads them).
    #[doc(hidden)]
    fn as_i16(_chunk: &[Self; CHUNK]) -> Option<&[i16; CHUNK]> {
        None
    }
    /// The same, to write.
    #[doc(hidden)]
    fn as_i16_mut(_chunk: &mut [Self; CHUNK]) -> Option<&mut [i16; CHUNK]> {
        None
    }
}

impl Sample for i16 {
    const ZERO: Self = 0;
    const WINDOW: &'static [f32; FRAME_LEN] = &HANN_I16;
    #[inline]
    fn to_f32(self) -> f32 {
        // Exact: a power-of-two scale.
        self as f32 * (1.0 / 32768.0)
    }
    #[inline]
    fn raw(self) -> f32 {
        self as f32
    }
    #[inline]
    fn as_i16(chunk: &[Self; CHUNK]) -> Option<&[i16; CHUNK]> {
        Some(chunk)
    }
    #[inline]
    fn as_i16_mut(chunk: &mut [Self; CHUNK]) -> Option<&mut [i16; CHUNK]> {
        Some(chunk)
    }
}

impl Sample for f32 {
    const ZERO: Self = 0.0;
    const WINDOW: &'static [f32; FRAME_LEN] = &HANN;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn raw(self) -> f32 {
        self
    }
}

/// Frames in `samples` samples: `1 + (samples − 480)/320`, 0 below 480.
pub const fn frame_count(samples: usize) -> usize {
    if samples < FRAME_LEN {
        0
    } else {
        1 + (samples - FRAME_LEN) / HOP
    }
}

/// The 10 MFCCs of one frame of 480 samples.
pub fn mfcc_frame<S: Sample>(frame: &[S; FRAME_LEN]) -> [f32; NUM_MFCCS] {
    let (a, rest) = frame.split_at(CHUNK);
    let (b, c) = rest.split_at(CHUNK);
    mfcc_chunks([a, b, c].map(|x| <&[S; CHUNK]>::try_from(x).expect("a chunk")))
}

/// The 10 MFCCs of the frame made of three chunks of 160 samples, in time order.
fn mfcc_chunks<S: Sample>(chunks: [&[S; CHUNK]; 3]) -> [f32; NUM_MFCCS] {
    // The arrays are made in place: returned by value, each was copied (160 bytes).
    let (mut mel, mut logs) = (MaybeUninit::uninit(), MaybeUninit::uninit());
    dct(log_mel(fft::mel_energies(chunks, &mut mel), &mut logs))
}

/// The DCT of the log-mel energies: the [`DCT_HALF`] rows against the folded halves.
#[inline]
fn dct(log_mel: &[f32; NUM_MELS]) -> [f32; NUM_MFCCS] {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    {
        const _: () = assert!(NUM_MELS == 40 && NUM_MFCCS == 10);
        let mut out = core::mem::MaybeUninit::<[f32; NUM_MFCCS]>::uninit();
        // SAFETY: the kernel's contract (asm/thumbv7em/mfcc_dct_vfp4.S): log_mel 40 floats,
        // out 10, the rows 10 of 20 (the const asserts); it writes out only.
        unsafe {
            mfcc_dct_vfp4(
                log_mel.as_ptr(),
                out.as_mut_ptr().cast(),
                DCT_HALF.as_ptr().cast(),
            )
        };
        // SAFETY: the kernel wrote all NUM_MFCCS floats (its contract).
        unsafe { out.assume_init() }
    }
    #[cfg(not(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4)))]
    portable_dct(log_mel)
}

/// [`dct`] in Rust: every target's path but the Cortex-M4F's, and its reference.
#[cfg_attr(
    all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4),
    allow(dead_code)
)]
fn portable_dct(log_mel: &[f32; NUM_MELS]) -> [f32; NUM_MFCCS] {
    // DCT row k is symmetric about the middle for even k and antisymmetric for odd k.
    let (head, tail) = log_mel.split_at(NUM_MELS / 2);
    let mut sum = [0.0f32; NUM_MELS / 2];
    let mut diff = [0.0f32; NUM_MELS / 2];
    for (((s, d), &a), &b) in sum
        .iter_mut()
        .zip(&mut diff)
        .zip(head)
        .zip(tail.iter().rev())
    {
        (*s, *d) = (a + b, a - b);
    }
    let mut out = [0.0f32; NUM_MFCCS];
    for (k, (o, row)) in out.iter_mut().zip(&DCT_HALF).enumerate() {
        let folded = if k % 2 == 0 { &sum } else { &diff };
        *o = row.iter().zip(folded).map(|(c, x)| c * x).sum();
    }
    out
}

/// ln(e + [`LOG_OFFSET`]) of each mel energy e ([`math::ln`]).
#[inline]
fn log_mel<'a>(
    mel: &[f32; NUM_MELS],
    out: &'a mut MaybeUninit<[f32; NUM_MELS]>,
) -> &'a [f32; NUM_MELS] {
    #[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
    {
        const _: () = assert!(NUM_MELS % 2 == 0);
        // SAFETY: the kernel's contract (asm/thumbv7em/mfcc_log_vfp4.S): mel and out
        // NUM_MELS floats each (even, asserted), the rows ln's 32 rows of 3; it writes out
        // only.
        let special = unsafe {
            mfcc_log_vfp4(
                mel.as_ptr(),
                out.as_mut_ptr().cast(),
                LN_ROWS.as_ptr().cast(),
                NUM_MELS,
            )
        };
        if special == 0 {
            // SAFETY: returning 0, the kernel wrote all NUM_MELS floats.
            return unsafe { out.assume_init_ref() };
        }
    }
    out.write(mel.map(|e| math::ln(e + LOG_OFFSET)))
}

#[cfg(all(target_arch = "arm", edgemm_asm, edgemm_arm_vfp4))]
extern "C" {
    /// [`log_mel`] in Cortex-M4F assembly, [`math::ln`]'s operations in the same order;
    /// returns nonzero (without finishing) on an energy whose e + 1e-6 is not a positive
    /// normal float.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_mfcc_log_vfp4"
    )]
    fn mfcc_log_vfp4(mel: *const f32, out: *mut f32, rows: *const f32, n: usize) -> u32;
    /// [`dct`] in Cortex-M4F assembly, the same roundings in the same order.
    #[link_name = concat!(
        "edgemm_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_",
        env!("CARGO_PKG_VERSION_PATCH"), "_mfcc_dct_vfp4"
    )]
    fn mfcc_dct_vfp4(log_mel: *const f32, out: *mut f32, rows: *const f32);
}

// The assembly's constants.
const _: () = assert!(LOG_OFFSET.to_bits() == 0x3586_37bd);

/// The MFCCs of a whole clip: [`frame_count`]`(samples.len())` frames of 10 into the front
/// of `out`; returns the number of frames. An `out` shorter than that is an error.
pub fn mfcc<S: Sample>(samples: &[S], out: &mut [f32]) -> Result<usize, Error> {
    let frames = frame_count(samples.len());
    let need = frames * NUM_MFCCS;
    if out.len() < need {
        return Err(
            AudioError::new("output buffer holds {} floats, {} frames need more")
                .with(&[out.len() as i64, frames as i64])
                .into(),
        );
    }
    let mut rows = out.chunks_exact_mut(NUM_MFCCS);
    let mut frontend = Frontend::<S>::new();
    frontend.push(samples, |f| {
        if let Some(row) = rows.next() {
            row.copy_from_slice(f);
        }
    });
    Ok(frames)
}

/// The streaming frontend: push samples as they come, get a frame of MFCCs each time 480 are
/// buffered (then the oldest 320 are dropped). Pushing a clip in any chunks gives the same
/// frames as [`mfcc`] on the whole clip. RAM: see the module header.
///
/// The samples are kept as a ring of three chunks of 160 (a frame is three chunks, a hop
/// two), which the FFT's first stage reads in place: no sample is moved once stored, and
/// [`push_hop`](Self::push_hop) reads a hop's samples where the caller has them.
#[derive(Clone, Debug)]
#[repr(C, align(4))]
pub struct Frontend<S: Sample = i16> {
    ring: [S; FRAME_LEN],
    /// The ring's slot (0..3) of the oldest buffered chunk.
    start: u16,
    /// Samples buffered (0..480), from the start of that slot on.
    filled: u16,
}

impl<S: Sample> Default for Frontend<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Sample> Frontend<S> {
    /// An empty frontend (the first frame comes after 480 samples).
    pub const fn new() -> Self {
        Frontend {
            ring: [S::ZERO; FRAME_LEN],
            start: 0,
            filled: 0,
        }
    }

    /// Forgets the buffered samples.
    pub fn reset(&mut self) {
        self.filled = 0;
    }

    /// Samples buffered toward the next frame (below 480).
    pub fn buffered(&self) -> usize {
        self.filled as usize
    }

    /// The ring's slot `i` (taken mod 3).
    fn slot(&self, i: usize) -> &[S; CHUNK] {
        let at = i % 3 * CHUNK;
        self.ring[at..at + CHUNK].try_into().expect("a chunk")
    }

    /// Takes `samples`, calls `emit` with each frame they complete; returns how many.
    pub fn push(&mut self, mut samples: &[S], mut emit: impl FnMut(&[f32; NUM_MFCCS])) -> usize {
        let mut frames = 0;
        let (mut start, mut filled) = (self.start as usize % 3, self.filled as usize);
        while !samples.is_empty() {
            // Fill the chunk the next sample goes to.
            let at = (start + filled / CHUNK) % 3 * CHUNK + filled % CHUNK;
            let take = (CHUNK - filled % CHUNK).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.ring[at..at + take].copy_from_slice(now);
            filled += take;
            samples = rest;
            if filled == FRAME_LEN {
                let s = start;
                emit(&mfcc_chunks([
                    self.slot(s),
                    self.slot(s + 1),
                    self.slot(s + 2),
                ]));
                // The last chunk is the next frame's first.
                start = (start + 2) % 3;
                filled = CHUNK;
                frames += 1;
            }
        }
        // Both below 2¹⁶: start < 3, filled < 480.
        (self.start, self.filled) = (start as u16, filled as u16);
        frames
    }

    /// Takes one hop of 320 new samples and returns the frame they complete, if any: from the
    /// second hop of a stream on, every hop completes exactly one. Once a stream is in step
    /// (the previous hop buffered), the frame's last chunk is read from `hop` where it is,
    /// then the hop is copied in whole, by 32-byte blocks where it can be.
    pub fn push_hop(&mut self, hop: &[S; HOP]) -> Option<[f32; NUM_MFCCS]> {
        if self.filled as usize == HOP {
            let (first, second) = hop.split_at(CHUNK);
            let [first, second] =
                [first, second].map(|x| <&[S; CHUNK]>::try_from(x).expect("a chunk"));
            let start = self.start as usize % 3;
            let frame = mfcc_chunks([self.slot(start), self.slot(start + 1), first]);
            // The hop is the next frame's first two chunks: into the two slots just read.
            let next = (start + 1) % 3;
            copy_chunk(self.slot_mut(start), first);
            copy_chunk(self.slot_mut(next), second);
            return Some(frame);
        }
        let mut frame = None;
        // 320 samples complete at most one frame: fewer than 480 are buffered before, and
        // 160 after a frame.
        self.push(hop, |f| frame = Some(*f));
        frame
    }

    /// The ring's slot `i` (below 3), to write.
    fn slot_mut(&mut self, i: usize) -> &mut [S; CHUNK] {
        let at = i * CHUNK;
        (&mut self.ring[at..at + CHUNK])
            .try_into()
            .expect("a chunk")
    }
}

/// `dst = src` for a chunk: on the Cortex-M4F, i16 samples 4-byte aligned go through the FPU
/// registers 64 bytes at a time (the library's memcpy moves a word at a time); anything else
/// by `copy_from_slice`.
#[inline]
fn copy_chunk<S: Sample>(dst: &mut [S; CHUNK], src: &[S; CHUNK]) {
    if let (Some(d), Some(s)) = (S::as_i16_mut(dst), S::as_i16(src)) {
        if fft::copy_i16_chunk(d, s) {
            return;
        }
    }
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_shot() {
        let x: [i16; 3000] = core::array::from_fn(|i| ((i * 7919) % 2000) as i16 - 1000);
        let mut whole = [0.0f32; 10 * 9];
        assert_eq!(mfcc(&x, &mut whole), Ok(frame_count(3000)));
        assert_eq!(frame_count(3000), 8);
        // Odd chunk sizes.
        let mut fe = Frontend::<i16>::new();
        let mut got = [0.0f32; 10 * 9];
        let mut n = 0;
        for chunk in x.chunks(77) {
            fe.push(chunk, |f| {
                got[n * 10..n * 10 + 10].copy_from_slice(f);
                n += 1;
            });
        }
        assert_eq!((n, got), (8, whole));
        // Hops: nothing from the first, one frame from each later one.
        let mut fe = Frontend::<i16>::new();
        for (i, hop) in x.chunks_exact(HOP).enumerate() {
            let f = fe.push_hop(hop.try_into().unwrap());
            assert_eq!(f.is_some(), i > 0);
            if let Some(f) = f {
                assert_eq!(&f[..], &whole[(i - 1) * 10..i * 10]);
            }
        }
        // Out of step: 100 samples, then hops (the general path until a frame is made), then
        // a few odd pushes and hops again.
        let mut fe = Frontend::<i16>::new();
        let mut got = [0.0f32; 10 * 9];
        let mut n = 0;
        let mut take = |f: &[f32; NUM_MFCCS]| {
            got[n * 10..n * 10 + 10].copy_from_slice(f);
            n += 1;
        };
        fe.push(&x[..100], &mut take);
        let mut at = 100;
        for step in [HOP, HOP, HOP, 7, 13, HOP, HOP, HOP, HOP] {
            if step == HOP {
                if let Some(f) = fe.push_hop(x[at..at + HOP].try_into().unwrap()) {
                    take(&f);
                }
            } else {
                fe.push(&x[at..at + step], &mut take);
            }
            at += step;
        }
        fe.push(&x[at..], &mut take);
        assert_eq!((n, got), (8, whole));
        // Too small an output.
        assert!(mfcc(&x, &mut [0.0; 79]).is_err());
    }

    #[test]
    fn ram_as_documented() {
        assert_eq!(core::mem::size_of::<Frontend<i16>>(), 964);
        assert_eq!(core::mem::size_of::<Frontend<f32>>(), 1924);
        // The ring is 4-byte aligned: the Cortex-M4F's first FFT stage reads pairs.
        assert_eq!(core::mem::align_of::<Frontend<i16>>(), 4);
    }

    #[test]
    fn silence_is_log_offset() {
        let f = mfcc_frame(&[0i16; FRAME_LEN]);
        // ln(1e-6) in every band: only coefficient 0 is nonzero, 40·ln(1e-6)·2/√80.
        let c0 = 40.0 * math::ln(LOG_OFFSET) * math::sqrt(4.0 / 80.0);
        assert!((f[0] - c0).abs() < 1e-4 * c0.abs(), "{} vs {}", f[0], c0);
        assert!(f[1..].iter().all(|c| c.abs() < 1e-4));
    }
}

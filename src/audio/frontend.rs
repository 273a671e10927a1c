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
//! RAM: a [`Frontend`] is its 480-sample history and a count: 964 bytes for i16 samples on
//! a 32-bit target (968 on a 64-bit host), 1924 for f32. Computing a frame takes 2 KB of
//! stack scratch (the FFT buffer) plus 160 bytes of mel energies; nothing else, no heap.
//! Tables (two windows, twiddles, mel weights, DCT, ln) are 9 KB of read-only data, 7 KB
//! of them for one sample type (each has its own window).

use super::error::AudioError;
use super::tables::{DCT_HALF, HANN, HANN_I16, MEL_SEGMENTS};
use super::{fft, math};
use crate::Error;

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
    /// The frame as i16 samples, if they are (the Cortex-M4F's first FFT stage reads them).
    #[doc(hidden)]
    fn as_i16(_frame: &[Self; FRAME_LEN]) -> Option<&[i16; FRAME_LEN]> {
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
    fn as_i16(frame: &[Self; FRAME_LEN]) -> Option<&[i16; FRAME_LEN]> {
        Some(frame)
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
    let mel = fft::mel_energies(frame);
    let log_mel = mel.map(|e| math::ln(e + LOG_OFFSET));
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
#[derive(Clone, Debug)]
pub struct Frontend<S: Sample = i16> {
    history: [S; FRAME_LEN],
    filled: usize,
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
            history: [S::ZERO; FRAME_LEN],
            filled: 0,
        }
    }

    /// Forgets the buffered samples.
    pub fn reset(&mut self) {
        self.filled = 0;
    }

    /// Samples buffered toward the next frame (below 480).
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Takes `samples`, calls `emit` with each frame they complete; returns how many.
    pub fn push(&mut self, mut samples: &[S], mut emit: impl FnMut(&[f32; NUM_MFCCS])) -> usize {
        let mut frames = 0;
        while !samples.is_empty() {
            let take = (FRAME_LEN - self.filled).min(samples.len());
            let (now, rest) = samples.split_at(take);
            self.history[self.filled..self.filled + take].copy_from_slice(now);
            self.filled += take;
            samples = rest;
            if self.filled == FRAME_LEN {
                emit(&mfcc_frame(&self.history));
                self.history.copy_within(HOP.., 0);
                self.filled = FRAME_LEN - HOP;
                frames += 1;
            }
        }
        frames
    }

    /// Takes one hop of 320 new samples and returns the frame they complete, if any: from the
    /// second hop of a stream on, every hop completes exactly one.
    pub fn push_hop(&mut self, hop: &[S; HOP]) -> Option<[f32; NUM_MFCCS]> {
        let mut frame = None;
        // 320 samples complete at most one frame: fewer than 480 are buffered before, and
        // 160 after a frame.
        self.push(hop, |f| frame = Some(*f));
        frame
    }
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
        // Too small an output.
        assert!(mfcc(&x, &mut [0.0; 79]).is_err());
    }

    #[test]
    fn ram_as_documented() {
        let count = core::mem::size_of::<usize>();
        assert_eq!(core::mem::size_of::<Frontend<i16>>(), 960 + count);
        assert_eq!(core::mem::size_of::<Frontend<f32>>(), 1920 + count);
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

//! Host-side WAV conversion (feature `alloc`): any file [`Wav::parse`] accepts → 16 kHz mono
//! f32 in [−1, 1], the frontend's input.
//!
//! - Samples: 8-bit (u8 − 128)/128, 16-bit /2¹⁵, 24-bit /2²³, 32-bit /2³¹, floats as stored
//!   (16-bit PCM becomes exactly what the frontend's i16 path computes).
//! - Channels: averaged.
//! - Rate: [`resample`], a windowed-sinc interpolator evaluated at each output instant:
//!   y(t) = Σₙ x[n]·h(t − n), h(τ) = 2f·sinc(2fτ)·w(τ/W), with the cutoff f = 0.45·min(1,
//!   to/from) cycles per input sample (0.9 × the lower Nyquist frequency), W = 24 zero
//!   crossings of the sinc each side, w the 4-term Blackman-Harris window (sidelobes −92 dB),
//!   and the taps of each output normalized to sum to 1 (DC passes exactly); h is read from a
//!   table of 1024 points per zero crossing, linearly interpolated. Passband: flat
//!   within ±0.01 dB up to 3/4 of the lower Nyquist frequency (6 kHz when reducing to 16 kHz,
//!   3 kHz from 8 kHz); −6 dB at 0.9 × it (7.2 kHz); tones from 8.3 kHz on come out below
//!   −80 dB (−110 dB from 8.5 kHz). Measured by `tests/audio_frontend.rs`; the features use
//!   20 Hz-4 kHz only. Samples before the start and after the end count as 0.

use super::math::{floor, sin_pi};
use super::wav::{Wav, WavFormat};
use super::{AudioError, SAMPLE_RATE};
use crate::Error;
use alloc::vec::Vec;

/// Sample rates [`load_wav`] converts (a wider range would only make the resampler slow).
const RATES: core::ops::RangeInclusive<u32> = 1000..=384_000;

/// Zero crossings of the sinc on each side of the kernel.
const ZERO_CROSSINGS: f64 = 24.0;
/// Cutoff as a fraction of the lower Nyquist frequency.
const ROLLOFF: f64 = 0.9;

/// A WAV file (any format [`Wav::parse`] reads) as 16 kHz mono f32.
pub fn load_wav(bytes: &[u8]) -> Result<Vec<f32>, Error> {
    let wav = Wav::parse(bytes)?;
    if !RATES.contains(&wav.sample_rate) {
        return Err(AudioError::wav(
            "sample rate {} Hz is outside the 1000..=384000 Hz that are resampled",
            wav.data_offset,
        )
        .with(&[wav.sample_rate as i64])
        .into());
    }
    let width = wav.bits as usize / 8;
    let channels = wav.channels as usize;
    let sample = |b: &[u8]| -> f32 {
        match (wav.format, width) {
            (WavFormat::Float, _) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (_, 1) => (b[0] as f32 - 128.0) * (1.0 / 128.0),
            (_, 2) => i16::from_le_bytes([b[0], b[1]]) as f32 * (1.0 / 32768.0),
            (_, 3) => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * (1.0 / 8_388_608.0),
            _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * (1.0 / 2_147_483_648.0),
        }
    };
    let mono: Vec<f32> = wav
        .data
        .chunks_exact(width * channels)
        .map(|frame| {
            if channels == 1 {
                return sample(frame);
            }
            let sum: f64 = frame.chunks_exact(width).map(|b| sample(b) as f64).sum();
            (sum / channels as f64) as f32
        })
        .collect();
    Ok(resample(&mono, wav.sample_rate, SAMPLE_RATE))
}

/// `x` sampled at `from` Hz, resampled to `to` Hz (see the module header): ⌈len·to/from⌉
/// samples, output j at input instant j·from/to. The same rate returns a copy; a zero rate
/// returns nothing. Each output sums about 53·max(1, from/to) taps.
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return x.to_vec();
    }
    if from == 0 || to == 0 || x.is_empty() {
        return Vec::new();
    }
    let (from_n, to_n) = (from as u64, to as u64);
    let len = (x.len() as u64 * to_n).div_ceil(from_n) as usize;
    // Cutoff in cycles per input sample, and the kernel's half-width in input samples.
    let f = 0.5
        * ROLLOFF
        * if to < from {
            to as f64 / from as f64
        } else {
            1.0
        };
    let half = ZERO_CROSSINGS / (2.0 * f);
    let table = kernel_table();
    let mut out = Vec::with_capacity(len);
    for j in 0..len as u64 {
        // t = j·from/to as a whole part and a fraction (exact integer arithmetic).
        let num = j * from_n;
        let (whole, frac) = ((num / to_n) as i64, (num % to_n) as f64 / to as f64);
        let t = whole as f64 + frac;
        let first = (-floor(half - t)).max(0);
        let last = floor(t + half).min(x.len() as i64 - 1);
        let (mut acc, mut norm) = (0.0f64, 0.0f64);
        for n in first..=last {
            // |τ| in zero crossings of the sinc, at most ZERO_CROSSINGS.
            let z = (((whole - n) as f64 + frac) * 2.0 * f).abs() * RESOLUTION as f64;
            let i = (z as usize).min(table.len() - 2);
            let h = table[i] + (z - i as f64) * (table[i + 1] - table[i]);
            acc += h * x[n as usize] as f64;
            norm += h;
        }
        // The 2f scale of h cancels in the normalization.
        out.push(if norm > 0.0 { (acc / norm) as f32 } else { 0.0 });
    }
    out
}

/// Table points per zero crossing: linear interpolation between them errs by at most
/// (1/1024)²/8 · max|h''| ≤ 4e-7 of the kernel's peak (|h''| ≤ π²/3 in these units).
const RESOLUTION: usize = 1024;

/// sinc(z)·w(z/ZERO_CROSSINGS) at z = i/RESOLUTION for i = 0..=ZERO_CROSSINGS·RESOLUTION, the
/// kernel as a function of |τ| in zero crossings (the window is 0 at the last point).
fn kernel_table() -> Vec<f64> {
    let n = ZERO_CROSSINGS as usize * RESOLUTION;
    (0..=n)
        .map(|i| {
            let z = i as f64 / RESOLUTION as f64;
            let sinc = if i == 0 {
                1.0
            } else {
                sin_pi(z) / (core::f64::consts::PI * z)
            };
            // 4-term Blackman-Harris over [−ZERO_CROSSINGS, ZERO_CROSSINGS], 1 at 0.
            let r = z / ZERO_CROSSINGS;
            let cos = |k: f64| sin_pi(k * r + 0.5);
            sinc * (0.35875 + 0.48829 * cos(1.0) + 0.14128 * cos(2.0) + 0.01168 * cos(3.0))
        })
        .collect()
}

//! Audio for keyword spotting: the feature frontend and WAV input.
//!
//! - [`Frontend`], [`mfcc`], [`mfcc_frame`]: 16 kHz mono PCM → 49 frames × 10 MFCCs per
//!   second, as `tf.signal` computes them (see `frontend.rs` for each stage and the RAM).
//!   `no_std`, no alloc; the constant tables are made by build.rs, and `sqrt`/`ln` are
//!   written here ([`math`]) because `core` has neither.
//! - [`Wav::parse`]: a `no_std` reader of RIFF/WAVE bytes (in flash or in memory), and
//!   [`Wav::pcm16_mono_16k`] for the one format the firmware takes; anything else is an
//!   [`AudioError`] that says what the file is.
//! - [`FeatureWindow`], [`Detector`]: the last second of MFCCs as a model's input, and
//!   keyword decisions over successive model scores (averaged, thresholded, suppressed after a
//!   detection; TFLite Micro's micro_speech style).
//! - `load_wav` (feature `alloc`): any PCM integer (8/16/24/32-bit) or 32-bit float WAV, any
//!   channel count (averaged) and sample rate (windowed-sinc resampling) → 16 kHz mono f32.

mod detect;
mod error;
mod fft;
mod frontend;
pub mod math;
#[cfg(feature = "alloc")]
mod resample;
mod tables;
mod wav;

pub use detect::{Detection, Detector, DetectorConfig, FeatureWindow, WINDOW_FLOATS};
pub use error::AudioError;
pub use frontend::{
    frame_count, mfcc, mfcc_frame, Frontend, Sample, FFT_LEN, FRAMES_PER_SECOND, FRAME_LEN, HOP,
    LOG_OFFSET, NUM_BINS, NUM_MELS, NUM_MFCCS, SAMPLE_RATE,
};
#[cfg(feature = "alloc")]
pub use resample::{load_wav, resample};
pub use wav::{Pcm16, Wav, WavFormat};

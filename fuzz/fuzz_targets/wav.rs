//! `audio::Wav::parse` on arbitrary bytes, then everything a caller does with a file it
//! accepts: the firmware's 16-bit mono 16 kHz view (and the frontend over it) and the host
//! loader's conversion. Each must come back Ok or Err: never a panic or an out-of-bounds read.
//!
//! Most random inputs fail the "RIFF"/"WAVE" tags or the RIFF size; the fuzzer also tries each
//! input with those made right (tags, size = input length − 8), so mutations reach the chunk
//! walk and the fmt checks. Seed it with small WAVs of each kind (a few hundred frames: PCM
//! 8/16/24-bit, float, extensible, several channels and rates, an extra chunk); the 32 KB
//! fixtures of tests/audio/ work too with `-max_len=33000`, more slowly:
//!
//! ```text
//! cargo +nightly fuzz run wav corpus/wav -- -max_len=4096
//! ```
#![no_main]

use edgemm::audio::{self, Wav};
use libfuzzer_sys::fuzz_target;

fn exercise(bytes: &[u8]) {
    let Ok(wav) = Wav::parse(bytes) else {
        return;
    };
    let _ = wav.frames();
    if let Ok(pcm) = wav.pcm16_mono_16k() {
        let samples: Vec<i16> = pcm.iter().collect();
        let mut out = vec![0.0f32; audio::frame_count(samples.len()) * audio::NUM_MFCCS];
        audio::mfcc(&samples, &mut out).expect("buffer sized by frame_count");
    }
    // Resampling cost grows with the output: keep each run short.
    let out_len = wav.frames() as u64 * 16_000 / wav.sample_rate.max(1) as u64;
    if out_len <= 1 << 16 {
        if let Ok(y) = audio::load_wav(bytes) {
            assert!(y.len() as u64 <= out_len + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= 12 {
        let mut b = data.to_vec();
        b[..4].copy_from_slice(b"RIFF");
        let len = (b.len() - 8) as u32;
        b[4..8].copy_from_slice(&len.to_le_bytes());
        b[8..12].copy_from_slice(b"WAVE");
        exercise(&b);
    }
});

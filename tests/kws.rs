//! The keyword pipeline end to end on the committed fixtures of `tests/kws/` (made by
//! `scripts/train-kws.sh`): WAV → `edgemm::audio` frontend → the int8 keyword model →
//! keyword, through the functions of `examples/kws.rs`.
//!
//! - Each one-second test clip (voices the model never trained on) gives its label, with
//!   scores close to TFLite's (reference kernels on tf.signal's features, `expected.txt`):
//!   the network is bit-exact, so they differ only where the frontend's f32 rounding moves
//!   a feature across an int8 input step.
//! - The results are deterministic: the same bits on a second run, on two threads and with
//!   the portable (unpacked) weights.
//! - `--stream` over `stream.wav` finds its keywords, in order, each while or shortly after
//!   it is spoken, and nothing for the unknown word.

#[allow(dead_code)]
#[path = "../examples/kws.rs"]
mod kws;

use edgemm::audio::{self, DetectorConfig};
use edgemm::nn::transform::{LoadedModel, Packing};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kws")
        .join(name)
}

fn wav(name: &str) -> Vec<f32> {
    audio::load_wav(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// (file, label, TFLite's scores) per line of expected.txt, and the stream's words as
/// (word, start s, end s).
#[allow(clippy::type_complexity)]
fn expected() -> (Vec<(String, String, Vec<f32>)>, Vec<(String, f64, f64)>) {
    let text = std::fs::read_to_string(fixture("expected.txt")).unwrap();
    let (mut clips, mut words) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# stream.wav:") {
            for w in rest.split_whitespace() {
                let (word, span) = w.split_once('@').unwrap();
                let (a, b) = span.trim_end_matches('s').split_once('-').unwrap();
                words.push((word.to_string(), a.parse().unwrap(), b.parse().unwrap()));
            }
        } else if !line.starts_with('#') {
            let f: Vec<&str> = line.split_whitespace().collect();
            let scores = f[2..].iter().map(|s| s.parse().unwrap()).collect();
            clips.push((f[0].to_string(), f[1].to_string(), scores));
        }
    }
    (clips, words)
}

#[test]
fn clips_give_their_keywords() {
    let model = LoadedModel::load(&std::fs::read(kws::MODEL).unwrap()).unwrap();
    let mut runner = model.runner();
    let (clips, _) = expected();
    assert!(clips.len() >= 5);
    let mut worst = 0.0f32;
    for (file, label, want) in &clips {
        let (class, scores, _) = kws::classify(&mut runner, &wav(file)).unwrap();
        assert_eq!(kws::LABELS[class], label, "{file}: scores {scores:?}");
        for (g, w) in scores.iter().zip(want) {
            worst = worst.max((g - w).abs());
        }
    }
    // 1/256 is one step of the int8 output.
    eprintln!(
        "largest score difference to TFLite: {worst} ({} steps)",
        worst * 256.0
    );
    assert!(worst <= 8.0 / 256.0, "{worst}");
}

#[test]
fn host_results_are_deterministic() {
    let bytes = std::fs::read(kws::MODEL).unwrap();
    let host = LoadedModel::load(&bytes).unwrap();
    let portable = LoadedModel::from_tflite(&bytes, Packing::Portable).unwrap();
    let (clips, _) = expected();
    for (file, _, _) in &clips {
        let x = wav(file);
        let mut runner = host.runner();
        let first = kws::classify(&mut runner, &x).unwrap().1;
        let again = kws::classify(&mut runner, &x).unwrap().1;
        runner.set_threads(2);
        let threads = kws::classify(&mut runner, &x).unwrap().1;
        let unpacked = kws::classify(&mut portable.runner(), &x).unwrap().1;
        for other in [again, threads, unpacked] {
            assert_eq!(first.map(f32::to_bits), other.map(f32::to_bits), "{file}");
        }
    }
}

#[test]
fn stream_finds_the_keywords() {
    let model = LoadedModel::load(&std::fs::read(kws::MODEL).unwrap()).unwrap();
    let mut runner = model.runner();
    let (_, words) = expected();
    let x = wav("stream.wav");
    let (found, timing) = kws::stream(&mut runner, &x, DetectorConfig::default(), 1).unwrap();
    let got: Vec<(&str, f64)> = found
        .iter()
        .map(|d| (kws::LABELS[d.class], d.time_ms as f64 / 1000.0))
        .collect();
    let want: Vec<&(String, f64, f64)> = words.iter().filter(|w| w.0 != "unknown").collect();
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((word, t), (w, start, end)) in got.iter().zip(want) {
        assert_eq!(word, w, "{got:?}");
        // Detected once the word has begun, within a second of its end.
        assert!(
            *t > *start && *t < end + 1.0,
            "{word} at {t} s, spoken {start}-{end} s"
        );
    }
    // One run per hop from the 49th frame on.
    assert_eq!(
        timing.runs as usize,
        audio::frame_count(x.len()) - audio::FRAMES_PER_SECOND + 1
    );
    // The same detections again.
    let again = kws::stream(&mut runner, &x, DetectorConfig::default(), 1).unwrap();
    assert_eq!(found, again.0);
}

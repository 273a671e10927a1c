//! Keyword spotting on a WAV file: `cargo run --release --example kws -- FILE.wav [options]`.
//!
//! One clip (default): the first second of FILE (zero-padded if shorter) → 49 × 10 MFCCs
//! (`edgemm::audio`) → the keyword model → one line
//!
//! ```text
//! keyword=<word|silence|unknown> score=<0..1> frontend_us=<t> network_us=<t>
//! ```
//!
//! `--stream`: slides over the whole recording, 20 ms at a time: the streaming frontend makes
//! one frame per hop, the last 49 frames go through the model every `--every` hops, and a
//! `Detector` averages the scores over `--window` ms and reports a keyword whose average
//! passes `--threshold`, then none for `--suppress` ms (TFLite Micro's micro_speech style).
//! One line per detection, `t=<seconds>s keyword=<word> score=<avg>`, the time being the end
//! of the audio the deciding window covers; then the totals.
//!
//! Options: `--model FILE` (a .tflite, .onnx or blob; default the committed
//! `tests/kws/kws_int8.tflite`, made by `scripts/train-kws.sh`, converted at run time),
//! `--every N` (default 1), `--window MS` (500), `--threshold X` (0.6), `--suppress MS` (1500);
//! `--raw`: one clip, printed as `keyword=<w> score=<s> output=<hex of the int8 scores>
//! features=<hash of the MFCCs' bits>`, what the Cortex-M4 firmware prints (`scripts/kws-cortex-m4.sh` compares them).
//! The input may be any PCM/float WAV: it is mixed down and resampled to 16 kHz mono.
//!
//! `tests/kws.rs` runs this file's functions on the committed test WAVs.

use edgemm::audio::{self, Detection, Detector, DetectorConfig, FeatureWindow, Frontend};
use edgemm::nn::transform::{LoadedModel, Runner};
use std::error::Error;
use std::time::{Duration, Instant};

/// The model's classes, in its output order.
pub const LABELS: [&str; 12] = [
    "silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
];

/// The committed model.
pub const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kws/kws_int8.tflite");

/// Results kept by the stream detector: more than a 1 s window holds at one result per hop.
const HISTORY: usize = 64;

/// Time spent in the frontend and in the network, and how many network runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub frontend: Duration,
    pub network: Duration,
    pub runs: u32,
}

/// The class scores of one second of features.
pub fn scores(
    runner: &mut Runner,
    features: &[f32],
    timing: &mut Timing,
) -> Result<[f32; 12], Box<dyn Error>> {
    let t = Instant::now();
    runner.set_input_f32(0, features)?;
    runner.run()?;
    let out = runner.output_f32(0)?;
    timing.network += t.elapsed();
    timing.runs += 1;
    Ok(out
        .as_slice()
        .try_into()
        .map_err(|_| format!("the model has {} outputs, not 12", out.len()))?)
}

/// Classifies the first second of `samples` (16 kHz mono, zero-padded if shorter): the
/// top class, the scores and the time.
pub fn classify(
    runner: &mut Runner,
    samples: &[f32],
) -> Result<(usize, [f32; 12], Timing), Box<dyn Error>> {
    let mut clip = vec![0.0f32; audio::SAMPLE_RATE as usize];
    let n = samples.len().min(clip.len());
    clip[..n].copy_from_slice(&samples[..n]);
    let mut timing = Timing::default();
    let t = Instant::now();
    let mut features = [0.0f32; audio::WINDOW_FLOATS];
    audio::mfcc(&clip, &mut features)?;
    timing.frontend = t.elapsed();
    let s = scores(runner, &features, &mut timing)?;
    Ok((argmax(&s), s, timing))
}

/// FNV-1a over the bits of `values`, one 32-bit word at a time, continuing from `hash`
/// (0x811c9dc5 to start): what `--raw` and the Cortex-M4 firmware print of the features.
pub fn feature_hash(hash: u32, values: &[f32]) -> u32 {
    values
        .iter()
        .fold(hash, |h, v| (h ^ v.to_bits()).wrapping_mul(0x0100_0193))
}

/// Index of the largest score (the first of equals).
pub fn argmax(s: &[f32]) -> usize {
    s.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

/// The keywords detected in a recording, streaming 20 ms hops through the frontend and the
/// model every `every` hops once a second of features is buffered.
pub fn stream(
    runner: &mut Runner,
    samples: &[f32],
    config: DetectorConfig,
    every: usize,
) -> Result<(Vec<Detection>, Timing), Box<dyn Error>> {
    let mut frontend = Frontend::<f32>::new();
    let mut window = FeatureWindow::new();
    let mut detector = Detector::<12, HISTORY>::new(config);
    let mut timing = Timing::default();
    let mut found = Vec::new();
    let mut frames = 0usize;
    for hop in samples.chunks_exact(audio::HOP) {
        let t = Instant::now();
        let frame = frontend.push_hop(hop.try_into().expect("a hop of 320"));
        timing.frontend += t.elapsed();
        let Some(frame) = frame else { continue };
        window.push(&frame);
        frames += 1;
        if !window.is_full() || frames % every.max(1) != 0 {
            continue;
        }
        let s = scores(runner, window.features(), &mut timing)?;
        // The frame just pushed ends at sample (frames − 1)·320 + 480.
        let end_ms = ((frames - 1) * audio::HOP + audio::FRAME_LEN) * 1000 / 16_000;
        if let Some(d) = detector.update(&s, end_ms as u32) {
            found.push(d);
        }
    }
    Ok((found, timing))
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (mut file, mut model, mut streaming, mut every) = (None, MODEL.to_string(), false, 1);
    let mut raw = false;
    let mut config = DetectorConfig::default();
    let usage = "usage: kws FILE.wav [--stream | --raw] [--model FILE] [--every N] [--window MS] \
                 [--threshold X] [--suppress MS]";
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{usage}"))
        };
        match a.as_str() {
            "--stream" => streaming = true,
            "--raw" => raw = true,
            "--model" => model = value()?,
            "--every" => every = value()?.parse()?,
            "--window" => config.window_ms = value()?.parse()?,
            "--threshold" => config.threshold = value()?.parse()?,
            "--suppress" => config.suppression_ms = value()?.parse()?,
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(());
            }
            _ if file.is_none() && !a.starts_with("--") => file = Some(a),
            _ => return Err(format!("unexpected argument {a}\n{usage}").into()),
        }
    }
    let file = file.ok_or(usage)?;
    let samples = audio::load_wav(&std::fs::read(&file).map_err(|e| format!("{file}: {e}"))?)
        .map_err(|e| format!("{file}: {e}"))?;
    let loaded = LoadedModel::load(&std::fs::read(&model).map_err(|e| format!("{model}: {e}"))?)?;
    let mut runner = loaded.runner();
    let secs = samples.len() as f64 / 16_000.0;
    if streaming {
        let (found, t) = stream(&mut runner, &samples, config, every)?;
        for d in &found {
            println!(
                "t={:.2}s keyword={} score={:.3}",
                d.time_ms as f64 / 1000.0,
                LABELS[d.class],
                d.score
            );
        }
        println!(
            "{} detections in {secs:.2} s of audio; frontend {} us ({:.1} us per 20 ms hop), \
             network {} us ({} runs, {:.1} us each)",
            found.len(),
            t.frontend.as_micros(),
            t.frontend.as_secs_f64() * 1e6 / (samples.len() / audio::HOP).max(1) as f64,
            t.network.as_micros(),
            t.runs,
            t.network.as_secs_f64() * 1e6 / f64::from(t.runs.max(1)),
        );
    } else {
        if secs > 1.0 {
            eprintln!("{file}: {secs:.2} s long; classifying the first second (--stream for all)");
        }
        let (class, s, t) = classify(&mut runner, &samples)?;
        if raw {
            // What firmware/src/bin/kws.rs prints (scripts/kws-cortex-m4.sh compares them).
            let hex: String = runner
                .output(0)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            // And a hash of the features' bits, so the firmware's frontend is compared bit
            // for bit too.
            let mut clip = vec![0.0f32; audio::SAMPLE_RATE as usize];
            let n = samples.len().min(clip.len());
            clip[..n].copy_from_slice(&samples[..n]);
            let mut features = [0.0f32; audio::WINDOW_FLOATS];
            audio::mfcc(&clip, &mut features)?;
            println!(
                "keyword={} score={:.3} output={hex} features={:08x}",
                LABELS[class],
                s[class],
                feature_hash(0x811c_9dc5, &features)
            );
            return Ok(());
        }
        println!(
            "keyword={} score={:.3} frontend_us={} network_us={}",
            LABELS[class],
            s[class],
            t.frontend.as_micros(),
            t.network.as_micros()
        );
    }
    Ok(())
}

//! The calibration reader of `quantize(calibration=DIR)` on arbitrary directories: files with
//! fuzzed names (drawn from the letters of `<sample>.in<j>.bin`, so that many parse) and
//! fuzzed contents (often exactly one input's size, any f32 bits: NaN, ∞, huge, subnormal)
//! are written to a fresh directory, then the pass quantizes a float fixture model with it
//! and the result, if any, is lowered and run. Ok or Err, never a panic.
//!
//! ```text
//! cargo +nightly fuzz run calibration -- -max_len=4096
//! ```
#![no_main]

use edgemm::nn::transform::import::import_tflite;
use edgemm::nn::transform::passes::Pipeline;
use edgemm::nn::transform::{LoadedModel, Packing};
use libfuzzer_sys::fuzz_target;

/// A float model (input [1, 9, 9, 3]) to quantize.
static MODEL: &[u8] = include_bytes!("../../tests/models/conv_k3s1_same_relu_f32.tflite");
const INPUT_BYTES: usize = 9 * 9 * 3 * 4;
const LETTERS: &[u8] = b"sample.in0123.binx";

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("edgemm-fuzz-calibration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    // Files: [flags/name length][name bytes][length: 2 bytes unless sized][contents].
    let mut rest = data;
    for _ in 0..6 {
        let Some((&head, r)) = rest.split_first() else {
            break;
        };
        let n = usize::from(head & 15).min(r.len());
        let name: String = r[..n]
            .iter()
            .map(|&b| char::from(LETTERS[usize::from(b) % LETTERS.len()]))
            .collect();
        rest = &r[n..];
        let len = if head & 0x80 != 0 {
            INPUT_BYTES
        } else {
            let Some((l, r)) = rest.split_first_chunk::<2>() else {
                break;
            };
            rest = r;
            usize::from(u16::from_le_bytes(*l)) % (2 * INPUT_BYTES)
        };
        let take = len.min(rest.len());
        // Contents: the fuzzer's bytes, repeated to the length asked for.
        let contents: Vec<u8> = if take == 0 {
            vec![0x3f; len]
        } else {
            rest[..take].iter().copied().cycle().take(len).collect()
        };
        rest = &rest[take..];
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let _ = std::fs::write(dir.join(&name), contents);
    }
    let text = format!("quantize(calibration={}, io=float)", dir.display());
    let pipeline = Pipeline::parse(&text).expect("the pipeline parses");
    let mut g = import_tflite(MODEL).expect("the fixture imports");
    if pipeline.run(&mut g, |_, _, _, _| {}).is_ok() {
        if let Ok(m) = LoadedModel::from_graph(&g, Packing::Portable) {
            let mut r = m.runner();
            if r.set_input_f32(0, &[0.5; INPUT_BYTES / 4]).is_ok() {
                let _ = r.run();
                let _ = r.output_f32(0);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});

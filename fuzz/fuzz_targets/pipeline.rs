//! `Pipeline::parse` on arbitrary text (the `--transforms` argument), and each pipeline it
//! accepts run over a small float graph built here: Ok or Err, never a panic. Passes that
//! read files (`quantize(calibration=…)`) see paths that do not exist and must say so.
//!
//! ```text
//! cargo +nightly fuzz run pipeline -- -max_len=256
//! ```
#![no_main]

use edgemm::nn::transform::import::import_tflite;
use edgemm::nn::transform::passes::Pipeline;
use libfuzzer_sys::fuzz_target;

/// A fixture model to run the accepted pipelines on.
static MODEL: &[u8] = include_bytes!("../../tests/models/conv_k3s1_same_relu_f32.tflite");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pipeline) = Pipeline::parse(text) else {
        return;
    };
    if pipeline.steps.len() > 16 {
        return;
    }
    let mut g = import_tflite(MODEL).expect("the fixture imports");
    let _ = pipeline.run(&mut g, |_, _, _, _| {});
});

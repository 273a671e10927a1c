//! The ONNX reader and importer on arbitrary bytes: every input must come back as Ok or Err
//! (never a panic, an out-of-bounds access or an unbounded allocation); a model that imports
//! must lower, load and run (or fail cleanly) like any other.
#![no_main]

use edgemm::nn::transform::onnx::{import_onnx, parse_onnx, IoLayout, OnnxOptions};
use edgemm::nn::transform::{LoadedModel, Packing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = parse_onnx(data) else { return };
    if let Some(g) = &m.graph {
        for t in &g.initializers {
            // Checked values match their checked shape.
            if let (Ok(shape), Ok(v)) = (t.shape(), t.values()) {
                let n: usize = shape.iter().product();
                let len = match v {
                    edgemm::nn::transform::onnx::Values::F32(x) => x.len(),
                    edgemm::nn::transform::onnx::Values::I64(x) => x.len(),
                };
                assert_eq!(n, len);
            }
        }
    }
    for layout in [IoLayout::AsDeclared, IoLayout::Nhwc] {
        let opts = OnnxOptions {
            io_layout: layout,
            ..OnnxOptions::default()
        };
        let Ok(g) = import_onnx(data, &opts) else { continue };
        let n = g.tensors.len();
        assert!(g.inputs.iter().chain(&g.outputs).all(|&t| t < n));
        if let Ok(model) = LoadedModel::from_graph(&g, Packing::Portable) {
            // Valid models with huge tensors (a Pad by 10^5) run correctly but slowly; run
            // the ones with a small arena so the fuzzer stays fast.
            if model.model().arena_size() <= 1 << 22 {
                let mut r = model.runner();
                let _ = r.run();
            }
        }
    }
});

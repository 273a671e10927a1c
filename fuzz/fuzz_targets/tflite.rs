//! parse_tflite on arbitrary bytes: every input must come back as Ok or Err (never a panic,
//! an out-of-bounds access or an unbounded allocation), and a parsed model must keep the
//! reader's promises (indices in range, constant data sized by its shape). A model that
//! parses is then imported, lowered, planned, loaded and run (portable and packed for this
//! machine), as `edgemm run` does: each step Ok or Err, never a panic. Seed it with the
//! fixtures: `cargo +nightly fuzz run tflite corpus/tflite` after
//! `mkdir -p corpus/tflite && cp ../tests/models/*.tflite corpus/tflite/`.
#![no_main]

use edgemm::nn::transform::tflite::parse_tflite;
use edgemm::nn::transform::{LoadedModel, Packing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Most random inputs fail the "TFL3" identifier check; give the fuzzer a head start by
    // also trying the input with the identifier patched in.
    let mut patched = data.to_vec();
    if patched.len() >= 8 {
        patched[4..8].copy_from_slice(b"TFL3");
    }
    for bytes in [data, &patched[..]] {
        let Ok(m) = parse_tflite(bytes) else { continue };
        let n = m.tensors.len();
        assert!(m.inputs.iter().chain(&m.outputs).all(|&t| t < n));
        for op in &m.operators {
            assert!(!op.name().is_empty());
            assert!(op
                .inputs
                .iter()
                .flatten()
                .chain(&op.outputs)
                .all(|&t| t < n));
        }
        for t in &m.tensors {
            if let (Some(d), Some(bits)) = (t.data, t.dtype.bits()) {
                let elems = t
                    .shape
                    .iter()
                    .try_fold(1u64, |a, &x| a.checked_mul(x as u64));
                assert_eq!(
                    Some(d.len() as u64),
                    elems.map(|e| (e * bits as u64).div_ceil(8))
                );
            }
        }
        for packing in [Packing::Portable, Packing::Host] {
            let Ok(model) = LoadedModel::from_tflite(bytes, packing) else { continue };
            // A valid model with a huge tensor runs correctly but slowly: run the ones with
            // a small arena so the fuzzer stays fast.
            if model.model().arena_size() <= 1 << 22 {
                let _ = model.runner().run();
            }
        }
    }
});
